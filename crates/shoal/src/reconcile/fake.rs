//! In-memory fakes of the loop's IO traits (a fake fleet of Docker Engines, a fake load
//! balancer, a fake prober), sharing one [`World`]. Named as fakes: the real-part tests under
//! `tests/` run the same loop against real Docker and HAProxy. These exist so that the loop's
//! time-based behaviour runs on paused Tokio time, in milliseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;

use crate::config::{Credentials, ServerConfig};
use crate::engine::{
    ContainerInfo, ContainerSpec, ContainerState, DockerEvent, EngineError, EventStream, ImagePin,
    LABEL_DIGEST, LABEL_IMAGE,
};
use crate::lb::{HealthCheck, LbError};
use crate::ports::{Connector, DockerApi, LbServer, LoadBalancer, Prober};

/// One fake container.
#[derive(Clone, Debug)]
pub struct FakeContainer {
    /// As the engine lists it.
    pub info: ContainerInfo,
    /// Whether its health endpoint answers 2xx.
    pub healthy: bool,
}

/// One fake server.
#[derive(Clone, Debug)]
pub struct FakeServer {
    /// `false`: every call hangs (a partition, a wedged engine, sshd gone).
    pub answering: bool,
    /// `false`: its replicas cannot be reached either (the server is gone): their health
    /// checks fail, HAProxy's included.
    pub reachable: bool,
    /// Containers by id.
    pub containers: BTreeMap<String, FakeContainer>,
}

/// One fake load-balancer server.
#[derive(Clone, Debug)]
pub struct FakeLbServer {
    /// Where it sends.
    pub port: u16,
    /// In maintenance.
    pub maint: bool,
    /// Draining.
    pub drain: bool,
}

/// Everything the fakes share.
#[derive(Debug, Default)]
pub struct WorldState {
    /// Servers by name.
    pub servers: BTreeMap<String, FakeServer>,
    /// Backends: server name → server.
    pub backends: BTreeMap<String, BTreeMap<String, FakeLbServer>>,
    /// Sessions per HAProxy server name that never end (a stuck client).
    pub stuck_sessions: BTreeMap<String, u64>,
    /// New containers start healthy.
    pub new_healthy: bool,
    /// What the fake registry serves, every server pulling from it: reference → image ID.
    /// A reference not in it does not exist ("manifest unknown").
    pub images: BTreeMap<String, String>,
    /// Every image ID ever pushed: still pullable by digest after its tag moved on.
    pub pushed: BTreeSet<String>,
    /// Image IDs whose containers never pass a health check (a bad release).
    pub unhealthy_images: BTreeSet<String>,
    /// Pulls done: (server, reference).
    pub pulls: Vec<(String, String)>,
    /// CPU percent every container reports.
    pub cpu: f64,
    /// Warm-up requests fail (answer 503).
    pub warmup_fails: bool,
    /// Warm-up requests sent, by port.
    pub warmups: BTreeMap<u16, u32>,
    /// Containers ever created.
    pub created: u32,
    /// Health probes made, by port.
    pub probed: BTreeMap<u16, u32>,
    /// Events announced so far (their fake time).
    events_sent: i64,
    /// The `since` of every event stream opened, in order: (server, since).
    pub events_opened: Vec<(String, Option<i64>)>,
    /// Open event streams: (server, sender).
    listeners: Vec<(String, tokio::sync::mpsc::UnboundedSender<DockerEvent>)>,
    next_port: u16,
}

