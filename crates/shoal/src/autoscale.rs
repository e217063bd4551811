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
}

impl Autoscaler {
    /// The autoscaler of `rt`'s service.
    #[must_use]
    pub fn new(ctx: Arc<Context>, rt: Arc<ServiceRuntime>) -> Self {
        Self { ctx, rt }
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
            tokio::time::sleep(next_wait(&cfg, &svc, self.ctx.clock.now())).await;
        }
    }

    /// One evaluation at `now`: sample, decide, journal, apply.
    pub async fn evaluate(&self, cfg: &Config, svc: &ServiceConfig, now: Timestamp) {
        let rt = &self.rt;
        let pcfg = PolicyConfig::from_service(svc, cfg.autoscaler.dry_run);
        let window = window_state(cfg, svc, now);
        let window_open = window.as_ref().is_none_or(|w| w.open);

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
        if !adopted {
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
        // Samples only when the window is open: outside it the count is fixed.
        let samples = if window_open {
            self.sample(cfg, &ready).await
        } else {
            Vec::new()
        };
        let cpus = svc.cpus.as_ref().map(|c| c.value);
        let utilization: Vec<f64> = samples
            .iter()
            .map(|(_, s)| cpus.map_or(s.cpu_percent, |n| s.cpu_percent / n))
            .collect();
        let memory: Vec<u64> = samples.iter().map(|(_, s)| s.memory_bytes).collect();
        let sessions = if window_open && pcfg.target_sessions.is_some() {
            self.ctx
                .lb()
                .backend_load(&lb::backend_name(&rt.name))
                .await
                .ok()
                .flatten()
        } else {
            None
        };

        let memory_sum: Option<u64> = (!memory.is_empty()).then(|| memory.iter().sum());
        let outcome = rt.update(|st| {
            let inputs = Inputs {
                current: st.desired,
                ready: ready.len() as u32,
                starting,
                capacity_left: Some(capacity_left),
                utilization,
                sessions,
                window_open,
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
            (inputs, decision, before, acts, journal_it)
        });
        let (inputs, decision, before, acts, journal_it) = outcome;
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
                    "target": (pcfg.kind == policy::PolicyKind::Target).then_some(pcfg.target),
                    "target_sessions": pcfg.target_sessions,
                },
                "min_replicas": pcfg.min,
                "max_replicas": pcfg.max,
                "cooldown_left_seconds": decision.cooldown_left.round(),
                "window": window,
                "dry_run": pcfg.dry_run,
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
        let samples = futures_util::future::join_all(ready.iter().map(|(id, server)| {
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
        }))
        .await;
        samples.into_iter().flatten().collect()
    }
}

/// Time until the next evaluation: `check_interval`, or until just after the next window
/// edge when that comes first, so the change there happens at once.
fn next_wait(cfg: &Config, svc: &ServiceConfig, now: Timestamp) -> Duration {
    let wait = cfg.check_interval();
    window_state(cfg, svc, now)
        .and_then(|w| w.next_change)
        .and_then(|next| Duration::try_from(now.duration_until(next)).ok())
        .map_or(wait, |until| {
            wait.min(until.saturating_add(timings::WINDOW_EDGE_SLACK))
        })
}
