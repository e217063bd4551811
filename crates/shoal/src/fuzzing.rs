//! Entry points of the fuzz targets (`fuzz/`, cargo-fuzz) and of the property tests that
//! run the same checks in the normal test suite. Not an API: each function takes raw input
//! and panics when shoal does something it must never do with it.
//!
//! - [`config_input`]: a config file's bytes through the loader. A panic anywhere is a
//!   finding; so is a config that validation accepts but a consumer then refuses (the
//!   renderer, the runtime-API client, the container spec, the business-hours window, the
//!   API listen address, the policy parameters): validation at load time must be complete.
//! - [`runtime_answer`]: bytes as an answer of HAProxy's runtime API, through every parser
//!   of those answers. A panic is a finding; every bad answer must be an error.

use std::collections::BTreeMap;

use crate::config::{syntax, Config};

/// Feeds `data` to the config loader as a file's content (see the module docs).
///
/// # Panics
/// When loading panics, or when a config that loaded is refused by a consumer.
pub fn config_input(data: &[u8]) {
    let text = match crate::config::decode_text(data.to_vec()) {
        Ok(t) => t,
        Err(issue) => {
            assert!(
                issue.line > 0,
                "invalid UTF-8 without a position: {issue:?}"
            );
            return;
        }
    };
    match Config::parse(&text, "fuzz.yaml") {
        Ok(config) => consumers_accept(&config),
        Err(e) => assert!(!e.issues.is_empty(), "a refusal without an issue"),
    }
}

/// Every consumer of a validated config accepts it.
///
/// # Panics
/// When one refuses it, naming which and why.
pub fn consumers_accept(config: &Config) {
    let refused = |what: &str, why: &dyn std::fmt::Display| {
        panic!("validation accepted a config that {what} refuses: {why}")
    };
    if let Err(e) = crate::lb::render(config, &BTreeMap::new(), None) {
        refused("the haproxy.cfg renderer", &e);
    }
    if let Err(e) = crate::lb::HaproxyClient::from_config(&config.load_balancer) {
        refused("the runtime-API client", &e);
    }
    if let Err(e) = config.autoscaler.business_hours.window() {
        refused("the business-hours window", &e);
    }
    if let Err(e) = syntax::listen_addr(&config.api.bind) {
        refused("the API listener", &e);
    }
    for s in &config.servers {
        let _ = s.endpoint();
        if let Err(e) = crate::lb::validate_host(&s.host) {
            refused("HAProxy (as a replica host)", &e);
        }
    }
    for (name, svc) in &config.services {
        for n in [
            crate::lb::backend_name(name),
            crate::lb::frontend_name(name),
        ] {
            if let Err(e) = crate::lb::validate_name("proxy name", &n) {
                refused("HAProxy", &e);
            }
        }
        let spec = crate::engine::ContainerSpec::from_service(svc);
        if spec.nano_cpus.is_some_and(|n| n <= 0) || spec.memory.is_some_and(|m| m <= 0) {
            refused(
                "Docker (limits)",
                &format!("{:?} {:?}", spec.nano_cpus, spec.memory),
            );
        }
        if i32::try_from(spec.stop_timeout).is_err() {
            refused("Docker (stop timeout)", &spec.stop_timeout);
        }
        let p = crate::policy::PolicyConfig::from_service(svc, config.autoscaler.dry_run);
        if p.min > p.max || p.max == 0 {
            refused("the policy (bounds)", &format!("{}..{}", p.min, p.max));
        }
        // Durations read through the accessors never overflow instant arithmetic.
        let now = std::time::Instant::now();
        for d in [
            svc.cooldown_period(),
            svc.stop_timeout(),
            svc.scale_down_stabilization(),
            svc.health_check.interval(),
            svc.health_check.timeout(),
            svc.health_check.start_period(),
        ] {
            if now.checked_add(d).is_none() || jiff::SignedDuration::try_from(d).is_err() {
                refused("time arithmetic", &format!("{d:?}"));
            }
        }
    }
}

