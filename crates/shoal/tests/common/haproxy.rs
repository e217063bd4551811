//! A real HAProxy process: its configuration checked, its runtime API, its lifetime.
//!
//! The runtime API is given as in shoal's `load_balancer.runtime_api`: `unix:<path>` or
//! `<host>:<port>`. The process runs in the foreground (`-db`), writes its output to a log
//! file next to its configuration and is killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::wait::Wait;

/// The HAProxy binary (Debian's 2.6 at /usr/sbin/haproxy).
pub const HAPROXY: &str = "haproxy";

/// How long a started HAProxy may take to answer on its runtime API.
const START_LIMIT: Duration = Duration::from_secs(10);

/// `haproxy -c -f cfg` must accept the file; returns what it said.
pub fn check(cfg: &Path) -> String {
    let out = Command::new(HAPROXY)
        .arg("-c")
        .arg("-f")
        .arg(cfg)
        .output()
        .expect("haproxy -c");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "haproxy -c refused the cfg:\n{text}\n{}",
        std::fs::read_to_string(cfg).unwrap_or_default()
    );
    text
}

/// Like [`check`], and without any alert or warning.
pub fn check_clean(cfg: &Path) {
    let text = check(cfg);
    assert!(
        !text.contains("[WARNING]") && !text.contains("[ALERT]"),
        "haproxy -c warned:\n{text}"
    );
}

/// A server row of `show servers state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    pub name: String,
    pub addr: String,
    pub port: u16,
    /// Operational state (2 = running).
    pub op_state: u32,
}

impl ServerRow {
    /// Running (UP) in HAProxy.
    pub fn is_up(&self) -> bool {
        self.op_state == 2
    }

    /// `addr:port`.
    pub fn addr_port(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }
}

/// HAProxy exited before its runtime API answered.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub log: String,
}

/// A running `haproxy -db -f cfg`, killed on drop.
pub struct Haproxy {
    child: Child,
    /// The configuration it runs.
    pub cfg: PathBuf,
    /// `unix:<path>` or `<host>:<port>`.
    pub runtime_api: String,
    /// Its stdout and stderr.
    pub log_file: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// Checks `cfg` ([`check`]), starts HAProxy on it and waits until its runtime API
    /// answers; panics with its log when it exits first.
    pub fn start(cfg: &Path, runtime_api: &str) -> Self {
        check(cfg);
        Self::spawn(cfg, runtime_api)
            .unwrap_or_else(|e| panic!("haproxy exited with {}:\n{}", e.status, e.log))
    }

    /// Starts HAProxy on `cfg` (not checked) and waits until its runtime API answers
    /// `show info`; an HAProxy that exits first (a port taken, say) is an `Err`.
    pub fn spawn(cfg: &Path, runtime_api: &str) -> Result<Self, Exited> {
        if let Some(path) = runtime_api.strip_prefix("unix:") {
            let _ = std::fs::remove_file(path);
        }
        let log_file = cfg.with_extension("log");
        let out = std::fs::File::create(&log_file).expect("haproxy log file");
        let child = Command::new(HAPROXY)
            .arg("-db")
            .arg("-f")
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("start haproxy");
        let mut h = Haproxy {
            child,
            cfg: cfg.to_owned(),
            runtime_api: runtime_api.to_owned(),
            log_file,
        };
        let exited = Wait::new("the haproxy runtime API", START_LIMIT)
            .every(Duration::from_millis(25))
            .until(|| {
                if let Some(status) = h.child.try_wait().expect("haproxy status") {
                    return Some(Some(status));
                }
                let info = h.try_command("show info").ok()?;
                assert!(info.contains("Name: HAProxy"), "{info}");
                Some(None)
            });
        match exited {
            None => Ok(h),
            Some(status) => Err(Exited {
                status,
                log: h.log(),
            }),
        }
    }

    /// What HAProxy wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Sends one runtime API command; the answer, or why it could not be sent.
    pub fn try_command(&self, cmd: &str) -> std::io::Result<String> {
        fn exchange(mut s: impl Read + Write, cmd: &str) -> std::io::Result<String> {
            s.write_all(format!("{cmd}\n").as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        }
        match self.runtime_api.strip_prefix("unix:") {
            Some(path) => exchange(UnixStream::connect(path)?, cmd),
            None => exchange(TcpStream::connect(&self.runtime_api)?, cmd),
        }
    }

    /// Sends one runtime API command and returns the answer.
    pub fn command(&self, cmd: &str) -> String {
        self.try_command(cmd)
            .unwrap_or_else(|e| panic!("haproxy runtime API ({}): {e}", self.runtime_api))
    }

    /// The servers of `backend` (`show servers state`).
    pub fn servers(&self, backend: &str) -> Vec<ServerRow> {
        self.command(&format!("show servers state {backend}"))
            .lines()
            .skip(1) // format version
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some(ServerRow {
                    name: f.get(3)?.to_string(),
                    addr: f.get(4)?.to_string(),
                    op_state: f.get(5)?.parse().ok()?,
                    port: f.get(18)?.parse().ok()?,
                })
            })
            .collect()
    }
}
