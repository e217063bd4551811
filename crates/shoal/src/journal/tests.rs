//! Unit tests of the journal: persistence, paging, retention, saved state, and refusing
//! files that are not a shoal journal.

use std::fmt;

use rusqlite::Connection;

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
        assert!(path.is_file());
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
                found: 3,
                supported: 2,
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

#[test]
fn the_journal_and_its_wal_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let j = Journal::open(&path).unwrap();
    j.record(ev("web", "scale_up", "x"));
    for file in ["state.db", "state.db-wal", "state.db-shm"] {
        let p = dir.path().join(file);
        assert!(p.exists(), "{file} missing");
        assert_eq!(mode(&p), 0o600, "{file}");
    }
    drop(j);
    // A journal an older shoal left world-readable is narrowed when opened.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _j = Journal::open(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
}
