//! From the control plane's own types to the API model. Each conversion yields the JSON the
//! internal type serializes to (the tests below check that), so the API does not change when
//! it is built from the model.

use super::model;

impl From<crate::service::Phase> for model::Phase {
    fn from(p: crate::service::Phase) -> Self {
        use crate::service::Phase as P;
        match p {
            P::Starting => Self::Starting,
            P::Joining => Self::Joining,
            P::Ready => Self::Ready,
            P::Draining => Self::Draining,
        }
    }
}

impl From<crate::engine::ContainerState> for model::ContainerState {
    fn from(s: crate::engine::ContainerState) -> Self {
        use crate::engine::ContainerState as S;
        match s {
            S::Created => Self::Created,
            S::Running => Self::Running,
            S::Restarting => Self::Restarting,
            S::Exited => Self::Exited,
            S::Paused => Self::Paused,
            S::Removing => Self::Removing,
            S::Dead => Self::Dead,
            S::Unknown => Self::Unknown,
        }
    }
}

impl From<crate::policy::PolicyKind> for model::PolicyKind {
    fn from(k: crate::policy::PolicyKind) -> Self {
        match k {
            crate::policy::PolicyKind::Threshold => Self::Threshold,
            crate::policy::PolicyKind::Target => Self::Target,
            crate::policy::PolicyKind::Adaptive => Self::Adaptive,
        }
    }
}

impl From<crate::policy::Direction> for model::Direction {
    fn from(d: crate::policy::Direction) -> Self {
        use crate::policy::Direction as D;
        match d {
            D::Down => Self::Down,
            D::Hold => Self::Hold,
            D::Up => Self::Up,
        }
    }
}

impl From<crate::policy::Held> for model::Held {
    fn from(h: crate::policy::Held) -> Self {
        use crate::policy::Held as H;
        match h {
            H::Cooldown => Self::Cooldown,
            H::AtMax => Self::AtMax,
            H::AtMin => Self::AtMin,
            H::MissingData => Self::MissingData,
            H::Stabilization => Self::Stabilization,
            H::Starting => Self::Starting,
            H::NoCapacity => Self::NoCapacity,
            H::DryRun => Self::DryRun,
        }
    }
}

impl From<&crate::policy::Decision> for model::Decision {
    fn from(d: &crate::policy::Decision) -> Self {
        Self {
            desired: d.desired,
            wanted: d.wanted,
            direction: d.direction.into(),
            held: d.held.map(Into::into),
            rule: d.rule.to_owned(),
            reason: d.reason.clone(),
            signals: d
                .signals
                .iter()
                .map(|s| model::Signal {
                    name: s.name.to_owned(),
                    value: s.value,
                    against: s.against.clone(),
                    recommends: s.recommends,
                })
                .collect(),
            cooldown_left: d.cooldown_left,
        }
    }
}

impl From<crate::schedule::WindowState> for model::WindowState {
    fn from(w: crate::schedule::WindowState) -> Self {
        Self {
            open: w.open,
            next_change: w.next_change.map(|t| t.to_string()),
            next_change_local: w.next_change_local,
            timezone: w.timezone,
        }
    }
}

impl From<&crate::service::Rollout> for model::Rollout {
    fn from(r: &crate::service::Rollout) -> Self {
        Self {
            revision: r.revision.clone(),
            replace_ids: r.replace_ids.iter().cloned().collect(),
            surge: r.surges.iter().next().map(|(n, o)| (n.clone(), o.clone())),
            surges: r
                .surges
                .iter()
                .map(|(n, o)| (n.clone(), o.clone()))
                .collect(),
            replaced: r.replaced,
            from: r.from.as_ref().map(|f| f.id.clone()),
            rollback: r.rollback.clone(),
        }
    }
}

impl From<crate::journal::Event> for model::Event {
    fn from(e: crate::journal::Event) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            service: e.service,
            action: e.action,
            reason: e.reason,
            desired_before: e.desired_before,
            desired_after: e.desired_after,
            replica: e.replica,
            server: e.server,
            details: e.details,
        }
    }
}

