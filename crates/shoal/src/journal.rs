//! What shoal did and why: scale actions, replicas started, replaced and removed.
//!
//! Kept in memory (the newest [`CAPACITY`] events); newest first when read.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Events kept.
pub const CAPACITY: usize = 2000;

/// One recorded event.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Sequence number, increasing.
    pub seq: u64,
    /// RFC 3339 time.
    pub at: String,
    /// Service it concerns.
    pub service: String,
    /// What happened: `scale_up`, `scale_down`, `replica_started`, `replica_ready`,
    /// `replica_replaced`, `replica_removed`, `replica_failed`, `adopted`, `rollout`, `error`.
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
    /// Metric values, thresholds, window state of a decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// TEMPORARY: replaced by the SQLite journal.
#[derive(Clone, Debug, Default)]
pub struct SavedState {
    /// Last scale action.
    pub last_action: Option<jiff::Timestamp>,
    /// Desired count.
    pub desired: Option<u32>,
}

/// The in-memory journal.
#[derive(Debug, Default)]
pub struct Journal {
    inner: Mutex<(u64, VecDeque<Event>)>,
}

/// Fields of a new event; `seq` and `at` are filled in by [`Journal::record`].
#[derive(Clone, Debug, Default)]
pub struct NewEvent<'a> {
    /// Service.
    pub service: &'a str,
    /// Action.
    pub action: &'a str,
    /// Reason.
    pub reason: String,
    /// Desired before/after.
    pub desired: Option<(u32, u32)>,
    /// Container name.
    pub replica: Option<&'a str>,
    /// Server.
    pub server: Option<&'a str>,
    /// Details.
    pub details: Option<serde_json::Value>,
}

impl Journal {
    /// TEMPORARY.
    pub fn open(_path: &std::path::Path) -> Result<Self, std::io::Error> {
        Ok(Self::default())
    }
    /// TEMPORARY.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::default()
    }
    /// TEMPORARY.
    pub fn save_service_state(&self, _service: &str, _state: &SavedState) {}
    /// TEMPORARY.
    #[must_use]
    pub fn load_service_states(&self) -> std::collections::BTreeMap<String, SavedState> {
        Default::default()
    }

    /// Appends an event and logs it.
    pub fn record(&self, e: NewEvent<'_>) {
        tracing::info!(
            service = e.service,
            action = e.action,
            replica = e.replica,
            server = e.server,
            desired = ?e.desired,
            "{}",
            e.reason
        );
        let mut g = self.inner.lock().expect("journal lock");
        g.0 += 1;
        let ev = Event {
            seq: g.0,
            at: jiff::Timestamp::now().to_string(),
            service: e.service.to_owned(),
            action: e.action.to_owned(),
            reason: e.reason,
            desired_before: e.desired.map(|d| d.0),
            desired_after: e.desired.map(|d| d.1),
            replica: e.replica.map(str::to_owned),
            server: e.server.map(str::to_owned),
            details: e.details,
        };
        if g.1.len() == CAPACITY {
            g.1.pop_front();
        }
        g.1.push_back(ev);
    }

    /// Events of `service`, newest first, skipping `offset`, at most `limit`.
    #[must_use]
    pub fn list(&self, service: &str, offset: usize, limit: usize) -> (Vec<Event>, usize) {
        let g = self.inner.lock().expect("journal lock");
        let all: Vec<&Event> = g.1.iter().rev().filter(|e| e.service == service).collect();
        let total = all.len();
        (
            all.into_iter().skip(offset).take(limit).cloned().collect(),
            total,
        )
    }
}
