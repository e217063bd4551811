//! The warm-up of a new replica, in the background: its `warmup` request (for Ollama a tiny
//! `/api/generate` that loads the model) before it may enter HAProxy. Tried up to
//! `health_check.unhealthy_threshold` times, `health_check.interval` apart; the planner
//! replaces a replica whose warm-up keeps failing. The duration is measured and kept.

use tokio::time::Instant;

use crate::journal::{Action, NewEvent};
use crate::reconcile::execute::Executor;

impl Executor<'_> {
    /// Sends `id`'s warm-up request in the background and wakes the loop when it is done.
    pub(super) fn spawn_warmup(&self, id: &str) {
        let Some(w) = self.spec.warmup.clone() else {
            return;
        };
        let Some(r) = self.rt.update(|st| {
            let r = st.replicas.get_mut(id)?;
            if r.warming || r.warmed.is_some() {
                return None;
            }
            r.warming = true;
            Some(r.clone())
        }) else {
            return;
        };
        let Some(port) = r.port else { return };
        let (rt, journal, prober) = (
            self.rt.clone(),
            self.ctx.journal.clone(),
            self.ctx.prober.clone(),
        );
        let interval = self.spec.health_check.interval();
        let threshold = *self.spec.health_check.unhealthy_threshold;
        let id = id.to_owned();
        tokio::spawn(async move {
            loop {
                let started = Instant::now();
                let result = prober.warmup(&r.host, port, &w).await;
                let took = started.elapsed();
                let failures = rt.update(|st| {
                    let x = st.replicas.get_mut(&id)?;
                    match &result {
                        Ok(()) => {
                            x.warmed = Some(took);
                            x.warming = false;
                            x.last_warmup_error = None;
                        }
                        Err(e) => {
                            x.warmup_failures = x.warmup_failures.saturating_add(1);
                            x.last_warmup_error = Some(e.clone());
                            if x.warmup_failures >= threshold {
                                x.warming = false;
                            }
                        }
                    }
                    let failures = x.warmup_failures;
                    if result.is_ok() {
                        st.startup.record_warmup(took);
                    }
                    Some(failures)
                });
                let Some(failures) = failures else {
                    return; // The replica is gone.
                };
                match &result {
                    Ok(()) => {
                        journal.record(NewEvent {
                            service: &rt.name,
                            action: Action::ReplicaWarmedUp,
                            reason: format!(
                                "{} answered its warm-up {} {} in {:.2}s: it may enter HAProxy",
                                r.name,
                                w.method(),
                                w.path.value,
                                took.as_secs_f64()
                            ),
                            replica: Some(&r.name),
                            server: Some(&r.server),
                            ..Default::default()
                        });
                        rt.wake.notify_one();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(replica = r.name, error = %e, failures, "warm-up failed");
                        if failures >= threshold {
                            rt.wake.notify_one();
                            return;
                        }
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
    }
}
