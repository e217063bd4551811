//! Graceful removal, in the background: HAProxy `drain`, wait for the sessions to end
//! (bounded by `load_balancer.drain_timeout`, then they are shut down), remove the server,
//! stop the container (bounded by `stop_timeout`), remove it.

use std::time::Duration;

use tokio::time::Instant;

use crate::journal::{Action, NewEvent};
use crate::lb::LbError;
use crate::ports::LoadBalancer;
use crate::reconcile::execute::Executor;
use crate::reconcile::plan::DrainReason;
use crate::service::{Phase, Replica};
use crate::timings;

impl Executor<'_> {
    /// Drains `r` in the background: HAProxy `drain`, wait for its sessions to end (at most
    /// `drain_timeout`; then they are shut down), remove it from HAProxy, stop the container
    /// (at most `stop_timeout`), remove it.
    pub(super) fn spawn_drain(&self, r: Replica, why: DrainReason) {
        let max_wait = self.ctx.config().load_balancer.drain_timeout();
        let grace = self.spec.stop_timeout();
        let (lb, backend) = (self.lb.clone(), self.backend.clone());
        let handle = self.ctx.fleet.get(&r.server);
        let (rt, journal) = (self.rt.clone(), self.ctx.journal.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut timed_out = false;
            if r.in_lb {
                match drain(lb.as_ref(), &backend, &r.name, max_wait).await {
                    Ok(t) => timed_out = t,
                    Err(e) => {
                        tracing::warn!(replica = r.name, error = %e, "drain failed; removing anyway")
                    }
                }
                if let Err(e) = lb.remove(&backend, &r.name, timed_out).await {
                    tracing::warn!(replica = r.name, error = %e, "removing from HAProxy failed");
                }
            }
            let waited = started.elapsed();
            let mut result = Ok(());
            if let Some(engine) = handle.as_ref().and_then(|h| h.engine()) {
                if let Err(e) = engine.stop(&r.id, grace).await {
                    tracing::debug!(replica = r.name, error = %e, "stop failed; removing anyway");
                }
                result = engine.remove(&r.id).await;
            }
            match result {
                Ok(()) => {
                    if let Some(h) = &handle {
                        h.adjust_containers(-1);
                    }
                    rt.update(|st| st.replicas.remove(&r.id));
                    journal.record(NewEvent {
                        service: &rt.name,
                        action: Action::ReplicaRemoved,
                        reason: format!(
                            "{} removed ({why}) after draining {:.1}s{}",
                            r.name,
                            waited.as_secs_f64(),
                            if timed_out {
                                "; drain_timeout ran out, its sessions were shut down"
                            } else {
                                ""
                            }
                        ),
                        replica: Some(&r.name),
                        server: Some(&r.server),
                        ..Default::default()
                    });
                }
                Err(e) => {
                    tracing::warn!(replica = r.name, error = %e, "removing container failed; will retry");
                    // Back to the pool: a later pass retries.
                    rt.update(|st| {
                        if let Some(x) = st.replicas.get_mut(&r.id) {
                            x.phase = Phase::Ready;
                        }
                    });
                }
            }
            rt.wake.notify_one();
        });
    }
}

/// `drain`, then waits until the server has no sessions or `max_wait` ran out. Returns
/// whether it ran out.
async fn drain(
    lb: &dyn LoadBalancer,
    backend: &str,
    name: &str,
    max_wait: Duration,
) -> Result<bool, LbError> {
    let start = Instant::now();
    lb.drain(backend, name).await?;
    loop {
        let left = lb.sessions(backend, name).await?;
        let elapsed = start.elapsed();
        if left == 0 {
            return Ok(false);
        }
        if elapsed >= max_wait {
            tracing::warn!(
                backend,
                server = name,
                sessions_left = left,
                "drain timed out; shutting the remaining sessions down"
            );
            return Ok(true);
        }
        tokio::time::sleep(timings::LB_POLL.min(max_wait.saturating_sub(elapsed))).await;
    }
}
