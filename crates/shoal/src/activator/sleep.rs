//! When a service that may sleep wakes and goes back to sleep: pure decisions over its
//! [`SleepState`], and the idle watcher that applies them.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::context::Context;
use crate::journal::{Action, NewEvent};
use crate::service::{Phase, ServiceRuntime, ServiceState};
use crate::service_startup::SleepState;
use crate::timings;

/// What a request arriving at the activator does to the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wake {
    /// A replica can take it: forward at once.
    Ready,
    /// This request starts the wake-up (desired 0 → 1).
    Begin,
    /// A wake-up or a start is under way: wait for it.
    Wait,
}

/// The `host:port` of a replica that may take a held request: one in rotation, else one
/// that passed shoal's health check and its warm-up and waits only for HAProxy's own check
/// (`Joining`: the activator sends to it directly, so it need not wait for HAProxy's `rise`
/// checks).
#[must_use]
pub fn ready_replica(st: &ServiceState) -> Option<(String, u16)> {
    let pick = |phase: Phase| {
        st.replicas
            .values()
            .filter(|r| {
                r.phase == phase && r.container_state == crate::engine::ContainerState::Running
            })
            .find_map(|r| Some((r.host.clone(), r.port?)))
    };
    pick(Phase::Ready).or_else(|| pick(Phase::Joining))
}

/// A request arrives at `now`: records the activity and, with no replica and none wanted,
/// starts the one wake-up every concurrent request shares.
pub fn on_request(st: &mut ServiceState, max_replicas: u32, now: Instant) -> Wake {
    st.sleep.last_activity = Some(now);
    if ready_replica(st).is_some() {
        return Wake::Ready;
    }
    if st.desired == 0 && !st.sleep.waking && max_replicas > 0 {
        st.desired = 1;
        st.sleep.asleep = false;
        st.sleep.waking = true;
        st.sleep.woken = true;
        st.sleep.waking_since = Some(now);
        st.sleep.wakes = st.sleep.wakes.saturating_add(1);
        return Wake::Begin;
    }
    Wake::Wait
}

/// The last request waiting gave up at its `activation_timeout` with still no replica
/// ready: back to zero, so the replica on its way is removed (nothing stays half-started).
/// Returns whether it went back to sleep.
pub fn on_timeout(st: &mut ServiceState) -> bool {
    if st.sleep.waiting > 0 || !st.sleep.waking || ready_replica(st).is_some() {
        return false;
    }
    st.desired = 0;
    st.sleep.waking = false;
    st.sleep.waking_since = None;
    st.sleep.asleep = true;
    st.sleep.woken = false;
    st.sleep.sleeps = st.sleep.sleeps.saturating_add(1);
    true
}

/// What the idle watcher does now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SleepStep {
    /// Nothing.
    Stay,
    /// Idle long enough: desired to 0, asleep.
    ToZero {
        /// Idle for.
        idle: Duration,
    },
    /// Already at zero (the window closed): asleep, so the next request wakes it.
    MarkAsleep,
}

/// The idle watcher's decision. `may_sleep`: `idle_to_zero_after` is set, or the
/// business-hours window is closed for a service held at `off_hours_replicas: 0`.
#[must_use]
pub fn decide(
    s: &SleepState,
    desired: u32,
    idle_after: Duration,
    may_sleep: bool,
    now: Instant,
) -> SleepStep {
    if s.waiting > 0 || s.waking || s.asleep {
        return SleepStep::Stay;
    }
    if desired == 0 {
        return SleepStep::MarkAsleep;
    }
    let idle = s
        .last_activity
        .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
    if may_sleep && idle >= idle_after {
        SleepStep::ToZero { idle }
    } else {
        SleepStep::Stay
    }
}

/// Whether the autoscaler leaves the count alone: the service sleeps (until a request or,
/// for a business-hours service without `idle_to_zero_after`, the window opening), or it
/// was woken outside its window (it stays at what the wake-up gave until idle).
/// At desired 0 with no wake-up under way it sleeps, whether or not the idle watcher has
/// marked it yet (after a restart, or the moment it went to zero).
pub fn autoscaler_holds(
    s: &mut SleepState,
    desired: u32,
    idle_any_time: bool,
    window_open: bool,
) -> bool {
    let asleep = s.asleep || (desired == 0 && !s.waking);
    if asleep && (idle_any_time || !window_open) {
        return true;
    }
    if window_open && !idle_any_time {
        // The window opened: the service is up with it, the policy takes over.
        s.asleep = false;
        s.woken = false;
    }
    s.waking || (s.woken && !window_open)
}

