//! Parsing the configuration's strings: `HH:MM` times and `days` entries (weekday names and
//! ranges).

use jiff::civil::{Time, Weekday};

use super::ScheduleError;

pub(super) fn day_index(d: Weekday) -> usize {
    d.to_monday_zero_offset() as usize
}

pub(super) fn hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// Parses `HH:MM` or `H:MM`, digits only, 00:00–23:59. The config's validation uses this
/// same function, so what `config check` accepts is what the window is built from.
pub fn parse_hhmm(s: &str) -> Result<(i8, i8), ScheduleError> {
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
pub(super) fn parse_days_entry(entry: &str, out: &mut Vec<Weekday>) -> Result<(), ScheduleError> {
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
