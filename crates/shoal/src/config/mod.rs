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
//!   [`std::time::Duration`]; [`limits`]: the ranges of counts and other numbers;
//! - [`syntax`]: the checks of hosts, addresses, paths, image references and tokens, shared
//!   with the code that hands those values to HAProxy, Docker and SSH;
//! - `load`: [`Config::load`] and [`Config::parse`]; `validate`: [`Config::validate`]
//!   (`tls`: the rules for `tcp://` engines, TLS or explicitly plain);
//! - `error`: [`ConfigIssue`] and [`ConfigError`].

mod durations;
mod error;
pub mod limits;
mod load;
mod located;
mod model;
mod ollama;
mod release;
mod service;
pub mod syntax;
mod tls;
mod validate;

#[cfg(test)]
mod tests;

pub use durations::{MAX_HOLD_SECS, MAX_STABILIZATION_SECS, MAX_WAIT_SECS};
pub use error::{ConfigError, ConfigIssue};
pub use load::{decode_text, MAX_CONFIG_BYTES};
pub use located::Located;
pub use model::{
    is_loopback_host, ApiConfig, AutoscalerConfig, BusinessHoursConfig, Config, DockerEndpoint,
    GrafanaConfig, LoadBalancerConfig, MonitoringConfig, PrometheusConfig, ServerConfig, SshConfig,
    DEFAULT_DOCKER_SOCKET,
};
pub use ollama::{ActivatorConfig, GpuRequest, ServerGpus, WarmupConfig, DEFAULT_IDLE_SECS};
pub use release::{registry_of, Credentials, RegistryConfig, RolloutConfig, MAX_PROGRESS_DEADLINE};
pub use service::{HealthCheckConfig, ServiceConfig};
pub use tls::CERT_FILES;
pub use validate::{parse_hhmm, parse_memory};
