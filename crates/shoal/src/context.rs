//! What the loops, the autoscalers, the commands and the API share: the config in force,
//! the fleet, the load balancer, the services' runtimes, the journal, the prober, the clock.
//! [`crate::app::App`] builds it and starts the tasks that use it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::time::Instant;

use crate::adapters::{BollardConnector, HttpProber};
use crate::clock::Clock;
use crate::config::{Config, LoadBalancerConfig};
use crate::fleet::Fleet;
use crate::journal::{Action, Journal, NewEvent};
use crate::lb::{self, HaproxyClient};
use crate::ports::{Connector, DockerApi, LoadBalancer, Prober};
use crate::service::{Phase, ServiceRuntime};
use crate::timings;

/// Builds the load-balancer client for a `load_balancer` section (again on reload).
pub type LbFactory =
    Arc<dyn Fn(&LoadBalancerConfig) -> anyhow::Result<Arc<dyn LoadBalancer>> + Send + Sync>;

/// The IO parts a [`Context`] works through: real ones in production, fakes in the loop's tests.
pub struct Parts {
    /// Connects to servers' engines.
    pub connector: Arc<dyn Connector>,
    /// Builds the load-balancer client.
    pub make_lb: LbFactory,
    /// Probes replicas' health.
    pub prober: Arc<dyn Prober>,
    /// The journal.
    pub journal: Journal,
    /// Wall-clock time.
    pub clock: Clock,
}

impl Parts {
    /// Docker over bollard, HAProxy's runtime API, HTTP probes, the journal of the config's
    /// `autoscaler.state_file`, the system clock.
    pub fn production(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            connector: Arc::new(BollardConnector::new(crate::ssh::SshSettings::new(
                config,
                crate::ssh::SshSettings::run_dir_for(&config.autoscaler.state_file),
            ))),
            make_lb: Arc::new(|lb: &LoadBalancerConfig| {
                Ok(Arc::new(HaproxyClient::from_config(lb)?) as Arc<dyn LoadBalancer>)
            }),
            prober: Arc::new(HttpProber::new()?),
            journal: Journal::open(&config.autoscaler.state_file)?,
            clock: Clock::System,
        })
    }
}

/// Image pulls by (server, image): `None` in flight, `Some(t)` failed at `t`.
type PullBook = BTreeMap<(String, String), Option<Instant>>;

/// Everything the loops, the commands and the API share.
pub struct Context {
    config: RwLock<Arc<Config>>,
    /// Servers.
    pub fleet: Arc<Fleet>,
    lb: RwLock<Arc<dyn LoadBalancer>>,
    make_lb: LbFactory,
    services: Mutex<BTreeMap<String, Arc<ServiceRuntime>>>,
    /// What happened and why.
    pub journal: Arc<Journal>,
    /// Health prober.
    pub prober: Arc<dyn Prober>,
    /// Wall-clock time for cooldowns and business hours.
    pub clock: Clock,
    /// Metrics observed as they happen (reconcile pass durations).
    pub metrics: crate::metrics::Metrics,
    /// Image pulls run in the background, never in a pass, at most once at a time per
    /// server and image, and not again within [`timings::PULL_RETRY`] of a failure.
    pulls: Arc<Mutex<PullBook>>,
    /// Serialises haproxy.cfg writes; holds the config and members last written.
    cfg_write: tokio::sync::Mutex<Option<LbWritten>>,
    /// GPU devices given to replicas not listed yet, across services.
    pub gpu_ledger: crate::reconcile::gpu_ledger::GpuLedger,
}

/// The config haproxy.cfg was last written from, and its members' fingerprint.
type LbWritten = (Arc<Config>, u64);

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("fleet", &self.fleet)
            .finish_non_exhaustive()
    }
}

