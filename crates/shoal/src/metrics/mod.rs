//! Prometheus metrics through a `prometheus-client` registry.
//!
//! What describes the state (replicas, desired count, counters kept in the service state,
//! servers) is read from snapshots at each scrape into a fresh [`prometheus_client::registry::Registry`]; what is only
//! known as it happens (how long a reconcile pass took) is kept in [`Metrics`] and
//! registered into that registry too (a cloned `Family` shares its storage).
//!
//! Counters are registered without `_total`: the OpenMetrics encoder appends it, so the
//! exposed sample names are `shoal_scale_actions_total{...}` and so on.
//!
//! Every metric is documented in `docs/metrics.md`. Per-replica CPU and memory are the
//! autoscaler's last sample (taken every `check_interval`), never a Docker call per scrape.
//! [`Metrics`] also keeps a short history of each service (desired, ready, utilization at
//! each evaluation) for the status page's chart.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::app::App;
use crate::service::Phase;

/// The content type of [`render`]'s text (OpenMetrics 1.0; Prometheus asks for it first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the reconcile pass histogram: 1 ms to 10 s.
pub const PASS_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn pass_histogram() -> Histogram {
    Histogram::new(PASS_BUCKETS)
}

/// Points of history kept per service: at the default `check_interval` (30 s) 6 hours,
/// at 10 s 2 hours.
pub const HISTORY_POINTS: usize = 720;

/// One service at one autoscaler evaluation, for the status page's chart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// When.
    pub at: jiff::Timestamp,
    /// Desired count after the evaluation.
    pub desired: u32,
    /// Replicas in rotation.
    pub ready: u32,
    /// Mean utilization (percent), when there were samples.
    pub utilization: Option<f64>,
}

type History = BTreeMap<String, VecDeque<Point>>;

/// Metrics observed as they happen, kept for the life of `serve`.
#[derive(Debug, Clone)]
pub struct Metrics {
    pass_duration: PassHistograms,
    history: Arc<Mutex<History>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics.
    #[must_use]
    pub fn new() -> Self {
        Self {
            pass_duration: Family::new_with_constructor(pass_histogram as fn() -> Histogram),
            history: Arc::default(),
        }
    }

    /// Appends a point to `service`'s history (the oldest goes beyond [`HISTORY_POINTS`]).
    pub fn record_point(&self, service: &str, point: Point) {
        let mut h = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let ring = h.entry(service.to_owned()).or_default();
        if ring.len() >= HISTORY_POINTS {
            ring.pop_front();
        }
        ring.push_back(point);
    }

    /// `service`'s history, oldest first.
    #[must_use]
    pub fn history(&self, service: &str) -> Vec<Point> {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(service)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Records how long one reconcile pass of `service` took.
    pub fn observe_pass(&self, service: &str, seconds: f64) {
        self.pass_duration
            .get_or_create(&ServiceLabel {
                service: service.to_owned(),
            })
            .observe(seconds);
    }
}

/// One service's state as the metrics show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceSample {
    /// Service name.
    pub name: String,
    /// Replicas in rotation.
    pub ready: u64,
    /// Replica containers Docker reports running.
    pub running: u64,
    /// Desired count.
    pub desired: u32,
    /// Scale actions by (direction, trigger).
    pub scale_actions: BTreeMap<(String, String), u64>,
    /// Replacements by reason.
    pub replacements: BTreeMap<String, u64>,
    /// Mean utilization at the last evaluation (percent), rounded to 2 places.
    pub utilization: Option<f64>,
    /// Memory at the last evaluation (bytes).
    pub memory_bytes: Option<u64>,
    /// Autoscaler decisions by (direction, reason).
    pub decisions: BTreeMap<(String, String), u64>,
    /// Whether the service may scale now.
    pub window_open: bool,
    /// Seconds of cooldown left.
    pub cooldown_remaining: u64,
    /// Replicas by phase (`starting`, `joining`, `ready`, `draining`).
    pub phases: BTreeMap<&'static str, u64>,
    /// `min_replicas`.
    pub min_replicas: u32,
    /// `max_replicas`.
    pub max_replicas: u32,
    /// `scale_up_threshold` (percent).
    pub scale_up_threshold: f64,
    /// `scale_down_threshold` (percent).
    pub scale_down_threshold: f64,
    /// `target_utilization` (percent) when the policy is `target`.
    pub target_utilization: Option<f64>,
    /// CPU limit per replica (cores), when set.
    pub cpu_limit_cores: Option<f64>,
    /// Next edge of the business-hours window (unix seconds), for `business_hours_only`.
    pub window_next_change: Option<i64>,
    /// Replicas a rollout in progress has still to replace (`None`: no rollout).
    pub rollout_remaining: Option<u64>,
    /// Journal events recorded by this process, by action name.
    pub journal_events: BTreeMap<String, u64>,
    /// Last resource sample of each ready replica.
    pub replicas: Vec<ReplicaResources>,
}

