//! Every body the HTTP API sends, as types: the server builds its answers from them, the CLI
//! reads answers into them, and `/openapi.json` is generated from them.
//!
//! The JSON is the contract: field names, and whether a field is `null` or left out, are as
//! they have always been. A field that is always present but may be `null` is marked
//! `required` in the schema; a field that is left out when empty has `skip_serializing_if`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use super::model_release::{
    PullInfo, RevisionEntry, RevisionInfo, RevisionList, UpdateBody, UpdateInfo, UpdateState,
};

/// Every error: a message, plus the config issues when a reload was refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// Reload only: every problem found in the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issues: Option<Vec<ConfigIssue>>,
    /// Reload only: the config file that was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl ErrorBody {
    /// An error with only a message.
    #[must_use]
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            issues: None,
            file: None,
        }
    }
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConfigIssue {
    /// 1-based line (0: the problem has no single position).
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// What is wrong, naming the key.
    pub message: String,
}

/// `GET /`: liveness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `running`.
    pub status: String,
}

/// `GET /status`: the whole control plane at a glance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// Always `running`.
    pub status: String,
    /// shoal's version.
    pub version: String,
    /// Seconds since `shoal serve` started.
    pub uptime_seconds: u64,
    /// The config file `reload` reads.
    pub config_file: String,
    /// How many servers there are and how many answer.
    pub servers: ServerCounts,
    /// The business-hours window now; `null` when it is not valid.
    #[schema(required = true)]
    pub business_hours: Option<WindowState>,
    /// Every configured service.
    pub services: Vec<ServiceSummary>,
    /// The HAProxy shoal talks to.
    pub load_balancer: LoadBalancerInfo,
}

/// Servers in total and up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerCounts {
    /// Configured servers.
    pub total: usize,
    /// Servers whose Docker Engine answers.
    pub up: usize,
}

/// The load balancer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoadBalancerInfo {
    /// HAProxy's runtime API address (`unix:/path` or `host:port`).
    pub runtime_api: String,
}

/// A business-hours window at one instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WindowState {
    /// Whether the window is open now.
    pub open: bool,
    /// Next instant at which `open` flips, RFC 3339 in UTC; `null` if it never does.
    #[schema(required = true)]
    pub next_change: Option<String>,
    /// `next_change` with the window's local offset.
    #[schema(required = true)]
    pub next_change_local: Option<String>,
    /// The window's time zone: its IANA name, or its fixed offset.
    pub timezone: String,
}

/// `GET /services`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceList {
    /// Every configured service.
    pub services: Vec<ServiceSummary>,
}

/// One service: its config, desired and actual replicas, autoscaler state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceSummary {
    /// Service name.
    pub name: String,
    /// Image its replicas run.
    pub image: String,
    /// HAProxy frontend port.
    pub port: u32,
    /// The revision new replicas are made from (a hash of the spec and the pinned image ID);
    /// before anything was pinned, the hash of the configured spec.
    pub revision: String,
    /// Fewest replicas.
    pub min_replicas: u32,
    /// Most replicas.
    pub max_replicas: u32,
    /// Replicas the control loop converges to.
    pub desired: u32,
    /// Replicas by phase.
    pub replicas: ReplicaCounts,
    /// Threshold policy: scale up above this utilization (percent).
    pub scale_up_threshold: f64,
    /// Threshold policy: scale down below this utilization (percent).
    pub scale_down_threshold: f64,
    /// Seconds between scale actions.
    pub cooldown_period: u64,
    /// Seconds until the service may scale again.
    pub cooldown_remaining_seconds: u64,
    /// Whether the service scales only inside business hours.
    pub business_hours_only: bool,
    /// The window, when the service scales only inside business hours.
    #[schema(required = true)]
    pub business_hours: Option<WindowState>,
    /// Mean utilization at the autoscaler's last evaluation (percent).
    #[schema(required = true)]
    pub utilization: Option<f64>,
    /// The autoscaler's settings and last decision; `null` before the service runs.
    #[schema(required = true)]
    pub autoscaler: Option<AutoscalerInfo>,
    /// The health check of each replica.
    pub health_check: HealthCheckInfo,
    /// The rollout in progress, if any.
    #[schema(required = true)]
    pub rollout: Option<Rollout>,
    /// The last error of a reconcile pass, cleared by a clean pass.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// Replicas of a service by phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplicaCounts {
    /// In rotation: HAProxy reports them UP.
    pub ready: usize,
    /// Added to HAProxy, waiting for its check.
    pub joining: usize,
    /// Started, waiting for their first passing health check.
    pub starting: usize,
    /// Being drained and removed.
    pub draining: usize,
    /// All of them.
    pub total: usize,
}

