//! Scaling policy: from samples, state and the clock to a desired count and a reason.
//!
//! Pure: no IO, and the clock is an argument, so tests and the simulator run it in virtual
//! time. Two policies:
//!
//! - `threshold` (the seed's, default): mean utilization above `scale_up_threshold` -> +1,
//!   below `scale_down_threshold` -> -1.
//! - `target` (target tracking, like Kubernetes' HPA): `ceil(replicas x utilization /
//!   target)`, ignoring deviations within `target_tolerance`, scaling down only to the
//!   highest recommendation of the last `scale_down_stabilization` seconds, and moving at
//!   most `max_scale_step` replicas per decision.
//!
//! An optional second signal, HAProxy sessions (current + queued) per replica, is evaluated
//! by the same policy; with several signals the largest desired count wins (up beats hold
//! beats down). Every policy then respects, in this order: the business-hours window (outside
//! it the service is held at `off_hours_replicas`), missing data (never scale down on
//! incomplete samples, nor while replicas are still starting), `[min_replicas, max_replicas]`,
//! `cooldown_period` since the last action (manual ones included; the target policy applies
//! it to scale-down only, as its step cap and stabilization window pace it), and dry run.

use std::collections::VecDeque;
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::config::ServiceConfig;

/// Which policy computes the recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// +1 above the up threshold, -1 below the down threshold.
    Threshold,
    /// Target tracking.
    Target,
}

/// A service's scaling parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyConfig {
    /// Policy.
    pub kind: PolicyKind,
    /// Fewest replicas inside the window.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// Percent; threshold policy.
    pub up_threshold: f64,
    /// Percent; threshold policy. Lower than `up_threshold`.
    pub down_threshold: f64,
    /// No action this long after the last one.
    pub cooldown: SignedDuration,
    /// Percent; target policy.
    pub target: f64,
    /// Relative deviation ignored by the target policy.
    pub tolerance: f64,
    /// Scale-down stabilization window of the target policy.
    pub stabilization: SignedDuration,
    /// Largest step of the target policy.
    pub max_step: u32,
    /// Target sessions (current + queued) per replica; `None`: no session signal.
    pub target_sessions: Option<f64>,
    /// Whether the service scales only inside business hours.
    pub business_hours_only: bool,
    /// Replicas held outside the window.
    pub off_hours: u32,
    /// Journal, change nothing.
    pub dry_run: bool,
}

impl PolicyConfig {
    /// The parameters of a service; `global_dry_run` is `autoscaler.dry_run`.
    #[must_use]
    pub fn from_service(svc: &ServiceConfig, global_dry_run: bool) -> Self {
        Self {
            kind: if svc.scale_policy.as_str() == "target" {
                PolicyKind::Target
            } else {
                PolicyKind::Threshold
            },
            min: *svc.min_replicas,
            max: *svc.max_replicas,
            up_threshold: *svc.scale_up_threshold,
            down_threshold: *svc.scale_down_threshold,
            cooldown: SignedDuration::from_secs(*svc.cooldown_period as i64),
            target: *svc.target_utilization,
            tolerance: *svc.target_tolerance,
            stabilization: SignedDuration::from_secs(*svc.scale_down_stabilization as i64),
            max_step: *svc.max_scale_step,
            target_sessions: svc.target_sessions_per_replica.as_ref().map(|t| t.value),
            business_hours_only: svc.business_hours_only,
            off_hours: svc.off_hours_replicas(),
            dry_run: svc.dry_run.unwrap_or(global_dry_run),
        }
    }
}

/// What the policy sees at one evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Inputs {
    /// The desired count now.
    pub current: u32,
    /// Replicas in rotation (the ones whose samples count).
    pub ready: u32,
    /// Replicas that exist but are not in rotation yet (started, joining).
    pub starting: u32,
    /// Replicas the fleet can still place (free room on up servers); `None`: unlimited.
    pub capacity_left: Option<u32>,
    /// Utilization samples (percent, normalised by the CPU limit) of ready replicas.
    pub utilization: Vec<f64>,
    /// Current + queued sessions of the service's backend, when the signal is configured
    /// and HAProxy answered.
    pub sessions: Option<f64>,
    /// Business-hours window open (`true` when the service is not `business_hours_only`).
    pub window_open: bool,
    /// Last scale action of this service (manual or automatic).
    pub last_action: Option<Timestamp>,
}

