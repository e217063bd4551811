//! The control loop: observe (engine, HAProxy) -> decide (placement) -> act (engine, HAProxy).
//!
//! One task per service. Each pass:
//! 1. lists the service's labelled containers on every up server (Docker is the truth);
//! 2. probes the health path of each running replica that is due;
//! 3. replaces replicas that exited or keep failing their check (remove first, then start,
//!    so Docker's restart policy and shoal can never both produce a container);
//! 4. puts healthy new replicas into HAProxy and repairs any drift between HAProxy's
//!    `show servers state` and the healthy replicas;
//! 5. starts or drains replicas until the count matches the desired count;
//! 6. moves a rollout (deploy / rolling update) one replica forward.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;

use crate::config::{Config, ServiceConfig};
use crate::engine::{ContainerInfo, ContainerSpec, ContainerState};
use crate::fleet::{unix_now, Fleet};
use crate::journal::{Journal, NewEvent};
use crate::lb::{self, HaproxyClient};
use crate::placement::{self, Candidate};

/// Where a replica is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Container started; waiting for its first passing health check.
    Starting,
    /// Passed shoal's check; added to HAProxy, waiting for HAProxy's check.
    Joining,
    /// In rotation: HAProxy reports it UP.
    Ready,
    /// Being drained and removed.
    Draining,
}

/// One replica as the loop tracks it.
#[derive(Clone, Debug, Serialize)]
pub struct Replica {
    /// Container id.
    pub id: String,
    /// Container name, also its HAProxy server name.
    pub name: String,
    /// Server it runs on.
    pub server: String,
    /// Address HAProxy reaches it on (the server's `host`).
    pub host: String,
    /// Published host port.
    pub port: Option<u16>,
    /// Spec revision it was created from.
    pub revision: String,
    /// Docker's state.
    pub container_state: ContainerState,
    /// Docker's status text.
    pub status: String,
    /// Lifecycle phase.
    pub phase: Phase,
    /// Creation time (unix seconds).
    pub created: i64,
    /// Consecutive failed health probes.
    pub health_failures: u32,
    /// Whether the last probe passed.
    pub healthy: Option<bool>,
    /// Last probe's error, if it failed.
    pub last_probe_error: Option<String>,
    /// Whether HAProxy currently has it as a server.
    pub in_lb: bool,
    /// HAProxy's view: `UP`, `DOWN`, `DRAIN`, `MAINT`.
    pub lb_status: Option<String>,
    #[serde(skip)]
    first_seen: Instant,
    #[serde(skip)]
    joined_at: Option<Instant>,
    #[serde(skip)]
    last_probe: Option<Instant>,
}

/// A rollout in progress: replicas of other revisions are replaced one at a time.
#[derive(Clone, Debug, Serialize)]
pub struct Rollout {
    /// Revision rolled to.
    pub revision: String,
    /// Replace even replicas of the current revision (rolling update after an image pull).
    pub replace_ids: BTreeSet<String>,
    /// The surge replica being started and the one it replaces.
    pub surge: Option<(String, String)>,
    /// Replicas replaced so far.
    pub replaced: u32,
}

/// Mutable state of one service. Readers outside the loop get a copy ([`ServiceRuntime::snapshot`]).
#[derive(Clone, Debug, Default)]
pub struct ServiceState {
    /// Replicas the loop converges to.
    pub desired: u32,
    /// Whether the first observation (adoption) happened.
    pub adopted: bool,
    /// Replicas by container id.
    pub replicas: BTreeMap<String, Replica>,
    /// Last scale action (manual or automatic), for the cooldown. Persisted.
    pub last_action: Option<jiff::Timestamp>,
    /// The policy's memory (stabilization window).
    pub policy: crate::policy::PolicyState,
    /// Last evaluation of the autoscaler.
    pub last_decision: Option<crate::policy::Decision>,
    /// Mean utilization of the last evaluation (percent), when there were samples.
    pub utilization: Option<f64>,
    /// Memory of the ready replicas at the last evaluation (bytes, summed).
    pub memory_bytes: Option<u64>,
    /// Autoscaler evaluations that acted or were held, by (direction, reason).
    pub decisions: BTreeMap<(String, String), u64>,
    /// The hold last journaled; the same hold again is counted, not journaled again.
    pub last_hold: Option<String>,
    /// Desired count saved before the last restart, used once at adoption.
    pub saved_desired: Option<u32>,
    /// The service's config as last seen, so a removed service can still be drained.
    pub spec: Option<ServiceConfig>,
    /// Rollout in progress.
    pub rollout: Option<Rollout>,
    /// Last error of a pass, cleared by a clean pass.
    pub last_error: Option<String>,
    /// Scale actions by (direction, trigger: manual or autoscaler).
    pub scale_actions: BTreeMap<(String, String), u64>,
    /// Replacements by reason.
    pub replacements: BTreeMap<String, u64>,
    /// The service was removed from the config; drain to zero, then forget.
    pub removed: bool,
}

/// One service's runtime: its state and the means to wake its loop.
#[derive(Debug)]
pub struct ServiceRuntime {
    /// Service name.
    pub name: String,
    /// State: only the loop, the autoscaler and the commands change it; readers take a
    /// snapshot.
    state: Mutex<ServiceState>,
    /// Wakes the loop for an immediate pass.
    pub wake: Notify,
}

impl ServiceRuntime {
    /// A copy of the service's state as it is now. Never blocks on a pass (no lock is held
    /// across an await) and never fails: a task that panicked holding the lock leaves the
    /// state readable.
    #[must_use]
    pub fn snapshot(&self) -> ServiceState {
        self.lock().clone()
    }

    /// The state, locked. A poisoned lock (a panic in another task) is recovered, so one
    /// service's failure cannot take the API or other services down.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ServiceState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a scale request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// No such service.
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// Already at the bound.
    #[error("{service} is already at {bound} ({count} replicas); nothing changed")]
    AtBound {
        /// Service.
        service: String,
        /// `max_replicas` or `min_replicas`.
        bound: &'static str,
        /// The count.
        count: u32,
    },
    /// Outside the business-hours window the service is held at `off_hours_replicas`.
    #[error(
        "{service} scales only in business hours; it is held at off_hours_replicas {held} until the window opens{}",
        opens.as_ref().map(|t| format!(" ({t})")).unwrap_or_default()
    )]
    OutsideWindow {
        /// Service.
        service: String,
        /// The held count.
        held: u32,
        /// When the window opens.
        opens: Option<String>,
    },
    /// No server can take another replica.
    #[error("no server can take another replica of {service}: {why}")]
    NoCapacity {
        /// Service.
        service: String,
        /// Per-server reasons.
        why: String,
    },
}