/// A service's health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthCheckInfo {
    /// HTTP path probed.
    pub path: String,
    /// Seconds between probes.
    pub interval: u64,
    /// Seconds a probe may take.
    pub timeout: u64,
}

/// The autoscaler of a service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AutoscalerInfo {
    /// Which policy computes the recommendation.
    pub policy: PolicyKind,
    /// Decisions are journaled, not applied.
    pub dry_run: bool,
    /// Seconds between evaluations.
    pub check_interval: u64,
    /// Replicas held outside business hours (only for `business_hours_only` services).
    #[schema(required = true)]
    pub off_hours_replicas: Option<u32>,
    /// Target utilization (percent; target policy only).
    #[schema(required = true)]
    pub target_utilization: Option<f64>,
    /// Target sessions per replica, when the HAProxy sessions signal is on.
    #[schema(required = true)]
    pub target_sessions_per_replica: Option<f64>,
    /// The last evaluation.
    #[schema(required = true)]
    pub last_decision: Option<Decision>,
    /// What the adaptive policy has learned (adaptive policy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<LearnedCapacity>,
    /// Longest of the last few observed replica starts (creation to ready), seconds: how
    /// early replicas are started before a business-hours window opens. `None` before any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_start_seconds: Option<f64>,
}

/// The capacity per replica the adaptive policy has learned from paired samples of
/// HAProxy's request rate and CPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LearnedCapacity {
    /// Requests per second one replica serves at 100% utilization (median of the
    /// observations); `None` until enough are in (the policy then tracks CPU).
    #[schema(required = true)]
    pub requests_per_second_at_full: Option<f64>,
    /// The same at the target utilization: what the policy sizes with.
    #[schema(required = true)]
    pub requests_per_second_at_target: Option<f64>,
    /// Observations kept.
    pub observations: usize,
    /// Observations needed before the estimate is used.
    pub needed: usize,
    /// When the last observation was taken (RFC 3339).
    #[schema(required = true)]
    pub updated: Option<String>,
}

/// Which policy computes the recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// +1 above the up threshold, -1 below the down threshold.
    Threshold,
    /// Target tracking.
    Target,
    /// Sized from HAProxy's request rate and a learned capacity per replica.
    Adaptive,
}

/// One evaluation of the autoscaler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Decision {
    /// The count to apply (equal to the current count when nothing changes).
    pub desired: u32,
    /// The count the policy wanted before holds.
    pub wanted: u32,
    /// Direction of `wanted` relative to the current count.
    pub direction: Direction,
    /// Why `wanted` was not applied, if it was not.
    #[schema(required = true)]
    pub held: Option<Held>,
    /// Which rule decided: `threshold`, `target`, `window_closed`, `window_opened`,
    /// `bounds`, `no_data`.
    pub rule: String,
    /// Explanation with the numbers.
    pub reason: String,
    /// Signals evaluated.
    pub signals: Vec<Signal>,
    /// Seconds of cooldown left at evaluation time.
    pub cooldown_left: f64,
}

/// Direction of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Fewer replicas.
    Down,
    /// Same.
    Hold,
    /// More replicas.
    Up,
}

/// Why a wanted change did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    /// Within `cooldown_period` of the last action.
    Cooldown,
    /// Already at `max_replicas`.
    AtMax,
    /// Already at `min_replicas`.
    AtMin,
    /// Samples are missing.
    MissingData,
    /// The stabilization window holds a higher recommendation.
    Stabilization,
    /// Replicas are still starting.
    Starting,
    /// No server can take another replica.
    NoCapacity,
    /// Dry run: journaled, not applied.
    DryRun,
}

/// One signal of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Signal {
    /// `cpu` or `sessions`.
    pub name: String,
    /// The measured value (percent, or sessions per replica).
    pub value: f64,
    /// The threshold(s) or target it was compared with, in words.
    pub against: String,
    /// Count this signal recommends.
    pub recommends: u32,
}

/// A rollout in progress: replicas are replaced one at a time, new before old.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rollout {
    /// Revision rolled to.
    pub revision: String,
    /// Container ids still to replace.
    pub replace_ids: Vec<String>,
    /// The first surge replica on its way and the one it replaces: `[new_id, old_id]`.
    #[schema(required = true, value_type = Option<Vec<String>>, min_items = 2, max_items = 2)]
    pub surge: Option<(String, String)>,
    /// Every surge replica on its way with the one it replaces: `[[new_id, old_id], ...]`.
    #[schema(value_type = Vec<Vec<String>>)]
    pub surges: Vec<(String, String)>,
    /// Replicas replaced so far.
    pub replaced: u32,
    /// The revision rolled back to on failure.
    #[schema(required = true)]
    pub from: Option<String>,
    /// Why, when this rollout is a rollback.
    #[schema(required = true)]
    pub rollback: Option<String>,
}

