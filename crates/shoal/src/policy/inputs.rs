//! What the policy sees at one evaluation, and what it remembers between evaluations.

use std::collections::VecDeque;

use jiff::Timestamp;
use serde::Serialize;

use super::adaptive::{Demand, Learned};

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
    /// HAProxy's view of the demand (request rate, queue, sessions), when it answered and
    /// the service serves HTTP.
    pub demand: Option<Demand>,
    /// Business-hours window open (`true` when the service is not `business_hours_only`),
    /// or opening within the time a replica takes to start (pre-warming).
    pub window_open: bool,
    /// Pre-warming: seconds until the window opens, when it is still closed but
    /// `window_open` is set so replicas are ready at the opening.
    pub opens_in: Option<f64>,
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

/// Memory the policies keep between evaluations: the stabilization window (target,
/// adaptive) and what the adaptive policy learned (persisted in the journal).
#[derive(Clone, Debug, Default)]
pub struct PolicyState {
    pub(super) recommendations: VecDeque<(Timestamp, u32)>,
    /// The adaptive policy's capacity estimate.
    pub learned: Learned,
}