/// The image ID the fake registry gives `tag` (a test pushing `tag` again to a new image
/// uses another name for the ID).
#[must_use]
pub fn fake_image_id(tag: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(tag.as_bytes());
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The shared fake world.
#[derive(Debug, Clone)]
pub struct World(pub Arc<Mutex<WorldState>>);

impl World {
    /// A world with `servers` (all answering), new containers healthy.
    pub fn new(servers: &[&str]) -> Self {
        let st = WorldState {
            servers: servers
                .iter()
                .map(|s| {
                    (
                        (*s).to_owned(),
                        FakeServer {
                            answering: true,
                            reachable: true,
                            containers: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            new_healthy: true,
            images: BTreeMap::from([("web:1".to_owned(), fake_image_id("web:1"))]),
            pushed: BTreeSet::from([fake_image_id("web:1")]),
            next_port: 20000,
            ..Default::default()
        };
        Self(Arc::new(Mutex::new(st)))
    }

    /// Runs `f` on the state.
    pub fn with<R>(&self, f: impl FnOnce(&mut WorldState) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    /// Running containers of `service`.
    pub fn running(&self, service: &str) -> Vec<ContainerInfo> {
        self.with(|w| {
            w.servers
                .values()
                .flat_map(|s| s.containers.values())
                .filter(|c| c.info.service == service && c.info.state == ContainerState::Running)
                .map(|c| c.info.clone())
                .collect()
        })
    }

    /// Kills container `id` on `server` (it exits); with `announce`, the server's open
    /// event streams get its `die` event, as Docker's would.
    pub fn kill(&self, server: &str, id: &str, announce: bool) {
        self.with(|w| {
            let c = w
                .servers
                .get_mut(server)
                .and_then(|s| s.containers.get_mut(id))
                .expect("a fake container to kill");
            c.info.state = ContainerState::Exited;
            let service = c.info.service.clone();
            w.events_sent += 1;
            let event = DockerEvent {
                service,
                container: id.to_owned(),
                action: "die".into(),
                time: w.events_sent,
                time_nano: w.events_sent,
            };
            if announce {
                w.listeners
                    .retain(|(s, tx)| s != server || tx.send(event.clone()).is_ok());
            }
        });
    }

    /// Ends every open event stream (a dropped connection).
    pub fn end_event_streams(&self) {
        self.with(|w| w.listeners.clear());
    }

    /// Names in the backend `backend`, whatever their state.
    pub fn registered(&self, backend: &str) -> BTreeSet<String> {
        self.with(|w| {
            w.backends
                .get(backend)
                .map(|b| b.keys().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Names in `backend` that take traffic.
    pub fn in_rotation(&self, backend: &str) -> BTreeSet<String> {
        self.with(|w| {
            let Some(b) = w.backends.get(backend) else {
                return BTreeSet::new();
            };
            b.iter()
                .filter(|(_, s)| !s.maint && !s.drain && w.healthy_port(s.port))
                .map(|(n, _)| n.clone())
                .collect()
        })
    }
}

impl WorldState {
    fn healthy_port(&self, port: u16) -> bool {
        self.servers
            .values()
            .filter(|s| s.reachable)
            .flat_map(|s| s.containers.values())
            .any(|c| {
                c.info.host_port == Some(port)
                    && c.healthy
                    && c.info.state == ContainerState::Running
            })
    }

    fn server(&mut self, name: &str) -> Result<&mut FakeServer, EngineError> {
        self.servers
            .get_mut(name)
            .ok_or_else(|| EngineError::Unreachable {
                server: name.to_owned(),
                reason: "no such fake server".into(),
            })
    }
}

/// A fake engine of one server.
#[derive(Debug)]
pub struct FakeEngine {
    world: World,
    server: String,
}

impl FakeEngine {
    /// When the server does not answer: waits out the bound every call of the real engine
    /// has ([`crate::timings::ENGINE_CALL`]), then fails as it does.
    async fn gate(&self) -> Result<(), EngineError> {
        let answering = self
            .world
            .with(|w| w.servers.get(&self.server).is_some_and(|s| s.answering));
        if answering {
            return Ok(());
        }
        tokio::time::sleep(crate::timings::ENGINE_CALL).await;
        Err(EngineError::Timeout {
            server: self.server.clone(),
            op: "fake call",
            secs: crate::timings::ENGINE_CALL.as_secs(),
        })
    }

    fn not_found(&self, id: &str) -> EngineError {
        EngineError::Docker {
            server: self.server.clone(),
            op: "inspect container",
            status: Some(404),
            message: format!("no such container: {id}"),
        }
    }
}

#[async_trait]
impl DockerApi for FakeEngine {
    fn server(&self) -> &str {
        &self.server
    }
    fn api_version(&self) -> &str {
        "1.41"
    }
    async fn version(&self) -> Result<String, EngineError> {
        self.gate().await?;
        Ok("fake".into())
    }
    async fn list_managed(&self, service: Option<&str>) -> Result<Vec<ContainerInfo>, EngineError> {
        self.gate().await?;
        self.world.with(|w| {
            Ok(w.server(&self.server)?
                .containers
                .values()
                .filter(|c| service.is_none_or(|s| c.info.service == s))
                .map(|c| c.info.clone())
                .collect())
        })
    }
    async fn create_replica(
        &self,
        service: &str,
        name: &str,
        spec: &ContainerSpec,
    ) -> Result<String, EngineError> {
        self.gate().await?;
        self.world.with(|w| {
            w.created += 1;
            w.next_port += 1;
            let healthy = w.new_healthy && !w.unhealthy_images.contains(&spec.image);
            let (port, n) = (w.next_port, w.created);
            let id = format!("{:064x}", n);
            let info = ContainerInfo {
                id: id.clone(),
                name: name.to_owned(),
                service: service.to_owned(),
                server: self.server.clone(),
                revision: spec.revision.clone(),
                state: ContainerState::Running,
                status: "Up".into(),
                host_port: Some(port),
                created: i64::from(n),
                image: ImagePin {
                    reference: spec.labels.get(LABEL_IMAGE).cloned().unwrap_or_default(),
                    id: spec.image.clone(),
                    digest: spec.labels.get(LABEL_DIGEST).cloned(),
                },
                gpus: spec.gpu_devices.clone(),
                gpu_sharing: spec.gpu_sharing,
            };
            w.server(&self.server)?
                .containers
                .insert(id.clone(), FakeContainer { info, healthy });
            Ok(id)
        })
    }
    async fn host_port(&self, id: &str, _container_port: u16) -> Result<Option<u16>, EngineError> {
        self.gate().await?;
        self.world.with(|w| {
            let c = w
                .server(&self.server)?
                .containers
                .get(id)
                .map(|c| c.info.host_port);
            c.ok_or_else(|| self.not_found(id))
        })
    }
    async fn has_image(&self, _image: &str) -> Result<bool, EngineError> {
        self.gate().await?;
        Ok(true)
    }
    async fn resolve(&self, image: &str) -> Result<Option<ImagePin>, EngineError> {
        self.gate().await?;
        Ok(self.world.with(|w| {
            let id = w.images.get(image).cloned().or_else(|| {
                let by_id = image.rsplit('@').next().unwrap_or(image);
                w.pushed.get(by_id).cloned()
            })?;
            let repo = image.split('@').next().unwrap_or(image);
            let repo = repo.rsplit_once(':').map_or(repo, |(r, _)| r);
            Some(ImagePin {
                reference: image.to_owned(),
                digest: Some(format!("{repo}@{id}")),
                id,
            })
        }))
    }
    async fn pull(&self, image: &str, _auth: Option<&Credentials>) -> Result<(), EngineError> {
        self.gate().await?;
        self.world.with(|w| {
            w.pulls.push((self.server.clone(), image.to_owned()));
            let known = w.images.contains_key(image)
                || w.pushed.iter().any(|id| image.ends_with(id.as_str()));
            if known {
                Ok(())
            } else {
                Err(EngineError::Pull {
                    server: self.server.clone(),
                    image: image.to_owned(),
                    elapsed: Duration::from_millis(5),
                    message: format!("manifest for {image} not found: manifest unknown"),
                })
            }
        })
    }
    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), EngineError> {
        self.gate().await?;
        self.world.with(|w| {
            let c = w
                .server(&self.server)?
                .containers
                .get_mut(id)
                .ok_or_else(|| self.not_found(id))?;
            c.info.state = ContainerState::Exited;
            Ok(())
        })
    }
    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.gate().await?;
        self.world.with(|w| {
            w.server(&self.server)?.containers.remove(id);
            Ok(())
        })
    }
    async fn stats(&self, _id: &str) -> Result<(f64, u64), EngineError> {
        self.gate().await?;
        Ok((self.world.with(|w| w.cpu), 1 << 20))
    }
    fn events(&self, since: Option<i64>) -> EventStream {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.world.with(|w| {
            w.events_opened.push((self.server.clone(), since));
            w.listeners.push((self.server.clone(), tx));
        });
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        )
        .boxed()
    }
}

/// Connects to fake engines; a server that does not answer cannot be connected to.
#[derive(Debug)]
pub struct FakeConnector(pub World);

#[async_trait]
impl Connector for FakeConnector {
    async fn connect(
        &self,
        server: &ServerConfig,
        _timeout: Duration,
    ) -> Result<Arc<dyn DockerApi>, EngineError> {
        let name = server.name.value.clone();
        let answering = self
            .0
            .with(|w| w.servers.get(&name).is_some_and(|s| s.answering));
        if !answering {
            return Err(EngineError::Unreachable {
                server: name,
                reason: "fake server does not answer".into(),
            });
        }
        Ok(Arc::new(FakeEngine {
            world: self.0.clone(),
            server: name,
        }))
    }
}

/// A fake load balancer: a server's check passes when a healthy running container listens
/// on its port.
#[derive(Debug)]
pub struct FakeLb(pub World);

fn no_such(backend: &str, name: &str) -> LbError {
    LbError::NoSuchServer {
        backend: backend.to_owned(),
        server: name.to_owned(),
    }
}

impl FakeLb {
    fn with_server<R>(
        &self,
        backend: &str,
        name: &str,
        f: impl FnOnce(&mut FakeLbServer) -> R,
    ) -> Result<R, LbError> {
        self.0.with(|w| {
            w.backends
                .get_mut(backend)
                .and_then(|b| b.get_mut(name))
                .map(f)
                .ok_or_else(|| no_such(backend, name))
        })
    }
}

#[async_trait]
impl LoadBalancer for FakeLb {
    async fn servers(&self, backend: &str, _rise: u32) -> Result<Vec<LbServer>, LbError> {
        Ok(self.0.with(|w| {
            let Some(b) = w.backends.get(backend) else {
                return Vec::new();
            };
            b.iter()
                .map(|(name, s)| {
                    let passing = w.healthy_port(s.port);
                    let status = if s.maint {
                        "MAINT"
                    } else if !passing {
                        "DOWN"
                    } else if s.drain {
                        "DRAIN"
                    } else {
                        "UP"
                    };
                    LbServer {
                        name: name.clone(),
                        addr: "10.0.0.1".into(),
                        port: s.port,
                        status: status.into(),
                        in_rotation: !s.maint && !s.drain && passing,
                        maint: s.maint,
                        check_passing: passing,
                    }
                })
                .collect()
        }))
    }
    async fn register(
        &self,
        backend: &str,
        name: &str,
        _host: &str,
        port: u16,
        _check: &HealthCheck,
    ) -> Result<(), LbError> {
        self.0.with(|w| {
            w.backends.entry(backend.to_owned()).or_default().insert(
                name.to_owned(),
                FakeLbServer {
                    port,
                    maint: true,
                    drain: false,
                },
            );
        });
        Ok(())
    }
    async fn promote(&self, backend: &str, name: &str) -> Result<(), LbError> {
        self.with_server(backend, name, |s| {
            s.maint = false;
            s.drain = false;
        })
    }
    async fn set_addr(
        &self,
        backend: &str,
        name: &str,
        _host: &str,
        port: u16,
    ) -> Result<(), LbError> {
        self.with_server(backend, name, |s| s.port = port)
    }
    async fn drain(&self, backend: &str, name: &str) -> Result<(), LbError> {
        self.with_server(backend, name, |s| s.drain = true)
    }
    async fn sessions(&self, backend: &str, name: &str) -> Result<u64, LbError> {
        self.with_server(backend, name, |_| ())?;
        Ok(self
            .0
            .with(|w| w.stuck_sessions.get(name).copied().unwrap_or(0)))
    }
    async fn remove(&self, backend: &str, name: &str, kill_sessions: bool) -> Result<(), LbError> {
        self.0.with(|w| {
            if kill_sessions {
                w.stuck_sessions.remove(name);
            }
            w.backends
                .get_mut(backend)
                .and_then(|b| b.remove(name))
                .map(|_| ())
                .ok_or_else(|| no_such(backend, name))
        })
    }
    async fn backend_counters(
        &self,
        _frontend: &str,
        _backend: &str,
    ) -> Result<Option<crate::ports::BackendCounters>, LbError> {
        Ok(None)
    }
    async fn backend_traffic(&self, _backend: &str) -> Result<Option<(u64, u64)>, LbError> {
        Ok(None)
    }
}

/// A fake prober: healthy when a healthy running container listens on the port.
#[derive(Debug)]
pub struct FakeProber(pub World);

#[async_trait]
impl Prober for FakeProber {
    async fn probe(
        &self,
        _host: &str,
        port: u16,
        path: &str,
        _timeout: Duration,
    ) -> Result<(), String> {
        self.0.with(|w| *w.probed.entry(port).or_default() += 1);
        if self.0.with(|w| w.healthy_port(port)) {
            Ok(())
        } else {
            Err(format!("fake:{port}{path} answered 503"))
        }
    }
    async fn warmup(
        &self,
        host: &str,
        port: u16,
        w: &crate::config::WarmupConfig,
    ) -> Result<(), String> {
        let fails = self.0.with(|st| {
            *st.warmups.entry(port).or_default() += 1;
            st.warmup_fails
        });
        if fails {
            return Err(format!("fake:{port}{} answered 503", w.path.value));
        }
        self.probe(host, port, &w.path, w.timeout()).await
    }
}
