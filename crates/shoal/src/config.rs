//! The `config.yaml` model: parsing, validation with `file:line:column` errors, and defaults.
//!
//! The format is the seed plan's (Step 2.2); every shoal addition is an optional key, so a
//! seed config loads unchanged. This module does no IO beyond reading the file it is given
//! and never contacts a server.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// A value together with where it was written in the YAML (1-based; 0 when defaulted).
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    /// The parsed value.
    pub value: T,
    /// 1-based line, 0 when the value was not written (a default).
    pub line: u64,
    /// 1-based column, 0 when the value was not written (a default).
    pub column: u64,
}

impl<T> Located<T> {
    /// A value that was not written in the file.
    #[must_use]
    pub const fn unlocated(value: T) -> Self {
        Self {
            value,
            line: 0,
            column: 0,
        }
    }
}

impl<T: Default> Default for Located<T> {
    fn default() -> Self {
        Self::unlocated(T::default())
    }
}

impl<T> Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        Ok(Self {
            value: s.value,
            line: s.referenced.line(),
            column: s.referenced.column(),
        })
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HAProxy settings.
    #[serde(default)]
    pub load_balancer: LoadBalancerConfig,
    /// The fleet. At least one server.
    pub servers: Vec<ServerConfig>,
    /// Services by name. Names become part of container and HAProxy names.
    pub services: BTreeMap<String, ServiceConfig>,
    /// Prometheus / Grafana integration (used by the monitoring files, not by `serve`).
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// Control-loop settings.
    #[serde(default)]
    pub autoscaler: AutoscalerConfig,
    /// The HTTP API of `shoal serve` (a shoal addition).
    #[serde(default)]
    pub api: ApiConfig,
}

/// HAProxy settings. `stats_port` and `https_enabled` are the seed's; the rest are additions.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerConfig {
    /// Port of HAProxy's stats page and Prometheus exporter (`/metrics`).
    #[serde(default = "default_stats_port")]
    pub stats_port: Located<u32>,
    /// Accepted for seed compatibility; TLS termination is not implemented yet.
    #[serde(default)]
    pub https_enabled: bool,
    /// HAProxy runtime API: `unix:/path/to/sock`, a bare absolute path, or `host:port`.
    #[serde(default = "default_runtime_api")]
    pub runtime_api: Located<String>,
    /// Where `serve` writes the rendered haproxy.cfg after membership changes, so a restarted
    /// HAProxy comes back populated. Unset: the file is not written.
    #[serde(default)]
    pub config_file: Option<PathBuf>,
    /// Address HAProxy frontends bind to.
    #[serde(default = "default_bind_address")]
    pub bind_address: String,
    /// Longest wait for a draining replica's sessions to end before it is removed anyway.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Located<u64>,
    /// Timeout for one runtime-API command, in seconds.
    #[serde(default = "default_lb_timeout")]
    pub timeout: Located<u64>,
}

impl Default for LoadBalancerConfig {
    fn default() -> Self {
        Self {
            stats_port: default_stats_port(),
            https_enabled: false,
            runtime_api: default_runtime_api(),
            config_file: None,
            bind_address: default_bind_address(),
            drain_timeout: default_drain_timeout(),
            timeout: default_lb_timeout(),
        }
    }
}

fn default_stats_port() -> Located<u32> {
    Located::unlocated(8404)
}
fn default_runtime_api() -> Located<String> {
    Located::unlocated("unix:/run/haproxy/admin.sock".to_owned())
}
fn default_bind_address() -> String {
    "*".to_owned()
}
fn default_drain_timeout() -> Located<u64> {
    Located::unlocated(30)
}
fn default_lb_timeout() -> Located<u64> {
    Located::unlocated(5)
}

/// One server of the fleet.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address HAProxy uses to reach the replicas' published ports, and the SSH host.
    pub host: Located<String>,
    /// Unique name; stored in the `io.shoal.server` label.
    pub name: Located<String>,
    /// SSH user (used when `docker_host` is unset).
    #[serde(default)]
    pub ssh_user: Option<String>,
    /// SSH private key (used when `docker_host` is unset).
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
    /// SSH port (a shoal addition).
    #[serde(default)]
    pub ssh_port: Option<Located<u32>>,
    /// Most containers shoal may run there (all services together).
    #[serde(default = "default_max_containers")]
    pub max_containers: Located<u32>,
    /// Free-form role; the seed marks the control server with `control`.
    #[serde(default)]
    pub role: Option<String>,
    /// Docker Engine endpoint: `unix:///path` or `tcp://host:port` (a shoal addition).
    /// Unset: the engine is reached over SSH.
    #[serde(default)]
    pub docker_host: Option<Located<String>>,
}

