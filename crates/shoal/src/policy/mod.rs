//! Scaling policy: from samples, state and the clock to a desired count and a reason.
//!
//! Pure: no IO, and the clock is an argument, so tests and the simulator run it in virtual
//! time. Two policies:
//!
//! - `threshold` (the seed's, default): mean utilization above `scale_up_threshold` -> +1,
//!   below `scale_down_threshold` -> -1.
//! - `target` (target tracking, like Kubernetes' HPA): `ceil(replicas x utilization /
//!   target)`, ignoring deviations within `target_tolerance`, scaling down only to the
//!   highest recommendation of the last `scale_down_stabilization` seconds, and moving at
//!   most `max_scale_step` replicas per decision.
//!
//! An optional second signal, HAProxy sessions (current + queued) per replica, is evaluated
//! by the same policy; with several signals the largest desired count wins (up beats hold
//! beats down). Every policy then respects, in this order: the business-hours window (outside
//! it the service is held at `off_hours_replicas`), missing data (never scale down on
//! incomplete samples, nor while replicas are still starting), `[min_replicas, max_replicas]`,
//! `cooldown_period` since the last action (manual ones included; the target policy applies
//! it to scale-down only, as its step cap and stabilization window pace it), and dry run.
//!
//! - `params`: [`PolicyConfig`]; `inputs`: [`Inputs`] and [`PolicyState`];
//! - `evaluate`: [`evaluate`]; `rules`: the threshold step and the target-tracking count;
//! - `decision`: [`Decision`] and its parts.

mod adaptive;
mod decision;
mod evaluate;
mod inputs;
mod params;
mod rules;

#[cfg(test)]
mod adaptive_tests;
#[cfg(test)]
mod tests;

pub use adaptive::{needed, Demand, Learned, MIN_OBSERVATIONS};
pub use decision::{Decision, Direction, Held, Signal};
pub use evaluate::evaluate;
pub use inputs::{Inputs, PolicyState};
pub use params::{PolicyConfig, PolicyKind};
