//! What the loop knows of one service: its replicas, desired count, rollout and counters.
//!
//! The state lives behind [`ServiceRuntime`]. The loop, the autoscaler and the commands
//! change it through [`ServiceRuntime::update`], a synchronous closure, so no lock can be
//! held across an await; everybody else reads a [`ServiceRuntime::snapshot`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::ServiceConfig;
use crate::engine::ContainerState;
use crate::release::{Revision, UpdateStatus};

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

impl Phase {
    /// Its name in lower case, as the API and the metrics show it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Joining => "joining",
            Self::Ready => "ready",
            Self::Draining => "draining",
        }
    }
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
    /// Revision it was created from (spec and pinned image).
    pub revision: String,
    /// The exact image it runs.
    pub image: crate::engine::ImagePin,
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
    /// When the loop first saw it (start period counts from here).
    #[serde(skip)]
    pub first_seen: Instant,
    /// When it was registered in HAProxy.
    #[serde(skip)]
    pub joined_at: Option<Instant>,
    /// When it was last probed.
    #[serde(skip)]
    pub last_probe: Option<Instant>,
    /// How long its warm-up request took, once it succeeded (`warmup`).
    #[serde(skip)]
    pub warmed: Option<std::time::Duration>,
    /// A warm-up request is in flight.
    #[serde(skip)]
    pub warming: bool,
    /// Failed warm-up requests in a row, and the last one's error.
    #[serde(skip)]
    pub warmup_failures: u32,
    /// Why the last warm-up failed.
    #[serde(skip)]
    pub last_warmup_error: Option<String>,
    /// GPU devices it holds.
    pub gpus: Vec<String>,
}

impl Replica {
    /// A replica just seen (adopted) or just started: `Starting`, not yet probed.
    #[must_use]
    pub fn new(c: &crate::engine::ContainerInfo, host: String, now: Instant) -> Self {
        Replica {
            id: c.id.clone(),
            name: c.name.clone(),
            server: c.server.clone(),
            host,
            port: c.host_port,
            revision: c.revision.clone(),
            image: c.image.clone(),
            container_state: c.state,
            status: c.status.clone(),
            phase: Phase::Starting,
            created: c.created,
            health_failures: 0,
            healthy: None,
            last_probe_error: None,
            in_lb: false,
            lb_status: None,
            first_seen: now,
            joined_at: None,
            last_probe: None,
            warmed: None,
            warming: false,
            warmup_failures: 0,
            last_warmup_error: None,
            gpus: c.gpus.clone(),
        }
    }

    /// Whether it counts toward the service's replicas (everything but draining).
    #[must_use]
    pub fn active(&self) -> bool {
        self.phase != Phase::Draining
    }
}

/// Who asked for a scale change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// An operator (API or CLI).
    Manual,
    /// The autoscaler.
    Autoscaler,
}

/// Start times kept per service ([`ServiceState::start_seconds`]).
pub const START_TIMES_KEPT: usize = 5;

/// Seconds `r` took from its creation to `now`, if this process saw it from (about) its
/// creation: an adopted replica's age says nothing about how long a start takes.
#[must_use]
pub fn start_took(r: &Replica, now: jiff::Timestamp) -> Option<f64> {
    let age = now.as_second().saturating_sub(r.created);
    let seen = i64::try_from(r.first_seen.elapsed().as_secs()).unwrap_or(i64::MAX);
    (age >= 0 && age <= seen.saturating_add(5)).then_some(age as f64)
}

/// Adds one observed start time, keeping the last [`START_TIMES_KEPT`].
pub fn record_start(times: &mut std::collections::VecDeque<f64>, secs: f64) {
    times.push_back(secs);
    while times.len() > START_TIMES_KEPT {
        times.pop_front();
    }
}

impl Trigger {
    /// The `trigger` label of `shoal_scale_actions_total`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Autoscaler => "autoscaler",
        }
    }
}

/// A rollout in progress: replicas of other revisions are replaced, at most `max_surge` new
/// ones on their way at once, new before old, never below the ready floor.
#[derive(Clone, Debug)]
pub struct Rollout {
    /// Revision rolled to (`to.id`).
    pub revision: String,
    /// The revision rolled to.
    pub to: Revision,
    /// The revision the service ran before; a failure rolls back to it.
    pub from: Option<Revision>,
    /// Replicas still to replace.
    pub replace_ids: BTreeSet<String>,
    /// New replicas on their way, each with the replica it replaces: new id → old id.
    pub surges: BTreeMap<String, String>,
    /// Replicas replaced so far.
    pub replaced: u32,
    /// Why, when this rollout is a rollback (it is not rolled back again).
    pub rollback: Option<String>,
    /// New replicas above the desired count at once.
    pub max_surge: u32,
    /// Replicas that may be out of rotation at once (never below `min_replicas` ready).
    pub max_unavailable: u32,
    /// Longest time without a replaced replica before the rollout rolls back.
    pub progress_deadline: std::time::Duration,
    /// When a replica was last replaced (or the rollout started).
    pub last_progress: Instant,
}

impl Rollout {
    /// A rollout of `svc` to `to`, replacing `replace_ids`, starting at `now`.
    #[must_use]
    pub fn new(
        svc: &ServiceConfig,
        to: Revision,
        from: Option<Revision>,
        replace_ids: BTreeSet<String>,
        now: Instant,
    ) -> Self {
        let settings = svc.rollout_settings();
        Self {
            revision: to.id.clone(),
            to,
            from,
            replace_ids,
            surges: BTreeMap::new(),
            replaced: 0,
            rollback: None,
            max_surge: *settings.max_surge,
            max_unavailable: *settings.max_unavailable,
            progress_deadline: settings.progress_deadline(),
            last_progress: now,
        }
    }
}

