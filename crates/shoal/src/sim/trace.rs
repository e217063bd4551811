//! Load traces: [`TracePoint`], reading and parsing a `time,load` CSV file, and
//! [`SimError`] naming `file:line`.

use std::fmt;
use std::path::Path;

use serde::Serialize;

/// One point of a load trace.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TracePoint {
    /// Seconds from the start of the trace.
    pub time: f64,
    /// Offered load, in the unit of [`Model::capacity`](super::Model::capacity) (e.g.
    /// requests per second).
    pub load: f64,
}

/// A trace file could not be used. Displays as `file:line: error: message` (`file: error:
/// message` when no line applies).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SimError {
    /// The trace file.
    pub file: String,
    /// 1-based line, 0 when the problem has no line (the file cannot be read).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: error: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: error: {}", self.file, self.line, self.message)
        }
    }
}

/// Reads a trace: a `time,load` CSV header, then one `time,load` row per point.
///
/// Header columns are found by name (extra columns are ignored); `#` comment lines and
/// blank lines are skipped. Times are seconds, non-decreasing; loads are >= 0. At least two
/// points are needed, the last marking the end. Every error names `file:line`.
pub fn load_trace(path: &Path) -> Result<Vec<TracePoint>, SimError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SimError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read the trace: {e}"),
    })?;
    parse_trace(&text, &file)
}

/// Parses trace text; `file` names it in errors. See [`load_trace`].
pub fn parse_trace(text: &str, file: &str) -> Result<Vec<TracePoint>, SimError> {
    let err = |line: usize, message: String| SimError {
        file: file.to_owned(),
        line: line as u64,
        message,
    };
    let mut columns: Option<(usize, usize, usize)> = None; // (time, load, needed fields)
    let mut points: Vec<TracePoint> = Vec::new();
    let mut last_line = 1;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        last_line = n;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let Some((ti, li, needed)) = columns else {
            let find = |name: &str| fields.iter().position(|f| f.eq_ignore_ascii_case(name));
            let (Some(ti), Some(li)) = (find("time"), find("load")) else {
                let missing = if find("time").is_none() {
                    "time"
                } else {
                    "load"
                };
                return Err(err(
                    n,
                    format!(
                        "missing column `{missing}`: the header must be `time,load`, got {line:?}"
                    ),
                ));
            };
            columns = Some((ti, li, ti.max(li) + 1));
            continue;
        };
        if fields.len() < needed {
            let missing = if fields.len() <= ti { "time" } else { "load" };
            return Err(err(n, format!("missing column `{missing}` in {line:?}")));
        }
        let number = |idx: usize, name: &str| -> Result<f64, SimError> {
            let s = fields[idx];
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                Ok(_) => Err(err(n, format!("{name} {s:?} must be a finite number >= 0"))),
                Err(_) => Err(err(n, format!("{name} {s:?} is not a number"))),
            }
        };
        let time = number(ti, "time")?;
        let load = number(li, "load")?;
        if let Some(prev) = points.last() {
            if time < prev.time {
                return Err(err(
                    n,
                    format!("time goes backwards: {time} after {}", prev.time),
                ));
            }
        }
        points.push(TracePoint { time, load });
    }
    if columns.is_none() {
        return Err(err(
            last_line,
            "empty trace: no `time,load` header and no points".to_owned(),
        ));
    }
    match points.as_slice() {
        [] => Err(err(
            last_line,
            "empty trace: no points after the header".into(),
        )),
        [p] => Err(err(
            last_line,
            format!(
                "the trace has a single point (t={}): it needs a second one to mark its end",
                p.time
            ),
        )),
        [first, .., last] if last.time <= first.time => Err(err(
            last_line,
            format!(
                "the trace spans no time (every point is at t={})",
                first.time
            ),
        )),
        _ => Ok(points),
    }
}
