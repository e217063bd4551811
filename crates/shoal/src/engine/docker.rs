//! The bollard connection to one server's Docker Engine.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ListContainersOptions,
    RemoveContainerOptions, StatsOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::{
    ContainerInfo, ContainerSpec, ContainerState, DockerEvent, EngineError, EventStream, ImagePin,
    EVENT_ACTIONS, GPU_DRIVER, LABEL_DIGEST, LABEL_GPUS, LABEL_GPU_SHARING, LABEL_IMAGE,
    LABEL_MANAGED, LABEL_REVISION, LABEL_SERVER, LABEL_SERVICE,
};
use crate::config::{Credentials, DockerEndpoint, ServerConfig};
use crate::ssh::{SshSettings, SshTarget, Tunnel};

/// Longest a pull may go without a progress message from Docker before it is given up. A
/// long pull that keeps making progress (a multi-GB image) is never cut.
pub const PULL_STALL: Duration = Duration::from_secs(120);

/// What `docker info` says that shoal reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    /// Containers running there (all of them).
    pub containers_running: u32,
    /// The engine's clock minus this machine's, in ms, when it reported its time.
    pub skew_ms: Option<i64>,
    /// Whether Docker lists an `nvidia` runtime (the NVIDIA Container Toolkit).
    pub nvidia_runtime: bool,
}

/// A connection to one server's Docker Engine.
#[derive(Clone, Debug)]
pub struct Engine {
    server: String,
    docker: Docker,
    timeout: Duration,
    api_version: String,
    /// The SSH connection the engine is reached through (kept open while the engine lives).
    tunnel: Option<Arc<Tunnel>>,
}

