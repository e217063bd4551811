//! [`SimReport`]: the cost and quality figures of a run, its timeline, and their text and
//! CSV renderings.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Contender, Model};
use crate::policy::{Direction, Held, PolicyKind};

/// The header of [`SimReport::timeline_csv`] (`--compare` adds a `policy` column first).
pub const TIMELINE_HEADER: &str =
    "t,load,desired,ready,starting,overloaded,queue,utilization,action,held,reason";

/// One policy evaluation of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    /// Trace time, seconds.
    pub t: f64,
    /// Load at `t` (what arrives at HAProxy).
    pub load: f64,
    /// Desired (started) replicas after the decision.
    pub desired: u32,
    /// Ready replicas the policy saw.
    pub ready: u32,
    /// Replicas started but not serving yet, as the policy saw them.
    pub starting: u32,
    /// Whether the load exceeded the capacity of the ready replicas at `t`.
    pub overloaded: bool,
    /// Requests waiting in HAProxy's queue at `t`.
    pub queue: f64,
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
    /// What decided: a policy's parameters, or the HPA reference's.
    pub policy: Contender,
    /// The replica model used.
    pub model: Model,
    /// Simulated seconds (last trace time minus first).
    pub duration_seconds: f64,
    /// Policy evaluations.
    pub steps: usize,
    /// Integral of started (desired) replicas over time, in replica-minutes: the cost.
    pub replica_minutes: f64,
    /// Reference cost: the integral of `max(min, ceil(load / capacity))`, the fewest replicas
    /// that never overload with perfect foresight and no start delay (may exceed `max`).
    pub ideal_replica_minutes: f64,
    /// Minutes during which load exceeded the capacity of ready replicas.
    pub overload_minutes: f64,
    /// The same in seconds.
    pub overload_seconds: f64,
    /// Integral of the load above ready capacity (load units x minutes): how badly it was
    /// overloaded, not only how long.
    pub unserved_load_minutes: f64,
    /// Most requests waiting in HAProxy's queue at once.
    pub peak_queue: f64,
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
    /// Every evaluation, in order (empty unless asked for).
    pub timeline: Vec<Step>,
}

/// One line describing what decided a run.
#[must_use]
pub fn describe(c: &Contender) -> String {
    match c {
        Contender::Policy(p) => match p.kind {
            PolicyKind::Threshold => format!(
                "threshold (up > {}%, down < {}%, cooldown {}s)",
                p.up_threshold,
                p.down_threshold,
                p.cooldown.as_secs()
            ),
            PolicyKind::Target => format!(
                "target ({}% ±{}%, stabilization {}s, max step {}{}, cooldown {}s)",
                p.target,
                p.tolerance * 100.0,
                p.stabilization.as_secs(),
                p.max_step,
                p.max_down_step
                    .map_or(String::new(), |s| format!(", max down step {s}")),
                p.cooldown.as_secs()
            ),
            PolicyKind::Adaptive => format!(
                "adaptive ({}% of the learned capacity, CPU {}% until learned, stabilization \
                 {}s, cooldown {}s)",
                p.adaptive_target,
                p.target,
                p.stabilization.as_secs(),
                p.cooldown.as_secs()
            ),
        },
        Contender::Hpa(h) => format!(
            "hpa: Kubernetes HPA reference ({}% ±{}%, sync {}s, stabilization {}s)",
            h.target,
            h.tolerance * 100.0,
            h.sync_seconds,
            h.stabilization_seconds
        ),
    }
}

/// Minutes with two decimals and, below an hour, the seconds they are.
fn mins(m: f64) -> String {
    if m < 60.0 {
        format!("{m:.2} ({:.0} s)", m * 60.0)
    } else {
        format!("{m:.2}")
    }
}

/// The runs of `--compare` side by side, one row per contender.
#[must_use]
pub fn compare_table(reports: &[SimReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:>16} {:>19} {:>17} {:>7} {:>14} {:>5} {:>8}",
        "POLICY",
        "REPLICA-MINUTES",
        "OVERLOAD-MINUTES",
        "OVERLOAD-SECONDS",
        "ACTIONS",
        "UNSERVED-MIN",
        "PEAK",
        "STARTED"
    );
    for r in reports {
        let _ = writeln!(
            s,
            "{:<10} {:>16.2} {:>19.2} {:>17.1} {:>7} {:>14.2} {:>5} {:>8}",
            r.policy.name(),
            r.replica_minutes,
            r.overload_minutes,
            r.overload_seconds,
            r.actions,
            r.unserved_load_minutes,
            r.peak_replicas,
            r.replicas_started
        );
    }
    s
}

impl SimReport {
    /// A few readable lines (no timeline).
    #[must_use]
    pub fn summary(&self) -> String {
        let (min, max) = self.policy.bounds();
        let policy = describe(&self.policy);
        let m = &self.model;
        let d = self.duration_seconds.round() as u64;
        let mut s = String::new();
        let _ = writeln!(s, "policy            {policy}, replicas [{min}, {max}]");
        let _ = writeln!(
            s,
            "model             capacity {} per replica, start delay {}s, evaluated every {}s",
            m.capacity,
            m.start_delay,
            match &self.policy {
                Contender::Hpa(h) => h.sync_seconds,
                Contender::Policy(_) => m.interval,
            }
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
            "replica-minutes   {:.2} (ideal {:.2})",
            self.replica_minutes, self.ideal_replica_minutes
        );
        let _ = writeln!(
            s,
            "overload-minutes  {} (unserved load x minutes {:.2}; peak queue {:.1})",
            mins(self.overload_minutes),
            self.unserved_load_minutes,
            self.peak_queue
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

    /// The timeline as CSV, with the [`TIMELINE_HEADER`] header.
    #[must_use]
    pub fn timeline_csv(&self) -> String {
        format!("{TIMELINE_HEADER}\n{}", self.timeline_rows(false))
    }

    /// The timeline's CSV rows; with `policy`, each starts with the policy's name (as
    /// `--compare` prints them, after a `policy,` + [`TIMELINE_HEADER`] header).
    #[must_use]
    pub fn timeline_rows(&self, policy: bool) -> String {
        let mut s = String::new();
        for st in &self.timeline {
            if policy {
                s.push_str(self.policy.name());
                s.push(',');
            }
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},\"{}\"",
                st.t,
                st.load,
                st.desired,
                st.ready,
                st.starting,
                u8::from(st.overloaded),
                st.queue,
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
