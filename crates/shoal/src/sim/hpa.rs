//! A reference implementation of the Kubernetes Horizontal Pod Autoscaler's algorithm, for
//! `shoal simulate --compare` only: shoal never runs it.
//!
//! It follows `pkg/controller/podautoscaler` (`replica_calculator.go`, `horizontal.go`)
//! with the defaults of `kube-controller-manager` and of `autoscaling/v2` behaviour:
//!
//! - resource metric CPU, target average utilization [`Hpa::target`] (60%), tolerance
//!   [`Hpa::tolerance`] (0.1), evaluated every [`Hpa::sync`] (15 s, `--horizontal-pod-
//!   autoscaler-sync-period`);
//! - `usageRatio = mean(utilization of ready pods) / target`; within the tolerance the
//!   count holds, else `ceil(usageRatio x readyPods)`;
//! - pods not ready yet are set aside; when the ratio asks for a scale-up they count as 0%
//!   and the ratio is computed again, and the scale is skipped if that reverses or lands
//!   within the tolerance (so starting pods damp further scale-ups);
//! - scale-down stabilization: the highest raw recommendation of the last
//!   [`Hpa::stabilization`] (300 s); scale-up stabilization 0;
//! - scale-up rate: at most `max(100%, 4 pods)` added per 15 s; scale-down rate: 100% per
//!   15 s (no limit in practice);
//! - `[minReplicas, maxReplicas]`.
//!
//! Not modelled: the metrics pipeline's own delay (metrics-server's 15 s resolution and
//! the CPU initialization period that ignores samples taken before a pod was ready), which
//! make the real HPA slower than this reference, never faster.

use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::policy::Inputs;

/// The HPA reference's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Hpa {
    /// Always `hpa`.
    pub kind: &'static str,
    /// `minReplicas`.
    pub min: u32,
    /// `maxReplicas`.
    pub max: u32,
    /// Target average CPU utilization, percent.
    pub target: f64,
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub tolerance: f64,
    /// Sync period, seconds.
    pub sync_seconds: f64,
    /// Scale-down stabilization window, seconds.
    pub stabilization_seconds: f64,
    /// Scale-up rate policy: pods per period.
    pub up_pods: u32,
    /// Scale-up rate policy: percent per period.
    pub up_percent: f64,
    /// Period of the rate policies, seconds.
    pub rate_period_seconds: f64,
}

impl Hpa {
    /// The defaults (target 60%) with the given bounds.
    #[must_use]
    pub fn new(min: u32, max: u32) -> Self {
        Self {
            kind: "hpa",
            min,
            max,
            target: 60.0,
            tolerance: 0.1,
            sync_seconds: 15.0,
            stabilization_seconds: 300.0,
            up_pods: 4,
            up_percent: 100.0,
            rate_period_seconds: 15.0,
        }
    }
}

/// The HPA's memory: raw recommendations (for stabilization) and scale-up events (for
/// the rate policy).
#[derive(Debug, Default)]
pub struct HpaState {
    recommendations: VecDeque<(Timestamp, u32)>,
    ups: VecDeque<(Timestamp, u32)>,
}

/// The count the HPA sets at `now`, and why.
pub fn decide(h: &Hpa, st: &mut HpaState, inp: &Inputs, now: Timestamp) -> (u32, String) {
    let current = inp.current;
    let Some(raw) = recommend(h, inp) else {
        return (current, "hpa: no metrics, holding".to_owned());
    };
    // Stabilization: up takes the lowest of a zero-length window (the recommendation
    // itself); down takes the highest of the last stabilization_seconds.
    let window = SignedDuration::from_secs_f64(h.stabilization_seconds);
    st.recommendations.push_back((now, raw));
    while st
        .recommendations
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) > window)
    {
        st.recommendations.pop_front();
    }
    let highest = st.recommendations.iter().map(|r| r.1).max().unwrap_or(raw);
    let mut desired = current.max(raw).min(highest);
    let mut why = format!("hpa: recommends {raw}");
    if desired != raw {
        why.push_str(&format!(", stabilized to {desired}"));
    }
    // Scale-up rate: max(100%, 4 pods) per period, counted from the replicas at the
    // period's start.
    let period = SignedDuration::from_secs_f64(h.rate_period_seconds);
    while st
        .ups
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) >= period)
    {
        st.ups.pop_front();
    }
    let added: u32 = st.ups.iter().map(|u| u.1).sum();
    let start = current.saturating_sub(added);
    let by_percent = (f64::from(start) * (1.0 + h.up_percent / 100.0)).ceil() as u32;
    let limit = by_percent.max(start.saturating_add(h.up_pods));
    if desired > limit {
        desired = limit;
        why.push_str(&format!(", rate-limited to {limit}"));
    }
    let bounded = desired.clamp(h.min, h.max);
    if bounded != desired {
        why.push_str(&format!(", bounded to {bounded}"));
    }
    if bounded > current {
        st.ups.push_back((now, bounded - current));
    }
    (bounded, why)
}

/// `replica_calculator.go`'s GetResourceReplicas for CPU; `None` without metrics.
fn recommend(h: &Hpa, inp: &Inputs) -> Option<u32> {
    let current = inp.current;
    if inp.utilization.is_empty() {
        return None;
    }
    let ready = inp.utilization.len() as f64;
    let mean = inp.utilization.iter().sum::<f64>() / ready;
    let ratio = mean / h.target;
    let unready = inp.starting;
    if unready == 0 || ratio <= 1.0 {
        if (ratio - 1.0).abs() <= h.tolerance {
            return Some(current);
        }
        return Some((ratio * ready - 1e-9).ceil().max(0.0) as u32);
    }
    // Scale-up with unready pods: they count as 0%.
    let all = ready + f64::from(unready);
    let new_ratio = mean * ready / all / h.target;
    if (new_ratio - 1.0).abs() <= h.tolerance || new_ratio < 1.0 {
        return Some(current);
    }
    let n = (new_ratio * all - 1e-9).ceil() as u32;
    Some(if n < current { current } else { n })
}
