//! Semantic checks serde cannot make, each naming the key and its position, and the small
//! value parsers they use.

use std::collections::BTreeMap;

use super::durations::{Limit, HOLD, STABILIZATION, WAIT};
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
        if lb.runtime_api.trim().is_empty() {
            v.at(
                &lb.runtime_api,
                "load_balancer.runtime_api must not be empty".into(),
            );
        }

        v.seconds(&self.ssh.connect_timeout, "ssh.connect_timeout", 1, WAIT);

        if self.servers.is_empty() {
            v.push(0, 0, "servers: at least one server is required".into());
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
            if s.host.trim().is_empty() {
                v.at(&s.host, format!("{key}.host must not be empty"));
            }
            if let Some(p) = &s.ssh_port {
                v.port(p, &format!("{key}.ssh_port"));
            }
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
            if let Some(h) = &s.docker_host {
                match h.split_once("://") {
                    Some(("unix", path)) if path.starts_with('/') => {}
                    Some(("tcp", addr)) if valid_host_port(addr) => {}
                    _ => v.at(
                        h,
                        format!(
                            "{key}.docker_host {:?} must be unix:///absolute/path or tcp://host:port",
                            h.value
                        ),
                    ),
                }
            }
        }

        let mut ports: BTreeMap<u32, String> = BTreeMap::new();
        ports.insert(*lb.stats_port, "load_balancer.stats_port".into());
        for (name, svc) in &self.services {
            let key = format!("services.{name}");
            if !valid_name(name) {
                v.push(
                    0,
                    0,
                    format!(
                        "service name {name:?} must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
                    ),
                );
            }
            if svc.image.trim().is_empty() {
                v.at(&svc.image, format!("{key}.image must not be empty"));
            }
            if v.port(&svc.port, &format!("{key}.port")) {
                if let Some(other) = ports.insert(*svc.port, format!("{key}.port")) {
                    v.at(
                        &svc.port,
                        format!("{key}.port {} is already used by {other}", *svc.port),
                    );
                }
            }
            if let Some(p) = &svc.container_port {
                v.port(p, &format!("{key}.container_port"));
            }
            if *svc.min_replicas == 0 {
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
                if !(t.is_finite() && **t >= 0.0) {
                    v.at(t, format!("{key}.{n} must be a number >= 0 (percent)"));
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
            if !hc.path.starts_with('/') {
                v.at(
                    &hc.path,
                    format!(
                        "{key}.health_check.path {:?} must start with '/'",
                        hc.path.value
                    ),
                );
            } else if hc.path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                v.at(
                    &hc.path,
                    format!("{key}.health_check.path must not contain spaces"),
                );
            }
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
            if *hc.unhealthy_threshold == 0 {
                v.at(
                    &hc.unhealthy_threshold,
                    format!("{key}.health_check.unhealthy_threshold must be at least 1"),
                );
            }
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
                if !ok {
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
                    Some((k, _)) if !k.is_empty() && !k.contains(char::is_whitespace) => {}
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
                if !(c.is_finite() && **c > 0.0) {
                    v.at(c, format!("{key}.cpus must be a number of cores > 0"));
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
            if !matches!(svc.scale_policy.as_str(), "threshold" | "target") {
                v.at(
                    &svc.scale_policy,
                    format!(
                        "{key}.scale_policy {:?} must be threshold or target",
                        svc.scale_policy.value
                    ),
                );
            }
            if !(svc.target_utilization.is_finite() && *svc.target_utilization > 0.0) {
                v.at(
                    &svc.target_utilization,
                    format!("{key}.target_utilization must be a number > 0 (percent)"),
                );
            }
            if !(0.0..1.0).contains(&*svc.target_tolerance) {
                v.at(
                    &svc.target_tolerance,
                    format!("{key}.target_tolerance must be in [0, 1) (0.1 = 10%)"),
                );
            }
            if *svc.max_scale_step == 0 {
                v.at(
                    &svc.max_scale_step,
                    format!("{key}.max_scale_step must be at least 1"),
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
                if !(t.is_finite() && t.value > 0.0) {
                    v.at(t, format!("{key}.target_sessions_per_replica must be > 0"));
                }
            }
            if matches!(&svc.command, Some(c) if c.is_empty()) {
                v.push(0, 0, format!("{key}.command must not be an empty list"));
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
        let bh = &a.business_hours;
        for (t, n) in [(&bh.start, "start"), (&bh.end, "end")] {
            if let Err(e) = parse_hhmm(t) {
                v.at(t, format!("autoscaler.business_hours.{n}: {e}"));
            }
        }
        if bh.start.value == bh.end.value {
            v.at(
                &bh.end,
                "autoscaler.business_hours.end equals start: the window would be empty".into(),
            );
        }
        if let Err(e @ crate::schedule::ScheduleError::InvalidDay { .. }) = bh.window() {
            v.at(&bh.days, format!("autoscaler.business_hours.days: {e}"));
        }
        if let Err(e) = jiff::tz::TimeZone::get(&bh.timezone) {
            v.at(
                &bh.timezone,
                format!(
                    "autoscaler.business_hours.timezone {:?} is not an IANA timezone ({e})",
                    bh.timezone.value
                ),
            );
        }

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
        if !valid_host_port(&self.api.bind) {
            v.at(
                &self.api.bind,
                format!("api.bind {:?} must be host:port", self.api.bind.value),
            );
        }
        v.issues.extend(self.validate_ollama());
        v.issues.sort_by_key(|i| (i.line, i.column));
        v.issues
    }
}

#[derive(Default)]
struct Validator {
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
    fn at<T>(&mut self, l: &Located<T>, message: String) {
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
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && port
                    .parse::<u16>()
                    .is_ok_and(|p| p > 0 || host == "127.0.0.1")
        }
        None => false,
    }
}

/// Parses `HH:MM` (24 h) into (hour, minute).
pub fn parse_hhmm(s: &str) -> Result<(i8, i8), String> {
    let bad = || format!("{s:?} is not a time HH:MM (00:00-23:59)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    if (0..24).contains(&h) && (0..60).contains(&m) {
        Ok((h, m))
    } else {
        Err(bad())
    }
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
    // Docker refuses limits under 6 MiB.
    if n <= 0 || n.saturating_mul(mult) < 6 << 20 {
        return Err(format!("{s:?} is below Docker's minimum of 6m"));
    }
    Ok(n.saturating_mul(mult))
}
