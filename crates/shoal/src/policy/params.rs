//! A service's scaling parameters, taken from its config section.

use std::time::Duration;

use jiff::SignedDuration;
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
    /// Sizes from HAProxy's request rate and a learned capacity per replica.
    Adaptive,
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
    #[serde(rename = "cooldown_seconds", serialize_with = "seconds")]
    pub cooldown: SignedDuration,
    /// Percent; target policy.
    pub target: f64,
    /// Percent of the learned capacity the adaptive policy sizes for.
    pub adaptive_target: f64,
    /// Relative deviation ignored by the target and adaptive policies.
    pub tolerance: f64,
    /// Scale-down stabilization window of the target and adaptive policies.
    #[serde(rename = "stabilization_seconds", serialize_with = "seconds")]
    pub stabilization: SignedDuration,
    /// Largest scale-up step of the target policy (and of the adaptive one while it falls
    /// back to CPU target tracking).
    pub max_step: u32,
    /// Largest scale-down step of the target and adaptive policies; `None`: unlimited (as
    /// Kubernetes' HPA by default).
    pub max_down_step: Option<u32>,
    /// Target sessions (current + queued) per replica; `None`: no sessions signal.
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
            kind: match svc.scale_policy.as_str() {
                "target" => PolicyKind::Target,
                "adaptive" => PolicyKind::Adaptive,
                _ => PolicyKind::Threshold,
            },
            min: *svc.min_replicas,
            max: *svc.max_replicas,
            up_threshold: *svc.scale_up_threshold,
            down_threshold: *svc.scale_down_threshold,
            cooldown: signed(svc.cooldown_period()),
            target: *svc.target_utilization,
            adaptive_target: *svc.adaptive_target_utilization,
            tolerance: *svc.target_tolerance,
            stabilization: signed(svc.scale_down_stabilization()),
            max_step: *svc.max_scale_step,
            max_down_step: svc.max_scale_down_step.as_ref().map(|s| s.value),
            target_sessions: svc.target_sessions_per_replica.as_ref().map(|t| t.value),
            business_hours_only: svc.business_hours_only,
            off_hours: svc.off_hours_replicas(),
            dry_run: svc.dry_run.unwrap_or(global_dry_run),
        }
    }
}

/// A config duration (bounded by the config's limits) as a [`SignedDuration`]; saturates
/// rather than wrapping to a negative value.
fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// Serializes a duration as seconds (a number), as every duration in shoal's JSON.
fn seconds<S: serde::Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
