//! What the adaptive policy learned per service ([`crate::policy::Learned`]), kept across
//! restarts in a table of its own:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS policy_state (
//!     service    TEXT    PRIMARY KEY NOT NULL,
//!     learned    TEXT    NOT NULL,   -- JSON of policy::Learned
//!     updated_ms INTEGER NOT NULL    -- unix milliseconds
//! ) WITHOUT ROWID;
//! ```
//!
//! The table is additive: it is created when missing in a journal of the current schema
//! version (so a journal written before it existed opens unchanged), and an older build
//! ignores it.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use super::Journal;
use crate::policy::Learned;

pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS policy_state (
    service    TEXT    PRIMARY KEY NOT NULL,
    learned    TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;";

/// Creates the table when missing.
pub(super) fn ensure_table(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TABLE)
}

impl Journal {
    /// Stores what the adaptive policy learned about `service`, replacing what was there.
    /// Never fails: a database error is logged as a warning.
    pub fn save_learned(&self, service: &str, learned: &Learned) {
        let json = match serde_json::to_string(learned) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(service, "journal: encoding the learned state failed: {e}");
                return;
            }
        };
        let g = self.lock();
        let saved = g
            .conn
            .prepare_cached(
                "INSERT INTO policy_state (service, learned, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (service) DO UPDATE SET
                     learned = excluded.learned, updated_ms = excluded.updated_ms",
            )
            .and_then(|mut st| {
                st.execute(params![
                    service,
                    json,
                    jiff::Timestamp::now().as_millisecond()
                ])
            });
        if let Err(err) = saved {
            tracing::warn!(service, "journal: saving the learned state failed: {err}");
        }
    }

    /// What the adaptive policy learned, by service. A row that does not decode is skipped
    /// with a warning (the policy then learns again); empty on a database error.
    #[must_use]
    pub fn load_learned(&self) -> BTreeMap<String, Learned> {
        let g = self.lock();
        let rows = g
            .conn
            .prepare_cached("SELECT service, learned FROM policy_state ORDER BY service")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            });
        let rows = match rows {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!("journal: loading learned states failed: {err}");
                return BTreeMap::new();
            }
        };
        rows.into_iter()
            .filter_map(|(service, json)| match serde_json::from_str(&json) {
                Ok(l) => Some((service, l)),
                Err(e) => {
                    tracing::warn!(service, "journal: the learned state does not decode: {e}");
                    None
                }
            })
            .collect()
    }

    /// Forgets what was learned about `service`. Never fails.
    pub fn forget_learned(&self, service: &str) {
        let g = self.lock();
        if let Err(err) = g
            .conn
            .execute("DELETE FROM policy_state WHERE service = ?1", [service])
        {
            tracing::warn!(
                service,
                "journal: forgetting the learned state failed: {err}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_state_survives_reopening_and_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut l = Learned::default();
        l.observations.extend([20.0, 21.5, 19.0]);
        l.updated = Some(jiff::Timestamp::from_second(1_800_000_000).unwrap());
        {
            let j = Journal::open(&path).unwrap();
            assert!(j.load_learned().is_empty());
            j.save_learned("web", &l);
            j.save_learned("api", &Learned::default());
        }
        let j = Journal::open(&path).unwrap();
        let back = j.load_learned();
        assert_eq!(back["web"], l);
        assert_eq!(back["web"].capacity(), Some(20.0));
        assert_eq!(back["api"], Learned::default());
        j.forget_learned("web");
        assert!(!j.load_learned().contains_key("web"));
    }

    #[test]
    fn a_journal_from_before_the_table_opens_and_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Journal::open(&path).unwrap());
        // As a build without the table left it.
        let c = Connection::open(&path).unwrap();
        c.execute_batch("DROP TABLE policy_state").unwrap();
        drop(c);
        let j = Journal::open(&path).unwrap();
        j.save_learned("web", &Learned::default());
        assert_eq!(j.load_learned().len(), 1);
    }

    #[test]
    fn a_row_that_does_not_decode_is_skipped() {
        let j = Journal::in_memory();
        j.save_learned("ok", &Learned::default());
        j.lock()
            .conn
            .execute("INSERT INTO policy_state VALUES ('bad', 'not json', 0)", [])
            .unwrap();
        let back = j.load_learned();
        assert_eq!(back.keys().collect::<Vec<_>>(), ["ok"]);
    }
}
