//! What shoal did and why: scale actions, replicas started, replaced and removed; and the
//! per-service state the control loop needs back after a restart (the cooldown).
//!
//! Stored in an embedded SQLite database ([`Journal::open`]; unit tests also use one in
//! memory). Events are read newest first. At most [`DEFAULT_RETENTION`] events are kept per
//! service; the oldest are pruned every [`PRUNE_EVERY`] inserts, so the journal is not a
//! source for counters.
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
//! CREATE TABLE revisions (          -- version 2: the revisions each service ran
//!     service        TEXT    NOT NULL,
//!     id             TEXT    NOT NULL,
//!     revision       TEXT    NOT NULL,  -- JSON: spec and pinned image
//!     activated_ms   INTEGER NOT NULL,  -- when it last became the service's revision
//!     failed         INTEGER NOT NULL DEFAULT 0,  -- an update to it was rolled back
//!     PRIMARY KEY (service, id)
//! ) WITHOUT ROWID;
//! ```
//!
//! plus `policy_state`, what the adaptive policy learned (`learned`: an additive table).
//!
//! - `store`: [`Journal`] (open, record, save and load state, prune); `query`: reading events
//!   and states back; `schema`: creating and checking the schema; `error`: [`JournalError`].

mod action;
mod error;
mod learned;
mod query;
mod revisions;
mod schema;
mod store;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use action::Action;
pub use error::JournalError;
pub use revisions::RevisionRecord;
pub use schema::SCHEMA_VERSION;
pub use store::Journal;

/// Events kept per service (unit tests lower it to exercise pruning).
pub const DEFAULT_RETENTION: usize = 10_000;

/// Inserts between two prunings of old events (the first insert after opening prunes too).
pub const PRUNE_EVERY: u32 = 500;

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