/// One replica's last resource sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaResources {
    /// Container name.
    pub name: String,
    /// Server it runs on.
    pub server: String,
    /// CPU in percent of one core.
    pub cpu_percent: f64,
    /// Memory in use (bytes).
    pub memory_bytes: u64,
}

/// One server as the metrics show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerSample {
    /// Server name.
    pub name: String,
    /// Whether its engine answers.
    pub up: bool,
    /// `up`, `unreachable` or `down`.
    pub state: &'static str,
    /// shoal-managed containers there.
    pub containers: u32,
    /// `max_containers`.
    pub max_containers: u32,
    /// Docker events received from it for services that run here, by action.
    pub events: BTreeMap<String, u64>,
}

/// Replica phases, as `shoal_replicas_by_phase` labels them.
pub const PHASES: [&str; 4] = ["starting", "joining", "ready", "draining"];

mod encode;
pub use encode::encode;
use encode::{round2, ServiceLabel};

type PassHistograms = Family<ServiceLabel, Histogram, fn() -> Histogram>;

/// The metrics text of `app` now. Reads service state only through snapshots.
#[must_use]
pub fn render(app: &App) -> String {
    let services = service_samples(app);
    let servers: Vec<ServerSample> = app
        .fleet
        .all()
        .iter()
        .map(|h| {
            let st = h.status();
            ServerSample {
                name: h.name().to_owned(),
                up: st.up,
                state: st.state.as_str(),
                containers: st.containers,
                max_containers: *h.config.max_containers,
                events: h.events_received(),
            }
        })
        .collect();
    encode(
        &services,
        &servers,
        app.started.elapsed().as_secs(),
        &app.metrics,
    )
}

/// Every configured service as the metrics (and the status page) show it.
#[must_use]
pub fn service_samples(app: &App) -> Vec<ServiceSample> {
    let cfg = app.config();
    let now = app.clock.now();
    let recorded = app.journal.recorded();
    cfg.services
        .iter()
        .filter_map(|(name, svc)| {
            // Read under the state's lock, not from a copy of it: the replicas are thousands
            // at scale, and cloning them for every scrape was most of a /metrics.
            let rt = app.service(name)?;
            Some(rt.update(|st| {
                let count = |f: &dyn Fn(&crate::service::Replica) -> bool| {
                    st.replicas.values().filter(|r| f(r)).count() as u64
                };
                let pcfg = crate::policy::PolicyConfig::from_service(svc, cfg.autoscaler.dry_run);
                let window = crate::autoscale::window_state(&cfg, svc, now);
                let mut phases = BTreeMap::new();
                for r in st.replicas.values() {
                    *phases.entry(r.phase.as_str()).or_insert(0u64) += 1;
                }
                let replicas = st
                    .replica_samples
                    .iter()
                    .filter_map(|(id, sample)| {
                        let r = st.replicas.get(id)?;
                        Some(ReplicaResources {
                            name: r.name.clone(),
                            server: r.server.clone(),
                            cpu_percent: sample.cpu_percent,
                            memory_bytes: sample.memory_bytes,
                        })
                    })
                    .collect();
                ServiceSample {
                    name: name.clone(),
                    ready: count(&|r| r.phase == Phase::Ready),
                    running: count(&|r| {
                        r.container_state == crate::engine::ContainerState::Running
                    }),
                    desired: st.desired,
                    scale_actions: st.scale_actions.clone(),
                    replacements: st.replacements.clone(),
                    utilization: st.utilization.map(round2),
                    memory_bytes: st.memory_bytes,
                    decisions: st.decisions.clone(),
                    window_open: window.as_ref().is_none_or(|w| w.open),
                    cooldown_remaining: crate::autoscale::cooldown_left(svc, st.last_action, now),
                    phases,
                    min_replicas: pcfg.min,
                    max_replicas: pcfg.max,
                    scale_up_threshold: pcfg.up_threshold,
                    scale_down_threshold: pcfg.down_threshold,
                    target_utilization: (pcfg.kind != crate::policy::PolicyKind::Threshold)
                        .then_some(pcfg.target),
                    cpu_limit_cores: svc.cpus.as_ref().map(|c| c.value),
                    window_next_change: window
                        .and_then(|w| w.next_change)
                        .map(jiff::Timestamp::as_second),
                    rollout_remaining: st.rollout.as_ref().map(|r| r.replace_ids.len() as u64),
                    journal_events: recorded
                        .iter()
                        .filter(|((service, _), _)| service == name)
                        .map(|((_, action), n)| ((*action).to_owned(), *n))
                        .collect(),
                    replicas,
                }
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests;
