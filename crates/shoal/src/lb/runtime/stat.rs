//! `show stat`: the rows (frontends, backends, servers, listeners) with the columns shoal
//! uses, and the parser of the command's CSV answer.

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
    /// `rate`: sessions per second over the last second (0 when the column is absent).
    pub rate: u64,
    /// `req_tot`: HTTP requests received (frontends and backends in HTTP mode; 0 when
    /// empty or absent).
    pub req_tot: u64,
}

/// Splits one CSV line as HAProxy writes it (fields with a comma or quote are quoted,
/// quotes doubled).
pub(super) fn split_csv(line: &str) -> Vec<String> {
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
pub fn parse_stats(answer: &str) -> std::result::Result<Vec<StatRow>, String> {
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
    // Newer columns: absent from an old HAProxy's header, read as 0.
    let (rate, req_tot) = (col("rate").ok(), col("req_tot").ok());
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
                rate: rate.map_or(Ok(0), num)?,
                req_tot: req_tot.map_or(Ok(0), num)?,
            })
        })
        .collect()
}
