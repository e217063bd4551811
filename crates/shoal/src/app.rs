//! `serve`'s composition root: builds the [`Context`] over the production IO parts and starts
//! the fleet monitor, one control loop and one autoscaler per service.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::time::Instant;

use crate::autoscale::Autoscaler;
use crate::config::Config;
use crate::context::{Context, Parts};
use crate::reconcile::{self, ServiceRuntime, ServiceState};
use crate::timings;

/// The running control plane.
#[derive(Debug)]
pub struct App {
    ctx: Arc<Context>,
    /// The config file `reload` reads again.
    pub config_path: PathBuf,
    /// When `serve` started.
    pub started: Instant,
}

impl Deref for App {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl App {
    /// Builds the app for a validated config with the production parts. Nothing is
    /// contacted yet.
    pub fn new(config: Config, config_path: PathBuf) -> anyhow::Result<Arc<Self>> {
        let parts = Parts::production(&config)?;
        Self::with_parts(config, config_path, parts)
    }

    /// Builds the app over the given IO parts.
    pub fn with_parts(
        config: Config,
        config_path: PathBuf,
        parts: Parts,
    ) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            ctx: Arc::new(Context::new(config, parts)?),
            config_path,
            started: Instant::now(),
        }))
    }

    /// The shared context.
    #[must_use]
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Checks the fleet once, then starts the fleet monitor and one loop and one autoscaler
    /// per service.
    pub async fn start(&self) {
        self.fleet.check_all(timings::ENGINE_CALL).await;
        tokio::spawn(
            self.fleet
                .clone()
                .monitor(timings::MONITOR_EVERY, timings::ENGINE_CALL),
        );
        let ctx = Arc::downgrade(&self.ctx);
        let wake: crate::fleet::Wake = Arc::new(move |service: &str| {
            let rt = ctx.upgrade().and_then(|c| c.service(service));
            rt.map(|rt| rt.wake.notify_one()).is_some()
        });
        tokio::spawn(self.fleet.clone().watch_events(wake));
        let names: Vec<String> = self.config().services.keys().cloned().collect();
        for name in names {
            self.spawn_service(&name);
        }
    }

    /// Starts the loop and the autoscaler of `name`, from its saved state if it has one.
    pub(crate) fn spawn_service(&self, name: &str) -> Arc<ServiceRuntime> {
        let saved = self.journal.load_service_states().remove(name);
        // The revision it ran before a restart: new replicas keep being made from it (the
        // same image ID) until an update moves it.
        let target = self
            .journal
            .revisions(name)
            .into_iter()
            .next()
            .map(|r| r.revision);
        if let (Some(t), Some(svc)) = (&target, self.config().service(name)) {
            let spec = crate::engine::ContainerSpec::from_service(svc).with_image(&t.spec.image);
            if spec.revision != t.spec.revision || svc.image.value != t.spec.image {
                self.journal.record(crate::journal::NewEvent {
                    service: name,
                    action: crate::journal::Action::Update,
                    reason: format!(
                        "the config differs from the revision running ({}); `shoal deploy {name}` rolls it out",
                        t.describe()
                    ),
                    ..Default::default()
                });
            }
        }
        let mut state = ServiceState {
            last_action: saved.and_then(|s| s.last_action),
            saved_desired: saved.and_then(|s| s.desired),
            target,
            ..ServiceState::default()
        };
        // What the adaptive policy learned before a restart.
        if let Some(learned) = self.journal.load_learned().remove(name) {
            state.policy.learned = learned;
        }
        let rt = Arc::new(ServiceRuntime::new(name, state));
        self.insert_service(rt.clone());
        tokio::spawn(reconcile::run_service(self.ctx.clone(), rt.clone()));
        tokio::spawn(Autoscaler::new(self.ctx.clone(), rt.clone()).run());
        tokio::spawn(crate::activator::sleep::watch(self.ctx.clone(), rt.clone()));
        rt
    }
}
