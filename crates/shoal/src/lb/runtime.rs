//! The HAProxy runtime API ("stats socket") client, in non-interactive mode: one connection
//! per command, the command and a newline written, the answer read to EOF, all within a
//! per-command timeout.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{host_port, validate_host, validate_name, HealthCheck, LbError, Member, Result};
use crate::config::LoadBalancerConfig;

/// Largest answer read from the runtime API (a full `show stat` of a big setup is far less).
const MAX_ANSWER: u64 = 64 << 20;
/// Longest raw command accepted.
const MAX_COMMAND: usize = 4096;
/// How often state is polled while waiting (first check, drain).
const POLL: Duration = Duration::from_millis(100);
/// How long `del server` is retried while HAProxy still has connections attached.
const DEL_RETRY_FOR: Duration = Duration::from_secs(3);

/// Where the runtime API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeAddr {
    /// A unix socket (`unix:/path` or `/abs/path`).
    Unix(PathBuf),
    /// A TCP socket (`host:port`, IPv6 as `[addr]:port`).
    Tcp {
        /// Host name or IP address (without brackets).
        host: String,
        /// Port.
        port: u16,
    },
}

impl RuntimeAddr {
    /// Parses `unix:/path`, `/abs/path` or `host:port`.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |reason: &str| LbError::InvalidAddress {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let v = value.trim();
        if let Some(path) = v.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("the unix socket path is empty"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if v.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(v)));
        }
        let (host, port) = v
            .rsplit_once(':')
            .ok_or_else(|| bad("expected unix:/path, /absolute/path or host:port"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port must be 1-65535"))?;
        validate_host(host).map_err(|_| bad("the host must be an IP address or a DNS name"))?;
        Ok(Self::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for RuntimeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp { host, port } => f.write_str(&host_port(host, *port)),
        }
    }
}

/// Operational state of a server (`srv_op_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpState {
    /// 0: down (failed checks, or never brought up).
    Stopped,
    /// 1: up, warming up (slowstart).
    Starting,
    /// 2: up.
    Running,
    /// 3: up but soft-stopping (e.g. 404 with `http-check disable-on-404`).
    Stopping,
}

impl OpState {
    fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::Stopped,
            1 => Self::Starting,
            2 => Self::Running,
            3 => Self::Stopping,
            _ => return None,
        })
    }
}

/// Administrative state requested with `set server <b>/<s> state ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminState {
    /// Normal: takes traffic when its checks pass.
    Ready,
    /// Takes no new traffic; running sessions continue; checks continue.
    Drain,
    /// Takes no traffic, checks paused; required before `del server`.
    Maint,
}

impl AdminState {
    /// The keyword of `set server ... state <kw>`.
    #[must_use]
    pub const fn keyword(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Drain => "drain",
            Self::Maint => "maint",
        }
    }
}

/// `srv_admin_state` bit flags (HAProxy's `enum srv_admin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AdminFlags(pub u32);

impl AdminFlags {
    /// Forced into maintenance (CLI `maint`/`disable server`, or a new dynamic server).
    pub const FMAINT: u32 = 0x01;
    /// Maintenance inherited from a tracked server.
    pub const IMAINT: u32 = 0x02;
    /// Disabled by the configuration (`disabled` keyword); not maintenance by itself.
    pub const CMAINT: u32 = 0x04;
    /// Forced into drain.
    pub const FDRAIN: u32 = 0x08;
    /// Drain inherited from a tracked server.
    pub const IDRAIN: u32 = 0x10;
    /// Down because its address could not be resolved.
    pub const RMAINT: u32 = 0x20;
    /// FQDN changed from the CLI (`HMAINT` in 2.6, `FQDN_CHANGED` later); not maintenance.
    pub const HMAINT: u32 = 0x40;
    /// HAProxy's `SRV_ADMF_MAINT` mask: any of these means maintenance.
    pub const MAINT_MASK: u32 = Self::FMAINT | Self::IMAINT | Self::RMAINT;
    /// HAProxy's `SRV_ADMF_DRAIN` mask.
    pub const DRAIN_MASK: u32 = Self::FDRAIN | Self::IDRAIN;

    /// Whether `flag` (one of the constants) is set.
    #[must_use]
    pub const fn contains(self, flag: u32) -> bool {
        self.0 & flag != 0
    }

    /// Whether the server is in maintenance (takes no traffic).
    #[must_use]
    pub const fn in_maintenance(self) -> bool {
        self.contains(Self::MAINT_MASK)
    }

    /// Whether the server is draining (and not in maintenance).
    #[must_use]
    pub const fn draining(self) -> bool {
        !self.in_maintenance() && self.contains(Self::DRAIN_MASK)
    }

    /// The resulting administrative state, as HAProxy derives it.
    #[must_use]
    pub const fn state(self) -> AdminState {
        if self.in_maintenance() {
            AdminState::Maint
        } else if self.contains(Self::DRAIN_MASK) {
            AdminState::Drain
        } else {
            AdminState::Ready
        }
    }
}

/// Result of the last health check (`srv_check_result`, HAProxy's `CHK_RES_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// 0: no check finished yet (or checks disabled).
    Unknown,
    /// 1: valid check but no status information.
    Neutral,
    /// 2: the check failed.
    Failed,
    /// 3: the check passed.
    Passed,
    /// 4: passed but the server asked to be stopped (404 with `disable-on-404`).
    ConditionallyPassed,
}

impl CheckResult {
    fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::Unknown,
            1 => Self::Neutral,
            2 => Self::Failed,
            3 => Self::Passed,
            4 => Self::ConditionallyPassed,
            _ => return None,
        })
    }
}

/// HAProxy's `HCHK_STATUS_*` names, indexed by `srv_check_status`.
const CHECK_STATUS_NAMES: [&str; 21] = [
    "UNK", "INI", "START", "CHECKED", "HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK",
    "L6TOUT", "L6RSP", "L7TOUT", "L7RSP", "L57DATA", "L7OK", "L7OKC", "L7STS", "PROCERR",
    "PROCTOUT", "PROCOK",
];