/// Feeds `data` as an answer of the runtime API to every parser of answers.
///
/// # Panics
/// When a parser panics, or parses servers out of an answer without its header.
pub fn runtime_answer(data: &[u8]) {
    // The client reads answers as this (lossy) text.
    let text = String::from_utf8_lossy(data);
    if let Ok(states) = crate::lb::parse_servers_state(&text) {
        for s in &states {
            let _ = (s.in_rotation(), s.status_word(), s.check_passing(2));
        }
    }
    if let Ok(rows) = crate::lb::parse_stats(&text) {
        assert!(
            text.lines().any(|l| l.starts_with("# ")),
            "rows parsed without a header"
        );
        let _ = rows.len();
    }
    let _ = crate::lb::answer_looks_failed(&text);
}

#[cfg(test)]
mod tests {
    //! The fuzz targets' checks as property tests, so the normal suite runs them on stable:
    //! the corpus files as they are, then generated inputs. `SHOAL_FUZZ_CASES` sets the
    //! number of generated cases per property (default 2048; see BENCHMARKS.md for a long
    //! run).
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;

    fn cases() -> u32 {
        std::env::var("SHOAL_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2048)
    }

    fn repo(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    fn files(dirs: &[&str]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for d in dirs {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(repo(d))
                .unwrap_or_else(|e| panic!("{d}: {e}"))
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect();
            paths.sort();
            out.extend(paths.iter().map(|p| std::fs::read(p).unwrap()));
        }
        out
    }

    fn config_seeds() -> &'static [Vec<u8>] {
        static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        SEEDS.get_or_init(|| {
            let seeds = files(&["fuzz/corpus/config", "tests/fixtures/hostile"]);
            assert!(seeds.len() > 150, "{} seeds", seeds.len());
            seeds
        })
    }

    fn answer_seeds() -> &'static [Vec<u8>] {
        static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        SEEDS.get_or_init(|| files(&["fuzz/corpus/runtime_answer"]))
    }

    #[test]
    fn every_corpus_file_goes_through_both_targets() {
        for f in config_seeds() {
            config_input(f);
            runtime_answer(f);
        }
        for f in answer_seeds() {
            runtime_answer(f);
            config_input(f);
        }
    }

    /// A valid config with one line per section that a case replaces (`{slot}`), and the
    /// values a case may replace instead (`{host}`, `{name}`, `{service}`, `{image}`, `{port}`).
    const BASE: &str = "load_balancer:\n  {lb}\nservers:\n  - host: {host}\n    name: {name}\n    {server}\nservices:\n  {service}:\n    image: {image}\n    port: {port}\n    {svc}\n    health_check:\n      {hc}\nautoscaler:\n  {auto}\n  business_hours:\n    {bh}\napi:\n  {api}\nssh:\n  {ssh}\n";

    /// Each slot's line when the case is about another key.
    const FILLERS: &[(&str, &str)] = &[
        ("{lb}", "https_enabled: false"),
        ("{host}", "10.0.0.1"),
        ("{name}", "s1"),
        ("{server}", "role: worker"),
        ("{service}", "web"),
        ("{image}", "img:1"),
        ("{port}", "8080"),
        ("{svc}", "business_hours_only: false"),
        ("{hc}", "path: /"),
        ("{auto}", "dry_run: false"),
        ("{bh}", "start: \"09:00\""),
        ("{api}", "allow_unauthenticated: false"),
        ("{ssh}", "known_hosts: /k"),
    ];

