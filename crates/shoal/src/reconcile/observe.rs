//! Observation: what is true right now of one service, from Docker (its labelled
//! containers on every up server), the load balancer (its backend's servers) and health
//! probes. Gathered concurrently, each call bounded; no decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::engine::ContainerInfo;
use crate::fleet::Fleet;
use crate::placement::ServerLoad;
use crate::ports::{LbServer, LoadBalancer, Prober};
use crate::service::ServiceState;
use crate::timings;
use tokio::time::Instant;

/// One pass's view of a service.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// Servers up when the listing ended.
    pub up: BTreeSet<String>,
    /// Servers whose listing answered.
    pub answered: BTreeSet<String>,
    /// Every configured server.
    pub servers: BTreeSet<String>,
    /// The service's containers on the servers that answered.
    pub containers: Vec<ContainerInfo>,
    /// Address HAProxy reaches each server's replicas on (its `host`).
    pub hosts: BTreeMap<String, String>,
    /// Loads of the servers (containers of all services; `replicas` left at 0).
    pub loads: Vec<ServerLoad>,
    /// The backend's servers; `None` when the load balancer did not answer.
    pub lb: Option<Vec<LbServer>>,
    /// Why the load balancer did not answer.
    pub lb_error: Option<String>,
    /// Probe results by container id, for the replicas probed this pass.
    pub probes: BTreeMap<String, Result<(), String>>,
    /// GPUs of every server and who holds them (all services); only for a GPU service.
    pub gpus: Option<Vec<crate::placement::GpuInventory>>,
}

impl Observation {
    /// Whether the load balancer lists a server named `name`.
    #[must_use]
    pub fn in_lb(&self, name: &str) -> bool {
        self.lb
            .as_ref()
            .is_some_and(|v| v.iter().any(|s| s.name == name))
    }

    /// Whether the load balancer lists `name` with its health checks passing (in rotation,
    /// or in maintenance with a passing check).
    #[must_use]
    pub fn serving(&self, name: &str) -> bool {
        self.lb.as_ref().is_some_and(|v| {
            v.iter()
                .any(|s| s.name == name && (s.in_rotation || s.check_passing))
        })
    }
}

/// Replicas of a service that HAProxy's checks pass, per configured server, for the fleet's
/// judgement of servers without a control path ([`crate::fleet::ServerHandle::report_serving`]).
/// Ones HAProxy serves that the loop does not know are attributed by address when it is the
/// host of exactly one server. `None` when the load balancer did not answer.
#[must_use]
pub fn serving_per_server(
    state: &ServiceState,
    obs: &Observation,
) -> Option<BTreeMap<String, u32>> {
    let view = obs.lb.as_ref()?;
    let mut out: BTreeMap<String, u32> = obs.servers.iter().map(|s| (s.clone(), 0)).collect();
    for s in view.iter().filter(|s| s.in_rotation || s.check_passing) {
        let server = match state.replicas.values().find(|r| r.name == s.name) {
            Some(r) => Some(r.server.clone()),
            None => {
                let mut by_addr = obs.hosts.iter().filter(|(_, h)| **h == s.addr);
                match (by_addr.next(), by_addr.next()) {
                    (Some((server, _)), None) => Some(server.clone()),
                    _ => None,
                }
            }
        };
        if let Some(n) = server.and_then(|server| out.get_mut(&server)) {
            *n = n.saturating_add(1);
        }
    }
    Some(out)
}

/// `service`'s containers on every up server (from each server's shared listing, listed
/// again when something changed there or it is older than [`timings::INVENTORY_MAX_AGE`])
/// and its backend, concurrently. A server whose listing fails or exceeds
/// [`timings::LIST_TIMEOUT`] is reported to the fleet (so a dead server is noticed between
/// monitor passes) and is absent from `answered`.
pub async fn containers_and_lb(
    fleet: &Fleet,
    lb: &dyn LoadBalancer,
    service: &str,
    backend: &str,
    rise: u32,
) -> Observation {
    let servers: Vec<_> = fleet.all().into_iter().filter(|s| s.status().up).collect();
    let listings = futures_util::future::join_all(
        servers
            .iter()
            .map(|server| server.containers(timings::INVENTORY_MAX_AGE)),
    );
    let (listed, lb_view) = tokio::join!(listings, lb.servers(backend, rise));
    let mut obs = Observation::default();
    for (server, result) in servers.iter().zip(listed) {
        match result {
            Ok(list) => {
                obs.answered.insert(server.name().to_owned());
                obs.containers
                    .extend(list.iter().filter(|c| c.service == service).cloned());
            }
            Err(e) => {
                // Already reported to the fleet by the listing.
                tracing::warn!(service, error = %e, "listing containers failed");
            }
        }
    }
    match lb_view {
        Ok(v) => obs.lb = Some(v),
        Err(e) => {
            tracing::warn!(service, error = %e, "load balancer did not answer");
            obs.lb_error = Some(format!("HAProxy: {e}"));
        }
    }
    for s in fleet.all() {
        obs.servers.insert(s.name().to_owned());
        obs.hosts
            .insert(s.name().to_owned(), s.config.host.value.clone());
        if s.status().up {
            obs.up.insert(s.name().to_owned());
        }
    }
    obs.loads = fleet.loads(&BTreeMap::new());
    obs
}

