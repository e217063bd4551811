//! What shoal did and why: scale actions, replicas started, replaced and removed; and the
//! per-service state the control loop needs back after a restart (the cooldown).
//!
//! Stored in an embedded SQLite database ([`Journal::open`]), or in memory
//! ([`Journal::in_memory`]) for tests and for `serve` runs without a path. Events are read
//! newest first. At most [`DEFAULT_RETENTION`] events are kept per service (see
//! [`Journal::with_retention`]); the oldest are pruned every [`PRUNE_EVERY`] inserts, so the
//! journal is not a source for counters.
//!
//! Schema (version [`SCHEMA_VERSION`], kept in `PRAGMA user_version`):
//!
//! ```sql
//! CREATE TABLE events (
//!     seq            INTEGER PRIMARY KEY AUTOINCREMENT,
//!     at             TEXT    NOT NULL,  -- RFC 3339
//!     service        TEXT    NOT NULL,
//!     action         TEXT    NOT NULL,
//!     reason         TEXT    NOT NULL,
//!     desired_before INTEGER,
//!     desired_after  INTEGER,
//!     replica        TEXT,
//!     server         TEXT,
//!     details        TEXT               -- JSON
//! );
//! CREATE INDEX events_service_seq ON events (service, seq);
//! CREATE INDEX events_service_action_seq ON events (service, action, seq);
//! CREATE TABLE service_state (
//!     service        TEXT    PRIMARY KEY NOT NULL,
//!     last_action_ms INTEGER,           -- unix milliseconds
//!     desired        INTEGER,
//!     updated_ms     INTEGER NOT NULL   -- unix milliseconds
//! ) WITHOUT ROWID;
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, TransactionBehavior};

mod action;
pub use action::Action;
use serde::Serialize;

/// Events kept per service unless [`Journal::with_retention`] says otherwise.
pub const DEFAULT_RETENTION: usize = 10_000;

/// Inserts between two prunings of old events (the first insert after opening prunes too).
pub const PRUNE_EVERY: u32 = 500;

/// Schema version this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA_V1: &str = "
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT    NOT NULL,
    service        TEXT    NOT NULL,
    action         TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    desired_before INTEGER,
    desired_after  INTEGER,
    replica        TEXT,
    server         TEXT,
    details        TEXT
);
CREATE INDEX events_service_seq ON events (service, seq);
CREATE INDEX events_service_action_seq ON events (service, action, seq);
CREATE TABLE service_state (
    service        TEXT    PRIMARY KEY NOT NULL,
    last_action_ms INTEGER,
    desired        INTEGER,
    updated_ms     INTEGER NOT NULL
) WITHOUT ROWID;
";

const EVENT_COLUMNS: &str =
    "seq, at, service, action, reason, desired_before, desired_after, replica, server, details";

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Sequence number, increasing, never reused (the SQLite rowid).
    pub seq: u64,
    /// RFC 3339 time.
    pub at: String,
    /// Service it concerns.
    pub service: String,
    /// What happened: an [`Action`] name (`scale_up`, `replica_ready`, ...).
    pub action: String,
    /// Why, in words.
    pub reason: String,
    /// Desired count before, when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_before: Option<u32>,
    /// Desired count after, when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_after: Option<u32>,
    /// Container name it concerns, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Server it concerns, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Structured context of the decision (metric values, thresholds, policy, window state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Fields of a new event; `seq` and `at` are filled in by [`Journal::record`].
#[derive(Clone, Debug, Default)]
pub struct NewEvent<'a> {
    /// Service.
    pub service: &'a str,
    /// What happened.
    pub action: Action,
    /// Reason.
    pub reason: String,
    /// Desired before/after.
    pub desired: Option<(u32, u32)>,
    /// Container name.
    pub replica: Option<&'a str>,
    /// Server.
    pub server: Option<&'a str>,
    /// Structured context (metric values, thresholds, policy, window state), stored as JSON.
    pub details: Option<serde_json::Value>,
}

