//! The HAProxy runtime API ("stats socket") client, in non-interactive mode: one connection
//! per command, the command and a newline written, the answer read to EOF, all within a
//! per-command timeout.
//!
//! - `addr`: [`RuntimeAddr`], where the API listens;
//! - `client`: [`HaproxyClient`] and its commands; `exchange`: one command on the wire and
//!   reading its answer;
//! - `state`: `show servers state` ([`ServerState`]); `stat`: `show stat` ([`StatRow`]).

mod addr;
mod client;
mod exchange;
mod stat;
mod state;

#[cfg(test)]
mod tests;

pub use addr::RuntimeAddr;
pub use client::HaproxyClient;
pub use exchange::looks_failed as answer_looks_failed;
pub use stat::parse_stats;
pub use stat::{StatKind, StatRow};
pub use state::parse_servers_state;
pub use state::{AdminFlags, AdminState, CheckResult, OpState, ServerState};

/// Largest answer read from the runtime API (a full `show stat` of a big setup is far less).
const MAX_ANSWER: u64 = 64 << 20;