fn default_max_containers() -> Located<u32> {
    Located::unlocated(12)
}

/// How shoal reaches a server's Docker Engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerEndpoint {
    /// A unix socket on this machine.
    Unix(PathBuf),
    /// A plain TCP endpoint (`host:port`).
    Tcp(String),
    /// Over SSH (not implemented yet).
    Ssh {
        /// SSH user.
        user: Option<String>,
        /// SSH host.
        host: String,
        /// SSH port.
        port: u16,
        /// Private key.
        key: Option<PathBuf>,
    },
}

impl ServerConfig {
    /// The engine endpoint this server is reached through. Valid after [`Config::validate`].
    #[must_use]
    pub fn endpoint(&self) -> DockerEndpoint {
        match self.docker_host.as_deref().map(String::as_str) {
            Some(h) if h.starts_with("unix://") => {
                DockerEndpoint::Unix(PathBuf::from(&h["unix://".len()..]))
            }
            Some(h) if h.starts_with("tcp://") => {
                DockerEndpoint::Tcp(h["tcp://".len()..].to_owned())
            }
            _ => DockerEndpoint::Ssh {
                user: self.ssh_user.clone(),
                host: self.host.value.clone(),
                port: self.ssh_port.as_ref().map_or(22, |p| p.value as u16),
                key: self.ssh_key.clone(),
            },
        }
    }
}

/// One service: a Docker image run as replicas behind an HAProxy frontend.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Image reference.
    pub image: Located<String>,
    /// Port of the HAProxy frontend, and the container port unless `container_port` is set.
    pub port: Located<u32>,
    /// Port the service listens on inside the container (a shoal addition).
    #[serde(default)]
    pub container_port: Option<Located<u32>>,
    /// Fewest replicas (the policy never goes below).
    #[serde(default = "default_min_replicas")]
    pub min_replicas: Located<u32>,
    /// Most replicas.
    #[serde(default = "default_max_replicas")]
    pub max_replicas: Located<u32>,
    /// Utilization (percent) above which the policy adds a replica. Must exceed the down one.
    #[serde(default = "default_up")]
    pub scale_up_threshold: Located<f64>,
    /// Utilization (percent) below which the policy removes a replica.
    #[serde(default = "default_down")]
    pub scale_down_threshold: Located<f64>,
    /// Seconds after any scale action (manual included) during which the policy holds.
    #[serde(default = "default_cooldown")]
    pub cooldown_period: Located<u64>,
    /// Scale only inside the business-hours window.
    #[serde(default)]
    pub business_hours_only: bool,
    /// HTTP health check run against each replica.
    #[serde(default)]
    pub health_check: HealthCheckConfig,
    /// `host_path:container_path[:ro|:rw]` bind mounts.
    #[serde(default)]
    pub volumes: Vec<Located<String>>,
    /// `KEY=VALUE` environment entries.
    #[serde(default)]
    pub environment: Vec<Located<String>>,
    /// Docker restart policy: `no`, `on-failure`, `always`, `unless-stopped` (a shoal addition).
    #[serde(default = "default_restart")]
    pub restart_policy: Located<String>,
    /// CPU limit in cores (a shoal addition). Utilization is normalised by it.
    #[serde(default)]
    pub cpus: Option<Located<f64>>,
    /// Memory limit such as `512m` or `2g` (a shoal addition).
    #[serde(default)]
    pub memory: Option<Located<String>>,
    /// Command (arguments after the image's entrypoint) (a shoal addition).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Seconds a stopping container gets before SIGKILL (a shoal addition).
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: Located<u64>,
    /// Replicas held outside the business-hours window (a shoal addition; default
    /// `min_replicas`, 0 allowed). Only with `business_hours_only: true`.
    #[serde(default)]
    pub off_hours_replicas: Option<Located<u32>>,
    /// `threshold` (the seed's: +1/-1 past the thresholds) or `target` (target tracking)
    /// (a shoal addition).
    #[serde(default = "default_policy")]
    pub scale_policy: Located<String>,
    /// Target utilization (percent) of the `target` policy (a shoal addition).
    #[serde(default = "default_target_utilization")]
    pub target_utilization: Located<f64>,
    /// Relative deviation from the target ignored by the `target` policy (a shoal addition).
    #[serde(default = "default_tolerance")]
    pub target_tolerance: Located<f64>,
    /// Seconds over which the `target` policy takes the highest recommendation before
    /// scaling down (a shoal addition).
    #[serde(default = "default_stabilization")]
    pub scale_down_stabilization: Located<u64>,
    /// Most replicas the `target` policy adds or removes in one decision (a shoal addition).
    #[serde(default = "default_max_step")]
    pub max_scale_step: Located<u32>,
    /// Second signal from HAProxy: target of current sessions + queue per replica
    /// (a shoal addition). Unset: CPU only.
    #[serde(default)]
    pub target_sessions_per_replica: Option<Located<f64>>,
    /// Journal decisions but change nothing (a shoal addition; default `autoscaler.dry_run`).
    #[serde(default)]
    pub dry_run: Option<bool>,
}

