//! [`evaluate`]: the signals, then the holds in their order (window, bounds, missing data,
//! starting replicas, stabilization, bounds, cooldown, capacity, dry run).

use jiff::Timestamp;

use super::adaptive::{demand_rate, needed};
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
        if let (true, Some(secs)) = (cfg.business_hours_only, inp.opens_in) {
            d.rule = "prewarm";
            d.reason = format!(
                "pre-warming: the business-hours window opens in {secs:.0}s, about as long as \
                 a replica takes to start: moving {current} -> {to} so they are ready then"
            );
        }
        return finish_without_cooldown(cfg, d, current);
    }

    // What the adaptive policy learns from this sample, whatever it decides.
    if cfg.kind == PolicyKind::Adaptive {
        if let Some(demand) = &inp.demand {
            state
                .learned
                .observe(demand, inp.ready, inp.starting, &inp.utilization, now);
        }
    }

    // 3. Signals.
    let mean = inp.mean_utilization();
    let missing = inp.ready as usize > inp.utilization.len() || inp.utilization.is_empty();
    let n = inp.utilization.len().max(1) as u32;
    let learned = (cfg.kind == PolicyKind::Adaptive)
        .then(|| state.learned.capacity())
        .flatten();
    // The adaptive policy sizes from demand once it knows the capacity per replica.
    let from_demand = match (learned, &inp.demand) {
        (Some(capacity), Some(demand)) => {
            let per = capacity * cfg.adaptive_target / 100.0;
            let want = needed(demand, per);
            // Within the tolerance of the current count's capacity at the target: hold
            // (as target tracking does), so noise does not move the count.
            let ratio = demand_rate(demand) / (f64::from(current) * per);
            let recommends = if current > 0 && (ratio - 1.0).abs() <= cfg.tolerance {
                current
            } else {
                want
            };
            d.signals.push(Signal {
                name: "demand",
                value: round2(demand.rate),
                against: format!(
                    "{} req/s per replica at {}% (learned), {} queued",
                    round2(per),
                    cfg.adaptive_target,
                    round2(demand.queue)
                ),
                recommends,
            });
            true
        }
        _ => false,
    };
    if let (Some(u), false) = (mean, from_demand) {
        let recommends = match cfg.kind {
            PolicyKind::Threshold => step(current, u, cfg.up_threshold, cfg.down_threshold),
            PolicyKind::Target | PolicyKind::Adaptive => {
                target_count(current, n, u, cfg.target, cfg.tolerance)
            }
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
                PolicyKind::Adaptive => format!(
                    "target {}% ±{}%, no learned capacity or no request rate yet",
                    cfg.target,
                    cfg.tolerance * 100.0
                ),
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
            PolicyKind::Target | PolicyKind::Adaptive => {
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
        PolicyKind::Adaptive => "adaptive",
    };
    let Some(raw) = d.signals.iter().map(|s| s.recommends).max() else {
        d.rule = "no_data";
        d.held = (inp.ready > 0).then_some(Held::MissingData);
        d.reason = "no samples: holding".to_owned();
        return d;
    };

    // Target and adaptive: the stabilization window keeps the unclamped recommendations;
    // a scale-down goes only as far as the highest of them.
    let tracking = cfg.kind != PolicyKind::Threshold;
    let mut notes = String::new();
    let mut highest = raw;
    if tracking {
        state.recommendations.push_back((now, raw));
        while state
            .recommendations
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > cfg.stabilization)
        {
            state.recommendations.pop_front();
        }
        highest = state
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(raw);
    }
    d.wanted = raw;
    d.direction = direction(current, raw);
    // A held verdict names the count within the bounds (unless that is no change at all).
    let bounded = raw.clamp(cfg.min, cfg.max);
    d.reason = describe(
        &d.signals,
        current,
        if bounded == current { raw } else { bounded },
    );

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
    if d.direction == Direction::Down && tracking {
        if highest >= current {
            d.held = Some(Held::Stabilization);
            d.reason.push_str(&format!(
                "; held: a recommendation of {highest} within the last {}s stabilization window",
                cfg.stabilization.as_secs()
            ));
            return d;
        }
        if highest > raw {
            notes.push_str(&format!(
                "; stabilized to {highest}, the highest recommendation of the last {}s",
                cfg.stabilization.as_secs()
            ));
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
    // target and adaptive policies scale up at once and hold only scale-down.
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
    // Step limits: target tracking (and the adaptive policy while it falls back to it)
    // adds at most max_scale_step; scale-down is limited only by max_scale_down_step.
    let mut to = d.wanted;
    if to > current && tracking && !from_demand {
        let cap = current.saturating_add(cfg.max_step.max(1));
        if to > cap {
            notes.push_str(&format!("; limited by max_scale_step {}", cfg.max_step));
            to = cap;
        }
    }
    if to < current && tracking {
        if let Some(s) = cfg.max_down_step {
            let floor = current.saturating_sub(s.max(1));
            if to < floor {
                notes.push_str(&format!("; limited by max_scale_down_step {s}"));
                to = floor;
            }
        }
    }
    if to > cfg.max {
        notes.push_str(&format!("; limited by max_replicas {}", cfg.max));
        to = cfg.max;
    }
    if to < cfg.min {
        notes.push_str(&format!("; limited by min_replicas {}", cfg.min));
        to = cfg.min;
    }
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
            notes.push_str(&format!("; capped to {placeable}: no room for more"));
            to = placeable;
        }
    }
    // The verdict names the count actually applied; the notes say what limited it.
    d.reason = describe(&d.signals, current, to);
    d.reason.push_str(&notes);
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
