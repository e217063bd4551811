//! What a replica is made of, from a service's config, and the revision hash of that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ServiceConfig;

/// Everything needed to create one replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Image reference.
    pub image: String,
    /// Port inside the container to publish.
    pub container_port: u16,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    /// Bind mounts `src:dst[:mode]`.
    pub binds: Vec<String>,
    /// Command override.
    pub cmd: Option<Vec<String>>,
    /// Docker restart policy name.
    pub restart_policy: String,
    /// CPU limit in nano-CPUs.
    pub nano_cpus: Option<i64>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Seconds before SIGKILL on stop.
    pub stop_timeout: u64,
    /// GPUs each replica asks for (`services.*.gpus`).
    #[serde(default)]
    pub gpus: Option<crate::config::GpuRequest>,
    /// Whether replicas may share a GPU.
    #[serde(default)]
    pub gpu_sharing: bool,
    /// The devices placement gave this replica (set per replica; not in the revision).
    #[serde(default)]
    pub gpu_devices: Vec<String>,
    /// Hash of the fields above (but `gpu_devices`).
    pub revision: String,
    /// Labels added to the container beside shoal's own (the pinned image's reference and
    /// digest); not part of the hash.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl ContainerSpec {
    /// Builds the spec of a service's replicas; `revision` hashes everything that shapes them.
    #[must_use]
    pub fn from_service(svc: &ServiceConfig) -> Self {
        let mut spec = ContainerSpec {
            image: svc.image.value.clone(),
            container_port: svc.container_port(),
            env: svc.environment.iter().map(|e| e.value.clone()).collect(),
            binds: svc.volumes.iter().map(|v| v.value.clone()).collect(),
            cmd: svc.command.as_ref().map(|c| c.value.clone()),
            restart_policy: svc.restart_policy.value.clone(),
            nano_cpus: svc.cpus.as_ref().map(|c| (c.value * 1e9) as i64),
            memory: svc.memory_bytes(),
            stop_timeout: *svc.stop_timeout,
            gpus: svc.gpus.as_ref().map(|g| g.value.clone()),
            gpu_sharing: svc.gpu_sharing,
            gpu_devices: Vec::new(),
            revision: String::new(),
            labels: BTreeMap::new(),
        };
        spec.rehash();
        spec
    }

    /// The same spec with another image reference (an update's `{"image": ...}`), its
    /// revision hashed again.
    #[must_use]
    pub fn with_image(mut self, image: &str) -> Self {
        self.image = image.to_owned();
        self.rehash();
        self
    }

    fn rehash(&mut self) {
        let spec = self;
        let mut h = Sha256::new();
        h.update(
            format!(
                "{}\0{}\0{:?}\0{:?}\0{:?}\0{}\0{:?}\0{:?}",
                spec.image,
                spec.container_port,
                spec.env,
                spec.binds,
                spec.cmd,
                spec.restart_policy,
                spec.nano_cpus,
                spec.memory
            )
            .as_bytes(),
        );
        // Only when set, so the revision of a service without GPUs is what it always was.
        if let Some(g) = &spec.gpus {
            h.update(format!("\0gpus {g:?} sharing {}", spec.gpu_sharing).as_bytes());
        }
        spec.revision = h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_changes_with_the_spec_only() {
        let cfg = crate::config::Config::parse(
            "servers: [{host: h, name: s}]\nservices:\n  a: {image: x:1, port: 80}\n  b: {image: x:1, port: 81}\n  c: {image: x:2, port: 82, container_port: 80}\n",
            "t",
        )
        .unwrap();
        let a = ContainerSpec::from_service(&cfg.services["a"]);
        let b = ContainerSpec::from_service(&cfg.services["b"]);
        let c = ContainerSpec::from_service(&cfg.services["c"]);
        assert_eq!(a.revision.len(), 12);
        assert_ne!(a.revision, b.revision, "container port differs");
        assert_ne!(a.revision, c.revision, "image differs");
        assert_eq!(
            a.revision,
            ContainerSpec::from_service(&cfg.services["a"]).revision
        );
    }
}