/// One replica's resource use as the autoscaler last sampled it (Docker's stats API).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReplicaSample {
    /// CPU in percent of one core (as `docker stats` shows it).
    pub cpu_percent: f64,
    /// Memory in use (bytes).
    pub memory_bytes: u64,
}

/// Mutable state of one service. Readers outside the loop get a copy
/// ([`ServiceRuntime::snapshot`]).
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
    /// The policy's memory (stabilization window, what `adaptive` learned).
    pub policy: crate::policy::PolicyState,
    /// Seconds the last few replicas this process started took from creation to ready,
    /// oldest first (for pre-warming before the business-hours window opens).
    pub start_seconds: std::collections::VecDeque<f64>,
    /// Last evaluation of the autoscaler.
    pub last_decision: Option<crate::policy::Decision>,
    /// Mean utilization of the last evaluation (percent), when there were samples.
    pub utilization: Option<f64>,
    /// Memory of the ready replicas at the last evaluation (bytes, summed).
    pub memory_bytes: Option<u64>,
    /// The last sample of each ready replica that answered, by container id (replaced at
    /// every evaluation, so a replica gone is gone from it too).
    pub replica_samples: BTreeMap<String, ReplicaSample>,
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
    /// The revision new replicas are created from (`None` until the first is pinned).
    pub target: Option<Revision>,
    /// The update running, or the last one.
    pub update: Option<UpdateStatus>,
    /// Last error of a pass, cleared by a clean pass.
    pub last_error: Option<String>,
    /// Scale actions by (direction, trigger: manual or autoscaler).
    pub scale_actions: BTreeMap<(String, String), u64>,
    /// Replacements by reason (`exited`, `unhealthy`).
    pub replacements: BTreeMap<String, u64>,
    /// The service was removed from the config; drain to zero, then forget.
    pub removed: bool,
    /// Servers a GPU replica is not started on for now, because their GPU runtime failed.
    pub gpu_backoff: BTreeMap<String, GpuBackoff>,
    /// Warm-up and start-to-ready durations of the last replicas.
    pub startup: crate::service_startup::Startup,
    /// Whether the service sleeps at zero replicas and when it last saw traffic.
    pub sleep: crate::service_startup::SleepState,
}

/// A server whose GPU runtime failed: no GPU replica is started there before `until`.
#[derive(Clone, Debug)]
pub struct GpuBackoff {
    /// No new attempt before this.
    pub until: Instant,
    /// The current wait (doubles, up to [`GPU_BACKOFF`]`.1`).
    pub wait: std::time::Duration,
    /// The error.
    pub error: String,
}

/// First and longest wait before a GPU replica is tried again on a server whose GPU runtime
/// failed.
pub const GPU_BACKOFF: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(30),
    std::time::Duration::from_secs(600),
);

impl ServiceState {
    /// Replicas in `phase`.
    #[must_use]
    pub fn count(&self, phase: Phase) -> usize {
        self.replicas.values().filter(|r| r.phase == phase).count()
    }

    /// Replica counts per server (draining ones excluded).
    #[must_use]
    pub fn replicas_per_server(&self) -> BTreeMap<String, u32> {
        let mut m = BTreeMap::new();
        for r in self.replicas.values().filter(|r| r.active()) {
            let n = m.entry(r.server.clone()).or_insert(0u32);
            *n = n.saturating_add(1);
        }
        m
    }
}

/// One service's runtime: its state and the means to wake its loop.
#[derive(Debug)]
pub struct ServiceRuntime {
    /// Service name.
    pub name: String,
    state: Mutex<ServiceState>,
    /// Wakes the loop for an immediate pass.
    pub wake: Notify,
    /// The Docker stats `GET /services/{name}/stats` sampled last (when, by container id),
    /// shared by the requests of [`crate::timings::STATS_API_REUSE`]; the lock is held while
    /// a sampling runs, so concurrent requests wait for it instead of sampling again.
    pub stats_sample: tokio::sync::Mutex<Option<StatsSample>>,
}

/// When a service's replicas were sampled, and their (CPU percent, memory bytes) by id.
pub type StatsSample = (tokio::time::Instant, BTreeMap<String, (f64, u64)>);

impl ServiceRuntime {
    /// A runtime starting from `state`.
    #[must_use]
    pub fn new(name: &str, state: ServiceState) -> Self {
        Self {
            name: name.to_owned(),
            state: Mutex::new(state),
            wake: Notify::new(),
            stats_sample: tokio::sync::Mutex::new(None),
        }
    }

    /// A copy of the service's state as it is now. Never blocks on a pass and never fails:
    /// a task that panicked while changing the state leaves it readable.
    #[must_use]
    pub fn snapshot(&self) -> ServiceState {
        self.update(|st| st.clone())
    }

    /// Changes the state. The closure is synchronous, so the lock is never held across an
    /// await. A poisoned lock (a panic in another task) is recovered, so one service's
    /// failure cannot take the API or other services down.
    pub fn update<R>(&self, f: impl FnOnce(&mut ServiceState) -> R) -> R {
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}