/// Per-service state the control loop needs back after a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SavedState {
    /// Last scale action, manual or automatic (for the cooldown). Kept to the millisecond.
    pub last_action: Option<jiff::Timestamp>,
    /// Desired replica count.
    pub desired: Option<u32>,
}

/// Why [`Journal::open`] failed. Every variant names the database path.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The parent directory could not be created.
    #[error("journal {}: cannot create directory {}: {source}", path.display(), dir.display())]
    CreateDir {
        /// Database path.
        path: PathBuf,
        /// Directory that could not be created.
        dir: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file exists but is not an SQLite database, or is corrupt.
    #[error(
        "journal {}: the file is not an SQLite database or is corrupt ({source}); \
         move it away or point shoal at another path",
        path.display()
    )]
    NotADatabase {
        /// Database path.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The database is SQLite but holds tables of something else than a shoal journal.
    #[error(
        "journal {}: an SQLite database that is not a shoal journal \
         (schema version {version}, {tables} table(s)); point shoal at another path",
        path.display()
    )]
    Foreign {
        /// Database path.
        path: PathBuf,
        /// `PRAGMA user_version` found.
        version: i64,
        /// Tables found.
        tables: i64,
    },
    /// The database was written by a newer shoal.
    #[error(
        "journal {}: schema version {found} is newer than version {supported} that this \
         shoal knows; upgrade shoal or point it at another path",
        path.display()
    )]
    NewerSchema {
        /// Database path.
        path: PathBuf,
        /// Version found.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// Any other SQLite error (permissions, disk full, locked for longer than the timeout).
    #[error("journal {}: {source}", path.display())]
    Sqlite {
        /// Database path.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
}

impl JournalError {
    fn from_sqlite(path: &Path, source: rusqlite::Error) -> Self {
        let path = path.to_owned();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Self::NotADatabase { path, source }
            }
            _ => Self::Sqlite { path, source },
        }
    }
}

struct Inner {
    conn: Connection,
    /// Inserts since the last pruning.
    since_prune: u32,
}

