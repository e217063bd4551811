//! `shoal config check` (and `serve`) against hostile input: the corpus in
//! `tests/fixtures/hostile/`, files that are not config files at all, and bad tokens.
//!
//! Each corpus file starts with `# expect: TEXT` (a part of the error message; `(any error)`
//! for YAML syntax errors). A line ending in `# <-` is where an error must be reported.
//! Every file must be refused with exit code 2, with at least one `FILE:LINE:COLUMN: error:`
//! line (at the marked line when there is one), the expected text, and no panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{repo, shoal};

/// Runs `shoal ARGS`, killing it after `limit` (a hang is a failure, not a stuck test).
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoal");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn config_check(file: &Path) -> Output {
    run_bounded(
        shoal().args(["config", "check"]).arg(file),
        Duration::from_secs(10),
    )
}

/// `(line, column)` of every `FILE:LINE:COLUMN: error:` line of `stderr`.
fn positions(stderr: &str, file: &Path) -> Vec<(u64, u64)> {
    let prefix = format!("{}:", file.display());
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next()?.parse().ok()?;
            let column = parts.next()?.parse().ok()?;
            parts
                .next()?
                .starts_with(" error: ")
                .then_some((line, column))
        })
        .collect()
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("tests/fixtures/hostile"))
        .expect("the corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_hostile_config_is_refused_with_its_position_and_no_panic() {
    let files = corpus();
    assert!(files.len() >= 100, "the corpus has {} files", files.len());
    let mut problems = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()))
            .trim()
            .to_owned();
        let marked = text
            .lines()
            .position(|l| l.trim_end().ends_with("# <-"))
            .map(|i| i as u64 + 1);
        let out = config_check(file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = file.file_name().unwrap().to_string_lossy();
        let at = positions(&stderr, file);
        if out.status.code() != Some(2) {
            problems.push(format!(
                "{name}: exit {:?}, stderr: {stderr}",
                out.status.code()
            ));
        } else if stderr.contains("panicked") {
            problems.push(format!("{name}: panicked: {stderr}"));
        } else if at.is_empty() {
            problems.push(format!("{name}: no FILE:LINE:COLUMN in: {stderr}"));
        } else if at.iter().any(|(l, c)| *l == 0 || *c == 0) {
            problems.push(format!("{name}: a zero position in: {stderr}"));
        } else if let Some(line) = marked.filter(|l| !at.iter().any(|(al, _)| al == l)) {
            problems.push(format!(
                "{name}: no error at the marked line {line}: {stderr}"
            ));
        } else if expect != "(any error)" && !stderr.contains(&expect) {
            problems.push(format!("{name}: {expect:?} not in: {stderr}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} hostile configs were not refused as they should be:\n{}",
        problems.len(),
        files.len(),
        problems.join("\n")
    );
}

#[test]
fn files_that_are_not_config_files_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    // Larger than the limit, but valid YAML throughout: only the size refuses it.
    let big = dir.path().join("big.yaml");
    let mut text = String::from("servers: []\nservices: {}\n");
    while text.len() as u64 <= shoal::config::MAX_CONFIG_BYTES {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&big, &text).unwrap();
    let fifo = dir.path().join("fifo.yaml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (path, says) in [
        (
            PathBuf::from("/dev/zero"),
            "not a regular file (it is a character device)",
        ),
        (
            dir.path().to_owned(),
            "not a regular file (it is a directory)",
        ),
        (fifo, "not a regular file (it is a FIFO)"),
        (big.clone(), "-byte limit of a config file"),
        (dir.path().join("missing.yaml"), "cannot read the file"),
    ] {
        // A read of /dev/zero or an open of the FIFO would never end: the bound catches it.
        let out = config_check(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        assert!(stderr.contains(says), "{}: {stderr}", path.display());
        assert!(
            stderr.starts_with(&format!("{}: error: ", path.display())),
            "{stderr}"
        );
    }
    // The same file under the limit loads as far as validation (which then refuses the
    // empty fleet): the size was the reason above, nothing else.
    std::fs::write(&big, "servers: []\nservices: {}\n").unwrap();
    let out = config_check(&big);
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one server"));
}

fn minimal_config(dir: &Path) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "servers:\n  - host: 127.0.0.1\n    name: local\n    docker_host: unix:///var/run/docker.sock\n\
             services:\n  web:\n    image: img:1\n    port: 8080\n\
             autoscaler:\n  state_file: {}/state.db\n\
             load_balancer:\n  runtime_api: unix:{}/admin.sock\n",
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn serve_refuses_a_blank_or_short_token_and_never_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = minimal_config(dir.path());
    for (token, says) in [
        ("", "SHOAL_API_TOKEN is blank"),
        ("                ", "SHOAL_API_TOKEN is blank"),
        (
            "s3cr3t",
            "SHOAL_API_TOKEN is 6 characters long; at least 16",
        ),
        ("s3cr3t with spaces inside", "no spaces"),
    ] {
        let out = run_bounded(
            shoal()
                .args(["serve", "--bind", "127.0.0.1:0", "--config"])
                .arg(&config)
                .env("SHOAL_API_TOKEN", token),
            Duration::from_secs(10),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{token:?}: {stderr}");
        assert!(stderr.contains(says), "{token:?}: {stderr}");
        if token.trim().len() > 3 {
            assert!(
                !stderr.contains(token.trim()),
                "the token is printed: {stderr}"
            );
        }
        // Refused before anything was opened.
        assert!(!dir.path().join("state.db").exists());
    }
}
