//! One Docker Engine API connection per server. The only module that knows bollard.
//!
//! Every call is bounded by a timeout, so a slow or dead server delays only the caller that
//! asked it, never the other servers.
//!
//! - `docker`: the connection ([`Engine`]) and its calls;
//! - `spec`: what a replica is made of ([`ContainerSpec`]) and its revision hash;
//! - `tls`: the client certificate files of a `tcp://` engine with TLS.

use serde::Serialize;

mod docker;
mod spec;
pub mod tls;

pub use docker::{Engine, EngineInfo, PULL_STALL};

/// A server's stream of container events ([`crate::ports::DockerApi::events`]).
pub type EventStream = futures_util::stream::BoxStream<'static, Result<DockerEvent, EngineError>>;
pub use spec::ContainerSpec;

/// Label: the service a container belongs to.
pub const LABEL_SERVICE: &str = "io.shoal.service";
/// Label: the server name (as configured) the container was placed on.
pub const LABEL_SERVER: &str = "io.shoal.server";
/// Label: hash of the service spec the container was created from.
pub const LABEL_REVISION: &str = "io.shoal.revision";
/// Label: the image reference a replica's pinned image was resolved from (`repo:tag`).
pub const LABEL_IMAGE: &str = "io.shoal.image";
/// Label: the repository digest of a replica's pinned image (`repo@sha256:...`), when the
/// image came from a registry.
pub const LABEL_DIGEST: &str = "io.shoal.digest";
/// Label: marks containers shoal manages; others are never touched.
pub const LABEL_MANAGED: &str = "io.shoal.managed";
/// Label: the GPU device IDs placement gave the replica (comma-separated).
pub const LABEL_GPUS: &str = "io.shoal.gpus";
/// Label: `true` when the replica's GPUs may be shared with other sharing replicas.
pub const LABEL_GPU_SHARING: &str = "io.shoal.gpu-sharing";
/// The Docker device driver a GPU replica asks for.
pub const GPU_DRIVER: &str = "nvidia";

/// Why an engine call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The server cannot be reached with the configured transport.
    #[error("server {server}: {reason}")]
    Unreachable {
        /// Server name.
        server: String,
        /// Why.
        reason: String,
    },
    /// The call did not finish in time.
    #[error("server {server}: {op} timed out after {secs}s")]
    Timeout {
        /// Server name.
        server: String,
        /// What was attempted.
        op: &'static str,
        /// The limit.
        secs: u64,
    },
    /// The SSH connection could not be made.
    #[error("{0}")]
    Ssh(Box<crate::ssh::SshError>),
    /// An image pull failed: Docker's own reason and how long it ran.
    #[error("server {server}: pulling {image} failed after {:.1}s: {message}", elapsed.as_secs_f64())]
    Pull {
        /// Server name.
        server: String,
        /// The image reference.
        image: String,
        /// How long the pull ran before it failed.
        elapsed: std::time::Duration,
        /// Docker's message (or why shoal gave up on it).
        message: String,
    },
    /// The server has no runtime for the GPU device request (no NVIDIA Container Toolkit).
    #[error(
        "server {server}: no GPU runtime: Docker cannot run the {driver:?} device driver there \
         (install the NVIDIA Container Toolkit and restart dockerd); Docker said: {message}"
    )]
    NoGpuRuntime {
        /// Server name.
        server: String,
        /// The driver asked for.
        driver: &'static str,
        /// Docker's message.
        message: String,
    },
    /// Docker answered with an error.
    #[error("server {server}: {op} failed: {message}")]
    Docker {
        /// Server name.
        server: String,
        /// What was attempted.
        op: &'static str,
        /// HTTP status from the engine, when there was one.
        status: Option<u16>,
        /// Docker's message.
        message: String,
    },
}

impl EngineError {
    /// The engine answered (with an HTTP status, a pull's outcome, a missing GPU runtime):
    /// the control path to the server works, whatever the call's own fault was.
    #[must_use]
    pub const fn engine_answered(&self) -> bool {
        matches!(
            self,
            Self::Docker {
                status: Some(_),
                ..
            } | Self::Pull { .. }
                | Self::NoGpuRuntime { .. }
        )
    }

    /// Docker said the object does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            EngineError::Docker {
                status: Some(404),
                ..
            }
        )
    }
}

/// Lifecycle state of a container as Docker reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Docker's restart policy is restarting it.
    Restarting,
    /// Exited.
    Exited,
    /// Paused.
    Paused,
    /// Being removed.
    Removing,
    /// Dead.
    Dead,
    /// Anything else.
    Unknown,
}

impl ContainerState {
    /// Docker's word for it (`running`, `exited`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Exited => "exited",
            Self::Paused => "paused",
            Self::Removing => "removing",
            Self::Dead => "dead",
            Self::Unknown => "unknown",
        }
    }
}

/// The exact image a container runs (or an image resolves to): the reference it was asked
/// for, Docker's image ID and, when it came from a registry, its repository digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ImagePin {
    /// The reference (`repo:tag`) it was resolved from.
    pub reference: String,
    /// Docker's image ID (`sha256:...`), the same on every server for the same image.
    pub id: String,
    /// `repo@sha256:...` of the registry manifest, when pulled from a registry.
    pub digest: Option<String>,
}

/// A shoal-managed container as listed by Docker.
#[derive(Clone, Debug, Serialize)]
pub struct ContainerInfo {
    /// Full container id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// `io.shoal.service`.
    pub service: String,
    /// `io.shoal.server`.
    pub server: String,
    /// `io.shoal.revision`.
    pub revision: String,
    /// State.
    pub state: ContainerState,
    /// Docker's human status ("Up 3 minutes").
    pub status: String,
    /// Host port the service port is published on, when running.
    pub host_port: Option<u16>,
    /// Creation time, unix seconds.
    pub created: i64,
    /// The image it runs (ID from Docker; reference and digest from its labels).
    pub image: ImagePin,
    /// GPU device IDs it holds (`io.shoal.gpus`).
    pub gpus: Vec<String>,
    /// Whether it shares them (`io.shoal.gpu-sharing`).
    pub gpu_sharing: bool,
}

/// The container events shoal listens for: the ones after which a replica may have stopped
/// serving (`health_status` carries `healthy` or `unhealthy` after a colon). Not `kill`: it
/// is a signal on its way, sent while the container still runs; a pass it woke would find
/// the replica running and probe it as it dies, holding the pass up until the probe's
/// timeout. The `die` that follows a fatal signal is what wakes the loop.
pub const EVENT_ACTIONS: [&str; 5] = ["die", "stop", "oom", "destroy", "health_status"];

/// One container event of a shoal-managed container, from a server's event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerEvent {
    /// `io.shoal.service` of the container.
    pub service: String,
    /// Container id.
    pub container: String,
    /// Docker's action, up to a colon (`die`, `kill`, `health_status`, ...).
    pub action: String,
    /// When it happened, unix seconds (what `since` takes).
    pub time: i64,
    /// When it happened, unix nanoseconds (to skip events seen before a reconnect).
    pub time_nano: i64,
}
