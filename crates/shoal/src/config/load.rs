//! Reading a config file: refuse what is not a small regular UTF-8 file, parse, make its
//! relative paths absolute, validate.

use std::io::Read;
use std::path::Path;

use super::error::issue_from_yaml_error;
use super::{Config, ConfigError, ConfigIssue};

/// Largest config file read, in bytes (1 MiB). The seed's file is 2 KB; a fleet of a
/// thousand servers and a hundred services stays far below this. Anything larger is refused
/// before it is parsed, so a wrong path (a log, an image, `/dev/zero`) cannot exhaust memory.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    /// Reads and validates a config file. Contacts nothing.
    ///
    /// Refused up front: a path that is not a regular file (a directory, a device such as
    /// `/dev/zero`, a FIFO, a socket), a file larger than [`MAX_CONFIG_BYTES`], and text that
    /// is not UTF-8 (with the line and column of the first bad byte).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = read_config_text(path).map_err(|issue| ConfigError {
            file: file.clone(),
            issues: vec![issue],
        })?;
        let mut config = Self::parse_unvalidated(&text, &file)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
        config.resolve_relative_paths(&base);
        config.validated(&file, &text)
    }

    /// Makes file paths in the config absolute, relative to `base` (the config file's
    /// directory), so they mean the same whatever the working directory of `serve` or HAProxy.
    pub fn resolve_relative_paths(&mut self, base: &Path) {
        let lb = &mut self.load_balancer;
        if let Some(rest) = lb.runtime_api.value.strip_prefix("unix:") {
            if !rest.starts_with('/') && !rest.is_empty() {
                lb.runtime_api.value = format!("unix:{}", base.join(rest).display());
            }
        }
        if let Some(f) = &mut lb.config_file {
            if f.is_relative() && !f.as_os_str().is_empty() {
                f.value = base.join(&f.value);
            }
        }
        let state = &mut self.autoscaler.state_file;
        if state.is_relative() && !state.as_os_str().is_empty() {
            state.value = base.join(&state.value);
        }
        for s in &mut self.servers {
            if let Some(k) = &mut s.ssh_key {
                if k.is_relative() && !k.as_os_str().is_empty() {
                    k.value = base.join(&k.value);
                }
            }
            if let Some(p) = &mut s.docker_cert_path {
                if p.value.is_relative() {
                    p.value = base.join(&p.value);
                }
            }
        }
    }

    /// Parses and validates YAML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        Self::parse_unvalidated(text, file)?.validated(file, text)
    }

    /// Parses YAML text into the model (types, unknown keys), without the semantic checks.
    fn parse_unvalidated(text: &str, file: &str) -> Result<Self, ConfigError> {
        serde_saphyr::from_str(text).map_err(|e| {
            let mut issue = issue_from_yaml_error(&e);
            if let Some(key) = key_before(text, issue.line, issue.column) {
                if !issue.message.contains(&format!("`{key}`")) {
                    issue.message = format!("{key}: {}", issue.message);
                }
            }
            ConfigError {
                file: file.to_owned(),
                issues: vec![issue],
            }
        })
    }

    fn validated(self, file: &str, text: &str) -> Result<Self, ConfigError> {
        let mut issues = self.validate();
        for issue in &mut issues {
            place_top_level(issue, text);
        }
        if issues.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError {
                file: file.to_owned(),
                issues,
            })
        }
    }
}

/// An issue about a whole top-level section (`servers: at least one server is required`)
/// has no position of its own: it gets the position of the section's key in `text`.
fn place_top_level(issue: &mut ConfigIssue, text: &str) {
    if issue.line != 0 {
        return;
    }
    let Some((key, _)) = issue.message.split_once(':') else {
        return;
    };
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return;
    }
    let found = text.lines().position(|l| {
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    });
    if let Some(i) = found {
        issue.line = i as u64 + 1;
        issue.column = 1;
    }
}

/// Reads a config file's text, refusing non-regular files, files above
/// [`MAX_CONFIG_BYTES`] and invalid UTF-8 (with its position).
fn read_config_text(path: &Path) -> Result<String, ConfigIssue> {
    let whole = |message: String| ConfigIssue {
        line: 0,
        column: 0,
        message,
    };
    // `metadata` follows symlinks and opens nothing, so a FIFO is refused before an open
    // could block on it.
    let meta = std::fs::metadata(path).map_err(|e| whole(format!("cannot read the file: {e}")))?;
    if !meta.is_file() {
        return Err(whole(format!(
            "not a regular file (it is {}); give the path of a YAML file",
            file_kind(&meta)
        )));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(whole(too_large(meta.len())));
    }
    let f = std::fs::File::open(path).map_err(|e| whole(format!("cannot read the file: {e}")))?;
    let mut bytes = Vec::new();
    // The file may have grown since `metadata`: read one byte past the limit at most.
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole(format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(whole(too_large(bytes.len() as u64)));
    }
    decode_text(bytes)
}

fn too_large(len: u64) -> String {
    format!("the file is {len} bytes, more than the {MAX_CONFIG_BYTES}-byte limit of a config file")
}

/// The bytes as UTF-8, or an issue at the line and column of the first invalid byte.
pub fn decode_text(bytes: Vec<u8>) -> Result<String, ConfigIssue> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let before = &bytes[..at];
        let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        // Valid UTF-8 up to `at`, so the column counts characters.
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count() as u64
            + 1;
        ConfigIssue {
            line,
            column,
            message: format!(
                "the file is not valid UTF-8: byte 0x{:02x} at offset {at} (save it as UTF-8)",
                bytes[at]
            ),
        }
    })
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The key a value at `line:column` belongs to, when that line reads `key: value` (or
/// `- key: value`) up to the value: YAML type errors point at the value and say what was
/// expected, not which key it was.
fn key_before(text: &str, line: u64, column: u64) -> Option<&str> {
    let l = text
        .lines()
        .nth(usize::try_from(line.checked_sub(1)?).ok()?)?;
    let upto: String = l
        .chars()
        .take(usize::try_from(column.checked_sub(1)?).ok()?)
        .collect();
    let key = upto.trim_end().strip_suffix(':')?;
    let key = key.trim_start().trim_start_matches("- ").trim();
    let offset = l.find(key)?;
    let key = &l[offset..offset + key.len()];
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(key)
}
