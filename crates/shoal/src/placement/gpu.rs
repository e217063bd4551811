//! GPU placement: which server and which of its devices a replica of a GPU service gets.
//! Pure: no IO.
//!
//! A device held by a replica of a service without `gpu_sharing` is that replica's alone; a
//! service with `gpu_sharing: true` may put replicas on devices other sharing replicas use
//! (the least shared first), never on one held alone. A server is a candidate only when it
//! can give the devices asked for; among candidates the usual spread decides
//! ([`super::choose_server`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{choose_server, ServerLoad};

/// What a replica needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuNeed {
    /// Every device of its server.
    All,
    /// This many devices.
    Count(u32),
    /// These devices.
    Devices(Vec<String>),
}

impl GpuNeed {
    /// From the config's `gpus`.
    #[must_use]
    pub fn from_config(r: &crate::config::GpuRequest) -> Self {
        use crate::config::GpuRequest;
        match r {
            GpuRequest::Count(n) => Self::Count(*n),
            GpuRequest::Devices(d) => Self::Devices(d.clone()),
            GpuRequest::Word(_) => Self::All,
        }
    }
}

impl std::fmt::Display for GpuNeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => write!(f, "all GPUs"),
            Self::Count(n) => write!(f, "{n} GPU(s)"),
            Self::Devices(d) => write!(f, "GPU device(s) {}", d.join(",")),
        }
    }
}

/// One server's GPUs as placement sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuInventory {
    /// Server name.
    pub server: String,
    /// Its device IDs (`servers[].gpus`).
    pub devices: Vec<String>,
    /// Devices held by a replica that does not share.
    pub exclusive: BTreeSet<String>,
    /// Devices used by sharing replicas, and how many use each.
    pub shared: BTreeMap<String, u32>,
    /// Why the server takes no GPU replica now (its GPU runtime failed; backing off).
    pub blocked: Option<String>,
}

impl GpuInventory {
    /// Records that a replica holds `devices`.
    pub fn claim(&mut self, devices: &[String], sharing: bool) {
        for d in devices {
            if sharing {
                *self.shared.entry(d.clone()).or_default() += 1;
            } else {
                self.exclusive.insert(d.clone());
            }
        }
    }

    /// Devices a new replica may take: not held alone by anyone, and for a replica that
    /// does not share, used by no one. Least shared first, then in the server's order.
    fn available(&self, sharing: bool) -> Vec<String> {
        let mut v: Vec<(u32, usize, &String)> = self
            .devices
            .iter()
            .enumerate()
            .filter(|(_, d)| !self.exclusive.contains(*d))
            .map(|(i, d)| (self.shared.get(d).copied().unwrap_or(0), i, d))
            .filter(|(n, _, _)| sharing || *n == 0)
            .collect();
        v.sort();
        v.into_iter().map(|(_, _, d)| d.clone()).collect()
    }

    /// The devices one replica needing `need` gets here, or why it cannot be placed here.
    pub fn fit(&self, need: &GpuNeed, sharing: bool) -> Result<Vec<String>, String> {
        if let Some(why) = &self.blocked {
            return Err(why.clone());
        }
        if self.devices.is_empty() {
            return Err("has no GPUs (servers[].gpus)".into());
        }
        let free = self.available(sharing);
        let taken = |n: usize| {
            format!(
                "{} of {} GPU(s) free, {n} needed",
                free.len(),
                self.devices.len()
            )
        };
        match need {
            GpuNeed::All if free.len() == self.devices.len() => Ok(self.devices.clone()),
            GpuNeed::All => Err(taken(self.devices.len())),
            GpuNeed::Count(n) if free.len() >= *n as usize => Ok(free[..*n as usize].to_vec()),
            GpuNeed::Count(n) => Err(taken(*n as usize)),
            GpuNeed::Devices(ids) => {
                if let Some(missing) = ids.iter().find(|id| !self.devices.contains(id)) {
                    return Err(format!("has no GPU device {missing}"));
                }
                match ids.iter().find(|id| !free.contains(id)) {
                    Some(busy) => Err(format!("GPU device {busy} is in use")),
                    None => Ok(ids.clone()),
                }
            }
        }
    }
}

