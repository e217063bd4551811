//! Semantic checks serde cannot make, each naming the key and its position, and the small
//! value parsers they use.

use std::collections::BTreeMap;

use std::path::PathBuf;

use super::durations::{Limit, HOLD, STABILIZATION, WAIT};
use super::limits::{self, Range};
use super::syntax;
use super::{Config, ConfigIssue, Located};

impl Config {
    /// Semantic checks serde cannot make. Returns every problem found.
    #[must_use]
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut v = Validator::default();
        let lb = &self.load_balancer;
        v.port(&lb.stats_port, "load_balancer.stats_port");
        v.seconds(&lb.drain_timeout, "load_balancer.drain_timeout", 1, WAIT);
        v.seconds(&lb.timeout, "load_balancer.timeout", 1, WAIT);
        v.runtime_api(&lb.runtime_api, lb.allow_remote_runtime_api);
        v.syntax(
            &lb.bind_address,
            "load_balancer.bind_address",
            syntax::bind_address,
        );
        if let Some(f) = &lb.config_file {
            v.path(f, "load_balancer.config_file");
        }

        v.seconds(&self.ssh.connect_timeout, "ssh.connect_timeout", 1, WAIT);
        v.path(&self.ssh.known_hosts, "ssh.known_hosts");

        if self.servers.is_empty() {
            v.push(0, 0, "servers: at least one server is required".into());
        }
        if self.servers.len() > limits::MAX_SERVERS {
            v.push(
                0,
                0,
                format!(
                    "servers: {} servers is more than the limit of {}",
                    self.servers.len(),
                    limits::MAX_SERVERS
                ),
            );
        }
        let mut names = BTreeMap::new();
        for (i, s) in self.servers.iter().enumerate() {
            let key = format!("servers[{i}]");
            if !valid_name(&s.name) {
                v.at(
                    &s.name,
                    format!(
                        "{key}.name {:?} must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
                        s.name.value
                    ),
                );
            }
            if let Some(first) = names.insert(s.name.value.clone(), s.name.line) {
                v.at(
                    &s.name,
                    format!(
                        "duplicate server name {:?} (first defined on line {first})",
                        s.name.value
                    ),
                );
            }
            v.syntax(&s.host, &format!("{key}.host"), syntax::host);
            if let Some(p) = &s.ssh_port {
                v.port(p, &format!("{key}.ssh_port"));
            }
            if let Some(u) = &s.ssh_user {
                v.syntax(u, &format!("{key}.ssh_user"), syntax::ssh_user);
            }
            if let Some(k) = &s.ssh_key {
                v.path(k, &format!("{key}.ssh_key"));
            }
            v.count(
                &s.max_containers,
                &format!("{key}.max_containers"),
                limits::CONTAINERS_PER_SERVER,
            );
            if let Some(sock) = &s.docker_socket {
                if !sock.starts_with('/')
                    || sock.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    v.at(
                        sock,
                        format!(
                            "{key}.docker_socket {:?} must be an absolute path without spaces",
                            sock.value
                        ),
                    );
                }
            }
            v.docker_tls(s, &key);
            if let Some(h) = &s.docker_host {
                v.syntax(h, &format!("{key}.docker_host"), syntax::docker_host);
            }
        }

        // Every port HAProxy listens on, with the key and position that claimed it.
        let mut ports: BTreeMap<u32, (String, Located<()>)> = BTreeMap::new();
        let at = |l: &Located<u32>| Located {
            value: (),
            line: l.line,
            column: l.column,
        };
        ports.insert(
            *lb.stats_port,
            ("load_balancer.stats_port".into(), at(&lb.stats_port)),
        );
        if let Ok(syntax::RuntimeApi::Tcp { port, .. }) = syntax::runtime_api(&lb.runtime_api) {
            let pos = Located {
                value: (),
                line: lb.runtime_api.line,
                column: lb.runtime_api.column,
            };
            ports
                .entry(u32::from(port))
                .or_insert(("load_balancer.runtime_api".into(), pos));
        }
        for (name, svc) in &self.services {
            let key = format!("services.{name}");
            if !valid_name(name) {
                v.at(
                    &svc.name_at,
                    format!(
                        "service name {name:?} must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
                    ),
                );
            }
            v.syntax(&svc.image, &format!("{key}.image"), syntax::image_reference);
            if v.port(&svc.port, &format!("{key}.port")) {
                let this = (format!("{key}.port"), at(&svc.port));
                if let Some(other) = ports.insert(*svc.port, this.clone()) {
                    // Report the later of the two in the file, naming the earlier.
                    let (first, second) =
                        if (other.1.line, other.1.column) <= (this.1.line, this.1.column) {
                            (other, this)
                        } else {
                            (this, other)
                        };
                    v.at(
                        &second.1,
                        format!(
                            "{} {} is already used by {}{}",
                            second.0,
                            *svc.port,
                            first.0,
                            if first.1.line > 0 {
                                format!(" (line {})", first.1.line)
                            } else {
                                String::new()
                            }
                        ),
                    );
                }
            }
            if let Some(p) = &svc.container_port {
                v.port(p, &format!("{key}.container_port"));
            }
            v.count(
                &svc.max_replicas,
                &format!("{key}.max_replicas"),
                limits::REPLICAS,
            );
            if *svc.min_replicas > limits::REPLICAS.max {
                v.count(
                    &svc.min_replicas,
                    &format!("{key}.min_replicas"),
                    limits::REPLICAS,
                );
            } else if *svc.min_replicas == 0 {
                v.at(
                    &svc.min_replicas,
                    format!(
                        "{key}.min_replicas must be at least 1: with no replica there is no CPU to \
                         measure, so nothing would scale it up again (off_hours_replicas: 0 stops \
                         a service outside business hours)"
                    ),
                );
            }
            if *svc.max_replicas == 0 {
                v.at(
                    &svc.max_replicas,
                    format!("{key}.max_replicas must be at least 1"),
                );
            }
            if *svc.min_replicas > *svc.max_replicas {
                v.at(
                    &svc.min_replicas,
                    format!(
                        "{key}.min_replicas ({}) is greater than max_replicas ({})",
                        *svc.min_replicas, *svc.max_replicas
                    ),
                );
            }
            for (t, n) in [
                (&svc.scale_up_threshold, "scale_up_threshold"),
                (&svc.scale_down_threshold, "scale_down_threshold"),
            ] {
                if !(t.is_finite() && **t >= 0.0 && **t <= limits::MAX_PERCENT) {
                    v.at(
                        t,
                        format!(
                            "{key}.{n} must be a number from 0 to {} (percent)",
                            limits::MAX_PERCENT
                        ),
                    );
                }
            }
            if *svc.scale_down_threshold >= *svc.scale_up_threshold {
                v.at(
                    &svc.scale_down_threshold,
                    format!(
                        "{key}.scale_down_threshold ({}) must be lower than scale_up_threshold ({})",
                        *svc.scale_down_threshold, *svc.scale_up_threshold
                    ),
                );
            }
            let hc = &svc.health_check;
            v.syntax(
                &hc.path,
                &format!("{key}.health_check.path"),
                syntax::http_path,
            );
            v.seconds(
                &hc.interval,
                &format!("{key}.health_check.interval"),
                1,
                WAIT,
            );
            v.seconds(&hc.timeout, &format!("{key}.health_check.timeout"), 1, WAIT);
            v.seconds(
                &hc.start_period,
                &format!("{key}.health_check.start_period"),
                0,
                WAIT,
            );
            v.count(
                &hc.unhealthy_threshold,
                &format!("{key}.health_check.unhealthy_threshold"),
                limits::CHECK_THRESHOLD,
            );
            for vol in &svc.volumes {
                let parts: Vec<&str> = vol.split(':').collect();
                let ok = match parts.as_slice() {
                    [src, dst] => !src.is_empty() && dst.starts_with('/'),
                    [src, dst, mode] => {
                        !src.is_empty()
                            && dst.starts_with('/')
                            && mode.split(',').all(|m| {
                                matches!(m, "ro" | "rw" | "z" | "Z" | "cached" | "delegated")
                            })
                    }
                    _ => false,
                };
                if !ok || vol.chars().any(char::is_control) {
                    v.at(
                        vol,
                        format!(
                            "{key}.volumes entry {:?} must be SOURCE:/container/path[:ro|:rw]",
                            vol.value
                        ),
                    );
                }
            }
            for env in &svc.environment {
                match env.split_once('=') {
                    Some((k, val))
                        if !k.is_empty()
                            && !k.contains(|c: char| c.is_whitespace() || c.is_control())
                            && !val.contains('\0') => {}
                    _ => v.at(
                        env,
                        format!("{key}.environment entry {:?} must be KEY=VALUE", env.value),
                    ),
                }
            }
            if !matches!(
                svc.restart_policy.as_str(),
                "no" | "on-failure" | "always" | "unless-stopped"
            ) {
                v.at(
                    &svc.restart_policy,
                    format!(
                        "{key}.restart_policy {:?} must be one of no, on-failure, always, unless-stopped",
                        svc.restart_policy.value
                    ),
                );
            }
            if let Some(c) = &svc.cpus {
                if !(c.is_finite() && (limits::MIN_CPUS..=limits::MAX_CPUS).contains(&**c)) {
                    v.at(
                        c,
                        format!(
                            "{key}.cpus must be a number of cores from {} to {} (Docker's smallest \
                             limit is 0.01)",
                            limits::MIN_CPUS,
                            limits::MAX_CPUS
                        ),
                    );
                }
            }
            if let Some(m) = &svc.memory {
                if let Err(e) = parse_memory(m) {
                    v.at(m, format!("{key}.memory: {e}"));
                }
            }
            if let Some(o) = &svc.off_hours_replicas {
                if o.value > *svc.max_replicas {
                    v.at(
                        o,
                        format!(
                            "{key}.off_hours_replicas ({}) is greater than max_replicas ({})",
                            o.value, *svc.max_replicas
                        ),
                    );
                }
            }
            if !matches!(
                svc.scale_policy.as_str(),
                "threshold" | "target" | "adaptive"
            ) {
                v.at(
                    &svc.scale_policy,
                    format!(
                        "{key}.scale_policy {:?} must be threshold, target or adaptive",
                        svc.scale_policy.value
                    ),
                );
            }
            if !(svc.target_utilization.is_finite()
                && *svc.target_utilization > 0.0
                && *svc.target_utilization <= limits::MAX_PERCENT)
            {
                v.at(
                    &svc.target_utilization,
                    format!(
                        "{key}.target_utilization must be a number > 0 and at most {} (percent)",
                        limits::MAX_PERCENT
                    ),
                );
            }
            let adaptive = *svc.adaptive_target_utilization;
            if !(adaptive.is_finite() && adaptive > 0.0 && adaptive <= 100.0) {
                v.at(
                    &svc.adaptive_target_utilization,
                    format!(
                        "{key}.adaptive_target_utilization must be a number in (0, 100] (percent)"
                    ),
                );
            }
            if !(0.0..1.0).contains(&*svc.target_tolerance) {
                v.at(
                    &svc.target_tolerance,
                    format!("{key}.target_tolerance must be in [0, 1) (0.1 = 10%)"),
                );
            }
            v.count(
                &svc.max_scale_step,
                &format!("{key}.max_scale_step"),
                limits::REPLICAS,
            );
            if let Some(s) = svc.max_scale_down_step.as_ref().filter(|s| s.value == 0) {
                v.at(
                    s,
                    format!("{key}.max_scale_down_step must be at least 1 (unset: no limit)"),
                );
            }
            v.seconds(
                &svc.cooldown_period,
                &format!("{key}.cooldown_period"),
                0,
                HOLD,
            );
            v.seconds(&svc.stop_timeout, &format!("{key}.stop_timeout"), 0, WAIT);
            v.seconds(
                &svc.scale_down_stabilization,
                &format!("{key}.scale_down_stabilization"),
                0,
                STABILIZATION,
            );
            if let Some(t) = &svc.target_sessions_per_replica {
                if !(t.is_finite() && t.value > 0.0 && t.value <= limits::MAX_SESSIONS) {
                    v.at(
                        t,
                        format!(
                            "{key}.target_sessions_per_replica must be > 0 and at most {}",
                            limits::MAX_SESSIONS
                        ),
                    );
                }
            }
            if let Some(c) = &svc.command {
                if c.is_empty() {
                    v.at(c, format!("{key}.command must not be an empty list"));
                } else if let Some(arg) = c.iter().find(|a| a.contains('\0')) {
                    v.at(
                        c,
                        format!("{key}.command argument {arg:?} contains a NUL character"),
                    );
                }
            }
        }

        let a = &self.autoscaler;
        v.seconds(&a.check_interval, "autoscaler.check_interval", 1, WAIT);
        if !matches!(
            a.log_level.to_ascii_uppercase().as_str(),
            "TRACE" | "DEBUG" | "INFO" | "WARN" | "WARNING" | "ERROR"
        ) {
            v.at(
                &a.log_level,
                format!(
                    "autoscaler.log_level {:?} must be one of TRACE, DEBUG, INFO, WARN, ERROR",
                    a.log_level.value
                ),
            );
        }
        v.path(&a.state_file, "autoscaler.state_file");
        v.business_hours(&a.business_hours);

        if let Some(p) = self.monitoring.prometheus.as_ref() {
            if let Some(port) = &p.port {
                v.port(port, "monitoring.prometheus.port");
            }
            if let Some(r) = &p.retention {
                let mut chars = r.chars();
                let unit = chars.next_back();
                let digits = chars.as_str();
                let ok = !digits.is_empty()
                    && digits.chars().all(|c| c.is_ascii_digit())
                    && matches!(unit, Some('s' | 'm' | 'h' | 'd' | 'w' | 'y'));
                if !ok {
                    v.at(
                        r,
                        format!(
                            "monitoring.prometheus.retention {:?} must look like 7d, 12h or 2w",
                            r.value
                        ),
                    );
                }
            }
        }
        if let Some(port) = self
            .monitoring
            .grafana
            .as_ref()
            .and_then(|g| g.port.as_ref())
        {
            v.port(port, "monitoring.grafana.port");
        }
        v.syntax(&self.api.bind, "api.bind", syntax::listen_addr);
        let api = &self.api;
        v.seconds(&api.header_read_timeout, "api.header_read_timeout", 1, WAIT);
        v.seconds(&api.request_timeout, "api.request_timeout", 1, WAIT);
        v.count(
            &api.max_connections,
            "api.max_connections",
            limits::API_CONNECTIONS,
        );
        v.count(
            &api.max_body_bytes,
            "api.max_body_bytes",
            limits::API_BODY_BYTES,
        );
        if let Some(t) = &self.api.token {
            // The token itself is never printed.
            if let Err(e) = syntax::api_token(t) {
                v.at(t, format!("api.token {e}"));
            }
        }
        v.issues.extend(super::release::validate(self));
        v.issues.extend(self.validate_ollama());
        v.issues.sort_by_key(|i| (i.line, i.column));
        v.issues
    }
}