/// `check_state` flag: checks are enabled (`CHK_ST_ENABLED`).
const CHK_ST_ENABLED: u32 = 0x04;

/// One line of `show servers state <backend>` (state file format version 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerState {
    /// `be_id`.
    pub backend_id: u32,
    /// `be_name`.
    pub backend: String,
    /// `srv_id`.
    pub id: u32,
    /// `srv_name`.
    pub name: String,
    /// `srv_addr` as HAProxy prints it: an IP address, or `-` when it has none (e.g. an
    /// unresolved host name).
    pub addr: String,
    /// `srv_port`.
    pub port: u16,
    /// `srv_op_state`.
    pub op_state: OpState,
    /// `srv_admin_state`.
    pub admin: AdminFlags,
    /// `srv_uweight` (user-set weight).
    pub weight: u32,
    /// `srv_time_since_last_change`.
    pub since_last_change: Duration,
    /// `srv_check_status` (an `HCHK_STATUS_*` code; see [`ServerState::check_status_name`]).
    pub check_status: u32,
    /// `srv_check_result`.
    pub check_result: CheckResult,
    /// `srv_check_health` (0 to rise+fall-1; UP from `rise` on).
    pub check_health: u32,
    /// `srv_check_state` (`CHK_ST_*` flags).
    pub check_state: u32,
    /// `srv_fqdn`, if the server was given a name.
    pub fqdn: Option<String>,
}

impl ServerState {
    /// The check status as HAProxy names it (`INI`, `L4CON`, `L7OK`, `L7STS`, ...).
    #[must_use]
    pub fn check_status_name(&self) -> &'static str {
        usize::try_from(self.check_status)
            .ok()
            .and_then(|i| CHECK_STATUS_NAMES.get(i))
            .copied()
            .unwrap_or("UNK")
    }

    /// Whether health checks are enabled for this server.
    #[must_use]
    pub const fn checks_enabled(&self) -> bool {
        self.check_state & CHK_ST_ENABLED != 0
    }

    /// Whether HAProxy currently sends new traffic to it: up and neither draining nor in
    /// maintenance.
    #[must_use]
    pub fn in_rotation(&self) -> bool {
        matches!(self.op_state, OpState::Running | OpState::Starting)
            && self.admin.state() == AdminState::Ready
    }

    /// Whether HAProxy counts it as up: not in maintenance and not DOWN by its checks
    /// (a draining or soft-stopping server is up but takes no new traffic; see
    /// [`ServerState::in_rotation`]).
    #[must_use]
    pub fn is_up(&self) -> bool {
        !self.admin.in_maintenance() && self.op_state != OpState::Stopped
    }

    /// Whether it is in maintenance (no traffic; required before deletion).
    #[must_use]
    pub const fn is_maint(&self) -> bool {
        self.admin.in_maintenance()
    }

    /// A one-word status as on HAProxy's stats page: `MAINT`, `DRAIN`, `NOLB` (soft-stop),
    /// `UP` or `DOWN`.
    #[must_use]
    pub fn status_word(&self) -> &'static str {
        match (self.admin.state(), self.op_state) {
            (AdminState::Maint, _) => "MAINT",
            (_, OpState::Stopped) => "DOWN",
            (AdminState::Drain, _) => "DRAIN",
            (_, OpState::Stopping) => "NOLB",
            _ => "UP",
        }
    }

    /// Whether the last check passed and the check health reached `rise`.
    #[must_use]
    pub fn check_passing(&self, rise: u32) -> bool {
        self.check_result == CheckResult::Passed && self.check_health >= rise.max(1)
    }

    /// The server as a renderable [`Member`]; `None` when HAProxy has no address for it.
    #[must_use]
    pub fn member(&self) -> Option<Member> {
        (self.addr != "-").then(|| Member::new(self.name.clone(), self.addr.clone(), self.port))
    }
}

/// Kind of a `show stat` row (its `type` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatKind {
    /// 0: a frontend (`svname` is `FRONTEND`).
    Frontend,
    /// 1: a backend (`svname` is `BACKEND`).
    Backend,
    /// 2: a server.
    Server,
    /// 3: a listener (socket).
    Listener,
}

/// The columns of one `show stat` row that shoal uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatRow {
    /// `pxname`: frontend, backend or listen section name.
    pub proxy: String,
    /// `svname`: server name, or `FRONTEND` / `BACKEND`.
    pub server: String,
    /// `type`.
    pub kind: StatKind,
    /// `scur`: current sessions.
    pub scur: u64,
    /// `qcur`: current queued requests.
    pub qcur: u64,
    /// `smax`: most concurrent sessions seen.
    pub smax: u64,
    /// `stot`: total sessions.
    pub stot: u64,
    /// `status`: `UP`, `DOWN`, `MAINT`, `DRAIN`, `NOLB`, `UP 1/3`, `OPEN`, `no check`, ...
    pub status: String,
    /// `check_status` without the in-progress `* ` prefix; `None` when empty.
    pub check_status: Option<String>,
    /// `weight`; `None` when empty (frontends).
    pub weight: Option<u64>,
}

/// What [`HaproxyClient::drain_then_remove`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Time from `drain` until the sessions ended or the wait was cut short.
    pub waited: Duration,
    /// Whether `max_wait` ran out with sessions left (they were then shut down).
    pub timed_out: bool,
    /// Sessions (current + queued) at the end of the wait.
    pub sessions_left: u64,
}

/// Client of the HAProxy runtime API. Cheap to clone; holds no connection.
#[derive(Clone, Debug)]
pub struct HaproxyClient {
    addr: RuntimeAddr,
    timeout: Duration,
}

