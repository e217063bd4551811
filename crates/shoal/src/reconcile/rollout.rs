//! The rollout part of a plan: new replicas before old ones, at most `max_surge` above the
//! desired count, old ones retired only while the ready ones stay at or above the floor
//! (`desired - max_unavailable`, never below `min_replicas`), and a rollback when a replica
//! of the new revision fails or the rollout stops making progress. Pure, like the planner.

use std::collections::BTreeSet;

use tokio::time::Instant;

use super::plan::{DrainReason, FailureReason, Step};
use crate::config::ServiceConfig;
use crate::placement::ServerLoad;
use crate::service::{Phase, Replica, Rollout};

/// What the rollout is planned from.
pub(super) struct RolloutInput<'a> {
    /// The rollout.
    pub ro: &'a Rollout,
    /// The service's spec.
    pub spec: &'a ServiceConfig,
    /// Replicas still there and not failed.
    pub alive: &'a [&'a Replica],
    /// Replicas the count counts (alive plus found this pass).
    pub counted: &'a [&'a Replica],
    /// Replicas this pass replaces for a failure, with the reason.
    pub failed: &'a [(&'a Replica, FailureReason)],
    /// The desired count.
    pub desired: u32,
    /// The count starts a replica this pass.
    pub starting: bool,
    /// Now.
    pub now: Instant,
    /// Old replicas on a server without a control path: they could not be stopped, so they
    /// wait until their server is back.
    pub stuck: &'a BTreeSet<String>,
}

/// The ready replicas a rollout never goes below: `desired - max_unavailable`, and never
/// below `min_replicas` (or `desired`, when that is lower).
#[must_use]
pub fn ready_floor(ro: &Rollout, spec: &ServiceConfig, desired: u32) -> u32 {
    desired
        .saturating_sub(ro.max_unavailable)
        .max((*spec.min_replicas).min(desired))
}

/// Appends the rollout's steps to `steps`.
pub(super) fn plan_rollout(
    steps: &mut Vec<Step>,
    i: &RolloutInput<'_>,
    loads: &mut [ServerLoad],
    placer: &mut super::plan::Placer,
) {
    let ro = i.ro;
    if ro.rollback.is_none() {
        if let Some((r, reason)) = i.failed.iter().find(|(r, _)| r.revision == ro.to.id) {
            steps.push(Step::RollBack {
                reason: format!(
                    "new replica {} of revision {} failed: {reason}",
                    r.name, ro.to.id
                ),
            });
            return;
        }
        let stalled = i.now.saturating_duration_since(ro.last_progress);
        if stalled > ro.progress_deadline {
            steps.push(Step::RollBack {
                reason: format!(
                    "no replica was replaced within the progress deadline ({}s)",
                    ro.progress_deadline.as_secs()
                ),
            });
            return;
        }
    }
    if ro.rollback.is_some()
        && i.now.saturating_duration_since(ro.last_progress) > ro.progress_deadline
    {
        steps.push(Step::RolloutAbandon {
            reason: format!(
                "the rollback replaced no replica within the progress deadline ({}s); {} replica(s) are still on another revision",
                ro.progress_deadline.as_secs(),
                ro.replace_ids.len()
            ),
        });
        return;
    }
    let floor = ready_floor(ro, i.spec, i.desired);
    let find = |id: &str| i.alive.iter().find(|r| r.id == id);
    let failed: BTreeSet<&str> = i.failed.iter().map(|(r, _)| r.id.as_str()).collect();
    let draining: BTreeSet<String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Drain { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    let mut ready: BTreeSet<&str> = i
        .alive
        .iter()
        .filter(|r| r.phase == Phase::Ready && !draining.contains(&r.id))
        .map(|r| r.id.as_str())
        .collect();

    // Surges: a new one in rotation retires its old one when the others keep the floor.
    let mut surging = 0u32;
    for (new, old) in &ro.surges {
        let Some(n) = find(new).filter(|_| !failed.contains(new.as_str())) else {
            steps.push(Step::RolloutSurgeGone { new: new.clone() });
            continue;
        };
        let old_alive = find(old).is_some();
        let others = ready.iter().filter(|id| **id != old.as_str()).count() as u32;
        if n.phase == Phase::Ready && (!old_alive || others >= floor) {
            steps.push(Step::RolloutAdvance {
                new: new.clone(),
                old: old.clone(),
            });
            if old_alive && !draining.contains(old) {
                steps.push(Step::Drain {
                    id: old.clone(),
                    why: DrainReason::ReplacedByRollout,
                });
            }
            ready.remove(old.as_str());
        } else {
            surging += 1;
        }
    }

    let paired: BTreeSet<&str> = ro.surges.values().map(String::as_str).collect();
    let left: Vec<&String> = ro
        .replace_ids
        .iter()
        .filter(|id| {
            find(id).is_some()
                && !paired.contains(id.as_str())
                && !draining.contains(*id)
                && !i.stuck.contains(*id)
        })
        .collect();
    // Old ones on a server without a control path keep the rollout open until they can go.
    let waiting = ro
        .replace_ids
        .iter()
        .any(|id| find(id).is_some() && i.stuck.contains(id));
    if left.is_empty() {
        if ro.surges.is_empty() && !waiting {
            steps.push(Step::RolloutDone {
                replaced: ro.replaced,
            });
        }
        return;
    }
    let mut left = left.into_iter();

    // New surges, while the count is not starting replicas itself.
    if !i.starting {
        for _ in surging..ro.max_surge {
            let Some(old) = left.next() else { break };
            // The placer says why when nothing fits (capacity, or no free GPU).
            match placer.place(loads, 1, steps).pop() {
                Some((server, gpus)) => steps.push(Step::Start {
                    server,
                    surge_for: Some(old.clone()),
                    gpus,
                }),
                None => break,
            }
        }
    }

    // In place, within max_unavailable: retire old ones outright while the replicas out of
    // rotation stay within the budget and the ready ones at or above the floor; the count
    // starts their replacements on the new revision.
    if ro.max_unavailable > 0 {
        let out = i
            .counted
            .iter()
            .filter(|r| r.phase != Phase::Ready && !ro.surges.contains_key(&r.id))
            .count() as u32;
        let budget = ro.max_unavailable.saturating_sub(out) as usize;
        for old in left.take(budget) {
            let serving = ready.contains(old.as_str());
            if serving && (ready.len() as u32) <= floor {
                break;
            }
            steps.push(Step::RolloutRetire { old: old.clone() });
            steps.push(Step::Drain {
                id: old.clone(),
                why: DrainReason::ReplacedByRollout,
            });
            ready.remove(old.as_str());
        }
    }
}