    /// (slot, key, how the value is written: `{}` or `[{}]` for lists). A key that is a
    /// slot of its own (`{host}`) replaces that value.
    const KEYS: &[(&str, &str, &str)] = &[
        ("{lb}", "stats_port", "{}"),
        ("{lb}", "runtime_api", "{}"),
        ("{lb}", "bind_address", "{}"),
        ("{lb}", "drain_timeout", "{}"),
        ("{lb}", "timeout", "{}"),
        ("{lb}", "config_file", "{}"),
        ("{host}", "", "{}"),
        ("{name}", "", "{}"),
        ("{server}", "docker_host", "{}"),
        ("{server}", "docker_socket", "{}"),
        ("{server}", "ssh_user", "{}"),
        ("{server}", "ssh_key", "{}"),
        ("{server}", "ssh_port", "{}"),
        ("{server}", "max_containers", "{}"),
        ("{service}", "", "{}"),
        ("{image}", "", "{}"),
        ("{port}", "", "{}"),
        ("{svc}", "container_port", "{}"),
        ("{svc}", "min_replicas", "{}"),
        ("{svc}", "max_replicas", "{}"),
        ("{svc}", "off_hours_replicas", "{}"),
        ("{svc}", "scale_up_threshold", "{}"),
        ("{svc}", "scale_down_threshold", "{}"),
        ("{svc}", "cooldown_period", "{}"),
        ("{svc}", "stop_timeout", "{}"),
        ("{svc}", "cpus", "{}"),
        ("{svc}", "memory", "{}"),
        ("{svc}", "restart_policy", "{}"),
        ("{svc}", "scale_policy", "{}"),
        ("{svc}", "target_utilization", "{}"),
        ("{svc}", "target_tolerance", "{}"),
        ("{svc}", "scale_down_stabilization", "{}"),
        ("{svc}", "max_scale_step", "{}"),
        ("{svc}", "target_sessions_per_replica", "{}"),
        ("{svc}", "environment", "[{}]"),
        ("{svc}", "volumes", "[{}]"),
        ("{svc}", "command", "[{}]"),
        ("{hc}", "path", "{}"),
        ("{hc}", "interval", "{}"),
        ("{hc}", "timeout", "{}"),
        ("{hc}", "unhealthy_threshold", "{}"),
        ("{hc}", "start_period", "{}"),
        ("{auto}", "check_interval", "{}"),
        ("{auto}", "log_level", "{}"),
        ("{auto}", "state_file", "{}"),
        ("{bh}", "end", "{}"),
        ("{bh}", "timezone", "{}"),
        ("{bh}", "days", "[{}]"),
        ("{api}", "bind", "{}"),
        ("{api}", "token", "{}"),
        ("{api}", "header_read_timeout", "{}"),
        ("{api}", "request_timeout", "{}"),
        ("{api}", "max_connections", "{}"),
        ("{api}", "max_body_bytes", "{}"),
        ("{ssh}", "connect_timeout", "{}"),
    ];

    /// The base config with `key` (in `slot`) set to `value`.
    fn with_value(slot: &str, key: &str, wrap: &str, value: &str) -> String {
        let written = wrap.replace("{}", value);
        let line = if key.is_empty() {
            written
        } else {
            format!("{key}: {written}")
        };
        let mut text = BASE.to_owned();
        for (s, filler) in FILLERS {
            text = text.replace(s, if *s == slot { &line } else { filler });
        }
        text
    }

    #[test]
    fn the_base_config_and_its_fillers_are_valid() {
        let text = with_value("{lb}", "stats_port", "{}", "8404");
        Config::parse(&text, "base.yaml").unwrap();
        for (slot, key, wrap) in KEYS {
            assert!(FILLERS.iter().any(|(s, _)| s == slot), "{slot}");
            let _ = with_value(slot, key, wrap, "1");
        }
    }

