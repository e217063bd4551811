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

/// Largest trace file read, bytes.
pub const MAX_TRACE_BYTES: u64 = 64 << 20;
/// Most points in a trace.
pub const MAX_POINTS: usize = 2_000_000;
/// Longest span of a trace, seconds (366 days).
pub const MAX_SPAN_SECONDS: f64 = 366.0 * 86_400.0;

/// Reads a trace: a `time,load` CSV header, then one `time,load` row per point.
///
/// Header columns are found by name (extra columns are ignored); `#` comment lines and
/// blank lines are skipped. Times are seconds, non-decreasing; loads are >= 0. At least two
/// points are needed, the last marking the end. A trace larger than [`MAX_TRACE_BYTES`],
/// with more than [`MAX_POINTS`] points or spanning more than [`MAX_SPAN_SECONDS`] is
/// refused before it is simulated. Every error names `file:line`.
pub fn load_trace(path: &Path) -> Result<Vec<TracePoint>, SimError> {
    use std::io::Read as _;
    let file = path.display().to_string();
    let err = |message: String| SimError {
        file: file.clone(),
        line: 0,
        message,
    };
    let f = std::fs::File::open(path).map_err(|e| err(format!("cannot read the trace: {e}")))?;
    // Read one byte past the limit, so a file that grows while read is caught too.
    let mut bytes = Vec::new();
    f.take(MAX_TRACE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot read the trace: {e}")))?;
    if bytes.len() as u64 > MAX_TRACE_BYTES {
        return Err(err(format!(
            "the trace is larger than {} MiB: refused",
            MAX_TRACE_BYTES >> 20
        )));
    }
    let text =
        String::from_utf8(bytes).map_err(|e| err(format!("the trace is not UTF-8 text ({e})")))?;
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
        if let Some(first) = points.first() {
            if time - first.time > MAX_SPAN_SECONDS {
                return Err(err(
                    n,
                    format!(
                        "the trace spans more than {} days (t={time} after t={}): refused",
                        MAX_SPAN_SECONDS / 86_400.0,
                        first.time
                    ),
                ));
            }
        }
        if points.len() == MAX_POINTS {
            return Err(err(
                n,
                format!("the trace has more than {MAX_POINTS} points: refused"),
            ));
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