/// `GET /services/{name}/stats`: a service with its replicas and their CPU and memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceStats {
    /// The service, as in `GET /services`.
    #[serde(flatten)]
    pub service: ServiceSummary,
    /// Mean utilization of the ready replicas now (percent of the CPU limit, or of one
    /// core); `null` without samples.
    #[schema(required = true)]
    pub utilization_now: Option<f64>,
    /// The CPU limit of each replica (cores), if one is set.
    #[schema(required = true)]
    pub cpu_limit_cores: Option<f64>,
    /// Every replica.
    pub containers: Vec<ReplicaStats>,
    /// Warm-up and start delays of the last replicas, and the sleep state.
    pub startup: StartupInfo,
}

/// How long new replicas took, and whether the service sleeps (`wake_on_request`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StartupInfo {
    /// The last warm-up request's duration (seconds).
    #[schema(required = true)]
    pub last_warmup_seconds: Option<f64>,
    /// Median warm-up of the last 10 replicas (seconds).
    #[schema(required = true)]
    pub median_warmup_seconds: Option<f64>,
    /// Median time from start to rotation of the last 10 replicas, warm-up included
    /// (seconds): the start delay the policy plans with.
    #[schema(required = true)]
    pub start_delay_seconds: Option<f64>,
    /// Whether the service may sleep at zero replicas and be woken by a request.
    pub wake_on_request: bool,
    /// Held at zero until a request wakes it.
    pub asleep: bool,
    /// A request is waiting for a replica.
    pub waking: bool,
    /// Seconds since traffic was last seen; `null` before any.
    #[schema(required = true)]
    pub idle_seconds: Option<f64>,
    /// Wake-ups so far.
    pub wakes: u64,
    /// Times it went to zero.
    pub sleeps: u64,
    /// Servers where GPU replicas are not started for now (their GPU runtime failed), with
    /// the error.
    pub gpu_backoff: std::collections::BTreeMap<String, String>,
}

/// One replica with its health, HAProxy state and resource use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplicaStats {
    /// Container id (first 12 characters).
    pub id: String,
    /// Container name, also its HAProxy server name.
    pub name: String,
    /// Server it runs on.
    pub server: String,
    /// `host:port` HAProxy reaches it on, once it has a published port.
    #[schema(required = true)]
    pub address: Option<String>,
    /// Lifecycle phase.
    pub phase: Phase,
    /// Docker's state.
    pub container_state: ContainerState,
    /// Docker's status text.
    pub status: String,
    /// Revision it was created from (spec and pinned image).
    pub revision: String,
    /// The image reference its revision was pinned from.
    pub image: String,
    /// Docker's ID of the image it runs (`sha256:...`).
    pub image_id: String,
    /// The repository digest of that image (`repo@sha256:...`), when it came from a registry.
    #[schema(required = true)]
    pub digest: Option<String>,
    /// Whether the last probe passed; `null` before the first probe.
    #[schema(required = true)]
    pub healthy: Option<bool>,
    /// Consecutive failed probes.
    pub health_failures: u32,
    /// The last probe's error, if it failed.
    #[schema(required = true)]
    pub last_probe_error: Option<String>,
    /// Whether HAProxy has it as a server.
    pub in_load_balancer: bool,
    /// HAProxy's view: `UP`, `DOWN`, `DRAIN`, `MAINT`.
    #[schema(required = true)]
    pub lb_status: Option<String>,
    /// CPU (percent of one core); `null` when it could not be sampled.
    #[schema(required = true)]
    pub cpu_percent: Option<f64>,
    /// CPU relative to the limit (percent).
    #[schema(required = true)]
    pub utilization: Option<f64>,
    /// Memory (bytes).
    #[schema(required = true)]
    pub memory_bytes: Option<u64>,
    /// GPU device IDs it holds.
    #[serde(default)]
    pub gpus: Vec<String>,
    /// How long its warm-up request took (seconds); `null` before it succeeded or without
    /// a warm-up.
    #[serde(default)]
    #[schema(required = true)]
    pub warmup_seconds: Option<f64>,
}

