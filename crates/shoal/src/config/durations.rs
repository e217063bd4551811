//! Values given in seconds: the upper bound of each (checked by [`Config::validate`], so an
//! out-of-range value is refused at load time with its position), and accessors that return
//! them as [`Duration`], so callers need no `Duration::from_secs(*x)` of their own.
//!
//! The YAML values are `u64`; without a bound, `Duration::from_secs(huge)` followed by
//! `Instant + d`, `Timestamp + d` or a conversion to a signed duration panics or wraps. The
//! bounds are generous (far beyond any sensible setting) but finite, so all of that
//! arithmetic stays far from overflow. Each accessor also clamps to its bound, so it is total
//! even on a config that was built without [`Config::validate`].

use std::time::Duration;

use super::{
    ApiConfig, AutoscalerConfig, Config, HealthCheckConfig, LoadBalancerConfig, ServiceConfig,
};

/// Upper bound of intervals and timeouts, in seconds: one day.
///
/// Applies to `health_check.interval`, `health_check.timeout`, `health_check.start_period`,
/// `stop_timeout`, `load_balancer.timeout`, `load_balancer.drain_timeout`,
/// `autoscaler.check_interval`, `api.header_read_timeout` and `api.request_timeout`. Each is a wait the control loop makes (between two probes or
/// evaluations, for an answer, for a replica to start, drain or stop); a wait of a day
/// already means "never" for a control loop that reacts in seconds, and a larger number is
/// almost certainly a unit mistake (milliseconds written as seconds).
pub const MAX_WAIT_SECS: u64 = 24 * 60 * 60;

/// Upper bound of `cooldown_period`, in seconds: 30 days.
///
/// The cooldown holds automatic scaling after any action. A hold of a month is longer than
/// any sensible one (a service that must not scale for a month is better not autoscaled: set
/// `min_replicas` = `max_replicas`), yet still a real duration, not a disguised "forever".
pub const MAX_HOLD_SECS: u64 = 30 * 24 * 60 * 60;

/// Upper bound of `scale_down_stabilization`, in seconds: one day.
///
/// The target policy keeps one recommendation per evaluation for the length of this window,
/// so the bound also bounds that memory (86 400 entries at a 1 s `check_interval`); a
/// Kubernetes HPA uses 5 minutes, so a day leaves a wide margin.
pub const MAX_STABILIZATION_SECS: u64 = 24 * 60 * 60;

/// An upper bound in seconds and why it is there, for the refusal message.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limit {
    /// Largest accepted value, in seconds.
    pub(super) max: u64,
    /// The bound in words and the reason for it.
    pub(super) why: &'static str,
}

/// [`MAX_WAIT_SECS`] with its reason.
pub(super) const WAIT: Limit = Limit {
    max: MAX_WAIT_SECS,
    why: "one day; a longer wait means never to a control loop that reacts in seconds, \
          and is more likely a unit mistake",
};

/// [`MAX_HOLD_SECS`] with its reason.
pub(super) const HOLD: Limit = Limit {
    max: MAX_HOLD_SECS,
    why: "30 days; a longer hold means never scaling (set min_replicas = max_replicas \
          for that)",
};

/// [`MAX_STABILIZATION_SECS`] with its reason.
pub(super) const STABILIZATION: Limit = Limit {
    max: MAX_STABILIZATION_SECS,
    why: "one day; the window keeps one recommendation per evaluation",
};

/// `secs` as a [`Duration`], at most `max` seconds.
const fn secs(secs: u64, max: u64) -> Duration {
    Duration::from_secs(if secs < max { secs } else { max })
}

impl HealthCheckConfig {
    /// `interval`: time between two probes of a replica (at most [`MAX_WAIT_SECS`]).
    #[must_use]
    pub fn interval(&self) -> Duration {
        secs(self.interval.value, MAX_WAIT_SECS)
    }

    /// `timeout`: time after which a probe counts as failed (at most [`MAX_WAIT_SECS`]).
    #[must_use]
    pub fn timeout(&self) -> Duration {
        secs(self.timeout.value, MAX_WAIT_SECS)
    }

    /// `start_period`: time a new replica has to pass its first check (at most
    /// [`MAX_WAIT_SECS`]).
    #[must_use]
    pub fn start_period(&self) -> Duration {
        secs(self.start_period.value, MAX_WAIT_SECS)
    }
}

impl LoadBalancerConfig {
    /// `timeout`: bound of one runtime-API command (at most [`MAX_WAIT_SECS`]).
    #[must_use]
    pub fn timeout(&self) -> Duration {
        secs(self.timeout.value, MAX_WAIT_SECS)
    }

    /// `drain_timeout`: longest wait for a draining replica's sessions to end (at most
    /// [`MAX_WAIT_SECS`]).
    #[must_use]
    pub fn drain_timeout(&self) -> Duration {
        secs(self.drain_timeout.value, MAX_WAIT_SECS)
    }
}

impl ServiceConfig {
    /// `cooldown_period`: hold after any scale action (at most [`MAX_HOLD_SECS`]).
    #[must_use]
    pub fn cooldown_period(&self) -> Duration {
        secs(self.cooldown_period.value, MAX_HOLD_SECS)
    }

    /// `stop_timeout`: time a stopping container gets before SIGKILL (at most
    /// [`MAX_WAIT_SECS`]).
    #[must_use]
    pub fn stop_timeout(&self) -> Duration {
        secs(self.stop_timeout.value, MAX_WAIT_SECS)
    }

    /// `scale_down_stabilization`: the target policy's scale-down window (at most
    /// [`MAX_STABILIZATION_SECS`]).
    #[must_use]
    pub fn scale_down_stabilization(&self) -> Duration {
        secs(self.scale_down_stabilization.value, MAX_STABILIZATION_SECS)
    }
}

impl AutoscalerConfig {
    /// `check_interval`: time between two policy evaluations (at most [`MAX_WAIT_SECS`]).
    #[must_use]
    pub fn check_interval(&self) -> Duration {
        secs(self.check_interval.value, MAX_WAIT_SECS)
    }
}

impl ApiConfig {
    /// `header_read_timeout`: time a client has to send its request headers (at most
    /// [`MAX_WAIT_SECS`]).
    #[must_use]
    pub fn header_read_timeout(&self) -> Duration {
        secs(self.header_read_timeout.value, MAX_WAIT_SECS)
    }

    /// `request_timeout`: time from a request's headers to its answer (at most
    /// [`MAX_WAIT_SECS`]).
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        secs(self.request_timeout.value, MAX_WAIT_SECS)
    }
}

impl Config {
    /// Probe cadence of the control loop: how often health and membership are checked.
    #[must_use]
    pub fn check_interval(&self) -> Duration {
        self.autoscaler.check_interval()
    }
}