#[derive(Default)]
pub(super) struct Validator {
    issues: Vec<ConfigIssue>,
}

impl Validator {
    fn push(&mut self, line: u64, column: u64, message: String) {
        self.issues.push(ConfigIssue {
            line,
            column,
            message,
        });
    }
    pub(super) fn at<T>(&mut self, l: &Located<T>, message: String) {
        self.push(l.line, l.column, message);
    }
    /// Returns whether the port is valid.
    fn port(&mut self, p: &Located<u32>, key: &str) -> bool {
        if (1..=65535).contains(&p.value) {
            true
        } else {
            self.at(p, format!("{key} {} is out of range 1-65535", p.value));
            false
        }
    }
    /// A value checked by one of the [`syntax`] checks; the message quotes the value.
    fn syntax<T>(
        &mut self,
        s: &Located<String>,
        key: &str,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        match check(s) {
            Ok(t) => Some(t),
            Err(e) => {
                self.at(s, format!("{key} {:?} {e}", s.value));
                None
            }
        }
    }
    /// A file path ([`syntax::file_path`]).
    fn path(&mut self, p: &Located<PathBuf>, key: &str) {
        let text = p.to_string_lossy();
        if let Err(e) = syntax::file_path(&text) {
            self.at(p, format!("{key} {text:?} {e}"));
        }
    }
    /// A count within `range`.
    fn count(&mut self, n: &Located<u32>, key: &str, range: Range) {
        if !(range.min..=range.max).contains(&n.value) {
            self.at(
                n,
                format!(
                    "{key} {} is out of range {}-{} ({})",
                    n.value, range.min, range.max, range.why
                ),
            );
        }
    }
    /// `load_balancer.runtime_api`: parses as [`syntax::runtime_api`]; beyond loopback only
    /// with the opt-in.
    fn runtime_api(&mut self, api: &Located<String>, allow_remote: bool) {
        let key = "load_balancer.runtime_api";
        if let Some(addr) = self.syntax(api, key, syntax::runtime_api) {
            if !addr.is_local() && !allow_remote {
                self.at(
                    api,
                    format!(
                        "{key} {:?} is reachable from other machines, and the runtime API is \
                         HAProxy's admin socket (anyone who reaches it can take every backend \
                         down): use a unix socket or 127.0.0.1:PORT, or set \
                         load_balancer.allow_remote_runtime_api: true and firewall the port",
                        api.value
                    ),
                );
            }
        }
    }
    /// The business-hours window, built by the same function the autoscaler uses; each
    /// error is put at the key it is about.
    fn business_hours(&mut self, bh: &super::BusinessHoursConfig) {
        use crate::schedule::ScheduleError as E;
        let key = "autoscaler.business_hours";
        let mut parts_ok = true;
        for (t, n) in [(&bh.start, "start"), (&bh.end, "end")] {
            if let Err(e) = crate::schedule::parse_time(t) {
                self.at(t, format!("{key}.{n}: {e}"));
                parts_ok = false;
            }
        }
        if let Err(e) = jiff::tz::TimeZone::get(&bh.timezone) {
            self.at(
                &bh.timezone,
                format!(
                    "{key}.timezone {:?} is not an IANA time zone name ({e})",
                    bh.timezone.value
                ),
            );
            parts_ok = false;
        }
        if !parts_ok {
            return;
        }
        match bh.window() {
            Ok(_) => {}
            Err(e @ (E::InvalidDay { .. } | E::NoDays)) => {
                self.at(&bh.days, format!("{key}.days: {e}"));
            }
            Err(e) => self.at(&bh.end, format!("{key}: {e}")),
        }
    }
    /// A value in seconds: at least `min` (0 or 1), at most `limit.max`.
    fn seconds(&mut self, n: &Located<u64>, key: &str, min: u64, limit: Limit) {
        if n.value < min {
            self.at(n, format!("{key} must be at least {min} (seconds)"));
        } else if n.value > limit.max {
            self.at(
                n,
                format!(
                    "{key} {} is above the limit of {} seconds ({})",
                    n.value, limit.max, limit.why
                ),
            );
        }
    }
}

fn valid_name(name: &str) -> bool {
    syntax::object_name(name).is_ok()
}

/// Parses `HH:MM` (24 h) into (hour, minute), as the business-hours window does.
pub fn parse_hhmm(s: &str) -> Result<(i8, i8), String> {
    crate::schedule::parse_time(s).map_err(|e| e.to_string())
}

/// Parses a memory size such as `512m`, `2g`, `1048576` into bytes.
pub fn parse_memory(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let (num, mult) = match lower.trim_end_matches('b').chars().last() {
        Some('k') => (&lower[..lower.trim_end_matches('b').len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (lower.trim_end_matches('b'), 1),
    };
    let n: i64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 512m or 2g"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large (more than {} bytes)", i64::MAX))?;
    // Docker refuses limits under 6 MiB.
    if bytes < 6 << 20 {
        return Err(format!("{s:?} is below Docker's minimum of 6m"));
    }
    Ok(bytes)
}
