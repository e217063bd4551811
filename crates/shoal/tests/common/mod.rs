//! Test support shared by the integration tests, one job a file:
//!
//! - [`wait`]: polling with a deadline (sync and async flavours, one implementation);
//! - [`load`]: concurrent HTTP clients counting ok/failed requests, errors and latency;
//! - [`haproxy`]: a real HAProxy process (config check, runtime API, lifetime);
//! - [`lab`]: the HAProxy protocol tests' world (HAProxy for one service, in-process replicas);
//! - [`serve`]: a real `shoal serve` process;
//! - [`stack`]: config + HAProxy + shoal for one uniquely named service on real Docker;
//! - [`docker`]: the `docker` CLI (containers of a service, inspect, image copy);
//! - [`netns`]: a second server (network namespace with its own dockerd), on a /24 from
//!   [`subnet`];
//! - [`prometheus`]: a real Prometheus and its HTTP API;
//! - [`registry`]: a real registry (Debian's `docker-registry`) and images pushed to it;
//! - [`replica`]: tiny in-process HTTP replicas for the HAProxy tests;
//! - [`tls`]: a test CA and certificates for a Docker Engine with TLS (`openssl`);
//! - [`cmd`]: running helper commands.
//!
//! Every test gets its own names, ports and processes, so tests run in parallel without
//! seeing each other.
#![allow(dead_code, unused_imports)] // each test binary uses a part of it

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub mod cmd;
pub mod docker;
pub mod haproxy;
pub mod lab;
pub mod load;
pub mod netns;
pub mod prometheus;
pub mod registry;
pub mod replica;
pub mod serve;
pub mod stack;
pub mod subnet;
pub mod tls;
pub mod wait;

pub use haproxy::Haproxy;
pub use load::{Load, Report};
pub use stack::{Opts, Stack};
pub use wait::{wait_for, wait_for_async, Wait};

/// The workload image the tests run as the service (built by scripts/build-workload-image.sh).
pub const IMAGE: &str = "shoal-workload:latest";
/// Token the test stacks use.
pub const TOKEN: &str = "test-token-0123456789";
/// How long a stack on the local engine may take to get its replicas running and UP.
pub const READY: Duration = Duration::from_secs(45);

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Path of the shoal binary under test.
pub fn shoal_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shoal"))
}

/// A command running the shoal binary under test.
pub fn shoal() -> Command {
    Command::new(shoal_bin())
}

/// A path in the repository (fixtures, examples, traces).
pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// An HTTP client for 127.0.0.1 (no proxy) with a request `timeout`; every request opens a
/// fresh connection, so each one goes through the listener's accept path.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client")
}

/// Like [`http_client`], keeping connections alive between requests.
pub fn keep_alive_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("HTTP client")
}
