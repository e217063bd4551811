//! Prometheus metrics through a `prometheus-client` registry.
//!
//! What describes the state (replicas, desired count, counters kept in the service state,
//! servers) is read from snapshots at each scrape into a fresh [`Registry`]; what is only
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
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::app::App;
use crate::service::Phase;

/// The content type of [`render`]'s text (OpenMetrics 1.0; Prometheus asks for it first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the reconcile pass histogram: 1 ms to 10 s.
pub const PASS_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScaleActionLabels {
    service: String,
    direction: String,
    trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplacementLabels {
    service: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    service: String,
    direction: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabel {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerActionLabels {
    server: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    service: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    service: String,
    server: String,
    replica: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    service: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

type PassHistograms = Family<ServiceLabel, Histogram, fn() -> Histogram>;

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
    /// shoal-managed containers there.
    pub containers: u32,
    /// `max_containers`.
    pub max_containers: u32,
    /// Docker events received from it for services that run here, by action.
    pub events: BTreeMap<String, u64>,
}

fn service_label(name: &str) -> ServiceLabel {
    ServiceLabel {
        service: name.to_owned(),
    }
}

/// Replica phases, as `shoal_replicas_by_phase` labels them.
pub const PHASES: [&str; 4] = ["starting", "joining", "ready", "draining"];

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn gauge_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The metrics text for these samples, with the persistent metrics of `metrics`.
#[must_use]
pub fn encode(
    services: &[ServiceSample],
    servers: &[ServerSample],
    uptime_seconds: u64,
    metrics: &Metrics,
) -> String {
    let mut reg = Registry::default();
    let replicas = Family::<ServiceLabel, Gauge>::default();
    let running = Family::<ServiceLabel, Gauge>::default();
    let desired = Family::<ServiceLabel, Gauge>::default();
    let scale_actions = Family::<ScaleActionLabels, Counter>::default();
    let replacements = Family::<ReplacementLabels, Counter>::default();
    let utilization = Family::<ServiceLabel, Gauge<f64, AtomicU64>>::default();
    let memory = Family::<ServiceLabel, Gauge>::default();
    let decisions = Family::<DecisionLabels, Counter>::default();
    let window_open = Family::<ServiceLabel, Gauge>::default();
    let cooldown = Family::<ServiceLabel, Gauge>::default();
    let by_phase = Family::<PhaseLabels, Gauge>::default();
    let min_replicas = Family::<ServiceLabel, Gauge>::default();
    let max_replicas = Family::<ServiceLabel, Gauge>::default();
    let up_threshold = Family::<ServiceLabel, Gauge<f64, AtomicU64>>::default();
    let down_threshold = Family::<ServiceLabel, Gauge<f64, AtomicU64>>::default();
    let target = Family::<ServiceLabel, Gauge<f64, AtomicU64>>::default();
    let cpu_limit = Family::<ServiceLabel, Gauge<f64, AtomicU64>>::default();
    let next_change = Family::<ServiceLabel, Gauge>::default();
    let rollout_active = Family::<ServiceLabel, Gauge>::default();
    let rollout_remaining = Family::<ServiceLabel, Gauge>::default();
    let rollout_failures = Family::<ServiceLabel, Counter>::default();
    let journal_events = Family::<ActionLabels, Counter>::default();
    let replica_cpu = Family::<ReplicaLabels, Gauge<f64, AtomicU64>>::default();
    let replica_memory = Family::<ReplicaLabels, Gauge>::default();
    for s in services {
        let l = service_label(&s.name);
        for phase in PHASES {
            by_phase
                .get_or_create(&PhaseLabels {
                    service: s.name.clone(),
                    phase: phase.to_owned(),
                })
                .set(gauge_i64(s.phases.get(phase).copied().unwrap_or(0)));
        }
        min_replicas
            .get_or_create(&l)
            .set(i64::from(s.min_replicas));
        max_replicas
            .get_or_create(&l)
            .set(i64::from(s.max_replicas));
        up_threshold.get_or_create(&l).set(s.scale_up_threshold);
        down_threshold.get_or_create(&l).set(s.scale_down_threshold);
        if let Some(t) = s.target_utilization {
            target.get_or_create(&l).set(t);
        }
        if let Some(c) = s.cpu_limit_cores {
            cpu_limit.get_or_create(&l).set(c);
        }
        if let Some(t) = s.window_next_change {
            next_change.get_or_create(&l).set(t);
        }
        rollout_active
            .get_or_create(&l)
            .set(i64::from(s.rollout_remaining.is_some()));
        rollout_remaining
            .get_or_create(&l)
            .set(gauge_i64(s.rollout_remaining.unwrap_or(0)));
        // Present from the start (0), so `increase()` sees the first failure.
        rollout_failures.get_or_create(&l).inc_by(
            s.journal_events
                .get(crate::journal::Action::RolloutFailed.as_str())
                .copied()
                .unwrap_or(0),
        );
        for (action, n) in &s.journal_events {
            journal_events
                .get_or_create(&ActionLabels {
                    service: s.name.clone(),
                    action: action.clone(),
                })
                .inc_by(*n);
        }
        for r in &s.replicas {
            let rl = ReplicaLabels {
                service: s.name.clone(),
                server: r.server.clone(),
                replica: r.name.clone(),
            };
            replica_cpu.get_or_create(&rl).set(round2(r.cpu_percent));
            replica_memory
                .get_or_create(&rl)
                .set(gauge_i64(r.memory_bytes));
        }
    }
    for s in services {
        let l = service_label(&s.name);
        replicas.get_or_create(&l).set(gauge_i64(s.ready));
        running.get_or_create(&l).set(gauge_i64(s.running));
        desired.get_or_create(&l).set(i64::from(s.desired));
        for ((direction, trigger), n) in &s.scale_actions {
            scale_actions
                .get_or_create(&ScaleActionLabels {
                    service: s.name.clone(),
                    direction: direction.clone(),
                    trigger: trigger.clone(),
                })
                .inc_by(*n);
        }
        for (reason, n) in &s.replacements {
            replacements
                .get_or_create(&ReplacementLabels {
                    service: s.name.clone(),
                    reason: reason.clone(),
                })
                .inc_by(*n);
        }
        if let Some(u) = s.utilization {
            utilization.get_or_create(&l).set(u);
        }
        if let Some(m) = s.memory_bytes {
            memory.get_or_create(&l).set(gauge_i64(m));
        }
        for ((direction, reason), n) in &s.decisions {
            decisions
                .get_or_create(&DecisionLabels {
                    service: s.name.clone(),
                    direction: direction.clone(),
                    reason: reason.clone(),
                })
                .inc_by(*n);
        }
        window_open.get_or_create(&l).set(i64::from(s.window_open));
        cooldown
            .get_or_create(&l)
            .set(gauge_i64(s.cooldown_remaining));
    }
    let server_up = Family::<ServerLabel, Gauge>::default();
    let server_containers = Family::<ServerLabel, Gauge>::default();
    let server_max = Family::<ServerLabel, Gauge>::default();
    let docker_events = Family::<ServerActionLabels, Counter>::default();
    for s in servers {
        for (action, n) in &s.events {
            docker_events
                .get_or_create(&ServerActionLabels {
                    server: s.name.clone(),
                    action: action.clone(),
                })
                .inc_by(*n);
        }
        let l = ServerLabel {
            server: s.name.clone(),
        };
        server_up.get_or_create(&l).set(i64::from(s.up));
        server_containers
            .get_or_create(&l)
            .set(i64::from(s.containers));
        server_max
            .get_or_create(&l)
            .set(i64::from(s.max_containers));
    }
    let build_info = Family::<VersionLabel, Gauge>::default();
    build_info
        .get_or_create(&VersionLabel {
            version: env!("CARGO_PKG_VERSION").to_owned(),
        })
        .set(1);
    let uptime = Gauge::<i64>::default();
    uptime.set(gauge_i64(uptime_seconds));

    // Help texts without the final period: the registry appends it.
    reg.register(
        "shoal_replicas",
        "Replicas in rotation (healthy and UP in HAProxy)",
        replicas,
    );
    reg.register(
        "shoal_replicas_running",
        "Replica containers Docker reports running",
        running,
    );
    reg.register(
        "shoal_desired_replicas",
        "Replicas the control loop converges to",
        desired,
    );
    reg.register(
        "shoal_scale_actions",
        "Scale actions by direction and trigger",
        scale_actions,
    );
    reg.register(
        "shoal_replica_replacements",
        "Replicas replaced, by reason",
        replacements,
    );
    reg.register(
        "shoal_utilization_percent",
        "Mean utilization of the ready replicas at the last evaluation (percent of the CPU limit, or of one core)",
        utilization,
    );
    reg.register(
        "shoal_memory_bytes",
        "Memory of the ready replicas at the last evaluation, summed",
        memory,
    );
    reg.register(
        "shoal_autoscaler_decisions",
        "Autoscaler evaluations that acted or were held, by direction and reason",
        decisions,
    );
    reg.register(
        "shoal_business_window_open",
        "1 when the service may scale now (always 1 without business_hours_only)",
        window_open,
    );
    reg.register(
        "shoal_cooldown_remaining_seconds",
        "Seconds until the service may scale again",
        cooldown,
    );
    reg.register(
        "shoal_server_up",
        "1 when the server's Docker Engine answers",
        server_up,
    );
    reg.register(
        "shoal_server_containers",
        "shoal-managed containers on the server",
        server_containers,
    );
    reg.register(
        "shoal_server_max_containers",
        "Most containers shoal places on the server (max_containers)",
        server_max,
    );
    reg.register(
        "shoal_docker_events",
        "Docker events of the services' containers received from the server, by action (each wakes its service's loop)",
        docker_events,
    );
    reg.register(
        "shoal_replicas_by_phase",
        "Replicas by phase: starting (waiting for its first passing probe), joining (in HAProxy, waiting for its check), ready (in rotation), draining",
        by_phase,
    );
    reg.register(
        "shoal_min_replicas",
        "The service's min_replicas",
        min_replicas,
    );
    reg.register(
        "shoal_max_replicas",
        "The service's max_replicas",
        max_replicas,
    );
    reg.register(
        "shoal_scale_up_threshold_percent",
        "Utilization above which the threshold policy adds a replica (scale_up_threshold)",
        up_threshold,
    );
    reg.register(
        "shoal_scale_down_threshold_percent",
        "Utilization below which the threshold policy removes a replica (scale_down_threshold)",
        down_threshold,
    );
    reg.register(
        "shoal_target_utilization_percent",
        "Utilization the target policy aims at (only for scale_policy target)",
        target,
    );
    reg.register(
        "shoal_cpu_limit_cores",
        "CPU limit of one replica in cores (only when the service sets cpus)",
        cpu_limit,
    );
    reg.register(
        "shoal_business_window_next_change_timestamp_seconds",
        "When the business-hours window next opens or closes (unix time; only for business_hours_only services)",
        next_change,
    );
    reg.register(
        "shoal_rollout_in_progress",
        "1 while a rollout (deploy or rolling update) replaces the service's replicas",
        rollout_active,
    );
    reg.register(
        "shoal_rollout_replicas_remaining",
        "Replicas the rollout in progress has still to replace",
        rollout_remaining,
    );
    reg.register(
        "shoal_rollout_failures",
        "Rollouts stopped because a new replica never became healthy, since shoal started",
        rollout_failures,
    );
    reg.register(
        "shoal_journal_events",
        "Events written to the decision journal since shoal started, by action",
        journal_events,
    );
    reg.register(
        "shoal_replica_cpu_percent",
        "CPU of a ready replica at the autoscaler's last sample (percent of one core, as docker stats shows it)",
        replica_cpu,
    );
    reg.register(
        "shoal_replica_memory_bytes",
        "Memory in use of a ready replica at the autoscaler's last sample",
        replica_memory,
    );
    reg.register(
        "shoal_build_info",
        "Always 1; the version label is shoal's",
        build_info,
    );
    reg.register(
        "shoal_uptime_seconds",
        "Seconds since shoal serve started",
        uptime,
    );
    reg.register(
        "shoal_reconcile_pass_duration_seconds",
        "Duration of one reconcile pass (observe, probe, decide, act) of a service",
        metrics.pass_duration.clone(),
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)
        .expect("writing to a String cannot fail");
    out
}

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
            let st = app.service(name)?.snapshot();
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
            Some(ServiceSample {
                name: name.clone(),
                ready: count(&|r| r.phase == Phase::Ready),
                running: count(&|r| r.container_state == crate::engine::ContainerState::Running),
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
                target_utilization: (pcfg.kind == crate::policy::PolicyKind::Target)
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
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ServiceSample {
        ServiceSample {
            name: "web".into(),
            ready: 2,
            running: 3,
            desired: 2,
            scale_actions: BTreeMap::from([(("up".into(), "autoscaler".into()), 2)]),
            replacements: BTreeMap::from([("unhealthy".into(), 1)]),
            utilization: Some(12.34),
            memory_bytes: Some(4_227_072),
            decisions: BTreeMap::from([(("down".into(), "threshold".into()), 2)]),
            window_open: false,
            cooldown_remaining: 596,
            ..Default::default()
        }
    }

    fn servers() -> Vec<ServerSample> {
        vec![
            ServerSample {
                name: "local".into(),
                up: true,
                containers: 6,
                max_containers: 12,
                events: BTreeMap::from([("die".into(), 3), ("health_status".into(), 5)]),
            },
            ServerSample {
                name: "viassh".into(),
                up: false,
                containers: 0,
                max_containers: 4,
                events: BTreeMap::new(),
            },
        ]
    }

    #[test]
    fn names_labels_and_values_are_those_shoal_always_exposed() {
        let m = Metrics::new();
        m.observe_pass("web", 0.02);
        let text = encode(&[sample()], &servers(), 16, &m);
        for line in [
            "# HELP shoal_replicas Replicas in rotation (healthy and UP in HAProxy).",
            "# TYPE shoal_replicas gauge",
            "shoal_replicas{service=\"web\"} 2",
            "shoal_replicas_running{service=\"web\"} 3",
            "shoal_desired_replicas{service=\"web\"} 2",
            "# TYPE shoal_scale_actions counter",
            "shoal_scale_actions_total{service=\"web\",direction=\"up\",trigger=\"autoscaler\"} 2",
            "shoal_replica_replacements_total{service=\"web\",reason=\"unhealthy\"} 1",
            "shoal_utilization_percent{service=\"web\"} 12.34",
            "shoal_memory_bytes{service=\"web\"} 4227072",
            "shoal_autoscaler_decisions_total{service=\"web\",direction=\"down\",reason=\"threshold\"} 2",
            "shoal_business_window_open{service=\"web\"} 0",
            "shoal_cooldown_remaining_seconds{service=\"web\"} 596",
            "# HELP shoal_server_up 1 when the server's Docker Engine answers.",
            "shoal_server_up{server=\"local\"} 1",
            "shoal_server_up{server=\"viassh\"} 0",
            "shoal_server_containers{server=\"local\"} 6",
            "# TYPE shoal_docker_events counter",
            "shoal_docker_events_total{server=\"local\",action=\"die\"} 3",
            "shoal_docker_events_total{server=\"local\",action=\"health_status\"} 5",
            "shoal_uptime_seconds 16",
            "# TYPE shoal_reconcile_pass_duration_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} in:\n{text}"
            );
        }
        assert!(!text.contains("_total_total"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn operator_metrics_carry_units_labels_and_values() {
        let s = ServiceSample {
            phases: BTreeMap::from([("ready", 2), ("starting", 1)]),
            min_replicas: 1,
            max_replicas: 4,
            scale_up_threshold: 75.0,
            scale_down_threshold: 25.0,
            cpu_limit_cores: Some(0.5),
            window_next_change: Some(1_800_000_000),
            rollout_remaining: Some(2),
            journal_events: BTreeMap::from([("rollout_failed".into(), 1), ("scale_up".into(), 3)]),
            replicas: vec![ReplicaResources {
                name: "web-1".into(),
                server: "local".into(),
                cpu_percent: 37.456,
                memory_bytes: 1_048_576,
            }],
            ..sample()
        };
        let text = encode(&[s], &servers(), 0, &Metrics::new());
        for line in [
            "shoal_replicas_by_phase{service=\"web\",phase=\"starting\"} 1",
            "shoal_replicas_by_phase{service=\"web\",phase=\"joining\"} 0",
            "shoal_replicas_by_phase{service=\"web\",phase=\"ready\"} 2",
            "shoal_replicas_by_phase{service=\"web\",phase=\"draining\"} 0",
            "shoal_min_replicas{service=\"web\"} 1",
            "shoal_max_replicas{service=\"web\"} 4",
            "shoal_scale_up_threshold_percent{service=\"web\"} 75.0",
            "shoal_scale_down_threshold_percent{service=\"web\"} 25.0",
            "shoal_cpu_limit_cores{service=\"web\"} 0.5",
            "shoal_business_window_next_change_timestamp_seconds{service=\"web\"} 1800000000",
            "shoal_rollout_in_progress{service=\"web\"} 1",
            "shoal_rollout_replicas_remaining{service=\"web\"} 2",
            "shoal_rollout_failures_total{service=\"web\"} 1",
            "shoal_journal_events_total{service=\"web\",action=\"scale_up\"} 3",
            "shoal_replica_cpu_percent{service=\"web\",server=\"local\",replica=\"web-1\"} 37.46",
            "shoal_replica_memory_bytes{service=\"web\",server=\"local\",replica=\"web-1\"} 1048576",
            "shoal_server_max_containers{server=\"local\"} 12",
            concat!("shoal_build_info{version=\"", env!("CARGO_PKG_VERSION"), "\"} 1"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} in:\n{text}"
            );
        }
        // No target line for the threshold policy; no rollout failure invented.
        assert!(
            !text.contains("shoal_target_utilization_percent{"),
            "{text}"
        );
        let idle = encode(&[sample()], &[], 0, &Metrics::new());
        assert!(idle.contains("shoal_rollout_failures_total{service=\"web\"} 0"));
        assert!(idle.contains("shoal_rollout_in_progress{service=\"web\"} 0"));
    }

    #[test]
    fn history_keeps_the_newest_points() {
        let m = Metrics::new();
        for i in 0..HISTORY_POINTS + 5 {
            m.record_point(
                "web",
                Point {
                    at: jiff::Timestamp::from_second(i as i64).unwrap(),
                    desired: 1,
                    ready: 1,
                    utilization: None,
                },
            );
        }
        let h = m.history("web");
        assert_eq!(h.len(), HISTORY_POINTS);
        assert_eq!(h[0].at.as_second(), 5);
        assert!(m.history("other").is_empty());
    }

    #[test]
    fn missing_samples_leave_no_line() {
        let s = ServiceSample {
            utilization: None,
            memory_bytes: None,
            ..sample()
        };
        let text = encode(&[s], &[], 0, &Metrics::new());
        assert!(!text.contains("shoal_utilization_percent{"), "{text}");
        assert!(!text.contains("shoal_memory_bytes{"), "{text}");
        // A family without samples is left out entirely (no HELP/TYPE lines either).
        assert!(!text.contains("shoal_utilization_percent"), "{text}");
        assert!(
            !text.contains("shoal_reconcile_pass_duration_seconds"),
            "{text}"
        );
        assert!(text.contains("shoal_cooldown_remaining_seconds{"), "{text}");
    }

    #[test]
    fn pass_durations_accumulate_per_service_across_scrapes() {
        let m = Metrics::new();
        m.observe_pass("web", 0.004);
        m.observe_pass("web", 0.2);
        m.observe_pass("api", 30.0);
        let first = encode(&[], &[], 0, &m);
        for line in [
            "shoal_reconcile_pass_duration_seconds_count{service=\"web\"} 2",
            "shoal_reconcile_pass_duration_seconds_bucket{le=\"0.001\",service=\"web\"} 0",
            "shoal_reconcile_pass_duration_seconds_bucket{le=\"0.005\",service=\"web\"} 1",
            "shoal_reconcile_pass_duration_seconds_bucket{le=\"0.25\",service=\"web\"} 2",
            "shoal_reconcile_pass_duration_seconds_bucket{le=\"10.0\",service=\"api\"} 0",
            "shoal_reconcile_pass_duration_seconds_bucket{le=\"+Inf\",service=\"api\"} 1",
            "shoal_reconcile_pass_duration_seconds_sum{service=\"api\"} 30.0",
        ] {
            assert!(
                first.lines().any(|l| l == line),
                "missing line {line:?} in:\n{first}"
            );
        }
        m.observe_pass("web", 0.01);
        let second = encode(&[], &[], 0, &m);
        assert!(
            second.contains("shoal_reconcile_pass_duration_seconds_count{service=\"web\"} 3"),
            "{second}"
        );
    }
}
