//! The `config.yaml` model: parsing, validation with `file:line:column` errors, and defaults.
//!
//! The format is the seed plan's (Step 2.2); every shoal addition is an optional key, so a
//! seed config loads unchanged. This module does no IO beyond reading the file it is given
//! and never contacts a server.
//!
//! - `located`: [`Located`], a value with the position it was written at;
//! - `model`: [`Config`] and its sections with their defaults; `service`: [`ServiceConfig`]
//!   and [`HealthCheckConfig`];
//! - `durations`: the bounds on values in seconds and the accessors that turn them into
//!   [`std::time::Duration`];
//! - `load`: [`Config::load`] and [`Config::parse`]; `validate`: [`Config::validate`];
//! - `error`: [`ConfigIssue`] and [`ConfigError`].

mod durations;
mod error;
mod load;
mod located;
mod model;
mod ollama;
mod service;
mod validate;

#[cfg(test)]
mod tests;

pub use durations::{MAX_HOLD_SECS, MAX_STABILIZATION_SECS, MAX_WAIT_SECS};
pub use error::{ConfigError, ConfigIssue};
pub use located::Located;
pub use model::{
    ApiConfig, AutoscalerConfig, BusinessHoursConfig, Config, DockerEndpoint, GrafanaConfig,
    LoadBalancerConfig, MonitoringConfig, PrometheusConfig, ServerConfig, SshConfig,
    DEFAULT_DOCKER_SOCKET,
};
pub use ollama::{ActivatorConfig, GpuRequest, ServerGpus, WarmupConfig, DEFAULT_IDLE_SECS};
pub use service::{HealthCheckConfig, ServiceConfig};
pub use validate::{parse_hhmm, parse_memory};
