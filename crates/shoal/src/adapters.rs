//! The production side of [`crate::ports`]: bollard ([`crate::engine::Engine`]),
//! HAProxy's runtime API ([`crate::lb::HaproxyClient`]) and HTTP health probes (reqwest).

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Credentials, ServerConfig};
use crate::engine::{ContainerInfo, ContainerSpec, Engine, EngineError, ImagePin};
use crate::lb::{self, AdminState, HaproxyClient, HealthCheck, LbError};
use crate::ports::{Connector, DockerApi, LbServer, LoadBalancer, Prober};
use crate::ssh::SshSettings;
use async_trait::async_trait;

#[async_trait]
impl DockerApi for Engine {
    fn server(&self) -> &str {
        Engine::server(self)
    }
    fn api_version(&self) -> &str {
        Engine::api_version(self)
    }
    async fn version(&self) -> Result<String, EngineError> {
        Engine::version(self).await
    }
    async fn clock_skew_ms(&self) -> Result<Option<i64>, EngineError> {
        Ok(Engine::info(self).await?.skew_ms)
    }
    async fn list_managed(&self, service: Option<&str>) -> Result<Vec<ContainerInfo>, EngineError> {
        Engine::list_managed(self, service).await
    }
    async fn create_replica(
        &self,
        service: &str,
        name: &str,
        spec: &ContainerSpec,
    ) -> Result<String, EngineError> {
        Engine::create_replica(self, service, name, spec).await
    }
    async fn host_port(&self, id: &str, container_port: u16) -> Result<Option<u16>, EngineError> {
        Engine::host_port(self, id, container_port).await
    }
    async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        Engine::has_image(self, image).await
    }
    async fn resolve(&self, image: &str) -> Result<Option<ImagePin>, EngineError> {
        Engine::resolve(self, image).await
    }
    async fn pull(&self, image: &str, auth: Option<&Credentials>) -> Result<(), EngineError> {
        Engine::pull(self, image, auth).await
    }
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        Engine::stop(self, id, grace).await
    }
    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        Engine::remove(self, id).await
    }
    async fn stats(&self, id: &str) -> Result<(f64, u64), EngineError> {
        Engine::stats(self, id).await
    }
    fn events(&self, since: Option<i64>) -> crate::engine::EventStream {
        Engine::events(self, since)
    }
}

/// Connects with bollard ([`Engine::connect`]); servers without `docker_host` over SSH
/// with these settings.
#[derive(Debug)]
pub struct BollardConnector {
    ssh: SshSettings,
}

impl BollardConnector {
    /// A connector whose SSH connections use `ssh`.
    #[must_use]
    pub fn new(ssh: SshSettings) -> Self {
        Self { ssh }
    }
}

#[async_trait]
impl Connector for BollardConnector {
    async fn connect(
        &self,
        server: &ServerConfig,
        timeout: Duration,
    ) -> Result<Arc<dyn DockerApi>, EngineError> {
        Ok(Arc::new(Engine::connect(server, &self.ssh, timeout).await?))
    }
}

#[async_trait]
impl LoadBalancer for HaproxyClient {
    async fn servers(&self, backend: &str, rise: u32) -> Result<Vec<LbServer>, LbError> {
        Ok(self
            .servers_state(backend)
            .await?
            .into_iter()
            .map(|s| LbServer {
                status: s.status_word().to_owned(),
                in_rotation: s.in_rotation(),
                maint: s.is_maint(),
                check_passing: s.check_passing(rise),
                name: s.name,
                addr: s.addr,
                port: s.port,
            })
            .collect())
    }

    async fn register(
        &self,
        backend: &str,
        name: &str,
        host: &str,
        port: u16,
        check: &HealthCheck,
    ) -> Result<(), LbError> {
        self.register_server(backend, name, host, port, check).await
    }

    async fn promote(&self, backend: &str, name: &str) -> Result<(), LbError> {
        self.set_state(backend, name, AdminState::Ready).await
    }

    async fn set_addr(
        &self,
        backend: &str,
        name: &str,
        host: &str,
        port: u16,
    ) -> Result<(), LbError> {
        HaproxyClient::set_addr(self, backend, name, host, port).await
    }

    async fn drain(&self, backend: &str, name: &str) -> Result<(), LbError> {
        self.set_state(backend, name, AdminState::Drain).await
    }

    async fn sessions(&self, backend: &str, name: &str) -> Result<u64, LbError> {
        let row = self.server_stats(backend, name).await?;
        Ok(row.scur.saturating_add(row.qcur))
    }

    async fn remove(&self, backend: &str, name: &str, kill_sessions: bool) -> Result<(), LbError> {
        HaproxyClient::remove(self, backend, name, kill_sessions).await
    }

    async fn backend_counters(
        &self,
        frontend: &str,
        backend: &str,
    ) -> Result<Option<crate::ports::BackendCounters>, LbError> {
        let rows = self.backend_and_servers(backend).await?;
        // The frontend counts a request when it arrives; the backend's req_tot only once
        // it is answered, so under overload it shows the served rate, not the demand.
        let received = self
            .frontend_stats(frontend)
            .await?
            .iter()
            .find(|r| r.kind == lb::StatKind::Frontend)
            .map(|r| r.req_tot)
            .filter(|&n| n > 0);
        let mut c = crate::ports::BackendCounters::default();
        let mut found = false;
        for r in &rows {
            match r.kind {
                lb::StatKind::Server => {
                    c.sessions = c.sessions.saturating_add(r.scur);
                    c.queue = c.queue.saturating_add(r.qcur);
                }
                lb::StatKind::Backend => {
                    found = true;
                    c.queue = c.queue.saturating_add(r.qcur);
                    c.requests = received.unwrap_or(r.stot);
                }
                _ => {}
            }
        }
        Ok(found.then_some(c))
    }
    async fn backend_traffic(&self, backend: &str) -> Result<Option<(u64, u64)>, LbError> {
        Ok(self.backend_row(backend).await?.map(|r| (r.stot, r.scur)))
    }
}

/// HTTP GET health probes; a 2xx answer passes.
#[derive(Debug)]
pub struct HttpProber {
    http: reqwest::Client,
}

impl HttpProber {
    /// A prober that opens a fresh connection per probe (a pooled one could outlive the
    /// replica it probes).
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()?,
        })
    }
}

#[async_trait]
impl Prober for HttpProber {
    async fn probe(
        &self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let url = format!("http://{host}:{port}{path}");
        match self.http.get(&url).timeout(timeout).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("{url} answered {}", resp.status())),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }

    async fn warmup(
        &self,
        host: &str,
        port: u16,
        w: &crate::config::WarmupConfig,
    ) -> Result<(), String> {
        let url = format!("http://{host}:{port}{}", w.path.value);
        let method = reqwest::Method::from_bytes(w.method().as_bytes())
            .map_err(|e| format!("warm-up method {}: {e}", w.method()))?;
        let mut req = self.http.request(method, &url).timeout(w.timeout());
        if let Some(body) = &w.body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let what = format!("{} {url}", w.method());
        match req.send().await {
            // The whole body: for a streaming answer (Ollama's), the model has loaded when
            // it ends.
            Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("{what}: reading the answer: {e}")),
            },
            Ok(resp) => Err(format!("{what} answered {}", resp.status())),
            Err(e) if e.is_timeout() => Err(format!(
                "{what}: no answer within {}s",
                w.timeout().as_secs()
            )),
            Err(e) => Err(format!("{what}: {e}")),
        }
    }
}
