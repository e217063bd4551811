//! Reading back: events of a service newest first (optionally of one action), and the saved
//! states.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use super::{Event, SavedState};

const EVENT_COLUMNS: &str =
    "seq, at, service, action, reason, desired_before, desired_after, replica, server, details";

pub(super) fn query_events(
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

pub(super) fn query_states(conn: &Connection) -> rusqlite::Result<BTreeMap<String, SavedState>> {
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
