//! Releases: pinned revisions and the updates that move a service between them.
//!
//! A [`Revision`] is what a replica is made of, exactly: the container spec from the config
//! and the image pinned to its Docker image ID (and, when it came from a registry, its
//! repository digest) at pull time. Replicas are created from the ID, never from the tag, so
//! a tag pushed again (`:latest`) never changes what "the previous revision" means. The
//! journal keeps the last revisions of each service ([`crate::journal::Journal::revisions`]),
//! which survive a restart.
//!
//! An update ([`UpdateStatus`]) is a deploy, a rolling update or a rollback: pull on every
//! up server concurrently (`update.rs`), then a rollout replaces the replicas, one surge at a
//! time, health-gated (the planner); a new replica that fails rolls every replaced replica
//! back to the previous revision.

mod update;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::{ContainerSpec, ImagePin, LABEL_DIGEST, LABEL_IMAGE};

pub use update::{rollback, start, UpdateError, UpdateRequest};

/// Revisions of a service the journal keeps.
pub const KEEP_REVISIONS: usize = 10;

/// What replicas of one revision are made of: the spec and the exact image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// 12 hex characters: a hash of the spec and the image ID (the `io.shoal.revision` label).
    pub id: String,
    /// The image as pinned: the reference it came from, its ID and digest.
    pub image: ImagePin,
    /// The container spec (its `image` the reference; replicas are created from the ID).
    pub spec: ContainerSpec,
    /// When it was first pinned (RFC 3339).
    pub created_at: String,
}

impl Revision {
    /// The revision of `spec` (whose `image` is the reference) with its image pinned to `pin`.
    #[must_use]
    pub fn new(spec: ContainerSpec, pin: ImagePin) -> Self {
        let mut h = Sha256::new();
        h.update(format!("{}\0{}", spec.revision, pin.id).as_bytes());
        let id = h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            id,
            image: pin,
            spec,
            created_at: jiff::Timestamp::now().to_string(),
        }
    }

    /// What a replica of this revision is created from: the pinned image ID, the revision
    /// label, the reference and digest as labels.
    #[must_use]
    pub fn container_spec(&self) -> ContainerSpec {
        let mut s = self.spec.clone();
        s.image = self.image.id.clone();
        s.revision = self.id.clone();
        s.labels
            .insert(LABEL_IMAGE.to_owned(), self.image.reference.clone());
        if let Some(d) = &self.image.digest {
            s.labels.insert(LABEL_DIGEST.to_owned(), d.clone());
        }
        s
    }

    /// What a server pulls to get this revision's image: the digest when there is one (the
    /// tag may point elsewhere by now), else the reference.
    #[must_use]
    pub fn pull_ref(&self) -> &str {
        self.image
            .digest
            .as_deref()
            .unwrap_or(&self.image.reference)
    }

    /// One line: `id (reference, sha256:0123456789ab)`.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {})",
            self.id,
            self.image.reference,
            short_image_id(&self.image.id)
        )
    }
}

/// A revision named `id` of a fixed spec (planner and loop tests).
#[cfg(test)]
#[must_use]
pub fn test_revision(id: &str) -> Revision {
    let cfg = crate::config::Config::parse(
        "servers: [{host: h, name: s}]\nservices:\n  web: {image: web:1, port: 80}\n",
        "t",
    )
    .expect("test config");
    let mut r = Revision::new(
        ContainerSpec::from_service(&cfg.services["web"]),
        ImagePin {
            reference: "web:1".into(),
            id: format!("sha256:{id}"),
            digest: None,
        },
    );
    r.id = id.to_owned();
    r
}

/// `sha256:` and the first 12 hex characters of an image ID.
#[must_use]
pub fn short_image_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

/// What kind of update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateKind {
    /// `deploy`: replicas of another revision are replaced; images pulled only where missing.
    Deploy,
    /// `rolling-update`: the image is pulled again everywhere; every replica is replaced.
    RollingUpdate,
    /// `rollback`: back to the previous revision.
    Rollback,
}

