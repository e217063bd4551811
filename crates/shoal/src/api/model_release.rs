//! The bodies of updates: deploy, rolling update, rollback, their progress, revisions.
//! Re-exported by [`super::model`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `deploy` and `rolling-update` (optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// The image to run instead of the configured one: a Docker image reference
    /// (`[registry[:port]/]repo[:tag][@digest]`), checked by the server with the config's rule
    /// (400 with the reason otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 512)]
    pub image: Option<String>,
}

/// A revision: what its replicas are made of, exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevisionInfo {
    /// The revision (hash of the spec and the image ID; the `io.shoal.revision` label).
    pub id: String,
    /// The image reference it was pinned from.
    pub image: String,
    /// Docker's image ID (`sha256:...`): what the replicas are created from.
    pub image_id: String,
    /// The repository digest (`repo@sha256:...`), when the image came from a registry.
    #[schema(required = true)]
    pub digest: Option<String>,
    /// When it was pinned (RFC 3339).
    pub created_at: String,
}

/// Where an update stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Pulling the image on the servers.
    Pulling,
    /// Replacing replicas with the new revision.
    Rolling,
    /// A new replica failed: putting the previous revision back.
    RollingBack,
    /// Every replica runs the new revision.
    Done,
    /// It failed; every replica is back on the previous revision.
    RolledBack,
    /// It failed before replacing anything (a pull), or could not roll back.
    Failed,
}

/// One server's pull.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PullInfo {
    /// Server.
    pub server: String,
    /// `pending`, `pulling`, `pulled`, `present` (already there), `failed`.
    pub state: String,
    /// Seconds it took.
    #[schema(required = true)]
    pub seconds: Option<f64>,
    /// Docker's reason, when it failed.
    #[schema(required = true)]
    pub error: Option<String>,
    /// The image ID it resolved to.
    #[schema(required = true)]
    pub image_id: Option<String>,
}

/// An update: the one running or the last one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateInfo {
    /// The service.
    pub service: String,
    /// `deploy`, `rolling_update` or `rollback`.
    pub kind: String,
    /// Where it stands.
    pub phase: UpdateState,
    /// Whether it still runs.
    pub running: bool,
    /// The image reference asked for.
    pub image: String,
    /// Pulls, server by server.
    pub pulls: Vec<PullInfo>,
    /// The revision before (rolled back to on failure).
    #[schema(required = true)]
    pub from: Option<RevisionInfo>,
    /// The revision rolled to, once the image is resolved.
    #[schema(required = true)]
    pub to: Option<RevisionInfo>,
    /// Replicas to replace (by the rollback, once it rolls back).
    pub to_replace: u32,
    /// Replicas replaced so far.
    pub replaced: u32,
    /// Why it failed or was rolled back.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    #[schema(required = true)]
    pub finished_at: Option<String>,
}

/// `GET /services/{name}/revisions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevisionList {
    /// The service.
    pub service: String,
    /// The revision new replicas are made from.
    #[schema(required = true)]
    pub current: Option<String>,
    /// The revisions kept, current first.
    pub revisions: Vec<RevisionEntry>,
}

/// One revision in the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevisionEntry {
    /// The revision.
    #[serde(flatten)]
    pub revision: RevisionInfo,
    /// It is the current one.
    pub current: bool,
    /// An update to it was rolled back.
    pub failed: bool,
    /// When it last became the service's revision (RFC 3339).
    pub activated_at: String,
}
