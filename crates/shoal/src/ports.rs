//! The small traits the control loop does its IO through: one server's Docker Engine, the
//! load balancer, the health prober. Production implements them with bollard, HAProxy's
//! runtime API and reqwest ([`crate::adapters`]); the loop's tests with in-memory
//! fakes on paused time.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{Credentials, ServerConfig};
use crate::engine::{ContainerInfo, ContainerSpec, EngineError, EventStream, ImagePin};
use crate::lb::{HealthCheck, LbError};

/// One server's Docker Engine, as the loop uses it. Every call is bounded by the
/// implementation.
#[async_trait]
pub trait DockerApi: Send + Sync + Debug {
    /// The server's name.
    fn server(&self) -> &str;
    /// The negotiated API version.
    fn api_version(&self) -> &str;
    /// The engine's version (a liveness question).
    async fn version(&self) -> Result<String, EngineError>;
    /// The engine's clock minus this machine's, in ms (`None` when it does not say).
    async fn clock_skew_ms(&self) -> Result<Option<i64>, EngineError> {
        Ok(None)
    }
    /// shoal-managed containers, of one service or of all.
    async fn list_managed(&self, service: Option<&str>) -> Result<Vec<ContainerInfo>, EngineError>;
    /// Creates and starts a replica; returns its container id.
    async fn create_replica(
        &self,
        service: &str,
        name: &str,
        spec: &ContainerSpec,
    ) -> Result<String, EngineError>;
    /// The host port `container_port` of container `id` is published on.
    async fn host_port(&self, id: &str, container_port: u16) -> Result<Option<u16>, EngineError>;
    /// Whether the image is present.
    async fn has_image(&self, image: &str) -> Result<bool, EngineError>;
    /// What `image` (reference, ID or `repo@digest`) is here: ID and digest; `None` when
    /// absent.
    async fn resolve(&self, image: &str) -> Result<Option<ImagePin>, EngineError>;
    /// Pulls the image, with the registry's credentials when given; a failure carries
    /// Docker's reason and the time it took.
    async fn pull(&self, image: &str, auth: Option<&Credentials>) -> Result<(), EngineError>;
    /// Stops a container (SIGTERM, then SIGKILL after `grace`).
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), EngineError>;
    /// Removes a container (forced).
    async fn remove(&self, id: &str) -> Result<(), EngineError>;
    /// CPU percent (100 = one core) and memory bytes of a running container.
    async fn stats(&self, id: &str) -> Result<(f64, u64), EngineError>;
    /// Events of shoal-managed containers (death, stop, OOM, removal, health status)
    /// from `since` (unix seconds) or from now, until the connection ends or fails.
    fn events(&self, since: Option<i64>) -> EventStream;
}

/// Makes the engine connection of a server.
#[async_trait]
pub trait Connector: Send + Sync + Debug {
    /// Connects to `server`'s engine, each call bounded by `timeout`.
    async fn connect(
        &self,
        server: &ServerConfig,
        timeout: Duration,
    ) -> Result<Arc<dyn DockerApi>, EngineError>;
}

/// One server of a backend as the load balancer reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbServer {
    /// Server name (the replica's container name).
    pub name: String,
    /// Address it sends to (`-` when it has none).
    pub addr: String,
    /// Port it sends to.
    pub port: u16,
    /// One word: `UP`, `DOWN`, `DRAIN`, `NOLB`, `MAINT`.
    pub status: String,
    /// Whether new traffic goes to it.
    pub in_rotation: bool,
    /// Whether it is in maintenance (registered but out of rotation).
    pub maint: bool,
    /// Whether its own health check passes (last check passed, health reached `rise`).
    pub check_passing: bool,
}

/// The load balancer (HAProxy's runtime API in production).
#[async_trait]
pub trait LoadBalancer: Send + Sync + Debug {
    /// The servers of `backend`; `check_passing` judged with `rise`.
    async fn servers(&self, backend: &str, rise: u32) -> Result<Vec<LbServer>, LbError>;
    /// Adds a server in maintenance with its checks running.
    async fn register(
        &self,
        backend: &str,
        name: &str,
        host: &str,
        port: u16,
        check: &HealthCheck,
    ) -> Result<(), LbError>;
    /// Puts a registered server in rotation.
    async fn promote(&self, backend: &str, name: &str) -> Result<(), LbError>;
    /// Changes the address a server sends to.
    async fn set_addr(
        &self,
        backend: &str,
        name: &str,
        host: &str,
        port: u16,
    ) -> Result<(), LbError>;
    /// Stops sending new sessions to a server; running ones continue.
    async fn drain(&self, backend: &str, name: &str) -> Result<(), LbError>;
    /// Current plus queued sessions of a server.
    async fn sessions(&self, backend: &str, name: &str) -> Result<u64, LbError>;
    /// Removes a server: maintenance, then deletion. With `kill_sessions`, sessions still
    /// running are shut down first (a drain that timed out, a replica that is gone).
    async fn remove(&self, backend: &str, name: &str, kill_sessions: bool) -> Result<(), LbError>;
    /// A service's counters (sessions and queue of the backend, requests received by the
    /// frontend); `None` if it has no such backend.
    async fn backend_counters(
        &self,
        frontend: &str,
        backend: &str,
    ) -> Result<Option<BackendCounters>, LbError>;
    /// The backend's total sessions so far and its current ones (`stot`, `scur` of its
    /// `BACKEND` row); `None` if it has no such backend.
    async fn backend_traffic(&self, backend: &str) -> Result<Option<(u64, u64)>, LbError>;
}

/// One reading of a backend's `show stat` counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendCounters {
    /// Current sessions of its servers.
    pub sessions: u64,
    /// Requests queued: the backend's queue plus its servers'.
    pub queue: u64,
    /// Requests received since HAProxy started (a counter): the frontend's `req_tot` (HTTP
    /// requests, counted on arrival), or the backend's `stot` when the frontend has none.
    pub requests: u64,
}

/// The health prober (HTTP GET in production).
#[async_trait]
pub trait Prober: Send + Sync + Debug {
    /// Probes `http://host:port{path}`; `Err` says why it failed.
    async fn probe(
        &self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<(), String>;
    /// Sends the warm-up request `w` to `http://host:port`, bounded by its timeout; `Err`
    /// says why it failed (a non-2xx answer included).
    async fn warmup(
        &self,
        host: &str,
        port: u16,
        w: &crate::config::WarmupConfig,
    ) -> Result<(), String>;
}
