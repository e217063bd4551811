//! [`simulate`] and [`run`]: the virtual-time loop that evaluates a policy (or the HPA
//! reference) and integrates the metrics.

use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::hpa::{self, Hpa, HpaState};
use super::{Model, SimReport, Step, TracePoint};
use crate::policy::{self, Demand, Direction, Held, Inputs, PolicyConfig, PolicyKind, PolicyState};

/// Seconds a request waits in HAProxy's queue before it is refused (`timeout queue`
/// defaults to `timeout connect`, 5 s in the configuration shoal renders).
pub const QUEUE_TIMEOUT: f64 = 5.0;

/// What decides the count in a run: one of shoal's policies, or the HPA reference.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Contender {
    /// A shoal policy, evaluated every `Model::interval`.
    Policy(PolicyConfig),
    /// The Kubernetes HPA reference, evaluated every `Hpa::sync_seconds`.
    Hpa(Hpa),
}

impl Contender {
    /// `threshold`, `target`, `adaptive` or `hpa`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Contender::Policy(p) => match p.kind {
                PolicyKind::Threshold => "threshold",
                PolicyKind::Target => "target",
                PolicyKind::Adaptive => "adaptive",
            },
            Contender::Hpa(_) => "hpa",
        }
    }

    /// `(min, max)` replicas.
    #[must_use]
    pub fn bounds(&self) -> (u32, u32) {
        match self {
            Contender::Policy(p) => (p.min, p.max),
            Contender::Hpa(h) => (h.min, h.max),
        }
    }

    /// Every shoal policy on `policy`'s parameters, then the HPA reference with its bounds.
    #[must_use]
    pub fn all(policy: &PolicyConfig) -> Vec<Contender> {
        let mut v: Vec<Contender> = [
            PolicyKind::Threshold,
            PolicyKind::Target,
            PolicyKind::Adaptive,
        ]
        .into_iter()
        .map(|kind| {
            Contender::Policy(PolicyConfig {
                kind,
                ..policy.clone()
            })
        })
        .collect();
        v.push(Contender::Hpa(Hpa::new(policy.min, policy.max)));
        v
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

/// Replays `trace` through [`policy::evaluate`] under `model`, keeping the timeline. See
/// [`run`].
///
/// # Panics
///
/// If `model.check()` fails.
#[must_use]
pub fn simulate(policy: &PolicyConfig, trace: &[TracePoint], model: &Model) -> SimReport {
    run(&Contender::Policy(policy.clone()), trace, model, true)
}

/// The decider's memory during a run.
enum Decider<'a> {
    Policy(&'a PolicyConfig, PolicyState),
    Hpa(&'a Hpa, HpaState),
}

impl Decider<'_> {
    fn decide(&mut self, inputs: &Inputs, now: Timestamp) -> (u32, Option<Held>, String) {
        match self {
            Decider::Policy(cfg, state) => {
                let d = policy::evaluate(cfg, state, inputs, now);
                (d.desired, d.held, d.reason)
            }
            Decider::Hpa(h, state) => {
                let (desired, reason) = hpa::decide(h, state, inputs, now);
                (desired, None, reason)
            }
        }
    }
}

/// Replays `trace` through `contender` under `model` (see the module docs for the model).
/// Starts with `min` ready replicas and an empty queue; an empty or one-point trace gives an
/// empty report. With `timeline` false the per-evaluation steps are not kept (memory stays
/// constant however long the trace).
///
/// # Panics
///
/// If `model.check()` fails.
#[must_use]
pub fn run(
    contender: &Contender,
    trace: &[TracePoint],
    model: &Model,
    timeline: bool,
) -> SimReport {
    if let Err(e) = model.check() {
        panic!("invalid simulation model: {e}");
    }
    let (min, _) = contender.bounds();
    let points: Vec<(i64, f64)> = trace.iter().map(|p| (ms(p.time), p.load)).collect();
    let mut report = SimReport {
        policy: contender.clone(),
        model: *model,
        duration_seconds: 0.0,
        steps: 0,
        replica_minutes: 0.0,
        ideal_replica_minutes: 0.0,
        overload_minutes: 0.0,
        overload_seconds: 0.0,
        unserved_load_minutes: 0.0,
        peak_queue: 0.0,
        peak_replicas: min,
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
    let interval = match contender {
        Contender::Policy(_) => ms(model.interval),
        Contender::Hpa(h) => ms(h.sync_seconds),
    }
    .max(1);
    let delay = ms(model.start_delay).max(0);
    let cap = model.capacity;

    let mut decider = match contender {
        Contender::Policy(p) => Decider::Policy(p, PolicyState::default()),
        Contender::Hpa(h) => Decider::Hpa(h, HpaState::default()),
    };
    let mut desired = min;
    let mut ready = min;
    let mut starting: VecDeque<i64> = VecDeque::new(); // ready-at times, ascending
    let mut queue = 0.0f64; // requests waiting in HAProxy
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
        let capacity = f64::from(ready) * cap;
        // Busy while a queue is waiting; otherwise the load, up to the capacity.
        let served = if queue > 0.0 {
            capacity
        } else {
            load.min(capacity)
        };
        let util = (ready > 0).then(|| (served / capacity * 100.0).min(100.0));
        let inputs = Inputs {
            current: desired,
            ready,
            starting: starting.len() as u32,
            capacity_left: None,
            utilization: util.map_or_else(Vec::new, |u| vec![u; ready as usize]),
            sessions: None,
            // The offered load arrives at HAProxy whether or not the replicas keep up.
            demand: Some(Demand {
                rate: load,
                paired_rate: Some(load),
                queue,
                sessions: served / cap,
            }),
            window_open: true,
            opens_in: None,
            last_action,
        };
        let now = instant(t);
        let (new_desired, held, reason) = decider.decide(&inputs, now);
        let action = match new_desired.cmp(&desired) {
            std::cmp::Ordering::Greater => {
                let added = new_desired - desired;
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
                for _ in 0..desired - new_desired {
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
            desired = new_desired;
            report.peak_replicas = report.peak_replicas.max(desired);
        }
        if timeline {
            report.timeline.push(Step {
                t: t as f64 / 1000.0,
                load,
                desired,
                ready: inputs.ready,
                starting: inputs.starting,
                overloaded: load > capacity,
                queue: round_to(queue, 3),
                utilization: util.map(|u| round_to(u, 4)),
                action,
                held,
                reason,
            });
        }
        report.steps += 1;

        // Integrate over [t, next evaluation), split where the load or `ready` changes and
        // where the queue empties.
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
            let capacity = f64::from(ready) * cap;
            if queue > 0.0 && load < capacity {
                // The queue drains at the spare capacity; split where it is empty.
                let drain_ms = (queue / (capacity - load) * 1000.0).ceil();
                if drain_ms < (b - a) as f64 {
                    b = a + (drain_ms as i64).max(1);
                }
            }
            let dt = b - a;
            let secs = dt as f64 / 1000.0;
            replica_ms += f64::from(desired) * dt as f64;
            let need = (load / cap).ceil().max(f64::from(min));
            ideal_ms += need * dt as f64;
            let busy = if load > capacity {
                overload_ms += dt;
                unserved += (load - capacity) * dt as f64;
                // What exceeds capacity queues; what waited longer than the queue timeout
                // is refused, so the queue holds at most that many seconds of excess.
                let limit = (load - capacity) * QUEUE_TIMEOUT;
                queue = (queue + (load - capacity) * secs).min(limit.max(0.0));
                capacity
            } else if queue > 0.0 {
                queue = (queue - (capacity - load) * secs).max(0.0);
                if queue < 1e-9 {
                    queue = 0.0;
                }
                capacity
            } else {
                load
            };
            report.peak_queue = report.peak_queue.max(queue);
            if ready > 0 {
                util_sum += (busy / capacity * 100.0).min(100.0) * dt as f64;
                ready_ms += dt;
            }
            a = b;
        }
    }

    report.duration_seconds = end.saturating_sub(start) as f64 / 1000.0;
    report.replica_minutes = round_to(replica_ms / 60_000.0, 3);
    report.ideal_replica_minutes = round_to(ideal_ms / 60_000.0, 3);
    report.overload_minutes = round_to(minutes(overload_ms), 3);
    report.overload_seconds = round_to(overload_ms as f64 / 1000.0, 3);
    report.unserved_load_minutes = round_to(unserved / 60_000.0, 3);
    report.peak_queue = round_to(report.peak_queue, 3);
    report.mean_utilization = (ready_ms > 0).then(|| round_to(util_sum / ready_ms as f64, 2));
    report
}
