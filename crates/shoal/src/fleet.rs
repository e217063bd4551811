//! The servers: one engine connection each, their liveness, and their container counts.
//!
//! A monitor pass pings every server concurrently; a server is declared down after
//! [`crate::timings::DOWN_AFTER_FAILURES`] failed passes in a row and its connection is dropped, to be made
//! again when it answers (failed connection attempts back off from 1 s to 30 s). Nothing
//! here decides what runs where.
//!
//! A server is `up` while its control path (SSH, then Docker) answers. Without one it is
//! `unreachable` while replicas there still pass HAProxy's health checks (the loops report
//! how many of theirs do, every pass: [`ServerHandle::report_serving`]), and `down` when none
//! does: they failed too, the server is gone, or nothing ran there. Only an `up` server gets
//! new replicas; the loops judge the replicas on the others by HAProxy's view.
//!
//! Each server also has an event watcher ([`Fleet::watch_events`]): it reads the server's
//! Docker event stream of shoal-managed containers and, on each event, marks the server's
//! container listing out of date and wakes the loop of the container's service, which then
//! lists (the source of truth) and decides. A dropped stream is reopened with `since` = the
//! last event's time, with backoff. The watcher counts the events and decides nothing.
//!
//! The listing itself is shared ([`ServerHandle::containers`], [`crate::inventory`]): every
//! service's pass, the GPU inventory and the monitor read one listing per server, listed
//! again after any change shoal makes there, any event, a new connection, or once it is
//! older than the caller allows (the monitor lists afresh every pass).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{Config, ServerConfig};
use crate::context::lock;
use crate::engine::EngineError;
use crate::inventory::Inventory;
use crate::placement::ServerLoad;
use crate::ports::{Connector, DockerApi};
use crate::timings::{
    DOWN_AFTER_FAILURES, EVENTS_BACKOFF, EVENTS_RECHECK, EVENT_LOOK_AGAIN, LIST_TIMEOUT,
};

/// What an event watcher does with an event: wake the loop of the service it names;
/// `false` when no such service runs here (another control plane's, a removed one).
pub type Wake = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A server's state as shoal judges it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Its control path (SSH and Docker, or `docker_host`) answers.
    Up,
    /// No control path, but replicas there still pass HAProxy's health checks: they keep
    /// serving, nothing new is placed there.
    Unreachable,
    /// No control path and nothing there passes HAProxy's checks (or not checked yet).
    #[default]
    Down,
}

impl ServerState {
    /// Its name in lower case, as the API, the CLI and the metrics show it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Unreachable => "unreachable",
            Self::Down => "down",
        }
    }
}

/// What is known about a server right now.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerStatus {
    /// Whether its control path answered the last time it was asked (within the failure
    /// grace): replicas may be started, listed and removed there.
    pub up: bool,
    /// `up`, `unreachable` or `down` (see [`ServerState`]).
    pub state: ServerState,
    /// When `state` last changed (RFC 3339).
    pub since: Option<String>,
    /// Why it is not up.
    pub reason: Option<String>,
    /// Docker Engine version, once connected.
    pub docker_version: Option<String>,
    /// Negotiated API version.
    pub api_version: Option<String>,
    /// shoal-managed containers there, all services, in any state (they count toward
    /// `max_containers`).
    pub containers: u32,
    /// Of those, the ones running.
    pub containers_running: u32,
    /// Replicas there (all services) that HAProxy's checks pass, as the loops last saw.
    pub serving: u32,
    /// The engine's clock minus this machine's, in ms (Docker's `info`, refreshed every
    /// [`SKEW_EVERY`]).
    pub skew_ms: Option<i64>,
    /// Failed passes in a row.
    #[serde(skip)]
    pub failures: u32,
    /// When it last answered.
    pub last_seen: Option<String>,
}

/// How often the monitor asks a server for its clock (`docker info` is heavier than the
/// liveness call it makes every pass).
pub const SKEW_EVERY: Duration = Duration::from_secs(60);

impl ServerStatus {
    /// Sets `state` from the control path and the replicas serving there; stamps `since`
    /// when it changed. Returns the previous state when it changed.
    fn judge(&mut self, name: &str) -> Option<ServerState> {
        let next = if self.up {
            ServerState::Up
        } else if self.serving > 0 {
            ServerState::Unreachable
        } else {
            ServerState::Down
        };
        if next == self.state && self.since.is_some() {
            return None;
        }
        let was = self.state;
        self.state = next;
        self.since = Some(jiff::Timestamp::now().to_string());
        let reason = self.reason.as_deref().unwrap_or("");
        match next {
            ServerState::Up => tracing::info!(server = name, was = was.as_str(), "server is up"),
            ServerState::Unreachable => tracing::warn!(
                server = name,
                serving = self.serving,
                reason,
                "server is unreachable; its replicas still pass HAProxy's checks and keep serving"
            ),
            ServerState::Down => tracing::warn!(server = name, reason, "server is down"),
        }
        Some(was)
    }
}

