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
//! only reports instants where [`BusinessHours::is_open`] actually flips.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

/// How many days ahead [`BusinessHours::next_change`] looks before giving up.
///
/// Any valid window changes state at least once a week, or once a fortnight when a week's
/// only window falls entirely inside a DST gap; this leaves a wide margin.
const HORIZON_DAYS: usize = 400;

/// Why a business-hours window could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A start or end time is not a valid `HH:MM` between 00:00 and 23:59.
    #[error("invalid time {input:?}: expected HH:MM between 00:00 and 23:59")]
    InvalidTime {
        /// The offending input, as given (or as `H:M` when given as numbers).
        input: String,
    },
    /// Start and end are the same time, so the window would be empty.
    #[error("start and end are both {time}: the window would be empty")]
    EmptyWindow {
        /// The shared start/end time, `HH:MM`.
        time: String,
    },
    /// The time zone name is not in the IANA time zone database.
    #[error("unknown time zone {name:?}: {reason}")]
    UnknownTimeZone {
        /// The name as given.
        name: String,
        /// What jiff said about it.
        reason: String,
    },
    /// A days entry is neither a weekday nor a range of weekdays.
    #[error(
        "invalid day {part:?} in days entry {entry:?}: expected a weekday \
         (mon, tue, wed, thu, fri, sat, sun, or the full name) or a range such as mon-fri"
    )]
    InvalidDay {
        /// The whole entry as given, e.g. `"mon-fry"`.
        entry: String,
        /// The part of it that is not a weekday, e.g. `"fry"`.
        part: String,
    },
    /// An explicit, empty list of days: the window would never open.
    #[error("no days given: the window would never open")]
    NoDays,
}

/// A business-hours window: `start`–`end` wall-clock time in a time zone, on some weekdays.
///
/// See the [module documentation](self) for the exact semantics (midnight crossing, DST).
#[derive(Clone, Debug)]
pub struct BusinessHours {
    start: Time,
    end: Time,
    tz: TimeZone,
    /// Indexed by Monday-zero weekday offset.
    days: [bool; 7],
}

/// A snapshot of a window at one instant, for reports and the HTTP API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowState {
    /// Whether the window is open at the instant asked about.
    pub open: bool,
    /// The next instant strictly after it at which `open` flips; `None` if it never does.
    /// Serialized as an RFC 3339 string in UTC, e.g. `"2026-03-30T07:00:00Z"`.
    #[serde(serialize_with = "serialize_opt_timestamp")]
    pub next_change: Option<Timestamp>,
    /// `next_change` as an RFC 3339 string with the window's local offset, e.g.
    /// `"2026-03-30T09:00:00+02:00"`.
    pub next_change_local: Option<String>,
    /// The window's time zone: its IANA name, or its fixed offset when it has no name.
    pub timezone: String,
}

fn serialize_opt_timestamp<S: serde::Serializer>(
    ts: &Option<Timestamp>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => s.collect_str(ts),
        None => s.serialize_none(),
    }
}

impl BusinessHours {
    /// Builds a window from `(hour, minute)` pairs, a time zone and the days it opens on.
    ///
    /// `days: None` means all seven days; duplicates are ignored. `end < start` makes an
    /// overnight window that closes on the day after it opens.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::InvalidTime`] for times outside 00:00–23:59,
    /// [`ScheduleError::EmptyWindow`] when `start == end`, and [`ScheduleError::NoDays`] for
    /// `Some(vec![])`.
    pub fn new(
        start: (i8, i8),
        end: (i8, i8),
        tz: TimeZone,
        days: Option<Vec<Weekday>>,
    ) -> Result<Self, ScheduleError> {
        let to_time = |(h, m): (i8, i8)| {
            Time::new(h, m, 0, 0).map_err(|_| ScheduleError::InvalidTime {
                input: format!("{h}:{m}"),
            })
        };
        let (start, end) = (to_time(start)?, to_time(end)?);
        if start == end {
            return Err(ScheduleError::EmptyWindow { time: hhmm(start) });
        }
        let days = match days {
            None => [true; 7],
            Some(list) => {
                if list.is_empty() {
                    return Err(ScheduleError::NoDays);
                }
                let mut set = [false; 7];
                for d in list {
                    set[day_index(d)] = true;
                }
                set
            }
        };
        Ok(Self {
            start,
            end,
            tz,
            days,
        })
    }

