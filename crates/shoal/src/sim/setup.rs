//! What a run is made of besides the trace: the replica [`Model`] and the service's policy
//! from a config ([`setup`]).

use serde::Serialize;

use crate::config::Config;
use crate::policy::{PolicyConfig, PolicyKind};

/// The world around the policy.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Model {
    /// Load units one replica serves at 100% utilization. Must be > 0.
    pub capacity: f64,
    /// Seconds from a replica's start to its serving. Must be >= 0.
    #[serde(rename = "start_delay_seconds")]
    pub start_delay: f64,
    /// Seconds between policy evaluations (`autoscaler.check_interval`). Must be > 0.
    #[serde(rename = "interval_seconds")]
    pub interval: f64,
}

impl Model {
    /// Checks the model's numbers; the message names the offending one.
    pub fn check(&self) -> Result<(), String> {
        if !(self.capacity.is_finite() && self.capacity > 0.0) {
            return Err(format!("capacity must be > 0 (got {})", self.capacity));
        }
        if !(self.start_delay.is_finite() && self.start_delay >= 0.0) {
            return Err(format!(
                "start delay must be >= 0 (got {})",
                self.start_delay
            ));
        }
        if !(self.interval.is_finite() && self.interval >= 0.001) {
            return Err(format!(
                "interval must be at least 0.001 s (got {})",
                self.interval
            ));
        }
        Ok(())
    }
}

/// The service, its policy and the evaluation interval a config gives the simulator.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// The service simulated.
    pub service: String,
    /// Its policy, with dry run off (the simulator applies decisions).
    pub policy: PolicyConfig,
    /// `autoscaler.check_interval`, seconds.
    pub interval: f64,
}

/// Picks the service (`service`, else the only one, else the first by name) and its policy
/// (`kind` overrides the service's `scale_policy`). Errors name the services there are.
pub fn setup(
    cfg: &Config,
    service: Option<&str>,
    kind: Option<PolicyKind>,
) -> Result<Setup, String> {
    let names = || cfg.services.keys().cloned().collect::<Vec<_>>().join(", ");
    let (name, svc) = match service {
        Some(s) => cfg
            .services
            .get_key_value(s)
            .ok_or_else(|| format!("no service {s:?} in the config (services: {})", names()))?,
        None => cfg
            .services
            .iter()
            .next()
            .ok_or_else(|| "the config has no service".to_owned())?,
    };
    let mut policy = PolicyConfig::from_service(svc, false);
    policy.dry_run = false;
    if let Some(k) = kind {
        policy.kind = k;
    }
    Ok(Setup {
        service: name.clone(),
        policy,
        interval: cfg.check_interval().as_secs_f64(),
    })
}
