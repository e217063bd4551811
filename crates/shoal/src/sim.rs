//! `shoal simulate`: replays a load trace through the scaling policy in virtual time.
//!
//! The policy is [`policy::evaluate`] itself, called with the inputs the control loop would
//! give it; only the world around it is modelled, and simply:
//!
//! - **Load** is a step function of the trace: between two points it is the value of the
//!   earlier one. The simulation spans from the first point's time to the last point's
//!   time, so the last point only marks the end.
//! - **Replicas**: each serves up to `capacity` load units at 100% utilization. Replicas the
//!   policy adds count for cost at once and serve after `start_delay` seconds; removals take
//!   effect at once (no draining), and take starting replicas before serving ones, newest
//!   first (as `placement::choose_victims` does).
//! - **Samples**: every ready replica reports the same utilization,
//!   `min(100, load / (ready x capacity) x 100)`; with no ready replica there are none.
//! - **Loop**: every `interval` seconds the policy is evaluated with
//!   `Inputs { current: desired, ready, utilization, sessions: None, window_open: true,
//!   last_action }` and its `desired` applied. The business-hours window, the sessions
//!   signal and dry run are outside the model.
//!
//! Metrics are integrated exactly over the piecewise-constant model (segments are split at
//! trace points and at the moments starting replicas become ready). Virtual time is kept in
//! integer milliseconds, so a run is deterministic.
//!
//! Pure except for [`load_trace`], which reads the trace file.

use std::collections::VecDeque;
use std::fmt;
use std::fmt::Write as _;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::config::Config;
use crate::policy::{self, Direction, Held, Inputs, PolicyConfig, PolicyKind, PolicyState};

/// One point of a load trace.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TracePoint {
    /// Seconds from the start of the trace.
    pub time: f64,
    /// Offered load, in the unit of [`Model::capacity`] (e.g. requests per second).
    pub load: f64,
}

/// The world around the policy.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Model {
    /// Load units one replica serves at 100% utilization. Must be > 0.
    pub capacity: f64,
    /// Seconds from a replica's start to its serving. Must be >= 0.
    pub start_delay: f64,
    /// Seconds between policy evaluations (`autoscaler.check_interval`). Must be > 0.
    pub interval: f64,
}

impl Model {
    /// Checks the model's numbers; the message names the offending one.
    pub fn check(&self) -> Result<(), String> {
        if !(self.capacity.is_finite() && self.capacity > 0.0) {
            return Err(format!("capacity must be > 0 (got {})", self.capacity));
        }
        if !(self.start_delay.is_finite() && self.start_delay >= 0.0) {
            return Err(format!(
                "start delay must be >= 0 (got {})",
                self.start_delay
            ));
        }
        if !(self.interval.is_finite() && self.interval >= 0.001) {
            return Err(format!(
                "interval must be at least 0.001 s (got {})",
                self.interval
            ));
        }
        Ok(())
    }
}

/// A trace file could not be used. Displays as `file:line: error: message` (`file: error:
/// message` when no line applies).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SimError {
    /// The trace file.
    pub file: String,
    /// 1-based line, 0 when the problem has no line (the file cannot be read).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: error: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: error: {}", self.file, self.line, self.message)
        }
    }
}

/// Reads a trace: a `time,load` CSV header, then one `time,load` row per point.
///
/// Header columns are found by name (extra columns are ignored); `#` comment lines and
/// blank lines are skipped. Times are seconds, non-decreasing; loads are >= 0. At least two
/// points are needed, the last marking the end. Every error names `file:line`.
pub fn load_trace(path: &Path) -> Result<Vec<TracePoint>, SimError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SimError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read the trace: {e}"),
    })?;
    parse_trace(&text, &file)
}

