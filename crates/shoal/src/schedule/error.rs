//! [`ScheduleError`]: why a business-hours window could not be built.

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
