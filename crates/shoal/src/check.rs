//! `shoal check`: connects to every server of a config the way `serve` would (SSH with
//! verified host keys, or `docker_host`), in parallel and bounded, and reports per server
//! whether it is usable: SSH, host key, Docker version and API, containers, the services'
//! images, clock skew. The command to run before `serve`.

use futures_util::StreamExt;
use serde::Serialize;

use crate::config::{Config, ServerConfig};
use crate::engine::{Engine, EngineError};
use crate::ssh::{SshError, SshSettings, SshTarget};
use crate::timings::ENGINE_CALL;

/// Servers checked at the same time.
pub const PARALLEL: usize = 8;

/// Clock skew beyond which a server is reported (not refused): timestamps in logs and
/// Docker's `since` filters disagree.
pub const SKEW_WARN_MS: i64 = 2_000;

/// The outcome of checking one server.
#[derive(Clone, Debug, Serialize)]
pub struct ServerCheck {
    /// Server name.
    pub server: String,
    /// `ssh://user@host:port` or the `docker_host`.
    pub endpoint: String,
    /// Whether the server is reached over SSH.
    pub ssh: bool,
    /// SSH: `ok`, `failed` or `-` (no SSH).
    pub ssh_status: String,
    /// Host key: `verified`, `unknown`, `changed`, `not checked` or `-` (no SSH).
    pub host_key: String,
    /// Docker Engine version.
    pub docker_version: Option<String>,
    /// Negotiated API version.
    pub api_version: Option<String>,
    /// shoal-managed containers there.
    pub containers: Option<u32>,
    /// `max_containers`.
    pub max_containers: u32,
    /// Images of the config's services missing there.
    pub images_missing: Vec<String>,
    /// Whether every service image is present (`None`: not asked).
    pub images_present: Option<bool>,
    /// The engine's clock minus this machine's, ms.
    pub skew_ms: Option<i64>,
    /// GPUs it has (`servers[].gpus`).
    pub gpus: Vec<String>,
    /// Whether Docker lists an `nvidia` runtime there (`None`: not asked).
    pub nvidia_runtime: Option<bool>,
    /// Whether shoal can run replicas there.
    pub usable: bool,
    /// What went wrong, in full.
    pub error: Option<String>,
    /// Worth knowing, not fatal (missing image, clock skew).
    pub warnings: Vec<String>,
}

