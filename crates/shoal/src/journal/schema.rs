//! The database schema: created in a fresh file, its version checked in an existing one.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::JournalError;

/// Schema version this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;

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

/// Version 2 adds the revisions each service ran (pinned images), kept across restarts.
const SCHEMA_V2: &str = "
CREATE TABLE revisions (
    service        TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    revision       TEXT    NOT NULL,
    activated_ms   INTEGER NOT NULL,
    failed         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (service, id)
) WITHOUT ROWID;
";

/// Creates the schema in a fresh database, or checks the version of an existing one.
pub(super) fn init_schema(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
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
            tx.execute_batch(SCHEMA_V2).map_err(err)?;
            // In the same transaction: a schema is either complete and versioned or absent.
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(err)?;
        }
        SCHEMA_VERSION => {}
        1 => {
            // A journal of an earlier shoal: add what version 2 adds, in the same transaction.
            tx.execute_batch(SCHEMA_V2).map_err(err)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(err)?;
        }
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
    super::learned::ensure_table(&tx).map_err(err)?;
    tx.commit().map_err(err)
}
