//! The loop of one service: observe → plan → execute, then sleep for the plan's requeue
//! delay or until something wakes it (a command, a finished drain). A pass that panics is
//! caught, journaled and retried: one service's failure stays in its own task.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use crate::context::Context;
use crate::journal::{Action, NewEvent};
use crate::reconcile::execute::{ExecError, Executor};
use crate::reconcile::observe;
use crate::reconcile::plan::{self, Input};
use crate::service::ServiceRuntime;
use crate::timings;

/// What one pass ended with.
#[derive(Debug)]
pub struct PassOutcome {
    /// When the loop wants to run again.
    pub requeue: Duration,
    /// A removed service has no container left anywhere: its loop may end.
    pub drained: bool,
    /// Steps that failed.
    pub errors: Vec<ExecError>,
}

/// Runs the loop of `rt` until its service is removed and drained.
pub async fn run_service(ctx: Arc<Context>, rt: Arc<ServiceRuntime>) {
    loop {
        let started = Instant::now();
        let outcome = match AssertUnwindSafe(pass(&ctx, &rt)).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => {
                let what = panic_message(panic.as_ref());
                tracing::error!(service = rt.name, "reconcile pass panicked: {what}");
                ctx.journal.record(NewEvent {
                    service: &rt.name,
                    action: Action::Error,
                    reason: format!("reconcile pass failed unexpectedly ({what}); retrying"),
                    ..Default::default()
                });
                rt.update(|st| st.last_error = Some(format!("reconcile pass panicked: {what}")));
                PassOutcome {
                    requeue: timings::RETRY_REQUEUE,
                    drained: false,
                    errors: Vec::new(),
                }
            }
        };
        ctx.metrics
            .observe_pass(&rt.name, started.elapsed().as_secs_f64());
        if outcome.drained && ctx.forget_if_removed(&rt) {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(outcome.requeue) => {}
            () = rt.wake.notified() => {}
        }
    }
}

/// One pass over `rt`'s service.
pub async fn pass(ctx: &Arc<Context>, rt: &Arc<ServiceRuntime>) -> PassOutcome {
    let cfg = ctx.config();
    // A removed service runs the same pass with desired 0, on its last known spec, until
    // every one of its containers on every server is gone.
    let (removed, spec) = rt.update(|st| {
        let current = cfg.service(&rt.name).filter(|_| !st.removed);
        match current {
            Some(svc) => st.spec = Some(svc.clone()),
            None => {
                st.desired = 0;
                st.rollout = None;
            }
        }
        (current.is_none(), st.spec.clone())
    });
    let Some(spec) = spec else {
        return PassOutcome {
            requeue: timings::RETRY_REQUEUE,
            drained: removed,
            errors: Vec::new(),
        };
    };
    let backend = crate::lb::backend_name(&rt.name);
    let rise = crate::lb::HealthCheck::from_config(&spec.health_check).rise;
    let lb = ctx.lb();

    // Observe: containers and HAProxy, then probes of the replicas due.
    let t0 = Instant::now();
    let mut obs =
        observe::containers_and_lb(&ctx.fleet, lb.as_ref(), &rt.name, &backend, rise).await;
    if spec.needs_gpu() {
        obs.gpus = Some(observe::gpus(&ctx.fleet, &ctx.gpu_ledger).await);
    }
    let now = Instant::now();
    rt.update(|st| observe::absorb(st, &obs, now));
    // A replica on a server without a control path is judged by HAProxy's checks; probing
    // it could only wait out the probe timeout on a server that is gone, and delay the
    // pass that acts on HAProxy's verdict.
    let due: Vec<_> = rt.update(|st| {
        plan::probes_due(st, &spec, now)
            .into_iter()
            .filter(|(id, ..)| {
                st.replicas
                    .get(id)
                    .is_none_or(|r| obs.up.contains(&r.server) || !obs.servers.contains(&r.server))
            })
            .collect()
    });
    let t_listed = t0.elapsed();
    obs.probes = observe::probe(
        ctx.prober.as_ref(),
        &due,
        &spec.health_check.path,
        spec.health_check.timeout(),
    )
    .await;
    let now = Instant::now();
    rt.update(|st| observe::absorb(st, &obs, now));

    // Plan on a snapshot, then execute.
    let t_probed = t0.elapsed();
    let state = rt.snapshot();
    let plan = plan::plan(&Input {
        spec: &spec,
        state: &state,
        obs: &obs,
        removed,
        now,
    });
    if let Some(serving) = observe::serving_per_server(&state, &obs) {
        for (server, n) in serving {
            if let Some(h) = ctx.fleet.get(&server) {
                h.report_serving(&rt.name, Some(n));
            }
        }
    }
    let t_planned = t0.elapsed();
    let errors = Executor::new(ctx, rt, &spec).run(&plan).await;
    let t_executed = t0.elapsed();
    // A sleeping service needs its backup server in HAProxy, or a request at zero fails.
    let no_activator = (spec.sleeps()
        && obs.lb.as_ref().is_some_and(|v| {
            !v.iter().any(|s| s.name == crate::lb::ACTIVATOR_SERVER)
        }))
    .then(|| {
        format!(
            "HAProxy's backend {backend} has no {} backup server, so a request at zero replicas fails: \
             restart HAProxy with the config shoal renders (load_balancer.config_file or `shoal haproxy render`)",
            crate::lb::ACTIVATOR_SERVER
        )
    });
    let short = plan.steps.iter().any(|s| {
        matches!(
            s,
            plan::Step::CapacityShort { .. } | plan::Step::PlacementShort { .. }
        )
    });
    rt.update(|st| {
        if let Some(e) = errors.first() {
            st.last_error = Some(e.to_string());
        } else if let Some(e) = &obs.lb_error {
            st.last_error = Some(e.clone());
        } else if let Some(e) = &no_activator {
            st.last_error = Some(e.clone());
        } else if !short {
            st.last_error = None;
        }
    });
    ctx.write_lb_config().await;
    // Where a pass spends its time (what the scale benchmark reads: RUST_LOG=
    // shoal::reconcile::runner=debug), each figure since the pass started.
    tracing::debug!(
        service = rt.name,
        listed_ms = ms(t_listed),
        probed_ms = ms(t_probed),
        planned_ms = ms(t_planned),
        executed_ms = ms(t_executed),
        done_ms = ms(t0.elapsed()),
        probes = due.len(),
        steps = plan.steps.len(),
        "pass"
    );
    let drained = removed
        && obs.servers.iter().all(|s| obs.answered.contains(s))
        && rt.update(|st| st.replicas.is_empty());
    PassOutcome {
        requeue: plan.requeue,
        drained,
        errors,
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// The message a panic carried.
#[must_use]
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