/// Where a replica is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Started; waiting for its first passing health check.
    Starting,
    /// Passed shoal's check; added to HAProxy, waiting for HAProxy's check.
    Joining,
    /// In rotation: HAProxy reports it UP.
    Ready,
    /// Being drained and removed.
    Draining,
}

/// A container's state as Docker reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

/// `GET /servers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerList {
    /// Every configured server.
    pub servers: Vec<Server>,
}

/// One server and whether its Docker Engine answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Server {
    /// Unique name.
    pub name: String,
    /// Address HAProxy reaches its replicas on.
    pub host: String,
    /// Free-form role from the config.
    #[schema(required = true)]
    pub role: Option<String>,
    /// Most containers shoal may run there.
    pub max_containers: u32,
    /// How shoal reaches its Docker Engine: `unix://`, `tcp://` or `ssh://`.
    pub endpoint: String,
    /// `up`, `unreachable` (no control path, replicas there still pass HAProxy's checks)
    /// or `down`.
    pub status: ServerState,
    /// Whether its control path answers (`status == "up"`).
    pub up: bool,
    /// Why it is not up (the control path's last error).
    #[schema(required = true)]
    pub reason: Option<String>,
    /// When `status` last changed (RFC 3339).
    #[schema(required = true)]
    pub since: Option<String>,
    /// Docker Engine version, once connected.
    #[schema(required = true)]
    pub docker_version: Option<String>,
    /// Negotiated Docker API version.
    #[schema(required = true)]
    pub api_version: Option<String>,
    /// shoal-managed containers there, all services, in any state (they count toward
    /// `max_containers`).
    pub containers: u32,
    /// Of those, the ones running (as last listed).
    pub containers_running: u32,
    /// Replicas there, all services, that HAProxy's health checks pass.
    pub serving: u32,
    /// The engine's clock minus this machine's, in milliseconds, when it reported it.
    #[schema(required = true)]
    pub clock_skew_ms: Option<i64>,
    /// When it last answered (RFC 3339).
    #[schema(required = true)]
    pub last_seen: Option<String>,
}

/// A server's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Its control path (SSH and Docker, or `docker_host`) answers.
    Up,
    /// No control path, but replicas there still pass HAProxy's health checks: they keep
    /// serving, nothing new is placed there. See `reason`.
    Unreachable,
    /// No control path and nothing there passes HAProxy's checks; see `reason`.
    Down,
}

/// Query of `GET /services/{name}/events`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Most events to return, 1 to [`MAX_EVENTS_LIMIT`] (default 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(default = 50, minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Newest events to skip, 0 to [`MAX_EVENTS_OFFSET`] (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[param(default = 0, minimum = 0, maximum = 1_000_000_000)]
    pub offset: Option<usize>,
}

/// Largest `limit` of `GET /services/{name}/events`.
pub const MAX_EVENTS_LIMIT: usize = 1000;

/// Largest `offset` of `GET /services/{name}/events` (the journal keeps far fewer events).
pub const MAX_EVENTS_OFFSET: usize = 1_000_000_000;

/// `GET /services/{name}/events`: the decision journal, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    /// The service.
    pub service: String,
    /// Events of the service in the journal.
    pub total: usize,
    /// Newest events skipped.
    pub offset: usize,
    /// Most events returned.
    pub limit: usize,
    /// The events, newest first.
    pub events: Vec<Event>,
}

/// What shoal did to a service and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Sequence number, increasing, never reused.
    pub seq: u64,
    /// RFC 3339 time.
    pub at: String,
    /// The service.
    pub service: String,
    /// What happened: `scale_up`, `scale_down`, `scale_held`, `replica_started`,
    /// `replica_ready`, `replica_replaced`, `replica_removed`, `replica_failed`, `adopted`,
    /// `rollout`, `pull`, `error`.
    pub action: String,
    /// Why, in words.
    pub reason: String,
    /// Desired count before, when the event concerns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_before: Option<u32>,
    /// Desired count after, when the event concerns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_after: Option<u32>,
    /// Container name it concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Server it concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Structured context of a decision: metric values, thresholds, policy, window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// `POST /services/{name}/scale/up|down`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScaleResponse {
    /// The service.
    pub service: String,
    /// What was done.
    pub action: ScaleAction,
    /// Desired count before.
    pub previous: u32,
    /// Desired count now.
    pub desired: u32,
}

/// A manual scale action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScaleAction {
    /// One replica more.
    ScaleUp,
    /// One replica fewer.
    ScaleDown,
}

/// `POST /config/reload`: the config was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReloadResponse {
    /// Always `true` (a refused config is an error).
    pub reloaded: bool,
    /// What changed, in words.
    pub changes: Vec<String>,
}