/// Checks every server of `config`, [`PARALLEL`] at a time, SSH sockets under `run_dir`.
pub async fn check_fleet(config: &Config, run_dir: std::path::PathBuf) -> Vec<ServerCheck> {
    let settings = SshSettings::new(config, run_dir);
    let images: Vec<String> = {
        let mut v: Vec<String> = config
            .services
            .values()
            .map(|s| s.image.value.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let bound = settings.connect_timeout + ENGINE_CALL * 3;
    let mut out: Vec<ServerCheck> = futures_util::stream::iter(config.servers.iter())
        .map(|s| {
            let settings = &settings;
            let images = &images;
            async move {
                match tokio::time::timeout(bound, check_server(s, settings, images)).await {
                    Ok(c) => c,
                    Err(_) => {
                        let mut c = blank(s);
                        c.error = Some(format!(
                            "server {}: no answer within {}s",
                            s.name.value,
                            bound.as_secs()
                        ));
                        c
                    }
                }
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    out.sort_by(|a, b| a.server.cmp(&b.server));
    out
}

fn blank(s: &ServerConfig) -> ServerCheck {
    let target = SshTarget::of(s);
    ServerCheck {
        server: s.name.value.clone(),
        endpoint: match &target {
            Some(t) => format!("ssh://{}", t.display()),
            None => s
                .docker_host
                .as_ref()
                .map(|h| h.value.clone())
                .unwrap_or_default(),
        },
        ssh: target.is_some(),
        ssh_status: if target.is_some() { "failed" } else { "-" }.to_owned(),
        host_key: if target.is_some() { "not checked" } else { "-" }.to_owned(),
        docker_version: None,
        api_version: None,
        containers: None,
        max_containers: *s.max_containers,
        images_missing: Vec::new(),
        images_present: None,
        skew_ms: None,
        gpus: s.gpus.as_ref().map(|g| g.devices()).unwrap_or_default(),
        nvidia_runtime: None,
        usable: false,
        error: None,
        warnings: Vec::new(),
    }
}

async fn check_server(s: &ServerConfig, settings: &SshSettings, images: &[String]) -> ServerCheck {
    let mut c = blank(s);
    let engine = match Engine::connect(s, settings, ENGINE_CALL).await {
        Ok(e) => e,
        Err(e) => {
            if let EngineError::Ssh(se) = &e {
                c.host_key = match se.as_ref() {
                    SshError::HostKeyChanged { .. } => "changed",
                    SshError::HostKeyUnknown { .. } | SshError::NoKnownHosts { .. } => "unknown",
                    SshError::AuthRejected { .. } | SshError::Forward { .. } => "verified",
                    _ => "not checked",
                }
                .to_owned();
            } else if c.ssh {
                // SSH and the forward worked; Docker did not answer through it.
                c.ssh_status = "ok".to_owned();
                c.host_key = "verified".to_owned();
            }
            c.error = Some(e.to_string());
            return c;
        }
    };
    if c.ssh {
        c.ssh_status = "ok".to_owned();
        c.host_key = "verified".to_owned();
    }
    c.api_version = Some(engine.api_version().to_owned());
    let result = async {
        c.docker_version = Some(engine.version().await?);
        let info = engine.info().await?;
        c.skew_ms = info.skew_ms;
        c.nvidia_runtime = Some(info.nvidia_runtime);
        c.containers = Some(engine.list_managed(None).await?.len() as u32);
        let mut missing = Vec::new();
        for img in images {
            if !engine.has_image(img).await? {
                missing.push(img.clone());
            }
        }
        c.images_present = Some(missing.is_empty());
        c.images_missing = missing;
        Ok::<_, EngineError>(())
    }
    .await;
    match result {
        Ok(()) => {
            c.usable = true;
            if !c.images_missing.is_empty() {
                c.warnings.push(format!(
                    "image {} not present: serve pulls it before the first replica starts there",
                    c.images_missing.join(", ")
                ));
            }
            if !c.gpus.is_empty() && c.nvidia_runtime == Some(false) {
                c.warnings.push(format!(
                    "gpus: {} GPU(s) declared, but Docker there lists no nvidia runtime: GPU replicas \
                     fail to start unless the NVIDIA Container Toolkit is installed (nvidia-ctk runtime \
                     configure --runtime=docker, then restart dockerd)",
                    c.gpus.len()
                ));
            }
            if let Some(ms) = c.skew_ms.filter(|ms| ms.abs() > SKEW_WARN_MS) {
                c.warnings.push(format!(
                    "clock differs from this machine's by {}: check NTP there",
                    skew_text(ms)
                ));
            }
        }
        Err(e) => c.error = Some(e.to_string()),
    }
    c
}

/// `-`, `4 (0,1,2,3)`, with `no runtime` when Docker lists no nvidia runtime.
fn gpu_cell(c: &ServerCheck) -> String {
    if c.gpus.is_empty() {
        return "-".to_owned();
    }
    let runtime = match c.nvidia_runtime {
        Some(false) => ", no runtime",
        _ => "",
    };
    format!("{} ({}){runtime}", c.gpus.len(), c.gpus.join(","))
}

/// `+0.3s`, `-12.0s`.
#[must_use]
pub fn skew_text(ms: i64) -> String {
    format!(
        "{}{:.1}s",
        if ms < 0 { "-" } else { "+" },
        ms.unsigned_abs() as f64 / 1000.0
    )
}

/// The table `shoal check` prints, followed by each server's error and warnings in full.
#[must_use]
pub fn report(checks: &[ServerCheck]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let dash = || "-".to_owned();
            vec![
                c.server.clone(),
                c.endpoint.clone(),
                c.ssh_status.clone(),
                c.host_key.clone(),
                c.docker_version.clone().unwrap_or_else(dash),
                c.api_version.clone().unwrap_or_else(dash),
                c.containers
                    .map_or_else(dash, |n| format!("{n}/{}", c.max_containers)),
                match c.images_present {
                    None => dash(),
                    Some(true) => "present".to_owned(),
                    Some(false) => "missing".to_owned(),
                },
                c.skew_ms.map_or_else(dash, skew_text),
                gpu_cell(c),
                if c.usable { "yes" } else { "NO" }.to_owned(),
            ]
        })
        .collect();
    let mut out = crate::cli::table(
        &[
            "SERVER",
            "ENDPOINT",
            "SSH",
            "HOST KEY",
            "DOCKER",
            "API",
            "CONTAINERS",
            "IMAGE",
            "SKEW",
            "GPUS",
            "USABLE",
        ],
        &rows,
    );
    for c in checks {
        if let Some(e) = &c.error {
            out.push_str(&format!("\n{}: error: {e}\n", c.server));
        }
        for w in &c.warnings {
            out.push_str(&format!("\n{}: warning: {w}\n", c.server));
        }
    }
    let bad = checks.iter().filter(|c| !c.usable).count();
    out.push_str(&if bad == 0 {
        format!("\nall {} server(s) usable\n", checks.len())
    } else {
        format!("\n{bad} of {} server(s) not usable\n", checks.len())
    });
    out
}

/// A private run directory for one `shoal check` (removed by the caller).
#[must_use]
pub fn run_dir() -> std::path::PathBuf {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    std::env::temp_dir().join(format!("shoal-check-{hex}"))
}
