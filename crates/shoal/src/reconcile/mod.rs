//! The control loop, one task per service: **observe** ([`observe`]: Docker, HAProxy,
//! probes) → **plan** ([`plan`]: pure, every decision) → **execute** ([`execute`]: the only
//! caller of the engine, the load balancer and the journal). The loop ([`runner`]) sleeps
//! for the plan's requeue delay or until woken.
//!
//! IO goes through the small traits of [`crate::ports`]; [`crate::adapters`] implements
//! them for bollard, HAProxy and HTTP. The state a loop works on is [`crate::service`]. The loop's tests run over in-memory fakes on paused Tokio time.

mod drain;
pub mod execute;
mod execute_rollout;
pub mod gpu_ledger;
pub mod observe;
pub mod plan;
pub mod reasons;
pub mod rollout;
pub mod runner;
mod warmup;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod inventory_tests;
#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod ollama_loop_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod release_tests;
#[cfg(test)]
mod rollout_tests;

pub use crate::service::{Phase, Replica, Rollout, ServiceRuntime, ServiceState, Trigger};
pub use runner::run_service;
