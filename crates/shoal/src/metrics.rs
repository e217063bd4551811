//! Prometheus metrics through a `prometheus-client` registry.
//!
//! What describes the state (replicas, desired count, counters kept in the service state,
//! servers) is read from snapshots at each scrape into a fresh [`Registry`]; what is only
//! known as it happens (how long a reconcile pass took) is kept in [`Metrics`] and
//! registered into that registry too (a cloned `Family` shares its storage).
//!
//! Counters are registered without `_total`: the OpenMetrics encoder appends it, so the
//! exposed sample names are `shoal_scale_actions_total{...}` and so on.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

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

type PassHistograms = Family<ServiceLabel, Histogram, fn() -> Histogram>;

fn pass_histogram() -> Histogram {
    Histogram::new(PASS_BUCKETS)
}

/// Metrics observed as they happen, kept for the life of `serve`.
#[derive(Debug, Clone)]
pub struct Metrics {
    pass_duration: PassHistograms,
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
        }
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
}

fn service_label(name: &str) -> ServiceLabel {
    ServiceLabel {
        service: name.to_owned(),
    }
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
    for s in servers {
        let l = ServerLabel {
            server: s.name.clone(),
        };
        server_up.get_or_create(&l).set(i64::from(s.up));
        server_containers
            .get_or_create(&l)
            .set(i64::from(s.containers));
    }
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
    let cfg = app.config();
    let now = app.clock.now();
    let services: Vec<ServiceSample> = cfg
        .services
        .iter()
        .filter_map(|(name, svc)| {
            let st = app.service(name)?.snapshot();
            let count = |f: &dyn Fn(&crate::service::Replica) -> bool| {
                st.replicas.values().filter(|r| f(r)).count() as u64
            };
            Some(ServiceSample {
                name: name.clone(),
                ready: count(&|r| r.phase == Phase::Ready),
                running: count(&|r| r.container_state == crate::engine::ContainerState::Running),
                desired: st.desired,
                scale_actions: st.scale_actions.clone(),
                replacements: st.replacements.clone(),
                utilization: st.utilization.map(|u| (u * 100.0).round() / 100.0),
                memory_bytes: st.memory_bytes,
                decisions: st.decisions.clone(),
                window_open: crate::autoscale::window_state(&cfg, svc, now).is_none_or(|w| w.open),
                cooldown_remaining: crate::autoscale::cooldown_left(svc, st.last_action, now),
            })
        })
        .collect();
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
        }
    }

    fn servers() -> Vec<ServerSample> {
        vec![
            ServerSample {
                name: "local".into(),
                up: true,
                containers: 6,
            },
            ServerSample {
                name: "viassh".into(),
                up: false,
                containers: 0,
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
