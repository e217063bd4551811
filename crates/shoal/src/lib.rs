//! shoal: run Docker services across a small fleet behind HAProxy, and scale them on load.
//!
//! Functional core, imperative shell. Pure: `config` (parse, validate), `placement`,
//! `policy`, `schedule`, `sim` and the loop's planner `reconcile::plan`. IO without
//! decisions: `engine` (Docker, bollard), `lb` (HAProxy), `journal` (SQLite), behind the
//! `ports` traits that `adapters` implements. Joining them: `reconcile` (observe → plan →
//! execute, one loop per service), `autoscale`, `commands`, over the shared `context` that
//! `app` builds. Faces: `api` (HTTP, typed model, OpenAPI), `metrics`, `cli`. See
//! ARCHITECTURE.md.
#![forbid(unsafe_code)]

pub mod activator;
pub mod adapters;
pub mod api;
pub mod app;
pub mod autoscale;
pub mod check;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod context;
pub mod engine;
pub mod files;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod inventory;
pub mod journal;
pub mod lb;
pub mod metrics;
pub mod placement;
pub mod policy;
pub mod ports;
pub mod reconcile;
pub mod release;
pub mod schedule;
pub mod service;
pub mod service_startup;
pub mod sim;
pub mod ssh;
pub mod timings;
