//! A real HAProxy process: its configuration checked, its runtime API, its lifetime; and the
//! sequences the HAProxy tests need as fixtures, built on shoal's client and adapter.
//!
//! The runtime API is given as in shoal's `load_balancer.runtime_api`: `unix:<path>` or
//! `<host>:<port>`. The process runs in the foreground (`-db`), writes its output to a log
//! file next to its configuration and is killed on drop.
//!
//! The fixtures ([`server_state`], [`wait_check_passed`], [`add_server`],
//! [`promote_if_passing`], [`drain_then_remove`], [`is_not_found`]) do in one call what the reconcile loop does
//! over several passes (register, promote once the check passes, drain, remove), so a test
//! can state a fact about HAProxy in a few lines.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use shoal::lb::{AdminState, HaproxyClient, HealthCheck, LbError, ServerState};
use shoal::ports::LoadBalancer;

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

    /// The `show stat` row of `proxy`/`server` (`FRONTEND`, `BACKEND` or a server name), as
    /// column name -> value; `None` when there is no such row.
    pub fn stat_row(&self, proxy: &str, server: &str) -> Option<BTreeMap<String, String>> {
        let answer = self.command("show stat");
        let mut lines = answer.lines();
        let header = split_csv(lines.next()?.strip_prefix("# ")?);
        lines
            .map(split_csv)
            .find(|row| row.len() >= 2 && row[0] == proxy && row[1] == server)
            .map(|row| header.into_iter().zip(row).collect())
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

/// Splits one CSV line as HAProxy writes it (fields with a comma or quote quoted, quotes
/// doubled).
fn split_csv(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out
}

// ---------------------------------------------------------------------------------------
// Fixtures on shoal's client (`HaproxyClient`) and adapter (`LoadBalancer`).

/// Poll interval of the fixtures below.
const POLL: Duration = Duration::from_millis(100);

/// The state of server `name` of `backend`; [`LbError::NoSuchServer`] when it is not there.
pub async fn server_state(
    c: &HaproxyClient,
    backend: &str,
    name: &str,
) -> Result<ServerState, LbError> {
    c.servers_state(backend)
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| LbError::NoSuchServer {
            backend: backend.to_owned(),
            server: name.to_owned(),
        })
}

/// Whether `e` says the backend or server does not exist: [`LbError::NoSuchServer`], or
/// HAProxy's "No such ..." / "Can't find ..." answers.
pub fn is_not_found(e: &LbError) -> bool {
    match e {
        LbError::NoSuchServer { .. } => true,
        LbError::Refused { answer, .. } => {
            answer.starts_with("No such") || answer.starts_with("Can't find")
        }
        _ => false,
    }
}

/// A server's checks did not pass in time.
#[derive(Debug)]
pub struct NotPassing {
    /// Its state at the last look.
    pub last: ServerState,
    /// How long they were waited for.
    pub waited: Duration,
}

/// Waits (polling every 100 ms) until the server's last check passed and its check health
/// reached `rise` ([`ServerState::check_passing`]); at most `max_wait`. The time waited, or
/// the last state seen. Panics when HAProxy cannot tell.
pub async fn wait_check_passed(
    c: &HaproxyClient,
    backend: &str,
    name: &str,
    rise: u32,
    max_wait: Duration,
) -> Result<Duration, NotPassing> {
    let start = Instant::now();
    loop {
        let st = server_state(c, backend, name)
            .await
            .unwrap_or_else(|e| panic!("state of {backend}/{name}: {e}"));
        if st.check_passing(rise) {
            return Ok(start.elapsed());
        }
        let waited = start.elapsed();
        if waited >= max_wait {
            return Err(NotPassing { last: st, waited });
        }
        tokio::time::sleep(POLL.min(max_wait - waited)).await;
    }
}

/// Why [`add_server`] did not put a server in rotation.
#[derive(Debug)]
pub enum AddError {
    /// HAProxy refused a command (or could not be reached).
    Lb(LbError),
    /// The checks did not pass in time; the server stays registered, in maintenance.
    NotPassing(NotPassing),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lb(e) => write!(f, "{e}"),
            Self::NotPassing(n) => write!(
                f,
                "checks did not pass within {:?}; last state {:?}",
                n.waited, n.last
            ),
        }
    }
}

/// Adds a server and puts it in rotation once its own check passes, as the loop admits a
/// replica: `register_server` (in maintenance, checks running), wait until `check.rise`
/// checks passed (at most `max_wait`), then `set_state(Ready)`. The time waited for the
/// checks.
pub async fn add_server(
    c: &HaproxyClient,
    backend: &str,
    name: &str,
    host: &str,
    port: u16,
    check: &HealthCheck,
    max_wait: Duration,
) -> Result<Duration, AddError> {
    c.register_server(backend, name, host, port, check)
        .await
        .map_err(AddError::Lb)?;
    let waited = wait_check_passed(c, backend, name, check.rise, max_wait)
        .await
        .map_err(AddError::NotPassing)?;
    c.set_state(backend, name, AdminState::Ready)
        .await
        .map_err(AddError::Lb)?;
    Ok(waited)
}

/// The planner's admission rule, through the adapter the loop uses: if the server is in
/// maintenance and its check passes, `promote` it. Whether it is now in rotation.
pub async fn promote_if_passing(
    lb: &dyn LoadBalancer,
    backend: &str,
    name: &str,
    rise: u32,
) -> Result<bool, LbError> {
    let s = lb
        .servers(backend, rise)
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| LbError::NoSuchServer {
            backend: backend.to_owned(),
            server: name.to_owned(),
        })?;
    if s.maint && s.check_passing {
        lb.promote(backend, name).await?;
        return Ok(true);
    }
    Ok(s.in_rotation)
}

/// What [`drain_then_remove`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Time from `drain` until the sessions ended or the wait ran out.
    pub waited: Duration,
    /// Whether `max_wait` ran out with sessions left (they were then shut down).
    pub timed_out: bool,
    /// Sessions (current + queued) at the end of the wait.
    pub sessions_left: u64,
}

/// The loop's graceful removal, through the adapter it uses: `drain`, poll `sessions` every
/// 100 ms until none are left or `max_wait` ran out, then `remove`, shutting the sessions
/// down when the wait ran out.
pub async fn drain_then_remove(
    lb: &dyn LoadBalancer,
    backend: &str,
    name: &str,
    max_wait: Duration,
) -> Result<DrainOutcome, LbError> {
    let start = Instant::now();
    lb.drain(backend, name).await?;
    let (timed_out, sessions_left) = loop {
        let left = lb.sessions(backend, name).await?;
        let elapsed = start.elapsed();
        if left == 0 {
            break (false, 0);
        }
        if elapsed >= max_wait {
            break (true, left);
        }
        tokio::time::sleep(POLL.min(max_wait - elapsed)).await;
    };
    let waited = start.elapsed();
    lb.remove(backend, name, timed_out).await?;
    Ok(DrainOutcome {
        waited,
        timed_out,
        sessions_left,
    })
}
