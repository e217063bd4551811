//! Extraction of the `"work"` field from a `/api/generate` body, and the CPU burner.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Milliseconds of CPU burned when the body has no `"work"` field.
pub const DEFAULT_WORK_MS: u64 = 50;
/// Upper bound on `"work"`; larger values are clamped.
pub const MAX_WORK_MS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkError {
    /// The body is not a JSON object (or is syntactically broken).
    InvalidJson,
    /// `"work"` is present but neither a number nor `null`.
    InvalidWork,
}

impl WorkError {
    pub fn message(self) -> &'static str {
        match self {
            WorkError::InvalidJson => "invalid JSON body: expected an object",
            WorkError::InvalidWork => "invalid \"work\": expected a number of milliseconds",
        }
    }
}

/// Milliseconds of work requested by a generate body.
///
/// The body must be a JSON object (an empty or all-whitespace body counts as
/// `{}`). Only top-level keys are considered, so a `"work"` inside `"prompt"`
/// or `"options"` is ignored. A missing or `null` `"work"` yields
/// [`DEFAULT_WORK_MS`]; numbers are truncated and clamped to
/// `0..=MAX_WORK_MS`. If the key is repeated the last one wins. Keys written
/// with escape sequences (`"\u0077ork"`) are not recognised.
pub fn work_ms(body: &[u8]) -> Result<u64, WorkError> {
    let mut s = Scanner { b: body, pos: 0 };
    s.skip_ws();
    if s.at_end() {
        return Ok(DEFAULT_WORK_MS);
    }
    s.expect(b'{')?;
    let mut work: Option<u64> = None;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            s.skip_ws();
            let key = s.string()?;
            s.skip_ws();
            s.expect(b':')?;
            s.skip_ws();
            if key == b"work" {
                work = s.work_value()?;
            } else {
                s.skip_value()?;
            }
            s.skip_ws();
            match s.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(WorkError::InvalidJson),
            }
        }
    }
    s.skip_ws();
    if !s.at_end() {
        return Err(WorkError::InvalidJson);
    }
    Ok(work.unwrap_or(DEFAULT_WORK_MS))
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), WorkError> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(WorkError::InvalidJson)
        }
    }

    /// A string literal; returns its raw (still escaped) contents.
    fn string(&mut self) -> Result<&'a [u8], WorkError> {
        self.expect(b'"')?;
        let start = self.pos;
        loop {
            match self.next() {
                Some(b'"') => return Ok(&self.b[start..self.pos - 1]),
                Some(b'\\') => {
                    self.next().ok_or(WorkError::InvalidJson)?;
                }
                Some(_) => {}
                None => return Err(WorkError::InvalidJson),
            }
        }
    }

    /// A bare scalar token (number, `true`, `false`, `null`).
    fn scalar(&mut self) -> Result<&'a [u8], WorkError> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"+-.".contains(&c)) {
            self.pos += 1;
        }
        if self.pos == start {
            Err(WorkError::InvalidJson)
        } else {
            Ok(&self.b[start..self.pos])
        }
    }

    fn work_value(&mut self) -> Result<Option<u64>, WorkError> {
        if self.peek() == Some(b'"') || self.peek() == Some(b'{') || self.peek() == Some(b'[') {
            return Err(WorkError::InvalidWork);
        }
        let token = self.scalar()?;
        if token == b"null" {
            return Ok(None);
        }
        let n: f64 = std::str::from_utf8(token)
            .ok()
            .filter(|t| t.starts_with(|c: char| c == '-' || c.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .filter(|n: &f64| n.is_finite())
            .ok_or(WorkError::InvalidWork)?;
        // `as` saturates; negative values become 0.
        Ok(Some((n as u64).min(MAX_WORK_MS)))
    }

    /// Skip any JSON value. Nested containers are only checked for balance.
    fn skip_value(&mut self) -> Result<(), WorkError> {
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        Some(b'"') => {
                            self.string()?;
                            continue;
                        }
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Ok(());
                            }
                        }
                        Some(_) => {}
                        None => return Err(WorkError::InvalidJson),
                    }
                    self.pos += 1;
                }
            }
            _ => self.scalar().map(drop),
        }
    }
}

