//! The executor: carries out a [`Plan`]'s steps through the engine, the load balancer and
//! the journal, and records their outcome in the service's state. The only code of the
//! loop that calls them; it decides nothing. One journal event per step that changes what
//! runs or what HAProxy serves; errors are typed and returned.

use std::sync::Arc;

use tokio::time::Instant;

use crate::config::ServiceConfig;
use crate::context::Context;
use crate::engine::{ContainerInfo, ContainerSpec, ContainerState, EngineError};
use crate::fleet::unix_now;
use crate::journal::{Action, NewEvent};
use crate::lb::{HealthCheck, LbError};
use crate::ports::LoadBalancer;
use crate::reconcile::plan::{Plan, Step};
use crate::service::{GpuBackoff, Phase, Replica, ServiceRuntime, GPU_BACKOFF};

/// A step that failed; the next pass plans it again.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A Docker Engine call failed.
    #[error("{what}: {source}")]
    Engine {
        /// What was being done.
        what: String,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// A load-balancer call failed.
    #[error("{what}: {source}")]
    Lb {
        /// What was being done.
        what: String,
        /// The load balancer's error.
        #[source]
        source: LbError,
    },
}

/// Carries out the steps of one service's plans.
pub struct Executor<'a> {
    pub(super) ctx: &'a Arc<Context>,
    pub(super) rt: &'a Arc<ServiceRuntime>,
    pub(super) spec: &'a ServiceConfig,
    pub(super) container: ContainerSpec,
    pub(super) backend: String,
    pub(super) lb: Arc<dyn LoadBalancer>,
}

impl<'a> Executor<'a> {
    /// An executor for `rt` with its spec `spec`.
    #[must_use]
    pub fn new(
        ctx: &'a Arc<Context>,
        rt: &'a Arc<ServiceRuntime>,
        spec: &'a ServiceConfig,
    ) -> Self {
        Self {
            ctx,
            rt,
            spec,
            container: ContainerSpec::from_service(spec),
            backend: crate::lb::backend_name(&rt.name),
            lb: ctx.lb(),
        }
    }

    /// Runs the plan's steps in order (starts concurrently, last). Returns the errors.
    pub async fn run(&self, plan: &Plan) -> Vec<ExecError> {
        let mut errors = Vec::new();
        let mut starts = Vec::new();
        for step in &plan.steps {
            if let Step::Start {
                server,
                surge_for,
                gpus,
            } = step
            {
                starts.push((server.as_str(), surge_for.as_deref(), gpus.as_slice()));
                continue;
            }
            if let Err(e) = self.step(step).await {
                tracing::warn!(service = self.rt.name, error = %e, "step failed");
                errors.push(e);
            }
        }
        use futures_util::StreamExt;
        let starts: Vec<_> = starts
            .into_iter()
            .map(|(server, surge_for, gpus)| self.start(server, surge_for, gpus))
            .collect();
        let results: Vec<_> = futures_util::stream::iter(starts)
            .buffer_unordered(crate::timings::FANOUT)
            .collect()
            .await;
        errors.extend(results.into_iter().filter_map(Result::err));
        errors
    }

    fn journal(&self, action: Action, reason: String, replica: Option<&Replica>) {
        self.ctx.journal.record(NewEvent {
            service: &self.rt.name,
            action,
            reason,
            replica: replica.map(|r| r.name.as_str()),
            server: replica.map(|r| r.server.as_str()),
            ..Default::default()
        });
    }

    fn replica(&self, id: &str) -> Option<Replica> {
        self.rt.update(|st| st.replicas.get(id).cloned())
    }

    fn lb_err(what: String) -> impl FnOnce(LbError) -> ExecError {
        move |source| ExecError::Lb { what, source }
    }