fn default_policy() -> Located<String> {
    Located::unlocated("threshold".to_owned())
}
fn default_target_utilization() -> Located<f64> {
    Located::unlocated(60.0)
}
fn default_tolerance() -> Located<f64> {
    Located::unlocated(0.1)
}
fn default_stabilization() -> Located<u64> {
    Located::unlocated(300)
}
fn default_max_step() -> Located<u32> {
    Located::unlocated(4)
}

fn default_min_replicas() -> Located<u32> {
    Located::unlocated(1)
}
fn default_max_replicas() -> Located<u32> {
    Located::unlocated(1)
}
fn default_up() -> Located<f64> {
    Located::unlocated(75.0)
}
fn default_down() -> Located<f64> {
    Located::unlocated(25.0)
}
fn default_cooldown() -> Located<u64> {
    Located::unlocated(60)
}
fn default_restart() -> Located<String> {
    Located::unlocated("unless-stopped".to_owned())
}
fn default_stop_timeout() -> Located<u64> {
    Located::unlocated(10)
}

impl ServiceConfig {
    /// Port the service listens on inside its containers.
    #[must_use]
    pub fn container_port(&self) -> u16 {
        self.container_port.as_ref().map_or(*self.port, |p| p.value) as u16
    }

    /// Replicas held outside the business-hours window.
    #[must_use]
    pub fn off_hours_replicas(&self) -> u32 {
        self.off_hours_replicas
            .as_ref()
            .map_or(*self.min_replicas, |o| o.value)
    }

    /// Memory limit in bytes, if set. Valid after [`Config::validate`].
    #[must_use]
    pub fn memory_bytes(&self) -> Option<i64> {
        self.memory.as_ref().and_then(|m| parse_memory(m).ok())
    }
}

/// Health check of each replica: `GET path` must answer 2xx within `timeout`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// HTTP path probed.
    #[serde(default = "default_health_path")]
    pub path: Located<String>,
    /// Seconds between probes.
    #[serde(default = "default_health_interval")]
    pub interval: Located<u64>,
    /// Seconds before a probe counts as failed.
    #[serde(default = "default_health_timeout")]
    pub timeout: Located<u64>,
    /// Consecutive failures after which a running replica is replaced (a shoal addition).
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: Located<u32>,
    /// Seconds a new replica has to pass its first check before it is replaced (a shoal addition).
    #[serde(default = "default_start_period")]
    pub start_period: Located<u64>,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            path: default_health_path(),
            interval: default_health_interval(),
            timeout: default_health_timeout(),
            unhealthy_threshold: default_unhealthy_threshold(),
            start_period: default_start_period(),
        }
    }
}

fn default_health_path() -> Located<String> {
    Located::unlocated("/".to_owned())
}
fn default_health_interval() -> Located<u64> {
    Located::unlocated(10)
}
fn default_health_timeout() -> Located<u64> {
    Located::unlocated(5)
}
fn default_unhealthy_threshold() -> Located<u32> {
    Located::unlocated(3)
}
fn default_start_period() -> Located<u64> {
    Located::unlocated(60)
}

/// Monitoring section (seed). Read by the Prometheus/Grafana files; `serve` only validates it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Prometheus settings.
    #[serde(default)]
    pub prometheus: Option<PrometheusConfig>,
    /// Grafana settings.
    #[serde(default)]
    pub grafana: Option<GrafanaConfig>,
}