    /// Builds a window from configuration strings.
    ///
    /// * `start`, `end`: `HH:MM` (or `H:MM`), 24 h, 00:00–23:59.
    /// * `tz_name`: an IANA time zone name such as `Europe/Berlin` (case-insensitive).
    /// * `days`: entries naming a weekday (`mon`, `Monday`, or any prefix of the full name of
    ///   at least three letters, such as `tues`, `thurs`), or an inclusive range of them
    ///   (`mon-fri`; a range may wrap around the week, `fri-mon` is Friday to Monday). An
    ///   entry may also hold several comma-separated items (`"mon-wed,fri"`).
    ///   Case-insensitive, surrounding whitespace ignored. An empty slice means all seven days.
    ///
    /// # Errors
    ///
    /// As [`BusinessHours::new`], plus [`ScheduleError::UnknownTimeZone`] and
    /// [`ScheduleError::InvalidDay`] naming the entry and the part of it that is not a day.
    pub fn parse(
        start: &str,
        end: &str,
        tz_name: &str,
        days: &[String],
    ) -> Result<Self, ScheduleError> {
        let (start, end) = (parse_hhmm(start)?, parse_hhmm(end)?);
        let tz = TimeZone::get(tz_name).map_err(|e| ScheduleError::UnknownTimeZone {
            name: tz_name.to_owned(),
            reason: e.to_string(),
        })?;
        let days = if days.is_empty() {
            None
        } else {
            let mut list = Vec::new();
            for entry in days {
                parse_days_entry(entry, &mut list)?;
            }
            Some(list)
        };
        Self::new(start, end, tz, days)
    }

    /// The opening wall-clock time.
    pub fn start(&self) -> Time {
        self.start
    }

    /// The closing wall-clock time (on the next day when it is before [`Self::start`]).
    pub fn end(&self) -> Time {
        self.end
    }

