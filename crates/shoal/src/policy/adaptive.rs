//! The `adaptive` policy's memory and arithmetic: the capacity per replica it learns from
//! paired samples of request rate and CPU, and the count a demand needs.
//!
//! One observation is the throughput one replica would have at 100% utilization:
//! `rate / ready / (utilization / 100)`. It is taken only from samples that say something
//! about capacity:
//!
//! - every ready replica has a CPU sample, and none is starting (a replica entering
//!   rotation warms up and skews the split of the rate);
//! - the mean utilization is between [`LEARN_MIN_UTIL`] and [`LEARN_MAX_UTIL`]: below, idle
//!   CPU (runtime, health checks) dominates and the ratio is noise; above, the replicas are
//!   saturated and the arrival rate no longer equals the served rate;
//! - nothing is queued in HAProxy (same reason);
//! - the rate was measured over the same moment as the CPU and was steady
//!   ([`Demand::paired_rate`]);
//! - the rate is at least [`LEARN_MIN_RATE`] requests per second.
//!
//! The estimate is the median of the last [`WINDOW`] observations, so a few outliers (a GC
//! pause, a burst of expensive requests) do not move it, and it follows a real change (a
//! new image that is faster or slower) within `WINDOW` evaluations. Until
//! [`MIN_OBSERVATIONS`] are in, the policy falls back to CPU target tracking.

use std::collections::VecDeque;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Observations kept; the estimate is their median.
pub const WINDOW: usize = 24;
/// Observations needed before the estimate is used.
pub const MIN_OBSERVATIONS: usize = 3;
/// Lowest mean utilization (percent) an observation is taken at.
pub const LEARN_MIN_UTIL: f64 = 10.0;
/// Highest mean utilization (percent) an observation is taken at.
pub const LEARN_MAX_UTIL: f64 = 90.0;
/// Lowest request rate (per second) an observation is taken at.
pub const LEARN_MIN_RATE: f64 = 0.05;
/// Seconds over which the policy plans to drain what HAProxy has queued: a queue of `q`
/// requests adds `q / QUEUE_DRAIN_SECONDS` to the rate to serve.
pub const QUEUE_DRAIN_SECONDS: f64 = 30.0;

/// The demand HAProxy sees for a service, sampled with the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    /// Requests per second arriving at the service's frontend (served or not): what the
    /// policy sizes for.
    pub rate: f64,
    /// The rate over the same moment as the CPU samples, when it was steady (close to the
    /// rate over the whole interval); `None` when the rate was changing, so the pair says
    /// nothing reliable about capacity. What the policy learns from.
    pub paired_rate: Option<f64>,
    /// Requests queued in HAProxy (backend and servers), waiting for a free replica.
    pub queue: f64,
    /// Current sessions of the backend's servers.
    pub sessions: f64,
}

/// What the adaptive policy has learned about a service. Persisted in the journal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    /// Recent observations of the requests per second one replica serves at 100%
    /// utilization, oldest first.
    pub observations: VecDeque<f64>,
    /// When the last observation was taken.
    pub updated: Option<Timestamp>,
    /// The service spec revision the observations were taken on: a new image, CPU limit or
    /// command serves at another rate, so a new revision starts learning again.
    #[serde(default)]
    pub revision: Option<String>,
}

impl Learned {
    /// Requests per second one replica serves at 100% utilization (the median of the
    /// observations); `None` until [`MIN_OBSERVATIONS`] are in.
    #[must_use]
    pub fn capacity(&self) -> Option<f64> {
        if self.observations.len() < MIN_OBSERVATIONS {
            return None;
        }
        let mut v: Vec<f64> = self.observations.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        Some(if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        })
    }

    /// Forgets the observations when `revision` is not the one they were taken on (and
    /// records it); returns whether it did.
    pub fn follow_revision(&mut self, revision: &str) -> bool {
        if self.revision.as_deref() == Some(revision) {
            return false;
        }
        let had = !self.observations.is_empty();
        self.observations.clear();
        self.updated = None;
        self.revision = Some(revision.to_owned());
        had
    }

    /// Takes one paired sample into account; returns whether it was used (see the module
    /// docs for which are).
    pub fn observe(
        &mut self,
        demand: &Demand,
        ready: u32,
        starting: u32,
        utilization: &[f64],
        now: Timestamp,
    ) -> bool {
        if ready == 0 || starting > 0 || utilization.len() < ready as usize {
            return false;
        }
        let Some(rate) = demand.paired_rate else {
            return false;
        };
        let u = utilization.iter().sum::<f64>() / utilization.len() as f64;
        let usable = (LEARN_MIN_UTIL..=LEARN_MAX_UTIL).contains(&u)
            && demand.queue <= 0.0
            && rate >= LEARN_MIN_RATE
            && rate.is_finite();
        if !usable {
            return false;
        }
        let per_replica = rate / f64::from(ready) / (u / 100.0);
        if !(per_replica.is_finite() && per_replica > 0.0) {
            return false;
        }
        self.observations.push_back(per_replica);
        while self.observations.len() > WINDOW {
            self.observations.pop_front();
        }
        self.updated = Some(now);
        true
    }
}

/// The rate to serve: what arrives plus what drains the queue in [`QUEUE_DRAIN_SECONDS`].
#[must_use]
pub fn demand_rate(demand: &Demand) -> f64 {
    demand.rate.max(0.0) + demand.queue.max(0.0) / QUEUE_DRAIN_SECONDS
}

/// Replicas needed to serve `demand` with each replica at `per_replica` requests per second
/// (its capacity at the target utilization).
#[must_use]
pub fn needed(demand: &Demand, per_replica: f64) -> u32 {
    let rate = demand_rate(demand);
    // A hair below an exact multiple is that multiple: 3.0000000001 replicas is 3.
    let n = (rate / per_replica - 1e-9).ceil();
    if n.is_finite() && n >= 0.0 {
        n.min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}