impl HaproxyClient {
    /// A client for `runtime_api` (`unix:/path`, `/abs/path` or `host:port`) whose every
    /// command (connect, write, read to EOF) is bounded by `timeout`.
    pub fn new(runtime_api: &str, timeout: Duration) -> Result<Self> {
        Ok(Self {
            addr: RuntimeAddr::parse(runtime_api)?,
            timeout,
        })
    }

    /// A client for `load_balancer.runtime_api` with `load_balancer.timeout`.
    pub fn from_config(lb: &LoadBalancerConfig) -> Result<Self> {
        Self::new(&lb.runtime_api, Duration::from_secs(*lb.timeout))
    }

    /// Where the runtime API is.
    #[must_use]
    pub const fn addr(&self) -> &RuntimeAddr {
        &self.addr
    }

    /// The per-command timeout.
    #[must_use]
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one raw command and returns HAProxy's answer as received. The command must be a
    /// single line without `;` (which would chain commands) or control characters. Answers
    /// that read as an error ("Unknown command", "No such server", ...) become
    /// [`LbError::Refused`].
    pub async fn command(&self, cmd: &str) -> Result<String> {
        validate_command(cmd)?;
        let answer = self.exchange(cmd).await?;
        if looks_failed(&answer) {
            return Err(refused(cmd, &answer));
        }
        Ok(answer)
    }

    /// `show servers state <backend>`: every server of the backend.
    pub async fn servers_state(&self, backend: &str) -> Result<Vec<ServerState>> {
        validate_name("backend name", backend)?;
        self.parsed(format!("show servers state {backend}"), parse_servers_state)
            .await
    }