/// Watches one service for idleness while its runtime is current.
pub async fn watch(ctx: Arc<Context>, rt: Arc<ServiceRuntime>) {
    let backend = crate::lb::backend_name(&rt.name);
    while ctx.is_current(&rt) {
        tokio::time::sleep(timings::SLEEP_CHECK_EVERY).await;
        let cfg = ctx.config();
        let Some(svc) = cfg.service(&rt.name).filter(|s| s.sleeps()) else {
            continue;
        };
        if !rt.update(|st| st.adopted) {
            continue;
        }
        // Traffic through HAProxy: the backend's total sessions moved, or some are open.
        let traffic = ctx.lb().backend_traffic(&backend).await;
        let window_open =
            crate::autoscale::window_state(&cfg, svc, ctx.clock.now()).is_none_or(|w| w.open);
        let may_sleep = svc.idle_to_zero_after.is_some() || !window_open;
        let now = Instant::now();
        let step = rt.update(|st| {
            match &traffic {
                Ok(Some((total, current))) => {
                    if st.sleep.sessions_total != Some(*total) || *current > 0 {
                        if st.sleep.sessions_total.is_some() || st.sleep.last_activity.is_none() {
                            st.sleep.last_activity = Some(now);
                        }
                        st.sleep.sessions_total = Some(*total);
                    }
                }
                // Without HAProxy's counters idleness is unknown: never sleep on it.
                _ => return SleepStep::Stay,
            }
            let step = decide(
                &st.sleep,
                st.desired,
                svc.idle_to_zero_after(),
                may_sleep,
                now,
            );
            match step {
                SleepStep::Stay => {}
                SleepStep::ToZero { .. } => {
                    st.desired = 0;
                    st.sleep.asleep = true;
                    st.sleep.woken = false;
                    st.sleep.sleeps = st.sleep.sleeps.saturating_add(1);
                }
                SleepStep::MarkAsleep => {
                    st.sleep.asleep = true;
                    st.sleep.woken = false;
                }
            }
            step
        });
        let reason = match step {
            SleepStep::Stay => continue,
            SleepStep::ToZero { idle } => format!(
                "no request for {}s (idle after {}s): to zero replicas; the next request wakes it",
                idle.as_secs(),
                svc.idle_to_zero_after().as_secs()
            ),
            SleepStep::MarkAsleep => {
                "at zero replicas: asleep; the next request wakes it".to_owned()
            }
        };
        ctx.journal.record(NewEvent {
            service: &rt.name,
            action: Action::Sleep,
            reason,
            ..Default::default()
        });
        super::save_desired(&ctx, &rt);
        rt.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ContainerInfo, ContainerState};
    use crate::service::Replica;

    fn ready(st: &mut ServiceState, now: Instant) {
        let c = ContainerInfo {
            id: "c1".into(),
            name: "web-1".into(),
            service: "web".into(),
            server: "a".into(),
            revision: "r".into(),
            state: ContainerState::Running,
            status: String::new(),
            host_port: Some(30001),
            created: 0,
            gpus: Vec::new(),
            gpu_sharing: false,
            image: Default::default(),
        };
        let mut r = Replica::new(&c, "10.0.0.1".into(), now);
        r.phase = Phase::Ready;
        st.replicas.insert(r.id.clone(), r);
    }

    #[test]
    fn concurrent_requests_share_one_wake_up() {
        let now = Instant::now();
        let mut st = ServiceState {
            adopted: true,
            ..Default::default()
        };
        st.sleep.asleep = true;
        assert_eq!(on_request(&mut st, 3, now), Wake::Begin);
        assert_eq!(st.desired, 1);
        for _ in 0..19 {
            assert_eq!(on_request(&mut st, 3, now), Wake::Wait);
        }
        assert_eq!(st.desired, 1);
        assert_eq!(st.sleep.wakes, 1);
        ready(&mut st, now);
        assert_eq!(on_request(&mut st, 3, now), Wake::Ready);
    }

    #[test]
    fn a_wake_up_that_times_out_goes_back_to_zero_once_nobody_waits() {
        let now = Instant::now();
        let mut st = ServiceState::default();
        assert_eq!(on_request(&mut st, 1, now), Wake::Begin);
        st.sleep.waiting = 1;
        assert!(!on_timeout(&mut st), "another request still waits");
        st.sleep.waiting = 0;
        assert!(on_timeout(&mut st));
        assert_eq!(st.desired, 0);
        assert!(st.sleep.asleep && !st.sleep.waking);
        // A replica that made it meanwhile keeps the service up.
        assert_eq!(on_request(&mut st, 1, now), Wake::Begin);
        ready(&mut st, now);
        assert!(!on_timeout(&mut st));
        assert_eq!(st.desired, 1);
    }

    #[test]
    fn idle_goes_to_zero_only_when_allowed_and_nobody_waits() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(10);
        let s = SleepState {
            last_activity: Some(t0),
            ..Default::default()
        };
        let later = t0 + Duration::from_secs(11);
        assert_eq!(
            decide(&s, 1, idle, true, t0 + Duration::from_secs(9)),
            SleepStep::Stay
        );
        assert_eq!(
            decide(&s, 1, idle, true, later),
            SleepStep::ToZero {
                idle: Duration::from_secs(11)
            }
        );
        assert_eq!(decide(&s, 1, idle, false, later), SleepStep::Stay);
        let waiting = SleepState {
            waiting: 1,
            ..s.clone()
        };
        assert_eq!(decide(&waiting, 1, idle, true, later), SleepStep::Stay);
        assert_eq!(decide(&s, 0, idle, false, t0), SleepStep::MarkAsleep);
        let asleep = SleepState { asleep: true, ..s };
        assert_eq!(decide(&asleep, 0, idle, true, later), SleepStep::Stay);
    }

    #[test]
    fn the_autoscaler_holds_a_sleeping_or_night_woken_service() {
        let mut s = SleepState {
            asleep: true,
            ..Default::default()
        };
        assert!(
            autoscaler_holds(&mut s, 0, true, true),
            "idle_to_zero_after: asleep all day"
        );
        assert!(autoscaler_holds(&mut s, 0, false, false), "asleep at night");
        assert!(
            !autoscaler_holds(&mut s, 0, false, true),
            "the window opened"
        );
        assert!(!s.asleep);
        let mut s = SleepState {
            woken: true,
            ..Default::default()
        };
        assert!(
            autoscaler_holds(&mut s, 1, false, false),
            "woken at night: held until idle"
        );
        // At zero before the idle watcher marked it (just adopted): asleep already.
        let mut s = SleepState::default();
        assert!(autoscaler_holds(&mut s, 0, true, true));
        assert!(
            !autoscaler_holds(&mut s, 1, true, true),
            "awake by day: the policy runs"
        );
    }
}