    async fn step(&self, step: &Step) -> Result<(), ExecError> {
        let now = Instant::now();
        match step {
            Step::Adopt {
                running,
                desired,
                saved,
            } => {
                self.rt.update(|st| {
                    st.adopted = true;
                    st.desired = *desired;
                });
                self.ctx.journal.record(NewEvent {
                    service: &self.rt.name,
                    action: Action::Adopted,
                    reason: format!(
                        "started: found {running} running replica(s); desired {desired} ({}within {}..={})",
                        saved.map_or_else(String::new, |d| format!("saved desired {d}, ")),
                        *self.spec.min_replicas,
                        *self.spec.max_replicas
                    ),
                    desired: Some((*running, *desired)),
                    ..Default::default()
                });
            }
            Step::Track(r) => {
                self.journal(
                    Action::ReplicaFound,
                    format!(
                        "found {} on {} ({}, revision {}): tracking it",
                        r.name,
                        r.server,
                        r.container_state.as_str(),
                        r.revision
                    ),
                    Some(r),
                );
                self.rt.update(|st| {
                    st.replicas
                        .entry(r.id.clone())
                        .or_insert_with(|| (**r).clone());
                });
            }
            Step::Forget { id } => {
                self.rt.update(|st| st.replicas.remove(id));
            }
            Step::Lost { id, in_lb } => {
                let Some(r) = self.replica(id) else {
                    return Ok(());
                };
                if *in_lb {
                    // Nothing in flight there can complete: shut its sessions and delete it.
                    self.lb
                        .remove(&self.backend, &r.name, true)
                        .await
                        .map_err(Self::lb_err(format!(
                            "removing lost replica {} from HAProxy",
                            r.name
                        )))?;
                }
                self.rt.update(|st| st.replicas.remove(id));
                self.journal(
                    Action::ReplicaLost,
                    format!(
                        "{} is gone: its server {} does not answer or the container was removed",
                        r.name, r.server
                    ),
                    Some(&r),
                );
            }
            Step::Replace {
                id,
                reason,
                in_lb,
                rollout_surge,
            } => {
                let Some(r) = self.replica(id) else {
                    return Ok(());
                };
                if *in_lb {
                    if let Err(e) = self.lb.remove(&self.backend, &r.name, true).await {
                        tracing::warn!(replica = r.name, error = %e, "removing from HAProxy failed");
                    }
                }
                // Remove before a replacement is created: Docker's restart policy can then
                // never bring this one back next to its replacement.
                let handle = self.ctx.fleet.get(&r.server);
                if let Some(engine) = handle.as_ref().and_then(|h| h.engine()) {
                    engine
                        .remove(&r.id)
                        .await
                        .map_err(|source| ExecError::Engine {
                            what: format!("removing failed replica {}", r.name),
                            source,
                        })?;
                }
                if let Some(h) = &handle {
                    h.adjust_containers(-1);
                }
                self.rt.update(|st| {
                    st.replicas.remove(id);
                    let n = st
                        .replacements
                        .entry(reason.metric_label().to_owned())
                        .or_default();
                    *n = n.saturating_add(1);
                    if let Some(ro) = st.rollout.as_mut().filter(|_| *rollout_surge) {
                        ro.surges.remove(id);
                    }
                });
                self.journal(
                    Action::ReplicaReplaced,
                    format!(
                        "{}{} removed for replacement: {reason}",
                        r.name,
                        if *rollout_surge {
                            " (a rollout's new replica)"
                        } else {
                            ""
                        }
                    ),
                    Some(&r),
                );
            }
            Step::Register { id, drift } => {
                let Some(r) = self.replica(id) else {
                    return Ok(());
                };
                let Some(port) = r.port else { return Ok(()) };
                let check = HealthCheck::from_config(&self.spec.health_check);
                self.lb
                    .register(&self.backend, &r.name, &r.host, port, &check)
                    .await
                    .map_err(Self::lb_err(format!("adding {} to HAProxy", r.name)))?;
                self.rt.update(|st| {
                    if let Some(x) = st.replicas.get_mut(id) {
                        if x.phase != Phase::Joining {
                            x.joined_at = Some(now);
                        }
                        x.phase = Phase::Joining;
                        x.in_lb = true;
                        x.lb_status = Some("MAINT".into());
                    }
                });
                let reason = if *drift {
                    format!("{} was missing from HAProxy: added again", r.name)
                } else {
                    format!(
                        "{} passed its health check: added to HAProxy, waiting for HAProxy's check",
                        r.name
                    )
                };
                let action = if *drift {
                    Action::LbRepaired
                } else {
                    Action::ReplicaRegistered
                };
                self.journal(action, reason, Some(&r));
            }
            Step::Promote { id } => {
                let Some(r) = self.replica(id) else {
                    return Ok(());
                };
                self.lb
                    .promote(&self.backend, &r.name)
                    .await
                    .map_err(Self::lb_err(format!("putting {} in rotation", r.name)))?;
                self.mark_ready(id, &r);
            }
            Step::MarkReady { id } => {
                if let Some(r) = self.replica(id) {
                    self.mark_ready(id, &r);
                }
            }
            Step::MarkJoining { id, status } => {
                let Some(r) = self.replica(id) else {
                    return Ok(());
                };
                self.rt.update(|st| {
                    if let Some(x) = st.replicas.get_mut(id) {
                        x.phase = Phase::Joining;
                        x.joined_at = Some(now);
                        x.in_lb = true;
                        x.lb_status = Some(status.clone());
                    }
                });
                if r.phase == Phase::Ready {
                    self.journal(
                        Action::ReplicaOutOfRotation,
                        format!("{} is out of rotation: HAProxy reports it {status}", r.name),
                        Some(&r),
                    );
                }
            }
            Step::SetAddr { id } => {
                let Some(r) = self.replica(id) else {
                    return Ok(());
                };
                let Some(port) = r.port else { return Ok(()) };
                self.lb
                    .set_addr(&self.backend, &r.name, &r.host, port)
                    .await
                    .map_err(Self::lb_err(format!(
                        "correcting the address of {}",
                        r.name
                    )))?;
                self.journal(
                    Action::LbRepaired,
                    format!(
                        "HAProxy sent {} to another address: now {}:{port}",
                        r.name, r.host
                    ),
                    Some(&r),
                );
            }
            Step::RemoveStray { name } => {
                self.lb
                    .remove(&self.backend, name, true)
                    .await
                    .map_err(Self::lb_err(format!(
                        "removing HAProxy server {name} (no replica)"
                    )))?;
                self.journal(
                    Action::LbRepaired,
                    format!("HAProxy had a server {name} with no replica: removed"),
                    None,
                );
            }
            Step::CapacityShort { wanted, placed } => {
                let why = format!(
                    "wanted {wanted} more replica(s), capacity for {placed}: {}",
                    self.ctx.capacity_report()
                );
                let new = self.rt.update(|st| {
                    let new = st.last_error.as_deref() != Some(why.as_str());
                    st.last_error = Some(why.clone());
                    new
                });
                if new {
                    tracing::warn!(service = self.rt.name, "{why}");
                }
            }
            Step::Drain { id, why } => {
                let Some(r) = self.rt.update(|st| {
                    let r = st.replicas.get_mut(id)?;
                    r.phase = Phase::Draining;
                    Some(r.clone())
                }) else {
                    return Ok(());
                };
                self.journal(
                    Action::ReplicaDraining,
                    format!("draining {} ({why})", r.name),
                    Some(&r),
                );
                self.spawn_drain(r, why.clone());
            }
            Step::RolloutAdvance { .. }
            | Step::RolloutRetire { .. }
            | Step::RolloutSurgeGone { .. }
            | Step::RollBack { .. }
            | Step::RolloutAbandon { .. }
            | Step::RolloutDone { .. } => self.rollout_step(step),
            Step::Start {
                server,
                surge_for,
                gpus,
            } => self.start(server, surge_for.as_deref(), gpus).await?,
            Step::PlacementShort {
                wanted,
                placed,
                need,
                why,
            } => {
                let servers: Vec<String> = why.iter().map(|(s, w)| format!("{s} {w}")).collect();
                let why = format!(
                    "wanted {wanted} more replica(s) needing {need} each, placed {placed}: {}",
                    servers.join("; ")
                );
                let new = self.rt.update(|st| {
                    let new = st.last_error.as_deref() != Some(why.as_str());
                    st.last_error = Some(why.clone());
                    new
                });
                if new {
                    tracing::warn!(service = self.rt.name, "{why}");
                    self.journal(Action::PlacementShort, why, None);
                }
            }
            Step::Warmup { id } => self.spawn_warmup(id),
        }
        Ok(())
    }

