//! [`evaluate`]: the signals, then the holds in their order (window, bounds, missing data,
//! starting replicas, stabilization, bounds, cooldown, capacity, dry run).

use jiff::Timestamp;

use super::rules::{step, target_count};
use super::{Decision, Direction, Held, Inputs, PolicyConfig, PolicyKind, PolicyState, Signal};

/// Evaluates the policy at `now`.
pub fn evaluate(
    cfg: &PolicyConfig,
    state: &mut PolicyState,
    inp: &Inputs,
    now: Timestamp,
) -> Decision {
    let current = inp.current;
    let cooldown_left = inp.last_action.map_or(0.0, |t| {
        cfg.cooldown
            .saturating_sub(now.duration_since(t))
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
        let to = within_bounds(current, cfg);
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
    let mut to = within_bounds(d.wanted, cfg);
    if to > current {
        // Desired never runs ahead of what the fleet can place: a count that cannot be
        // reached would otherwise look like replicas forever "starting".
        let room = inp.capacity_left.unwrap_or(u32::MAX);
        let placeable = current
            .max(inp.ready.saturating_add(inp.starting))
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

/// `n` within `[min, max]`. Total even when `min > max` (a config built without validation):
/// `max` then wins, as `Ord::clamp` would panic.
fn within_bounds(n: u32, cfg: &PolicyConfig) -> u32 {
    n.max(cfg.min).min(cfg.max)
}

fn direction(from: u32, to: u32) -> Direction {
    match to.cmp(&from) {
        std::cmp::Ordering::Greater => Direction::Up,
        std::cmp::Ordering::Less => Direction::Down,
        std::cmp::Ordering::Equal => Direction::Hold,
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