/// One server: its config, its connection and its status.
#[derive(Debug)]
pub struct ServerHandle {
    /// As configured.
    pub config: ServerConfig,
    engine: Mutex<Option<Arc<dyn DockerApi>>>,
    status: Mutex<ServerStatus>,
    /// After a failed connect: no new attempt before this instant; the backoff doubles
    /// from [`CONNECT_BACKOFF`]`.0` up to `.1` and resets once connected.
    retry: Mutex<Option<(tokio::time::Instant, Duration)>>,
    /// Docker events of services that run here, by action.
    events: Mutex<BTreeMap<String, u64>>,
    /// Whether an event watcher runs for this handle.
    watched: AtomicBool,
    /// Replicas here that HAProxy's checks pass, by service (each loop's last report).
    serving: Mutex<BTreeMap<String, u32>>,
    /// When the clock skew was last asked for.
    skew_at: Mutex<Option<tokio::time::Instant>>,
    /// Its containers as last listed, shared by every pass and the monitor.
    inventory: Inventory,
}

/// First and longest wait between two failed connection attempts to one server.
pub const CONNECT_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

impl ServerHandle {
    fn new(config: ServerConfig) -> Self {
        Self {
            config,
            engine: Mutex::new(None),
            status: Mutex::new(ServerStatus::default()),
            retry: Mutex::new(None),
            events: Mutex::new(BTreeMap::new()),
            watched: AtomicBool::new(false),
            serving: Mutex::new(BTreeMap::new()),
            skew_at: Mutex::new(None),
            inventory: Inventory::default(),
        }
    }

    /// shoal's containers here (all services), from a listing started after the last
    /// change known here and at most `max_age` ago, or a new one ([`Inventory`]). A failed
    /// listing is reported ([`Self::report_failure`]).
    pub async fn containers(
        &self,
        max_age: Duration,
    ) -> Result<Arc<Vec<crate::engine::ContainerInfo>>, EngineError> {
        let Some(engine) = self.engine() else {
            return Err(EngineError::Unreachable {
                server: self.name().to_owned(),
                reason: self
                    .status()
                    .reason
                    .unwrap_or_else(|| "not connected".into()),
            });
        };
        let r = self.inventory.containers(engine.as_ref(), max_age).await;
        if let Err(e) = &r {
            self.report_failure(e);
        }
        r
    }

    /// Records how many of `service`'s replicas here HAProxy's checks pass (`None`: the
    /// service is gone), and judges the server's state again.
    pub fn report_serving(&self, service: &str, n: Option<u32>) {
        let total = {
            let mut m = lock(&self.serving);
            match n {
                Some(n) => {
                    m.insert(service.to_owned(), n);
                }
                None => {
                    m.remove(service);
                }
            }
            m.values().copied().fold(0u32, u32::saturating_add)
        };
        let mut st = lock(&self.status);
        st.serving = total;
        st.judge(self.name());
    }

    /// Docker events received from this server for services that run here, by action.
    #[must_use]
    pub fn events_received(&self) -> BTreeMap<String, u64> {
        lock(&self.events).clone()
    }