    /// Whether the window crosses midnight (`end < start`).
    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }

    /// The time zone the wall-clock times are in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The days the window opens on, Monday first.
    pub fn days(&self) -> Vec<Weekday> {
        (0..7i8)
            .filter(|&i| self.days[i as usize])
            .filter_map(|i| Weekday::from_monday_zero_offset(i).ok())
            .collect()
    }

    /// The time zone's IANA name, or its fixed offset (or `"unknown"`) when it has none.
    pub fn timezone_name(&self) -> String {
        match self.tz.iana_name() {
            Some(name) => name.to_owned(),
            None => self
                .tz
                .to_fixed_offset()
                .map(|o| o.to_string())
                .unwrap_or_else(|_| "unknown".to_owned()),
        }
    }

    /// Whether the window is open at `at`: open at exactly the opening instant, closed at
    /// exactly the closing instant.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let Some(first) = self.first_candidate_day(at) else {
            return false;
        };
        // The windows that can contain `at` opened on its local date or shortly before; the
        // extra days on either side absorb offsets shifting wall time across midnight.
        std::iter::successors(Some(first), |d| d.tomorrow().ok())
            .take(5)
            .filter_map(|d| self.interval(d))
            .any(|(open, close)| open <= at && at < close)
    }

    /// The first instant strictly after `at` at which [`Self::is_open`] changes value.
    ///
    /// `None` only when no change is found within 400 days (or before the end of
    /// jiff's supported range), which a valid window never hits in practice.
    pub fn next_change(&self, at: Timestamp) -> Option<Timestamp> {
        let first = self.first_candidate_day(at)?;
        // Merge consecutive days' intervals (they are ordered by opening instant) and stop at
        // the first merged open period that has not ended by `at`.
        let mut current: Option<(Timestamp, Timestamp)> = None;
        let mut day = Some(first);
        for _ in 0..HORIZON_DAYS {
            let Some(d) = day else { break };
            if let Some((open, close)) = self.interval(d) {
                current = match current {
                    Some((a, b)) if open <= b => Some((a, b.max(close))),
                    Some((a, b)) if b > at => return Some(if a > at { a } else { b }),
                    _ => Some((open, close)),
                };
            }
            day = d.tomorrow().ok();
        }
        // Out of days: an opening edge is still certain, a closing edge might yet be merged.
        current.and_then(|(a, _)| (a > at).then_some(a))
    }

    /// Whether the window is open at `at`, when that next changes, and in which zone.
    pub fn state(&self, at: Timestamp) -> WindowState {
        let next_change = self.next_change(at);
        WindowState {
            open: self.is_open(at),
            next_change,
            next_change_local: next_change
                .map(|ts| ts.display_with_offset(self.tz.to_offset(ts)).to_string()),
            timezone: self.timezone_name(),
        }
    }

    /// Two days before `at`'s local date: early enough that no earlier day's window can
    /// still be open at `at`.
    fn first_candidate_day(&self, at: Timestamp) -> Option<Date> {
        let date = self.tz.to_datetime(at).date();
        date.yesterday().ok()?.yesterday().ok()
    }

    /// The open interval `[open, close)` of the window that opens on `day`, if `day` is a
    /// listed day and the interval is not empty after DST resolution.
    fn interval(&self, day: Date) -> Option<(Timestamp, Timestamp)> {
        if !self.days[day_index(day.weekday())] {
            return None;
        }
        let close_day = if self.crosses_midnight() {
            day.tomorrow().ok()?
        } else {
            day
        };
        let open = self.instant(day, self.start)?;
        let close = self.instant(close_day, self.end)?;
        (open < close).then_some((open, close))
    }

    /// The instant the zone's clocks show `time` on `day`, resolving gaps and folds with the
    /// "compatible" strategy (gap: shifted forward; fold: the earlier instant).
    fn instant(&self, day: Date, time: Time) -> Option<Timestamp> {
        self.tz
            .to_ambiguous_timestamp(day.to_datetime(time))
            .compatible()
            .ok()
    }
}

fn day_index(d: Weekday) -> usize {
    d.to_monday_zero_offset() as usize
}