    /// Values a user (or an attacker) might write: edge numbers, near-valid strings, any
    /// text with control characters, written as YAML (a JSON string is a YAML scalar).
    fn value() -> impl Strategy<Value = String> {
        let near_valid = prop::sample::select(vec![
            "127.0.0.1",
            "0.0.0.0",
            "::1",
            "[::]",
            "localhost",
            "*",
            "a b",
            "-x",
            "9:00",
            "+9:00",
            "24:00",
            "23:59",
            "UTC",
            "Europe/Berlin",
            "mon-fri",
            "threshold",
            "target",
            "unix:/run/h.sock",
            "unix:",
            "/run/h.sock",
            "127.0.0.1:9999",
            "0.0.0.0:9999",
            "[::1]:1",
            "tcp://10.0.0.2:2375",
            "unix:///var/run/docker.sock",
            "img:1",
            "Img",
            "a@sha256:00",
            "/health",
            "/a#b",
            "512m",
            "5m",
            "1e3g",
            "0123456789abcdef",
            "A=1",
            "/a:/b:ro",
            "no",
            "always",
            "INFO",
        ]);
        // A near-valid value with one hostile character put in somewhere: what slips past a
        // check that looks only at the start, the end or the type of a value.
        let hostile = prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '\0', '#', '\'', '"', ';', '\\', '/', ':', '@', '%', '$', '`',
            '|', '&', '*', '?', '[', ']', '{', '}', '=', ',', '-', '.', '+', '\u{7f}', '\u{85}',
            '\u{a0}', '\u{2028}', '\u{feff}', 'é', 'A',
        ]);
        let injected =
            (near_valid.clone(), hostile, any::<prop::sample::Index>()).prop_map(|(s, c, at)| {
                let mut chars: Vec<char> = s.chars().collect();
                let i = at.index(chars.len() + 1);
                chars.insert(i, c);
                serde_json::to_string(&chars.into_iter().collect::<String>()).unwrap()
            });
        let near_valid = near_valid.prop_map(|s| serde_json::to_string(s).unwrap());
        prop_oneof![
            4 => injected,
            2 => near_valid,
            1 => any::<u64>().prop_map(|n| n.to_string()),
            1 => any::<i64>().prop_map(|n| n.to_string()),
            1 => prop::sample::select(vec![0u64, 1, 2, 59, 60, 65535, 65536, 86400, 86401, 2_592_000, 2_592_001, 4_294_967_295, 4_294_967_296, i64::MAX as u64, u64::MAX]).prop_map(|n| n.to_string()),
            1 => any::<f64>().prop_map(|f| format!("{f:e}")),
            1 => prop::sample::select(vec![".nan", ".inf", "-.inf", "1e400", "-0", "0.009", "1e-300"]).prop_map(str::to_owned),
            1 => ".{0,40}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            1 => prop::collection::vec(any::<char>(), 0..20)
                .prop_map(|c| serde_json::to_string(&c.into_iter().collect::<String>()).unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn one_hostile_value_in_a_valid_config(
            k in prop::sample::select(KEYS.to_vec()),
            v in value(),
        ) {
            let (slot, key, wrap) = k;
            config_input(with_value(slot, key, wrap, &v).as_bytes());
        }

        #[test]
        fn corpus_files_with_a_span_replaced(
            i in any::<prop::sample::Index>(),
            start in any::<prop::sample::Index>(),
            len in 0usize..64,
            with in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let seeds = config_seeds();
            let mut f = i.get(seeds).clone();
            let s = start.index(f.len() + 1);
            let e = (s + len).min(f.len());
            f.splice(s..e, with);
            config_input(&f);
        }

        #[test]
        fn arbitrary_bytes_as_a_config(data in prop::collection::vec(any::<u8>(), 0..512)) {
            config_input(&data);
        }

        #[test]
        fn runtime_answers_with_a_span_replaced(
            i in any::<prop::sample::Index>(),
            start in any::<prop::sample::Index>(),
            len in 0usize..64,
            with in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let seeds = answer_seeds();
            let mut f = i.get(seeds).clone();
            let s = start.index(f.len() + 1);
            let e = (s + len).min(f.len());
            f.splice(s..e, with);
            runtime_answer(&f);
        }

        #[test]
        fn arbitrary_lines_as_a_runtime_answer(
            lines in prop::collection::vec("[ -~]{0,80}", 0..8),
        ) {
            let mut text = String::from("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port\n");
            text.push_str(&lines.join("\n"));
            runtime_answer(text.as_bytes());
        }

        #[test]
        fn a_well_formed_servers_state_parses_back(
            rows in prop::collection::vec(
                ("[a-z][a-z0-9_-]{0,20}", 0u32..4, any::<u32>(), 0u32..5, any::<u16>(), any::<u32>()),
                0..6,
            ),
        ) {
            let mut text = String::from("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n");
            for (i, (name, op, admin, res, port, since)) in rows.iter().enumerate() {
                text.push_str(&format!(
                    "3 web_backend {} {name} 10.0.0.{} {op} {admin} 1 1 {since} 15 {res} 2 6 0 0 0 - {port} -\n",
                    i + 1,
                    i % 250
                ));
            }
            let parsed = crate::lb::parse_servers_state(&text).unwrap();
            prop_assert_eq!(parsed.len(), rows.len());
            for (p, (name, _, admin, _, port, since)) in parsed.iter().zip(&rows) {
                prop_assert_eq!(&p.name, name);
                prop_assert_eq!(p.port, *port);
                prop_assert_eq!(p.admin.0, *admin);
                prop_assert_eq!(p.since_last_change.as_secs(), u64::from(*since));
            }
        }
    }
}
