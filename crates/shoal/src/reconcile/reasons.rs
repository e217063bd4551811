//! Why the planner replaces or drains a replica: typed, so metrics and the journal read the
//! reason itself rather than classify a message.

use std::fmt;
use std::time::Duration;

use crate::engine::ContainerState;

/// Why a replica is replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The container exited or is dead.
    Exited {
        /// Docker's state.
        state: ContainerState,
        /// Docker's status text.
        status: String,
    },
    /// Docker is restarting it (its restart policy; shoal replaces it instead).
    Restarting,
    /// The container never reached `running` within the start period.
    NeverStarted,
    /// Running, but no passing health check within the start period.
    NeverHealthy {
        /// The start period.
        start_period: Duration,
        /// The last probe's error.
        last_error: Option<String>,
    },
    /// Registered in HAProxy, but HAProxy's own check did not pass within the start period.
    LbCheckNeverPassed {
        /// The start period.
        start_period: Duration,
    },
    /// Docker reports it `unhealthy`: the image's own HEALTHCHECK failed its retries (as
    /// Docker Swarm does, the replica is replaced).
    DockerUnhealthy {
        /// Docker's status text.
        status: String,
    },
    /// Failed `unhealthy_threshold` probes in a row.
    Unhealthy {
        /// Failures in a row.
        failures: u32,
        /// The last probe's error.
        last_error: Option<String>,
    },
    /// Its warm-up request failed `unhealthy_threshold` times in a row.
    WarmupFailed {
        /// Failures in a row.
        failures: u32,
        /// The last error.
        last_error: Option<String>,
    },
}

impl FailureReason {
    /// The label of `shoal_replica_replacements_total{reason}`: `exited` when the container
    /// stopped, `unhealthy` when it runs but fails its checks.
    #[must_use]
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Exited { .. } | Self::Restarting | Self::NeverStarted => "exited",
            Self::NeverHealthy { .. }
            | Self::LbCheckNeverPassed { .. }
            | Self::DockerUnhealthy { .. }
            | Self::Unhealthy { .. }
            | Self::WarmupFailed { .. } => "unhealthy",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let err = |e: &Option<String>| e.clone().unwrap_or_default();
        match self {
            Self::Exited { state, status } => {
                write!(f, "container {} ({status})", state.as_str())
            }
            Self::Restarting => f.write_str("Docker is restarting it"),
            Self::NeverStarted => f.write_str("container never started"),
            Self::NeverHealthy {
                start_period,
                last_error,
            } => write!(
                f,
                "no passing health check within start_period {}s ({})",
                start_period.as_secs(),
                err(last_error)
            ),
            Self::LbCheckNeverPassed { start_period } => write!(
                f,
                "HAProxy's health check did not pass within start_period {}s",
                start_period.as_secs()
            ),
            Self::DockerUnhealthy { status } => write!(
                f,
                "Docker reports it unhealthy: its image's HEALTHCHECK failed ({status})"
            ),
            Self::Unhealthy {
                failures,
                last_error,
            } => write!(
                f,
                "{failures} failed health checks in a row ({})",
                err(last_error)
            ),
            Self::WarmupFailed {
                failures,
                last_error,
            } => write!(
                f,
                "{failures} failed warm-up requests in a row ({})",
                err(last_error)
            ),
        }
    }
}

/// Why a replica is drained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainReason {
    /// More replicas than wanted.
    Surplus {
        /// Active replicas.
        active: u32,
        /// Wanted (desired, plus a rollout's surge replica).
        target: u32,
    },
    /// Its rollout replacement is in rotation.
    ReplacedByRollout,
}

impl fmt::Display for DrainReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Surplus { active, target } => {
                write!(f, "{active} replicas for a desired {target}")
            }
            Self::ReplacedByRollout => f.write_str("replaced by rollout"),
        }
    }
}