/// Replicas placed: `(server, devices)` each.
pub type Placed = Vec<(String, Vec<String>)>;

/// Why each server could not take a replica.
pub type Reasons = BTreeMap<String, String>;

/// Where `count` replicas of a GPU service go: `(server, devices)` for each one placed,
/// and for each server that could not take the next one, why. Updates the loads and the
/// inventories as it goes. Servers absent from `gpus` have no GPUs.
#[must_use]
pub fn place_gpu(
    loads: &mut [ServerLoad],
    gpus: &mut [GpuInventory],
    count: u32,
    need: &GpuNeed,
    sharing: bool,
) -> (Placed, Reasons) {
    let mut chosen = Vec::new();
    let mut why = BTreeMap::new();
    for _ in 0..count {
        why.clear();
        let mut fits: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in loads.iter() {
            let fit = gpus.iter().find(|g| g.server == l.name).map_or_else(
                || Err("has no GPUs (servers[].gpus)".into()),
                |g| g.fit(need, sharing),
            );
            match fit {
                Ok(devices) => {
                    fits.insert(l.name.clone(), devices);
                }
                Err(e) => {
                    why.insert(l.name.clone(), e);
                }
            }
        }
        let candidates: Vec<ServerLoad> = loads
            .iter()
            .filter(|l| fits.contains_key(&l.name))
            .cloned()
            .collect();
        let Some(name) = choose_server(&candidates).map(|s| s.name.clone()) else {
            for l in candidates {
                why.insert(
                    l.name.clone(),
                    if l.up {
                        "is full (max_containers)".into()
                    } else {
                        "is down".into()
                    },
                );
            }
            break;
        };
        let devices = fits.remove(&name).unwrap_or_default();
        if let Some(l) = loads.iter_mut().find(|l| l.name == name) {
            l.containers += 1;
            l.replicas += 1;
        }
        if let Some(g) = gpus.iter_mut().find(|g| g.server == name) {
            g.claim(&devices, sharing);
        }
        chosen.push((name, devices));
    }
    if chosen.len() as u32 == count {
        why.clear();
    }
    (chosen, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, replicas: u32) -> ServerLoad {
        ServerLoad {
            name: name.into(),
            up: true,
            max_containers: 12,
            containers: replicas,
            replicas,
        }
    }

    fn inv(server: &str, n: u32) -> GpuInventory {
        GpuInventory {
            server: server.into(),
            devices: (0..n).map(|i| i.to_string()).collect(),
            ..Default::default()
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn packs_one_gpu_replicas_onto_distinct_devices_and_spreads_servers() {
        let mut loads = [load("a", 0), load("b", 0)];
        let mut gpus = [inv("a", 2), inv("b", 2)];
        let (placed, why) = place_gpu(&mut loads, &mut gpus, 4, &GpuNeed::Count(1), false);
        assert_eq!(
            placed,
            vec![
                ("a".to_owned(), ids(&["0"])),
                ("b".to_owned(), ids(&["0"])),
                ("a".to_owned(), ids(&["1"])),
                ("b".to_owned(), ids(&["1"])),
            ]
        );
        assert!(why.is_empty());
    }

    #[test]
    fn never_shares_a_device_without_gpu_sharing_and_says_why() {
        let mut loads = [load("a", 0)];
        let mut gpus = [inv("a", 1)];
        let (placed, why) = place_gpu(&mut loads, &mut gpus, 2, &GpuNeed::Count(1), false);
        assert_eq!(placed, vec![("a".to_owned(), ids(&["0"]))]);
        assert_eq!(why["a"], "0 of 1 GPU(s) free, 1 needed");
        // A device held alone is not given to a sharing service either.
        let (placed, _) = place_gpu(&mut loads, &mut gpus, 1, &GpuNeed::Count(1), true);
        assert!(placed.is_empty());
    }

    #[test]
    fn sharing_services_share_least_used_devices_first() {
        let mut loads = [load("a", 0)];
        let mut gpus = [inv("a", 2)];
        let (placed, why) = place_gpu(&mut loads, &mut gpus, 3, &GpuNeed::Count(1), true);
        let devs: Vec<_> = placed.iter().map(|(_, d)| d[0].clone()).collect();
        assert_eq!(devs, ids(&["0", "1", "0"]));
        assert!(why.is_empty());
        assert_eq!(gpus[0].shared["0"], 2);
        // A service that does not share finds nothing free.
        let (placed, why) = place_gpu(&mut loads, &mut gpus, 1, &GpuNeed::Count(1), false);
        assert!(placed.is_empty());
        assert_eq!(why["a"], "0 of 2 GPU(s) free, 1 needed");
    }

    #[test]
    fn servers_without_gpus_are_skipped() {
        // b has the fewest replicas but no GPU: it never gets one.
        let mut loads = [load("a", 3), load("b", 0), load("c", 0)];
        let mut gpus = [inv("a", 4), inv("c", 0)];
        let (placed, why) = place_gpu(&mut loads, &mut gpus, 1, &GpuNeed::Count(1), false);
        assert_eq!(placed, vec![("a".to_owned(), ids(&["0"]))]);
        assert!(why.is_empty());
        let mut loads = [load("b", 0), load("c", 0)];
        let (placed, why) = place_gpu(&mut loads, &mut gpus[1..], 1, &GpuNeed::Count(1), false);
        assert!(placed.is_empty());
        assert_eq!(why["b"], "has no GPUs (servers[].gpus)");
        assert_eq!(why["c"], "has no GPUs (servers[].gpus)");
    }

    #[test]
    fn capacity_exhausted_places_what_fits() {
        let mut loads = [load("a", 0), load("b", 0)];
        let mut gpus = [inv("a", 4), inv("b", 2)];
        let (placed, why) = place_gpu(&mut loads, &mut gpus, 4, &GpuNeed::Count(2), false);
        assert_eq!(
            placed,
            vec![
                ("a".to_owned(), ids(&["0", "1"])),
                ("b".to_owned(), ids(&["0", "1"])),
                ("a".to_owned(), ids(&["2", "3"])),
            ]
        );
        assert_eq!(why["a"], "0 of 4 GPU(s) free, 2 needed");
        assert_eq!(why["b"], "0 of 2 GPU(s) free, 2 needed");
    }

    #[test]
    fn all_takes_a_whole_free_server_and_ids_take_those_devices() {
        let mut loads = [load("a", 0), load("b", 0)];
        let mut gpus = [inv("a", 2), inv("b", 2)];
        gpus[1].claim(&ids(&["1"]), false);
        let (placed, why) = place_gpu(&mut loads, &mut gpus, 2, &GpuNeed::All, false);
        assert_eq!(placed, vec![("a".to_owned(), ids(&["0", "1"]))]);
        assert_eq!(why["b"], "1 of 2 GPU(s) free, 2 needed");
        let need = GpuNeed::Devices(ids(&["1"]));
        let mut gpus = [inv("a", 2), inv("b", 2)];
        gpus[0].claim(&ids(&["1"]), false);
        let (placed, why) = place_gpu(&mut loads, &mut gpus, 2, &need, false);
        assert_eq!(placed, vec![("b".to_owned(), ids(&["1"]))]);
        assert_eq!(why["a"], "GPU device 1 is in use");
    }

    #[test]
    fn full_down_and_blocked_servers_get_none() {
        let mut loads = [load("a", 0), load("b", 0), load("c", 0)];
        loads[0].up = false;
        loads[1].max_containers = 0;
        let mut gpus = [inv("a", 1), inv("b", 1), inv("c", 1)];
        gpus[2].blocked = Some("has no NVIDIA GPU runtime; next try in 30s".into());
        let (placed, why) = place_gpu(&mut loads, &mut gpus, 1, &GpuNeed::Count(1), false);
        assert!(placed.is_empty());
        assert_eq!(why["a"], "is down");
        assert_eq!(why["b"], "is full (max_containers)");
        assert_eq!(why["c"], "has no NVIDIA GPU runtime; next try in 30s");
    }
}
