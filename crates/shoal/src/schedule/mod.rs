//! Business-hours windows: when may a `business_hours_only` service scale?
//!
//! Pure: no IO and no clock. Every query takes the instant it is about as an argument, so
//! callers (and tests) decide what "now" is.
//!
//! # Model
//!
//! A [`BusinessHours`] window is a wall-clock start and end (`HH:MM`, 24 h) in an IANA time
//! zone, on a set of weekdays (default: all seven).
//!
//! * For each listed day `d` the window is open during the half-open interval
//!   `[open(d), close(d))`: open at exactly `start`, closed again at exactly `end`.
//! * When `end < start` the window crosses midnight (e.g. `22:00`–`06:00`): it opens on the
//!   listed day `d` at `start` and closes at `end` on the following calendar day. The "day"
//!   of an overnight window is the day it opens, so `fri 22:00–06:00` is open from Friday
//!   22:00 to Saturday 06:00, but not from Saturday 22:00.
//! * `start == end` is rejected ([`ScheduleError::EmptyWindow`]).
//!
//! # Daylight saving time
//!
//! `open(d)` and `close(d)` are the instants at which the zone's clocks show those wall times
//! on that date, so a `09:00`–`17:00` window follows the local clock all year round. Wall
//! times that do not map to exactly one instant are resolved with jiff's
//! [`compatible`](jiff::tz::AmbiguousTimestamp::compatible) strategy (RFC 5545):
//!
//! * a wall time inside a spring-forward **gap** (e.g. 02:30 in Europe/Berlin on 2026-03-29,
//!   when clocks jump 02:00 → 03:00) is shifted forward by the length of the gap: it becomes
//!   03:30 CEST (`2026-03-29T01:30:00Z`);
//! * a wall time inside a fall-back **fold** (e.g. 02:30 in Europe/Berlin on 2026-10-25, which
//!   happens twice) is the earlier of the two instants: 02:30 CEST (`2026-10-25T00:30:00Z`).
//!
//! Consequently a window that contains a transition is longer or shorter than its wall-clock
//! length on that day (01:00–05:00 Berlin is 3 real hours on 2026-03-29 and 5 on 2026-10-25).
//! If, after resolution, a day's window would close at or before it opens (only possible when
//! the window lies inside a gap, e.g. 02:30–03:00 on the spring-forward day), that day's window
//! is empty. If consecutive days' windows overlap or touch (possible for windows nearly 24 h
//! long across a fall-back), they merge into one open period: [`BusinessHours::next_change`]
//!
//! # Files
//!
//! `window`: [`BusinessHours`] and [`WindowState`]; `parse`: the `HH:MM` and `days` strings;
//! `error`: [`ScheduleError`].

mod error;
mod parse;
mod window;

#[cfg(test)]
mod tests;

pub use error::ScheduleError;
pub use parse::parse_hhmm as parse_time;
pub use window::{BusinessHours, WindowState};
