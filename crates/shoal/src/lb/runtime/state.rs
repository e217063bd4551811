//! `show servers state <backend>`: a server's operational, administrative and check state,
//! and the parser of the command's answer.

use std::time::Duration;

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
    /// `srv_check_status`: an `HCHK_STATUS_*` code (1 `INI`, 15 `L7OK`, 17 `L7STS`, ...).
    pub check_status: u32,
    /// `srv_check_result`.
    pub check_result: CheckResult,
    /// `srv_check_health` (0 to rise+fall-1; UP from `rise` on).
    pub check_health: u32,
    /// `srv_check_state`: `CHK_ST_*` flags (0x04 `CHK_ST_ENABLED`: the checks run).
    pub check_state: u32,
    /// `srv_fqdn`, if the server was given a name.
    pub fqdn: Option<String>,
}

impl ServerState {
    /// Whether HAProxy currently sends new traffic to it: up and neither draining nor in
    /// maintenance.
    #[must_use]
    pub fn in_rotation(&self) -> bool {
        matches!(self.op_state, OpState::Running | OpState::Starting)
            && self.admin.state() == AdminState::Ready
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
}

/// Parses the answer of `show servers state` (format version 1): a version line, a
/// `# field ...` header, then one whitespace-separated line per server.
pub fn parse_servers_state(answer: &str) -> std::result::Result<Vec<ServerState>, String> {
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