/// Parses trace text; `file` names it in errors. See [`load_trace`].
pub fn parse_trace(text: &str, file: &str) -> Result<Vec<TracePoint>, SimError> {
    let err = |line: usize, message: String| SimError {
        file: file.to_owned(),
        line: line as u64,
        message,
    };
    let mut columns: Option<(usize, usize, usize)> = None; // (time, load, needed fields)
    let mut points: Vec<TracePoint> = Vec::new();
    let mut last_line = 1;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        last_line = n;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let Some((ti, li, needed)) = columns else {
            let find = |name: &str| fields.iter().position(|f| f.eq_ignore_ascii_case(name));
            let (Some(ti), Some(li)) = (find("time"), find("load")) else {
                let missing = if find("time").is_none() {
                    "time"
                } else {
                    "load"
                };
                return Err(err(
                    n,
                    format!(
                        "missing column `{missing}`: the header must be `time,load`, got {line:?}"
                    ),
                ));
            };
            columns = Some((ti, li, ti.max(li) + 1));
            continue;
        };
        if fields.len() < needed {
            let missing = if fields.len() <= ti { "time" } else { "load" };
            return Err(err(n, format!("missing column `{missing}` in {line:?}")));
        }
        let number = |idx: usize, name: &str| -> Result<f64, SimError> {
            let s = fields[idx];
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                Ok(_) => Err(err(n, format!("{name} {s:?} must be a finite number >= 0"))),
                Err(_) => Err(err(n, format!("{name} {s:?} is not a number"))),
            }
        };
        let time = number(ti, "time")?;
        let load = number(li, "load")?;
        if let Some(prev) = points.last() {
            if time < prev.time {
                return Err(err(
                    n,
                    format!("time goes backwards: {time} after {}", prev.time),
                ));
            }
        }
        points.push(TracePoint { time, load });
    }
    if columns.is_none() {
        return Err(err(
            last_line,
            "empty trace: no `time,load` header and no points".to_owned(),
        ));
    }
    match points.as_slice() {
        [] => Err(err(
            last_line,
            "empty trace: no points after the header".into(),
        )),
        [p] => Err(err(
            last_line,
            format!(
                "the trace has a single point (t={}): it needs a second one to mark its end",
                p.time
            ),
        )),
        [first, .., last] if last.time <= first.time => Err(err(
            last_line,
            format!(
                "the trace spans no time (every point is at t={})",
                first.time
            ),
        )),
        _ => Ok(points),
    }
}

/// The service, its policy and the evaluation interval a config gives the simulator.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// The service simulated.
    pub service: String,
    /// Its policy, with dry run off (the simulator applies decisions).
    pub policy: PolicyConfig,
    /// `autoscaler.check_interval`, seconds.
    pub interval: f64,
}

/// Picks the service (`service`, else the only one, else the first by name) and its policy
/// (`kind` overrides the service's `scale_policy`). Errors name the services there are.
pub fn setup(
    cfg: &Config,
    service: Option<&str>,
    kind: Option<PolicyKind>,
) -> Result<Setup, String> {
    let names = || cfg.services.keys().cloned().collect::<Vec<_>>().join(", ");
    let (name, svc) = match service {
        Some(s) => cfg
            .services
            .get_key_value(s)
            .ok_or_else(|| format!("no service {s:?} in the config (services: {})", names()))?,
        None => cfg
            .services
            .iter()
            .next()
            .ok_or_else(|| "the config has no service".to_owned())?,
    };
    let mut policy = PolicyConfig::from_service(svc, false);
    policy.dry_run = false;
    if let Some(k) = kind {
        policy.kind = k;
    }
    Ok(Setup {
        service: name.clone(),
        policy,
        interval: cfg.check_interval().as_secs_f64(),
    })
}

/// One policy evaluation of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    /// Trace time, seconds.
    pub t: f64,
    /// Load at `t`.
    pub load: f64,
    /// Desired (started) replicas after the decision.
    pub desired: u32,
    /// Ready replicas the policy saw.
    pub ready: u32,
    /// The utilization sample of each ready replica (percent); `None` with no ready replica.
    pub utilization: Option<f64>,
    /// Direction of the change applied, if any.
    pub action: Option<Direction>,
    /// Why a wanted change was held, if it was.
    pub held: Option<Held>,
    /// The policy's explanation.
    pub reason: String,
}

