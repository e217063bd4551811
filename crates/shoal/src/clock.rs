//! Wall-clock time for decisions that depend on the calendar (cooldowns, business hours).
//!
//! Monotonic time comes from `tokio::time::Instant` everywhere, so tests on paused Tokio time
//! move it. [`Clock::Paused`] derives wall time from that monotonic time, so a test that
//! advances Tokio's clock by an hour also moves cooldowns and windows by an hour.

use jiff::Timestamp;
use tokio::time::Instant;

/// Where "now" comes from.
#[derive(Clone, Copy, Debug, Default)]
pub enum Clock {
    /// The system clock (production).
    #[default]
    System,
    /// `start` plus the Tokio time elapsed since `origin` (tests on paused time).
    Paused {
        /// Wall time at `origin`.
        start: Timestamp,
        /// Tokio instant at which the wall time was `start`.
        origin: Instant,
    },
}

impl Clock {
    /// A clock that reads `start` now and advances with Tokio's (possibly paused) time.
    #[must_use]
    pub fn paused_at(start: Timestamp) -> Self {
        Self::Paused {
            start,
            origin: Instant::now(),
        }
    }

    /// The wall time now.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        match self {
            Self::System => Timestamp::now(),
            Self::Paused { start, origin } => {
                start.saturating_add(origin.elapsed()).unwrap_or(*start)
            }
        }
    }
}