impl Engine {
    /// Connects to the server's engine and negotiates the API version; a server without
    /// `docker_host` through an SSH connection made with `ssh`.
    pub async fn connect(
        server: &ServerConfig,
        ssh: &SshSettings,
        timeout: Duration,
    ) -> Result<Self, EngineError> {
        let name = server.name.value.clone();
        let unreachable = |reason: String| EngineError::Unreachable {
            server: name.clone(),
            reason,
        };
        let secs = timeout.as_secs().max(1);
        let mut tunnel = None;
        let docker = match server.endpoint() {
            DockerEndpoint::Unix(path) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                secs,
                bollard::API_DEFAULT_VERSION,
            ),
            DockerEndpoint::Tcp(addr) => {
                Docker::connect_with_http(&addr, secs, bollard::API_DEFAULT_VERSION)
            }
            DockerEndpoint::TcpTls { addr, cert_path } => {
                super::tls::check_cert_files(&cert_path).map_err(unreachable)?;
                let (ca, cert, key) = super::tls::cert_files(&cert_path);
                Docker::connect_with_ssl(
                    &addr,
                    &key,
                    &cert,
                    &ca,
                    secs,
                    bollard::API_DEFAULT_VERSION,
                )
            }
            DockerEndpoint::Ssh { .. } => {
                let target = SshTarget::of(server).expect("an SSH endpoint has a target");
                let t = Tunnel::open(&target, ssh)
                    .await
                    .map_err(|e| EngineError::Ssh(Box::new(e)))?;
                let docker = Docker::connect_with_unix(
                    &t.local_socket().to_string_lossy(),
                    secs,
                    bollard::API_DEFAULT_VERSION,
                );
                tunnel = Some(Arc::new(t));
                docker
            }
        }
        .map_err(|e| unreachable(e.to_string()))?;
        let tls_dir = match server.endpoint() {
            DockerEndpoint::TcpTls { cert_path, .. } => Some(cert_path),
            _ => None,
        };
        let docker = bounded(&name, "version negotiation", timeout, async {
            docker.negotiate_version().await
        })
        .await
        .map_err(|e| match &tls_dir {
            Some(dir) => super::tls::explain(e, dir),
            None => e,
        })?;
        let engine = Engine {
            api_version: docker.client_version().to_string(),
            server: name,
            docker,
            timeout,
            tunnel,
        };
        engine.ping().await?;
        Ok(engine)
    }

    /// The server this engine belongs to.
    #[must_use]
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The negotiated API version.
    #[must_use]
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    async fn call<T, F>(&self, op: &'static str, f: F) -> Result<T, EngineError>
    where
        F: Future<Output = Result<T, bollard::errors::Error>>,
    {
        if let Some(t) = &self.tunnel {
            if !t.is_alive() {
                return Err(EngineError::Unreachable {
                    server: self.server.clone(),
                    reason: format!("the SSH connection to {} ended", t.target().display()),
                });
            }
        }
        bounded(&self.server, op, self.timeout, f).await
    }

    /// Whether the engine is reached over SSH and that connection has ended.
    #[must_use]
    pub fn transport_lost(&self) -> bool {
        self.tunnel.as_ref().is_some_and(|t| !t.is_alive())
    }

    /// Containers running (all, not only shoal's) and the engine's clock minus this
    /// machine's, in milliseconds (the midpoint of the call is taken as "now").
    pub async fn info(&self) -> Result<EngineInfo, EngineError> {
        let before = jiff::Timestamp::now();
        let info = self.call("info", self.docker.info()).await?;
        let after = jiff::Timestamp::now();
        let mid = before.as_millisecond() + (after.as_millisecond() - before.as_millisecond()) / 2;
        let skew_ms = info
            .system_time
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_millisecond() - mid);
        Ok(EngineInfo {
            containers_running: info.containers_running.unwrap_or(0).max(0) as u32,
            skew_ms,
            nvidia_runtime: info
                .runtimes
                .as_ref()
                .is_some_and(|r| r.keys().any(|k| k.starts_with("nvidia"))),
        })
    }

    /// Checks the engine answers.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.call("ping", self.docker.ping()).await.map(|_| ())
    }

    /// The engine's version string.
    pub async fn version(&self) -> Result<String, EngineError> {
        let v = self.call("version", self.docker.version()).await?;
        Ok(v.version.unwrap_or_default())
    }

    /// Every shoal-managed container on this server (of `service` when given), in any state.
    pub async fn list_managed(
        &self,
        service: Option<&str>,
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(s) = service {
            labels.push(format!("{LABEL_SERVICE}={s}"));
        }
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), labels)])),
            ..Default::default()
        };
        let list = self
            .call("list containers", self.docker.list_containers(Some(opts)))
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                let state = match c.state.map(|s| s.to_string()).as_deref() {
                    Some("created") => ContainerState::Created,
                    Some("running") => ContainerState::Running,
                    Some("restarting") => ContainerState::Restarting,
                    Some("exited") => ContainerState::Exited,
                    Some("paused") => ContainerState::Paused,
                    Some("removing") => ContainerState::Removing,
                    Some("dead") => ContainerState::Dead,
                    _ => ContainerState::Unknown,
                };
                let host_port = c.ports.unwrap_or_default().iter().find_map(|p| {
                    // Docker lists one entry per address family; any carries the same port.
                    p.public_port
                        .filter(|_| p.ip.as_deref().is_none_or(|ip| !ip.contains(':')))
                });
                Some(ContainerInfo {
                    id: c.id?,
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_owned(),
                    service: labels.get(LABEL_SERVICE)?.clone(),
                    server: labels.get(LABEL_SERVER).cloned().unwrap_or_default(),
                    revision: labels.get(LABEL_REVISION).cloned().unwrap_or_default(),
                    state,
                    status: c.status.unwrap_or_default(),
                    host_port,
                    created: c.created.unwrap_or_default(),
                    image: ImagePin {
                        reference: labels
                            .get(LABEL_IMAGE)
                            .cloned()
                            .or(c.image)
                            .unwrap_or_default(),
                        id: c.image_id.unwrap_or_default(),
                        digest: labels.get(LABEL_DIGEST).cloned(),
                    },
                    gpus: labels
                        .get(LABEL_GPUS)
                        .map(|g| {
                            g.split(',')
                                .filter(|d| !d.is_empty())
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                    gpu_sharing: labels.get(LABEL_GPU_SHARING).is_some_and(|v| v == "true"),
                })
            })
            .collect())
    }

    /// The events of shoal-managed containers ([`EVENT_ACTIONS`]), from `since` (unix
    /// seconds; events of that second again) or from now. Opening the stream is bounded like
    /// any call; the stream itself runs until the connection ends (`None`) or fails.
    pub fn events(&self, since: Option<i64>) -> EventStream {
        if let Some(t) = &self.tunnel {
            if !t.is_alive() {
                let err = EngineError::Unreachable {
                    server: self.server.clone(),
                    reason: format!("the SSH connection to {} ended", t.target().display()),
                };
                return futures_util::stream::once(async move { Err(err) }).boxed();
            }
        }
        let opts = EventsOptions {
            since: since.map(|s| s.to_string()),
            until: None,
            filters: Some(HashMap::from([
                ("type".to_owned(), vec!["container".to_owned()]),
                ("label".to_owned(), vec![format!("{LABEL_MANAGED}=true")]),
                (
                    "event".to_owned(),
                    EVENT_ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
                ),
            ])),
        };
        let (server, timeout) = (self.server.clone(), self.timeout);
        self.docker
            .events(Some(opts))
            .filter_map(move |item| {
                let out = match item {
                    Ok(m) => {
                        let actor = m.actor.unwrap_or_default();
                        let labels = actor.attributes.unwrap_or_default();
                        let action = m.action.unwrap_or_default();
                        match (labels.get(LABEL_SERVICE), actor.id) {
                            (Some(service), Some(container)) => Some(Ok(DockerEvent {
                                service: service.clone(),
                                container,
                                action: action.split(':').next().unwrap_or_default().to_owned(),
                                time: m.time.unwrap_or_default(),
                                time_nano: m.time_nano.unwrap_or_default(),
                            })),
                            _ => None,
                        }
                    }
                    Err(e) => Some(Err(docker_error(&server, "events", timeout, e))),
                };
                std::future::ready(out)
            })
            .boxed()
    }

    /// Creates and starts a replica of `service` named `name`, publishing its port on a free
    /// host port. The image must be there ([`Engine::has_image`], [`Engine::pull`]). A
    /// replica that does not start is removed: nothing half-made stays behind.
    pub async fn create_replica(
        &self,
        service: &str,
        name: &str,
        spec: &ContainerSpec,
    ) -> Result<String, EngineError> {
        let id = self.create(service, name, spec).await?;
        if let Err(e) = self.start(&id, spec).await {
            let _ = self.remove(&id).await;
            return Err(e);
        }
        Ok(id)
    }

    /// Starts a created replica; a GPU replica on a server without a GPU runtime fails with
    /// [`EngineError::NoGpuRuntime`].
    pub async fn start(&self, id: &str, spec: &ContainerSpec) -> Result<(), EngineError> {
        self.call("start container", self.docker.start_container(id, None))
            .await
            .map_err(|e| gpu_runtime_error(e, &spec.gpu_devices))
    }

    /// Creates (does not start) a replica of `service` named `name`, with its labels, port,
    /// limits and, for a GPU replica, the device request of its `gpu_devices`.
    pub async fn create(
        &self,
        service: &str,
        name: &str,
        spec: &ContainerSpec,
    ) -> Result<String, EngineError> {
        let port_key = format!("{}/tcp", spec.container_port);
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.extend([
            (LABEL_SERVICE.to_owned(), service.to_owned()),
            (LABEL_SERVER.to_owned(), self.server.clone()),
            (LABEL_REVISION.to_owned(), spec.revision.clone()),
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
        ]);
        let device_requests = (!spec.gpu_devices.is_empty()).then(|| {
            labels.insert(LABEL_GPUS.to_owned(), spec.gpu_devices.join(","));
            if spec.gpu_sharing {
                labels.insert(LABEL_GPU_SHARING.to_owned(), "true".to_owned());
            }
            vec![DeviceRequest {
                driver: Some(GPU_DRIVER.to_owned()),
                count: None,
                device_ids: Some(spec.gpu_devices.clone()),
                capabilities: Some(vec![vec!["gpu".to_owned()]]),
                options: None,
            }]
        });
        let restart = match spec.restart_policy.as_str() {
            "always" => RestartPolicyNameEnum::ALWAYS,
            "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
            "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
            _ => RestartPolicyNameEnum::NO,
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.clone()),
            cmd: spec.cmd.clone(),
            labels: Some(labels),
            exposed_ports: Some(vec![port_key.clone()]),
            stop_timeout: Some(spec.stop_timeout as i64),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    port_key,
                    Some(vec![PortBinding {
                        host_ip: None,
                        host_port: Some(String::new()),
                    }]),
                )])),
                binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
                restart_policy: Some(RestartPolicy {
                    name: Some(restart),
                    maximum_retry_count: None,
                }),
                nano_cpus: spec.nano_cpus,
                memory: spec.memory,
                device_requests,
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = || CreateContainerOptions {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        // Pulling is the caller's business (in the background); a missing image is an error.
        let created = self
            .call(
                "create container",
                self.docker.create_container(Some(opts()), body),
            )
            .await?;
        Ok(created.id)
    }

    /// The host port a container's `container_port` is published on.
    pub async fn host_port(
        &self,
        id: &str,
        container_port: u16,
    ) -> Result<Option<u16>, EngineError> {
        let c = self
            .call("inspect container", self.docker.inspect_container(id, None))
            .await?;
        let key = format!("{container_port}/tcp");
        Ok(c.network_settings
            .and_then(|n| n.ports)
            .and_then(|mut p| p.remove(&key))
            .flatten()
            .and_then(|b| b.into_iter().find_map(|b| b.host_port?.parse().ok())))
    }

    /// Whether the engine has `image` locally.
    pub async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        match self
            .call("inspect image", self.docker.inspect_image(image))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// What `image` (a reference, an ID or `repo@digest`) is here: its ID and the repository
    /// digest of `image`'s repository; `None` when the engine does not have it.
    pub async fn resolve(&self, image: &str) -> Result<Option<ImagePin>, EngineError> {
        match self
            .call("inspect image", self.docker.inspect_image(image))
            .await
        {
            Ok(i) => Ok(Some(ImagePin {
                reference: image.to_owned(),
                id: i.id.unwrap_or_default(),
                digest: pick_digest(image, &i.repo_digests.unwrap_or_default()),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Pulls an image, with the registry's credentials when given. Not bounded as a whole:
    /// a multi-GB pull takes what it takes; it is given up only when Docker sends no progress
    /// for [`PULL_STALL`]. A failure carries Docker's own reason and the time it took.
    pub async fn pull(&self, image: &str, auth: Option<&Credentials>) -> Result<(), EngineError> {
        let (from_image, tag) = split_image(image);
        let opts = CreateImageOptions {
            from_image: Some(from_image.to_owned()),
            tag: (!tag.is_empty()).then(|| tag.to_owned()),
            ..Default::default()
        };
        let creds = auth.map(|c| bollard::auth::DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(c.registry.clone()),
            ..Default::default()
        });
        if let Some(t) = &self.tunnel {
            if !t.is_alive() {
                return Err(EngineError::Unreachable {
                    server: self.server.clone(),
                    reason: format!("the SSH connection to {} ended", t.target().display()),
                });
            }
        }
        // The client's request timeout (the engine call bound) would cut a long pull: this
        // one request goes through a client without it, watched for stalls instead.
        let docker = self
            .docker
            .clone()
            .with_timeout(Duration::from_secs(7 * 24 * 3600));
        let started = tokio::time::Instant::now();
        let fail = |message: String| EngineError::Pull {
            server: self.server.clone(),
            image: image.to_owned(),
            elapsed: started.elapsed(),
            message,
        };
        let mut stream = docker.create_image(Some(opts), None, creds);
        loop {
            match tokio::time::timeout(PULL_STALL, stream.next()).await {
                Err(_) => {
                    return Err(fail(format!(
                        "no progress from Docker for {}s",
                        PULL_STALL.as_secs()
                    )))
                }
                Ok(None) => return Ok(()),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => {
                    let message = match e {
                        bollard::errors::Error::DockerStreamError { error } => error,
                        bollard::errors::Error::DockerResponseServerError { message, .. } => {
                            message
                        }
                        other => other.to_string(),
                    };
                    return Err(fail(message));
                }
            }
        }
    }

    /// Stops a container, giving it `grace` before SIGKILL.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let opts = StopContainerOptions {
            t: Some(grace.as_secs() as i32),
            ..Default::default()
        };
        let r = bounded(
            &self.server,
            "stop container",
            self.timeout + grace,
            self.docker.stop_container(id, Some(opts)),
        )
        .await;
        match r {
            // 304: already stopped.
            Err(EngineError::Docker {
                status: Some(304), ..
            }) => Ok(()),
            other => other,
        }
    }

    /// Removes a container, killing it if it still runs. Absent containers are not an error.
    pub async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: false,
            ..Default::default()
        };
        match self
            .call(
                "remove container",
                self.docker.remove_container(id, Some(opts)),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// One CPU/memory sample: (CPU percent as `docker stats` shows it, memory bytes).
    pub async fn stats(&self, id: &str) -> Result<(f64, u64), EngineError> {
        let opts = StatsOptions {
            stream: false,
            one_shot: false,
        };
        let docker = self.docker.clone();
        let id = id.to_owned();
        let s = bounded(&self.server, "stats", self.timeout, async move {
            match docker.stats(&id, Some(opts)).next().await {
                Some(r) => r,
                None => Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 500,
                    message: "empty stats stream".to_owned(),
                }),
            }
        })
        .await?;
        let cpu = s.cpu_stats.as_ref();
        let pre = s.precpu_stats.as_ref();
        let total = |c: Option<&bollard::models::ContainerCpuStats>| {
            c.and_then(|c| c.cpu_usage.as_ref()?.total_usage)
                .unwrap_or(0)
        };
        let system = |c: Option<&bollard::models::ContainerCpuStats>| {
            c.and_then(|c| c.system_cpu_usage).unwrap_or(0)
        };
        let cpu_delta = total(cpu).saturating_sub(total(pre)) as f64;
        let sys_delta = system(cpu).saturating_sub(system(pre)) as f64;
        let online = cpu.and_then(|c| c.online_cpus).unwrap_or(1).max(1) as f64;
        let percent = if sys_delta > 0.0 {
            cpu_delta / sys_delta * online * 100.0
        } else {
            0.0
        };
        let mem = s.memory_stats.and_then(|m| m.usage).unwrap_or(0);
        Ok((percent, mem))
    }
}