impl Inputs {
    /// Mean utilization of the samples, if any.
    #[must_use]
    pub fn mean_utilization(&self) -> Option<f64> {
        (!self.utilization.is_empty())
            .then(|| self.utilization.iter().sum::<f64>() / self.utilization.len() as f64)
    }
}

/// Memory the target policy keeps between evaluations (stabilization window).
#[derive(Clone, Debug, Default)]
pub struct PolicyState {
    recommendations: VecDeque<(Timestamp, u32)>,
}

/// Direction of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Fewer replicas.
    Down,
    /// Same.
    Hold,
    /// More replicas.
    Up,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Down => "down",
            Direction::Hold => "hold",
            Direction::Up => "up",
        })
    }
}

/// Why a wanted change did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    /// Within `cooldown_period` of the last action.
    Cooldown,
    /// Already at `max_replicas`.
    AtMax,
    /// Already at `min_replicas`.
    AtMin,
    /// Samples are missing; no scale-down on incomplete data.
    MissingData,
    /// The target policy's stabilization window holds a higher recommendation.
    Stabilization,
    /// Replicas are still starting: the threshold policy waits for them before another
    /// step, and no policy scales down meanwhile.
    Starting,
    /// No server can take another replica (all down or at `max_containers`).
    NoCapacity,
    /// Dry run: journaled, not applied.
    DryRun,
}

impl Held {
    /// The label used in metrics and the journal.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Held::Cooldown => "cooldown",
            Held::AtMax => "at_max",
            Held::AtMin => "at_min",
            Held::MissingData => "missing_data",
            Held::Stabilization => "stabilization",
            Held::Starting => "starting",
            Held::NoCapacity => "no_capacity",
            Held::DryRun => "dry_run",
        }
    }
}

/// One signal's view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Signal {
    /// `cpu` or `sessions`.
    pub name: &'static str,
    /// The measured value (percent, or sessions per replica).
    pub value: f64,
    /// The threshold(s) or target it was compared with, in words.
    pub against: String,
    /// Count this signal recommends.
    pub recommends: u32,
}

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// The count to apply (equal to `current` when nothing changes).
    pub desired: u32,
    /// The count the policy wanted before holds.
    pub wanted: u32,
    /// Direction of `wanted` relative to `current`.
    pub direction: Direction,
    /// Why `wanted` was not applied, if it was not.
    pub held: Option<Held>,
    /// Which rule decided: `threshold`, `target`, `window_closed`, `window_opened`,
    /// `bounds`, `no_data`.
    pub rule: &'static str,
    /// Human explanation with the numbers.
    pub reason: String,
    /// Signals evaluated.
    pub signals: Vec<Signal>,
    /// Seconds of cooldown left at evaluation time.
    pub cooldown_left: f64,
}

impl Decision {
    /// Whether it changes the desired count.
    #[must_use]
    pub fn acts(&self, current: u32) -> bool {
        self.desired != current
    }

    /// Whether it belongs in the journal: it acts, or wanted to act but was held.
    #[must_use]
    pub fn noteworthy(&self) -> bool {
        self.direction != Direction::Hold || self.held.is_some()
    }
}

