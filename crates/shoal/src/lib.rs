//! shoal: run Docker services across a small fleet behind HAProxy, and scale them on load.
//!
//! Functional core, imperative shell: `config`, `placement` decide without IO; `engine`
//! (Docker) and `lb` (HAProxy) do IO without deciding; `reconcile` joins them; `api` and
//! `cli` are the HTTP and command-line faces. See ARCHITECTURE.md.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod api;
pub mod app;
pub mod autoscale;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod context;
pub mod engine;
pub mod fleet;
pub mod journal;
pub mod lb;
pub mod metrics;
pub mod placement;
pub mod policy;
pub mod ports;
pub mod reconcile;
pub mod schedule;
pub mod service;
pub mod sim;
pub mod timings;
