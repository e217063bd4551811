//! The executor's rollout steps (advance, retire, surge gone, roll back, done) and the
//! revision a new replica is created from.

use tokio::time::Instant;

use super::execute::{ExecError, Executor};
use crate::journal::{Action, NewEvent};
use crate::ports::DockerApi;
use crate::reconcile::plan::Step;
use crate::release::{Revision, UpdatePhase};
use crate::service::{Rollout, ServiceState};

impl Executor<'_> {
    fn record(&self, action: Action, reason: String) {
        self.ctx.journal.record(NewEvent {
            service: &self.rt.name,
            action,
            reason,
            ..Default::default()
        });
    }

    /// Carries out one of the rollout's steps.
    pub(super) fn rollout_step(&self, step: &Step) {
        let now = Instant::now();
        match step {
            Step::RolloutAdvance { new, old } => {
                let (new, old, left) = self.rt.update(|st| {
                    let present: Vec<String> = st.replicas.keys().cloned().collect();
                    if let Some(ro) = st.rollout.as_mut() {
                        ro.surges.remove(new);
                        progress(ro, now);
                        ro.replace_ids.remove(old);
                        ro.replace_ids
                            .retain(|id| present.contains(id) && id != new);
                    }
                    count_replaced(st);
                    let name = |id: &str| {
                        st.replicas
                            .get(id)
                            .map_or_else(|| id.to_owned(), |r| r.name.clone())
                    };
                    let left = st.rollout.as_ref().map_or(0, |ro| ro.replace_ids.len());
                    (name(new), name(old), left)
                });
                self.record(
                    Action::Rollout,
                    format!(
                        "rollout: {new} is in rotation and replaces {old}; {left} replica(s) left"
                    ),
                );
            }
            Step::RolloutRetire { old } => {
                let (old, left) = self.rt.update(|st| {
                    if let Some(ro) = st.rollout.as_mut() {
                        progress(ro, now);
                        ro.replace_ids.remove(old);
                    }
                    count_replaced(st);
                    let left = st.rollout.as_ref().map_or(0, |ro| ro.replace_ids.len());
                    let name = st
                        .replicas
                        .get(old)
                        .map_or_else(|| old.clone(), |r| r.name.clone());
                    (name, left)
                });
                self.record(
                    Action::Rollout,
                    format!(
                        "rollout: {old} retired within max_unavailable; its replacement starts on the new revision; {left} replica(s) left"
                    ),
                );
            }
            Step::RolloutSurgeGone { new } => {
                self.rt.update(|st| {
                    if let Some(ro) = st.rollout.as_mut() {
                        ro.surges.remove(new);
                    }
                });
            }
            Step::RollBack { reason } => self.roll_back(reason, now),
            Step::RolloutAbandon { reason } => {
                self.rt.update(|st| {
                    st.rollout = None;
                    if let Some(u) = st.update.as_mut().filter(|u| u.phase.running()) {
                        let why = format!("{}; {reason}", u.reason.clone().unwrap_or_default());
                        u.finish(UpdatePhase::Failed, Some(why));
                    }
                });
                self.record(Action::RolloutFailed, format!("rollback stopped: {reason}"));
            }
            Step::RolloutDone { .. } => {
                let (replaced, rollback) = self.rt.update(|st| {
                    let ro = st.rollout.take();
                    let replaced = ro.as_ref().map_or(0, |r| r.replaced);
                    let rollback = ro.and_then(|r| r.rollback);
                    if let Some(u) = st.update.as_mut().filter(|u| u.phase.running()) {
                        u.replaced = replaced;
                        if rollback.is_some() {
                            u.finish(UpdatePhase::RolledBack, None);
                        } else {
                            u.finish(UpdatePhase::Done, None);
                        }
                    }
                    (replaced, rollback)
                });
                let target = self.rt.update(|st| st.target.clone());
                let rev = target.as_ref().map_or_else(String::new, Revision::describe);
                match rollback {
                    Some(why) => self.record(
                        Action::RolledBack,
                        format!(
                            "rolled back: every replica runs revision {rev} again ({replaced} replaced); the update failed: {why}"
                        ),
                    ),
                    None => self.record(
                        Action::Rollout,
                        format!(
                            "rollout finished: {replaced} replica(s) replaced; every replica runs revision {rev}"
                        ),
                    ),
                }
            }
            _ => {}
        }
    }

    /// A new replica failed (or the rollout stalled): the previous revision becomes the
    /// target again, and every replica of another revision is replaced by it, the same way.
    fn roll_back(&self, reason: &str, now: Instant) {
        let back = self.rt.update(|st| {
            let ro = st.rollout.take()?;
            let Some(from) = ro.from.clone() else {
                // Nothing to go back to: stop; the replicas that run keep running.
                if let Some(u) = st.update.as_mut() {
                    u.finish(
                        UpdatePhase::Failed,
                        Some(format!("{reason}; no earlier revision to roll back to")),
                    );
                }
                return Some((ro, None, 0));
            };
            let ids: std::collections::BTreeSet<String> = st
                .replicas
                .values()
                .filter(|r| r.active() && r.revision != from.id)
                .map(|r| r.id.clone())
                .collect();
            let n = ids.len() as u32;
            let mut back = Rollout {
                revision: from.id.clone(),
                to: from.clone(),
                from: Some(ro.to.clone()),
                replace_ids: ids,
                surges: std::collections::BTreeMap::new(),
                replaced: 0,
                rollback: Some(reason.to_owned()),
                last_progress: now,
                ..ro.clone()
            };
            back.surges.clear();
            st.target = Some(from.clone());
            if let Some(u) = st.update.as_mut() {
                u.phase = UpdatePhase::RollingBack;
                u.reason = Some(reason.to_owned());
                u.to_replace = n;
                u.replaced = 0;
            }
            st.rollout = Some(back);
            Some((ro, Some(from), n))
        });
        let Some((failed, from, n)) = back else {
            return;
        };
        self.ctx
            .journal
            .mark_revision_failed(&self.rt.name, &failed.to.id);
        match from {
            Some(from) => {
                self.ctx.journal.activate_revision(&self.rt.name, &from);
                self.record(
                    Action::RolloutFailed,
                    format!(
                        "update to revision {} failed: {reason}; rolling {n} replica(s) back to revision {}",
                        failed.to.describe(),
                        from.describe()
                    ),
                );
            }
            None => self.record(
                Action::RolloutFailed,
                format!(
                    "update to revision {} stopped: {reason}; there is no earlier revision to roll back to",
                    failed.to.describe()
                ),
            ),
        }
        self.rt.wake.notify_one();
    }

    /// The revision a replica started on `server` is made from, and whether its image is
    /// there: the service's target, or (before anything was pinned) the configured image
    /// as this server has it, pinned now. `None` when the image is being pulled first.
    pub(super) async fn target_on(
        &self,
        server: &str,
        engine: &dyn DockerApi,
    ) -> Result<Option<Revision>, ExecError> {
        let err = |what: String| move |source| ExecError::Engine { what, source };
        let rev = match self.rt.update(|st| st.target.clone()) {
            Some(rev) => rev,
            None => {
                let image = &self.container.image;
                let Some(pin) = engine
                    .resolve(image)
                    .await
                    .map_err(err(format!("checking for image {image} on {server}")))?
                else {
                    self.pull(engine, image);
                    return Ok(None);
                };
                let rev = Revision::new(self.container.clone(), pin);
                let (rev, first) = self.rt.update(|st| match &st.target {
                    Some(t) => (t.clone(), false),
                    None => {
                        st.target = Some(rev.clone());
                        (rev, true)
                    }
                });
                if first {
                    self.ctx.journal.activate_revision(&self.rt.name, &rev);
                    self.record(
                        Action::Update,
                        format!("revision {} pinned", rev.describe()),
                    );
                }
                rev
            }
        };
        let present = engine
            .resolve(&rev.image.id)
            .await
            .map_err(err(format!(
                "checking for image {} on {server}",
                rev.image.id
            )))?
            .is_some();
        if !present {
            // The exact image (by digest when it has one: the tag may have moved).
            self.pull(engine, rev.pull_ref());
            return Ok(None);
        }
        Ok(Some(rev))
    }

    fn pull(&self, engine: &dyn DockerApi, image: &str) {
        let Some(handle) = self.ctx.fleet.get(engine.server()) else {
            return;
        };
        if let Some(e) = handle.engine() {
            self.ctx.pull_in_background(&self.rt.name, e, image);
        }
    }
}

fn progress(ro: &mut Rollout, now: Instant) {
    ro.replaced = ro.replaced.saturating_add(1);
    ro.last_progress = now;
}

fn count_replaced(st: &mut ServiceState) {
    let n = st.rollout.as_ref().map_or(0, |r| r.replaced);
    if let Some(u) = st.update.as_mut().filter(|u| u.phase.running()) {
        u.replaced = n;
    }
}
