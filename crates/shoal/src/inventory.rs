//! One server's shoal-managed containers as last listed, shared by every service's pass, the
//! GPU inventory and the fleet monitor: at 100 servers × 10 services each pass listing its own
//! containers on every server made 500 listings a second at rest; now a server is listed
//! about once per [`crate::timings::MONITOR_EVERY`] at rest, and again only after something
//! changed there.
//!
//! A listing is reused only while nothing may have changed since it **started**: every
//! change shoal makes through [`Tracked`] (create, stop, remove), every Docker event of the
//! server and every new connection bump the server's generation, and a listing taken at an
//! older generation is not reused. Changes nobody announces (the event stream down, a
//! container started by hand) are seen once the listing is older than the caller's
//! `max_age`. Concurrent callers share one listing in flight, and its failure: ten services
//! waiting on a server that hangs wait for one timeout, not ten in a row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::config::Credentials;
use crate::context::lock;
use crate::engine::{ContainerInfo, ContainerSpec, EngineError, EventStream, ImagePin};
use crate::ports::DockerApi;
use crate::timings::LIST_TIMEOUT;

/// What one listing gave, and when and at which generation it started.
#[derive(Debug)]
struct Listing {
    generation: u64,
    /// Which attempt it was (the first is 1).
    attempt: u64,
    started: Instant,
    /// The containers, or the server's name and why the listing failed.
    result: Result<Arc<Vec<ContainerInfo>>, (String, String)>,
}

/// Counts the changes that may have happened on a server; shared by its [`Inventory`] and
/// the [`Tracked`] engine it hands out.
#[derive(Clone, Debug, Default)]
struct Generation(Arc<AtomicU64>);

impl Generation {
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The listing cache of one server.
#[derive(Debug, Default)]
pub struct Inventory {
    generation: Generation,
    /// Listings attempted so far.
    attempts: AtomicU64,
    last: Mutex<Option<Listing>>,
    flight: tokio::sync::Mutex<()>,
}

impl Inventory {
    /// Marks what was listed so far as possibly out of date (a change shoal made, an event,
    /// a new connection).
    pub fn invalidate(&self) {
        self.generation.bump();
    }

    /// Wraps `engine` so that every change made through it invalidates this inventory.
    #[must_use]
    pub fn track(&self, engine: Arc<dyn DockerApi>) -> Arc<dyn DockerApi> {
        Arc::new(Tracked {
            inner: engine,
            generation: self.generation.clone(),
        })
    }

    /// The server's shoal-managed containers (all services), from a listing that started
    /// after the last change and less than `max_age` ago, or from a new one through `engine`
    /// (bounded by [`LIST_TIMEOUT`]). `Duration::ZERO` always lists (or joins a listing
    /// that started after the call).
    pub async fn containers(
        &self,
        engine: &dyn DockerApi,
        max_age: Duration,
    ) -> Result<Arc<Vec<ContainerInfo>>, EngineError> {
        let asked = Instant::now();
        let before = self.attempts.load(Ordering::SeqCst);
        let young = |l: &Listing| l.result.is_ok() && asked.duration_since(l.started) < max_age;
        if let Some(r) = self.reusable(young) {
            return r;
        }
        let _flight = self.flight.lock().await;
        // Whoever held the flight listed, or failed, meanwhile: that attempt is shared when
        // it began after this call, or less than `max_age` before it (it was in flight).
        if let Some(r) =
            self.reusable(|l| l.attempt > before || asked.duration_since(l.started) < max_age)
        {
            return r;
        }
        let generation = self.generation.get();
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let started = Instant::now();
        let result = match tokio::time::timeout(LIST_TIMEOUT, engine.list_managed(None)).await {
            Ok(r) => r.map(Arc::new),
            Err(_) => Err(EngineError::Timeout {
                server: engine.server().to_owned(),
                op: "list containers",
                secs: LIST_TIMEOUT.as_secs(),
            }),
        };
        *lock(&self.last) = Some(Listing {
            generation,
            attempt,
            started,
            result: result.as_ref().map(Arc::clone).map_err(|e| {
                let server = engine.server().to_owned();
                let message = e.to_string();
                let reason = message
                    .strip_prefix(&format!("server {server}: "))
                    .map_or_else(|| message.clone(), str::to_owned);
                (server, reason)
            }),
        });
        result
    }

    /// The last listing's result when it is of the current generation and `ok` accepts it.
    fn reusable(
        &self,
        ok: impl Fn(&Listing) -> bool,
    ) -> Option<Result<Arc<Vec<ContainerInfo>>, EngineError>> {
        let generation = self.generation.get();
        let last = lock(&self.last);
        let l = last
            .as_ref()
            .filter(|l| l.generation == generation && ok(l))?;
        Some(match &l.result {
            Ok(v) => Ok(v.clone()),
            Err((server, reason)) => Err(EngineError::Unreachable {
                server: server.clone(),
                reason: reason.clone(),
            }),
        })
    }
}

/// A server's engine whose changes invalidate the server's [`Inventory`] once they return.
#[derive(Debug)]
struct Tracked {
    inner: Arc<dyn DockerApi>,
    generation: Generation,
}

#[async_trait]
impl DockerApi for Tracked {
    fn server(&self) -> &str {
        self.inner.server()
    }
    fn api_version(&self) -> &str {
        self.inner.api_version()
    }
    async fn version(&self) -> Result<String, EngineError> {
        self.inner.version().await
    }
    async fn clock_skew_ms(&self) -> Result<Option<i64>, EngineError> {
        self.inner.clock_skew_ms().await
    }
    async fn list_managed(&self, service: Option<&str>) -> Result<Vec<ContainerInfo>, EngineError> {
        self.inner.list_managed(service).await
    }
    async fn create_replica(
        &self,
        service: &str,
        name: &str,
        spec: &ContainerSpec,
    ) -> Result<String, EngineError> {
        let r = self.inner.create_replica(service, name, spec).await;
        self.generation.bump();
        r
    }
    async fn host_port(&self, id: &str, container_port: u16) -> Result<Option<u16>, EngineError> {
        self.inner.host_port(id, container_port).await
    }
    async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        self.inner.has_image(image).await
    }
    async fn resolve(&self, image: &str) -> Result<Option<ImagePin>, EngineError> {
        self.inner.resolve(image).await
    }
    async fn pull(&self, image: &str, auth: Option<&Credentials>) -> Result<(), EngineError> {
        self.inner.pull(image, auth).await
    }
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let r = self.inner.stop(id, grace).await;
        self.generation.bump();
        r
    }
    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let r = self.inner.remove(id).await;
        self.generation.bump();
        r
    }
    async fn stats(&self, id: &str) -> Result<(f64, u64), EngineError> {
        self.inner.stats(id).await
    }
    fn events(&self, since: Option<i64>) -> EventStream {
        self.inner.events(since)
    }
}