/// Cost and quality figures of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimReport {
    /// The policy parameters used.
    pub policy: PolicyConfig,
    /// The replica model used.
    pub model: Model,
    /// Simulated seconds (last trace time minus first).
    pub duration_s: f64,
    /// Policy evaluations.
    pub steps: usize,
    /// Integral of started (desired) replicas over time, in replica-minutes: the cost.
    pub replica_minutes: f64,
    /// Reference cost: the integral of `max(min, ceil(load / capacity))`, the fewest replicas
    /// that never overload with perfect foresight and no start delay (may exceed `max`).
    pub ideal_replica_minutes: f64,
    /// Minutes during which load exceeded the capacity of ready replicas.
    pub overload_minutes: f64,
    /// Integral of the load above ready capacity (load units x minutes): how badly it was
    /// overloaded, not only how long.
    pub unserved_load_minutes: f64,
    /// Most replicas started at once.
    pub peak_replicas: u32,
    /// Highest load of the trace.
    pub peak_load: f64,
    /// Changes of the desired count.
    pub actions: u32,
    /// Changes upwards.
    pub ups: u32,
    /// Changes downwards.
    pub downs: u32,
    /// Replicas started over the run (churn).
    pub replicas_started: u32,
    /// Time-weighted mean utilization (percent) of ready replicas, over the time some
    /// replica was ready.
    pub mean_utilization: Option<f64>,
    /// Every evaluation, in order.
    pub timeline: Vec<Step>,
}

impl SimReport {
    /// A few readable lines (no timeline).
    #[must_use]
    pub fn summary(&self) -> String {
        let p = &self.policy;
        let m = &self.model;
        let policy = match p.kind {
            PolicyKind::Threshold => format!(
                "threshold (up > {}%, down < {}%, cooldown {}s)",
                p.up_threshold,
                p.down_threshold,
                p.cooldown.as_secs()
            ),
            PolicyKind::Target => format!(
                "target ({}% ±{}%, stabilization {}s, max step {}, cooldown {}s)",
                p.target,
                p.tolerance * 100.0,
                p.stabilization.as_secs(),
                p.max_step,
                p.cooldown.as_secs()
            ),
        };
        let d = self.duration_s.round() as u64;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "policy            {policy}, replicas [{}, {}]",
            p.min, p.max
        );
        let _ = writeln!(
            s,
            "model             capacity {} per replica, start delay {}s, evaluated every {}s",
            m.capacity, m.start_delay, m.interval
        );
        let _ = writeln!(
            s,
            "simulated         {}h{:02}m{:02}s, {} evaluations, peak load {}",
            d / 3600,
            d % 3600 / 60,
            d % 60,
            self.steps,
            self.peak_load
        );
        let _ = writeln!(
            s,
            "replica-minutes   {:.1} (ideal {:.1})",
            self.replica_minutes, self.ideal_replica_minutes
        );
        let _ = writeln!(
            s,
            "overload-minutes  {:.1} (unserved load x minutes {:.1})",
            self.overload_minutes, self.unserved_load_minutes
        );
        let _ = writeln!(s, "peak replicas     {}", self.peak_replicas);
        let _ = writeln!(
            s,
            "actions           {} ({} up, {} down; {} replicas started)",
            self.actions, self.ups, self.downs, self.replicas_started
        );
        let _ = writeln!(
            s,
            "mean utilization  {}",
            self.mean_utilization
                .map_or("n/a (no ready replica)".to_owned(), |u| format!(
                    "{u:.1}% of ready replicas"
                ))
        );
        s
    }

    /// The timeline as CSV: `t,load,desired,ready,utilization,action,held,reason`.
    #[must_use]
    pub fn timeline_csv(&self) -> String {
        let mut s = String::from("t,load,desired,ready,utilization,action,held,reason\n");
        for st in &self.timeline {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},\"{}\"",
                st.t,
                st.load,
                st.desired,
                st.ready,
                st.utilization.map_or(String::new(), |u| format!("{u:.2}")),
                st.action.map_or("", |a| match a {
                    Direction::Up => "up",
                    Direction::Down => "down",
                    Direction::Hold => "",
                }),
                st.held.map_or("", Held::as_str),
                st.reason.replace('"', "\"\"")
            );
        }
        s
    }
}