    /// The state of one server; [`LbError::NoSuchServer`] when it is not in the backend.
    pub async fn server_state(&self, backend: &str, name: &str) -> Result<ServerState> {
        validate_name("server name", name)?;
        self.servers_state(backend)
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| no_such_server(backend, name))
    }

    /// `show stat`: every frontend, backend, server and listener row.
    pub async fn stats(&self) -> Result<Vec<StatRow>> {
        self.stat_command("show stat".to_owned()).await
    }

    /// `show stat <backend> 4 -1`: the server rows of one backend.
    pub async fn backend_stats(&self, backend: &str) -> Result<Vec<StatRow>> {
        validate_name("backend name", backend)?;
        self.stat_command(format!("show stat {backend} 4 -1")).await
    }

    /// The `show stat` row of one server; [`LbError::NoSuchServer`] when it is absent.
    pub async fn server_stats(&self, backend: &str, name: &str) -> Result<StatRow> {
        validate_name("server name", name)?;
        self.backend_stats(backend)
            .await?
            .into_iter()
            .find(|r| r.kind == StatKind::Server && r.server == name)
            .ok_or_else(|| no_such_server(backend, name))
    }

    /// Current sessions of one server (`scur`).
    pub async fn server_sessions(&self, backend: &str, name: &str) -> Result<u64> {
        Ok(self.server_stats(backend, name).await?.scur)
    }

    /// Adds a replica and puts it in rotation once HAProxy's own check (the backend's
    /// `option httpchk`) has passed:
    /// `add server <backend>/<name> <ip>:<port> check inter .. fastinter .. downinter ..
    /// fall .. rise ..` (the server starts in maintenance), `enable health`, wait for `rise`
    /// consecutive passing checks (at most `check.start_period`), then
    /// `set server .. state ready`. A host name is resolved first.
    ///
    /// If the checks do not pass in time the error is [`LbError::Unhealthy`] and the server
    /// stays registered in maintenance with its checks running, never having received
    /// traffic: [`HaproxyClient::promote_if_passing`] can admit it later, or
    /// [`HaproxyClient::del_server`] removes it.
    pub async fn add_server(
        &self,
        backend: &str,
        name: &str,
        host: &str,
        port: u16,
        check: &HealthCheck,
    ) -> Result<()> {
        self.register_server(backend, name, host, port, check)
            .await?;
        let waited = self
            .wait_check_passed(backend, name, check.rise, check.start_period)
            .await?;
        self.set_state(backend, name, AdminState::Ready).await?;
        tracing::info!(backend, server = name, ?waited, "server in rotation");
        Ok(())
    }

    /// Non-blocking admission for a reconcile loop: if the server is in maintenance and its
    /// checks pass (last check passed, health at least `rise`), `set server .. state
    /// ready`. Returns whether the server is now in rotation. Never puts a server whose
    /// checks do not pass in rotation (leaving maintenance would make it UP at once).
    pub async fn promote_if_passing(&self, backend: &str, name: &str, rise: u32) -> Result<bool> {
        let st = self.server_state(backend, name).await?;
        if st.is_maint() && st.check_passing(rise) {
            self.set_state(backend, name, AdminState::Ready).await?;
            return Ok(true);
        }
        Ok(st.in_rotation())
    }

    /// First half of [`HaproxyClient::add_server`]: `add server` then `enable health`. The
    /// server stays in maintenance (out of rotation) with its checks running.
    pub async fn register_server(
        &self,
        backend: &str,
        name: &str,
        host: &str,
        port: u16,
        check: &HealthCheck,
    ) -> Result<()> {
        validate_name("backend name", backend)?;
        validate_name("server name", name)?;
        let ip = self.resolve(host, port).await?;
        let cmd = format!(
            "add server {backend}/{name} {} check {}",
            host_port(&ip.to_string(), port),
            check.keywords()
        );
        let answer = self.exchange(&cmd).await?;
        if !answer.contains("New server registered.") {
            return Err(refused(&cmd, &answer));
        }
        let cmd = format!("enable health {backend}/{name}");
        if let Err(e) = self.expect_empty(&cmd).await {
            // Do not leave a half-configured server behind.
            if let Err(cleanup) = self.exchange(&format!("del server {backend}/{name}")).await {
                tracing::warn!(backend, server = name, error = %cleanup, "cleanup after failed enable health");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Waits (polling every 100 ms) until the server's last health check passed and its
    /// check health reached `rise` (that many consecutive passes for a new server, whose
    /// health starts at 0); at most `max_wait`. Returns the time waited, or
    /// [`LbError::Unhealthy`].
    pub async fn wait_check_passed(
        &self,
        backend: &str,
        name: &str,
        rise: u32,
        max_wait: Duration,
    ) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let st = self.server_state(backend, name).await?;
            if st.check_passing(rise) {
                return Ok(start.elapsed());
            }
            let elapsed = start.elapsed();
            if elapsed >= max_wait {
                return Err(LbError::Unhealthy {
                    backend: backend.to_owned(),
                    server: name.to_owned(),
                    check: st.check_status_name().to_owned(),
                    waited: elapsed,
                });
            }
            tokio::time::sleep(POLL.min(max_wait - elapsed)).await;
        }
    }

    /// `set server <backend>/<name> state ready|drain|maint`.
    pub async fn set_state(&self, backend: &str, name: &str, state: AdminState) -> Result<()> {
        validate_name("backend name", backend)?;
        validate_name("server name", name)?;
        self.expect_empty(&format!(
            "set server {backend}/{name} state {}",
            state.keyword()
        ))
        .await
    }

    /// `set server <backend>/<name> addr <ip> port <port>` (a host name is resolved first).
    /// The server keeps its state; its checks go to the new address from the next one.
    pub async fn set_addr(&self, backend: &str, name: &str, host: &str, port: u16) -> Result<()> {
        validate_name("backend name", backend)?;
        validate_name("server name", name)?;
        let ip = self.resolve(host, port).await?;
        let cmd = format!("set server {backend}/{name} addr {ip} port {port}");
        let answer = self.exchange(&cmd).await?;
        let first = first_line(&answer);
        if first.contains("changed from") || first.starts_with("no need to change") {
            Ok(())
        } else {
            Err(refused(&cmd, &answer))
        }
    }

    /// Removes a server at once: `set server .. state maint`, then `del server`. Running
    /// sessions are not waited for (see [`HaproxyClient::drain_then_remove`]); if HAProxy
    /// still has connections attached the error is [`LbError::StillConnected`] and the
    /// server stays, in maintenance.
    pub async fn del_server(&self, backend: &str, name: &str) -> Result<()> {
        self.set_state(backend, name, AdminState::Maint).await?;
        self.del_in_maint(backend, name).await
    }

    /// Removes a server whose replica is gone (lost with its server, or unknown to shoal):
    /// `maint`, `shutdown sessions` (nothing in flight there can complete: a partitioned
    /// server would otherwise hold its sessions until `timeout server`, and HAProxy refuses
    /// `del server` while they last), then `del server`, retried briefly while HAProxy
    /// still has connections attached.
    pub async fn remove_dead(&self, backend: &str, name: &str) -> Result<()> {
        self.set_state(backend, name, AdminState::Maint).await?;
        self.shutdown_sessions(backend, name).await?;
        let retry_until = Instant::now() + DEL_RETRY_FOR;
        loop {
            match self.del_in_maint(backend, name).await {
                Err(LbError::StillConnected { .. }) if Instant::now() < retry_until => {
                    tokio::time::sleep(POLL).await;
                }
                other => return other,
            }
        }
    }

    /// `shutdown sessions server <backend>/<name>`: closes every session on the server.
    pub async fn shutdown_sessions(&self, backend: &str, name: &str) -> Result<()> {
        validate_name("backend name", backend)?;
        validate_name("server name", name)?;
        self.expect_empty(&format!("shutdown sessions server {backend}/{name}"))
            .await
    }

    /// Graceful removal: `drain`, wait (polling every 100 ms) until the server has no
    /// current or queued sessions or `max_wait` ran out, `maint`, then `del server`
    /// (retried for a few seconds while HAProxy still has connections attached). When
    /// `max_wait` runs out the remaining sessions are shut down so the removal completes.
    pub async fn drain_then_remove(
        &self,
        backend: &str,
        name: &str,
        max_wait: Duration,
    ) -> Result<DrainOutcome> {
        let start = Instant::now();
        self.set_state(backend, name, AdminState::Drain).await?;
        let (timed_out, sessions_left) = loop {
            let row = self.server_stats(backend, name).await?;
            let left = row.scur + row.qcur;
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
        self.set_state(backend, name, AdminState::Maint).await?;
        if timed_out {
            tracing::warn!(
                backend,
                server = name,
                sessions_left,
                "drain timed out; shutting the remaining sessions down"
            );
            self.shutdown_sessions(backend, name).await?;
        }
        let retry_until = Instant::now() + DEL_RETRY_FOR;
        loop {
            match self.del_in_maint(backend, name).await {
                Err(LbError::StillConnected { .. }) if Instant::now() < retry_until => {
                    tokio::time::sleep(POLL).await;
                }
                other => break other?,
            }
        }
        tracing::info!(backend, server = name, ?waited, timed_out, "server removed");
        Ok(DrainOutcome {
            waited,
            timed_out,
            sessions_left,
        })
    }

    async fn del_in_maint(&self, backend: &str, name: &str) -> Result<()> {
        let cmd = format!("del server {backend}/{name}");
        let answer = self.exchange(&cmd).await?;
        let first = first_line(&answer);
        if first == "Server deleted." {
            Ok(())
        } else if first.starts_with("Server still has connections attached") {
            Err(LbError::StillConnected {
                backend: backend.to_owned(),
                server: name.to_owned(),
            })
        } else {
            Err(refused(&cmd, &answer))
        }
    }

    async fn stat_command(&self, cmd: String) -> Result<Vec<StatRow>> {
        self.parsed(cmd, parse_stats).await
    }

    /// Sends a `show` command and parses its answer; a failure answer is [`LbError::Refused`].
    async fn parsed<T>(&self, cmd: String, parse: fn(&str) -> Result<T, String>) -> Result<T> {
        let answer = self.exchange(&cmd).await?;
        if looks_failed(&answer) {
            return Err(refused(&cmd, &answer));
        }
        parse(&answer).map_err(|reason| LbError::Parse {
            command: cmd,
            reason,
        })
    }

    /// Sends a command whose success answer is empty.
    async fn expect_empty(&self, cmd: &str) -> Result<()> {
        let answer = self.exchange(cmd).await?;
        if answer.trim().is_empty() {
            Ok(())
        } else {
            Err(refused(cmd, &answer))
        }
    }

    /// An IP address for `host`: itself if it is one, else the first resolved address
    /// (IPv4 preferred).
    async fn resolve(&self, host: &str, port: u16) -> Result<IpAddr> {
        validate_host(host)?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ip);
        }
        let fail = |reason: String| LbError::Resolve {
            host: host.to_owned(),
            reason,
        };
        let addrs: Vec<_> =
            tokio::time::timeout(self.timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| fail(format!("no answer within {:?}", self.timeout)))?
                .map_err(|e| fail(e.to_string()))?
                .map(|a| a.ip())
                .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| fail("no address".into()))
    }

    /// One non-interactive exchange: connect, write `cmd\n`, read to EOF; bounded by the
    /// timeout. `cmd` must already be validated.
    async fn exchange(&self, cmd: &str) -> Result<String> {
        tracing::debug!(addr = %self.addr, command = cmd, "runtime API");
        let addr = self.addr.to_string();
        let io_err = |source| LbError::Connect {
            addr: addr.clone(),
            source,
        };
        let run = async {
            match &self.addr {
                RuntimeAddr::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(io_err)?;
                    talk(stream, cmd).await.map_err(io_err)
                }
                RuntimeAddr::Tcp { host, port } => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                        .await
                        .map_err(io_err)?;
                    talk(stream, cmd).await.map_err(io_err)
                }
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(LbError::Timeout {
                addr: addr.clone(),
                command: cmd.to_owned(),
                timeout: self.timeout,
            }),
        }
    }
}

