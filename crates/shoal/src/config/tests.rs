//! Unit tests of loading and validating configs.

use super::error::edit_distance;
use super::*;
use std::time::Duration;

pub(crate) const SEED: &str = include_str!("../../../../tests/fixtures/seed-config.yaml");

fn errors(yaml: &str) -> Vec<ConfigIssue> {
    Config::parse(yaml, "t.yaml").unwrap_err().issues
}

fn with_service(extra: &str) -> String {
    format!(
        "servers:\n  - host: 127.0.0.1\n    name: local\n    docker_host: unix:///var/run/docker.sock\nservices:\n  web:\n    image: img\n    port: 8080\n{extra}"
    )
}

#[test]
fn seed_config_loads_unchanged() {
    let c = Config::parse(SEED, "seed.yaml").expect("seed config must load");
    assert_eq!(c.servers.len(), 4);
    assert_eq!(*c.servers[0].name, "server1");
    assert_eq!(c.servers[0].role.as_deref(), Some("control"));
    let o = &c.services["ollama"];
    assert_eq!(*o.image, "ollama/ollama:latest");
    assert_eq!((*o.min_replicas, *o.max_replicas), (1, 8));
    assert_eq!(
        (*o.scale_up_threshold, *o.scale_down_threshold),
        (75.0, 25.0)
    );
    assert_eq!(*o.health_check.path, "/api/tags");
    assert_eq!(o.environment[0].value, "OLLAMA_HOST=0.0.0.0");
    assert_eq!(*c.autoscaler.check_interval, 30);
    assert_eq!(*c.autoscaler.business_hours.timezone, "UTC");
    assert!(
        matches!(c.servers[1].endpoint(), DockerEndpoint::Ssh { ref host, .. } if host == "192.168.1.11")
    );
}

#[test]
fn unknown_key_suggests_the_closest() {
    let e = errors(&with_service("    scale_up_treshold: 80\n"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].message.contains("did you mean `scale_up_threshold`"),
        "{e:?}"
    );
    assert_eq!((e[0].line, e[0].column), (9, 5), "{e:?}");
}

#[test]
fn wrong_type_names_position() {
    let e = errors(&with_service("    min_replicas: lots\n"));
    assert_eq!(e[0].line, 9, "{e:?}");
    assert!(e[0].message.contains("whole number"), "{e:?}");
}

#[test]
fn thresholds_must_be_ordered() {
    let e = errors(&with_service(
        "    scale_up_threshold: 30\n    scale_down_threshold: 40\n",
    ));
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, e[0].column), (10, 27));
    assert!(e[0]
        .message
        .contains("must be lower than scale_up_threshold"));
}

#[test]
fn min_above_max_is_refused() {
    let e = errors(&with_service("    min_replicas: 5\n    max_replicas: 2\n"));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, 9);
    assert!(e[0].message.contains("greater than max_replicas"));
}

#[test]
fn bad_timezone_and_time_are_refused() {
    let mut y = with_service("");
    y.push_str("autoscaler:\n  business_hours:\n    start: \"25:00\"\n    end: \"17:00\"\n    timezone: Mars/Olympus\n");
    let e = errors(&y);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].message.contains("25:00"));
    assert_eq!(e[0].line, 11);
    assert!(e[1].message.contains("Mars/Olympus"));
    assert_eq!(e[1].line, 13);
}

#[test]
fn duplicate_server_names_are_refused() {
    let y = "servers:\n  - host: a\n    name: s1\n  - host: b\n    name: s1\nservices: {}\n";
    let e = errors(y);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, e[0].column), (5, 11));
    assert!(e[0].message.contains("duplicate server name"));
}

#[test]
fn ports_out_of_range_are_refused() {
    let y = with_service("").replace("port: 8080", "port: 70000");
    let e = errors(&y);
    assert_eq!(e[0].line, 8);
    assert!(e[0].message.contains("out of range"), "{e:?}");
    let y = with_service("").replace("port: 8080", "port: 0");
    assert!(errors(&y)[0].message.contains("out of range"));
}

#[test]
fn missing_image_is_refused() {
    let y = with_service("").replace("    image: img\n", "");
    let e = errors(&y);
    assert!(e[0].message.contains("image"), "{e:?}");
    assert!(e[0].line > 0);
}