    /// Reads this server's event stream while it is in `fleet`: on each event, calls `wake`
    /// with its service and counts it if that service runs here. The stream is opened on the current connection
    /// and opened again (from the last event's time) when it ends or fails, with backoff, or
    /// when the connection was made again.
    async fn watch(self: Arc<Self>, fleet: std::sync::Weak<Fleet>, wake: Wake) {
        use futures_util::StreamExt;
        let mut since: Option<i64> = None;
        let mut last_nano = 0_i64;
        let mut backoff = EVENTS_BACKOFF.0;
        loop {
            let current = fleet
                .upgrade()
                .and_then(|f| f.get(self.name()))
                .is_some_and(|h| Arc::ptr_eq(&h, &self));
            if !current {
                return;
            }
            let Some(engine) = self.engine() else {
                tokio::time::sleep(EVENTS_RECHECK).await;
                continue;
            };
            let opened = unix_now();
            let mut stream = engine.events(since);
            let why = loop {
                tokio::select! {
                    item = stream.next() => match item {
                        Some(Ok(ev)) => {
                            backoff = EVENTS_BACKOFF.0;
                            since = Some(ev.time);
                            if ev.time_nano <= last_nano {
                                continue; // seen before the stream was reopened
                            }
                            last_nano = ev.time_nano;
                            self.inventory.invalidate();
                            if matches!(ev.action.as_str(), "die" | "oom" | "stop") {
                                // The engine announces a death before its container list
                                // shows it (Docker 20.10: about 0.2 s): look again then.
                                let (wake, service) = (wake.clone(), ev.service.clone());
                                let me = self.clone();
                                tokio::spawn(async move {
                                    for d in EVENT_LOOK_AGAIN {
                                        tokio::time::sleep(d).await;
                                        me.inventory.invalidate();
                                        wake(&service);
                                    }
                                });
                            }
                            if wake(&ev.service) {
                                *lock(&self.events).entry(ev.action.clone()).or_default() += 1;
                                tracing::debug!(server = self.name(), service = ev.service,
                                    container = ev.container, action = ev.action, "docker event");
                            }
                        }
                        Some(Err(e)) => break e.to_string(),
                        None => break "the stream ended".to_owned(),
                    },
                    () = tokio::time::sleep(EVENTS_RECHECK) => {
                        let same = self.engine().is_some_and(|e| Arc::ptr_eq(&e, &engine));
                        if !same {
                            break "the connection was made again".to_owned();
                        }
                    }
                }
            };
            // Nothing seen on this stream: reopen from when it was opened, so what happened
            // while it was down is still delivered.
            since = since.or(Some(opened));
            tracing::debug!(
                server = self.name(),
                reason = why,
                "docker event stream reopens"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(EVENTS_BACKOFF.1);
        }
    }

    /// Server name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The engine connection, when the server is up.
    #[must_use]
    pub fn engine(&self) -> Option<Arc<dyn DockerApi>> {
        if self.status().up {
            lock(&self.engine).clone()
        } else {
            None
        }
    }

    /// A snapshot of the status.
    #[must_use]
    pub fn status(&self) -> ServerStatus {
        lock(&self.status).clone()
    }

    /// Records a failed call made by someone else (a reconcile pass), so a dead server is
    /// noticed between monitor passes too. An error the engine itself answered (a refused
    /// create: an image without a command, a port taken) says the control path works and
    /// is not counted: two of them in a row took a healthy server out of placement for
    /// every service.
    pub fn report_failure(&self, err: &EngineError) {
        if err.engine_answered() {
            return;
        }
        let mut st = lock(&self.status);
        st.failures = st.failures.saturating_add(1);
        if st.failures >= DOWN_AFTER_FAILURES && st.up {
            st.up = false;
            st.reason = Some(err.to_string());
            *lock(&self.engine) = None;
            self.inventory.invalidate();
            st.judge(self.name());
        }
    }

    /// Adjusts the container count after shoal created or removed one here.
    pub fn adjust_containers(&self, delta: i32) {
        let mut st = lock(&self.status);
        st.containers = st.containers.saturating_add_signed(delta);
    }

    /// One monitor pass: connect if needed, ping, count containers.
    pub async fn check(&self, connector: &dyn Connector, timeout: Duration) {
        let existing = lock(&self.engine).clone();
        if existing.is_none() {
            if let Some((at, _)) = *lock(&self.retry) {
                if tokio::time::Instant::now() < at {
                    return;
                }
            }
        }
        let result = async {
            let engine = match existing {
                Some(e) => e,
                None => match connector.connect(&self.config, timeout).await {
                    Ok(e) => {
                        self.inventory.invalidate();
                        self.inventory.track(e)
                    }
                    Err(e) => {
                        let mut retry = lock(&self.retry);
                        let wait = retry
                            .map_or(CONNECT_BACKOFF.0, |(_, w)| (w * 2).min(CONNECT_BACKOFF.1));
                        *retry = Some((tokio::time::Instant::now() + wait, wait));
                        return Err(e);
                    }
                },
            };
            // A partitioned server hangs rather than refuses: bound the liveness question
            // itself, so it is declared down within a few seconds.
            let version = match tokio::time::timeout(LIST_TIMEOUT, engine.version()).await {
                Ok(v) => v?,
                Err(_) => {
                    return Err(EngineError::Timeout {
                        server: self.name().to_owned(),
                        op: "version",
                        secs: LIST_TIMEOUT.as_secs(),
                    })
                }
            };
            // Every monitor pass lists afresh; the loops' passes at rest reuse it.
            let containers = self
                .inventory
                .containers(engine.as_ref(), Duration::ZERO)
                .await?;
            Ok::<_, EngineError>((engine, version, containers))
        }
        .await;
        match result {
            Ok((engine, version, containers)) => {
                *lock(&self.retry) = None;
                let api = engine.api_version().to_owned();
                let skew_due = lock(&self.skew_at)
                    .is_none_or(|t| t.elapsed() >= SKEW_EVERY || !self.status().up);
                let skew = if skew_due {
                    *lock(&self.skew_at) = Some(tokio::time::Instant::now());
                    match tokio::time::timeout(LIST_TIMEOUT, engine.clock_skew_ms()).await {
                        Ok(Ok(s)) => Some(s),
                        Ok(Err(e)) => {
                            tracing::debug!(server = self.name(), error = %e, "docker info failed");
                            None
                        }
                        Err(_) => None,
                    }
                } else {
                    None
                };
                *lock(&self.engine) = Some(engine);
                let mut st = lock(&self.status);
                st.up = true;
                st.reason = None;
                st.docker_version = Some(version);
                st.api_version = Some(api);
                st.containers = containers.len() as u32;
                st.containers_running = containers
                    .iter()
                    .filter(|c| c.state == crate::engine::ContainerState::Running)
                    .count() as u32;
                if let Some(skew) = skew {
                    st.skew_ms = skew;
                }
                st.failures = 0;
                st.last_seen = Some(jiff::Timestamp::now().to_string());
                st.judge(self.name());
            }
            Err(e) => {
                let mut st = lock(&self.status);
                st.failures = st.failures.saturating_add(1);
                if st.failures >= DOWN_AFTER_FAILURES || !st.up {
                    st.up = false;
                    st.reason = Some(e.to_string());
                    *lock(&self.engine) = None;
                    self.inventory.invalidate();
                    st.judge(self.name());
                }
            }
        }
    }
}

/// All servers of the current config.
#[derive(Debug)]
pub struct Fleet {
    servers: Mutex<BTreeMap<String, Arc<ServerHandle>>>,
    connector: Arc<dyn Connector>,
}

impl Fleet {
    /// A fleet for `config` whose engines `connector` connects (nothing connected yet).
    #[must_use]
    pub fn new(config: &Config, connector: Arc<dyn Connector>) -> Self {
        let fleet = Self {
            servers: Mutex::new(BTreeMap::new()),
            connector,
        };
        fleet.apply(config);
        fleet
    }

