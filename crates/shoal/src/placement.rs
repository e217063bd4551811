//! Which server gets the next replica, and which replica goes first. Pure: no IO.
//!
//! Spread: the server with the fewest replicas of this service wins, then the one with the
//! fewest containers overall, then the name (so decisions are deterministic). A server that
//! is down or at `max_containers` never gets one. Scale-down takes from the most loaded
//! server first. A GPU service's replicas go only where the devices they need are free
//! (`gpu`).

pub mod gpu;

pub use gpu::{place_gpu, GpuInventory, GpuNeed};

/// What placement needs to know about one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLoad {
    /// Server name.
    pub name: String,
    /// Whether its engine answers.
    pub up: bool,
    /// Its `max_containers`.
    pub max_containers: u32,
    /// Managed containers of all services there now (including ones being started).
    pub containers: u32,
    /// Replicas of the service being placed there now.
    pub replicas: u32,
}

/// The server that should receive the next replica, or `None` when none can take one.
#[must_use]
pub fn choose_server(servers: &[ServerLoad]) -> Option<&ServerLoad> {
    servers
        .iter()
        .filter(|s| s.up && s.containers < s.max_containers)
        .min_by(|a, b| {
            (a.replicas, a.containers, &a.name).cmp(&(b.replicas, b.containers, &b.name))
        })
}

/// Places `count` replicas one after another, updating the loads as it goes. Returns the
/// chosen server names (fewer than `count` when capacity runs out).
#[must_use]
pub fn place(servers: &mut [ServerLoad], count: u32) -> Vec<String> {
    let mut chosen = Vec::new();
    for _ in 0..count {
        let Some(name) = choose_server(servers).map(|s| s.name.clone()) else {
            break;
        };
        if let Some(s) = servers.iter_mut().find(|s| s.name == name) {
            s.containers += 1;
            s.replicas += 1;
        }
        chosen.push(name);
    }
    chosen
}

/// A replica as scale-down sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Container id.
    pub id: String,
    /// Server it runs on.
    pub server: String,
    /// Whether it already serves traffic. Replicas not serving yet go first.
    pub serving: bool,
    /// Creation time (unix seconds); the newest goes first among equals.
    pub created: i64,
}

/// Chooses `count` replicas to remove: not-yet-serving ones first, then from the server with
/// the most replicas of this service (then most containers overall), newest first.
#[must_use]
pub fn choose_victims(
    candidates: &[Candidate],
    servers: &[ServerLoad],
    count: usize,
) -> Vec<String> {
    let mut pool: Vec<Candidate> = candidates.to_vec();
    let mut loads: Vec<ServerLoad> = servers.to_vec();
    let mut out = Vec::new();
    while out.len() < count && !pool.is_empty() {
        let load_of = |server: &str| {
            loads
                .iter()
                .find(|s| s.name == server)
                .map_or((0, 0), |s| (s.replicas, s.containers))
        };
        let best = pool
            .iter()
            .enumerate()
            .max_by(|(_, a), (_, b)| {
                let ka = (!a.serving, load_of(&a.server), a.created, &a.id);
                let kb = (!b.serving, load_of(&b.server), b.created, &b.id);
                ka.cmp(&kb)
            })
            .map(|(i, _)| i);
        let Some(i) = best else { break };
        let victim = pool.swap_remove(i);
        if let Some(s) = loads.iter_mut().find(|s| s.name == victim.server) {
            s.replicas = s.replicas.saturating_sub(1);
            s.containers = s.containers.saturating_sub(1);
        }
        out.push(victim.id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load(name: &str, up: bool, max: u32, containers: u32, replicas: u32) -> ServerLoad {
        ServerLoad {
            name: name.into(),
            up,
            max_containers: max,
            containers,
            replicas,
        }
    }

    #[test]
    fn spreads_to_the_server_with_fewest_replicas() {
        let s = [load("a", true, 12, 1, 1), load("b", true, 12, 5, 0)];
        assert_eq!(choose_server(&s).unwrap().name, "b");
    }

    #[test]
    fn ties_go_to_fewest_containers_then_name() {
        let s = [
            load("b", true, 12, 2, 0),
            load("a", true, 12, 2, 0),
            load("c", true, 12, 1, 0),
        ];
        assert_eq!(choose_server(&s).unwrap().name, "c");
        let s = [load("b", true, 12, 2, 0), load("a", true, 12, 2, 0)];
        assert_eq!(choose_server(&s).unwrap().name, "a");
    }

    #[test]
    fn never_places_on_a_down_or_full_server() {
        let s = [load("down", false, 12, 0, 0), load("full", true, 2, 2, 0)];
        assert!(choose_server(&s).is_none());
    }

    #[test]
    fn place_spreads_round_robin_and_stops_at_capacity() {
        let mut s = [load("a", true, 2, 0, 0), load("b", true, 1, 0, 0)];
        assert_eq!(place(&mut s, 5), vec!["a", "b", "a"]);
    }

    #[test]
    fn scale_down_takes_unready_then_most_loaded_newest() {
        let servers = [load("a", true, 12, 3, 3), load("b", true, 12, 1, 1)];
        let c = |id: &str, server: &str, serving, created| Candidate {
            id: id.into(),
            server: server.into(),
            serving,
            created,
        };
        let cands = [
            c("a1", "a", true, 1),
            c("a2", "a", true, 2),
            c("a3", "a", true, 3),
            c("b1", "b", false, 0),
        ];
        assert_eq!(choose_victims(&cands, &servers, 3), vec!["b1", "a3", "a2"]);
    }

    proptest! {
        #[test]
        fn placement_respects_capacity_and_liveness(
            specs in proptest::collection::vec((any::<bool>(), 0u32..5, 0u32..5), 1..8),
            count in 0u32..20,
        ) {
            let mut servers: Vec<ServerLoad> = specs
                .iter()
                .enumerate()
                .map(|(i, (up, max, used))| load(&format!("s{i}"), *up, *max, (*used).min(*max), 0))
                .collect();
            let before = servers.clone();
            let chosen = place(&mut servers, count);
            let free: u32 = before.iter().filter(|s| s.up).map(|s| s.max_containers - s.containers).sum();
            prop_assert_eq!(chosen.len() as u32, count.min(free));
            for s in &servers {
                let b = before.iter().find(|x| x.name == s.name).unwrap();
                prop_assert!(s.containers <= s.max_containers.max(b.containers));
                if !s.up { prop_assert_eq!(s.containers, b.containers); }
            }
            // Spread: replica counts on usable servers differ by at most one unless capacity bound.
        }
    }
}
