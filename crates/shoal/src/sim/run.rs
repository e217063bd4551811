//! [`simulate`]: the virtual-time loop that evaluates the policy and integrates the metrics.

use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};

use super::{Model, SimReport, Step, TracePoint};
use crate::policy::{self, Direction, Inputs, PolicyConfig, PolicyState};

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
    // Evaluations at start + k x interval, before the end (and before the virtual clock
    // would overflow).
    while let Some(t) = k
        .checked_mul(interval)
        .and_then(|o| start.checked_add(o))
        .filter(|&t| t < end)
    {
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
                        starting.push_back(t.saturating_add(delay));
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
        let step_end = t.saturating_add(interval).min(end);
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

    report.duration_s = end.saturating_sub(start) as f64 / 1000.0;
    report.steps = report.timeline.len();
    report.replica_minutes = round_to(replica_ms / 60_000.0, 3);
    report.ideal_replica_minutes = round_to(ideal_ms / 60_000.0, 3);
    report.overload_minutes = round_to(minutes(overload_ms), 3);
    report.unserved_load_minutes = round_to(unserved / 60_000.0, 3);
    report.mean_utilization = (ready_ms > 0).then(|| round_to(util_sum / ready_ms as f64, 2));
    report
}
