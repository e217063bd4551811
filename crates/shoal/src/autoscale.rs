//! The autoscaler: the IO shell around [`crate::policy`].
//!
//! One task per service. Every `autoscaler.check_interval` (and exactly at each edge of the
//! business-hours window) it samples CPU of the service's ready replicas from the Docker
//! stats API (all servers at once, each call bounded), optionally HAProxy's sessions and
//! queue for the backend, evaluates the policy, journals every decision that acts or is
//! held (a hold once when it starts or its reason changes; metrics count every one), and
//! applies a new desired count.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use jiff::Timestamp;
use serde_json::json;

use crate::config::{Config, ServiceConfig};
use crate::context::Context;
use crate::engine::ContainerState;
use crate::journal::{Action, NewEvent, SavedState};
use crate::lb;
use crate::policy::{self, Direction, Inputs, PolicyConfig};
use crate::schedule::WindowState;
use crate::service::{Phase, ReplicaSample, ServiceRuntime, Trigger};
use crate::timings;

/// Seconds of cooldown left at `now` for a service whose last action was `last_action`.
#[must_use]
pub fn cooldown_left(svc: &ServiceConfig, last_action: Option<Timestamp>, now: Timestamp) -> u64 {
    let Some(t) = last_action else { return 0 };
    let elapsed = u64::try_from(now.duration_since(t).as_secs()).unwrap_or(0);
    (*svc.cooldown_period).saturating_sub(elapsed)
}

/// The business-hours window state of a service (`None`: it scales at any time).
#[must_use]
pub fn window_state(cfg: &Config, svc: &ServiceConfig, now: Timestamp) -> Option<WindowState> {
    if !svc.business_hours_only {
        return None;
    }
    cfg.autoscaler
        .business_hours
        .window()
        .ok()
        .map(|w| w.state(now))
}

/// The autoscaler of one service: a task that samples, evaluates [`crate::policy`],
/// journals and applies, every `check_interval` and exactly at window edges.
#[derive(Debug)]
pub struct Autoscaler {
    ctx: Arc<Context>,
    rt: Arc<ServiceRuntime>,
    /// The backend's request counter at the previous evaluation, for the request rate.
    last_requests: std::sync::Mutex<Option<(Timestamp, u64)>>,
    /// When the learned state was last saved to the journal, and its estimate then.
    last_saved: std::sync::Mutex<Option<(Timestamp, Option<f64>)>>,
}

/// The short-window rate is steady when within this fraction of the interval's.
const STEADY: f64 = 0.25;

/// From the short window's rate (the CPU's) and the whole interval's: the rate to size for
/// (the larger), the rate to learn from (the short one, when the two agree within
/// [`STEADY`]), and whether the rate is rising (the short one clearly higher).
fn classify(short: f64, long: f64) -> (f64, Option<f64>, bool) {
    let steady = (short - long).abs() <= STEADY * short.max(long);
    (
        short.max(long),
        steady.then_some(short),
        short > long * (1.0 + STEADY),
    )
}

/// Requests per second between two readings of the counter; `None` when it went backwards
/// (HAProxy restarted) or no time passed.
fn per_second(from: u64, t0: Timestamp, to: u64, t1: Timestamp) -> Option<f64> {
    let secs = t1.duration_since(t0).as_secs_f64();
    (to >= from && secs > 0.0).then(|| (to - from) as f64 / secs)
}

/// The learned state is saved when its estimate moves by more than this fraction, or
/// [`LEARNED_SAVE_EVERY`] after the last save when it has new observations.
const LEARNED_SAVE_CHANGE: f64 = 0.01;
const LEARNED_SAVE_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

impl Autoscaler {
    /// The autoscaler of `rt`'s service.
    #[must_use]
    pub fn new(ctx: Arc<Context>, rt: Arc<ServiceRuntime>) -> Self {
        Self {
            ctx,
            rt,
            last_requests: std::sync::Mutex::new(None),
            last_saved: std::sync::Mutex::new(None),
        }
    }