/// Milliseconds of virtual time.
fn ms(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

fn minutes(ms: i64) -> f64 {
    ms as f64 / 60_000.0
}

fn round_to(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The virtual clock: the Unix epoch plus `t_ms`.
fn instant(t_ms: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH
        .checked_add(SignedDuration::from_millis(t_ms))
        .unwrap_or(Timestamp::MAX)
}

/// Load at `t_ms`: the value of the last point at or before it. `cursor` only moves forward.
fn load_at(trace: &[(i64, f64)], cursor: &mut usize, t_ms: i64) -> f64 {
    while *cursor + 1 < trace.len() && trace[*cursor + 1].0 <= t_ms {
        *cursor += 1;
    }
    trace[*cursor].1
}

/// Replays `trace` through [`policy::evaluate`] under `model`. See the module docs for the
/// model. Starts with `policy.min` ready replicas; an empty or one-point trace gives an empty
/// report.
///
/// # Panics
///
/// If `model.check()` fails.
#[must_use]
pub fn simulate(policy: &PolicyConfig, trace: &[TracePoint], model: &Model) -> SimReport {
    if let Err(e) = model.check() {
        panic!("invalid simulation model: {e}");
    }
    let points: Vec<(i64, f64)> = trace.iter().map(|p| (ms(p.time), p.load)).collect();
    let mut report = SimReport {
        policy: policy.clone(),
        model: *model,
        duration_s: 0.0,
        steps: 0,
        replica_minutes: 0.0,
        ideal_replica_minutes: 0.0,
        overload_minutes: 0.0,
        unserved_load_minutes: 0.0,
        peak_replicas: policy.min,
        peak_load: trace.iter().map(|p| p.load).fold(0.0, f64::max),
        actions: 0,
        ups: 0,
        downs: 0,
        replicas_started: 0,
        mean_utilization: None,
        timeline: Vec::new(),
    };
    let (Some(&(start, _)), Some(&(end, _))) = (points.first(), points.last()) else {
        return report;
    };
    let interval = ms(model.interval).max(1);
    let delay = ms(model.start_delay).max(0);
    let cap = model.capacity;

    let mut state = PolicyState::default();
    let mut desired = policy.min;
    let mut ready = policy.min;
    let mut starting: VecDeque<i64> = VecDeque::new(); // ready-at times, ascending
    let mut last_action: Option<Timestamp> = None;
    let mut cursor = 0;
    let mut seg_cursor = 0;

    // Integrals, in ms-weighted units.
    let (mut replica_ms, mut ideal_ms, mut overload_ms) = (0.0f64, 0.0f64, 0i64);
    let (mut unserved, mut util_sum, mut ready_ms) = (0.0f64, 0.0f64, 0i64);

    let mut k: i64 = 0;
    loop {
        let t = start + k * interval;
        if t >= end {
            break;
        }
        k += 1;
        while starting.front().is_some_and(|&at| at <= t) {
            starting.pop_front();
            ready += 1;
        }
        let load = load_at(&points, &mut cursor, t);
        let util = (ready > 0).then(|| (load / (f64::from(ready) * cap) * 100.0).min(100.0));
        let inputs = Inputs {
            current: desired,
            ready,
            starting: starting.len() as u32,
            capacity_left: None,
            utilization: util.map_or_else(Vec::new, |u| vec![u; ready as usize]),
            sessions: None,
            window_open: true,
            last_action,
        };
        let now = instant(t);
        let d = policy::evaluate(policy, &mut state, &inputs, now);
        let action = match d.desired.cmp(&desired) {
            std::cmp::Ordering::Greater => {
                let added = d.desired - desired;
                for _ in 0..added {
                    if delay == 0 {
                        ready += 1;
                    } else {
                        starting.push_back(t + delay);
                    }
                }
                report.ups += 1;
                report.replicas_started += added;
                Some(Direction::Up)
            }
            std::cmp::Ordering::Less => {
                for _ in 0..desired - d.desired {
                    if starting.pop_back().is_none() {
                        ready = ready.saturating_sub(1);
                    }
                }
                report.downs += 1;
                Some(Direction::Down)
            }
            std::cmp::Ordering::Equal => None,
        };
        if action.is_some() {
            report.actions += 1;
            last_action = Some(now);
            desired = d.desired;
            report.peak_replicas = report.peak_replicas.max(desired);
        }
        report.timeline.push(Step {
            t: t as f64 / 1000.0,
            load,
            desired,
            ready: inputs.ready,
            utilization: util.map(|u| round_to(u, 4)),
            action,
            held: d.held,
            reason: d.reason,
        });

        // Integrate over [t, next evaluation), split where the load or `ready` changes.
        let step_end = (t + interval).min(end);
        let mut a = t;
        while a < step_end {
            while starting.front().is_some_and(|&at| at <= a) {
                starting.pop_front();
                ready += 1;
            }
            let load = load_at(&points, &mut seg_cursor, a);
            let mut b = step_end;
            if let Some(&(next, _)) = points.get(seg_cursor + 1) {
                b = b.min(next);
            }
            if let Some(&at) = starting.front() {
                b = b.min(at);
            }
            let dt = b - a;
            let served = f64::from(ready) * cap;
            replica_ms += f64::from(desired) * dt as f64;
            let need = (load / cap).ceil().max(f64::from(policy.min));
            ideal_ms += need * dt as f64;
            if load > served {
                overload_ms += dt;
                unserved += (load - served) * dt as f64;
            }
            if ready > 0 {
                util_sum += (load / served * 100.0).min(100.0) * dt as f64;
                ready_ms += dt;
            }
            a = b;
        }
    }

    report.duration_s = (end - start) as f64 / 1000.0;
    report.steps = report.timeline.len();
    report.replica_minutes = round_to(replica_ms / 60_000.0, 3);
    report.ideal_replica_minutes = round_to(ideal_ms / 60_000.0, 3);
    report.overload_minutes = round_to(minutes(overload_ms), 3);
    report.unserved_load_minutes = round_to(unserved / 60_000.0, 3);
    report.mean_utilization = (ready_ms > 0).then(|| round_to(util_sum / ready_ms as f64, 2));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: PolicyKind) -> PolicyConfig {
        PolicyConfig {
            kind,
            min: 1,
            max: 8,
            up_threshold: 75.0,
            down_threshold: 25.0,
            cooldown: SignedDuration::from_secs(60),
            target: 60.0,
            tolerance: 0.1,
            stabilization: SignedDuration::from_secs(300),
            max_step: 4,
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
            assert_eq!(r.duration_s, 3600.0);
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
        assert_eq!(r.duration_s, 60.0);
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
        assert_eq!((r.steps, r.duration_s, r.replica_minutes), (0, 0.0, 0.0));
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
        assert!(parse_err("# only\ntime,rps\n0,1\n")
            .starts_with("t.csv:2: error: missing column `load`"));
        assert!(parse_err("time,load\n0,-1\n").starts_with("t.csv:2: error: load \"-1\" must be"));
        assert!(parse_err("").starts_with("t.csv:1: error: empty trace"));
        assert!(parse_err("# nothing\n\n").starts_with("t.csv:2: error: empty trace"));
        assert!(
            parse_err("time,load\n# none\n").starts_with("t.csv:2: error: empty trace: no points")
        );
        assert!(parse_err("time,load\n0,5\n")
            .starts_with("t.csv:2: error: the trace has a single point"));
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
            Some("t,load,desired,ready,utilization,action,held,reason")
        );
        assert!(lines
            .next()
            .unwrap()
            .starts_with("0,50,1,1,50.00,,,\"hold at 1"));
        assert!(lines
            .next()
            .unwrap()
            .starts_with("15,150,2,1,100.00,up,,\"scale up 1 -> 2"));
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
}
