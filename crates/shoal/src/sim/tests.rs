//! Unit tests of the simulator and of trace parsing.

use std::path::Path;

use jiff::SignedDuration;

use super::*;
use crate::policy::{Direction, Held, PolicyConfig, PolicyKind};

fn cfg(kind: PolicyKind) -> PolicyConfig {
    PolicyConfig {
        kind,
        min: 1,
        max: 8,
        up_threshold: 75.0,
        down_threshold: 25.0,
        cooldown: SignedDuration::from_secs(60),
        target: 60.0,
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

fn model(start_delay: f64) -> Model {
    Model {
        capacity: 100.0,
        start_delay,
        interval: 15.0,
    }
}

fn trace(points: &[(f64, f64)]) -> Vec<TracePoint> {
    points
        .iter()
        .map(|&(time, load)| TracePoint { time, load })
        .collect()
}

/// Load `low` until `at`, then `high` until `end`.
fn step_trace(low: f64, high: f64, at: f64, end: f64) -> Vec<TracePoint> {
    trace(&[(0.0, low), (at, high), (end, high)])
}

fn ups(r: &SimReport) -> Vec<(f64, u32)> {
    r.timeline
        .iter()
        .filter(|s| s.action == Some(Direction::Up))
        .map(|s| (s.t, s.desired))
        .collect()
}

#[test]
fn constant_low_load_stays_at_min() {
    for kind in [PolicyKind::Threshold, PolicyKind::Target] {
        let r = simulate(
            &cfg(kind),
            &trace(&[(0.0, 30.0), (3600.0, 30.0)]),
            &model(10.0),
        );
        assert_eq!((r.actions, r.peak_replicas), (0, 1), "{kind:?}");
        assert_eq!(r.steps, 240);
        assert!((r.replica_minutes - 60.0).abs() < 1e-9);
        assert_eq!(r.overload_minutes, 0.0);
        assert_eq!(r.mean_utilization, Some(30.0));
        assert_eq!(r.duration_seconds, 3600.0);
    }
}

#[test]
fn threshold_steps_up_one_replica_per_cooldown() {
    // 1 replica, then 500 load: the threshold policy adds one replica per 60 s cooldown
    // until utilization <= 75% (7 replicas: 500/700 = 71%).
    let r = simulate(
        &cfg(PolicyKind::Threshold),
        &step_trace(50.0, 500.0, 60.0, 1200.0),
        &model(10.0),
    );
    let u = ups(&r);
    assert_eq!(
        u,
        vec![
            (60.0, 2),
            (120.0, 3),
            (180.0, 4),
            (240.0, 5),
            (300.0, 6),
            (360.0, 7)
        ]
    );
    assert_eq!((r.peak_replicas, r.downs), (7, 0));
}

#[test]
fn target_scales_up_in_bigger_steps() {
    let r = simulate(
        &cfg(PolicyKind::Target),
        &step_trace(50.0, 500.0, 60.0, 1200.0),
        &model(10.0),
    );
    // Saturated at 1 replica: ceil(1 x 100/60) = 2; then 2 ready at 100% -> 4; then
    // 4 ready at 100% -> 7 (ceil(4 x 1.67)); then 7 ready at 71% -> 9, capped at max 8.
    // Utilization saturates at 100%, so each step is at most x1.67. The target policy
    // does not wait for the cooldown to scale up: one step per evaluation (15 s).
    assert_eq!(ups(&r), vec![(60.0, 2), (75.0, 4), (90.0, 7), (105.0, 8)]);
    assert_eq!(r.peak_replicas, 8);
    // It reaches enough capacity sooner than the threshold policy.
    let thr = simulate(
        &cfg(PolicyKind::Threshold),
        &step_trace(50.0, 500.0, 60.0, 1200.0),
        &model(10.0),
    );
    assert!(r.overload_minutes < thr.overload_minutes);
}

#[test]
fn start_delay_delays_capacity() {
    // 150 load on 1 replica: one more is needed; it serves only after the delay.
    let tr = step_trace(50.0, 150.0, 60.0, 600.0);
    let quick = simulate(&cfg(PolicyKind::Threshold), &tr, &model(0.0));
    let slow = simulate(&cfg(PolicyKind::Threshold), &tr, &model(45.0));
    assert_eq!(ups(&quick), vec![(60.0, 2)]);
    assert_eq!(ups(&slow), vec![(60.0, 2)]);
    assert_eq!(quick.overload_minutes, 0.0);
    assert!(
        (slow.overload_minutes - 0.75).abs() < 1e-9,
        "{}",
        slow.overload_minutes
    );
    // 50 load units unserved for 45 s.
    assert!((slow.unserved_load_minutes - 37.5).abs() < 1e-9);
    // Cost counts from the start, not from readiness.
    assert_eq!(slow.replica_minutes, quick.replica_minutes);
    // The policy saw 1 ready replica during the delay.
    let during = slow.timeline.iter().find(|s| s.t == 90.0).unwrap();
    assert_eq!((during.desired, during.ready), (2, 1));
}

#[test]
fn no_scale_down_while_a_replica_starts() {
    let mut c = cfg(PolicyKind::Threshold);
    c.cooldown = SignedDuration::from_secs(0);
    // 200 load for 15 s (one evaluation), then nothing: up to 2, then down.
    let tr = trace(&[(0.0, 200.0), (15.0, 0.0), (120.0, 0.0)]);
    let r = simulate(&c, &tr, &model(60.0));
    // No scale-down while a replica is still starting ...
    let second = &r.timeline[1];
    assert_eq!((second.desired, second.held), (2, Some(Held::Starting)));
    // ... only once it is ready (started at 0 s, ready at 60 s).
    let down = r
        .timeline
        .iter()
        .find(|s| s.action == Some(Direction::Down))
        .expect("a scale-down");
    assert!(down.t >= 60.0, "{}", down.t);
    assert_eq!(down.desired, 1);
}

#[test]
fn step_function_and_duration() {
    // Load 50 for 30 s then 150 for 30 s; the last point only marks the end.
    let tr = trace(&[(0.0, 50.0), (30.0, 150.0), (60.0, 999.0)]);
    let mut c = cfg(PolicyKind::Threshold);
    c.max = 1;
    let r = simulate(&c, &tr, &model(10.0));
    assert_eq!(r.duration_seconds, 60.0);
    assert_eq!(
        r.timeline.iter().map(|s| s.load).collect::<Vec<_>>(),
        vec![50.0, 50.0, 150.0, 150.0]
    );
    assert!((r.overload_minutes - 0.5).abs() < 1e-9);
    assert_eq!(r.mean_utilization, Some(75.0));
    assert!((r.ideal_replica_minutes - 1.5).abs() < 1e-9);
}

#[test]
fn zero_ready_replicas_have_no_samples() {
    let mut c = cfg(PolicyKind::Threshold);
    c.min = 0;
    let r = simulate(&c, &trace(&[(0.0, 10.0), (60.0, 10.0)]), &model(10.0));
    assert!(r.timeline.iter().all(|s| s.utilization.is_none()));
    assert_eq!(r.mean_utilization, None);
    assert_eq!(r.overload_minutes, 1.0);
    assert_eq!(r.replica_minutes, 0.0);
}

#[test]
fn same_inputs_same_report() {
    let tr: Vec<TracePoint> = (0..200)
        .map(|i| TracePoint {
            time: f64::from(i) * 30.0,
            load: 50.0 + 400.0 * (f64::from(i) / 20.0).sin().abs(),
        })
        .collect();
    for kind in [PolicyKind::Threshold, PolicyKind::Target] {
        let a = simulate(&cfg(kind), &tr, &model(10.0));
        let b = simulate(&cfg(kind), &tr, &model(10.0));
        assert_eq!(a, b);
        assert!(a.actions > 2, "{kind:?}: {}", a.actions);
        assert!(a.timeline.iter().all(|s| (1..=8).contains(&s.desired)));
    }
}

#[test]
fn empty_trace_gives_empty_report() {
    let r = simulate(&cfg(PolicyKind::Target), &[], &model(10.0));
    assert_eq!(
        (r.steps, r.duration_seconds, r.replica_minutes),
        (0, 0.0, 0.0)
    );
}

fn parse_err(text: &str) -> String {
    parse_trace(text, "t.csv").unwrap_err().to_string()
}

#[test]
fn traces_parse_with_comments_and_blank_lines() {
    let t = parse_trace(
        "# a trace\n\ntime,load\n0,10\n# noon\n60, 20.5\r\n120,20\n",
        "t.csv",
    )
    .unwrap();
    assert_eq!(t, trace(&[(0.0, 10.0), (60.0, 20.5), (120.0, 20.0)]));
    // Columns are found by name.
    let t = parse_trace("load,note,time\n5,x,0\n6,y,10\n", "t.csv").unwrap();
    assert_eq!(t, trace(&[(0.0, 5.0), (10.0, 6.0)]));
}

#[test]
fn bad_traces_name_file_and_line() {
    assert_eq!(
        parse_err("time,load\n0,10\n60,ten\n"),
        "t.csv:3: error: load \"ten\" is not a number"
    );
    assert_eq!(
        parse_err("time,load\n0,10\n60,20\n# x\n30,20\n"),
        "t.csv:5: error: time goes backwards: 30 after 60"
    );
    assert_eq!(
        parse_err("time,load\n0,10\n60\n"),
        "t.csv:3: error: missing column `load` in \"60\""
    );
    assert!(
        parse_err("# only\ntime,rps\n0,1\n").starts_with("t.csv:2: error: missing column `load`")
    );
    assert!(parse_err("time,load\n0,-1\n").starts_with("t.csv:2: error: load \"-1\" must be"));
    assert!(parse_err("").starts_with("t.csv:1: error: empty trace"));
    assert!(parse_err("# nothing\n\n").starts_with("t.csv:2: error: empty trace"));
    assert!(parse_err("time,load\n# none\n").starts_with("t.csv:2: error: empty trace: no points"));
    assert!(
        parse_err("time,load\n0,5\n").starts_with("t.csv:2: error: the trace has a single point")
    );
    assert!(parse_err("time,load\n5,5\n5,6\n").contains("spans no time"));
}

#[test]
fn load_trace_names_an_unreadable_file() {
    let e = load_trace(Path::new("/nonexistent/trace.csv")).unwrap_err();
    assert_eq!((e.line, e.file.as_str()), (0, "/nonexistent/trace.csv"));
    assert!(e
        .to_string()
        .starts_with("/nonexistent/trace.csv: error: cannot read"));
}

#[test]
fn timeline_csv_quotes_reasons() {
    let r = simulate(
        &cfg(PolicyKind::Threshold),
        &step_trace(50.0, 150.0, 15.0, 60.0),
        &model(10.0),
    );
    let csv = r.timeline_csv();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("t,load,desired,ready,starting,overloaded,queue,utilization,action,held,reason")
    );
    assert!(lines
        .next()
        .unwrap()
        .starts_with("0,50,1,1,0,0,0,50.00,,,\"hold at 1"));
    assert!(lines
        .next()
        .unwrap()
        .starts_with("15,150,2,1,0,1,0,100.00,up,,\"scale up 1 -> 2"));
    assert_eq!(csv.lines().count(), r.steps + 1);
}

#[test]
fn model_check_names_the_bad_number() {
    let mut m = model(10.0);
    m.capacity = 0.0;
    assert!(m.check().unwrap_err().contains("capacity"));
    let mut m = model(-1.0);
    assert!(m.check().unwrap_err().contains("start delay"));
    m = model(1.0);
    m.interval = 0.0;
    assert!(m.check().unwrap_err().contains("interval"));
}

#[test]
fn virtual_time_near_its_end_does_not_overflow() {
    // Times close to i64::MAX milliseconds, with an interval and a start delay so long that
    // `t + interval` and `t + start_delay` pass the end of the virtual clock.
    let m = Model {
        capacity: 1.0,
        start_delay: 5e15,
        interval: 5e15,
    };
    let mut c = cfg(PolicyKind::Threshold);
    c.cooldown = SignedDuration::ZERO;
    let r = simulate(&c, &trace(&[(0.0, 10.0), (9.2e15, 10.0)]), &m);
    assert_eq!(r.steps, 2, "{:?}", r.timeline);
    assert_eq!(r.ups, 2);
    assert_eq!(r.duration_seconds, 9.2e15);
    // The first added replica is ready one delay later; the second would be ready past the
    // end of the virtual clock.
    let ready: Vec<u32> = r.timeline.iter().map(|s| s.ready).collect();
    assert_eq!(ready, [1, 2]);
}

fn hpa_run(tr: &[TracePoint], m: &Model) -> SimReport {
    run(&Contender::Hpa(Hpa::new(1, 8)), tr, m, true)
}

#[test]
fn hpa_reference_follows_the_kubernetes_algorithm() {
    // Saturated: ceil(1 x 100/60) = 2, then 2 ready at 100% -> 4, 4 -> 7, then 7 at 71%:
    // ceil(7 x 1.19) = 9, bounded to 8.
    let tr = step_trace(50.0, 500.0, 60.0, 1200.0);
    let r = hpa_run(&tr, &model(10.0));
    assert_eq!(ups(&r), vec![(60.0, 2), (75.0, 4), (90.0, 7), (105.0, 8)]);
    // Pods still starting count as 0% for a scale-up: with a 30 s start, at 75 s one pod
    // at 100% and one starting average 50%, below 60%: hold.
    let r = hpa_run(&tr, &model(30.0));
    let at75 = r.timeline.iter().find(|s| s.t == 75.0).unwrap();
    assert_eq!((at75.desired, at75.ready, at75.starting), (2, 1, 1));
    assert_eq!(ups(&r)[1].0, 90.0, "{:?}", ups(&r));
    // Within the tolerance (60% ± 10%): hold.
    let r = hpa_run(&trace(&[(0.0, 65.0), (600.0, 65.0)]), &model(10.0));
    assert_eq!(r.actions, 0);
}

#[test]
fn hpa_reference_stabilizes_scale_down_for_300_s() {
    let tr = trace(&[(0.0, 500.0), (300.0, 50.0), (1200.0, 50.0)]);
    let r = hpa_run(&tr, &model(0.0));
    let down = r
        .timeline
        .iter()
        .find(|s| s.action == Some(Direction::Down))
        .expect("a scale-down");
    // The last high recommendation is at 285 s; it leaves the window after 585 s.
    assert_eq!((down.t, down.desired), (600.0, 1));
    // Scale-up rate: at most max(100%, 4 pods) per 15 s: 1 -> 5 at most at first.
    let r = hpa_run(&trace(&[(0.0, 5000.0), (60.0, 5000.0)]), &model(0.0));
    assert_eq!(r.timeline[0].desired, 2, "saturated 1 pod: ceil(1.67)");
}

#[test]
fn excess_load_queues_and_drains() {
    // 1 replica of 100, 150 arriving for 30 s: 50/s excess, refused after 5 s of waiting,
    // so the queue holds at most 250; it drains at 100 - 50 = 50/s once the load drops.
    let mut c = cfg(PolicyKind::Threshold);
    c.max = 1;
    let tr = trace(&[(0.0, 150.0), (30.0, 50.0), (60.0, 50.0)]);
    let r = simulate(&c, &tr, &model(10.0));
    assert_eq!(r.peak_queue, 250.0);
    let q: Vec<f64> = r.timeline.iter().map(|s| s.queue).collect();
    assert_eq!(q, [0.0, 250.0, 250.0, 0.0]);
    // Busy while the queue drains (5 s after 30 s): the CPU saw 100% at 30 s.
    assert_eq!(r.timeline[2].utilization, Some(100.0));
    assert!(r.timeline[1].overloaded && !r.timeline[3].overloaded);
    // The adaptive policy sees the arrivals (150/s), not the 100% CPU.
    let mut a = cfg(PolicyKind::Adaptive);
    a.max = 8;
    let r = simulate(
        &a,
        &trace(&[(0.0, 50.0), (60.0, 400.0), (120.0, 400.0)]),
        &model(10.0),
    );
    assert_eq!(ups(&r), vec![(60.0, 5)], "ceil(400 / 80) in one step");
}
