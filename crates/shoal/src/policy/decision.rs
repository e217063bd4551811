//! The outcome of an evaluation: the count to apply, its direction, why it was held, and the
//! signals behind it.

use std::fmt;

use serde::Serialize;

/// Direction of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Fewer replicas.
    Down,
    /// Same.
    Hold,
    /// More replicas.
    Up,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Down => "down",
            Direction::Hold => "hold",
            Direction::Up => "up",
        })
    }
}

/// Why a wanted change did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    /// Within `cooldown_period` of the last action.
    Cooldown,
    /// Already at `max_replicas`.
    AtMax,
    /// Already at `min_replicas`.
    AtMin,
    /// Samples are missing; no scale-down on incomplete data.
    MissingData,
    /// The target policy's stabilization window holds a higher recommendation.
    Stabilization,
    /// Replicas are still starting: the threshold policy waits for them before another
    /// step, and no policy scales down meanwhile.
    Starting,
    /// No server can take another replica (all down or at `max_containers`).
    NoCapacity,
    /// Dry run: journaled, not applied.
    DryRun,
}

impl Held {
    /// The label used in metrics and the journal.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Held::Cooldown => "cooldown",
            Held::AtMax => "at_max",
            Held::AtMin => "at_min",
            Held::MissingData => "missing_data",
            Held::Stabilization => "stabilization",
            Held::Starting => "starting",
            Held::NoCapacity => "no_capacity",
            Held::DryRun => "dry_run",
        }
    }
}

/// One signal's view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Signal {
    /// `cpu` or `sessions`.
    pub name: &'static str,
    /// The measured value (percent, or sessions per replica).
    pub value: f64,
    /// The threshold(s) or target it was compared with, in words.
    pub against: String,
    /// Count this signal recommends.
    pub recommends: u32,
}

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// The count to apply (equal to `current` when nothing changes).
    pub desired: u32,
    /// The count the policy wanted before holds.
    pub wanted: u32,
    /// Direction of `wanted` relative to `current`.
    pub direction: Direction,
    /// Why `wanted` was not applied, if it was not.
    pub held: Option<Held>,
    /// Which rule decided: `threshold`, `target`, `window_closed`, `window_opened`,
    /// `bounds`, `no_data`.
    pub rule: &'static str,
    /// Human explanation with the numbers.
    pub reason: String,
    /// Signals evaluated.
    pub signals: Vec<Signal>,
    /// Seconds of cooldown left at evaluation time.
    pub cooldown_left: f64,
}

impl Decision {
    /// Whether it changes the desired count.
    #[must_use]
    pub fn acts(&self, current: u32) -> bool {
        self.desired != current
    }

    /// Whether it belongs in the journal: it acts, or wanted to act but was held.
    #[must_use]
    pub fn noteworthy(&self) -> bool {
        self.direction != Direction::Hold || self.held.is_some()
    }
}