/// The decision journal and saved service state, in SQLite. `Send + Sync`; calls are short
/// and serialised by a mutex.
pub struct Journal {
    inner: Mutex<Inner>,
    /// `None` in memory.
    path: Option<PathBuf>,
    retention: usize,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl Default for Journal {
    /// Same as [`Journal::in_memory`].
    fn default() -> Self {
        Self::in_memory()
    }
}

impl Journal {
    /// Opens the journal at `path`, creating the file, its parent directory and the schema
    /// when missing. WAL mode, `synchronous=NORMAL`, busy timeout 5 s.
    ///
    /// # Errors
    /// When the directory or file cannot be created or opened, the file is not SQLite or is
    /// corrupt, holds another application's tables, or has a newer schema version.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::CreateDir {
                path: path.to_owned(),
                dir: dir.to_owned(),
                source,
            })?;
        }
        let err = |e| JournalError::from_sqlite(path, e);
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // The first statement that reads the file: garbage shows up here as NOTADB.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                path = %path.display(),
                mode,
                "journal: WAL mode not available; using the mode SQLite chose"
            );
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        init_schema(&mut conn, path)?;
        Ok(Self::from_conn(conn, Some(path.to_owned())))
    }

    /// A journal in memory, lost when dropped: for tests and `serve` runs without a path.
    ///
    /// # Panics
    /// Only when SQLite cannot allocate an in-memory database.
    #[must_use]
    pub fn in_memory() -> Self {
        let mut conn = Connection::open_in_memory().expect("in-memory SQLite database");
        init_schema(&mut conn, Path::new(":memory:")).expect("in-memory journal schema");
        Self::from_conn(conn, None)
    }

    fn from_conn(conn: Connection, path: Option<PathBuf>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                conn,
                // The first insert prunes what earlier runs left.
                since_prune: PRUNE_EVERY,
            }),
            path,
            retention: DEFAULT_RETENTION,
        }
    }

    /// Keeps at most `max_per_service` events per service (at least 1) instead of
    /// [`DEFAULT_RETENTION`].
    #[must_use]
    pub fn with_retention(mut self, max_per_service: usize) -> Self {
        self.retention = max_per_service.max(1);
        self
    }

    /// Database path; `None` in memory.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Events kept per service.
    #[must_use]
    pub fn retention(&self) -> usize {
        self.retention
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn where_(&self) -> String {
        self.path
            .as_deref()
            .map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string())
    }

    /// Appends an event and logs it. Never fails: a database error is logged as a warning.
    pub fn record(&self, e: NewEvent<'_>) {
        let details = e.details.as_ref().map(|d| d.to_string());
        tracing::info!(
            service = e.service,
            action = e.action.as_str(),
            replica = e.replica,
            server = e.server,
            desired = ?e.desired,
            details = details.as_deref(),
            "{}",
            e.reason
        );
        let at = jiff::Timestamp::now().to_string();
        let mut g = self.lock();
        let inserted = g
            .conn
            .prepare_cached(
                "INSERT INTO events (at, service, action, reason, desired_before, desired_after,
                                     replica, server, details)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    at,
                    e.service,
                    e.action.as_str(),
                    e.reason,
                    e.desired.map(|d| d.0),
                    e.desired.map(|d| d.1),
                    e.replica,
                    e.server,
                    details,
                ])
            });
        if let Err(err) = inserted {
            tracing::warn!(
                journal = %self.where_(),
                service = e.service,
                action = e.action.as_str(),
                "journal: recording the event failed: {err}"
            );
            return;
        }
        g.since_prune = g.since_prune.saturating_add(1);
        if g.since_prune >= PRUNE_EVERY {
            g.since_prune = 0;
            if let Err(err) = prune(&mut g.conn, self.retention) {
                tracing::warn!(journal = %self.where_(), "journal: pruning failed: {err}");
            }
        }
    }

    /// Events of `service`, newest first, skipping `offset`, at most `limit`, and the number
    /// of events of `service`. Empty (and logged) on a database error.
    #[must_use]
    pub fn list(&self, service: &str, offset: usize, limit: usize) -> (Vec<Event>, usize) {
        self.list_filtered(service, None, offset, limit)
    }

    /// Like [`Journal::list`], only events whose action is `action` when given; the total
    /// counts those events only.
    #[must_use]
    pub fn list_filtered(
        &self,
        service: &str,
        action: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> (Vec<Event>, usize) {
        let g = self.lock();
        match query_events(&g.conn, service, action, offset, limit) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!(
                    journal = %self.where_(),
                    service,
                    "journal: listing events failed: {err}"
                );
                (Vec::new(), 0)
            }
        }
    }

    /// Stores `state` as the saved state of `service`, replacing the previous one. Never
    /// fails: a database error is logged as a warning.
    pub fn save_service_state(&self, service: &str, state: &SavedState) {
        let g = self.lock();
        let saved = g
            .conn
            .prepare_cached(
                "INSERT INTO service_state (service, last_action_ms, desired, updated_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (service) DO UPDATE SET
                     last_action_ms = excluded.last_action_ms,
                     desired = excluded.desired,
                     updated_ms = excluded.updated_ms",
            )
            .and_then(|mut st| {
                st.execute(params![
                    service,
                    state.last_action.map(|t| t.as_millisecond()),
                    state.desired,
                    jiff::Timestamp::now().as_millisecond(),
                ])
            });
        if let Err(err) = saved {
            tracing::warn!(
                journal = %self.where_(),
                service,
                "journal: saving the service state failed: {err}"
            );
        }
    }

    /// Forgets the saved state of `service` (its events stay until pruned). Never fails: a
    /// database error is logged as a warning.
    pub fn forget_service_state(&self, service: &str) {
        let g = self.lock();
        if let Err(err) = g
            .conn
            .execute("DELETE FROM service_state WHERE service = ?1", [service])
        {
            tracing::warn!(
                journal = %self.where_(),
                service,
                "journal: forgetting the service state failed: {err}"
            );
        }
    }

    /// Saved states by service. Empty (and logged) on a database error.
    #[must_use]
    pub fn load_service_states(&self) -> BTreeMap<String, SavedState> {
        let g = self.lock();
        match query_states(&g.conn) {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(
                    journal = %self.where_(),
                    "journal: loading service states failed: {err}"
                );
                BTreeMap::new()
            }
        }
    }
}