async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    cmd: &str,
) -> std::io::Result<String> {
    let mut line = Vec::with_capacity(cmd.len() + 1);
    line.extend_from_slice(cmd.as_bytes());
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.flush().await?;
    let mut buf = Vec::new();
    (&mut stream).take(MAX_ANSWER).read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Refuses anything but a single command line.
fn validate_command(cmd: &str) -> Result<()> {
    let bad = |reason: String| {
        Err(LbError::InvalidName {
            what: "command",
            value: cmd.to_owned(),
            reason,
        })
    };
    if cmd.trim().is_empty() {
        return bad("must not be empty".into());
    }
    if cmd.len() > MAX_COMMAND {
        return bad(format!("longer than {MAX_COMMAND} bytes"));
    }
    if let Some(c) = cmd.chars().find(|c| c.is_control() || *c == ';') {
        return bad(format!(
            "character {c:?} is not allowed (one command per call, on one line)"
        ));
    }
    Ok(())
}

fn first_line(answer: &str) -> &str {
    answer
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// Whether an answer reads as one of HAProxy's CLI error messages.
fn looks_failed(answer: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "Unknown",
        "unknown",
        "Can't",
        "Cannot",
        "cannot",
        "Invalid",
        "invalid",
        "No such",
        "Server is not",
        "Server still has",
        "Require",
        "Permission denied",
        "Only ",
        "Already exists",
        "Missing",
        "missing",
        "Expects",
        "Error",
        "error",
        "Failed",
        "failed",
        "Not ",
        "This command",
        "Usage",
        "Backend must",
        "Backend is",
        "Proxy is",
        "Frontend is",
        "'",
    ];
    let first = first_line(answer);
    PREFIXES.iter().any(|p| first.starts_with(p))
}

fn refused(cmd: &str, answer: &str) -> LbError {
    let answer = answer.trim();
    LbError::Refused {
        command: cmd.to_owned(),
        answer: if answer.is_empty() {
            "(empty answer)".to_owned()
        } else {
            answer.to_owned()
        },
    }
}

fn no_such_server(backend: &str, name: &str) -> LbError {
    LbError::NoSuchServer {
        backend: backend.to_owned(),
        server: name.to_owned(),
    }
}

/// Parses the answer of `show servers state` (format version 1): a version line, a
/// `# field ...` header, then one whitespace-separated line per server.
pub(crate) fn parse_servers_state(answer: &str) -> std::result::Result<Vec<ServerState>, String> {
    let mut lines = answer.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some("1") => {}
        Some(v) => return Err(format!("unsupported state format version line {v:?}")),
        None => return Err("empty answer".into()),
    }
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix('#'))
        .ok_or("missing the `# be_id be_name ...` header")?;
    let fields: Vec<&str> = header.split_whitespace().collect();
    let col = |name: &str| {
        fields
            .iter()
            .position(|f| *f == name)
            .ok_or_else(|| format!("the header has no {name} field"))
    };
    let c = StateColumns {
        be_id: col("be_id")?,
        be_name: col("be_name")?,
        srv_id: col("srv_id")?,
        srv_name: col("srv_name")?,
        srv_addr: col("srv_addr")?,
        op_state: col("srv_op_state")?,
        admin_state: col("srv_admin_state")?,
        uweight: col("srv_uweight")?,
        since: col("srv_time_since_last_change")?,
        check_status: col("srv_check_status")?,
        check_result: col("srv_check_result")?,
        check_health: col("srv_check_health")?,
        check_state: col("srv_check_state")?,
        fqdn: col("srv_fqdn")?,
        port: col("srv_port")?,
    };
    lines
        .filter(|l| !l.starts_with('#'))
        .map(|line| parse_state_line(line, &c))
        .collect()
}