    /// Runs until the service's runtime is replaced or forgotten.
    pub async fn run(self) {
        // Let the reconcile loop adopt what runs before the first evaluation.
        tokio::time::sleep(timings::AUTOSCALER_FIRST_DELAY).await;
        loop {
            // It lives as long as its service runtime: a service removed and added back
            // while still draining keeps (and needs) this task.
            if !self.ctx.is_current(&self.rt) {
                return;
            }
            let cfg = self.ctx.config();
            let removed = self.rt.update(|st| st.removed);
            let Some(svc) = cfg.service(&self.rt.name).filter(|_| !removed).cloned() else {
                tokio::time::sleep(timings::AUTOSCALER_IDLE_POLL).await;
                continue;
            };
            let now = self.ctx.clock.now();
            // A panic in one evaluation is journaled and the next one runs as usual.
            if let Err(panic) = AssertUnwindSafe(self.evaluate(&cfg, &svc, now))
                .catch_unwind()
                .await
            {
                let what = crate::reconcile::runner::panic_message(panic.as_ref());
                tracing::error!(
                    service = self.rt.name,
                    "autoscaler evaluation panicked: {what}"
                );
                self.ctx.journal.record(NewEvent {
                    service: &self.rt.name,
                    action: Action::Error,
                    reason: format!("autoscaler evaluation failed unexpectedly ({what})"),
                    ..Default::default()
                });
            }
            let lead = prewarm_lead(&svc, &self.rt.update(|st| st.start_seconds.clone()));
            tokio::time::sleep(next_wait(&cfg, &svc, self.ctx.clock.now(), lead)).await;
        }
    }

    /// While an update (pulls, rollout or rollback) runs, the autoscaler holds: the count
    /// stays as it was, so the rollout's surge and floor arithmetic stands; the first
    /// evaluation after it ends decides as usual. The hold is journaled once.
    fn held_by_update(&self) -> bool {
        let (held, first) = self.rt.update(|st| {
            let held =
                st.rollout.is_some() || st.update.as_ref().is_some_and(|u| u.phase.running());
            let key = "update in progress";
            let first = held && st.last_hold.as_deref() != Some(key);
            if first {
                st.last_hold = Some(key.to_owned());
            }
            (held, first)
        });
        if first {
            self.ctx.journal.record(crate::journal::NewEvent {
                service: &self.rt.name,
                action: Action::ScaleHeld,
                reason: "autoscaler: held while an update runs; it resumes when the update ends"
                    .into(),
                ..Default::default()
            });
        }
        held
    }