/// Evaluates the policy at `now`.
pub fn evaluate(
    cfg: &PolicyConfig,
    state: &mut PolicyState,
    inp: &Inputs,
    now: Timestamp,
) -> Decision {
    let current = inp.current;
    let cooldown_left = inp.last_action.map_or(0.0, |t| {
        (cfg.cooldown - now.duration_since(t))
            .as_secs_f64()
            .max(0.0)
    });
    let mut d = Decision {
        desired: current,
        wanted: current,
        direction: Direction::Hold,
        held: None,
        rule: "threshold",
        reason: String::new(),
        signals: Vec::new(),
        cooldown_left,
    };

    // 1. Business hours: outside the window the count is held at off_hours, at once.
    if cfg.business_hours_only && !inp.window_open {
        d.rule = "window_closed";
        d.wanted = cfg.off_hours;
        d.direction = direction(current, cfg.off_hours);
        d.reason = format!(
            "outside business hours: held at off_hours_replicas {}",
            cfg.off_hours
        );
        return finish_without_cooldown(cfg, d, current);
    }
    // 2. Inside the window (or always): the count must be within the bounds.
    if current < cfg.min || current > cfg.max {
        let to = current.clamp(cfg.min, cfg.max);
        d.rule = if cfg.business_hours_only {
            "window_opened"
        } else {
            "bounds"
        };
        d.wanted = to;
        d.direction = direction(current, to);
        d.reason = format!(
            "{current} replicas is outside [{}, {}]: moving to {to}",
            cfg.min, cfg.max
        );
        return finish_without_cooldown(cfg, d, current);
    }

    // 3. Signals.
    let mean = inp.mean_utilization();
    let missing = inp.ready as usize > inp.utilization.len() || inp.utilization.is_empty();
    let n = inp.utilization.len().max(1) as u32;
    if let Some(u) = mean {
        let recommends = match cfg.kind {
            PolicyKind::Threshold => step(current, u, cfg.up_threshold, cfg.down_threshold),
            PolicyKind::Target => target_count(current, n, u, cfg.target, cfg.tolerance),
        };
        d.signals.push(Signal {
            name: "cpu",
            value: round2(u),
            against: match cfg.kind {
                PolicyKind::Threshold => format!(
                    "down < {}% / up > {}%",
                    cfg.down_threshold, cfg.up_threshold
                ),
                PolicyKind::Target => format!("target {}% ±{}%", cfg.target, cfg.tolerance * 100.0),
            },
            recommends,
        });
    }
    if let (Some(target), Some(total)) = (cfg.target_sessions, inp.sessions) {
        let per = total / f64::from(inp.ready.max(1));
        let recommends = match cfg.kind {
            PolicyKind::Threshold => {
                // Same shape as the CPU thresholds: above target -> up; below the target
                // scaled by down/up -> down.
                let down = target * cfg.down_threshold / cfg.up_threshold;
                step(current, per, target, down)
            }
            PolicyKind::Target => {
                target_count(current, inp.ready.max(1), per, target, cfg.tolerance)
            }
        };
        d.signals.push(Signal {
            name: "sessions",
            value: round2(per),
            against: format!("target {target} per replica"),
            recommends,
        });
    }
    d.rule = match cfg.kind {
        PolicyKind::Threshold => "threshold",
        PolicyKind::Target => "target",
    };
    let Some(raw) = d.signals.iter().map(|s| s.recommends).max() else {
        d.rule = "no_data";
        d.held = (inp.ready > 0).then_some(Held::MissingData);
        d.reason = "no samples: holding".to_owned();
        return d;
    };

    // Target policy: cap the step, then stabilize scale-down.
    let mut wanted = raw;
    if cfg.kind == PolicyKind::Target {
        let step = cfg.max_step.max(1);
        wanted = wanted.clamp(current.saturating_sub(step), current.saturating_add(step));
        state.recommendations.push_back((now, wanted));
        while state
            .recommendations
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > cfg.stabilization)
        {
            state.recommendations.pop_front();
        }
    }
    d.wanted = wanted;
    d.direction = direction(current, wanted);
    d.reason = describe(&d.signals, current, wanted);

    if d.direction == Direction::Down && missing {
        d.held = Some(Held::MissingData);
        d.reason.push_str(&format!(
            "; held: {} of {} ready replicas have no sample",
            inp.ready as usize - inp.utilization.len().min(inp.ready as usize),
            inp.ready
        ));
        return d;
    }
    let starting = inp.starting > 0;
    let pauses = d.direction == Direction::Down
        || (d.direction == Direction::Up && cfg.kind == PolicyKind::Threshold);
    if starting && pauses {
        d.held = Some(Held::Starting);
        d.reason.push_str(&format!(
            "; held: {} replica(s) still starting",
            inp.starting
        ));
        return d;
    }
    if d.direction == Direction::Down && cfg.kind == PolicyKind::Target {
        let highest = state
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(wanted);
        if highest >= current {
            d.held = Some(Held::Stabilization);
            d.reason.push_str(&format!(
                "; held: a recommendation of {highest} within the last {}s stabilization window",
                cfg.stabilization.as_secs()
            ));
            return d;
        }
        if highest > wanted {
            d.reason.push_str(&format!(" (stabilized to {highest})"));
            d.wanted = highest;
        }
    }
    if d.direction == Direction::Up && current >= cfg.max {
        d.held = Some(Held::AtMax);
        d.reason
            .push_str(&format!("; held: at max_replicas {}", cfg.max));
        return d;
    }
    if d.direction == Direction::Down && current <= cfg.min {
        d.held = Some(Held::AtMin);
        d.reason
            .push_str(&format!("; held: at min_replicas {}", cfg.min));
        return d;
    }
    // The threshold policy holds every change during the cooldown (the seed's rule); the
    // target policy scales up at once (its step cap bounds it) and holds only scale-down.
    let cooled = cfg.kind == PolicyKind::Threshold || d.direction == Direction::Down;
    if d.direction != Direction::Hold && cooled && cooldown_left > 0.0 {
        d.held = Some(Held::Cooldown);
        d.reason
            .push_str(&format!("; held: cooldown, {cooldown_left:.0}s left"));
        return d;
    }
    if d.direction == Direction::Hold {
        return d;
    }
    let mut to = d.wanted.clamp(cfg.min, cfg.max);
    if to > current {
        // Desired never runs ahead of what the fleet can place: a count that cannot be
        // reached would otherwise look like replicas forever "starting".
        let room = inp.capacity_left.unwrap_or(u32::MAX);
        let placeable = current
            .max(inp.ready + inp.starting)
            .saturating_add(room)
            .min(to);
        if placeable <= current {
            d.held = Some(Held::NoCapacity);
            d.reason
                .push_str("; held: no server can take another replica (down or at max_containers)");
            return d;
        }
        if placeable < to {
            d.reason
                .push_str(&format!(" (capped to {placeable}: no room for more)"));
            to = placeable;
        }
    }
    if cfg.dry_run {
        d.held = Some(Held::DryRun);
        d.reason
            .push_str(&format!("; dry run: would set {current} -> {to}"));
        return d;
    }
    d.desired = to;
    d
}