struct StateColumns {
    be_id: usize,
    be_name: usize,
    srv_id: usize,
    srv_name: usize,
    srv_addr: usize,
    op_state: usize,
    admin_state: usize,
    uweight: usize,
    since: usize,
    check_status: usize,
    check_result: usize,
    check_health: usize,
    check_state: usize,
    fqdn: usize,
    port: usize,
}

fn parse_state_line(line: &str, c: &StateColumns) -> std::result::Result<ServerState, String> {
    let v: Vec<&str> = line.split_whitespace().collect();
    let get = |i: usize| {
        v.get(i)
            .copied()
            .ok_or_else(|| format!("line {line:?} has only {} fields", v.len()))
    };
    let num = |i: usize| -> std::result::Result<u32, String> {
        let s = get(i)?;
        s.parse()
            .map_err(|_| format!("field {i} {s:?} of line {line:?} is not a number"))
    };
    let opt = |s: &str| (s != "-").then(|| s.to_owned());
    let addr = get(c.srv_addr)?.to_owned();
    let op = num(c.op_state)?;
    let res = num(c.check_result)?;
    Ok(ServerState {
        backend_id: num(c.be_id)?,
        backend: get(c.be_name)?.to_owned(),
        id: num(c.srv_id)?,
        name: get(c.srv_name)?.to_owned(),
        addr,
        port: u16::try_from(num(c.port)?).map_err(|_| format!("bad port in {line:?}"))?,
        op_state: OpState::from_code(op).ok_or_else(|| format!("unknown op state {op}"))?,
        admin: AdminFlags(num(c.admin_state)?),
        weight: num(c.uweight)?,
        since_last_change: Duration::from_secs(num(c.since)?.into()),
        check_status: num(c.check_status)?,
        check_result: CheckResult::from_code(res)
            .ok_or_else(|| format!("unknown check result {res}"))?,
        check_health: num(c.check_health)?,
        check_state: num(c.check_state)?,
        fqdn: opt(get(c.fqdn)?),
    })
}

/// Splits one CSV line as HAProxy writes it (fields with a comma or quote are quoted,
/// quotes doubled).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
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

