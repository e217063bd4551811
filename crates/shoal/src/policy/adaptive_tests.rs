//! Tests of the adaptive policy, of target tracking's step limits and stabilization, and of
//! reasons naming the count applied.

use jiff::{SignedDuration, Timestamp};

use super::*;

fn cfg(kind: PolicyKind) -> PolicyConfig {
    PolicyConfig {
        kind,
        min: 1,
        max: 8,
        up_threshold: 75.0,
        down_threshold: 25.0,
        cooldown: SignedDuration::ZERO,
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

fn inputs(current: u32, util: &[f64], demand: Option<(f64, f64)>) -> Inputs {
    Inputs {
        current,
        ready: util.len() as u32,
        starting: 0,
        capacity_left: None,
        utilization: util.to_vec(),
        sessions: None,
        demand: demand.map(|(rate, queue)| Demand {
            rate,
            paired_rate: Some(rate),
            queue,
            sessions: 0.0,
        }),
        window_open: true,
        opens_in: None,
        last_action: None,
    }
}

/// A state that has learned 20 requests/s per replica at 100% (16 at the 80% target).
fn learned() -> PolicyState {
    let c = cfg(PolicyKind::Adaptive);
    let mut st = PolicyState::default();
    for i in 0..MIN_OBSERVATIONS as i64 {
        // 2 replicas at 50% serving 20/s: 10/s each at 50% -> 20/s at 100%.
        evaluate(
            &c,
            &mut st,
            &inputs(2, &[50.0, 50.0], Some((20.0, 0.0))),
            t(i * 15),
        );
    }
    st
}

#[test]
fn adaptive_jumps_to_the_needed_count_in_one_step() {
    let c = cfg(PolicyKind::Adaptive);
    let mut st = learned();
    assert_eq!(st.learned.capacity(), Some(20.0));
    // 1 replica saturated at 100% CPU, 100 requests/s arriving: CPU cannot tell how far
    // demand exceeds capacity; the rate can: ceil(100 / 16) = 7, past max_scale_step 4.
    let d = evaluate(
        &c,
        &mut st,
        &inputs(1, &[100.0], Some((100.0, 0.0))),
        t(100),
    );
    assert_eq!((d.desired, d.rule), (7, "adaptive"), "{}", d.reason);
    assert!(
        d.reason.starts_with("scale up 1 -> 7: demand 100"),
        "{}",
        d.reason
    );
    // Target tracking from the same CPU sample: at most ceil(1 x 100/50) = 2.
    let d = evaluate(
        &cfg(PolicyKind::Target),
        &mut PolicyState::default(),
        &inputs(1, &[100.0], Some((100.0, 0.0))),
        t(100),
    );
    assert_eq!(d.desired, 2);
}

#[test]
fn adaptive_counts_the_queue_as_demand() {
    let c = cfg(PolicyKind::Adaptive);
    let mut st = learned();
    // 48/s needs 3 replicas of 16/s; 300 queued drain in 30 s: +10/s -> ceil(58/16) = 4.
    let d = evaluate(
        &c,
        &mut st,
        &inputs(3, &[100.0; 3], Some((48.0, 300.0))),
        t(100),
    );
    assert_eq!(d.desired, 4, "{}", d.reason);
}

#[test]
fn adaptive_falls_back_to_cpu_without_rate_or_estimate() {
    let c = cfg(PolicyKind::Adaptive);
    // No estimate yet: CPU target tracking at target_utilization (50%): ceil(2 x 90/50).
    let mut st = PolicyState::default();
    let d = evaluate(
        &c,
        &mut st,
        &inputs(2, &[90.0, 90.0], Some((30.0, 0.0))),
        t(0),
    );
    assert_eq!((d.desired, d.signals[0].name), (4, "cpu"), "{}", d.reason);
    assert!(d.reason.contains("no learned capacity"), "{}", d.reason);
    // An estimate but no request rate (HAProxy did not answer, not HTTP): CPU too.
    let mut st = learned();
    let d = evaluate(&c, &mut st, &inputs(2, &[90.0, 90.0], None), t(100));
    assert_eq!((d.desired, d.signals[0].name), (4, "cpu"));
}

#[test]
fn learning_ignores_idle_saturated_queued_and_starting_samples() {
    let mut l = Learned::default();
    let d = |rate, queue| Demand {
        rate,
        paired_rate: Some(rate),
        queue,
        sessions: 0.0,
    };
    assert!(!l.observe(&d(0.2, 0.0), 2, 0, &[2.0, 3.0], t(0)), "idle");
    assert!(
        !l.observe(&d(90.0, 0.0), 2, 0, &[99.0, 100.0], t(0)),
        "saturated"
    );
    assert!(
        !l.observe(&d(30.0, 5.0), 2, 0, &[60.0, 60.0], t(0)),
        "queued"
    );
    assert!(
        !l.observe(&d(30.0, 0.0), 2, 1, &[60.0, 60.0], t(0)),
        "starting"
    );
    assert!(
        !l.observe(&d(30.0, 0.0), 2, 0, &[60.0], t(0)),
        "a sample missing"
    );
    assert!(!l.observe(&d(0.0, 0.0), 0, 0, &[], t(0)), "nothing ready");
    let changing = Demand {
        paired_rate: None,
        ..d(30.0, 0.0)
    };
    assert!(
        !l.observe(&changing, 2, 0, &[60.0, 60.0], t(0)),
        "rate changing"
    );
    assert!(l.observations.is_empty());
    assert_eq!(l.capacity(), None);
}

#[test]
fn learning_is_robust_to_noise_and_outliers() {
    // True capacity: 25 requests/s per replica at 100%. CPU readings carry ±20% noise
    // (deterministic), one in five samples is an outlier (a GC pause: CPU doubled), and
    // idle periods come in between.
    let mut l = Learned::default();
    let truth = 25.0;
    for i in 0..200u32 {
        let x = f64::from((i * 7919) % 101) / 100.0; // 0..1, scrambled
        let replicas = 1 + i % 4;
        let idle = i % 9 == 0;
        let rate = if idle {
            0.1
        } else {
            f64::from(replicas) * truth * (0.2 + 0.6 * x)
        };
        let mut util = rate / f64::from(replicas) / truth * 100.0 * (0.8 + 0.4 * x);
        if i % 5 == 0 {
            util *= 2.0;
        }
        let util = util.min(100.0);
        l.observe(
            &Demand {
                rate,
                paired_rate: Some(rate),
                queue: 0.0,
                sessions: 0.0,
            },
            replicas,
            0,
            &vec![util; replicas as usize],
            t(i64::from(i) * 15),
        );
    }
    assert_eq!(l.observations.len(), adaptive::WINDOW);
    let est = l.capacity().unwrap();
    assert!(
        (est - truth).abs() / truth < 0.1,
        "estimate {est} vs {truth}"
    );
}

#[test]
fn adaptive_scales_down_through_the_stabilization_window() {
    let c = cfg(PolicyKind::Adaptive);
    let mut st = learned();
    assert_eq!(
        evaluate(
            &c,
            &mut st,
            &inputs(1, &[100.0], Some((100.0, 0.0))),
            t(100)
        )
        .desired,
        7
    );
    let quiet = inputs(7, &[10.0; 7], Some((10.0, 0.0)));
    let d = evaluate(&c, &mut st, &quiet, t(200));
    assert_eq!((d.desired, d.held), (7, Some(Held::Stabilization)));
    // The 7 leaves the window after 300 s; the highest left is 1: straight to 1.
    let d = evaluate(&c, &mut st, &quiet, t(401));
    assert_eq!((d.desired, d.held), (1, None), "{}", d.reason);
}

#[test]
fn adaptive_holds_within_the_tolerance() {
    let c = cfg(PolicyKind::Adaptive);
    let mut st = learned();
    // 4 replicas x 16/s = 64/s; 68/s is 6% above: hold (util 85%, no overload).
    let d = evaluate(
        &c,
        &mut st,
        &inputs(4, &[85.0; 4], Some((68.0, 0.0))),
        t(100),
    );
    assert_eq!(d.desired, 4, "{}", d.reason);
    let d = evaluate(
        &c,
        &mut st,
        &inputs(4, &[95.0; 4], Some((76.0, 0.0))),
        t(115),
    );
    assert_eq!(d.desired, 5, "{}", d.reason);
}

#[test]
fn target_scale_down_is_not_step_limited_unless_asked() {
    let c = cfg(PolicyKind::Target);
    let mut st = PolicyState::default();
    // 8 at 10% with target 50%: ceil(8 x 0.2) = 2, straight from 8 (max_scale_step 4 is
    // for scale-up only).
    let d = evaluate(&c, &mut st, &inputs(8, &[10.0; 8], None), t(0));
    assert_eq!(d.desired, 2, "{}", d.reason);
    let mut c = cfg(PolicyKind::Target);
    c.max_down_step = Some(3);
    let d = evaluate(
        &c,
        &mut PolicyState::default(),
        &inputs(8, &[10.0; 8], None),
        t(0),
    );
    assert_eq!(d.desired, 5, "{}", d.reason);
    assert!(d.reason.starts_with("scale down 8 -> 5"), "{}", d.reason);
    assert!(
        d.reason.contains("limited by max_scale_down_step 3"),
        "{}",
        d.reason
    );
}

#[test]
fn stabilization_keeps_the_unclamped_recommendation() {
    let mut c = cfg(PolicyKind::Target);
    c.max_down_step = Some(4);
    let mut st = PolicyState::default();
    // 8 -> 4 (step-limited; 2 recommended). The window keeps 2, not 4 ...
    let d = evaluate(&c, &mut st, &inputs(8, &[10.0; 8], None), t(0));
    assert_eq!(d.desired, 4);
    // ... so the next evaluation goes on to 2 instead of being held for 300 s by a 4.
    let d = evaluate(&c, &mut st, &inputs(4, &[20.0; 4], None), t(15));
    assert_eq!((d.desired, d.held), (2, None), "{}", d.reason);
}

#[test]
fn reasons_print_the_count_applied() {
    let mut c = cfg(PolicyKind::Target);
    c.max_step = 8;
    let mut st = PolicyState::default();
    // 7 at 78% with target 50%: ceil(7 x 1.56) = 11, max 8: 7 -> 8 applied.
    let d = evaluate(&c, &mut st, &inputs(7, &[78.0; 7], None), t(0));
    assert_eq!((d.desired, d.wanted), (8, 11));
    assert!(d.reason.starts_with("scale up 7 -> 8:"), "{}", d.reason);
    assert!(
        d.reason.contains("-> 11; limited by max_replicas 8"),
        "{}",
        d.reason
    );
    // Capped by the fleet's room.
    let mut i = inputs(2, &[100.0, 100.0], None);
    i.capacity_left = Some(1);
    let d = evaluate(&c, &mut PolicyState::default(), &i, t(0));
    assert!(d.reason.starts_with("scale up 2 -> 3:"), "{}", d.reason);
}

#[test]
fn a_new_revision_learns_again() {
    let mut st = learned();
    // Observations of an unknown revision are not trusted (the autoscaler sets the
    // revision before the first observation, so this only happens here).
    assert!(st.learned.follow_revision("r1"));
    assert_eq!(st.learned.capacity(), None);
    let c = cfg(PolicyKind::Adaptive);
    for i in 0..3 {
        evaluate(
            &c,
            &mut st,
            &inputs(2, &[50.0, 50.0], Some((20.0, 0.0))),
            t(100 + i * 15),
        );
    }
    assert!(!st.learned.follow_revision("r1"), "same revision: kept");
    assert_eq!(st.learned.capacity(), Some(20.0));
    assert!(st.learned.follow_revision("r2"), "a new image: forgotten");
    assert_eq!(
        (st.learned.capacity(), st.learned.observations.len()),
        (None, 0)
    );
    assert_eq!(st.learned.revision.as_deref(), Some("r2"));
}