    /// One evaluation at `now`: sample, decide, journal, apply.
    pub async fn evaluate(&self, cfg: &Config, svc: &ServiceConfig, now: Timestamp) {
        let rt = &self.rt;
        let pcfg = PolicyConfig::from_service(svc, cfg.autoscaler.dry_run);
        let window = window_state(cfg, svc, now);
        // Pre-warming: a closed window that opens within a replica's start time counts as
        // open, so the replicas are ready at the opening.
        let lead = prewarm_lead(svc, &rt.update(|st| st.start_seconds.clone()));
        let opens_in = window
            .as_ref()
            .filter(|w| w.opens_within(now, lead))
            .and_then(|w| w.next_change)
            .map(|n| now.duration_until(n).as_secs_f64());
        let window_open = window.as_ref().is_none_or(|w| w.open) || opens_in.is_some();

        let (adopted, ready, starting) = rt.update(|st| {
            let ready: Vec<_> = st
                .replicas
                .values()
                .filter(|r| r.phase == Phase::Ready && r.container_state == ContainerState::Running)
                .map(|r| (r.id.clone(), r.server.clone()))
                .collect();
            let starting = st
                .replicas
                .values()
                .filter(|r| matches!(r.phase, Phase::Starting | Phase::Joining))
                .count() as u32;
            (st.adopted, ready, starting)
        });
        if !adopted || self.held_by_update() {
            return;
        }
        // A service that sleeps at zero (or was woken at night) is left to the activator.
        if svc.sleeps()
            && rt.update(|st| {
                crate::activator::sleep::autoscaler_holds(
                    &mut st.sleep,
                    st.desired,
                    svc.idle_to_zero_after.is_some(),
                    window_open,
                )
            })
        {
            return;
        }
        let capacity_left: u32 = self
            .ctx
            .fleet
            .loads(&Default::default())
            .iter()
            .filter(|l| l.up)
            .map(|l| l.max_containers.saturating_sub(l.containers))
            .sum();
        // Samples only when the window is open: outside it the count is fixed. HAProxy's
        // counters (the demand, for every policy: journaled, and what adaptive sizes from)
        // are read just before and just after the CPU samples, so the request rate over
        // that window is paired with the CPU of the same moment.
        let wants_lb = window_open;
        let proxies = (lb::frontend_name(&rt.name), lb::backend_name(&rt.name));
        let before = if wants_lb {
            self.counters(&proxies).await
        } else {
            None
        };
        let sampled_at = self.ctx.clock.now();
        let samples = if window_open {
            self.sample(cfg, &ready).await
        } else {
            Vec::new()
        };
        let after = if wants_lb {
            self.counters(&proxies).await
        } else {
            None
        };
        let cpus = svc.cpus.as_ref().map(|c| c.value);
        let utilization: Vec<f64> = samples
            .iter()
            .map(|(_, s)| cpus.map_or(s.cpu_percent, |n| s.cpu_percent / n))
            .collect();
        let memory: Vec<u64> = samples.iter().map(|(_, s)| s.memory_bytes).collect();
        let sessions = after
            .filter(|_| pcfg.target_sessions.is_some())
            .map(|c| c.sessions.saturating_add(c.queue) as f64);
        let demand = match (before, after) {
            (Some(b), Some(a)) => {
                let adaptive = pcfg.kind == policy::PolicyKind::Adaptive;
                self.demand(&proxies, b, sampled_at, a, self.ctx.clock.now(), adaptive)
                    .await
            }
            _ => {
                self.swap_last_requests(None);
                None
            }
        };

        let memory_sum: Option<u64> = (!memory.is_empty()).then(|| memory.iter().sum());
        let revision = (pcfg.kind == policy::PolicyKind::Adaptive)
            .then(|| crate::engine::ContainerSpec::from_service(svc).revision);
        let outcome = rt.update(|st| {
            if let Some(rev) = &revision {
                if st.policy.learned.follow_revision(rev) {
                    tracing::info!(
                        service = rt.name,
                        revision = rev,
                        "the service's spec changed: the adaptive policy learns its capacity again"
                    );
                }
            }
            let inputs = Inputs {
                current: st.desired,
                ready: ready.len() as u32,
                starting,
                capacity_left: Some(capacity_left),
                utilization,
                sessions,
                demand,
                window_open,
                opens_in,
                last_action: st.last_action,
            };
            let decision = policy::evaluate(&pcfg, &mut st.policy, &inputs, now);
            st.utilization = inputs.mean_utilization();
            st.memory_bytes = memory_sum;
            st.replica_samples = samples.into_iter().collect();
            let before = st.desired;
            // Checked again here, under the same lock as the change: the service may have
            // gone to sleep while the samples were taken.
            let asleep = svc.sleeps()
                && crate::activator::sleep::autoscaler_holds(
                    &mut st.sleep,
                    before,
                    svc.idle_to_zero_after.is_some(),
                    window_open,
                );
            let acts = decision.acts(before) && !asleep;
            if acts {
                st.desired = decision.desired;
                st.last_action = Some(now);
                let dir = if decision.desired > before {
                    "up"
                } else {
                    "down"
                };
                let n = st
                    .scale_actions
                    .entry((dir.to_owned(), Trigger::Autoscaler.as_str().to_owned()))
                    .or_default();
                *n = n.saturating_add(1);
            }
            if decision.noteworthy() {
                let reason_key = decision
                    .held
                    .map_or(decision.rule, crate::policy::Held::as_str)
                    .to_owned();
                let n = st
                    .decisions
                    .entry((decision.direction.to_string(), reason_key))
                    .or_default();
                *n = n.saturating_add(1);
            }
            // A hold is journaled when it starts or its reason changes, not at every
            // evaluation (an idle service at min_replicas would write one every interval).
            let hold_key = format!(
                "{}/{}/{}",
                decision.direction,
                decision.held.map_or("", crate::policy::Held::as_str),
                decision.rule
            );
            let journal_it = acts
                || (decision.noteworthy() && st.last_hold.as_deref() != Some(hold_key.as_str()));
            st.last_hold = (!acts && decision.noteworthy()).then_some(hold_key);
            st.last_decision = Some(decision.clone());
            let learned =
                (pcfg.kind == policy::PolicyKind::Adaptive).then(|| st.policy.learned.clone());
            (inputs, decision, before, acts, journal_it, learned)
        });
        let (inputs, decision, before, acts, journal_it, learned) = outcome;
        if let Some(l) = &learned {
            self.save_learned(l, now);
        }
        self.ctx.metrics.record_point(
            &rt.name,
            crate::metrics::Point {
                at: now,
                desired: rt.update(|st| st.desired),
                ready: inputs.ready,
                utilization: inputs.mean_utilization(),
            },
        );

        if acts {
            self.ctx.journal.save_service_state(
                &rt.name,
                &SavedState {
                    last_action: Some(now),
                    desired: Some(decision.desired),
                },
            );
            rt.wake.notify_one();
        }
        if journal_it {
            let action = match (acts, decision.direction) {
                (true, Direction::Up) => Action::ScaleUp,
                (true, _) => Action::ScaleDown,
                (false, _) => Action::ScaleHeld,
            };
            let details = json!({
                "policy": pcfg.kind,
                "rule": decision.rule,
                "held": decision.held,
                "direction": decision.direction,
                "current": inputs.current,
                "wanted": decision.wanted,
                "desired": decision.desired,
                "ready": inputs.ready,
                "utilization": inputs.mean_utilization().map(|u| (u * 100.0).round() / 100.0),
                "samples": inputs.utilization.len(),
                "memory_bytes": memory_sum,
                "sessions": inputs.sessions,
                "signals": decision.signals,
                "thresholds": {
                    "scale_up": pcfg.up_threshold,
                    "scale_down": pcfg.down_threshold,
                    "target": (pcfg.kind != policy::PolicyKind::Threshold).then_some(pcfg.target),
                    "target_sessions": pcfg.target_sessions,
                },
                "min_replicas": pcfg.min,
                "max_replicas": pcfg.max,
                "cooldown_left_seconds": decision.cooldown_left.round(),
                "window": window,
                "dry_run": pcfg.dry_run,
                "demand": inputs.demand,
                "learned": learned.as_ref().map(|l| json!({
                    "requests_per_second_at_full": l.capacity(),
                    "requests_per_second_at_target":
                        l.capacity().map(|c| c * pcfg.adaptive_target / 100.0),
                    "adaptive_target_utilization": pcfg.adaptive_target,
                    "observations": l.observations.len(),
                })),
            });
            self.ctx.journal.record(NewEvent {
                service: &rt.name,
                action,
                reason: format!("autoscaler: {}", decision.reason),
                desired: Some((before, decision.desired)),
                details: Some(details),
                ..Default::default()
            });
        }
    }