/// The GPUs of every server and the devices that shoal's containers (of every service) hold
/// there, from one listing per server. A server that does not answer shows none free.
pub async fn gpus(
    fleet: &Fleet,
    ledger: &crate::reconcile::gpu_ledger::GpuLedger,
) -> Vec<crate::placement::GpuInventory> {
    use crate::engine::ContainerState as S;
    let servers = fleet.all();
    futures_util::future::join_all(servers.iter().map(|s| async move {
        let mut inv = crate::placement::GpuInventory {
            server: s.name().to_owned(),
            devices: s
                .config
                .gpus
                .as_ref()
                .map(|g| g.devices())
                .unwrap_or_default(),
            ..Default::default()
        };
        if inv.devices.is_empty() {
            return inv;
        }
        let listed = s.containers(timings::INVENTORY_MAX_AGE).await.ok();
        match listed {
            Some(list) => {
                for c in list.iter().filter(|c| {
                    matches!(c.state, S::Running | S::Created | S::Restarting | S::Paused)
                }) {
                    inv.claim(&c.gpus, c.gpu_sharing);
                }
                let names: Vec<String> = list.iter().map(|c| c.name.clone()).collect();
                ledger.apply(&mut inv, &names, Instant::now());
            }
            None => inv.blocked = Some("its containers could not be listed".into()),
        }
        inv
    }))
    .await
}

/// Probes each `(id, host, port)` at `path`, concurrently, each bounded by `timeout`.
pub async fn probe(
    prober: &dyn Prober,
    due: &[(String, String, u16)],
    path: &str,
    timeout: Duration,
) -> BTreeMap<String, Result<(), String>> {
    use futures_util::StreamExt;
    // The futures are lazy (each probe's timeout starts when it runs); collected first so
    // the stream holds no borrowing closure.
    let probes: Vec<_> = due
        .iter()
        .map(|(_, host, port)| async move {
            match tokio::time::timeout(timeout, prober.probe(host, *port, path, timeout)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "http://{host}:{port}{path}: no answer within {}s",
                    timeout.as_secs_f64()
                )),
            }
        })
        .collect();
    let results: Vec<_> = futures_util::stream::iter(probes)
        .buffered(timings::FANOUT)
        .collect()
        .await;
    due.iter().map(|(id, ..)| id.clone()).zip(results).collect()
}

/// Records the facts of an observation on the replicas already known: Docker's state,
/// probe results, HAProxy's view. No decision: what to do about them is the planner's.
pub fn absorb(state: &mut ServiceState, obs: &Observation, now: Instant) {
    for c in &obs.containers {
        if let Some(r) = state.replicas.get_mut(&c.id) {
            r.container_state = c.state;
            r.status.clone_from(&c.status);
            r.port = c.host_port;
            if let Some(host) = obs.hosts.get(&c.server) {
                r.host.clone_from(host);
            }
        }
    }
    for (id, result) in &obs.probes {
        if let Some(r) = state.replicas.get_mut(id) {
            r.last_probe = Some(now);
            match result {
                Ok(()) => {
                    r.healthy = Some(true);
                    r.health_failures = 0;
                    r.last_probe_error = None;
                }
                Err(e) => {
                    r.healthy = Some(false);
                    r.health_failures = r.health_failures.saturating_add(1);
                    r.last_probe_error = Some(e.clone());
                }
            }
        }
    }
    if let Some(view) = &obs.lb {
        let by_name: std::collections::HashMap<&str, &LbServer> =
            view.iter().map(|s| (s.name.as_str(), s)).collect();
        for r in state.replicas.values_mut().filter(|r| r.active()) {
            match by_name.get(r.name.as_str()) {
                Some(s) => {
                    r.in_lb = true;
                    r.lb_status = Some(s.status.clone());
                }
                None => r.in_lb = false,
            }
        }
    }
}
