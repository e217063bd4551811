//! The configuration model: the top-level [`Config`] and every section but the services
//! (those are in `service.rs`), with their defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Located, ServiceConfig};

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
    #[serde(deserialize_with = "super::located::services_with_positions")]
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
    /// How servers without `docker_host` are reached over SSH (a shoal addition).
    #[serde(default)]
    pub ssh: SshConfig,
    /// Credentials of private registries, keyed by registry host (a shoal addition).
    #[serde(default)]
    pub registries: BTreeMap<String, super::RegistryConfig>,
    /// The listener that wakes sleeping services (a shoal addition).
    #[serde(default)]
    pub activator: super::ActivatorConfig,
}

/// SSH settings shared by every server reached over SSH (a shoal addition).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    /// The known_hosts file host keys are verified against (nothing else is consulted);
    /// `~/` is the home directory. Default `~/.ssh/known_hosts`.
    #[serde(default = "default_known_hosts")]
    pub known_hosts: Located<PathBuf>,
    /// Seconds to establish the connection (TCP, key exchange, authentication).
    #[serde(default = "default_ssh_connect_timeout")]
    pub connect_timeout: Located<u64>,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            known_hosts: default_known_hosts(),
            connect_timeout: default_ssh_connect_timeout(),
        }
    }
}

impl SshConfig {
    /// The connect timeout. Valid after [`Config::validate`].
    #[must_use]
    pub fn connect_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.connect_timeout.value)
    }
}

fn default_known_hosts() -> Located<PathBuf> {
    Located::unlocated(PathBuf::from("~/.ssh/known_hosts"))
}
fn default_ssh_connect_timeout() -> Located<u64> {
    Located::unlocated(10)
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
    /// A `host:port` beyond loopback needs `allow_remote_runtime_api: true`.
    #[serde(default = "default_runtime_api")]
    pub runtime_api: Located<String>,
    /// Accept a TCP `runtime_api` on an address other machines can reach (a shoal
    /// addition; default false). That socket is HAProxy's admin level: whoever reaches it
    /// can take every backend down, so firewall it.
    #[serde(default)]
    pub allow_remote_runtime_api: bool,
    /// Where `serve` writes the rendered haproxy.cfg after membership changes, so a restarted
    /// HAProxy comes back populated. Unset: the file is not written.
    #[serde(default)]
    pub config_file: Option<Located<PathBuf>>,
    /// Address HAProxy frontends bind to: `*`, an IP address or a host name.
    #[serde(default = "default_bind_address")]
    pub bind_address: Located<String>,
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
            allow_remote_runtime_api: false,
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
fn default_bind_address() -> Located<String> {
    Located::unlocated("*".to_owned())
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
    pub ssh_user: Option<Located<String>>,
    /// SSH private key (used when `docker_host` is unset).
    #[serde(default)]
    pub ssh_key: Option<Located<PathBuf>>,
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
    /// Path of the Docker socket on the server, forwarded over SSH (a shoal addition;
    /// default `/var/run/docker.sock`).
    #[serde(default)]
    pub docker_socket: Option<Located<String>>,
    /// TLS for a `tcp://` `docker_host`: the directory holding `ca.pem`, `cert.pem` and
    /// `key.pem`, as Docker's own `DOCKER_CERT_PATH` (a shoal addition). The engine's
    /// certificate must chain to `ca.pem` and name the address; `cert.pem`/`key.pem` are the
    /// client's (a dockerd started with `--tlsverify`).
    #[serde(default)]
    pub docker_cert_path: Option<Located<PathBuf>>,
    /// `false` accepts plain TCP to a `tcp://` `docker_host` that is not loopback (refused
    /// otherwise: whoever reaches that port controls the engine); `true` requires
    /// `docker_cert_path` (a shoal addition).
    #[serde(default)]
    pub docker_tls: Option<Located<bool>>,
    /// GPUs it has: a count or device IDs (a shoal addition; default none).
    #[serde(default)]
    pub gpus: Option<Located<super::ServerGpus>>,
}

impl ServerConfig {
    /// Whether this server's engine is reached over plain TCP at an address that is not
    /// loopback (accepted only with `docker_tls: false`).
    #[must_use]
    pub fn plain_tcp_beyond_loopback(&self) -> bool {
        match self.endpoint() {
            DockerEndpoint::Tcp(addr) => !is_loopback_host(&addr),
            _ => false,
        }
    }
}

/// Whether the host of `host:port` is loopback (`localhost`, `127.0.0.0/8`, `[::1]`).
#[must_use]
pub fn is_loopback_host(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Default remote Docker socket of a server reached over SSH.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

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
    /// A TCP endpoint with TLS (`host:port`; the client certificate, key and CA in
    /// `cert_path`, as `DOCKER_CERT_PATH`).
    TcpTls {
        /// `host:port`.
        addr: String,
        /// Directory of `ca.pem`, `cert.pem`, `key.pem`.
        cert_path: PathBuf,
    },
    /// Over SSH: the server's Docker socket forwarded to a local one.
    Ssh {
        /// SSH user.
        user: Option<String>,
        /// SSH host.
        host: String,
        /// SSH port.
        port: u16,
        /// Private key.
        key: Option<PathBuf>,
        /// The Docker socket's path on the server.
        socket: String,
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
                let addr = h["tcp://".len()..].to_owned();
                match &self.docker_cert_path {
                    Some(dir) => DockerEndpoint::TcpTls {
                        addr,
                        cert_path: dir.value.clone(),
                    },
                    None => DockerEndpoint::Tcp(addr),
                }
            }
            _ => DockerEndpoint::Ssh {
                user: self.ssh_user.as_ref().map(|u| u.value.clone()),
                host: self.host.value.clone(),
                port: self
                    .ssh_port
                    .as_ref()
                    .map_or(22, |p| u16::try_from(p.value).unwrap_or(22)),
                key: self.ssh_key.as_ref().map(|k| k.value.clone()),
                socket: self
                    .docker_socket
                    .as_ref()
                    .map_or_else(|| DEFAULT_DOCKER_SOCKET.to_owned(), |s| s.value.clone()),
            },
        }
    }
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
    pub state_file: Located<PathBuf>,
}