/// Creates the schema in a fresh database, or checks the version of an existing one.
fn init_schema(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let err = |e| JournalError::from_sqlite(path, e);
    // IMMEDIATE: two processes opening a fresh file do not both create the schema.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    match version {
        0 => {
            let tables: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if tables > 0 {
                return Err(JournalError::Foreign {
                    path: path.to_owned(),
                    version,
                    tables,
                });
            }
            tx.execute_batch(SCHEMA_V1).map_err(err)?;
            // In the same transaction: a schema is either complete and versioned or absent.
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(err)?;
        }
        SCHEMA_VERSION => {}
        v if v > SCHEMA_VERSION => {
            return Err(JournalError::NewerSchema {
                path: path.to_owned(),
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        v => {
            let tables: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            return Err(JournalError::Foreign {
                path: path.to_owned(),
                version: v,
                tables,
            });
        }
    }
    tx.commit().map_err(err)
}

/// Deletes, per service, all but the newest `keep` events.
fn prune(conn: &mut Connection, keep: usize) -> rusqlite::Result<usize> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let services: Vec<String> = tx
        .prepare("SELECT DISTINCT service FROM events")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut deleted = 0;
    {
        // The seq of the `keep`-th newest event; older ones go. NULL (nothing deleted) when
        // the service has fewer events.
        let mut st = tx.prepare(
            "DELETE FROM events WHERE service = ?1 AND seq < (
                 SELECT seq FROM events WHERE service = ?1
                 ORDER BY seq DESC LIMIT 1 OFFSET ?2 - 1)",
        )?;
        for s in &services {
            deleted += st.execute(params![s, keep])?;
        }
    }
    tx.commit()?;
    Ok(deleted)
}

fn query_events(
    conn: &Connection,
    service: &str,
    action: Option<&str>,
    offset: usize,
    limit: usize,
) -> rusqlite::Result<(Vec<Event>, usize)> {
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (total, events) = match action {
        None => {
            let total: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM events WHERE service = ?1")?
                .query_row([service], |r| r.get(0))?;
            let events = conn
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE service = ?1
                     ORDER BY seq DESC LIMIT ?2 OFFSET ?3"
                ))?
                .query_map(params![service, limit, offset], event_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            (total, events)
        }
        Some(action) => {
            let total: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM events WHERE service = ?1 AND action = ?2")?
                .query_row([service, action], |r| r.get(0))?;
            let events = conn
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE service = ?1 AND action = ?2
                     ORDER BY seq DESC LIMIT ?3 OFFSET ?4"
                ))?
                .query_map(params![service, action, limit, offset], event_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            (total, events)
        }
    };
    Ok((events, usize::try_from(total).unwrap_or(0)))
}

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let seq: i64 = r.get(0)?;
    let details: Option<String> = r.get(9)?;
    Ok(Event {
        seq: u64::try_from(seq).unwrap_or(0),
        at: r.get(1)?,
        service: r.get(2)?,
        action: r.get(3)?,
        reason: r.get(4)?,
        desired_before: r.get(5)?,
        desired_after: r.get(6)?,
        replica: r.get(7)?,
        server: r.get(8)?,
        // Text that is not JSON (written by hand) is kept as a JSON string.
        details: details.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))),
    })
}

fn query_states(conn: &Connection) -> rusqlite::Result<BTreeMap<String, SavedState>> {
    let mut st = conn.prepare_cached(
        "SELECT service, last_action_ms, desired FROM service_state ORDER BY service",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<u32>>(2)?,
        ))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (service, last_ms, desired) = row?;
        let last_action = last_ms.and_then(|ms| match jiff::Timestamp::from_millisecond(ms) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(service, ms, "journal: saved last action out of range: {e}");
                None
            }
        });
        out.insert(
            service,
            SavedState {
                last_action,
                desired,
            },
        );
    }
    Ok(out)
}

