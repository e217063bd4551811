//! The ranges of counts and numbers in the config, each with the reason for its bound
//! (the ranges of values in seconds are in `durations.rs`). [`Config::validate`] refuses a
//! value outside its range with its position, so the arithmetic done on them (sums of
//! replicas, steps, products of utilization) stays far from overflow.
//!
//! [`Config::validate`]: super::Config::validate

/// A range of whole numbers and why it is bounded, for the refusal message.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// Smallest accepted value.
    pub min: u32,
    /// Largest accepted value.
    pub max: u32,
    /// The bound in words and the reason for it.
    pub why: &'static str,
}

/// Most replicas of one service (`min_replicas`, `max_replicas`, `off_hours_replicas`,
/// `max_scale_step`).
pub const MAX_REPLICAS: u32 = 1000;

/// `min_replicas`, `max_replicas` and `max_scale_step`: 1 to [`MAX_REPLICAS`].
pub const REPLICAS: Range = Range {
    min: 1,
    max: MAX_REPLICAS,
    why: "a fleet of servers run by shoal holds far fewer; more is likely a typo",
};

/// Most containers shoal may run on one server (`max_containers`).
pub const MAX_CONTAINERS_PER_SERVER: u32 = 10_000;

/// `servers[].max_containers`: 0 (shoal places nothing there) to
/// [`MAX_CONTAINERS_PER_SERVER`].
pub const CONTAINERS_PER_SERVER: Range = Range {
    min: 0,
    max: MAX_CONTAINERS_PER_SERVER,
    why: "0 keeps shoal's replicas off the server",
};

/// `health_check.unhealthy_threshold`: 1 to 1000 consecutive failed checks (HAProxy's
/// `fall`).
pub const CHECK_THRESHOLD: Range = Range {
    min: 1,
    max: 1000,
    why: "consecutive failed checks before a replica is replaced",
};

/// Most servers in the fleet.
pub const MAX_SERVERS: usize = 1000;

/// Largest percentage accepted for `scale_up_threshold`, `scale_down_threshold` and
/// `target_utilization`: 10 000 % (100 cores busy, for a service without a `cpus` limit,
/// whose utilization is relative to one core).
pub const MAX_PERCENT: f64 = 10_000.0;

/// Smallest `cpus` (Docker refuses less than 0.01 of a core).
pub const MIN_CPUS: f64 = 0.01;

/// Largest `cpus` (no server has more cores; Docker refuses more than the server has).
pub const MAX_CPUS: f64 = 1024.0;

/// Largest `target_sessions_per_replica`.
pub const MAX_SESSIONS: f64 = 1e9;

/// `api.max_connections`: 1 to 65 535 connections served at once.
pub const API_CONNECTIONS: Range = Range {
    min: 1,
    max: 65_535,
    why: "connections the API serves at once",
};

/// `api.max_body_bytes`: 0 to 16 MiB (no endpoint takes a body today).
pub const API_BODY_BYTES: Range = Range {
    min: 0,
    max: 16 << 20,
    why: "bytes of one request body",
};
