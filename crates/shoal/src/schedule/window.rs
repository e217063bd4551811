//! [`BusinessHours`]: building a window, whether it is open at an instant, and when that
//! next changes ([`WindowState`]).

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::parse::{day_index, hhmm, parse_days_entry, parse_hhmm};
use super::ScheduleError;

/// How many days ahead [`BusinessHours::next_change`] looks before giving up.
///
/// Any valid window changes state at least once a week, or once a fortnight when a week's
/// only window falls entirely inside a DST gap; this leaves a wide margin.
const HORIZON_DAYS: usize = 400;

/// A business-hours window: `start`–`end` wall-clock time in a time zone, on some weekdays.
///
/// See the [module documentation](crate::schedule) for the exact semantics (midnight
/// crossing, DST).
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

impl WindowState {
    /// Pre-warming: whether the window, closed at `at`, opens within `lead` (the time a
    /// replica takes to start), so replicas started now are ready at the opening.
    #[must_use]
    pub fn opens_within(&self, at: Timestamp, lead: SignedDuration) -> bool {
        !self.open
            && self
                .next_change
                .is_some_and(|n| n > at && n.duration_since(at) <= lead)
    }

    /// When pre-warming for the next opening begins: `lead` before it (`None` while the
    /// window is open, or when it never opens).
    #[must_use]
    pub fn prewarm_at(&self, lead: SignedDuration) -> Option<Timestamp> {
        if self.open {
            return None;
        }
        self.next_change
            .map(|n| n.checked_sub(lead).unwrap_or(Timestamp::MIN))
    }
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
    #[cfg(test)]
    pub fn start(&self) -> Time {
        self.start
    }

    /// The closing wall-clock time (on the next day when it is before [`Self::start`]).
    #[cfg(test)]
    pub fn end(&self) -> Time {
        self.end
    }

    /// Whether the window crosses midnight (`end < start`).
    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }

    /// The time zone the wall-clock times are in.
    #[cfg(test)]
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The days the window opens on, Monday first.
    #[cfg(test)]
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
