//! The revisions each service ran, newest first: which one is current, which ones failed.
//! Kept across restarts, so "the previous revision" survives one; at most
//! [`crate::release::KEEP_REVISIONS`] per service.

use rusqlite::params;

use super::Journal;
use crate::release::{Revision, KEEP_REVISIONS};

/// One revision as the journal keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionRecord {
    /// The revision.
    pub revision: Revision,
    /// When it last became the service's revision (unix ms).
    pub activated_ms: i64,
    /// An update to it was rolled back.
    pub failed: bool,
}

impl Journal {
    /// Records that `rev` is now the revision new replicas of `service` are made from, and
    /// keeps the newest [`KEEP_REVISIONS`]. Never fails: a database error is logged.
    pub fn activate_revision(&self, service: &str, rev: &Revision) {
        let Ok(json) = serde_json::to_string(rev) else {
            return;
        };
        let now = jiff::Timestamp::now().as_millisecond();
        let g = self.lock();
        let result = g
            .conn
            .execute(
                // Later than every revision of the service, even within one millisecond (or
                // after the clock stepped back): the newest activation is always first.
                "INSERT INTO revisions (service, id, revision, activated_ms, failed)
                 VALUES (?1, ?2, ?3, MAX(?4, (SELECT COALESCE(MAX(activated_ms), -1) + 1
                                              FROM revisions WHERE service = ?1)), 0)
                 ON CONFLICT (service, id) DO UPDATE SET
                     revision = excluded.revision,
                     activated_ms = excluded.activated_ms",
                params![service, rev.id, json, now],
            )
            .and_then(|_| {
                g.conn.execute(
                    "DELETE FROM revisions WHERE service = ?1 AND id NOT IN (
                         SELECT id FROM revisions WHERE service = ?1
                         ORDER BY activated_ms DESC LIMIT ?2)",
                    params![service, KEEP_REVISIONS as i64],
                )
            });
        if let Err(err) = result {
            tracing::warn!(
                service,
                "journal: recording revision {} failed: {err}",
                rev.id
            );
        }
    }

    /// Marks revision `id` of `service` as failed (an update to it was rolled back).
    pub fn mark_revision_failed(&self, service: &str, id: &str) {
        let g = self.lock();
        if let Err(err) = g.conn.execute(
            "UPDATE revisions SET failed = 1 WHERE service = ?1 AND id = ?2",
            params![service, id],
        ) {
            tracing::warn!(service, "journal: marking revision {id} failed: {err}");
        }
    }

    /// The revisions of `service`, the current one first. Empty (and logged) on an error.
    #[must_use]
    pub fn revisions(&self, service: &str) -> Vec<RevisionRecord> {
        let g = self.lock();
        let rows = g
            .conn
            .prepare_cached(
                "SELECT revision, activated_ms, failed FROM revisions WHERE service = ?1
                 ORDER BY activated_ms DESC",
            )
            .and_then(|mut st| {
                st.query_map([service], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()
            });
        match rows {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|(json, activated_ms, failed)| {
                    Some(RevisionRecord {
                        revision: serde_json::from_str(&json).ok()?,
                        activated_ms,
                        failed: failed != 0,
                    })
                })
                .collect(),
            Err(err) => {
                tracing::warn!(service, "journal: reading revisions failed: {err}");
                Vec::new()
            }
        }
    }

    /// The revision to roll `service` back to: the newest one that is not `current` and
    /// whose update was not rolled back.
    #[must_use]
    pub fn previous_revision(&self, service: &str, current: &str) -> Option<Revision> {
        self.revisions(service)
            .into_iter()
            .find(|r| r.revision.id != current && !r.failed)
            .map(|r| r.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ContainerSpec, ImagePin};

    fn rev(image_id: &str) -> Revision {
        let cfg = crate::config::Config::parse(
            "servers: [{host: h, name: s}]\nservices:\n  a: {image: app:1, port: 80}\n",
            "t",
        )
        .unwrap();
        Revision::new(
            ContainerSpec::from_service(&cfg.services["a"]),
            ImagePin {
                reference: "app:1".into(),
                id: image_id.into(),
                digest: None,
            },
        )
    }

    #[test]
    fn revisions_are_kept_newest_first_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let (v1, v2, v3) = (rev("sha256:1"), rev("sha256:2"), rev("sha256:3"));
        {
            let j = Journal::open(&path).unwrap();
            j.activate_revision("a", &v1);
            j.activate_revision("a", &v2);
            j.activate_revision("a", &v3);
            j.mark_revision_failed("a", &v3.id);
            j.activate_revision("a", &v2); // rolled back to v2
        }
        let j = Journal::open(&path).unwrap();
        let all = j.revisions("a");
        assert_eq!(all[0].revision, v2, "current first");
        assert_eq!(all.len(), 3);
        assert!(all.iter().any(|r| r.revision == v3 && r.failed));
        assert_eq!(
            j.previous_revision("a", &v2.id),
            Some(v1.clone()),
            "the failed v3 is skipped"
        );
        assert!(j.revisions("b").is_empty());
        for i in 0..(KEEP_REVISIONS + 5) {
            j.activate_revision("a", &rev(&format!("sha256:x{i}")));
        }
        assert_eq!(j.revisions("a").len(), KEEP_REVISIONS);
    }

    #[test]
    fn a_version_1_journal_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let j = Journal::open(&path).unwrap();
            j.record(crate::journal::NewEvent {
                service: "a",
                reason: "kept".into(),
                ..Default::default()
            });
            let g = j.lock();
            g.conn.execute_batch("DROP TABLE revisions").unwrap();
            g.conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.list("a", 0, 10).1, 1, "events kept");
        j.activate_revision("a", &rev("sha256:1"));
        assert_eq!(j.revisions("a").len(), 1);
    }
}