#[test]
fn docker_host_scheme_is_checked() {
    let y = with_service("").replace("unix:///var/run/docker.sock", "http://x");
    let e = errors(&y);
    assert!(e[0].message.contains("docker_host"), "{e:?}");
    assert_eq!(e[0].line, 4);
}

#[test]
fn several_problems_are_all_reported() {
    let e = errors(&with_service(
        "    min_replicas: 9\n    max_replicas: 2\n    volumes:\n      - nocolon\n",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
}

#[test]
fn display_is_file_line_column() {
    let err = Config::parse(
        &with_service("    min_replicas: 5\n    max_replicas: 2\n"),
        "c.yaml",
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("c.yaml:9:19: error: "), "{err}");
}

#[test]
fn autoscaling_additions_are_validated() {
    let e = errors(&with_service(
        "    max_replicas: 2\n    off_hours_replicas: 3\n    scale_policy: magic\n    target_tolerance: 1.5\n",
    ));
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].message.contains("off_hours_replicas (3)"));
    assert!(e[1].message.contains("threshold, target or adaptive"));
    assert!(e[2].message.contains("target_tolerance"));
    let e = errors(&with_service(
        "    adaptive_target_utilization: 120
    max_scale_down_step: 0
",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].message
            .contains("adaptive_target_utilization must be a number in (0, 100]"),
        "{e:?}"
    );
    assert!(
        e[1].message
            .contains("max_scale_down_step must be at least 1"),
        "{e:?}"
    );
    assert!(e[0].line > 0 && e[1].line > e[0].line, "{e:?}");
    let mut y = with_service("");
    y.push_str("autoscaler:\n  business_hours:\n    days: [mon-fry]\n");
    let e = errors(&y);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].message.contains("fry"), "{e:?}");
    assert_eq!(e[0].line, 11);
}

#[test]
fn min_replicas_zero_is_refused_and_odd_retention_does_not_crash() {
    let e = errors(&with_service("    min_replicas: 0\n"));
    assert!(e[0].message.contains("at least 1"), "{e:?}");
    let mut y = with_service("");
    y.push_str("monitoring:\n  prometheus:\n    retention: \"7д\"\n");
    assert!(errors(&y)[0].message.contains("retention"));
}

#[test]
fn off_hours_defaults_to_min() {
    let c = Config::parse(
        &with_service("    min_replicas: 2\n    max_replicas: 4\n"),
        "t",
    )
    .unwrap();
    assert_eq!(c.services["web"].off_hours_replicas(), 2);
    let c = Config::parse(&with_service("    off_hours_replicas: 0\n"), "t").unwrap();
    assert_eq!(c.services["web"].off_hours_replicas(), 0);
}

#[test]
fn memory_sizes_parse() {
    assert_eq!(parse_memory("512m"), Ok(512 << 20));
    assert_eq!(parse_memory("2g"), Ok(2 << 30));
    assert_eq!(parse_memory("2GB"), Ok(2 << 30));
    assert!(parse_memory("1k").is_err());
    assert!(parse_memory("lots").is_err());
}

#[test]
fn hhmm_parses() {
    assert_eq!(parse_hhmm("09:00"), Ok((9, 0)));
    assert_eq!(parse_hhmm("9:05"), Ok((9, 5)));
    assert!(parse_hhmm("24:00").is_err());
    assert!(parse_hhmm("12:60").is_err());
    assert!(parse_hhmm("noon").is_err());
}

#[test]
fn edit_distance_works() {
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "ab"), 2);
}

#[test]
fn seed_durations_read_through_the_accessors() {
    let c = Config::parse(SEED, "seed.yaml").expect("seed config must load");
    let o = &c.services["ollama"];
    assert_eq!(o.health_check.interval(), Duration::from_secs(10));
    assert_eq!(o.health_check.timeout(), Duration::from_secs(5));
    assert_eq!(o.health_check.start_period(), Duration::from_secs(60));
    assert_eq!(o.cooldown_period(), Duration::from_secs(60));
    assert_eq!(o.stop_timeout(), Duration::from_secs(10));
    assert_eq!(o.scale_down_stabilization(), Duration::from_secs(300));
    assert_eq!(c.load_balancer.timeout(), Duration::from_secs(5));
    assert_eq!(c.load_balancer.drain_timeout(), Duration::from_secs(30));
    assert_eq!(c.check_interval(), Duration::from_secs(30));
    assert_eq!(c.autoscaler.check_interval(), Duration::from_secs(30));
}

