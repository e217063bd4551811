//! The rollout's decisions, planned from fixed states: surges, in-place retires within
//! `max_unavailable`, the ready floor, and when it rolls back.

use std::time::Duration;

use super::plan::Step;
use super::plan_tests::{run, spec, world, Gen};
use crate::service::Phase;

/// `n` healthy ready replicas of revision r1 on the three servers.
fn ready(n: usize) -> Vec<Gen> {
    (0..n).map(|i| (i, 2, true, 0, true, 50)).collect()
}

fn starts_for(steps: &[Step]) -> usize {
    steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::Start {
                    surge_for: Some(_),
                    ..
                }
            )
        })
        .count()
}

fn rollback_reason(steps: &[Step]) -> Option<&str> {
    steps.iter().find_map(|s| match s {
        Step::RollBack { reason } => Some(reason.as_str()),
        _ => None,
    })
}

#[test]
fn max_surge_starts_that_many_new_replicas_at_once() {
    let spec = spec(2, 8);
    let (mut state, obs, now) = world(&ready(4), 4, Some((4, false)));
    let ro = state.rollout.as_mut().unwrap();
    ro.replace_ids = state.replicas.keys().cloned().collect();
    let p = run(&spec, &state, &obs, now);
    assert_eq!(starts_for(&p.steps), 1, "default surge 1: {:#?}", p.steps);
    state.rollout.as_mut().unwrap().max_surge = 2;
    let p = run(&spec, &state, &obs, now);
    assert_eq!(starts_for(&p.steps), 2, "{:#?}", p.steps);
    assert!(!p.steps.iter().any(|s| matches!(s, Step::Drain { .. })));
}

#[test]
fn max_unavailable_retires_old_replicas_in_place_down_to_the_floor_only() {
    let spec = spec(2, 8);
    let (mut state, obs, now) = world(&ready(4), 4, Some((4, false)));
    {
        let ro = state.rollout.as_mut().unwrap();
        ro.replace_ids = state.replicas.keys().cloned().collect();
        ro.max_surge = 0;
        ro.max_unavailable = 1;
    }
    let p = run(&spec, &state, &obs, now);
    let retired = p
        .steps
        .iter()
        .filter(|s| matches!(s, Step::RolloutRetire { .. }))
        .count();
    assert_eq!(retired, 1, "{:#?}", p.steps);
    assert_eq!(starts_for(&p.steps), 0);
    // A larger budget still stops at min_replicas ready (4 desired, min 2: floor 2).
    state.rollout.as_mut().unwrap().max_unavailable = 3;
    let p = run(&spec, &state, &obs, now);
    let retired = p
        .steps
        .iter()
        .filter(|s| matches!(s, Step::RolloutRetire { .. }))
        .count();
    assert_eq!(retired, 2, "floor is min_replicas 2: {:#?}", p.steps);
    // At min already, nothing is retired in place.
    let spec3 = super::plan_tests::spec(4, 8);
    let p = run(&spec3, &state, &obs, now);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s, Step::RolloutRetire { .. })),
        "{:#?}",
        p.steps
    );
}

#[test]
fn a_surge_in_rotation_retires_its_old_replica_only_above_the_floor() {
    let spec = spec(2, 8);
    // desired 3: id0 is the surge (in rotation) for id1; id2 and id3 are ready too.
    let (mut state, obs, now) = world(&ready(4), 3, Some((2, true)));
    let p = run(&spec, &state, &obs, now);
    assert!(
        p.steps.iter().any(
            |s| matches!(s, Step::RolloutAdvance { new, old } if new == "id0" && old == "id1")
        ),
        "{:#?}",
        p.steps
    );
    // id2 is out of rotation: retiring id1 would leave 2 < 3 ready.
    state.replicas.get_mut("id2").unwrap().phase = Phase::Joining;
    let p = run(&spec, &state, &obs, now);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s, Step::RolloutAdvance { .. })),
        "{:#?}",
        p.steps
    );
}

#[test]
fn a_failing_replica_of_the_new_revision_rolls_back_and_an_old_one_does_not() {
    let spec = spec(1, 8);
    // id0 runs the new revision r2 and has failed its checks past the start period.
    let mut gens = ready(3);
    gens[0] = (0, 0, true, 5, false, 100);
    let (mut state, obs, now) = world(&gens, 3, Some((2, false)));
    state.replicas.get_mut("id0").unwrap().revision = "r2".into();
    let p = run(&spec, &state, &obs, now);
    let reason = rollback_reason(&p.steps).expect("a rollback");
    assert!(reason.contains("of revision r2 failed"), "{reason}");
    assert!(reason.contains("start_period"), "{reason}");
    // The same failure on an old-revision replica is replaced, not a reason to roll back.
    state.replicas.get_mut("id0").unwrap().revision = "r1".into();
    let p = run(&spec, &state, &obs, now);
    assert!(rollback_reason(&p.steps).is_none(), "{:#?}", p.steps);
    assert!(p.steps.iter().any(|s| matches!(s, Step::Replace { .. })));
    // A rollback is not rolled back again.
    state.replicas.get_mut("id0").unwrap().revision = "r2".into();
    state.rollout.as_mut().unwrap().rollback = Some("earlier".into());
    let p = run(&spec, &state, &obs, now);
    assert!(rollback_reason(&p.steps).is_none(), "{:#?}", p.steps);
}

#[test]
fn a_rollout_without_progress_past_its_deadline_rolls_back() {
    let spec = spec(1, 8);
    let (mut state, obs, now) = world(&ready(2), 2, Some((1, false)));
    state.rollout.as_mut().unwrap().progress_deadline = Duration::from_secs(30);
    state.rollout.as_mut().unwrap().last_progress = now - Duration::from_secs(29);
    assert!(rollback_reason(&run(&spec, &state, &obs, now).steps).is_none());
    state.rollout.as_mut().unwrap().last_progress = now - Duration::from_secs(31);
    let p = run(&spec, &state, &obs, now);
    let reason = rollback_reason(&p.steps).expect("a rollback");
    assert!(reason.contains("progress deadline (30s)"), "{reason}");
}

#[test]
fn a_rollback_without_progress_past_its_deadline_is_abandoned_not_rolled_back_again() {
    let spec = spec(1, 8);
    let (mut state, obs, now) = world(&ready(2), 2, Some((1, false)));
    let ro = state.rollout.as_mut().unwrap();
    ro.rollback = Some("new replica failed".into());
    ro.progress_deadline = Duration::from_secs(30);
    ro.last_progress = now - Duration::from_secs(31);
    let p = run(&spec, &state, &obs, now);
    assert!(rollback_reason(&p.steps).is_none(), "{:#?}", p.steps);
    assert!(
        p.steps.iter().any(|s| matches!(s, Step::RolloutAbandon { reason } if reason.contains("progress deadline (30s)"))),
        "{:#?}",
        p.steps
    );
}
