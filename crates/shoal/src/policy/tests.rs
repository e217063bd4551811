//! Unit and property tests of the scaling policy.

use jiff::{SignedDuration, Timestamp};

use super::*;
use proptest::prelude::*;

fn cfg(kind: PolicyKind) -> PolicyConfig {
    PolicyConfig {
        kind,
        min: 1,
        max: 8,
        up_threshold: 75.0,
        down_threshold: 25.0,
        cooldown: SignedDuration::from_secs(60),
        target: 50.0,
        adaptive_target: 80.0,
        tolerance: 0.1,
        stabilization: SignedDuration::from_secs(300),
        max_step: 4,
        max_down_step: None,
        target_sessions: None,
        business_hours_only: false,
        off_hours: 1,
        dry_run: false,
    }
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn inputs(current: u32, util: &[f64]) -> Inputs {
    Inputs {
        current,
        ready: util.len() as u32,
        starting: 0,
        capacity_left: None,
        utilization: util.to_vec(),
        sessions: None,
        demand: None,
        window_open: true,
        opens_in: None,
        last_action: None,
    }
}

fn eval(c: &PolicyConfig, st: &mut PolicyState, i: &Inputs, at: i64) -> Decision {
    evaluate(c, st, i, t(at))
}

#[test]
fn threshold_steps_one_replica_each_way() {
    let c = cfg(PolicyKind::Threshold);
    let mut st = PolicyState::default();
    let d = eval(&c, &mut st, &inputs(2, &[90.0, 80.0]), 0);
    assert_eq!((d.desired, d.direction, d.held), (3, Direction::Up, None));
    let d = eval(&c, &mut st, &inputs(3, &[10.0, 20.0, 5.0]), 0);
    assert_eq!((d.desired, d.direction), (2, Direction::Down));
    let d = eval(&c, &mut st, &inputs(3, &[50.0, 50.0, 50.0]), 0);
    assert_eq!((d.desired, d.direction, d.held), (3, Direction::Hold, None));
    assert!(!d.noteworthy());
}

#[test]
fn thresholds_are_strict() {
    let c = cfg(PolicyKind::Threshold);
    let mut st = PolicyState::default();
    assert_eq!(
        eval(&c, &mut st, &inputs(2, &[75.0, 75.0]), 0).direction,
        Direction::Hold
    );
    assert_eq!(
        eval(&c, &mut st, &inputs(2, &[25.0, 25.0]), 0).direction,
        Direction::Hold
    );
}

#[test]
fn cooldown_holds_any_change_then_releases() {
    let c = cfg(PolicyKind::Threshold);
    let mut st = PolicyState::default();
    let mut i = inputs(2, &[90.0, 90.0]);
    i.last_action = Some(t(0));
    let d = eval(&c, &mut st, &i, 59);
    assert_eq!((d.desired, d.held), (2, Some(Held::Cooldown)));
    assert!((d.cooldown_left - 1.0).abs() < 1e-9);
    assert!(d.noteworthy());
    let d = eval(&c, &mut st, &i, 60);
    assert_eq!((d.desired, d.held), (3, None));
}

#[test]
fn manual_action_restarts_the_cooldown() {
    // A manual action is just a newer last_action: the policy holds again.
    let c = cfg(PolicyKind::Threshold);
    let mut st = PolicyState::default();
    let mut i = inputs(3, &[90.0; 3]);
    i.last_action = Some(t(100));
    assert_eq!(eval(&c, &mut st, &i, 130).held, Some(Held::Cooldown));
    assert_eq!(eval(&c, &mut st, &i, 160).held, None);
}

#[test]
fn target_policy_scales_up_during_cooldown_but_not_down() {
    let c = cfg(PolicyKind::Target);
    let mut st = PolicyState::default();
    let mut i = inputs(2, &[100.0, 100.0]);
    i.last_action = Some(t(0));
    assert_eq!(eval(&c, &mut st, &i, 10).desired, 4);
    let mut st = PolicyState::default();
    let mut i = inputs(4, &[10.0; 4]);
    i.last_action = Some(t(0));
    assert_eq!(eval(&c, &mut st, &i, 10).held, Some(Held::Cooldown));
}

#[test]
fn starting_replicas_pause_threshold_steps_and_all_scale_down() {
    let c = cfg(PolicyKind::Threshold);
    let mut st = PolicyState::default();
    let mut i = inputs(3, &[95.0, 95.0]);
    i.starting = 1;
    let d = eval(&c, &mut st, &i, 0);
    assert_eq!((d.desired, d.held), (3, Some(Held::Starting)));
    let c = cfg(PolicyKind::Target);
    let mut i = inputs(4, &[20.0, 20.0]);
    i.starting = 2;
    assert_eq!(eval(&c, &mut st, &i, 0).held, Some(Held::Starting));
    // ... while the target policy may still add capacity.
    let mut i = inputs(3, &[100.0, 100.0]);
    i.starting = 1;
    assert_eq!(eval(&c, &mut st, &i, 0).desired, 4);
}

#[test]
fn a_count_that_cannot_be_placed_does_not_freeze_scale_down() {
    // Desired 5, only 4 could be placed and none is starting: idle scales down.
    let c = cfg(PolicyKind::Threshold);
    let mut st = PolicyState::default();
    let mut i = inputs(5, &[1.0; 4]);
    i.capacity_left = Some(0);
    let d = eval(&c, &mut st, &i, 0);
    assert_eq!((d.desired, d.direction, d.held), (4, Direction::Down, None));
}

#[test]
fn scale_up_is_capped_by_capacity() {
    let c = cfg(PolicyKind::Threshold);
    let mut st = PolicyState::default();
    let mut i = inputs(4, &[99.0; 4]);
    i.capacity_left = Some(0);
    let d = eval(&c, &mut st, &i, 0);
    assert_eq!((d.desired, d.held), (4, Some(Held::NoCapacity)));
    let c = cfg(PolicyKind::Target);
    let mut i = inputs(2, &[100.0, 100.0]);
    i.capacity_left = Some(1);
    let d = eval(&c, &mut st, &i, 0);
    assert_eq!(d.desired, 3, "{}", d.reason);
}

#[test]
fn bounds_hold_at_max_and_min() {
    let c = cfg(PolicyKind::Threshold);
    let mut st = PolicyState::default();
    let d = eval(&c, &mut st, &inputs(8, &[99.0; 8]), 0);
    assert_eq!((d.desired, d.held), (8, Some(Held::AtMax)));
    let d = eval(&c, &mut st, &inputs(1, &[1.0]), 0);
    assert_eq!((d.desired, d.held), (1, Some(Held::AtMin)));
}

#[test]
fn count_outside_bounds_is_corrected_without_cooldown() {
    let mut c = cfg(PolicyKind::Threshold);
    c.min = 2;
    let mut st = PolicyState::default();
    let mut i = inputs(1, &[50.0]);
    i.last_action = Some(t(0));
    let d = eval(&c, &mut st, &i, 1);
    assert_eq!((d.desired, d.rule), (2, "bounds"));
}

#[test]
fn missing_samples_never_scale_down() {
    let c = cfg(PolicyKind::Threshold);
    let mut st = PolicyState::default();
    let mut i = inputs(3, &[5.0, 5.0]);
    i.ready = 3; // one ready replica without a sample
    let d = eval(&c, &mut st, &i, 0);
    assert_eq!((d.desired, d.held), (3, Some(Held::MissingData)));
    // ... but scale up on partial data is allowed.
    let mut i = inputs(3, &[95.0, 95.0]);
    i.ready = 3;
    assert_eq!(eval(&c, &mut st, &i, 0).desired, 4);
    // No samples at all: hold, and say so.
    let mut i = inputs(3, &[]);
    i.ready = 3;
    let d = eval(&c, &mut st, &i, 0);
    assert_eq!(
        (d.desired, d.held, d.rule),
        (3, Some(Held::MissingData), "no_data")
    );
}

#[test]
fn target_tracking_computes_the_count() {
    let c = cfg(PolicyKind::Target);
    let mut st = PolicyState::default();
    // 2 replicas at 90% with target 50% -> ceil(2 * 1.8) = 4.
    let d = eval(&c, &mut st, &inputs(2, &[90.0, 90.0]), 0);
    assert_eq!((d.desired, d.direction), (4, Direction::Up));
}

#[test]
fn target_tolerance_ignores_small_deviations() {
    let c = cfg(PolicyKind::Target);
    let mut st = PolicyState::default();
    let d = eval(&c, &mut st, &inputs(4, &[54.0; 4]), 0);
    assert_eq!((d.desired, d.direction), (4, Direction::Hold));
    let d = eval(&c, &mut st, &inputs(4, &[56.0; 4]), 0);
    assert_eq!(d.desired, 5);
}

#[test]
fn target_step_is_capped() {
    let mut c = cfg(PolicyKind::Target);
    c.max_step = 2;
    c.max = 20;
    let mut st = PolicyState::default();
    let d = eval(
        &c,
        &mut st,
        &inputs(2, &[100.0, 100.0, 100.0, 100.0, 100.0]),
        0,
    );
    assert_eq!(d.desired, 4, "ceil(5*2)=10 capped to 2+2");
}

#[test]
fn stabilization_keeps_the_highest_recent_recommendation() {
    let c = cfg(PolicyKind::Target);
    let mut st = PolicyState::default();
    // t=0: recommendation 4 (load), applied.
    assert_eq!(eval(&c, &mut st, &inputs(2, &[100.0, 100.0]), 0).desired, 4);
    // t=100: load gone, recommends 1, but 4 is within the window: hold.
    let d = eval(&c, &mut st, &inputs(4, &[10.0; 4]), 100);
    assert_eq!((d.desired, d.held), (4, Some(Held::Stabilization)));
    // t=301: the 4 has left the window; the highest left is 1 -> down (step cap 4 -> 1... 0 floor 1).
    let d = eval(&c, &mut st, &inputs(4, &[10.0; 4]), 301);
    assert_eq!((d.desired, d.direction, d.held), (1, Direction::Down, None));
}

#[test]
fn stabilization_scales_down_only_to_the_window_maximum() {
    let c = cfg(PolicyKind::Target);
    let mut st = PolicyState::default();
    assert_eq!(eval(&c, &mut st, &inputs(6, &[25.0; 6]), 0).desired, 3);
    let d = eval(&c, &mut st, &inputs(3, &[10.0; 3]), 10);
    assert_eq!(d.desired, 3, "3 recommended 10s ago holds");
    assert_eq!(d.held, Some(Held::Stabilization));
}

#[test]
fn largest_signal_wins() {
    let mut c = cfg(PolicyKind::Threshold);
    c.target_sessions = Some(10.0);
    let mut st = PolicyState::default();
    // CPU says down, sessions say up -> up.
    let mut i = inputs(2, &[5.0, 5.0]);
    i.sessions = Some(30.0);
    let d = eval(&c, &mut st, &i, 0);
    assert_eq!((d.desired, d.signals.len()), (3, 2));
    // CPU says down, sessions hold -> hold.
    i.sessions = Some(10.0);
    assert_eq!(eval(&c, &mut st, &i, 0).direction, Direction::Hold);
    // Both down -> down.
    i.sessions = Some(1.0);
    assert_eq!(eval(&c, &mut st, &i, 0).desired, 1);
}

#[test]
fn target_sessions_signal_computes_count() {
    let mut c = cfg(PolicyKind::Target);
    c.target_sessions = Some(5.0);
    let mut st = PolicyState::default();
    let mut i = inputs(2, &[50.0, 50.0]);
    i.sessions = Some(30.0); // 15 per replica, target 5 -> ceil(2*3) = 6, capped +4.
    assert_eq!(eval(&c, &mut st, &i, 0).desired, 6);
}

#[test]
fn closed_window_holds_at_off_hours_even_in_cooldown() {
    let mut c = cfg(PolicyKind::Threshold);
    c.business_hours_only = true;
    c.off_hours = 0;
    let mut st = PolicyState::default();
    let mut i = inputs(3, &[99.0; 3]);
    i.window_open = false;
    i.last_action = Some(t(0));
    let d = eval(&c, &mut st, &i, 1);
    assert_eq!(
        (d.desired, d.rule, d.direction),
        (0, "window_closed", Direction::Down)
    );
    // Already at off_hours: nothing to note.
    let i = Inputs { current: 0, ..i };
    let d = eval(&c, &mut st, &i, 2);
    assert_eq!(d.desired, 0);
    assert!(!d.noteworthy());
}

#[test]
fn window_opening_raises_to_min() {
    let mut c = cfg(PolicyKind::Threshold);
    c.business_hours_only = true;
    c.off_hours = 0;
    c.min = 2;
    let mut st = PolicyState::default();
    let d = eval(&c, &mut st, &inputs(0, &[]), 0);
    assert_eq!((d.desired, d.rule), (2, "window_opened"));
}

#[test]
fn dry_run_journals_but_changes_nothing() {
    let mut c = cfg(PolicyKind::Threshold);
    c.dry_run = true;
    let mut st = PolicyState::default();
    let d = eval(&c, &mut st, &inputs(2, &[90.0, 90.0]), 0);
    assert_eq!((d.desired, d.wanted, d.held), (2, 3, Some(Held::DryRun)));
    assert!(d.noteworthy());
    assert!(
        d.reason.contains("dry run: would set 2 -> 3"),
        "{}",
        d.reason
    );
}

proptest! {
    #[test]
    fn desired_stays_in_bounds(
        kind in prop_oneof![Just(PolicyKind::Threshold), Just(PolicyKind::Target)],
        min in 0u32..5, span in 0u32..10,
        current in 0u32..20,
        util in proptest::collection::vec(0.0f64..400.0, 0..12),
        sessions in proptest::option::of(0.0f64..1000.0),
        window_open in any::<bool>(),
        bh in any::<bool>(),
        off in 0u32..20,
        last in proptest::option::of(0i64..1000),
        now in 0i64..2000,
        max_step in 1u32..6,
    ) {
        let mut c = cfg(kind);
        c.min = min;
        c.max = (min + span).max(1);
        c.off_hours = off.min(c.max);
        c.business_hours_only = bh;
        c.max_step = max_step;
        c.target_sessions = Some(10.0);
        let mut st = PolicyState::default();
        let i = Inputs {
            current,
            ready: util.len() as u32,
            starting: 0,
            capacity_left: None,
            utilization: util,
            sessions,
            demand: None,
            window_open,
            opens_in: None,
            last_action: last.map(t),
        };
        let d = evaluate(&c, &mut st, &i, t(now));
        if bh && !window_open {
            prop_assert_eq!(d.desired, c.off_hours);
        } else if d.desired != current {
            prop_assert!(d.desired >= c.min && d.desired <= c.max, "{:?}", d);
        }
        if kind == PolicyKind::Threshold && d.rule == "threshold" {
            prop_assert!(d.desired.abs_diff(current) <= 1);
        }
    }
}

#[test]
fn config_durations_convert_without_wrapping() {
    let yaml = "servers:\n  - host: 127.0.0.1\n    name: local\nservices:\n  web:\n    image: img\n    port: 8080\n    cooldown_period: 120\n    scale_down_stabilization: 600\n";
    let mut config = crate::config::Config::parse(yaml, "t.yaml").unwrap();
    let svc = config.services.get_mut("web").unwrap();
    let p = PolicyConfig::from_service(svc, false);
    assert_eq!(p.cooldown, SignedDuration::from_secs(120));
    assert_eq!(p.stabilization, SignedDuration::from_secs(600));
    // A config that skipped validation: u64::MAX seconds used to wrap to -1 s.
    svc.cooldown_period.value = u64::MAX;
    svc.scale_down_stabilization.value = u64::MAX;
    let p = PolicyConfig::from_service(svc, false);
    let secs = |s: u64| SignedDuration::from_secs(i64::try_from(s).unwrap());
    assert_eq!(p.cooldown, secs(crate::config::MAX_HOLD_SECS));
    assert_eq!(p.stabilization, secs(crate::config::MAX_STABILIZATION_SECS));
}

#[test]
fn cooldown_arithmetic_saturates_at_the_ends_of_time() {
    let mut c = cfg(PolicyKind::Threshold);
    c.cooldown = SignedDuration::MIN;
    let mut i = inputs(2, &[90.0, 90.0]);
    i.last_action = Some(Timestamp::MIN);
    let d = evaluate(&c, &mut PolicyState::default(), &i, Timestamp::MAX);
    assert_eq!((d.desired, d.cooldown_left), (3, 0.0), "{d:?}");

    c.cooldown = SignedDuration::MAX;
    i.last_action = Some(Timestamp::MAX);
    let d = evaluate(&c, &mut PolicyState::default(), &i, Timestamp::MIN);
    assert_eq!((d.desired, d.held), (2, Some(Held::Cooldown)), "{d:?}");
}

#[test]
fn threshold_step_saturates_at_the_largest_count() {
    assert_eq!(super::rules::step(u32::MAX, 90.0, 75.0, 25.0), u32::MAX);
}

#[test]
fn prewarming_raises_to_min_before_the_window_opens() {
    let mut c = cfg(PolicyKind::Threshold);
    c.business_hours_only = true;
    c.min = 2;
    c.off_hours = 0;
    let mut st = PolicyState::default();
    // Closed, and not opening soon: held at off_hours.
    let mut i = inputs(0, &[]);
    i.window_open = false;
    assert_eq!(eval(&c, &mut st, &i, 0).desired, 0);
    // Closed but opening in 40 s, within a start time: the autoscaler passes it as open.
    i.window_open = true;
    i.opens_in = Some(40.0);
    i.last_action = Some(t(0)); // a cooldown does not delay it
    let d = eval(&c, &mut st, &i, 10);
    assert_eq!((d.desired, d.rule), (2, "prewarm"), "{}", d.reason);
    assert!(d
        .reason
        .starts_with("pre-warming: the business-hours window opens in 40s"));
}

proptest! {
    /// Extreme parameters and inputs (a config built without validation, counts at u32::MAX,
    /// the largest durations, timestamps at jiff's limits) never panic: the policy runs while
    /// the service's state is being updated, where a panic would take the state with it.
    #[test]
    fn extreme_parameters_and_inputs_never_panic(
        kind in prop::sample::select(vec![PolicyKind::Threshold, PolicyKind::Target, PolicyKind::Adaptive]),
        demand in prop::option::of((prop::num::f64::ANY, any::<bool>(), prop::num::f64::ANY)),
        opens_in in prop::option::of(prop::num::f64::ANY),
        (min, max) in (any::<u32>(), any::<u32>()),
        step in any::<u32>(),
        (current, ready, starting) in (any::<u32>(), any::<u32>(), any::<u32>()),
        capacity in prop::option::of(any::<u32>()),
        util in prop::collection::vec(prop::num::f64::ANY, 0..4),
        sessions in prop::option::of(prop::num::f64::ANY),
        target in prop::num::f64::ANY,
        last in prop::option::of(prop::sample::select(vec![Timestamp::MIN, Timestamp::MAX, t(0)])),
        now in prop::sample::select(vec![Timestamp::MIN, Timestamp::MAX, t(0)]),
        dry_run in any::<bool>(),
    ) {
        let c = PolicyConfig {
            min,
            max,
            max_step: step,
            cooldown: SignedDuration::MAX,
            stabilization: SignedDuration::MAX,
            target,
            target_sessions: sessions.map(|_| target),
            dry_run,
            ..cfg(kind)
        };
        let i = Inputs {
            current,
            ready,
            starting,
            capacity_left: capacity,
            utilization: util,
            sessions,
            window_open: true,
            last_action: last,
            demand: demand.map(|(rate, paired, queue)| crate::policy::Demand {
                rate,
                paired_rate: paired.then_some(rate),
                queue,
                sessions: queue,
            }),
            opens_in,
        };
        let mut st = PolicyState::default();
        let _ = evaluate(&c, &mut st, &i, now);
        let _ = evaluate(&c, &mut st, &i, now);
    }
}