fn default_state_file() -> Located<PathBuf> {
    Located::unlocated(PathBuf::from("shoal-state.db"))
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
    /// Bearer token for mutating endpoints, at least 16 visible ASCII characters.
    /// `SHOAL_API_TOKEN` overrides it.
    #[serde(default, skip_serializing)]
    pub token: Option<Located<String>>,
    /// Serve mutating endpoints without a token even beyond loopback.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Seconds a client has to send a request's headers (1 to 86400); a connection that
    /// has not done so is closed (slow-loris clients).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: Located<u64>,
    /// Seconds a request may take from its headers to its answer (1 to 86400); then it is
    /// answered 503.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Located<u64>,
    /// Most connections served at once (1 to 65535); further ones wait in the listen
    /// backlog until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: Located<u32>,
    /// Largest request body accepted, in bytes (0 to 16 MiB); a larger one is answered 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: Located<u32>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            bind: default_api_bind(),
            token: None,
            allow_unauthenticated: false,
            header_read_timeout: default_header_read_timeout(),
            request_timeout: default_request_timeout(),
            max_connections: default_max_connections(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

fn default_header_read_timeout() -> Located<u64> {
    Located::unlocated(10)
}
fn default_request_timeout() -> Located<u64> {
    Located::unlocated(60)
}
fn default_max_connections() -> Located<u32> {
    Located::unlocated(256)
}
fn default_max_body_bytes() -> Located<u32> {
    Located::unlocated(64 << 10)
}

fn default_api_bind() -> Located<String> {
    Located::unlocated("127.0.0.1:8000".to_owned())
}

impl Config {
    /// The service named `name`.
    #[must_use]
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.get(name)
    }
}