/// Where an update stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdatePhase {
    /// Pulling the image on the servers.
    Pulling,
    /// Replacing replicas with the new revision.
    Rolling,
    /// A new replica failed: replacing the replaced replicas with the previous revision.
    RollingBack,
    /// Every replica runs the new revision.
    Done,
    /// It failed and every replica is back on the previous revision.
    RolledBack,
    /// It failed before anything was replaced (a pull), or could not roll back.
    Failed,
}

impl UpdatePhase {
    /// Whether the update still runs (a second one is refused meanwhile).
    #[must_use]
    pub const fn running(self) -> bool {
        matches!(self, Self::Pulling | Self::Rolling | Self::RollingBack)
    }

    /// Its name, as the API shows it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pulling => "pulling",
            Self::Rolling => "rolling",
            Self::RollingBack => "rolling_back",
            Self::Done => "done",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
        }
    }
}

/// One server's pull.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullProgress {
    /// Server.
    pub server: String,
    /// `pending`, `pulling`, `pulled`, `present` (not pulled: already there), `failed`.
    pub state: String,
    /// Seconds it took (or has taken until it failed).
    pub seconds: Option<f64>,
    /// Docker's reason, when it failed.
    pub error: Option<String>,
    /// The image ID it resolved to.
    pub image_id: Option<String>,
}

/// An update of a service: the one running, or the last one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// Deploy, rolling update or rollback.
    pub kind: UpdateKind,
    /// Where it stands.
    pub phase: UpdatePhase,
    /// The image reference asked for.
    pub image: String,
    /// Pulls, server by server.
    pub pulls: Vec<PullProgress>,
    /// The revision the service ran before (rolled back to on failure).
    pub from: Option<Revision>,
    /// The revision rolled to, once the pulls resolved it.
    pub to: Option<Revision>,
    /// Replicas to replace.
    pub to_replace: u32,
    /// Replicas replaced so far (by the rollback, once it rolls back).
    pub replaced: u32,
    /// Why it failed or was rolled back.
    pub reason: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
}

impl UpdateStatus {
    /// Marks it ended in `phase` now.
    pub fn finish(&mut self, phase: UpdatePhase, reason: Option<String>) {
        self.phase = phase;
        if reason.is_some() {
            self.reason = reason;
        }
        self.finished_at = Some(jiff::Timestamp::now().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str) -> ContainerSpec {
        let cfg = crate::config::Config::parse(
            &format!(
                "servers: [{{host: h, name: s}}]\nservices:\n  a: {{image: {image}, port: 80}}\n"
            ),
            "t",
        )
        .unwrap();
        ContainerSpec::from_service(&cfg.services["a"])
    }

    fn pin(id: &str) -> ImagePin {
        ImagePin {
            reference: "reg/app:v".into(),
            id: id.into(),
            digest: Some(format!("reg/app@{id}")),
        }
    }

    #[test]
    fn a_revision_pins_the_image_id_and_changes_with_it() {
        let a = Revision::new(spec("reg/app:v"), pin("sha256:aaaa"));
        let b = Revision::new(spec("reg/app:v"), pin("sha256:bbbb"));
        assert_ne!(a.id, b.id, "same tag, another image: another revision");
        assert_eq!(a.id.len(), 12);
        let c = a.container_spec();
        assert_eq!(c.image, "sha256:aaaa", "created from the ID, not the tag");
        assert_eq!(c.revision, a.id);
        assert_eq!(c.labels[LABEL_IMAGE], "reg/app:v");
        assert_eq!(c.labels[LABEL_DIGEST], "reg/app@sha256:aaaa");
        assert_eq!(a.pull_ref(), "reg/app@sha256:aaaa");
        let other_spec = Revision::new(spec("reg/app:w"), pin("sha256:aaaa"));
        assert_ne!(other_spec.id, a.id, "another spec: another revision");
    }
}