#[test]
fn a_duration_above_its_limit_is_refused_with_key_limit_and_position() {
    let yaml = with_service("    health_check:\n      interval: 86401\n");
    let err = Config::parse(&yaml, "t.yaml").unwrap_err();
    assert_eq!(err.issues.len(), 1, "{err}");
    assert_eq!(
        (err.issues[0].line, err.issues[0].column),
        (10, 17),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(
            "t.yaml:10:17: error: services.web.health_check.interval 86401 is above the \
             limit of 86400 seconds (one day;"
        ),
        "{text}"
    );
}

#[test]
fn the_largest_u64_cooldown_is_refused_not_wrapped() {
    let e = errors(&with_service("    cooldown_period: 18446744073709551615\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].line, e[0].column), (9, 22), "{e:?}");
    assert!(
        e[0].message.starts_with(
            "services.web.cooldown_period 18446744073709551615 is above the limit of \
             2592000 seconds (30 days;"
        ),
        "{e:?}"
    );
}

#[test]
fn every_duration_key_is_bounded() {
    let mut y = with_service(
        "    cooldown_period: 2592001\n    stop_timeout: 86401\n    scale_down_stabilization: 86401\n    health_check:\n      interval: 86401\n      timeout: 86401\n      start_period: 86401\n",
    );
    y.push_str("load_balancer:\n  timeout: 86401\n  drain_timeout: 86401\nautoscaler:\n  check_interval: 86401\n");
    let e = errors(&y);
    let keys: Vec<&str> = e
        .iter()
        .map(|i| i.message.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "services.web.cooldown_period",
            "services.web.stop_timeout",
            "services.web.scale_down_stabilization",
            "services.web.health_check.interval",
            "services.web.health_check.timeout",
            "services.web.health_check.start_period",
            "load_balancer.timeout",
            "load_balancer.drain_timeout",
            "autoscaler.check_interval",
        ],
        "{e:?}"
    );
    assert!(e.iter().all(|i| i.line > 0 && i.column > 0), "{e:?}");
}

#[test]
fn durations_at_their_limits_load() {
    let mut y = with_service(
        "    cooldown_period: 2592000\n    stop_timeout: 86400\n    scale_down_stabilization: 86400\n    health_check:\n      interval: 86400\n      timeout: 86400\n      start_period: 86400\n",
    );
    y.push_str("load_balancer:\n  timeout: 86400\n  drain_timeout: 86400\nautoscaler:\n  check_interval: 86400\n");
    let c = Config::parse(&y, "t").unwrap();
    let day = Duration::from_secs(MAX_WAIT_SECS);
    let svc = &c.services["web"];
    assert_eq!(svc.cooldown_period(), Duration::from_secs(MAX_HOLD_SECS));
    assert_eq!(
        svc.scale_down_stabilization(),
        Duration::from_secs(MAX_STABILIZATION_SECS)
    );
    assert_eq!(
        [
            svc.stop_timeout(),
            svc.health_check.interval(),
            svc.health_check.timeout(),
            svc.health_check.start_period(),
            c.load_balancer.timeout(),
            c.load_balancer.drain_timeout(),
            c.check_interval(),
        ],
        [day; 7]
    );
}

#[test]
fn accessors_clamp_a_config_that_was_not_validated() {
    let mut c = Config::parse(SEED, "seed.yaml").unwrap();
    let svc = c.services.get_mut("ollama").unwrap();
    svc.cooldown_period.value = u64::MAX;
    svc.health_check.interval.value = u64::MAX;
    assert_eq!(svc.cooldown_period(), Duration::from_secs(MAX_HOLD_SECS));
    assert_eq!(
        svc.health_check.interval(),
        Duration::from_secs(MAX_WAIT_SECS)
    );
    assert_eq!(c.validate().len(), 2);
}