    fn mark_ready(&self, id: &str, r: &Replica) {
        let took = crate::service::start_took(r, self.ctx.clock.now());
        self.rt.update(|st| {
            if r.phase == Phase::Joining {
                // From start to rotation: the start delay the policy plans with.
                st.startup.record_ready(r.first_seen.elapsed());
            }
            if let Some(x) = st.replicas.get_mut(id) {
                if let (true, Some(secs)) = (x.phase != Phase::Ready, took) {
                    crate::service::record_start(&mut st.start_seconds, secs);
                }
                x.phase = Phase::Ready;
                x.in_lb = true;
                x.lb_status = Some("UP".into());
            }
        });
        self.journal(
            Action::ReplicaReady,
            format!("{} is healthy and in rotation", r.name),
            Some(r),
        );
    }

    /// Starts one replica on `server` (pulling the image in the background first if the
    /// server lacks it; the replica is then placed on a later pass).
    async fn start(
        &self,
        server: &str,
        surge_for: Option<&str>,
        gpus: &[String],
    ) -> Result<(), ExecError> {
        let Some(handle) = self.ctx.fleet.get(server) else {
            return Ok(());
        };
        let Some(engine) = handle.engine() else {
            return Ok(());
        };
        let Some(rev) = self.target_on(server, engine.as_ref()).await? else {
            return Ok(());
        };
        let mut spec = rev.container_spec();
        if !gpus.is_empty() {
            spec.gpu_devices = gpus.to_vec();
        }
        let spec = &spec;
        let name = format!("shoal-{}-{}", self.rt.name, short_id());
        if !gpus.is_empty() {
            // Another service's loop may be giving the same device away right now.
            if let Err(device) =
                self.ctx
                    .gpu_ledger
                    .reserve(server, &name, gpus, spec.gpu_sharing, Instant::now())
            {
                tracing::info!(
                    service = self.rt.name,
                    server,
                    device,
                    "GPU device just given to another replica: placing again next pass"
                );
                return Ok(());
            }
        }
        handle.adjust_containers(1);
        let id = match engine.create_replica(&self.rt.name, &name, spec).await {
            Ok(id) => id,
            Err(e @ EngineError::NoGpuRuntime { .. }) => {
                // The server is fine; it cannot run GPU replicas. Not a server failure, and
                // not tried again there before the backoff ends.
                handle.adjust_containers(-1);
                self.ctx.gpu_ledger.release(server, &name);
                let wait = self.rt.update(|st| {
                    let wait = st
                        .gpu_backoff
                        .get(server)
                        .map_or(GPU_BACKOFF.0, |b| (b.wait * 2).min(GPU_BACKOFF.1));
                    st.gpu_backoff.insert(
                        server.to_owned(),
                        GpuBackoff {
                            until: Instant::now() + wait,
                            wait,
                            error: e.to_string(),
                        },
                    );
                    st.last_error = Some(e.to_string());
                    wait
                });
                self.ctx.journal.record(NewEvent {
                    service: &self.rt.name,
                    action: Action::Error,
                    reason: format!(
                        "starting a GPU replica on {server} failed: {e}; no GPU replica is started on {server} for the next {}s",
                        wait.as_secs()
                    ),
                    server: Some(server),
                    ..Default::default()
                });
                return Err(ExecError::Engine {
                    what: format!("starting a replica on {server}"),
                    source: e,
                });
            }
            Err(e) => {
                handle.adjust_containers(-1);
                self.ctx.gpu_ledger.release(server, &name);
                handle.report_failure(&e);
                self.rt.update(|st| st.last_error = Some(e.to_string()));
                self.ctx.journal.record(NewEvent {
                    service: &self.rt.name,
                    action: Action::Error,
                    reason: format!("starting a replica on {server} failed: {e}"),
                    server: Some(server),
                    ..Default::default()
                });
                return Err(ExecError::Engine {
                    what: format!("starting a replica on {server}"),
                    source: e,
                });
            }
        };
        let port = engine
            .host_port(&id, spec.container_port)
            .await
            .ok()
            .flatten();
        let info = ContainerInfo {
            id: id.clone(),
            name: name.clone(),
            service: self.rt.name.clone(),
            server: server.to_owned(),
            revision: spec.revision.clone(),
            state: ContainerState::Running,
            status: "Up".into(),
            host_port: port,
            created: unix_now(),
            image: rev.image.clone(),
            gpus: spec.gpu_devices.clone(),
            gpu_sharing: spec.gpu_sharing,
        };
        let replica = Replica::new(&info, handle.config.host.value.clone(), Instant::now());
        self.rt.update(|st| {
            st.gpu_backoff.remove(server);
            st.replicas.entry(id.clone()).or_insert(replica);
            if let (Some(old), Some(ro)) = (surge_for, st.rollout.as_mut()) {
                ro.surges.insert(id.clone(), old.to_owned());
            }
        });
        self.ctx.journal.record(NewEvent {
            service: &self.rt.name,
            action: Action::ReplicaStarted,
            reason: if gpus.is_empty() {
                format!("started {name} on {server} (revision {})", rev.describe())
            } else {
                format!(
                    "started {name} on {server} (revision {}) with GPU device(s) {}",
                    rev.describe(),
                    gpus.join(",")
                )
            },
            replica: Some(&name),
            server: Some(server),
            ..Default::default()
        });
        Ok(())
    }
}

/// 8 random hex characters for container names.
fn short_id() -> String {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: fall back to the clock's nanoseconds (names need only differ).
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        b = n.to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
