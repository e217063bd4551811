//! `shoal simulate`: replays a load trace through the scaling policy in virtual time.
//!
//! The policy is [`policy::evaluate`](crate::policy::evaluate) itself, called with the inputs the
//! control loop would give it; only the world around it is modelled, and simply:
//!
//! - **Load** is a step function of the trace: between two points it is the value of the
//!   earlier one. The simulation spans from the first point's time to the last point's
//!   time, so the last point only marks the end.
//! - **Replicas**: each serves up to `capacity` load units at 100% utilization. Replicas the
//!   policy adds count for cost at once and serve after `start_delay` seconds; removals take
//!   effect at once (no draining), and take starting replicas before serving ones, newest
//!   first (as `placement::choose_victims` does).
//! - **Samples**: every ready replica reports the same utilization,
//!   `min(100, load / (ready x capacity) x 100)`; with no ready replica there are none.
//! - **Loop**: every `interval` seconds the policy is evaluated with
//!   `Inputs { current: desired, ready, utilization, sessions: None, window_open: true,
//!   last_action }` and its `desired` applied. The business-hours window, the sessions
//!   signal and dry run are outside the model.
//!
//! Metrics are integrated exactly over the piecewise-constant model (segments are split at
//! trace points and at the moments starting replicas become ready). Virtual time is kept in
//! integer milliseconds, so a run is deterministic.
//!
//!
//! - `trace`: [`TracePoint`], [`load_trace`], [`parse_trace`]; `setup`: [`Model`], [`setup`];
//! - `run`: [`simulate`]; `report`: [`SimReport`] and its renderings.

pub mod cli;
mod hpa;
mod report;
mod run;
mod setup;
mod trace;

#[cfg(test)]
mod tests;

pub use hpa::Hpa;
pub use report::{compare_table, describe, SimReport, Step, TIMELINE_HEADER};
pub use run::{run, simulate, Contender, QUEUE_TIMEOUT};
pub use setup::{setup, Model, Setup};
pub use trace::{
    load_trace, parse_trace, SimError, TracePoint, MAX_POINTS, MAX_SPAN_SECONDS, MAX_TRACE_BYTES,
};