fn hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// Parses `HH:MM` or `H:MM`, digits only, 00:00–23:59.
fn parse_hhmm(s: &str) -> Result<(i8, i8), ScheduleError> {
    let bad = || ScheduleError::InvalidTime {
        input: s.to_owned(),
    };
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !digits(h) || !digits(m) {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if (0..24).contains(&h) && (0..60).contains(&m) {
        Ok((h, m))
    } else {
        Err(bad())
    }
}

const DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Parses one `days` entry (`"mon"`, `"Monday"`, `"mon-fri"`, `"mon-wed,fri"`) into `out`.
fn parse_days_entry(entry: &str, out: &mut Vec<Weekday>) -> Result<(), ScheduleError> {
    let day = |part: &str| -> Result<i8, ScheduleError> {
        let p = part.trim().to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .position(|name| p.len() >= 3 && name.starts_with(&p))
            .map(|i| i as i8)
            .ok_or_else(|| ScheduleError::InvalidDay {
                entry: entry.to_owned(),
                part: part.trim().to_owned(),
            })
    };
    for item in entry.split(',') {
        let (from, to) = match item.split_once('-') {
            Some((a, b)) => (day(a)?, day(b)?),
            None => {
                let d = day(item)?;
                (d, d)
            }
        };
        let len = (to - from).rem_euclid(7) + 1;
        for k in 0..len {
            if let Ok(wd) = Weekday::from_monday_zero_offset((from + k) % 7) {
                out.push(wd);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn bh(start: &str, end: &str, tz: &str, days: &[&str]) -> BusinessHours {
        let days: Vec<String> = days.iter().map(|s| s.to_string()).collect();
        BusinessHours::parse(start, end, tz, &days).unwrap()
    }

    /// Total open time within `[from, to)`, walking `next_change`.
    fn open_time(w: &BusinessHours, from: Timestamp, to: Timestamp) -> SignedDuration {
        let mut total = SignedDuration::ZERO;
        let mut t = from;
        while t < to {
            let next = w.next_change(t).unwrap().min(to);
            if w.is_open(t) {
                total += next - t;
            }
            t = next;
        }
        total
    }

    const NS: SignedDuration = SignedDuration::from_nanos(1);

    #[test]
    fn plain_window_edges_inclusive_start_exclusive_end() {
        let w = bh("09:00", "17:00", "UTC", &[]);
        assert!(!w.is_open(ts("2026-05-06T08:59:59.999999999Z")));
        assert!(w.is_open(ts("2026-05-06T09:00:00Z")));
        assert!(w.is_open(ts("2026-05-06T12:00:00Z")));
        assert!(w.is_open(ts("2026-05-06T16:59:59.999999999Z")));
        assert!(!w.is_open(ts("2026-05-06T17:00:00Z")));
        assert!(!w.is_open(ts("2026-05-06T23:00:00Z")));
    }

    #[test]
    fn plain_window_next_change_before_in_after() {
        let w = bh("09:00", "17:00", "UTC", &[]);
        let nc = |s| w.next_change(ts(s)).unwrap();
        assert_eq!(nc("2026-05-06T03:00:00Z"), ts("2026-05-06T09:00:00Z"));
        // Strictly after: at the opening edge the next change is the close.
        assert_eq!(nc("2026-05-06T09:00:00Z"), ts("2026-05-06T17:00:00Z"));
        assert_eq!(nc("2026-05-06T12:00:00Z"), ts("2026-05-06T17:00:00Z"));
        assert_eq!(nc("2026-05-06T17:00:00Z"), ts("2026-05-07T09:00:00Z"));
        assert_eq!(nc("2026-05-06T20:00:00Z"), ts("2026-05-07T09:00:00Z"));
    }

    #[test]
    fn weekdays_only_closed_on_weekend_and_friday_close_points_to_monday() {
        let w = bh("09:00", "17:00", "UTC", &["mon-fri"]);
        // 2026-05-08 is a Friday.
        assert!(w.is_open(ts("2026-05-08T10:00:00Z")));
        assert!(!w.is_open(ts("2026-05-09T10:00:00Z")));
        assert!(!w.is_open(ts("2026-05-10T10:00:00Z")));
        assert_eq!(
            w.next_change(ts("2026-05-08T17:00:00Z")),
            Some(ts("2026-05-11T09:00:00Z"))
        );
        assert_eq!(
            w.next_change(ts("2026-05-09T12:00:00Z")),
            Some(ts("2026-05-11T09:00:00Z"))
        );
    }

    #[test]
    fn overnight_window_open_across_midnight() {
        let w = bh("22:00", "06:00", "UTC", &[]);
        assert!(w.crosses_midnight());
        assert!(w.is_open(ts("2026-05-06T22:00:00Z")));
        assert!(w.is_open(ts("2026-05-06T23:00:00Z")));
        assert!(w.is_open(ts("2026-05-07T00:00:00Z")));
        assert!(w.is_open(ts("2026-05-07T05:59:00Z")));
        assert!(!w.is_open(ts("2026-05-07T06:00:00Z")));
        assert!(!w.is_open(ts("2026-05-07T21:59:00Z")));
        assert_eq!(
            w.next_change(ts("2026-05-06T23:00:00Z")),
            Some(ts("2026-05-07T06:00:00Z"))
        );
        assert_eq!(
            w.next_change(ts("2026-05-07T12:00:00Z")),
            Some(ts("2026-05-07T22:00:00Z"))
        );
    }

    #[test]
    fn overnight_window_belongs_to_the_day_it_opens() {
        // 2026-05-08 is a Friday.
        let w = bh("22:00", "06:00", "UTC", &["fri"]);
        assert!(!w.is_open(ts("2026-05-08T03:00:00Z"))); // Thursday night: not listed
        assert!(w.is_open(ts("2026-05-08T23:00:00Z")));
        assert!(w.is_open(ts("2026-05-09T03:00:00Z")));
        assert!(!w.is_open(ts("2026-05-09T06:00:00Z")));
        assert!(!w.is_open(ts("2026-05-09T23:00:00Z")));
        assert_eq!(
            w.next_change(ts("2026-05-09T03:00:00Z")),
            Some(ts("2026-05-09T06:00:00Z"))
        );
        assert_eq!(
            w.next_change(ts("2026-05-09T06:00:00Z")),
            Some(ts("2026-05-15T22:00:00Z"))
        );
    }

    #[test]
    fn window_ending_at_midnight_closes_at_next_days_start() {
        let w = bh("09:00", "00:00", "UTC", &["mon"]);
        // 2026-05-11 is a Monday.
        assert!(w.is_open(ts("2026-05-11T23:59:59Z")));
        assert!(!w.is_open(ts("2026-05-12T00:00:00Z")));
        assert!(!w.is_open(ts("2026-05-11T00:30:00Z")));
    }

    #[test]
    fn business_day_is_eight_hours_on_dst_change_days() {
        for (tz, day) in [
            ("Europe/Berlin", "2026-03-29"),
            ("Europe/Berlin", "2026-10-25"),
            ("America/New_York", "2026-03-08"),
            ("America/New_York", "2026-11-01"),
        ] {
            let w = bh("09:00", "17:00", tz, &[]);
            let date: Date = day.parse().unwrap();
            let from = w.time_zone().to_timestamp(date.at(0, 0, 0, 0)).unwrap();
            let to = w
                .time_zone()
                .to_timestamp(date.tomorrow().unwrap().at(0, 0, 0, 0))
                .unwrap();
            assert_eq!(open_time(&w, from, to).as_secs(), 28_800, "{tz} {day}");
        }
    }

    #[test]
    fn berlin_window_containing_spring_forward_is_three_hours() {
        let w = bh("01:00", "05:00", "Europe/Berlin", &[]);
        let nc = w.next_change(ts("2026-03-28T23:00:00Z")).unwrap();
        assert_eq!(nc, ts("2026-03-29T00:00:00Z")); // 01:00 CET
        let close = w.next_change(nc).unwrap();
        assert_eq!(close, ts("2026-03-29T03:00:00Z")); // 05:00 CEST
        assert_eq!((close - nc).as_secs(), 3 * 3600);
    }

    #[test]
    fn berlin_window_containing_fall_back_is_five_hours() {
        let w = bh("01:00", "05:00", "Europe/Berlin", &[]);
        let open = w.next_change(ts("2026-10-24T22:00:00Z")).unwrap();
        assert_eq!(open, ts("2026-10-24T23:00:00Z")); // 01:00 CEST
        let close = w.next_change(open).unwrap();
        assert_eq!(close, ts("2026-10-25T04:00:00Z")); // 05:00 CET
        assert_eq!((close - open).as_secs(), 5 * 3600);
    }

    #[test]
    fn new_york_window_containing_transitions() {
        let w = bh("01:00", "05:00", "America/New_York", &[]);
        let open = w.next_change(ts("2026-03-08T05:00:00Z")).unwrap();
        assert_eq!(open, ts("2026-03-08T06:00:00Z")); // 01:00 EST
        assert_eq!(w.next_change(open), Some(ts("2026-03-08T09:00:00Z"))); // 05:00 EDT
        let open = w.next_change(ts("2026-11-01T04:00:00Z")).unwrap();
        assert_eq!(open, ts("2026-11-01T05:00:00Z")); // 01:00 EDT
        assert_eq!(w.next_change(open), Some(ts("2026-11-01T10:00:00Z"))); // 05:00 EST
    }

    #[test]
    fn start_inside_spring_forward_gap_is_shifted_forward() {
        // 02:30 does not exist in Berlin on 2026-03-29: "compatible" gives 03:30 CEST.
        let w = bh("02:30", "05:00", "Europe/Berlin", &[]);
        let open = w.next_change(ts("2026-03-28T23:00:00Z")).unwrap();
        assert_eq!(open, ts("2026-03-29T01:30:00Z"));
        let s = w.state(ts("2026-03-28T23:00:00Z"));
        assert_eq!(
            s.next_change_local.as_deref(),
            Some("2026-03-29T03:30:00+02:00")
        );
        assert!(!w.is_open(ts("2026-03-29T01:29:59Z")));
        assert!(w.is_open(ts("2026-03-29T01:30:00Z")));
        assert_eq!(w.next_change(open), Some(ts("2026-03-29T03:00:00Z")));
    }

    #[test]
    fn end_inside_spring_forward_gap_is_shifted_forward() {
        // 02:30 on 2026-03-29 is 03:30 CEST, so the window is 01:00 CET - 03:30 CEST: 1.5 h.
        let w = bh("01:00", "02:30", "Europe/Berlin", &[]);
        let open = w.next_change(ts("2026-03-28T23:00:00Z")).unwrap();
        assert_eq!(open, ts("2026-03-29T00:00:00Z"));
        assert_eq!(w.next_change(open), Some(ts("2026-03-29T01:30:00Z")));
    }

    #[test]
    fn window_emptied_by_spring_forward_gap_is_skipped() {
        // 02:30 -> 03:30 CEST but 03:00 is 03:00 CEST: closes before it opens, so no window
        // on 2026-03-29; next opening is the following day.
        let w = bh("02:30", "03:00", "Europe/Berlin", &[]);
        assert!(!w.is_open(ts("2026-03-29T01:15:00Z")));
        assert_eq!(
            w.next_change(ts("2026-03-28T23:00:00Z")),
            Some(ts("2026-03-30T00:30:00Z"))
        );
    }

    #[test]
    fn start_inside_fall_back_fold_is_the_earlier_instant() {
        // 02:30 happens twice in Berlin on 2026-10-25: CEST (00:30Z) and CET (01:30Z).
        let w = bh("02:30", "04:00", "Europe/Berlin", &[]);
        let open = w.next_change(ts("2026-10-24T22:00:00Z")).unwrap();
        assert_eq!(open, ts("2026-10-25T00:30:00Z"));
        assert_eq!(w.next_change(open), Some(ts("2026-10-25T03:00:00Z")));
        // End inside the fold: also the earlier instant.
        let w = bh("01:00", "02:30", "Europe/Berlin", &[]);
        let open = w.next_change(ts("2026-10-24T22:00:00Z")).unwrap();
        assert_eq!(open, ts("2026-10-24T23:00:00Z"));
        assert_eq!(w.next_change(open), Some(ts("2026-10-25T00:30:00Z")));
    }

    #[test]
    fn overlapping_days_merge_into_one_open_period() {
        // 03:10-02:30 in Berlin. The window of Saturday 2026-03-28 opens 03:10 CET (02:10Z)
        // and closes at 02:30 on the 29th, which is in the gap: 03:30 CEST (01:30Z). But the
        // window of the 29th opens at 03:10 CEST (01:10Z), before that: the two overlap and
        // the window stays open until the 30th, 02:30 CEST (00:30Z).
        let w = bh("03:10", "02:30", "Europe/Berlin", &[]);
        let open = ts("2026-03-28T02:10:00Z");
        assert!(w.is_open(open));
        assert!(w.is_open(ts("2026-03-29T01:20:00Z")));
        assert!(w.is_open(ts("2026-03-29T01:30:00Z")));
        assert_eq!(w.next_change(open), Some(ts("2026-03-30T00:30:00Z")));
        // Touching windows merge too: 03:30-02:30 closes at 01:30Z as the next one opens.
        let w = bh("03:30", "02:30", "Europe/Berlin", &[]);
        assert_eq!(
            w.next_change(ts("2026-03-28T03:00:00Z")),
            Some(ts("2026-03-30T00:30:00Z"))
        );
        // With only Saturday listed, the Saturday window ends in the gap as usual.
        let w = bh("03:10", "02:30", "Europe/Berlin", &["sat"]);
        assert_eq!(
            w.next_change(ts("2026-03-28T02:10:00Z")),
            Some(ts("2026-03-29T01:30:00Z"))
        );
    }

    #[test]
    fn state_reports_open_next_change_and_zone() {
        let w = bh("09:00", "17:00", "Europe/Berlin", &["mon-fri"]);
        // Saturday 2026-03-28 12:00 CET; opens Monday 2026-03-30 09:00 CEST.
        let s = w.state(ts("2026-03-28T11:00:00Z"));
        assert!(!s.open);
        assert_eq!(s.next_change, Some(ts("2026-03-30T07:00:00Z")));
        assert_eq!(
            s.next_change_local.as_deref(),
            Some("2026-03-30T09:00:00+02:00")
        );
        assert_eq!(s.timezone, "Europe/Berlin");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "open": false,
                "next_change": "2026-03-30T07:00:00Z",
                "next_change_local": "2026-03-30T09:00:00+02:00",
                "timezone": "Europe/Berlin",
            })
        );
    }

    #[test]
    fn new_validates_times_days_and_empty_window() {
        let utc = TimeZone::UTC;
        assert!(matches!(
            BusinessHours::new((9, 0), (9, 0), utc.clone(), None),
            Err(ScheduleError::EmptyWindow { .. })
        ));
        assert!(matches!(
            BusinessHours::new((24, 0), (9, 0), utc.clone(), None),
            Err(ScheduleError::InvalidTime { .. })
        ));
        assert!(matches!(
            BusinessHours::new((9, 60), (10, 0), utc.clone(), None),
            Err(ScheduleError::InvalidTime { .. })
        ));
        assert_eq!(
            BusinessHours::new((9, 0), (17, 0), utc.clone(), Some(vec![])).unwrap_err(),
            ScheduleError::NoDays
        );
        let w = BusinessHours::new(
            (9, 0),
            (17, 0),
            utc,
            Some(vec![Weekday::Friday, Weekday::Monday, Weekday::Friday]),
        )
        .unwrap();
        assert_eq!(w.days(), vec![Weekday::Monday, Weekday::Friday]);
        assert_eq!(w.timezone_name(), "UTC");
    }

    #[test]
    fn parse_times_and_zone() {
        let w = bh("9:05", "17:30", "europe/berlin", &[]);
        assert_eq!(hhmm(w.start()), "09:05");
        assert_eq!(hhmm(w.end()), "17:30");
        assert_eq!(w.timezone_name(), "Europe/Berlin");
        assert_eq!(w.days().len(), 7);
        for bad in [
            "24:00", "9", "09:5", "09:60", "+9:00", "aa:bb", "", "123:00",
        ] {
            assert_eq!(
                BusinessHours::parse(bad, "17:00", "UTC", &[]).unwrap_err(),
                ScheduleError::InvalidTime { input: bad.into() },
                "{bad:?}"
            );
        }
        let e = BusinessHours::parse("09:00", "17:00", "Mars/Olympus", &[]).unwrap_err();
        assert!(
            matches!(&e, ScheduleError::UnknownTimeZone { name, .. } if name == "Mars/Olympus")
        );
        assert!(e.to_string().contains("Mars/Olympus"));
        assert!(matches!(
            BusinessHours::parse("09:00", "09:00", "UTC", &[]),
            Err(ScheduleError::EmptyWindow { time }) if time == "09:00"
        ));
    }

    #[test]
    fn parse_days_names_ranges_and_errors() {
        use Weekday::*;
        let days = |d: &[&str]| bh("09:00", "17:00", "UTC", d).days();
        assert_eq!(
            days(&["mon-fri"]),
            [Monday, Tuesday, Wednesday, Thursday, Friday]
        );
        assert_eq!(
            days(&["Monday", "TUE", "wednesday"]),
            [Monday, Tuesday, Wednesday]
        );
        assert_eq!(days(&["tues", "Thurs"]), [Tuesday, Thursday]);
        assert_eq!(days(&["fri-mon"]), [Monday, Friday, Saturday, Sunday]);
        assert_eq!(days(&[" sat - sun "]), [Saturday, Sunday]);
        assert_eq!(days(&["mon-wed,fri"]), [Monday, Tuesday, Wednesday, Friday]);
        assert_eq!(days(&["sun-sun"]), [Sunday]);
        let err =
            |d: &str| BusinessHours::parse("09:00", "17:00", "UTC", &[d.to_string()]).unwrap_err();
        assert_eq!(
            err("mon-fry"),
            ScheduleError::InvalidDay {
                entry: "mon-fry".into(),
                part: "fry".into()
            }
        );
        assert!(err("mo").to_string().contains("\"mo\""));
        assert!(matches!(err("funday"), ScheduleError::InvalidDay { .. }));
        assert!(matches!(err(""), ScheduleError::InvalidDay { .. }));
        assert!(matches!(err("mon-"), ScheduleError::InvalidDay { .. }));
    }

    const ZONES: [&str; 5] = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
    ];

    fn arb_window() -> impl Strategy<Value = BusinessHours> {
        (0..1440i32, 1..1440i32, 0..ZONES.len(), 1..128u8).prop_map(|(start, len, zone, mask)| {
            let end = (start + len) % 1440;
            let hm = |m: i32| ((m / 60) as i8, (m % 60) as i8);
            let days = (0..7)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| Weekday::from_monday_zero_offset(i).unwrap())
                .collect();
            let tz = TimeZone::get(ZONES[zone]).unwrap();
            BusinessHours::new(hm(start), hm(end), tz, Some(days)).unwrap()
        })
    }

    /// 2024-01-01T00:00:00Z .. 2030-01-01T00:00:00Z, with nanoseconds.
    fn arb_instant() -> impl Strategy<Value = Timestamp> {
        (1_704_067_200i64..1_893_456_000, 0..1_000_000_000i32)
            .prop_map(|(s, ns)| Timestamp::new(s, ns).unwrap())
    }

    /// The naive wall-clock definition, valid when no DST transition is near `at`.
    fn naive_is_open(w: &BusinessHours, at: Timestamp) -> bool {
        let dt = w.time_zone().to_datetime(at);
        let listed = |d: Date| w.days().contains(&d.weekday());
        let t = dt.time();
        if w.crosses_midnight() {
            (t >= w.start() && listed(dt.date()))
                || (t < w.end() && listed(dt.date().yesterday().unwrap()))
        } else {
            w.start() <= t && t < w.end() && listed(dt.date())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn prop_next_change_is_a_flip(w in arb_window(), t in arb_instant()) {
            let mut t = t;
            // Follow a few changes so edges themselves are also tested as starting points.
            for _ in 0..3 {
                let nc = w.next_change(t).expect("a valid window always changes");
                prop_assert!(nc > t);
                prop_assert!(nc - t <= SignedDuration::from_hours(8 * 24), "{t} -> {nc}");
                let before = w.is_open(t);
                prop_assert_eq!(w.is_open(nc - NS), before, "{} -> {}", t, nc);
                prop_assert_ne!(w.is_open(nc), before, "{} -> {}", t, nc);
                t = nc;
            }
        }

        #[test]
        fn prop_matches_wall_clock_away_from_transitions(
            w in arb_window(),
            t in arb_instant(),
        ) {
            let margin = SignedDuration::from_hours(50);
            let quiet = w
                .time_zone()
                .following(t - margin)
                .next()
                .is_none_or(|tr| tr.timestamp() > t + margin);
            // (~1% of instants are near a transition: skip them rather than reject them.)
            if quiet {
                prop_assert_eq!(w.is_open(t), naive_is_open(&w, t));
            }
        }
    }
}