/// Everything `serve` shares between the loops and the API.
#[derive(Debug)]
pub struct App {
    /// The config file `reload` reads again.
    pub config_path: PathBuf,
    config: RwLock<Arc<Config>>,
    /// Servers.
    pub fleet: Arc<Fleet>,
    lb: RwLock<Arc<HaproxyClient>>,
    services: Mutex<BTreeMap<String, Arc<ServiceRuntime>>>,
    /// What happened and why.
    pub journal: Arc<Journal>,
    /// When `serve` started.
    pub started: Instant,
    /// Metrics observed as they happen (reconcile pass durations).
    pub metrics: crate::metrics::Metrics,
    pub(crate) http: reqwest::Client,
    /// Image pulls by (server, image): `None` in flight, `Some(t)` failed at `t`. A pull runs
    /// in the background, never in a reconcile pass, at most once at a time per server and
    /// image, and not again within [`PULL_RETRY`] of a failure.
    pulls: Arc<Mutex<PullBook>>,
    cfg_write: tokio::sync::Mutex<()>,
}

impl App {
    /// Builds the app for a validated config. Nothing is contacted yet.
    pub fn new(config: Config, config_path: PathBuf) -> anyhow::Result<Arc<Self>> {
        let lb = HaproxyClient::new(
            &config.load_balancer.runtime_api,
            Duration::from_secs(*config.load_balancer.timeout),
        )?;
        let fleet = Arc::new(Fleet::new(&config));
        let journal = Journal::open(&config.autoscaler.state_file)?;
        Ok(Arc::new(Self {
            config_path,
            config: RwLock::new(Arc::new(config)),
            fleet,
            lb: RwLock::new(Arc::new(lb)),
            services: Mutex::new(BTreeMap::new()),
            journal: Arc::new(journal),
            started: Instant::now(),
            metrics: crate::metrics::Metrics::new(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()?,
            pulls: Arc::new(Mutex::new(BTreeMap::new())),
            cfg_write: tokio::sync::Mutex::new(()),
        }))
    }

    /// The config in force.
    #[must_use]
    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    pub(crate) fn lb(&self) -> Arc<HaproxyClient> {
        self.lb.read().expect("lb lock").clone()
    }

    /// The runtime of `service`, if it is managed.
    #[must_use]
    pub fn service(&self, name: &str) -> Option<Arc<ServiceRuntime>> {
        self.services
            .lock()
            .expect("services lock")
            .get(name)
            .cloned()
    }

    /// All service runtimes.
    #[must_use]
    pub fn services(&self) -> Vec<Arc<ServiceRuntime>> {
        self.services
            .lock()
            .expect("services lock")
            .values()
            .cloned()
            .collect()
    }

    /// Checks the fleet once, then starts the fleet monitor and one loop per service.
    pub async fn start(self: &Arc<Self>) {
        let timeout = engine_timeout();
        self.fleet.check_all(timeout).await;
        tokio::spawn(self.fleet.clone().monitor(Duration::from_secs(2), timeout));
        let names: Vec<String> = self.config().services.keys().cloned().collect();
        for name in names {
            self.spawn_service(&name);
        }
    }

    fn spawn_service(self: &Arc<Self>, name: &str) {
        let saved = self.journal.load_service_states().remove(name);
        let state = ServiceState {
            last_action: saved.and_then(|s| s.last_action),
            saved_desired: saved.and_then(|s| s.desired),
            ..ServiceState::default()
        };
        let rt = Arc::new(ServiceRuntime {
            name: name.to_owned(),
            state: Mutex::new(state),
            wake: Notify::new(),
        });
        self.services
            .lock()
            .expect("services lock")
            .insert(name.to_owned(), rt.clone());
        let app = self.clone();
        let rt2 = rt.clone();
        tokio::spawn(async move { app.run_service(rt2).await });
        let app = self.clone();
        tokio::spawn(async move { app.run_autoscaler(rt).await });
    }

    /// Applies a new, already validated config: servers, services, HAProxy client.
    /// Running replicas are not restarted; `deploy` rolls them to a changed spec.
    pub fn apply_config(self: &Arc<Self>, config: Config) -> anyhow::Result<Vec<String>> {
        let mut changes = Vec::new();
        let old = self.config();
        let lb = HaproxyClient::new(
            &config.load_balancer.runtime_api,
            Duration::from_secs(*config.load_balancer.timeout),
        )?;
        *self.lb.write().expect("lb lock") = Arc::new(lb);
        self.fleet.apply(&config);
        let new_names: BTreeSet<String> = config.services.keys().cloned().collect();
        *self.config.write().expect("config lock") = Arc::new(config);
        for name in old.services.keys() {
            if !new_names.contains(name) {
                if let Some(rt) = self.service(name) {
                    rt.lock().removed = true;
                    rt.wake.notify_one();
                    changes.push(format!("service {name} removed: draining to zero"));
                }
            }
        }
        for name in &new_names {
            let map = self.services.lock().expect("services lock");
            match map.get(name).cloned() {
                None => {
                    drop(map);
                    self.spawn_service(name);
                    changes.push(format!("service {name} added"));
                }
                Some(rt) => {
                    let cfg = self.config();
                    let svc = &cfg.services[name];
                    let mut st = rt.lock();
                    drop(map);
                    if st.removed {
                        st.removed = false;
                        changes.push(format!("service {name} added back while draining"));
                    }
                    let clamped = st.desired.clamp(lower_bound(svc), *svc.max_replicas);
                    if clamped != st.desired {
                        changes.push(format!(
                            "service {name}: desired {} -> {clamped} (new bounds)",
                            st.desired
                        ));
                        st.desired = clamped;
                        self.journal.save_service_state(
                            name,
                            &crate::journal::SavedState {
                                last_action: st.last_action,
                                desired: Some(clamped),
                            },
                        );
                    }
                    drop(st);
                    rt.wake.notify_one();
                }
            }
        }
        Ok(changes)
    }

    /// Changes the desired count of `service` by one (manual scale), within its bounds.
    pub fn scale(&self, service: &str, up: bool, trigger: &str) -> Result<(u32, u32), ScaleError> {
        let cfg = self.config();
        let (Some(svc), Some(rt)) = (cfg.service(service), self.service(service)) else {
            return Err(ScaleError::UnknownService(service.to_owned()));
        };
        if svc.business_hours_only {
            if let Ok(window) = cfg.autoscaler.business_hours.window() {
                let now = jiff::Timestamp::now();
                if !window.is_open(now) {
                    return Err(ScaleError::OutsideWindow {
                        service: service.to_owned(),
                        held: svc.off_hours_replicas(),
                        opens: window.next_change(now).map(|t| t.to_string()),
                    });
                }
            }
        }
        let mut st = rt.lock();
        let before = st.desired;
        let after = if up {
            if before >= *svc.max_replicas {
                return Err(ScaleError::AtBound {
                    service: service.to_owned(),
                    bound: "max_replicas",
                    count: before,
                });
            }
            let per_server = replicas_per_server(&st);
            if placement::choose_server(&self.fleet.loads(&per_server)).is_none() {
                return Err(ScaleError::NoCapacity {
                    service: service.to_owned(),
                    why: self.capacity_report(),
                });
            }
            before + 1
        } else {
            if before <= *svc.min_replicas {
                return Err(ScaleError::AtBound {
                    service: service.to_owned(),
                    bound: "min_replicas",
                    count: before,
                });
            }
            before - 1
        };
        st.desired = after;
        let now = jiff::Timestamp::now();
        st.last_action = Some(now);
        let dir = if up { "up" } else { "down" };
        *st.scale_actions
            .entry((dir.to_owned(), trigger.to_owned()))
            .or_default() += 1;
        drop(st);
        self.journal.save_service_state(
            service,
            &crate::journal::SavedState {
                last_action: Some(now),
                desired: Some(after),
            },
        );
        self.journal.record(NewEvent {
            service,
            action: if up { "scale_up" } else { "scale_down" },
            reason: format!(
                "{trigger} request: desired {before} -> {after}; cooldown {}s starts",
                *svc.cooldown_period
            ),
            desired: Some((before, after)),
            ..Default::default()
        });
        rt.wake.notify_one();
        Ok((before, after))
    }

    fn capacity_report(&self) -> String {
        self.fleet
            .all()
            .iter()
            .map(|s| {
                let st = s.status();
                if !st.up {
                    format!(
                        "{} is down ({})",
                        s.name(),
                        st.reason.unwrap_or_else(|| "not checked yet".into())
                    )
                } else {
                    format!(
                        "{} has {}/{} containers",
                        s.name(),
                        st.containers,
                        *s.config.max_containers
                    )
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Starts a rollout of `service` to its current spec. With `replace_all`, replicas that
    /// already run the current spec are replaced too (after pulling the image again).
    pub fn deploy(&self, service: &str, replace_all: bool) -> Result<Rollout, ScaleError> {
        let cfg = self.config();
        let (Some(svc), Some(rt)) = (cfg.service(service), self.service(service)) else {
            return Err(ScaleError::UnknownService(service.to_owned()));
        };
        let spec = ContainerSpec::from_service(svc);
        let mut st = rt.lock();
        if st.desired < lower_bound(svc) {
            st.desired = lower_bound(svc);
        }
        let replace_ids: BTreeSet<String> = st
            .replicas
            .values()
            .filter(|r| r.phase != Phase::Draining && (replace_all || r.revision != spec.revision))
            .map(|r| r.id.clone())
            .collect();
        let rollout = Rollout {
            revision: spec.revision,
            replace_ids,
            surge: None,
            replaced: 0,
        };
        self.journal.record(NewEvent {
            service,
            action: "rollout",
            reason: format!(
                "rollout to revision {} started: {} replica(s) to replace",
                rollout.revision,
                rollout.replace_ids.len()
            ),
            ..Default::default()
        });
        st.rollout = (!rollout.replace_ids.is_empty()).then(|| rollout.clone());
        drop(st);
        rt.wake.notify_one();
        Ok(rollout)
    }

    async fn run_service(self: Arc<Self>, rt: Arc<ServiceRuntime>) {
        loop {
            let pass = Instant::now();
            let drained = self.reconcile_once(&rt).await;
            self.metrics
                .observe_pass(&rt.name, pass.elapsed().as_secs_f64());
            if drained {
                // Forget it only if it was not re-added meanwhile (lock order: services,
                // then state, as in apply_config).
                let mut map = self.services.lock().expect("services lock");
                let still_removed = rt.lock().removed
                    || self.config().service(&rt.name).is_none();
                if still_removed && map.get(&rt.name).is_some_and(|x| Arc::ptr_eq(x, &rt)) {
                    map.remove(&rt.name);
                    drop(map);
                    self.journal.forget_service_state(&rt.name);
                    tracing::info!(service = rt.name, "service removed and drained");
                    return;
                }
            }
            let cfg = self.config();
            let transitioning = rt.lock()
                .replicas
                .values()
                .any(|r| matches!(r.phase, Phase::Starting | Phase::Joining));
            // While a replica is on its way in, look often so it joins as soon as it can.
            let every = if transitioning {
                Duration::from_millis(250)
            } else {
                cfg.service(&rt.name).map_or(Duration::from_secs(1), |s| {
                    Duration::from_secs(*s.health_check.interval).min(Duration::from_secs(2))
                })
            };
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = rt.wake.notified() => {}
            }
        }
    }

    /// One pass. Returns true when a removed service has drained completely.
    pub async fn reconcile_once(self: &Arc<Self>, rt: &Arc<ServiceRuntime>) -> bool {
        let cfg = self.config();
        let name = rt.name.as_str();
        // A removed service runs the same pass with desired 0, on its last known config,
        // until every one of its containers on every server is gone.
        let (removed, spec) = {
            let mut st = rt.lock();
            let current = cfg.service(name).filter(|_| !st.removed);
            if let Some(svc) = current {
                st.spec = Some(svc.clone());
            } else {
                st.desired = 0;
                st.rollout = None;
            }
            (current.is_none(), st.spec.clone())
        };
        let Some(spec) = spec else {
            return removed;
        };
        let svc = &spec;
        let backend = lb::backend_name(name);
        let lb = self.lb();

        // 1. Observe containers on every up server, concurrently.
        let servers: Vec<_> = self
            .fleet
            .all()
            .into_iter()
            .filter_map(|s| s.engine().map(|e| (s, e)))
            .collect();
        // A slow server must not hold up the pass: its listing is bounded more tightly than
        // other engine calls, and its replicas are kept as they were until it answers again
        // or the fleet monitor declares it down.
        let listed = futures_util::future::join_all(servers.iter().map(|(server, e)| async move {
            match tokio::time::timeout(crate::fleet::LIST_TIMEOUT, e.list_managed(Some(name))).await
            {
                Ok(r) => r,
                Err(_) => Err(crate::engine::EngineError::Timeout {
                    server: server.name().to_owned(),
                    op: "list containers",
                    secs: crate::fleet::LIST_TIMEOUT.as_secs(),
                }),
            }
        }))
        .await;
        let mut observed: Vec<ContainerInfo> = Vec::new();
        let mut answered = BTreeSet::new();
        for ((server, _), result) in servers.iter().zip(listed) {
            match result {
                Ok(list) => {
                    answered.insert(server.name().to_owned());
                    observed.extend(list);
                }
                Err(e) => {
                    tracing::warn!(service = name, error = %e, "listing containers failed");
                    server.report_failure(&e);
                }
            }
        }
        let Some(lost) = self.merge_observation(rt, svc, &observed, &answered) else {
            // Not every up server answered the first listing: adopt nothing yet, so a
            // replica is never started beside one that is merely slow to be listed.
            return false;
        };
        if removed {
            rt.lock().desired = 0;
        }

        // 2. HAProxy's view (a failure skips HAProxy steps this pass, nothing else).
        let lb_view = match lb.servers_state(&backend).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(service = name, error = %e, "HAProxy runtime API failed");
                rt.lock().last_error = Some(format!("HAProxy: {e}"));
                None
            }
        };

        // Replicas lost with their server: out of HAProxy, forgotten.
        for r in lost {
            if let Some(view) = &lb_view {
                if view.iter().any(|s| s.name == r.name) {
                    if let Err(e) = lb.remove_dead(&backend, &r.name).await {
                        tracing::warn!(replica = r.name, error = %e, "removing lost replica from HAProxy failed");
                    }
                }
            }
            self.journal.record(NewEvent {
                service: name,
                action: "replica_lost",
                reason: format!(
                    "{} is gone: its server {} does not answer or the container was removed",
                    r.name, r.server
                ),
                replica: Some(&r.name),
                server: Some(&r.server),
                ..Default::default()
            });
        }

        // 3. Health probes, concurrently.
        self.probe_due(rt, svc).await;

        // 4. Replace dead / unhealthy / never-healthy replicas.
        self.replace_failed(rt, svc, &backend, lb_view.as_deref())
            .await;

        // 5. HAProxy membership: add healthy, mark ready, repair drift.
        if let Some(view) = &lb_view {
            self.sync_lb(rt, svc, &backend, view).await;
        }

        // 6. Converge the count, 7. rollout step.
        self.converge(rt, svc, &backend).await;
        self.rollout_step(rt, svc, &backend).await;

        self.write_lb_config().await;
        if removed {
            let every_server_answered =
                self.fleet.all().iter().all(|s| answered.contains(s.name()));
            return every_server_answered
                && rt.lock().replicas.is_empty();
        }
        false
    }

    /// Merges a listing into the replica table. Returns the replicas that disappeared, or
    /// `None` when the first (adoption) listing is incomplete.
    fn merge_observation(
        &self,
        rt: &ServiceRuntime,
        svc: &ServiceConfig,
        observed: &[ContainerInfo],
        answered: &BTreeSet<String>,
    ) -> Option<Vec<Replica>> {
        let up: BTreeSet<String> = self
            .fleet
            .all()
            .iter()
            .filter(|s| s.status().up)
            .map(|s| s.name().to_owned())
            .collect();
        let mut st = rt.lock();
        let first = !st.adopted;
        if first && !up.is_subset(answered) {
            return None;
        }
        let seen: BTreeSet<&str> = observed.iter().map(|c| c.id.as_str()).collect();
        let mut lost = Vec::new();
        st.replicas.retain(|id, r| {
            if seen.contains(id.as_str()) {
                return true;
            }
            // Not listed: gone if its server answered; if its server did not answer, kept
            // as it was while the server still counts as up, lost once it is down.
            let unknown = !answered.contains(&r.server) && up.contains(&r.server);
            if !unknown && r.phase != Phase::Draining {
                lost.push(r.clone());
            }
            unknown || (r.phase == Phase::Draining && !answered.contains(&r.server))
        });
        for c in observed {
            let host = self
                .fleet
                .get(&c.server)
                .map_or_else(String::new, |s| s.config.host.value.clone());
            match st.replicas.get_mut(&c.id) {
                Some(r) => {
                    r.container_state = c.state;
                    r.status.clone_from(&c.status);
                    r.port = c.host_port;
                    r.host = host;
                }
                None => {
                    if first && c.state == ContainerState::Running {
                        tracing::info!(
                            service = rt.name,
                            replica = c.name,
                            server = c.server,
                            "adopted"
                        );
                    }
                    st.replicas.insert(
                        c.id.clone(),
                        Replica::new(
                            &c.id,
                            &c.name,
                            &c.server,
                            host,
                            c.host_port,
                            &c.revision,
                            (c.state, &c.status),
                            c.created,
                        ),
                    );
                }
            }
        }
        if first {
            st.adopted = true;
            let running = st
                .replicas
                .values()
                .filter(|r| r.container_state == ContainerState::Running)
                .count() as u32;
            // Within the bounds; the autoscaler moves it to off_hours_replicas outside the
            // business-hours window on its first evaluation.
            let low = lower_bound(svc);
            // The desired count saved before the restart wins (replicas may have died while
            // shoal was down); without one, what runs is what was wanted.
            let saved = st.saved_desired;
            st.desired = saved.unwrap_or(running).clamp(low, *svc.max_replicas);
            let desired = st.desired;
            drop(st);
            self.journal.record(NewEvent {
                service: &rt.name,
                action: "adopted",
                reason: format!(
                    "started: found {running} running replica(s); desired {desired} ({}within {}..={})",
                    saved.map_or_else(String::new, |d| format!("saved desired {d}, ")),
                    *svc.min_replicas,
                    *svc.max_replicas
                ),
                desired: Some((running, desired)),
                ..Default::default()
            });
        }
        Some(lost)
    }

    async fn probe_due(&self, rt: &ServiceRuntime, svc: &ServiceConfig) {
        let interval = Duration::from_secs(*svc.health_check.interval);
        let timeout = Duration::from_secs(*svc.health_check.timeout);
        let due: Vec<(String, String)> = {
            let st = rt.lock();
            st.replicas
                .values()
                .filter(|r| {
                    r.container_state == ContainerState::Running && r.phase != Phase::Draining
                })
                .filter(|r| {
                    r.last_probe.is_none_or(|t| t.elapsed() >= interval)
                    // New replicas are probed every pass so they join quickly.
                    || (r.phase == Phase::Starting && r.healthy != Some(true))
                })
                .filter_map(|r| {
                    Some((
                        r.id.clone(),
                        format!("http://{}:{}{}", r.host, r.port?, *svc.health_check.path),
                    ))
                })
                .collect()
        };
        let results = futures_util::future::join_all(due.iter().map(|(_, url)| async move {
            match self.http.get(url).timeout(timeout).send().await {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!("{url} answered {}", resp.status())),
                Err(e) => Err(format!("{url}: {e}")),
            }
        }))
        .await;
        let mut st = rt.lock();
        for ((id, _), result) in due.iter().zip(results) {
            if let Some(r) = st.replicas.get_mut(id) {
                r.last_probe = Some(Instant::now());
                match result {
                    Ok(()) => {
                        r.healthy = Some(true);
                        r.health_failures = 0;
                        r.last_probe_error = None;
                    }
                    Err(e) => {
                        r.healthy = Some(false);
                        r.health_failures += 1;
                        r.last_probe_error = Some(e);
                    }
                }
            }
        }
    }

    async fn replace_failed(
        &self,
        rt: &ServiceRuntime,
        svc: &ServiceConfig,
        backend: &str,
        view: Option<&[lb::ServerState]>,
    ) {
        let start_period = Duration::from_secs(*svc.health_check.start_period);
        let threshold = *svc.health_check.unhealthy_threshold;
        let failed: Vec<(Replica, String)> = {
            let st = rt.lock();
            st.replicas
                .values()
                .filter(|r| r.phase != Phase::Draining)
                .filter_map(|r| {
                    let why = match r.container_state {
                        ContainerState::Exited | ContainerState::Dead => Some(format!(
                            "container {} ({})",
                            r.container_state_name(),
                            r.status
                        )),
                        ContainerState::Restarting => Some("Docker is restarting it".to_owned()),
                        ContainerState::Created | ContainerState::Unknown
                            if r.first_seen.elapsed() > start_period =>
                        {
                            Some("container never started".to_owned())
                        }
                        ContainerState::Running if r.phase == Phase::Starting => {
                            (r.first_seen.elapsed() > start_period
                                && r.health_failures >= threshold)
                                .then(|| {
                                    format!(
                                        "no passing health check within start_period {}s ({})",
                                        start_period.as_secs(),
                                        r.last_probe_error.clone().unwrap_or_default()
                                    )
                                })
                        }
                        ContainerState::Running
                            if r.phase == Phase::Joining
                                && r.joined_at.is_some_and(|t| t.elapsed() > start_period) =>
                        {
                            Some(format!(
                                "HAProxy's health check did not pass within start_period {}s",
                                start_period.as_secs()
                            ))
                        }
                        ContainerState::Running if r.health_failures >= threshold => Some(format!(
                            "{} failed health checks in a row ({})",
                            r.health_failures,
                            r.last_probe_error.clone().unwrap_or_default()
                        )),
                        _ => None,
                    }?;
                    Some((r.clone(), why))
                })
                .collect()
        };
        for (r, why) in failed {
            let lb = self.lb();
            if r.in_lb || view.is_some_and(|v| v.iter().any(|s| s.name == r.name)) {
                if let Err(e) = lb.del_server(backend, &r.name).await {
                    tracing::warn!(replica = r.name, error = %e, "removing from HAProxy failed");
                }
            }
            // Remove before a replacement is created: Docker's restart policy can then
            // never bring this one back next to its replacement.
            let removed = match self.fleet.get(&r.server).and_then(|s| s.engine()) {
                Some(engine) => engine.remove(&r.id).await,
                None => Ok(()),
            };
            if let Err(e) = removed {
                tracing::warn!(replica = r.name, error = %e, "removing failed replica failed");
                continue;
            }
            if let Some(s) = self.fleet.get(&r.server) {
                s.adjust_containers(-1);
            }
            let mut st = rt.lock();
            st.replicas.remove(&r.id);
            let reason_key = if why.starts_with("container") || why.starts_with("Docker") {
                "exited"
            } else {
                "unhealthy"
            };
            *st.replacements.entry(reason_key.to_owned()).or_default() += 1;
            if let Some(ro) = &mut st.rollout {
                if ro.surge.as_ref().is_some_and(|(new, _)| *new == r.id) {
                    // The new revision does not come up healthy: stop the rollout; the old
                    // replicas keep serving.
                    st.rollout = None;
                    drop(st);
                    self.journal.record(NewEvent {
                        service: &rt.name,
                        action: "rollout_failed",
                        reason: format!("rollout stopped: new replica {} failed ({why}); old replicas keep serving", r.name),
                        replica: Some(&r.name),
                        server: Some(&r.server),
                        ..Default::default()
                    });
                    continue;
                }
            }
            drop(st);
            self.journal.record(NewEvent {
                service: &rt.name,
                action: "replica_replaced",
                reason: format!("{} removed for replacement: {why}", r.name),
                replica: Some(&r.name),
                server: Some(&r.server),
                ..Default::default()
            });
        }
    }

    async fn sync_lb(
        &self,
        rt: &ServiceRuntime,
        svc: &ServiceConfig,
        backend: &str,
        view: &[lb::ServerState],
    ) {
        let lb = self.lb();
        let check = lb_check(svc);
        let replicas: Vec<Replica> = rt.lock()
            .replicas
            .values()
            .cloned()
            .collect();
        let mut updates: Vec<(String, Phase, bool, Option<String>)> = Vec::new();
        for r in &replicas {
            let in_view = view.iter().find(|s| s.name == r.name);
            let Some(port) = r.port else { continue };
            let word = |s: &lb::ServerState| Some(s.status_word().to_owned());
            match (r.phase, in_view) {
                (Phase::Draining, _) => {}
                // Healthy by shoal's probe: register in HAProxy (in maintenance, checks on).
                // It enters rotation only once HAProxy's own check passes (below).
                (Phase::Starting, None) if r.healthy == Some(true) => {
                    match lb
                        .register_server(backend, &r.name, &r.host, port, &check)
                        .await
                    {
                        Ok(()) => {
                            updates.push((r.id.clone(), Phase::Joining, true, Some("MAINT".into())))
                        }
                        Err(e) => {
                            tracing::warn!(replica = r.name, error = %e, "adding to HAProxy failed");
                        }
                    }
                }
                (Phase::Starting, None) => {}
                (Phase::Joining | Phase::Ready, None) => {
                    // Drift (e.g. HAProxy restarted without our cfg): put it back.
                    tracing::warn!(replica = r.name, "missing from HAProxy: re-adding");
                    if lb
                        .register_server(backend, &r.name, &r.host, port, &check)
                        .await
                        .is_ok()
                    {
                        updates.push((r.id.clone(), Phase::Joining, true, Some("MAINT".into())));
                    }
                }
                (_, Some(s)) => {
                    let addr_differs = s.port != port
                        || (r.host.parse::<std::net::IpAddr>().is_ok() && s.addr != r.host);
                    if addr_differs {
                        tracing::warn!(replica = r.name, "HAProxy address differs: updating");
                        if let Err(e) = lb.set_addr(backend, &r.name, &r.host, port).await {
                            tracing::warn!(replica = r.name, error = %e, "set addr failed");
                        }
                    }
                    let mut in_rotation = s.in_rotation();
                    if s.is_maint() {
                        // Admit only once HAProxy's check passes: leaving maintenance
                        // makes a server UP at once, whatever its checks say.
                        match lb.promote_if_passing(backend, &r.name, check.rise).await {
                            Ok(now) => in_rotation = now,
                            Err(e) => {
                                tracing::warn!(replica = r.name, error = %e, "promote failed")
                            }
                        }
                    }
                    let phase = if in_rotation {
                        Phase::Ready
                    } else {
                        Phase::Joining
                    };
                    let status = if in_rotation {
                        Some("UP".to_owned())
                    } else {
                        word(s)
                    };
                    updates.push((r.id.clone(), phase, true, status));
                }
            }
        }
        // HAProxy servers that match no live replica: remove them.
        for s in view {
            if !replicas.iter().any(|r| r.name == s.name) {
                tracing::warn!(
                    server = s.name,
                    "HAProxy has a server with no replica: removing"
                );
                if let Err(e) = lb.remove_dead(backend, &s.name).await {
                    tracing::warn!(server = s.name, error = %e, "removing it failed");
                }
            }
        }
        let mut newly_ready = Vec::new();
        let mut st = rt.lock();
        for (id, phase, in_lb, status) in updates {
            if let Some(r) = st.replicas.get_mut(&id) {
                if phase == Phase::Ready && r.phase != Phase::Ready {
                    newly_ready.push((r.name.clone(), r.server.clone()));
                }
                if phase == Phase::Joining && r.phase != Phase::Joining {
                    r.joined_at = Some(Instant::now());
                }
                r.phase = phase;
                r.in_lb = in_lb;
                r.lb_status = status;
            }
        }
        drop(st);
        for (replica, server) in newly_ready {
            self.journal.record(NewEvent {
                service: &rt.name,
                action: "replica_ready",
                reason: format!("{replica} is healthy and in rotation"),
                replica: Some(&replica),
                server: Some(&server),
                ..Default::default()
            });
        }
    }

    async fn converge(
        self: &Arc<Self>,
        rt: &Arc<ServiceRuntime>,
        svc: &ServiceConfig,
        backend: &str,
    ) {
        let (active, desired, surge, per_server) = {
            let st = rt.lock();
            let active = st
                .replicas
                .values()
                .filter(|r| r.phase != Phase::Draining)
                .count() as u32;
            let surge = u32::from(st.rollout.as_ref().is_some_and(|r| r.surge.is_some()));
            (active, st.desired, surge, replicas_per_server(&st))
        };
        let target = desired + surge;
        if active < target {
            self.start_replicas(rt, svc, target - active, &per_server)
                .await;
        } else if active > target {
            self.remove_replicas(
                rt,
                svc,
                backend,
                (active - target) as usize,
                &format!("{active} replicas for a desired {target}"),
            );
        }
    }

    /// Starts `count` replicas, placed by spread. Returns the ids started.
    async fn start_replicas(
        &self,
        rt: &ServiceRuntime,
        svc: &ServiceConfig,
        count: u32,
        per_server: &BTreeMap<String, u32>,
    ) -> Vec<String> {
        let mut loads = self.fleet.loads(per_server);
        let chosen = placement::place(&mut loads, count);
        if (chosen.len() as u32) < count {
            let why = format!(
                "wanted {count} more replica(s), capacity for {}: {}",
                chosen.len(),
                self.capacity_report()
            );
            let mut st = rt.lock();
            if st.last_error.as_deref() != Some(&why) {
                st.last_error = Some(why.clone());
                drop(st);
                tracing::warn!(service = rt.name, "{why}");
            }
        }
        let spec = ContainerSpec::from_service(svc);
        // A server without the image pulls it in the background; its replica is placed on a
        // later pass, once the image is there.
        let mut ready_servers = Vec::new();
        for server in &chosen {
            let Some(engine) = self.fleet.get(server).and_then(|h| h.engine()) else {
                continue;
            };
            match engine.has_image(&spec.image).await {
                Ok(true) => ready_servers.push(server.clone()),
                Ok(false) => self.pull_in_background(&rt.name, engine, &spec.image),
                Err(e) => tracing::warn!(server, error = %e, "checking the image failed"),
            }
        }
        let starts = ready_servers.iter().filter_map(|server| {
            let handle = self.fleet.get(server)?;
            let engine = handle.engine()?;
            handle.adjust_containers(1);
            let name = format!("shoal-{}-{}", rt.name, short_id());
            let spec = spec.clone();
            Some(async move {
                let r = engine.create_replica(&rt.name, &name, &spec).await;
                (handle, name, r)
            })
        });
        let results = futures_util::future::join_all(starts).await;
        let mut ids = Vec::new();
        for (handle, name, r) in results {
            match r {
                Ok(id) => {
                    let host = handle.config.host.value.clone();
                    let port = match handle.engine() {
                        Some(e) => e.host_port(&id, spec.container_port).await.ok().flatten(),
                        None => None,
                    };
                    let mut st = rt.lock();
                    st.replicas.entry(id.clone()).or_insert(Replica::new(
                        &id,
                        &name,
                        handle.name(),
                        host,
                        port,
                        &spec.revision,
                        (ContainerState::Running, "Up"),
                        unix_now(),
                    ));
                    drop(st);
                    self.journal.record(NewEvent {
                        service: &rt.name,
                        action: "replica_started",
                        reason: format!(
                            "started {name} on {} (revision {})",
                            handle.name(),
                            spec.revision
                        ),
                        replica: Some(&name),
                        server: Some(handle.name()),
                        ..Default::default()
                    });
                    ids.push(id);
                }
                Err(e) => {
                    handle.adjust_containers(-1);
                    handle.report_failure(&e);
                    rt.lock().last_error = Some(e.to_string());
                    self.journal.record(NewEvent {
                        service: &rt.name,
                        action: "error",
                        reason: format!("starting a replica on {} failed: {e}", handle.name()),
                        server: Some(handle.name()),
                        ..Default::default()
                    });
                }
            }
        }
        ids
    }

    /// Pulls `image` on the engine's server in a background task, unless one already runs.
    fn pull_in_background(&self, service: &str, engine: crate::engine::Engine, image: &str) {
        let key = (engine.server().to_owned(), image.to_owned());
        {
            let mut pulls = self.pulls.lock().expect("pulls lock");
            match pulls.get(&key) {
                Some(None) => return,
                Some(Some(failed)) if failed.elapsed() < PULL_RETRY => return,
                _ => {}
            }
            pulls.insert(key.clone(), None);
        }
        let (pulls, journal, service) =
            (self.pulls.clone(), self.journal.clone(), service.to_owned());
        journal.record(NewEvent {
            service: &service,
            action: "pull",
            reason: format!("{} has no {}: pulling it", key.0, key.1),
            server: Some(&key.0),
            ..Default::default()
        });
        tokio::spawn(async move {
            let started = Instant::now();
            let result = engine.pull(&key.1).await;
            let reason = match &result {
                Ok(()) => {
                    pulls.lock().expect("pulls lock").remove(&key);
                    format!(
                        "pulled {} on {} in {:.1}s",
                        key.1,
                        key.0,
                        started.elapsed().as_secs_f64()
                    )
                }
                Err(e) => {
                    pulls
                        .lock()
                        .expect("pulls lock")
                        .insert(key.clone(), Some(Instant::now()));
                    format!(
                        "pulling {} on {} failed: {e}; retrying in {}s",
                        key.1,
                        key.0,
                        PULL_RETRY.as_secs()
                    )
                }
            };
            journal.record(NewEvent {
                service: &service,
                action: "pull",
                reason,
                server: Some(&key.0),
                ..Default::default()
            });
        });
    }

    /// Picks `count` replicas and drains them in the background.
    fn remove_replicas(
        &self,
        rt: &Arc<ServiceRuntime>,
        svc: &ServiceConfig,
        backend: &str,
        count: usize,
        why: &str,
    ) {
        let victims: Vec<Replica> = {
            let mut st = rt.lock();
            let per_server = replicas_per_server(&st);
            let loads = self.fleet.loads(&per_server);
            let surge_new = st
                .rollout
                .as_ref()
                .and_then(|r| r.surge.as_ref().map(|s| s.0.clone()));
            let candidates: Vec<Candidate> = st
                .replicas
                .values()
                .filter(|r| r.phase != Phase::Draining && Some(&r.id) != surge_new.as_ref())
                .map(|r| Candidate {
                    id: r.id.clone(),
                    server: r.server.clone(),
                    serving: r.phase == Phase::Ready,
                    created: r.created,
                })
                .collect();
            let ids = placement::choose_victims(&candidates, &loads, count);
            ids.iter()
                .filter_map(|id| {
                    let r = st.replicas.get_mut(id)?;
                    r.phase = Phase::Draining;
                    Some(r.clone())
                })
                .collect()
        };
        for r in victims {
            self.spawn_drain(rt.clone(), r, backend.to_owned(), svc, why.to_owned());
        }
    }

    fn spawn_drain(
        &self,
        rt: Arc<ServiceRuntime>,
        r: Replica,
        backend: String,
        svc: &ServiceConfig,
        why: String,
    ) {
        let lb = self.lb();
        let cfg = self.config();
        let max_wait = Duration::from_secs(*cfg.load_balancer.drain_timeout);
        let grace = Duration::from_secs(*svc.stop_timeout);
        let handle = self.fleet.get(&r.server);
        let journal = self.journal.clone();
        tokio::spawn(async move {
            let mut waited = Duration::ZERO;
            if r.in_lb {
                match lb.drain_then_remove(&backend, &r.name, max_wait).await {
                    Ok(outcome) => waited = outcome.waited,
                    Err(e) => {
                        tracing::warn!(replica = r.name, error = %e, "drain failed; removing anyway")
                    }
                }
            }
            let mut result = Ok(());
            if let Some(engine) = handle.as_ref().and_then(|h| h.engine()) {
                let _ = engine.stop(&r.id, grace).await;
                result = engine.remove(&r.id).await;
            }
            match result {
                Ok(()) => {
                    if let Some(h) = &handle {
                        h.adjust_containers(-1);
                    }
                    rt.lock().replicas.remove(&r.id);
                    journal.record(NewEvent {
                        service: &rt.name,
                        action: "replica_removed",
                        reason: format!(
                            "{} removed ({why}) after draining {:.1}s",
                            r.name,
                            waited.as_secs_f64()
                        ),
                        replica: Some(&r.name),
                        server: Some(&r.server),
                        ..Default::default()
                    });
                }
                Err(e) => {
                    tracing::warn!(replica = r.name, error = %e, "removing container failed; will retry");
                    // Back to the pool: the next pass retries.
                    if let Some(x) = rt.lock().replicas.get_mut(&r.id) {
                        x.phase = Phase::Ready;
                    }
                }
            }
            rt.wake.notify_one();
        });
    }

    async fn rollout_step(
        self: &Arc<Self>,
        rt: &Arc<ServiceRuntime>,
        svc: &ServiceConfig,
        backend: &str,
    ) {
        enum Step {
            None,
            Start,
            Retire(Box<Replica>),
            Done(u32),
        }
        let step = {
            let mut st = rt.lock();
            let busy = st
                .replicas
                .values()
                .any(|r| matches!(r.phase, Phase::Starting | Phase::Joining));
            let replicas = st.replicas.clone();
            match st.rollout.as_mut() {
                None => Step::None,
                Some(ro) => {
                    ro.replace_ids
                        .retain(|id| replicas.get(id).is_some_and(|r| r.phase != Phase::Draining));
                    match ro.surge.clone() {
                        Some((new, old)) => match replicas.get(&new) {
                            Some(n) if n.phase == Phase::Ready => {
                                ro.surge = None;
                                ro.replaced += 1;
                                ro.replace_ids.remove(&old);
                                match replicas.get(&old) {
                                    Some(o) if o.phase != Phase::Draining => {
                                        Step::Retire(Box::new(o.clone()))
                                    }
                                    _ => Step::None,
                                }
                            }
                            Some(_) => Step::None,
                            None => {
                                ro.surge = None;
                                Step::None
                            }
                        },
                        None if ro.replace_ids.is_empty() => Step::Done(ro.replaced),
                        None if !busy => Step::Start,
                        None => Step::None,
                    }
                }
            }
        };
        match step {
            Step::None => {}
            Step::Done(n) => {
                rt.lock().rollout = None;
                self.journal.record(NewEvent {
                    service: &rt.name,
                    action: "rollout",
                    reason: format!("rollout finished: {n} replica(s) replaced"),
                    ..Default::default()
                });
            }
            Step::Retire(old) => {
                if let Some(r) = rt.lock()
                    .replicas
                    .get_mut(&old.id)
                {
                    r.phase = Phase::Draining;
                }
                self.spawn_drain(
                    rt.clone(),
                    *old,
                    backend.to_owned(),
                    svc,
                    "replaced by rollout".into(),
                );
            }
            Step::Start => {
                let (old, per_server) = {
                    let st = rt.lock();
                    let old = st
                        .rollout
                        .as_ref()
                        .and_then(|r| r.replace_ids.iter().next().cloned());
                    (old, replicas_per_server(&st))
                };
                let Some(old) = old else { return };
                let ids = self.start_replicas(rt, svc, 1, &per_server).await;
                if let Some(new) = ids.into_iter().next() {
                    if let Some(ro) = rt.lock().rollout.as_mut() {
                        ro.surge = Some((new, old));
                    }
                }
            }
        }
    }

    /// Writes haproxy.cfg with the current members when `load_balancer.config_file` is set.
    pub async fn write_lb_config(&self) {
        let cfg = self.config();
        let Some(path) = cfg.load_balancer.config_file.clone() else {
            return;
        };
        let _guard = self.cfg_write.lock().await;
        let text = match lb::render(&cfg, &self.members(), None) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "rendering haproxy.cfg failed");
                return;
            }
        };
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            return;
        }
        let tmp = path.with_extension("tmp");
        let result = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "writing haproxy.cfg failed");
        }
    }

    /// Current HAProxy members (replicas that joined), by service.
    #[must_use]
    pub fn members(&self) -> BTreeMap<String, Vec<lb::Member>> {
        self.services()
            .iter()
            .map(|rt| {
                let st = rt.lock();
                let members = st
                    .replicas
                    .values()
                    .filter(|r| matches!(r.phase, Phase::Joining | Phase::Ready))
                    .filter_map(|r| {
                        Some(lb::Member {
                            name: r.name.clone(),
                            host: r.host.clone(),
                            port: r.port?,
                        })
                    })
                    .collect();
                (rt.name.clone(), members)
            })
            .collect()
    }
}

