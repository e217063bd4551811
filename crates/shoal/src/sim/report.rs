//! [`SimReport`]: the cost and quality figures of a run, its timeline, and their text and
//! CSV renderings.

use std::fmt::Write as _;

use serde::Serialize;

use super::Model;
use crate::policy::{Direction, Held, PolicyConfig, PolicyKind};

/// One policy evaluation of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    /// Trace time, seconds.
    pub t: f64,
    /// Load at `t`.
    pub load: f64,
    /// Desired (started) replicas after the decision.
    pub desired: u32,
    /// Ready replicas the policy saw.
    pub ready: u32,
    /// The utilization sample of each ready replica (percent); `None` with no ready replica.
    pub utilization: Option<f64>,
    /// Direction of the change applied, if any.
    pub action: Option<Direction>,
    /// Why a wanted change was held, if it was.
    pub held: Option<Held>,
    /// The policy's explanation.
    pub reason: String,
}

/// Cost and quality figures of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimReport {
    /// The policy parameters used.
    pub policy: PolicyConfig,
    /// The replica model used.
    pub model: Model,
    /// Simulated seconds (last trace time minus first).
    pub duration_s: f64,
    /// Policy evaluations.
    pub steps: usize,
    /// Integral of started (desired) replicas over time, in replica-minutes: the cost.
    pub replica_minutes: f64,
    /// Reference cost: the integral of `max(min, ceil(load / capacity))`, the fewest replicas
    /// that never overload with perfect foresight and no start delay (may exceed `max`).
    pub ideal_replica_minutes: f64,
    /// Minutes during which load exceeded the capacity of ready replicas.
    pub overload_minutes: f64,
    /// Integral of the load above ready capacity (load units x minutes): how badly it was
    /// overloaded, not only how long.
    pub unserved_load_minutes: f64,
    /// Most replicas started at once.
    pub peak_replicas: u32,
    /// Highest load of the trace.
    pub peak_load: f64,
    /// Changes of the desired count.
    pub actions: u32,
    /// Changes upwards.
    pub ups: u32,
    /// Changes downwards.
    pub downs: u32,
    /// Replicas started over the run (churn).
    pub replicas_started: u32,
    /// Time-weighted mean utilization (percent) of ready replicas, over the time some
    /// replica was ready.
    pub mean_utilization: Option<f64>,
    /// Every evaluation, in order.
    pub timeline: Vec<Step>,
}

impl SimReport {
    /// A few readable lines (no timeline).
    #[must_use]
    pub fn summary(&self) -> String {
        let p = &self.policy;
        let m = &self.model;
        let policy = match p.kind {
            PolicyKind::Threshold => format!(
                "threshold (up > {}%, down < {}%, cooldown {}s)",
                p.up_threshold,
                p.down_threshold,
                p.cooldown.as_secs()
            ),
            PolicyKind::Target => format!(
                "target ({}% ±{}%, stabilization {}s, max step {}, cooldown {}s)",
                p.target,
                p.tolerance * 100.0,
                p.stabilization.as_secs(),
                p.max_step,
                p.cooldown.as_secs()
            ),
        };
        let d = self.duration_s.round() as u64;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "policy            {policy}, replicas [{}, {}]",
            p.min, p.max
        );
        let _ = writeln!(
            s,
            "model             capacity {} per replica, start delay {}s, evaluated every {}s",
            m.capacity, m.start_delay, m.interval
        );
        let _ = writeln!(
            s,
            "simulated         {}h{:02}m{:02}s, {} evaluations, peak load {}",
            d / 3600,
            d % 3600 / 60,
            d % 60,
            self.steps,
            self.peak_load
        );
        let _ = writeln!(
            s,
            "replica-minutes   {:.1} (ideal {:.1})",
            self.replica_minutes, self.ideal_replica_minutes
        );
        let _ = writeln!(
            s,
            "overload-minutes  {:.1} (unserved load x minutes {:.1})",
            self.overload_minutes, self.unserved_load_minutes
        );
        let _ = writeln!(s, "peak replicas     {}", self.peak_replicas);
        let _ = writeln!(
            s,
            "actions           {} ({} up, {} down; {} replicas started)",
            self.actions, self.ups, self.downs, self.replicas_started
        );
        let _ = writeln!(
            s,
            "mean utilization  {}",
            self.mean_utilization
                .map_or("n/a (no ready replica)".to_owned(), |u| format!(
                    "{u:.1}% of ready replicas"
                ))
        );
        s
    }

    /// The timeline as CSV: `t,load,desired,ready,utilization,action,held,reason`.
    #[must_use]
    pub fn timeline_csv(&self) -> String {
        let mut s = String::from("t,load,desired,ready,utilization,action,held,reason\n");
        for st in &self.timeline {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},\"{}\"",
                st.t,
                st.load,
                st.desired,
                st.ready,
                st.utilization.map_or(String::new(), |u| format!("{u:.2}")),
                st.action.map_or("", |a| match a {
                    Direction::Up => "up",
                    Direction::Down => "down",
                    Direction::Hold => "",
                }),
                st.held.map_or("", Held::as_str),
                st.reason.replace('"', "\"\"")
            );
        }
        s
    }
}
