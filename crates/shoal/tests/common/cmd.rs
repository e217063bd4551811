//! Running helper programs (docker, ip, kill, haproxy -c) from the tests.

use std::process::{Command, Output, Stdio};

/// Runs a command, ignoring its outcome (teardown, idempotent setup).
pub fn run_quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs a command and panics with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) {
    let mut c = Command::new(program);
    c.args(args);
    succeed(&mut c);
}

/// Runs `c` and panics with its stderr when it fails; returns its output.
pub fn succeed(c: &mut Command) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The stdout of `c` (empty when it cannot start), trimmed.
pub fn stdout(c: &mut Command) -> String {
    c.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The stdout of `program args` (empty when it cannot start), trimmed.
pub fn stdout_of(program: &str, args: &[&str]) -> String {
    stdout(Command::new(program).args(args))
}
