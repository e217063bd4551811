//! Problems found in a config file and how they display; YAML and serde errors turned into
//! such problems, with a "did you mean" for misspelt keys.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

/// One problem found in a config file, with its position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigIssue {
    /// 1-based line (0: the problem has no single position).
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// What is wrong, naming the key.
    pub message: String,
}

/// Why a config file was refused. Displays as one `file:line:column: message` line per issue.
#[derive(Clone, Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `<string>`).
    pub file: String,
    /// Every problem found.
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if issue.line == 0 {
                write!(f, "{}: error: {}", self.file, issue.message)?;
            } else {
                write!(
                    f,
                    "{}:{}:{}: error: {}",
                    self.file, issue.line, issue.column, issue.message
                )?;
            }
        }
        Ok(())
    }
}

/// Turns a YAML/serde error into an issue, adding a "did you mean" to unknown keys.
pub(super) fn issue_from_yaml_error(e: &serde_saphyr::Error) -> ConfigIssue {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut message = e.without_snippet().to_string();
    // The plain rendering may repeat the position; keep only the message.
    if let Some(idx) = message.find(" at line ") {
        message.truncate(idx);
    }
    let mut message = message.trim().to_owned();
    for (serde_says, we_say) in [
        ("invalid u32", "expected a whole number >= 0"),
        ("invalid u64", "expected a whole number >= 0"),
        ("invalid f64", "expected a number"),
        ("invalid floating point", "expected a number"),
        ("invalid boolean", "expected true or false"),
        (
            "expected sequence start",
            "expected a list (`- item` lines or [a, b])",
        ),
        (
            "expected mapping start",
            "expected a map (`key: value` lines)",
        ),
        (
            "unexpected end of input",
            "the file ends before the config does",
        ),
    ] {
        if message.starts_with(serde_says) {
            message = format!("{we_say} ({message})");
        }
    }
    // Advice meant for programmers calling the YAML library, not for a config's author.
    for (library_says, we_say) in [
        (
            ", set DuplicateKeyPolicy in Options if acceptable",
            " (each key may appear once per map)",
        ),
        (
            "; use from_str_multiple or from_str_multiple_with_options",
            " (a config is one document: remove the `---` separator)",
        ),
    ] {
        if let Some(i) = message.find(library_says) {
            message.replace_range(i..i + library_says.len(), we_say);
        }
    }
    ConfigIssue {
        line,
        column,
        message: add_did_you_mean(&message),
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" adds the closest known key.
fn add_did_you_mean(message: &str) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return message.to_owned();
    };
    let Some((unknown, tail)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let list = tail.split("expected one of").nth(1).unwrap_or("");
    let expected: BTreeSet<&str> = list
        .split(',')
        .map(|k| k.trim().trim_matches('`'))
        .filter(|k| !k.is_empty())
        .collect();
    let best = expected
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(unknown.len()) / 3).max(2))
        .min();
    match best {
        Some((_, k)) => format!(
            "unknown key `{unknown}` (did you mean `{k}`?); {}",
            tail_list(tail)
        ),
        None => format!("unknown key `{unknown}`; {}", tail_list(tail)),
    }
}

fn tail_list(tail: &str) -> String {
    tail.trim_start_matches(',').trim().to_owned()
}

/// Levenshtein distance, for "did you mean".
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