    /// Saves what the adaptive policy learned when it changed enough (see
    /// [`LEARNED_SAVE_CHANGE`]).
    fn save_learned(&self, l: &policy::Learned, now: Timestamp) {
        let mut last = self
            .last_saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cap = l.capacity();
        let due = match *last {
            None => l.updated.is_some(),
            Some((at, saved)) => {
                let moved = match (saved, cap) {
                    (Some(a), Some(b)) => (b - a).abs() > a.abs() * LEARNED_SAVE_CHANGE,
                    (a, b) => a.is_some() != b.is_some(),
                };
                let newer = l.updated.is_some_and(|u| u > at);
                moved || (newer && now.duration_since(at) >= LEARNED_SAVE_EVERY)
            }
        };
        if due {
            self.ctx.journal.save_learned(&self.rt.name, l);
            *last = Some((now, cap));
        }
    }

    /// The backend's counters, or `None` when HAProxy does not answer (the policy then
    /// falls back to CPU).
    async fn counters(
        &self,
        (frontend, backend): &(String, String),
    ) -> Option<crate::ports::BackendCounters> {
        match self.ctx.lb().backend_counters(frontend, backend).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(
                    service = self.rt.name,
                    "reading HAProxy's counters failed: {e}"
                );
                None
            }
        }
    }

    /// The demand from two readings of the counters around the CPU samples (`b` at `tb`,
    /// `a` at `ta`) and the reading of the previous evaluation. The short window (the
    /// CPU's) sees a step at once; the whole interval is smoother. When the short window is
    /// clearly above the interval (the rate is rising: a step may have landed inside it and
    /// been seen only in part) one more second is read, so a step is sized for in one
    /// decision (only when `confirm`: for the adaptive policy, the one that sizes from it).
    /// `None` on the first evaluation and after a counter reset (HAProxy restarted).
    async fn demand(
        &self,
        proxies: &(String, String),
        b: crate::ports::BackendCounters,
        tb: Timestamp,
        a: crate::ports::BackendCounters,
        ta: Timestamp,
        confirm: bool,
    ) -> Option<policy::Demand> {
        let previous = self.swap_last_requests(Some((ta, a.requests)));
        let short = per_second(b.requests, tb, a.requests, ta)?;
        let long = previous.and_then(|(t0, r0)| per_second(r0, t0, a.requests, ta))?;
        let (rate, paired_rate, rising) = classify(short, long);
        let mut demand = policy::Demand {
            rate,
            paired_rate,
            queue: a.queue as f64,
            sessions: a.sessions as f64,
        };
        if confirm && rising {
            tokio::time::sleep(timings::RATE_CONFIRM).await;
            let tc = self.ctx.clock.now();
            if let Some(c) = self.counters(proxies).await {
                self.swap_last_requests(Some((tc, c.requests)));
                if let Some(confirm) = per_second(a.requests, ta, c.requests, tc) {
                    demand.rate = demand.rate.max(confirm);
                    demand.queue = c.queue as f64;
                    demand.sessions = c.sessions as f64;
                }
            }
        }
        Some(demand)
    }

    /// Replaces the counter reading of the previous evaluation, returning it.
    fn swap_last_requests(&self, to: Option<(Timestamp, u64)>) -> Option<(Timestamp, u64)> {
        let mut last = self
            .last_requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::replace(&mut *last, to)
    }

    /// CPU (percent of one core) and memory (bytes) of each ready replica that answered,
    /// by container id; missing samples are simply absent.
    async fn sample(
        &self,
        cfg: &Config,
        ready: &[(String, String)],
    ) -> Vec<(String, ReplicaSample)> {
        // Docker's stats take about a second (two readings); a server slower than this
        // bound just has no sample this time, and delays nobody.
        let (low, high) = timings::STATS_BOUND;
        let bound = (cfg.check_interval() / 2).clamp(low, high);
        use futures_util::StreamExt;
        let calls: Vec<_> = ready
            .iter()
            .map(|(id, server)| {
                let engine = self.ctx.fleet.get(server).and_then(|h| h.engine());
                async move {
                    let engine = engine?;
                    match tokio::time::timeout(bound, engine.stats(id)).await {
                        Ok(Ok((cpu_percent, memory_bytes))) => Some((
                            id.clone(),
                            ReplicaSample {
                                cpu_percent,
                                memory_bytes,
                            },
                        )),
                        _ => None,
                    }
                }
            })
            .collect();
        let samples: Vec<_> = futures_util::stream::iter(calls)
            .buffer_unordered(timings::FANOUT)
            .collect()
            .await;
        samples.into_iter().flatten().collect()
    }
}