/// Parses the answer of `show stat` (CSV with a `# pxname,svname,...` header).
pub(crate) fn parse_stats(answer: &str) -> std::result::Result<Vec<StatRow>, String> {
    let mut lines = answer.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or("missing the `# pxname,svname,...` header")?;
    let fields = split_csv(header);
    let col = |name: &str| {
        fields
            .iter()
            .position(|f| f == name)
            .ok_or_else(|| format!("the header has no {name} column"))
    };
    let (px, sv, scur, qcur, smax, stot, status, check, weight, kind) = (
        col("pxname")?,
        col("svname")?,
        col("scur")?,
        col("qcur")?,
        col("smax")?,
        col("stot")?,
        col("status")?,
        col("check_status")?,
        col("weight")?,
        col("type")?,
    );
    lines
        .map(|line| {
            let v = split_csv(line);
            let get = |i: usize| v.get(i).map_or("", String::as_str);
            let num = |i: usize| -> std::result::Result<u64, String> {
                let s = get(i);
                if s.is_empty() {
                    Ok(0)
                } else {
                    s.parse()
                        .map_err(|_| format!("column {i} {s:?} of {line:?} is not a number"))
                }
            };
            let kind = match get(kind) {
                "0" => StatKind::Frontend,
                "1" => StatKind::Backend,
                "2" => StatKind::Server,
                "3" => StatKind::Listener,
                other => return Err(format!("unknown row type {other:?} in {line:?}")),
            };
            let check_status = get(check).trim_start_matches("* ").trim();
            Ok(StatRow {
                proxy: get(px).to_owned(),
                server: get(sv).to_owned(),
                kind,
                scur: num(scur)?,
                qcur: num(qcur)?,
                smax: num(smax)?,
                stot: num(stot)?,
                status: get(status).to_owned(),
                check_status: (!check_status.is_empty()).then(|| check_status.to_owned()),
                weight: if get(weight).is_empty() {
                    None
                } else {
                    Some(num(weight)?)
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `show servers state web_backend` from HAProxy 2.6.12: a config server UP, a dynamic
    /// server just added (maintenance, checks not enabled), one failing its check, one
    /// with a host name it could not resolve.
    const STATE: &str = "1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
4 web_backend 1 s0 127.0.0.1 2 0 1 1 2 15 3 4 6 0 0 0 - 19001 - 0 0 - - 0
4 web_backend 2 d1 127.0.0.1 0 1 1 1 0 1 0 0 2 0 0 0 - 19002 - 0 0 - - 0
4 web_backend 3 d2 127.0.0.1 0 0 1 1 3 17 2 0 6 0 0 0 - 19003 - 0 0 - - 0
4 web_backend 7 h2 - 0 1 1 1 0 1 0 0 0 0 0 0 nonexistent.invalid 19001 - 0 0 - - 0
4 web_backend 4 d3 ::1 2 8 1 1 48 15 3 4 6 0 0 0 - 19002 - 0 0 - - 0

";

    #[test]
    fn parses_servers_state() {
        let s = parse_servers_state(STATE).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].backend, "web_backend");
        assert_eq!((s[0].backend_id, s[0].id), (4, 1));
        assert_eq!(s[0].name, "s0");
        assert_eq!(s[0].addr, "127.0.0.1");
        assert_eq!(s[0].port, 19001);
        assert_eq!(s[0].op_state, OpState::Running);
        assert_eq!(s[0].admin.state(), AdminState::Ready);
        assert_eq!(s[0].check_result, CheckResult::Passed);
        assert_eq!(s[0].check_status_name(), "L7OK");
        assert!(s[0].checks_enabled());
        assert!(s[0].in_rotation());
        assert!(s[0].is_up() && !s[0].is_maint());
        assert_eq!(s[0].status_word(), "UP");
        assert!(s[0].check_passing(2));
        assert_eq!(s[0].member(), Some(Member::new("s0", "127.0.0.1", 19001)));

        // A freshly added dynamic server.
        assert_eq!(s[1].op_state, OpState::Stopped);
        assert!(s[1].admin.contains(AdminFlags::FMAINT));
        assert_eq!(s[1].admin.state(), AdminState::Maint);
        assert!(!s[1].checks_enabled());
        assert_eq!(s[1].check_status_name(), "INI");
        assert_eq!(s[1].check_result, CheckResult::Unknown);
        assert!(!s[1].in_rotation());
        assert!(!s[1].is_up() && s[1].is_maint());
        assert_eq!(s[1].status_word(), "MAINT");
        assert!(!s[1].check_passing(1));

        assert_eq!(s[2].check_result, CheckResult::Failed);
        assert_eq!(s[2].check_status_name(), "L7STS");
        assert!(!s[2].in_rotation());
        assert_eq!(s[2].status_word(), "DOWN");
        assert!(!s[2].is_up());

        assert_eq!(s[3].addr, "-");
        assert_eq!(s[3].fqdn.as_deref(), Some("nonexistent.invalid"));
        assert_eq!(s[3].member(), None);

        assert_eq!(s[4].addr, "::1");
        assert!(s[4].admin.draining());
        assert_eq!(s[4].admin.state(), AdminState::Drain);
        assert!(!s[4].in_rotation());
        assert!(s[4].is_up());
        assert_eq!(s[4].status_word(), "DRAIN");
        assert_eq!(s[4].since_last_change, Duration::from_secs(48));
    }

    #[test]
    fn empty_backend_parses_to_nothing() {
        let s = parse_servers_state(
            "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\n",
        )
        .unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn bad_state_answers_are_parse_errors() {
        assert!(parse_servers_state("").is_err());
        assert!(parse_servers_state("2\n# be_id\n").is_err());
        assert!(parse_servers_state("1\n4 web 1 s0\n").is_err());
        let truncated = STATE.replace(" 19001 - 0 0 - - 0\n4 web_backend 2", "\n4 web_backend 2");
        assert!(parse_servers_state(&truncated).is_err());
    }

    #[test]
    fn admin_flags_follow_haproxy_masks() {
        assert_eq!(AdminFlags(0).state(), AdminState::Ready);
        assert_eq!(AdminFlags(AdminFlags::FMAINT).state(), AdminState::Maint);
        assert_eq!(AdminFlags(AdminFlags::RMAINT).state(), AdminState::Maint);
        assert_eq!(
            AdminFlags(AdminFlags::FMAINT | AdminFlags::FDRAIN).state(),
            AdminState::Maint
        );
        assert_eq!(AdminFlags(AdminFlags::IDRAIN).state(), AdminState::Drain);
        // Configuration-disabled alone and FQDN-changed are not maintenance by themselves.
        assert_eq!(AdminFlags(AdminFlags::CMAINT).state(), AdminState::Ready);
        assert_eq!(AdminFlags(AdminFlags::HMAINT).state(), AdminState::Ready);
    }

    /// `show stat` from HAProxy 2.6.12 (columns cut after `h1_spliced_bytes_out`).
    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,
stats,FRONTEND,,,0,0,1000,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
web_frontend,FRONTEND,,,0,1,1000,10,830,1290,0,0,0,,,,,OPEN,,,,,,,,,1,3,0,,,,0,0,0,10,,,,0,10,0,0,0,0,,0,10,10,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,10,10,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,10,10,800,1260,0,0,
web_backend,s0,0,0,0,1,,4,332,516,,0,,0,0,0,0,UP,1,1,0,1,1,74,2,,1,4,1,,4,,2,0,,4,L7OK,200,2,0,4,0,0,0,0,,,,4,0,0,,,,,4,,,0,0,1,33,,,,Layer7 check passed,,2,3,4,,,,127.0.0.1:19001,,http,,,,,,,,0,1,3,,,1,,0,0,2,46,0,0,1,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
web_backend,d2,0,0,2,3,,7,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,61,61,,1,4,3,,0,,2,0,,0,* L7STS,500,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,\"Internal, Server Error\",,0,0,0,0,,,,Layer7 wrong status,,2,3,0,,,,127.0.0.1:19003,,http,,,,,,,,0,0,0,,,0,0,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
web_backend,BACKEND,0,0,0,1,100,10,830,1290,0,0,,0,0,0,0,UP,2,2,0,,1,74,2,,1,4,0,,10,,1,0,,10,,,,0,10,0,0,0,0,,,,10,0,0,0,0,0,0,4,,,0,0,1,14,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,7,3,0,0,,,0,0,2,46,0,,,,,2,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,463,466,60941,11720,0,0,
";

    #[test]
    fn parses_show_stat() {
        let rows = parse_stats(STAT).unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0].kind, StatKind::Frontend);
        assert_eq!(rows[0].status, "OPEN");
        assert_eq!(rows[0].weight, None);
        let s0 = &rows[2];
        assert_eq!(
            (s0.proxy.as_str(), s0.server.as_str()),
            ("web_backend", "s0")
        );
        assert_eq!(s0.kind, StatKind::Server);
        assert_eq!((s0.scur, s0.qcur, s0.smax, s0.stot), (0, 0, 1, 4));
        assert_eq!(s0.status, "UP");
        assert_eq!(s0.check_status.as_deref(), Some("L7OK"));
        assert_eq!(s0.weight, Some(1));
        let d2 = &rows[3];
        assert_eq!((d2.scur, d2.smax, d2.stot), (2, 3, 7));
        assert_eq!(d2.status, "DOWN");
        // In-progress marker stripped; a quoted field with a comma does not shift columns.
        assert_eq!(d2.check_status.as_deref(), Some("L7STS"));
        assert_eq!(rows[4].kind, StatKind::Backend);
        assert_eq!(rows[4].weight, Some(2));
        assert_eq!(rows[4].stot, 10);
    }

    #[test]
    fn stat_without_header_is_a_parse_error() {
        assert!(parse_stats("web_backend,s0,0\n").is_err());
        assert!(parse_stats("").is_err());
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(split_csv("a,\"b,c\",\"d\"\"e\","), ["a", "b,c", "d\"e", ""]);
    }

    #[test]
    fn runtime_addresses_parse() {
        assert_eq!(
            RuntimeAddr::parse("unix:/run/haproxy/admin.sock").unwrap(),
            RuntimeAddr::Unix("/run/haproxy/admin.sock".into())
        );
        assert_eq!(
            RuntimeAddr::parse("/tmp/a.sock").unwrap(),
            RuntimeAddr::Unix("/tmp/a.sock".into())
        );
        assert_eq!(
            RuntimeAddr::parse("127.0.0.1:9999").unwrap(),
            RuntimeAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 9999
            }
        );
        assert_eq!(
            RuntimeAddr::parse("[::1]:9999").unwrap(),
            RuntimeAddr::Tcp {
                host: "::1".into(),
                port: 9999
            }
        );
        assert_eq!(
            RuntimeAddr::parse("[::1]:9999").unwrap().to_string(),
            "[::1]:9999"
        );
        for bad in [
            "",
            "unix:",
            "haproxy",
            "host:0",
            "host:99999",
            "a b:1",
            ":80",
        ] {
            assert!(
                matches!(RuntimeAddr::parse(bad), Err(LbError::InvalidAddress { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn failure_answers_are_recognised() {
        for a in [
            "No such server.\n\n",
            "No such backend.\n",
            "Can't find backend.\n\n",
            "Unknown command, but maybe one of the following ones is a better match:\n  x\n",
            "Require 'admin' level.\n",
            "Permission denied\n",
            "Only servers in maintenance mode can be deleted.\n",
            "Invalid addr '1.2.3.4.5' by 'stats socket command'\n",
            "invalid port '99999'\n",
            "unknown keyword 'bogus'.\n",
            "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n",
            "Already exists a server with the same name in backend.\n",
            "Server is not in maintenance mode.\n",
        ] {
            assert!(looks_failed(a), "{a:?}");
        }
        for a in [
            "",
            "\n",
            "New server registered.\n\n",
            "Server deleted.\n",
            "Name: HAProxy\nVersion: 2.6.12\n",
            "no need to change the addr, port changed from '1' to '2' by 'stats socket command'\n",
        ] {
            assert!(!looks_failed(a), "{a:?}");
        }
    }

    #[test]
    fn commands_must_be_one_line() {
        for bad in [
            "",
            "  ",
            "show info\nshow stat",
            "show info; shutdown frontend x",
            "show\rinfo",
            "a\0b",
        ] {
            assert!(
                matches!(validate_command(bad), Err(LbError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        validate_command("show servers state web_backend").unwrap();
    }

    fn client(path: &std::path::Path, timeout: Duration) -> HaproxyClient {
        HaproxyClient::new(&format!("unix:{}", path.display()), timeout).unwrap()
    }

    #[tokio::test]
    async fn invalid_names_are_refused_before_connecting() {
        // Nothing listens there: any connection attempt would be a Connect error.
        let c = client(
            std::path::Path::new("/nonexistent/haproxy.sock"),
            Duration::from_secs(1),
        );
        let check = HealthCheck {
            inter: Duration::from_secs(1),
            fall: 3,
            rise: 2,
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(1),
        };
        for (be, srv) in [
            ("web_backend", "a b"),
            ("web_backend", "a;b"),
            ("a#b", "s1"),
        ] {
            let e = c
                .add_server(be, srv, "127.0.0.1", 80, &check)
                .await
                .unwrap_err();
            assert!(matches!(e, LbError::InvalidName { .. }), "{e}");
            let e = c.set_state(be, srv, AdminState::Drain).await.unwrap_err();
            assert!(matches!(e, LbError::InvalidName { .. }), "{e}");
            let e = c.del_server(be, srv).await.unwrap_err();
            assert!(matches!(e, LbError::InvalidName { .. }), "{e}");
        }
        let e = c
            .add_server("web_backend", "s1", "1.2.3.4;x", 80, &check)
            .await
            .unwrap_err();
        assert!(
            matches!(e, LbError::InvalidName { what: "host", .. }),
            "{e}"
        );
        let e = c.command("show info; show stat").await.unwrap_err();
        assert!(matches!(e, LbError::InvalidName { .. }), "{e}");
        let e = c.command("show info").await.unwrap_err();
        assert!(matches!(e, LbError::Connect { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_silent_socket_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let c = client(&path, Duration::from_millis(200));
        let start = Instant::now();
        let e = c.command("show info").await.unwrap_err();
        assert!(matches!(e, LbError::Timeout { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(2));
        hold.abort();
    }

    #[tokio::test]
    async fn error_answers_become_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let cmd = String::from_utf8_lossy(&buf[..n]).into_owned();
                let answer = if cmd.starts_with("del server") {
                    "Server still has connections attached to it, cannot remove it.\n"
                } else if cmd.starts_with("set server") {
                    "\n"
                } else {
                    "No such server.\n\n"
                };
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        let c = client(&path, Duration::from_secs(2));
        let e = c.servers_state("web_backend").await.unwrap_err();
        assert!(
            matches!(&e, LbError::Refused { answer, .. } if answer == "No such server."),
            "{e}"
        );
        assert!(e.is_not_found());
        let e = c.del_server("web_backend", "s1").await.unwrap_err();
        assert!(matches!(e, LbError::StillConnected { .. }), "{e}");
        server.abort();
    }
}