/// Prometheus settings (seed).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Whether Prometheus is run.
    #[serde(default)]
    pub enabled: bool,
    /// Port of Prometheus.
    #[serde(default)]
    pub port: Option<Located<u32>>,
    /// Retention such as `7d`.
    #[serde(default)]
    pub retention: Option<Located<String>>,
}

/// Grafana settings (seed).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrafanaConfig {
    /// Whether Grafana is run.
    #[serde(default)]
    pub enabled: bool,
    /// Port of Grafana.
    #[serde(default)]
    pub port: Option<Located<u32>>,
}

/// Control-loop settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscalerConfig {
    /// Seconds between policy evaluations.
    #[serde(default = "default_check_interval")]
    pub check_interval: Located<u64>,
    /// The window in which `business_hours_only` services may scale.
    #[serde(default)]
    pub business_hours: BusinessHoursConfig,
    /// `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR` (any case). `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub log_level: Located<String>,
    /// Journal decisions but change nothing, for every service (a shoal addition).
    #[serde(default)]
    pub dry_run: bool,
    /// SQLite file of the decision journal and cooldowns (a shoal addition; relative to the
    /// config file's directory).
    #[serde(default = "default_state_file")]
    pub state_file: PathBuf,
}

fn default_state_file() -> PathBuf {
    PathBuf::from("shoal-state.db")
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        Self {
            check_interval: default_check_interval(),
            business_hours: BusinessHoursConfig::default(),
            log_level: default_log_level(),
            dry_run: false,
            state_file: default_state_file(),
        }
    }
}

fn default_check_interval() -> Located<u64> {
    Located::unlocated(30)
}
fn default_log_level() -> Located<String> {
    Located::unlocated("INFO".to_owned())
}

/// Business-hours window, `HH:MM` in an IANA timezone.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursConfig {
    /// Opening time `HH:MM`.
    #[serde(default = "default_bh_start")]
    pub start: Located<String>,
    /// Closing time `HH:MM`; earlier than `start` means the window crosses midnight.
    #[serde(default = "default_bh_end")]
    pub end: Located<String>,
    /// IANA timezone name.
    #[serde(default = "default_bh_tz")]
    pub timezone: Located<String>,
    /// Days the window opens on: `mon`, `tuesday`, ranges like `mon-fri` (a shoal
    /// addition; default all seven).
    #[serde(default)]
    pub days: Located<Vec<String>>,
}

impl BusinessHoursConfig {
    /// The window. Valid after [`Config::validate`].
    pub fn window(&self) -> Result<crate::schedule::BusinessHours, crate::schedule::ScheduleError> {
        crate::schedule::BusinessHours::parse(&self.start, &self.end, &self.timezone, &self.days)
    }
}

impl Default for BusinessHoursConfig {
    fn default() -> Self {
        Self {
            start: default_bh_start(),
            end: default_bh_end(),
            timezone: default_bh_tz(),
            days: Located::default(),
        }
    }
}

fn default_bh_start() -> Located<String> {
    Located::unlocated("09:00".to_owned())
}
fn default_bh_end() -> Located<String> {
    Located::unlocated("17:00".to_owned())
}
fn default_bh_tz() -> Located<String> {
    Located::unlocated("UTC".to_owned())
}

/// The HTTP API of `shoal serve` (a shoal addition).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address.
    #[serde(default = "default_api_bind")]
    pub bind: Located<String>,
    /// Bearer token for mutating endpoints. `SHOAL_API_TOKEN` overrides it.
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
    /// Serve mutating endpoints without a token even beyond loopback.
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            bind: default_api_bind(),
            token: None,
            allow_unauthenticated: false,
        }
    }
}

fn default_api_bind() -> Located<String> {
    Located::unlocated("127.0.0.1:8000".to_owned())
}

/// One problem found in a config file, with its position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigIssue {
    /// 1-based line (0: the problem has no single position).
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// What is wrong, naming the key.
    pub message: String,
}