/// How long before the window opens replicas are started: the longest of the last few
/// observed starts of this service (creation to ready), or, before any was observed, the
/// health check's `start_period` (the longest a start may take); plus the edge slack.
#[must_use]
pub fn prewarm_lead(
    svc: &ServiceConfig,
    observed: &std::collections::VecDeque<f64>,
) -> jiff::SignedDuration {
    let secs = observed
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        .unwrap_or(*svc.health_check.start_period as f64);
    jiff::SignedDuration::try_from_secs_f64(secs)
        .unwrap_or(jiff::SignedDuration::ZERO)
        .saturating_add(
            jiff::SignedDuration::try_from(timings::WINDOW_EDGE_SLACK).unwrap_or_default(),
        )
}

/// Time until the next evaluation: `check_interval`, or until just after the next window
/// edge (or the start of pre-warming, `lead` before an opening) when that comes first, so
/// the change there happens at once.
fn next_wait(
    cfg: &Config,
    svc: &ServiceConfig,
    now: Timestamp,
    lead: jiff::SignedDuration,
) -> Duration {
    let wait = cfg.check_interval();
    let Some(w) = window_state(cfg, svc, now) else {
        return wait;
    };
    let until = |t: Timestamp| Duration::try_from(now.duration_until(t)).ok();
    let edge = w
        .next_change
        .and_then(until)
        .map(|d| d.saturating_add(timings::WINDOW_EDGE_SLACK));
    let prewarm = w.prewarm_at(lead).filter(|&t| t > now).and_then(until);
    [Some(wait), edge, prewarm]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(start_period: u64) -> Config {
        let text = format!(
            "load_balancer:\n  stats_port: 8404\nservers:\n  - host: 127.0.0.1\n    name: local\n    docker_host: unix:///var/run/docker.sock\nservices:\n  web:\n    image: img\n    port: 8080\n    business_hours_only: true\n    health_check:\n      start_period: {start_period}\nautoscaler:\n  check_interval: 30\n  business_hours:\n    start: \"09:00\"\n    end: \"17:00\"\n    timezone: UTC\n"
        );
        Config::parse(&text, "t.yaml").unwrap()
    }

    #[test]
    fn request_rates_from_counter_readings() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        assert_eq!(per_second(100, t(0), 160, t(2)), Some(30.0));
        assert_eq!(per_second(100, t(0), 90, t(2)), None, "HAProxy restarted");
        assert_eq!(per_second(100, t(2), 160, t(2)), None, "no time passed");
        // Steady: sized and learned from; the larger rate is sized for.
        assert_eq!(classify(10.0, 9.0), (10.0, Some(10.0), false));
        // Rising (a step inside the window): not learned from, confirmed.
        assert_eq!(classify(30.0, 12.0), (30.0, None, true));
        // Falling: sized for the interval's rate until the window agrees.
        assert_eq!(classify(2.0, 10.0), (10.0, None, false));
    }

    #[test]
    fn prewarm_lead_is_the_longest_observed_start_else_the_start_period() {
        let cfg = config(60);
        let svc = &cfg.services["web"];
        let slack = jiff::SignedDuration::try_from(timings::WINDOW_EDGE_SLACK).unwrap();
        let none = std::collections::VecDeque::new();
        assert_eq!(
            prewarm_lead(svc, &none),
            jiff::SignedDuration::from_secs(60) + slack
        );
        let seen: std::collections::VecDeque<f64> = [4.0, 9.0, 6.0].into();
        assert_eq!(
            prewarm_lead(svc, &seen),
            jiff::SignedDuration::from_secs(9) + slack
        );
    }

    #[test]
    fn the_autoscaler_wakes_when_prewarming_begins() {
        let cfg = config(60);
        let svc = &cfg.services["web"];
        let lead = jiff::SignedDuration::from_secs(20);
        // 08:59:30 UTC: the window opens in 30 s; pre-warming begins in 10 s, before the
        // 30 s check interval and the edge.
        let now: Timestamp = "2026-01-15T08:59:30Z".parse().unwrap();
        assert_eq!(next_wait(&cfg, svc, now, lead), Duration::from_secs(10));
        // Within the lead already: the next edge (plus slack) or the interval.
        let now: Timestamp = "2026-01-15T08:59:50Z".parse().unwrap();
        assert_eq!(
            next_wait(&cfg, svc, now, lead),
            Duration::from_secs(10) + timings::WINDOW_EDGE_SLACK
        );
    }
}