/// The digest among `repo_digests` (`repo@sha256:...`) of `image`'s repository, if any.
fn pick_digest(image: &str, repo_digests: &[String]) -> Option<String> {
    let repo = split_image(image).0;
    let repo = repo.split('@').next().unwrap_or(repo);
    repo_digests
        .iter()
        .find(|d| d.split('@').next() == Some(repo))
        .cloned()
}

/// Splits `repo:tag` (default tag `latest`), leaving registry ports and digests intact.
fn split_image(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

async fn bounded<T, F>(
    server: &str,
    op: &'static str,
    limit: Duration,
    f: F,
) -> Result<T, EngineError>
where
    F: Future<Output = Result<T, bollard::errors::Error>>,
{
    match tokio::time::timeout(limit, f).await {
        Err(_) => Err(EngineError::Timeout {
            server: server.to_owned(),
            op,
            secs: limit.as_secs(),
        }),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(docker_error(server, op, limit, e)),
    }
}

/// A start that failed because the server has no runtime for the GPU device request is
/// told apart from other failures (Docker: `could not select device driver "nvidia" with
/// capabilities: [[gpu]]`): the server is fine, it just cannot run GPU replicas.
fn gpu_runtime_error(e: EngineError, devices: &[String]) -> EngineError {
    match e {
        EngineError::Docker {
            server, message, ..
        } if !devices.is_empty()
            && (message.contains("could not select device driver")
                || message.contains("nvidia-container-cli")
                || message.contains("unknown or invalid runtime name: nvidia")) =>
        {
            EngineError::NoGpuRuntime {
                server,
                driver: GPU_DRIVER,
                message,
            }
        }
        other => other,
    }
}

fn docker_error(
    server: &str,
    op: &'static str,
    limit: Duration,
    e: bollard::errors::Error,
) -> EngineError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Docker {
            server: server.to_owned(),
            op,
            status: Some(status_code),
            message,
        },
        bollard::errors::Error::RequestTimeoutError => EngineError::Timeout {
            server: server.to_owned(),
            op,
            secs: limit.as_secs(),
        },
        other => EngineError::Docker {
            server: server.to_owned(),
            op,
            status: None,
            message: with_causes(&other),
        },
    }
}

