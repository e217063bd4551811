//! Encoding one scrape: samples and the persistent metrics into a fresh registry, as
//! OpenMetrics text.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::{Metrics, ServerSample, ServiceSample, PHASES};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ServiceLabel {
    pub(super) service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ScaleActionLabels {
    pub(super) service: String,
    pub(super) direction: String,
    pub(super) trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReplacementLabels {
    pub(super) service: String,
    pub(super) reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DecisionLabels {
    pub(super) service: String,
    pub(super) direction: String,
    pub(super) reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ServerLabel {
    pub(super) server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ServerStateLabels {
    pub(super) server: String,
    pub(super) state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ServerActionLabels {
    pub(super) server: String,
    pub(super) action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PhaseLabels {
    pub(super) service: String,
    pub(super) phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReplicaLabels {
    pub(super) service: String,
    pub(super) server: String,
    pub(super) replica: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ActionLabels {
    pub(super) service: String,
    pub(super) action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct VersionLabel {
    pub(super) version: String,
}

pub(super) fn service_label(name: &str) -> ServiceLabel {
    ServiceLabel {
        service: name.to_owned(),
    }
}

pub(super) fn round2(x: f64) -> f64 {
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
    let server_state = Family::<ServerStateLabels, Gauge>::default();
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
        for state in ["up", "unreachable", "down"] {
            server_state
                .get_or_create(&ServerStateLabels {
                    server: s.name.clone(),
                    state: state.to_owned(),
                })
                .set(i64::from(s.state == state));
        }
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
        "shoal_server_state",
        "1 for the server's state (up, unreachable: no control path but its replicas pass HAProxy's checks, down), 0 for the others",
        server_state,
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
        "CPU utilization the target policy aims at, and the adaptive one until it has learned (only for scale_policy target or adaptive)",
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