/// Applies dry run to a decision that ignores the cooldown (window edges, bounds).
fn finish_without_cooldown(cfg: &PolicyConfig, mut d: Decision, current: u32) -> Decision {
    if d.direction == Direction::Hold {
        return d;
    }
    if cfg.dry_run {
        d.held = Some(Held::DryRun);
        d.reason
            .push_str(&format!("; dry run: would set {current} -> {}", d.wanted));
    } else {
        d.desired = d.wanted;
    }
    d
}

fn direction(from: u32, to: u32) -> Direction {
    match to.cmp(&from) {
        std::cmp::Ordering::Greater => Direction::Up,
        std::cmp::Ordering::Less => Direction::Down,
        std::cmp::Ordering::Equal => Direction::Hold,
    }
}

/// The seed's rule: one step past a threshold.
fn step(current: u32, value: f64, up: f64, down: f64) -> u32 {
    if value > up {
        current + 1
    } else if value < down {
        current.saturating_sub(1)
    } else {
        current
    }
}

/// Target tracking: `ceil(n x value / target)`, or `current` within the tolerance.
fn target_count(current: u32, n: u32, value: f64, target: f64, tolerance: f64) -> u32 {
    let ratio = value / target;
    if (ratio - 1.0).abs() <= tolerance {
        return current;
    }
    let want = (f64::from(n) * ratio).ceil();
    if want.is_finite() && want >= 0.0 {
        want.min(f64::from(u32::MAX)) as u32
    } else {
        current
    }
}

fn describe(signals: &[Signal], current: u32, wanted: u32) -> String {
    let parts: Vec<String> = signals
        .iter()
        .map(|s| format!("{} {} ({}) -> {}", s.name, s.value, s.against, s.recommends))
        .collect();
    let verdict = match wanted.cmp(&current) {
        std::cmp::Ordering::Greater => format!("scale up {current} -> {wanted}"),
        std::cmp::Ordering::Less => format!("scale down {current} -> {wanted}"),
        std::cmp::Ordering::Equal => format!("hold at {current}"),
    };
    format!("{verdict}: {}", parts.join(", "))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
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
            tolerance: 0.1,
            stabilization: SignedDuration::from_secs(300),
            max_step: 4,
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
            window_open: true,
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
                window_open,
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
}