/// Spin the current thread for `duration` of wall-clock time, doing integer
/// arithmetic the optimiser cannot remove. Returns the final state so callers
/// can `black_box` it too.
pub fn burn_cpu(duration: Duration) -> u64 {
    let start = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while start.elapsed() < duration {
        // ~a few microseconds per batch, so the clock check is cheap
        // relative to the work but the overshoot stays negligible.
        for _ in 0..2048 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x = black_box(x);
        }
    }
    black_box(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Result<u64, WorkError> {
        work_ms(s.as_bytes())
    }

    #[test]
    fn defaults() {
        assert_eq!(w(""), Ok(DEFAULT_WORK_MS));
        assert_eq!(w("  \r\n\t "), Ok(DEFAULT_WORK_MS));
        assert_eq!(w("{}"), Ok(DEFAULT_WORK_MS));
        assert_eq!(w(" { } "), Ok(DEFAULT_WORK_MS));
        assert_eq!(w(r#"{"prompt":"hi","model":"x"}"#), Ok(DEFAULT_WORK_MS));
        assert_eq!(w(r#"{"work":null}"#), Ok(DEFAULT_WORK_MS));
    }

    #[test]
    fn plain_values() {
        assert_eq!(w(r#"{"work":200}"#), Ok(200));
        assert_eq!(w(r#"{"work":0}"#), Ok(0));
        assert_eq!(w("{\n  \"work\" :\t 7 \n}\n"), Ok(7));
        assert_eq!(
            w(r#"{"model":"m","prompt":"p","work":120,"stream":false}"#),
            Ok(120)
        );
        assert_eq!(w(r#"{"work":12.9}"#), Ok(12));
        assert_eq!(w(r#"{"work":1e3}"#), Ok(1000));
    }

    #[test]
    fn clamping() {
        assert_eq!(w(r#"{"work":10000}"#), Ok(10_000));
        assert_eq!(w(r#"{"work":10001}"#), Ok(MAX_WORK_MS));
        assert_eq!(w(r#"{"work":99999999999999999999999999}"#), Ok(MAX_WORK_MS));
        assert_eq!(w(r#"{"work":-5}"#), Ok(0));
    }

    #[test]
    fn ignores_work_in_other_places() {
        assert_eq!(w(r#"{"prompt":"work","work":3}"#), Ok(3));
        assert_eq!(w(r#"{"prompt":"\"work\": 999","work":4}"#), Ok(4));
        assert_eq!(w(r#"{"options":{"work":999},"work":5}"#), Ok(5));
        assert_eq!(w(r#"{"options":{"work":999}}"#), Ok(DEFAULT_WORK_MS));
        assert_eq!(w(r#"{"a":[1,{"work":9},"]}"],"b":true,"work":6}"#), Ok(6));
        assert_eq!(w(r#"{"working":9,"work":8}"#), Ok(8));
        assert_eq!(w(r#"{"work":1,"work":2}"#), Ok(2));
    }

    #[test]
    fn invalid_work() {
        assert_eq!(w(r#"{"work":"200"}"#), Err(WorkError::InvalidWork));
        assert_eq!(w(r#"{"work":true}"#), Err(WorkError::InvalidWork));
        assert_eq!(w(r#"{"work":[1]}"#), Err(WorkError::InvalidWork));
        assert_eq!(w(r#"{"work":nan}"#), Err(WorkError::InvalidWork));
        assert_eq!(w(r#"{"work":inf}"#), Err(WorkError::InvalidWork));
    }

    #[test]
    fn invalid_json() {
        for body in [
            "[]",
            "200",
            "{",
            r#"{"work":1"#,
            r#"{"work" 1}"#,
            r#"{work:1}"#,
            r#"{"work":1,}"#,
            r#"{"work":1} x"#,
            r#"{"prompt":"unterminated}"#,
            r#"{"options":{"a":1}"#,
        ] {
            assert_eq!(w(body), Err(WorkError::InvalidJson), "{body}");
        }
    }

    #[test]
    fn burn_takes_roughly_the_requested_time() {
        let start = Instant::now();
        burn_cpu(Duration::from_millis(30));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(30), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
        let start = Instant::now();
        burn_cpu(Duration::ZERO);
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