    /// Brings the server set in line with `config`: new servers are added, removed ones
    /// dropped, changed ones reconnected; unchanged ones keep their connection.
    pub fn apply(&self, config: &Config) {
        let mut servers = lock(&self.servers);
        let mut next = BTreeMap::new();
        for s in &config.servers {
            let keep = servers
                .get(s.name.as_str())
                .filter(|h| same_server(&h.config, s))
                .cloned();
            next.insert(
                s.name.value.clone(),
                keep.unwrap_or_else(|| Arc::new(ServerHandle::new(s.clone()))),
            );
        }
        *servers = next;
    }

    /// All servers, by name.
    #[must_use]
    pub fn all(&self) -> Vec<Arc<ServerHandle>> {
        lock(&self.servers).values().cloned().collect()
    }

    /// The server named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<ServerHandle>> {
        lock(&self.servers).get(name).cloned()
    }

    /// Checks every server concurrently.
    pub async fn check_all(&self, timeout: Duration) {
        let all = self.all();
        let connector = self.connector.as_ref();
        futures_util::future::join_all(all.iter().map(|s| s.check(connector, timeout))).await;
    }

    /// Loads for placement, with `replicas` counted per server for one service.
    #[must_use]
    pub fn loads(&self, replicas: &BTreeMap<String, u32>) -> Vec<ServerLoad> {
        self.all()
            .iter()
            .map(|s| {
                let st = s.status();
                ServerLoad {
                    name: s.name().to_owned(),
                    up: st.up,
                    max_containers: *s.config.max_containers,
                    containers: st.containers,
                    replicas: replicas.get(s.name()).copied().unwrap_or(0),
                }
            })
            .collect()
    }

    /// Keeps one event watcher (`ServerHandle::watch`) running per server of the fleet,
    /// new servers included, until the process ends.
    pub async fn watch_events(self: Arc<Self>, wake: Wake) {
        let weak = Arc::downgrade(&self);
        loop {
            for h in self.all() {
                if !h.watched.swap(true, Ordering::SeqCst) {
                    tokio::spawn(h.clone().watch(weak.clone(), wake.clone()));
                }
            }
            tokio::time::sleep(EVENTS_RECHECK).await;
        }
    }

    /// Runs the monitor until the process ends.
    pub async fn monitor(self: Arc<Self>, every: Duration, timeout: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check_all(timeout).await;
        }
    }
}

fn same_server(a: &ServerConfig, b: &ServerConfig) -> bool {
    a.endpoint() == b.endpoint()
        && a.host.value == b.host.value
        && a.max_containers.value == b.max_containers.value
}

/// Unix seconds now, for timestamps in API output.
#[must_use]
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