/// Used by tests only.
#[cfg(test)]
impl Journal {
    fn prune_now(&self) -> usize {
        prune(&mut self.lock().conn, self.retention).expect("prune")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev<'a>(service: &'a str, action: &str, reason: &str) -> NewEvent<'a> {
        NewEvent {
            service,
            action: Action::from_name(action).unwrap_or_default(),
            reason: reason.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn journal_is_send_sync_debug() {
        fn check<T: Send + Sync + fmt::Debug>() {}
        check::<Journal>();
        let j = Journal::in_memory();
        assert!(format!("{j:?}").contains("Journal"));
    }

    #[test]
    fn events_survive_reopen_and_seq_keeps_increasing() {
        let dir = tempfile::tempdir().unwrap();
        // Parent directories are created.
        let path = dir.path().join("state").join("sub").join("journal.db");
        let last_seq = {
            let j = Journal::open(&path).unwrap();
            assert_eq!(j.path(), Some(path.as_path()));
            j.record(NewEvent {
                desired: Some((1, 2)),
                ..ev("web", "scale_up", "cpu high")
            });
            j.record(NewEvent {
                replica: Some("web-1"),
                server: Some("a"),
                ..ev("web", "replica_started", "started web-1")
            });
            let (events, total) = j.list("web", 0, 10);
            assert_eq!(total, 2);
            events[0].seq
        };
        let j = Journal::open(&path).unwrap();
        let (events, total) = j.list("web", 0, 10);
        assert_eq!(total, 2);
        assert_eq!(events[0].action, "replica_started");
        assert_eq!(events[0].replica.as_deref(), Some("web-1"));
        assert_eq!(events[0].server.as_deref(), Some("a"));
        assert_eq!(events[1].action, "scale_up");
        assert_eq!(events[1].desired_before, Some(1));
        assert_eq!(events[1].desired_after, Some(2));
        assert!(events[1].at.parse::<jiff::Timestamp>().is_ok());
        j.record(ev("web", "scale_down", "idle"));
        let (events, total) = j.list("web", 0, 1);
        assert_eq!(total, 3);
        assert!(events[0].seq > last_seq);
        assert_eq!(events[0].action, "scale_down");
    }

    #[test]
    fn seq_is_never_reused() {
        let j = Journal::in_memory();
        j.record(ev("web", "a", "1"));
        j.record(ev("web", "b", "2"));
        let top = j.list("web", 0, 1).0[0].seq;
        j.lock()
            .conn
            .execute("DELETE FROM events WHERE seq = ?1", [top as i64])
            .unwrap();
        j.record(ev("web", "c", "3"));
        assert!(j.list("web", 0, 1).0[0].seq > top);
    }

    #[test]
    fn newest_first_with_paging_and_total() {
        let j = Journal::in_memory();
        for i in 0..25 {
            j.record(ev("web", "rollout", &format!("web {i}")));
            if i % 5 == 0 {
                j.record(ev("api", "rollout", &format!("api {i}")));
            }
        }
        let (page, total) = j.list("web", 0, 10);
        assert_eq!(total, 25);
        let reasons: Vec<_> = page.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons[0], "web 24");
        assert_eq!(reasons[9], "web 15");
        assert!(page.windows(2).all(|w| w[0].seq > w[1].seq));
        let (page, total) = j.list("web", 20, 10);
        assert_eq!(total, 25);
        assert_eq!(page.len(), 5);
        assert_eq!(page[4].reason, "web 0");
        let (page, total) = j.list("web", 30, 10);
        assert_eq!((page.len(), total), (0, 25));
        let (page, total) = j.list("web", 0, 0);
        assert_eq!((page.len(), total), (0, 25));
        assert_eq!(j.list("api", 0, usize::MAX).1, 5);
        assert_eq!(j.list("nope", 0, 10), (Vec::new(), 0));
    }

