//! One service (`services.<name>`) and its health check, with their defaults.

use serde::{Deserialize, Serialize};

use super::{parse_memory, Located};

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
    pub command: Option<Located<Vec<String>>>,
    /// Seconds a stopping container gets before SIGKILL (a shoal addition).
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: Located<u64>,
    /// Replicas held outside the business-hours window (a shoal addition; default
    /// `min_replicas`, 0 allowed). Only with `business_hours_only: true`.
    #[serde(default)]
    pub off_hours_replicas: Option<Located<u32>>,
    /// `threshold` (the seed's: +1/-1 past the thresholds), `target` (target tracking) or
    /// `adaptive` (sized from HAProxy's request rate and a learned capacity per replica)
    /// (a shoal addition).
    #[serde(default = "default_policy")]
    pub scale_policy: Located<String>,
    /// Target utilization (percent) of the `target` policy (a shoal addition).
    #[serde(default = "default_target_utilization")]
    pub target_utilization: Located<f64>,
    /// Utilization (percent of the learned capacity at 100%) the `adaptive` policy sizes
    /// for when it has a request rate and a learned capacity (a shoal addition). Higher than
    /// `target_utilization` by default: sized from demand, it needs no headroom to see a
    /// spike past 100% CPU, only for the growth during one evaluation and one start.
    #[serde(default = "default_adaptive_utilization")]
    pub adaptive_target_utilization: Located<f64>,
    /// Relative deviation from the target ignored by the `target` policy (a shoal addition).
    #[serde(default = "default_tolerance")]
    pub target_tolerance: Located<f64>,
    /// Seconds over which the `target` policy takes the highest recommendation before
    /// scaling down (a shoal addition).
    #[serde(default = "default_stabilization")]
    pub scale_down_stabilization: Located<u64>,
    /// Most replicas the `target` policy adds in one decision (a shoal addition).
    #[serde(default = "default_max_step")]
    pub max_scale_step: Located<u32>,
    /// Most replicas the `target` and `adaptive` policies remove in one decision (a shoal
    /// addition). Unset: no limit beyond the stabilization window.
    #[serde(default)]
    pub max_scale_down_step: Option<Located<u32>>,
    /// Second signal from HAProxy: target of current sessions + queue per replica
    /// (a shoal addition). Unset: CPU only.
    #[serde(default)]
    pub target_sessions_per_replica: Option<Located<f64>>,
    /// Journal decisions but change nothing (a shoal addition; default `autoscaler.dry_run`).
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Where the service's name (its key under `services`) is written; set by the loader.
    #[serde(skip)]
    pub name_at: Located<()>,
    /// How updates replace replicas (a shoal addition; default surge 1, unavailable 0).
    #[serde(default)]
    pub rollout: Option<super::RolloutConfig>,
    /// GPUs per replica: `all`, a count, or device IDs (a shoal addition).
    #[serde(default)]
    pub gpus: Option<Located<super::GpuRequest>>,
    /// Replicas may share a GPU (a shoal addition; default: never two on one device).
    #[serde(default)]
    pub gpu_sharing: bool,
    /// Request a new replica must answer before it enters HAProxy (a shoal addition).
    #[serde(default)]
    pub warmup: Option<super::WarmupConfig>,
    /// At zero replicas, a request makes shoal start one and waits for it (a shoal addition).
    #[serde(default)]
    pub wake_on_request: bool,
    /// Seconds a request waits for a woken replica before a 503 (a shoal addition).
    #[serde(default = "super::ollama::default_activation_timeout")]
    pub activation_timeout: Located<u64>,
    /// Seconds without a request after which the service goes to zero (a shoal addition).
    #[serde(default)]
    pub idle_to_zero_after: Option<Located<u64>>,
}

fn default_policy() -> Located<String> {
    Located::unlocated("threshold".to_owned())
}
fn default_target_utilization() -> Located<f64> {
    Located::unlocated(60.0)
}
fn default_adaptive_utilization() -> Located<f64> {
    Located::unlocated(80.0)
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

    /// Memory limit in bytes, if set. Valid after
    /// [`Config::validate`](crate::config::Config::validate).
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