/// Why a config file was refused. Displays as one `file:line:column: message` line per issue.
#[derive(Clone, Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `<string>`).
    pub file: String,
    /// Every problem found.
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if issue.line == 0 {
                write!(f, "{}: error: {}", self.file, issue.message)?;
            } else {
                write!(
                    f,
                    "{}:{}:{}: error: {}",
                    self.file, issue.line, issue.column, issue.message
                )?;
            }
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates a config file. Contacts nothing.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            issues: vec![ConfigIssue {
                line: 0,
                column: 0,
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        let mut config = Self::parse(&text, &file)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
        config.resolve_relative_paths(&base);
        Ok(config)
    }

    /// Makes file paths in the config absolute, relative to `base` (the config file's
    /// directory), so they mean the same whatever the working directory of `serve` or HAProxy.
    pub fn resolve_relative_paths(&mut self, base: &Path) {
        let lb = &mut self.load_balancer;
        if let Some(rest) = lb.runtime_api.value.strip_prefix("unix:") {
            if !rest.starts_with('/') {
                lb.runtime_api.value = format!("unix:{}", base.join(rest).display());
            }
        }
        if let Some(f) = &lb.config_file {
            if f.is_relative() {
                lb.config_file = Some(base.join(f));
            }
        }
        if self.autoscaler.state_file.is_relative() {
            self.autoscaler.state_file = base.join(&self.autoscaler.state_file);
        }
        for s in &mut self.servers {
            if let Some(k) = &s.ssh_key {
                if k.is_relative() {
                    s.ssh_key = Some(base.join(k));
                }
            }
        }
    }

    /// Parses and validates YAML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let config: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError {
            file: file.to_owned(),
            issues: vec![issue_from_yaml_error(&e)],
        })?;
        let issues = config.validate();
        if issues.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                file: file.to_owned(),
                issues,
            })
        }
    }

    /// Semantic checks serde cannot make. Returns every problem found.
    #[must_use]
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut v = Validator::default();
        let lb = &self.load_balancer;
        v.port(&lb.stats_port, "load_balancer.stats_port");
        v.positive(&lb.drain_timeout, "load_balancer.drain_timeout");
        v.positive(&lb.timeout, "load_balancer.timeout");
        if lb.runtime_api.trim().is_empty() {
            v.at(
                &lb.runtime_api,
                "load_balancer.runtime_api must not be empty".into(),
            );
        }

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
            v.positive(&hc.interval, &format!("{key}.health_check.interval"));
            v.positive(&hc.timeout, &format!("{key}.health_check.timeout"));
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
        v.positive(&a.check_interval, "autoscaler.check_interval");
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
        v.issues.sort_by_key(|i| (i.line, i.column));
        v.issues
    }

    /// The service named `name`.
    #[must_use]
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.get(name)
    }

    /// The server named `name`.
    #[must_use]
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| *s.name == name)
    }

    /// Probe cadence of the control loop: how often health and membership are checked.
    #[must_use]
    pub fn check_interval(&self) -> Duration {
        Duration::from_secs(*self.autoscaler.check_interval)
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
    fn positive(&mut self, n: &Located<u64>, key: &str) {
        if n.value == 0 {
            self.at(n, format!("{key} must be at least 1 (seconds)"));
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

/// Turns a YAML/serde error into an issue, adding a "did you mean" to unknown keys.
fn issue_from_yaml_error(e: &serde_saphyr::Error) -> ConfigIssue {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut message = e.without_snippet().to_string();
    // The plain rendering may repeat the position; keep only the message.
    if let Some(idx) = message.find(" at line ") {
        message.truncate(idx);
    }
    let mut message = message.trim().to_owned();
    for (serde_says, we_say) in [
        ("invalid u32", "expected a whole number >= 0"),
        ("invalid u64", "expected a whole number >= 0"),
        ("invalid f64", "expected a number"),
    ] {
        if message.starts_with(serde_says) {
            message = format!("{we_say} ({message})");
        }
    }
    ConfigIssue {
        line,
        column,
        message: add_did_you_mean(&message),
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" adds the closest known key.
fn add_did_you_mean(message: &str) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return message.to_owned();
    };
    let Some((unknown, tail)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let list = tail.split("expected one of").nth(1).unwrap_or("");
    let expected: BTreeSet<&str> = list
        .split(',')
        .map(|k| k.trim().trim_matches('`'))
        .filter(|k| !k.is_empty())
        .collect();
    let best = expected
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(unknown.len()) / 3).max(2))
        .min();
    match best {
        Some((_, k)) => format!(
            "unknown key `{unknown}` (did you mean `{k}`?); {}",
            tail_list(tail)
        ),
        None => format!("unknown key `{unknown}`; {}", tail_list(tail)),
    }
}

fn tail_list(tail: &str) -> String {
    tail.trim_start_matches(',').trim().to_owned()
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SEED: &str = include_str!("../../../tests/fixtures/seed-config.yaml");

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
        assert!(e[1].message.contains("threshold or target"));
        assert!(e[2].message.contains("target_tolerance"));
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
}
