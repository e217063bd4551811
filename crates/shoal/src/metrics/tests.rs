//! Unit tests of the metrics: encoding, names and labels, the history ring.

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
            state: "up",
            containers: 6,
            max_containers: 12,
            events: BTreeMap::from([("die".into(), 3), ("health_status".into(), 5)]),
        },
        ServerSample {
            name: "viassh".into(),
            up: false,
            state: "unreachable",
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
        "shoal_server_state{server=\"local\",state=\"up\"} 1",
        "shoal_server_state{server=\"viassh\",state=\"unreachable\"} 1",
        "shoal_server_state{server=\"viassh\",state=\"down\"} 0",
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
        concat!(
            "shoal_build_info{version=\"",
            env!("CARGO_PKG_VERSION"),
            "\"} 1"
        ),
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