    #[test]
    fn list_filtered_by_action() {
        let j = Journal::in_memory();
        for i in 0..6 {
            let action = if i % 2 == 0 {
                "scale_up"
            } else {
                "replica_ready"
            };
            j.record(ev("web", action, &i.to_string()));
        }
        let (page, total) = j.list_filtered("web", Some("scale_up"), 1, 10);
        assert_eq!(total, 3);
        let reasons: Vec<_> = page.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["2", "0"]);
        assert_eq!(j.list_filtered("web", None, 0, 10).1, 6);
        assert_eq!(j.list_filtered("web", Some("error"), 0, 10).1, 0);
    }

    #[test]
    fn retention_prunes_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = Journal::open(&path).unwrap().with_retention(10);
        assert_eq!(j.retention(), 10);
        let n = PRUNE_EVERY as usize + 50;
        for i in 0..n {
            j.record(ev("web", "rollout", &format!("web {i}")));
            j.record(ev("api", "rollout", &format!("api {i}")));
        }
        // Pruned every PRUNE_EVERY inserts, not on each: between N and N + PRUNE_EVERY left.
        let (_, total) = j.list("web", 0, 1);
        assert!(total >= 10 && total <= 10 + PRUNE_EVERY as usize, "{total}");
        j.prune_now();
        for svc in ["web", "api"] {
            let (page, total) = j.list(svc, 0, 100);
            assert_eq!(total, 10);
            assert_eq!(page[0].reason, format!("{svc} {}", n - 1));
            assert_eq!(page[9].reason, format!("{svc} {}", n - 10));
        }
        // A reopened journal prunes on its first insert (restarts do not defeat retention).
        drop(j);
        {
            let j = Journal::open(&path).unwrap();
            for i in 0..20 {
                j.record(ev("web", "rollout", &format!("more {i}")));
            }
            assert_eq!(j.list("web", 0, 1).1, 30);
        }
        let j = Journal::open(&path).unwrap().with_retention(5);
        j.record(ev("web", "rollout", "last"));
        assert_eq!(j.list("web", 0, 1).1, 5);
        assert_eq!(j.list("api", 0, 1).1, 5);
    }

    #[test]
    fn service_state_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let at: jiff::Timestamp = "2026-03-01T12:34:56.789Z".parse().unwrap();
        let now = jiff::Timestamp::now();
        {
            let j = Journal::open(&path).unwrap();
            assert!(j.load_service_states().is_empty());
            j.save_service_state(
                "web",
                &SavedState {
                    last_action: Some(at),
                    desired: Some(3),
                },
            );
            j.save_service_state("api", &SavedState::default());
            j.save_service_state(
                "gone",
                &SavedState {
                    last_action: Some(now),
                    desired: Some(1),
                },
            );
            j.forget_service_state("gone");
            j.save_service_state(
                "api",
                &SavedState {
                    last_action: Some(now),
                    desired: Some(0),
                },
            );
        }
        let j = Journal::open(&path).unwrap();
        let states = j.load_service_states();
        assert_eq!(states.len(), 2);
        assert_eq!(
            states["web"],
            SavedState {
                last_action: Some(at),
                desired: Some(3)
            }
        );
        let api = states["api"];
        assert_eq!(api.desired, Some(0));
        let back = api.last_action.unwrap();
        assert_eq!(back.as_millisecond(), now.as_millisecond());
        assert!(now.duration_since(back) < jiff::SignedDuration::from_millis(1));
        // Overwrite with nothing.
        j.save_service_state("web", &SavedState::default());
        assert_eq!(j.load_service_states()["web"], SavedState::default());
    }

    #[test]
    fn details_json_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let details = json!({
            "metric": "cpu",
            "value": 0.87,
            "threshold": {"up": 0.8, "down": 0.3},
            "policy": "business_hours",
            "window": [0.81, 0.9, 0.87],
            "breaches": 3,
            "note": null,
        });
        {
            let j = Journal::open(&path).unwrap();
            j.record(NewEvent {
                desired: Some((2, 3)),
                details: Some(details.clone()),
                ..ev("web", "scale_up", "cpu above 0.8 for 3 windows")
            });
            j.record(ev("web", "replica_ready", "no details"));
        }
        let j = Journal::open(&path).unwrap();
        let (events, _) = j.list("web", 0, 10);
        assert_eq!(events[0].details, None);
        assert_eq!(events[1].details.as_ref(), Some(&details));
        let ser = serde_json::to_value(&events[0]).unwrap();
        assert!(ser.get("details").is_none());
        assert!(ser.get("replica").is_none());
        let ser = serde_json::to_value(&events[1]).unwrap();
        assert_eq!(ser["details"], details);
        assert_eq!(ser["desired_after"], 3);
    }

    #[test]
    fn corrupt_file_is_a_clear_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        std::fs::write(&path, "this is not a database\n".repeat(400)).unwrap();
        let err = Journal::open(&path).unwrap_err();
        assert!(matches!(err, JournalError::NotADatabase { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("not an SQLite database"), "{msg}");
        // Left as it was.
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("this is not"));
    }

    #[test]
    fn short_garbage_file_is_an_error_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        std::fs::write(&path, "garbage").unwrap();
        let err = Journal::open(&path).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn newer_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        drop(Journal::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = Journal::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                JournalError::NewerSchema {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn foreign_sqlite_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);")
            .unwrap();
        let err = Journal::open(&path).unwrap_err();
        assert!(
            matches!(err, JournalError::Foreign { tables: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn open_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = Journal::open(&path).unwrap();
        let g = j.lock();
        let mode: String = g
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = g
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
    }

    #[test]
    fn record_survives_a_broken_database() {
        let j = Journal::in_memory();
        j.lock().conn.execute_batch("DROP TABLE events;").unwrap();
        // Logs a warning, neither panics nor propagates.
        j.record(ev("web", "scale_up", "x"));
        assert_eq!(j.list("web", 0, 10), (Vec::new(), 0));
        j.lock()
            .conn
            .execute_batch("DROP TABLE service_state;")
            .unwrap();
        j.save_service_state("web", &SavedState::default());
        assert!(j.load_service_states().is_empty());
    }

    #[test]
    fn concurrent_record_from_several_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = std::sync::Arc::new(Journal::open(&path).unwrap());
        let threads = 4;
        let per_thread = 150;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let j = j.clone();
                std::thread::spawn(move || {
                    let service = if t % 2 == 0 { "web" } else { "api" };
                    for i in 0..per_thread {
                        j.record(NewEvent {
                            details: Some(json!({ "thread": t, "i": i })),
                            ..ev(service, "replica_ready", &format!("{t}/{i}"))
                        });
                        if i % 50 == 0 {
                            j.save_service_state(
                                service,
                                &SavedState {
                                    last_action: Some(jiff::Timestamp::now()),
                                    desired: Some(i),
                                },
                            );
                            let _ = j.list(service, 0, 5);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let mut seqs = Vec::new();
        for svc in ["web", "api"] {
            let (events, total) = j.list(svc, 0, usize::MAX);
            assert_eq!(total, 2 * per_thread as usize);
            assert!(events.windows(2).all(|w| w[0].seq > w[1].seq));
            // Each thread's events in its own order.
            for t in 0..threads {
                let mine: Vec<i64> = events
                    .iter()
                    .filter(|e| e.details.as_ref().unwrap()["thread"] == t)
                    .map(|e| e.details.as_ref().unwrap()["i"].as_i64().unwrap())
                    .collect();
                assert!(mine.windows(2).all(|w| w[0] > w[1]));
            }
            seqs.extend(events.iter().map(|e| e.seq));
        }
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), (threads * per_thread) as usize);
        assert_eq!(j.load_service_states().len(), 2);
    }
}