/// Locks `m`, recovering it if a task panicked while holding it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Context {
    /// A context for a validated config over the given IO parts. Nothing is contacted yet.
    pub fn new(config: Config, parts: Parts) -> anyhow::Result<Self> {
        let lb = (parts.make_lb)(&config.load_balancer)?;
        let fleet = Arc::new(Fleet::new(&config, parts.connector));
        Ok(Self {
            config: RwLock::new(Arc::new(config)),
            fleet,
            lb: RwLock::new(lb),
            make_lb: parts.make_lb,
            services: Mutex::new(BTreeMap::new()),
            journal: Arc::new(parts.journal),
            prober: parts.prober,
            clock: parts.clock,
            metrics: crate::metrics::Metrics::new(),
            pulls: Arc::new(Mutex::new(BTreeMap::new())),
            cfg_write: tokio::sync::Mutex::new(None),
            gpu_ledger: crate::reconcile::gpu_ledger::GpuLedger::default(),
        })
    }

    /// The config in force.
    #[must_use]
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts a new, validated config in force: the load-balancer client and the server set
    /// follow it. Services are the caller's ([`crate::commands::reload`]).
    pub(crate) fn set_config(&self, config: Config) -> anyhow::Result<()> {
        let lb = (self.make_lb)(&config.load_balancer)?;
        *self
            .lb
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = lb;
        self.fleet.apply(&config);
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
        Ok(())
    }

    /// The load balancer in force.
    #[must_use]
    pub fn lb(&self) -> Arc<dyn LoadBalancer> {
        self.lb
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The runtime of `service`, if it is managed.
    #[must_use]
    pub fn service(&self, name: &str) -> Option<Arc<ServiceRuntime>> {
        lock(&self.services).get(name).cloned()
    }

    /// All service runtimes.
    #[must_use]
    pub fn services(&self) -> Vec<Arc<ServiceRuntime>> {
        lock(&self.services).values().cloned().collect()
    }

    /// Registers the runtime of a service (replacing any earlier one of that name).
    pub(crate) fn insert_service(&self, rt: Arc<ServiceRuntime>) {
        lock(&self.services).insert(rt.name.clone(), rt);
    }

    /// Forgets a service that was removed from the config and drained, unless it was added
    /// back meanwhile. Returns whether it was forgotten.
    pub(crate) fn forget_if_removed(&self, rt: &Arc<ServiceRuntime>) -> bool {
        let mut map = lock(&self.services);
        let still_removed = rt.update(|st| st.removed) || self.config().service(&rt.name).is_none();
        if still_removed && map.get(&rt.name).is_some_and(|x| Arc::ptr_eq(x, rt)) {
            map.remove(&rt.name);
            drop(map);
            self.journal.forget_service_state(&rt.name);
            for h in self.fleet.all() {
                h.report_serving(&rt.name, None);
            }
            self.journal.forget_learned(&rt.name);
            tracing::info!(service = rt.name, "service removed and drained");
            return true;
        }
        false
    }

    /// Whether `rt` is still the runtime of its service.
    #[must_use]
    pub fn is_current(&self, rt: &Arc<ServiceRuntime>) -> bool {
        self.service(&rt.name).is_some_and(|x| Arc::ptr_eq(&x, rt))
    }

    /// Why servers cannot take more replicas, server by server.
    #[must_use]
    pub fn capacity_report(&self) -> String {
        self.fleet
            .all()
            .iter()
            .map(|s| {
                let st = s.status();
                if st.up {
                    format!(
                        "{} has {}/{} containers",
                        s.name(),
                        st.containers,
                        *s.config.max_containers
                    )
                } else {
                    format!(
                        "{} is {} ({})",
                        s.name(),
                        st.state.as_str(),
                        st.reason.unwrap_or_else(|| "not checked yet".into())
                    )
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Pulls `image` on the engine's server in a background task, unless one already runs
    /// or the last one failed less than [`timings::PULL_RETRY`] ago.
    pub(crate) fn pull_in_background(
        &self,
        service: &str,
        engine: Arc<dyn DockerApi>,
        image: &str,
    ) {
        let key = (engine.server().to_owned(), image.to_owned());
        {
            let mut pulls = lock(&self.pulls);
            match pulls.get(&key) {
                Some(None) => return,
                Some(Some(failed)) if failed.elapsed() < timings::PULL_RETRY => return,
                _ => {}
            }
            pulls.insert(key.clone(), None);
        }
        let (pulls, journal, service) =
            (self.pulls.clone(), self.journal.clone(), service.to_owned());
        journal.record(NewEvent {
            service: &service,
            action: Action::Pull,
            reason: format!("{} has no {}: pulling it", key.0, key.1),
            server: Some(&key.0),
            ..Default::default()
        });
        let creds = self.config().credentials_for(image);
        tokio::spawn(async move {
            let started = Instant::now();
            let result = match &creds {
                Ok(c) => engine.pull(&key.1, c.as_ref()).await,
                Err(e) => Err(crate::engine::EngineError::Pull {
                    server: key.0.clone(),
                    image: key.1.clone(),
                    elapsed: std::time::Duration::ZERO,
                    message: e.clone(),
                }),
            };
            let reason = match &result {
                Ok(()) => {
                    lock(&pulls).remove(&key);
                    format!(
                        "pulled {} on {} in {:.1}s",
                        key.1,
                        key.0,
                        started.elapsed().as_secs_f64()
                    )
                }
                Err(e) => {
                    lock(&pulls).insert(key.clone(), Some(Instant::now()));
                    format!("{e}; retrying in {}s", timings::PULL_RETRY.as_secs())
                }
            };
            journal.record(NewEvent {
                service: &service,
                action: Action::Pull,
                reason,
                server: Some(&key.0),
                ..Default::default()
            });
        });
    }

    /// Writes haproxy.cfg with the current members when `load_balancer.config_file` is set
    /// (and only when its text changed), atomically and with mode 0600
    /// ([`crate::files::write_private_atomic`]).
    pub async fn write_lb_config(&self) {
        let cfg = self.config();
        let Some(path) = cfg
            .load_balancer
            .config_file
            .as_ref()
            .map(|f| f.value.clone())
        else {
            return;
        };
        let mut last = self.cfg_write.lock().await;
        // Every pass of every service ends here: with thousands of members, rendering and
        // reading the file back each time was most of a pass. Nothing changed since the
        // last write (same config, same members by their fingerprint, computed without
        // copying them): nothing to do.
        let print = self.members_fingerprint();
        if last
            .as_ref()
            .is_some_and(|(c, m)| Arc::ptr_eq(c, &cfg) && *m == print)
        {
            return;
        }
        let members = self.members();
        let text = match lb::render(&cfg, &members, None) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "rendering haproxy.cfg failed");
                return;
            }
        };
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            *last = Some((cfg, print));
            return;
        }
        match crate::files::write_private_atomic(&path, text.as_bytes()) {
            Ok(()) => *last = Some((cfg, print)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "writing haproxy.cfg failed");
            }
        }
    }

    /// A hash of [`Self::members`] (services in order, each member's name, host and port),
    /// made without copying them.
    fn members_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for rt in self.services() {
            rt.name.hash(&mut h);
            rt.update(|st| {
                for r in st.replicas.values() {
                    if let (Phase::Joining | Phase::Ready, Some(port)) = (r.phase, r.port) {
                        (&r.name, &r.host, port).hash(&mut h);
                    }
                }
            });
            0xff_u8.hash(&mut h);
        }
        h.finish()
    }

    /// Current HAProxy members (replicas that joined), by service.
    #[must_use]
    pub fn members(&self) -> BTreeMap<String, Vec<lb::Member>> {
        self.services()
            .iter()
            .map(|rt| {
                let members = rt.update(|st| {
                    st.replicas
                        .values()
                        .filter(|r| matches!(r.phase, Phase::Joining | Phase::Ready))
                        .filter_map(|r| {
                            Some(lb::Member::new(r.name.clone(), r.host.clone(), r.port?))
                        })
                        .collect()
                });
                (rt.name.clone(), members)
            })
            .collect()
    }
}