/// `e` and the errors it came from, outermost first (hyper's "client error (Connect)" alone
/// does not say that a TLS certificate was refused, nor why).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_into_repo_and_tag() {
        assert_eq!(
            split_image("ollama/ollama:latest"),
            ("ollama/ollama", "latest")
        );
        assert_eq!(split_image("ollama/ollama"), ("ollama/ollama", "latest"));
        assert_eq!(
            split_image("10.77.0.1:5000/app"),
            ("10.77.0.1:5000/app", "latest")
        );
        assert_eq!(
            split_image("10.77.0.1:5000/app:v2"),
            ("10.77.0.1:5000/app", "v2")
        );
        assert_eq!(
            split_image("10.77.0.1:5000/app@sha256:ab"),
            ("10.77.0.1:5000/app@sha256:ab", "")
        );
    }

    #[test]
    fn the_digest_of_the_image_repository_is_picked() {
        let d = vec![
            "other/app@sha256:11".to_owned(),
            "10.77.0.1:5000/app@sha256:22".to_owned(),
        ];
        assert_eq!(
            pick_digest("10.77.0.1:5000/app:v2", &d).as_deref(),
            Some("10.77.0.1:5000/app@sha256:22")
        );
        assert_eq!(
            pick_digest("10.77.0.1:5000/app@sha256:22", &d).as_deref(),
            Some("10.77.0.1:5000/app@sha256:22")
        );
        assert_eq!(pick_digest("app:1", &d), None);
    }
}
