//! The `docker` CLI: the host's engine, or any engine through a prepared [`Command`].

use std::process::{Command, Stdio};

use super::cmd;
use super::IMAGE;

/// A `docker` command against the host's engine.
pub fn docker() -> Command {
    Command::new("docker")
}

/// Fails the test early with a clear message when the workload image is missing.
pub fn require_image() {
    let out = docker()
        .args(["image", "inspect", "--format", "{{.Id}}", IMAGE])
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "image {IMAGE} is missing: run scripts/build-workload-image.sh (the test script does)"
    );
}

/// Label shoal puts on every container of `service`.
pub fn service_label(service: &str) -> String {
    format!("io.shoal.service={service}")
}

/// Ids (sorted) of the containers with `label` on the engine `docker` talks to (all states
/// when `all`); empty when that engine does not answer.
pub fn ids_with_label(mut docker: Command, label: &str, all: bool) -> Vec<String> {
    let filter = format!("label={label}");
    docker.args(["ps", "-q", "--no-trunc", "--filter", &filter]);
    if all {
        docker.arg("-a");
    }
    let out = docker.output().expect("docker ps");
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

/// Ids of the containers of `service` on the host's engine (all states when `all`).
pub fn container_ids(service: &str, all: bool) -> Vec<String> {
    ids_with_label(docker(), &service_label(service), all)
}

/// Removes every container of `service` (labelled by shoal) on the host's engine.
pub fn remove_service_containers(service: &str) {
    for id in container_ids(service, true) {
        cmd::run_quiet("docker", &["rm", "-f", &id]);
    }
}

/// `docker inspect --format FORMAT ID` on the engine `docker` talks to, trimmed.
pub fn inspect(mut docker: Command, id: &str, format: &str) -> String {
    cmd::stdout(docker.args(["inspect", "--format", format, id]))
}

/// `docker kill ID` on the host's engine; panics when it fails.
pub fn kill(id: &str) {
    cmd::run("docker", &["kill", id]);
}

/// `docker save IMAGE | <docker> load`, with pipes (no shell): copies an image of the host's
/// engine into the engine `docker` talks to.
pub fn copy_image(image: &str, mut docker: Command) {
    let mut save = self::docker()
        .args(["save", image])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker save");
    let out = save.stdout.take().expect("save stdout");
    let load = docker
        .arg("load")
        .stdin(Stdio::from(out))
        .output()
        .expect("docker load");
    let saved = save.wait().expect("docker save wait");
    assert!(saved.success(), "docker save {image} failed");
    assert!(
        load.status.success(),
        "docker load into the namespace failed: {}",
        String::from_utf8_lossy(&load.stderr)
    );
}
