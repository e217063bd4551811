//! shoal: run Docker services across a small fleet behind HAProxy, and scale them on load.
#![forbid(unsafe_code)]

pub mod config;
pub mod engine;
pub mod placement;