impl Replica {
    /// A replica just seen (adopted) or just started: `Starting`, not yet probed.
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: &str,
        name: &str,
        server: &str,
        host: String,
        port: Option<u16>,
        revision: &str,
        (container_state, status): (ContainerState, &str),
        created: i64,
    ) -> Self {
        Replica {
            id: id.to_owned(),
            name: name.to_owned(),
            server: server.to_owned(),
            host,
            port,
            revision: revision.to_owned(),
            container_state,
            status: status.to_owned(),
            phase: Phase::Starting,
            created,
            health_failures: 0,
            healthy: None,
            last_probe_error: None,
            in_lb: false,
            lb_status: None,
            first_seen: Instant::now(),
            joined_at: None,
            last_probe: None,
        }
    }

    fn container_state_name(&self) -> String {
        serde_json::to_value(self.container_state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// The lowest desired count the loop itself enforces: `min_replicas`, or
/// `off_hours_replicas` when lower for a business-hours service (the autoscaler applies the
/// window; nothing else may raise a held service to `min_replicas` at night).
fn lower_bound(svc: &ServiceConfig) -> u32 {
    if svc.business_hours_only {
        svc.off_hours_replicas().min(*svc.min_replicas)
    } else {
        *svc.min_replicas
    }
}

/// Replica counts per server (draining ones excluded).
fn replicas_per_server(st: &ServiceState) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::new();
    for r in st.replicas.values().filter(|r| r.phase != Phase::Draining) {
        *m.entry(r.server.clone()).or_insert(0) += 1;
    }
    m
}

/// HAProxy check parameters from the service's health check.
fn lb_check(svc: &ServiceConfig) -> lb::HealthCheck {
    lb::HealthCheck::from_config(&svc.health_check)
}

/// Image pulls by (server, image): `None` in flight, `Some(t)` failed at `t`.
type PullBook = BTreeMap<(String, String), Option<Instant>>;

/// Wait after a failed image pull before the next attempt.
const PULL_RETRY: Duration = Duration::from_secs(60);

/// Timeout for one engine call.
#[must_use]
pub fn engine_timeout() -> Duration {
    Duration::from_secs(10)
}

/// 8 random hex characters for container names.
fn short_id() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("OS randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
