//! [`Journal`]: the SQLite connection behind a mutex, recording events, saving service
//! state, and pruning old events.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};

use super::query::{query_events, query_states};
use super::schema::init_schema;
use super::{Event, JournalError, NewEvent, SavedState, DEFAULT_RETENTION, PRUNE_EVERY};

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Inner {
    pub(super) conn: Connection,
    /// Inserts since the last pruning.
    since_prune: u32,
}

/// The decision journal and saved service state, in SQLite. `Send + Sync`; calls are short
/// and serialised by a mutex.
pub struct Journal {
    inner: Mutex<Inner>,
    /// Events recorded by this process, by (service, action): counters for the metrics
    /// (the table is pruned, so it is no source for them).
    recorded: Mutex<BTreeMap<(String, &'static str), u64>>,
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

impl Journal {
    /// Opens the journal at `path`, creating the file (mode 0600, and an existing one is
    /// narrowed to it), its parent directory and the schema when missing. WAL mode,
    /// `synchronous=NORMAL`, busy timeout 5 s.
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
        // SQLite creates the file (and its -wal and -shm files, with the same mode) 0644:
        // create it 0600 first, or narrow an existing one.
        crate::files::ensure_private(path).map_err(|source| JournalError::Private {
            path: path.to_owned(),
            source,
        })?;
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

    /// A journal in memory, lost when dropped (unit tests).
    ///
    /// # Panics
    /// Only when SQLite cannot allocate an in-memory database.
    #[cfg(test)]
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
            recorded: Mutex::default(),
            path,
            retention: DEFAULT_RETENTION,
        }
    }

    /// Keeps at most `max_per_service` events per service (at least 1) instead of
    /// [`DEFAULT_RETENTION`].
    #[cfg(test)]
    #[must_use]
    pub fn with_retention(mut self, max_per_service: usize) -> Self {
        self.retention = max_per_service.max(1);
        self
    }

    /// Events kept per service.
    #[cfg(test)]
    #[must_use]
    pub fn retention(&self) -> usize {
        self.retention
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
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
        {
            let mut counts = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
            let n = counts
                .entry((e.service.to_owned(), e.action.as_str()))
                .or_default();
            *n = n.saturating_add(1);
        }
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

    /// Events recorded by this process since it opened the journal, by (service, action
    /// name), whether or not the database write succeeded.
    #[must_use]
    pub fn recorded(&self) -> BTreeMap<(String, &'static str), u64> {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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

/// Used by tests only.
#[cfg(test)]
impl Journal {
    pub(super) fn prune_now(&self) -> usize {
        prune(&mut self.lock().conn, self.retention).expect("prune")
    }
}