impl From<crate::config::ConfigIssue> for model::ConfigIssue {
    fn from(i: crate::config::ConfigIssue) -> Self {
        Self {
            line: i.line,
            column: i.column,
            message: i.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::Serialize;
    use serde_json::{json, Value};

    use super::model;

    fn same_json<A: Serialize, B: Serialize>(internal: &A, api: &B) {
        let a = serde_json::to_value(internal).unwrap();
        let b = serde_json::to_value(api).unwrap();
        assert_eq!(a, b, "the API model must serialize like the internal type");
    }

    fn round_trip<T>(v: &T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let text = serde_json::to_string(v).unwrap();
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, v, "{text}");
    }

    #[test]
    fn enums_serialize_like_the_internal_ones() {
        use crate::engine::ContainerState as C;
        use crate::policy::{Direction as D, Held as H, PolicyKind as K};
        use crate::service::Phase as P;
        for p in [P::Starting, P::Joining, P::Ready, P::Draining] {
            same_json(&p, &model::Phase::from(p));
        }
        for c in [
            C::Created,
            C::Running,
            C::Restarting,
            C::Exited,
            C::Paused,
            C::Removing,
            C::Dead,
            C::Unknown,
        ] {
            same_json(&c, &model::ContainerState::from(c));
        }
        for k in [K::Threshold, K::Target] {
            same_json(&k, &model::PolicyKind::from(k));
        }
        for d in [D::Down, D::Hold, D::Up] {
            same_json(&d, &model::Direction::from(d));
        }
        for h in [
            H::Cooldown,
            H::AtMax,
            H::AtMin,
            H::MissingData,
            H::Stabilization,
            H::Starting,
            H::NoCapacity,
            H::DryRun,
        ] {
            same_json(&h, &model::Held::from(h));
            // The metrics label and the JSON name are the same word.
            assert_eq!(serde_json::to_value(h).unwrap(), json!(h.as_str()));
        }
    }

    #[test]
    fn decision_serializes_like_the_policy_decision() {
        let d = crate::policy::Decision {
            desired: 2,
            wanted: 3,
            direction: crate::policy::Direction::Up,
            held: Some(crate::policy::Held::Cooldown),
            rule: "threshold",
            reason: "scale up 2 -> 3; held: cooldown".into(),
            signals: vec![crate::policy::Signal {
                name: "cpu",
                value: 81.5,
                against: "down < 25% / up > 75%".into(),
                recommends: 3,
            }],
            cooldown_left: 12.5,
        };
        let m = model::Decision::from(&d);
        same_json(&d, &m);
        round_trip(&m);
        let none = crate::policy::Decision {
            held: None,
            signals: vec![],
            ..d
        };
        same_json(&none, &model::Decision::from(&none));
    }

    #[test]
    fn window_state_serializes_like_the_schedule_one() {
        let at: jiff::Timestamp = "2026-03-30T07:00:00Z".parse().unwrap();
        let open = crate::schedule::WindowState {
            open: true,
            next_change: Some(at),
            next_change_local: Some("2026-03-30T09:00:00+02:00".into()),
            timezone: "Europe/Berlin".into(),
        };
        let m = model::WindowState::from(open.clone());
        same_json(&open, &m);
        assert_eq!(m.next_change.as_deref(), Some("2026-03-30T07:00:00Z"));
        round_trip(&m);
        let never = crate::schedule::WindowState {
            open: false,
            next_change: None,
            next_change_local: None,
            timezone: "+02:00".into(),
        };
        same_json(&never, &model::WindowState::from(never.clone()));
    }

    #[test]
    fn rollout_shows_its_surges_revisions_and_rollback() {
        let now = tokio::time::Instant::now();
        let mut r = crate::service::Rollout {
            revision: "abc123".into(),
            to: crate::release::test_revision("abc123"),
            from: Some(crate::release::test_revision("old456")),
            replace_ids: BTreeSet::from(["b".to_owned(), "a".to_owned()]),
            surges: std::collections::BTreeMap::from([("new".into(), "old".into())]),
            replaced: 1,
            rollback: None,
            max_surge: 1,
            max_unavailable: 0,
            progress_deadline: std::time::Duration::from_secs(600),
            last_progress: now,
        };
        let m = model::Rollout::from(&r);
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["surge"], json!(["new", "old"]));
        assert_eq!(v["surges"], json!([["new", "old"]]));
        assert_eq!(v["replace_ids"], json!(["a", "b"]));
        assert_eq!(v["from"], "old456");
        assert_eq!(v["rollback"], Value::Null);
        round_trip(&m);
        r.surges.clear();
        r.rollback = Some("new replica failed".into());
        let v = serde_json::to_value(model::Rollout::from(&r)).unwrap();
        assert_eq!(v["surge"], Value::Null);
        assert_eq!(v["rollback"], "new replica failed");
    }

    #[test]
    fn event_serializes_like_the_journal_one() {
        let full = crate::journal::Event {
            seq: 7,
            at: "2026-11-29T22:12:04.624997984Z".into(),
            service: "web".into(),
            action: "scale_up".into(),
            reason: "autoscaler: scale up".into(),
            desired_before: Some(1),
            desired_after: Some(2),
            replica: Some("shoal-web-1".into()),
            server: Some("local".into()),
            details: Some(json!({ "rule": "threshold", "utilization": 80.5 })),
        };
        let m = model::Event::from(full.clone());
        same_json(&full, &m);
        round_trip(&m);
        let bare = crate::journal::Event {
            desired_before: None,
            desired_after: None,
            replica: None,
            server: None,
            details: None,
            ..full
        };
        let m = model::Event::from(bare.clone());
        same_json(&bare, &m);
        let v = serde_json::to_value(&m).unwrap();
        for absent in [
            "desired_before",
            "desired_after",
            "replica",
            "server",
            "details",
        ] {
            assert!(
                v.get(absent).is_none(),
                "{absent} is left out, not null: {v}"
            );
        }
        round_trip(&m);
    }

    #[test]
    fn config_issue_serializes_like_the_config_one() {
        let i = crate::config::ConfigIssue {
            line: 3,
            column: 19,
            message: "bad".into(),
        };
        same_json(&i, &model::ConfigIssue::from(i.clone()));
    }

    #[test]
    fn error_body_leaves_out_what_only_reload_has() {
        let plain = model::ErrorBody::new("nope");
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            json!({ "error": "nope" })
        );
        round_trip(&plain);
        let reload = model::ErrorBody {
            error: "config not reloaded".into(),
            issues: Some(vec![model::ConfigIssue {
                line: 1,
                column: 2,
                message: "m".into(),
            }]),
            file: Some("c.yaml".into()),
        };
        let v: Value = serde_json::to_value(&reload).unwrap();
        assert_eq!(v["issues"][0]["column"], 2);
        assert_eq!(v["file"], "c.yaml");
        round_trip(&reload);
    }
}
