//! The autoscaler: the IO shell around [`crate::policy`].
//!
//! One task per service. Every `autoscaler.check_interval` (and exactly at each edge of the
//! business-hours window) it samples CPU of the service's ready replicas from the Docker
//! stats API (all servers at once, each call bounded), optionally HAProxy's sessions and
//! queue for the backend, evaluates the policy, journals every decision that acts or is
//! held (a hold once when it starts or its reason changes; metrics count every one), and
//! applies a new desired count.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use crate::config::{Config, ServiceConfig};
use crate::engine::ContainerState;
use crate::journal::{NewEvent, SavedState};
use crate::lb;
use crate::policy::{self, Direction, Inputs, PolicyConfig};
use crate::reconcile::{App, Phase, ServiceRuntime};
use crate::schedule::WindowState;

/// Seconds of cooldown left for a service whose last action was `last_action`.
#[must_use]
pub fn cooldown_left(svc: &ServiceConfig, last_action: Option<Timestamp>) -> u64 {
    let Some(t) = last_action else { return 0 };
    let elapsed = Timestamp::now().duration_since(t).as_secs().max(0) as u64;
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

impl App {
    /// Runs the autoscaler of one service until the service is removed.
    pub(crate) async fn run_autoscaler(self: Arc<Self>, rt: Arc<ServiceRuntime>) {
        // Let the reconcile loop adopt what runs before the first evaluation.
        tokio::time::sleep(Duration::from_secs(1)).await;
        loop {
            // It lives as long as its service runtime: a service removed and added back
            // while still draining keeps (and needs) this task.
            if !self.service(&rt.name).is_some_and(|x| Arc::ptr_eq(&x, &rt)) {
                return;
            }
            let cfg = self.config();
            let svc = cfg
                .service(&rt.name)
                .filter(|_| !rt.lock().removed)
                .cloned();
            let Some(svc) = svc else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let now = Timestamp::now();
            self.autoscale_once(&rt, &cfg, &svc, now).await;
            let mut wait = cfg.check_interval();
            // Wake exactly at a window edge, so the change there happens at once.
            if let Some(next) =
                window_state(&cfg, &svc, Timestamp::now()).and_then(|w| w.next_change)
            {
                let until = Timestamp::now().duration_until(next);
                if let Ok(until) = Duration::try_from(until) {
                    wait = wait.min(until + Duration::from_millis(50));
                }
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One evaluation: sample, decide, journal, apply.
    pub async fn autoscale_once(
        self: &Arc<Self>,
        rt: &Arc<ServiceRuntime>,
        cfg: &Config,
        svc: &ServiceConfig,
        now: Timestamp,
    ) {
        let pcfg = PolicyConfig::from_service(svc, cfg.autoscaler.dry_run);
        let window = window_state(cfg, svc, now);
        let window_open = window.as_ref().is_none_or(|w| w.open);

        let (adopted, ready, starting) = {
            let st = rt.lock();
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
        };
        let capacity_left: u32 = self
            .fleet
            .loads(&Default::default())
            .iter()
            .filter(|l| l.up)
            .map(|l| l.max_containers.saturating_sub(l.containers))
            .sum();
        if !adopted {
            return;
        }
        // Samples only when the window is open: outside it the count is fixed.
        let (utilization, memory): (Vec<f64>, Vec<u64>) = if window_open {
            self.sample(svc, &ready).await.into_iter().unzip()
        } else {
            (Vec::new(), Vec::new())
        };
        let sessions = if window_open && pcfg.target_sessions.is_some() {
            self.sample_sessions(&rt.name).await
        } else {
            None
        };

        let mut st = rt.lock();
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
        st.memory_bytes = (!memory.is_empty()).then(|| memory.iter().sum());
        let before = st.desired;
        let acts = decision.acts(before);
        if acts {
            st.desired = decision.desired;
            st.last_action = Some(now);
            let dir = if decision.desired > before {
                "up"
            } else {
                "down"
            };
            *st.scale_actions
                .entry((dir.to_owned(), "autoscaler".to_owned()))
                .or_default() += 1;
        }
        if decision.noteworthy() {
            let reason_key = decision
                .held
                .map_or(decision.rule, crate::policy::Held::as_str)
                .to_owned();
            *st.decisions
                .entry((decision.direction.to_string(), reason_key))
                .or_default() += 1;
        }
        // A hold is journaled when it starts or its reason changes, not at every evaluation
        // (an idle service at min_replicas would otherwise write one every check_interval).
        let hold_key = format!(
            "{}/{}/{}",
            decision.direction,
            decision.held.map_or("", crate::policy::Held::as_str),
            decision.rule
        );
        let journal_it =
            acts || (decision.noteworthy() && st.last_hold.as_deref() != Some(hold_key.as_str()));
        st.last_hold = (!acts && decision.noteworthy()).then_some(hold_key);
        st.last_decision = Some(decision.clone());
        drop(st);

        if acts {
            self.journal.save_service_state(
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
                (true, Direction::Up) => "scale_up",
                (true, _) => "scale_down",
                (false, _) => "scale_held",
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
                "memory_bytes": (!memory.is_empty()).then(|| memory.iter().sum::<u64>()),
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
            self.journal.record(NewEvent {
                service: &rt.name,
                action,
                reason: format!("autoscaler: {}", decision.reason),
                desired: Some((before, decision.desired)),
                details: Some(details),
                ..Default::default()
            });
        }
    }

    /// Utilization (percent of the CPU limit, or of one core) and memory (bytes) of each
    /// ready replica that answered; missing samples are simply absent.
    async fn sample(&self, svc: &ServiceConfig, ready: &[(String, String)]) -> Vec<(f64, u64)> {
        let cpus = svc.cpus.as_ref().map(|c| c.value);
        // Docker's stats take about a second (two readings); a server slower than this
        // bound just has no sample this time, and delays nobody.
        let bound = (self.config().check_interval() / 2)
            .clamp(Duration::from_secs(2), Duration::from_secs(5));
        let samples = futures_util::future::join_all(ready.iter().map(|(id, server)| {
            let engine = self.fleet.get(server).and_then(|h| h.engine());
            async move {
                let engine = engine?;
                match tokio::time::timeout(bound, engine.stats(id)).await {
                    Ok(Ok(sample)) => Some(sample),
                    _ => None,
                }
            }
        }))
        .await;
        samples
            .into_iter()
            .flatten()
            .map(|(cpu, mem)| (cpus.map_or(cpu, |n| cpu / n), mem))
            .collect()
    }

    /// Current sessions of the backend's servers plus its queue, from HAProxy's `show stat`.
    async fn sample_sessions(&self, service: &str) -> Option<f64> {
        let rows = self.lb().stats().await.ok()?;
        let backend = lb::backend_name(service);
        let mut total = 0u64;
        let mut found = false;
        for r in rows.iter().filter(|r| r.proxy == backend) {
            found = true;
            match r.kind {
                lb::StatKind::Server => total += r.scur + r.qcur,
                lb::StatKind::Backend => total += r.qcur,
                _ => {}
            }
        }
        found.then_some(total as f64)
    }
}
