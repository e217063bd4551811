//! The planner: from what the service should be, what the loop knows and what was just
//! observed, to the steps that move it closer. A pure function: no IO, no clock (`now` is an
//! argument), no locks. Every decision of the loop is here, placement included.
//!
//! Order of a plan: bookkeeping (adopt, track, forget, lost), replacements of failed
//! replicas (removed before anything is started, so Docker's restart policy can never bring
//! one back beside its replacement), HAProxy membership (register, promote, repair drift),
//! the count (start or drain), then the rollout.
//!
//! A replica on a server without a control path (configured, not up) cannot be listed,
//! stopped or removed. HAProxy's view decides for it: while HAProxy's checks pass it keeps
//! serving and counts, and nothing is started in its place; once they fail (or HAProxy no
//! longer lists it) it is lost: out of HAProxy, started elsewhere. Without HAProxy's view
//! it is kept as it was. It is never chosen to drain or to be rolled; if it comes back with
//! its server after it was lost, the surplus is drained like any other.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::ServiceConfig;
use crate::engine::{ContainerInfo, ContainerState};
use crate::placement::{self, Candidate, ServerLoad};
use crate::reconcile::observe::Observation;
use crate::service::{Phase, Replica, ServiceState};
use crate::timings;

pub use super::reasons::{DrainReason, FailureReason};

/// What one pass will do, and when the loop wants to run again.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Steps, in the order they are carried out.
    pub steps: Vec<Step>,
    /// Delay until the next pass (sooner if something wakes the loop).
    pub requeue: Duration,
}

/// One thing a pass does.
#[derive(Clone, Debug)]
pub enum Step {
    /// First complete listing: adopt what runs and set the desired count.
    Adopt {
        /// Replicas found running.
        running: u32,
        /// The desired count from now on.
        desired: u32,
        /// The desired count saved before the restart, if any.
        saved: Option<u32>,
    },
    /// A container of the service the loop does not know yet: track it as `Starting`.
    Track(Box<Replica>),
    /// A draining replica whose container is gone: forget it.
    Forget {
        /// Container id.
        id: String,
    },
    /// A replica gone with its server (or removed behind shoal's back): out of HAProxy,
    /// forgotten.
    Lost {
        /// Container id.
        id: String,
        /// Whether HAProxy still lists it.
        in_lb: bool,
    },
    /// A failed replica: out of HAProxy, container removed; the count brings a new one.
    Replace {
        /// Container id.
        id: String,
        /// Why.
        reason: FailureReason,
        /// Whether HAProxy lists it.
        in_lb: bool,
        /// It was a rollout's surge replica: it leaves the rollout's surges.
        rollout_surge: bool,
    },
    /// Healthy by shoal's probe (or missing from HAProxy): add it in maintenance, checks on.
    Register {
        /// Container id.
        id: String,
        /// It was in HAProxy before and went missing (HAProxy restarted).
        drift: bool,
    },
    /// In maintenance and HAProxy's check passes: put it in rotation.
    Promote {
        /// Container id.
        id: String,
    },
    /// HAProxy sends to another address: correct it.
    SetAddr {
        /// Container id.
        id: String,
    },
    /// HAProxy reports it in rotation.
    MarkReady {
        /// Container id.
        id: String,
    },
    /// HAProxy has it but not in rotation (checks not passing yet).
    MarkJoining {
        /// Container id.
        id: String,
        /// HAProxy's status word.
        status: String,
    },
    /// HAProxy has a server that matches no replica: remove it.
    RemoveStray {
        /// HAProxy server name.
        name: String,
    },
    /// Start a replica on a server (placement chose it).
    Start {
        /// Server.
        server: String,
        /// A rollout's surge replica, replacing this replica once it is in rotation.
        surge_for: Option<String>,
        /// The GPU devices placement gave it (empty: no GPU).
        gpus: Vec<String>,
    },
    /// A GPU service's replicas could not all be placed: each server's reason.
    PlacementShort {
        /// Replicas wanted.
        wanted: u32,
        /// Replicas placed.
        placed: u32,
        /// What each replica needs (`1 GPU(s)`).
        need: String,
        /// Why each server could not take one.
        why: std::collections::BTreeMap<String, String>,
    },
    /// Healthy by shoal's probe: send its warm-up request (in the background) before it
    /// may enter HAProxy.
    Warmup {
        /// Container id.
        id: String,
    },
    /// Fewer servers can take a replica than wanted.
    CapacityShort {
        /// Replicas wanted.
        wanted: u32,
        /// Replicas placed.
        placed: u32,
    },
    /// Drain a replica gracefully and remove it.
    Drain {
        /// Container id.
        id: String,
        /// Why.
        why: DrainReason,
    },
    /// The rollout's new replica is in rotation: count it; its old one is drained.
    RolloutAdvance {
        /// The new replica.
        new: String,
        /// The replica it replaces.
        old: String,
    },
    /// The rollout retires an old replica without a surge (within `max_unavailable`); the
    /// count starts its replacement on the new revision.
    RolloutRetire {
        /// The replica retired (drained by the step after this one).
        old: String,
    },
    /// A rollout's new replica vanished (or failed) before it was ready: start another later.
    RolloutSurgeGone {
        /// The new replica.
        new: String,
    },
    /// A rollback made no progress within its deadline: it stops (the update fails), so a
    /// new update can be started.
    RolloutAbandon {
        /// Why, in words.
        reason: String,
    },
    /// A new replica of the revision rolled to failed, or the rollout made no progress
    /// within its deadline: every replica goes back to the previous revision.
    RollBack {
        /// Why, in words.
        reason: String,
    },
    /// Nothing left to replace.
    RolloutDone {
        /// Replicas replaced.
        replaced: u32,
    },
}

impl Step {
    /// The replica this step acts on, for steps that act on one.
    #[must_use]
    pub fn replica(&self) -> Option<&str> {
        match self {
            Self::Forget { id }
            | Self::Lost { id, .. }
            | Self::Replace { id, .. }
            | Self::Register { id, .. }
            | Self::Promote { id }
            | Self::SetAddr { id }
            | Self::MarkReady { id }
            | Self::MarkJoining { id, .. }
            | Self::Warmup { id }
            | Self::Drain { id, .. } => Some(id),
            Self::Track(r) => Some(&r.id),
            _ => None,
        }
    }
}

/// What the planner is given.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The service's spec (its last known one when it was removed from the config).
    pub spec: &'a ServiceConfig,
    /// The loop's state, observation facts already absorbed.
    pub state: &'a ServiceState,
    /// This pass's observation.
    pub obs: &'a Observation,
    /// The service was removed from the config: the count is 0.
    pub removed: bool,
    /// Now, on the loop's monotonic clock.
    pub now: Instant,
}

/// The lowest desired count the loop itself enforces: 0 for a service that sleeps
/// (`wake_on_request`), `min_replicas`, or `off_hours_replicas` when lower for a
/// business-hours service (the autoscaler applies the
/// window; nothing else may raise a held service to `min_replicas` at night).
#[must_use]
pub fn lower_bound(svc: &ServiceConfig) -> u32 {
    if svc.sleeps() {
        // It may sleep at zero; a request wakes it (`activator`).
        0
    } else if svc.business_hours_only {
        svc.off_hours_replicas().min(*svc.min_replicas)
    } else {
        *svc.min_replicas
    }
}

/// Replicas due for a health probe: running, not draining, with a port, not probed within
/// the interval (new replicas every pass, so they join quickly). `(id, host, port)`.
///
/// Routine probes (a replica probed before whose last probe passed) are spread over the
/// passes: at most [`routine_probe_budget`] of them per pass, the longest unprobed first.
/// Without it, replicas that came up together stay due together: 500 replicas of one
/// service were probed in one pass every `interval` (and that pass waited for all 500),
/// the passes between probed none. Replicas never probed, starting, or with a failed probe
/// are always probed when due.
#[must_use]
pub fn probes_due(
    state: &ServiceState,
    spec: &ServiceConfig,
    now: Instant,
) -> Vec<(String, String, u16)> {
    let interval = spec.health_check.interval();
    let running: Vec<&Replica> = state
        .replicas
        .values()
        .filter(|r| r.container_state == ContainerState::Running && r.active() && r.port.is_some())
        .collect();
    let mut urgent = Vec::new();
    let mut routine = Vec::new();
    for r in &running {
        let overdue = r
            .last_probe
            .is_none_or(|t| now.saturating_duration_since(t) >= interval);
        let starting = r.phase == Phase::Starting && r.healthy != Some(true);
        if !(overdue || starting) {
            continue;
        }
        match r.last_probe {
            Some(t) if !starting && r.health_failures == 0 => routine.push((t, *r)),
            _ => urgent.push(*r),
        }
    }
    routine.sort_by_key(|(t, r)| (*t, r.id.as_str()));
    routine.truncate(routine_probe_budget(running.len(), interval));
    urgent
        .into_iter()
        .chain(routine.into_iter().map(|(_, r)| r))
        .filter_map(|r| Some((r.id.clone(), r.host.clone(), r.port?)))
        .collect()
}

/// How many routine probes one pass makes at most, of `replicas` probed every `interval`:
/// half again the share of one pass at rest (passes come every
/// `min(interval, MAX_PASS_INTERVAL)`), so probes that fell due together are spread over a
/// few passes and an even spread never waits.
#[must_use]
pub fn routine_probe_budget(replicas: usize, interval: Duration) -> usize {
    let gap = interval.min(timings::MAX_PASS_INTERVAL).as_secs_f64();
    let share = replicas as f64 * gap / interval.as_secs_f64().max(f64::EPSILON);
    ((share * 1.5).ceil() as usize).max(1)
}

/// Why `r` must be replaced, if it must.
#[must_use]
pub fn failure(r: &Replica, spec: &ServiceConfig, now: Instant) -> Option<FailureReason> {
    let start_period = spec.health_check.start_period();
    let threshold = *spec.health_check.unhealthy_threshold;
    let since = |t: Instant| now.saturating_duration_since(t);
    match r.container_state {
        ContainerState::Exited | ContainerState::Dead => Some(FailureReason::Exited {
            state: r.container_state,
            status: r.status.clone(),
        }),
        ContainerState::Restarting => Some(FailureReason::Restarting),
        // The image's HEALTHCHECK failed its retries (Docker lists `Up 5 minutes
        // (unhealthy)`); its `health_status` event woke this pass.
        ContainerState::Running if r.status.ends_with("(unhealthy)") => {
            Some(FailureReason::DockerUnhealthy {
                status: r.status.clone(),
            })
        }
        ContainerState::Created | ContainerState::Unknown if since(r.first_seen) > start_period => {
            Some(FailureReason::NeverStarted)
        }
        ContainerState::Running
            if r.phase == Phase::Starting && !r.warming && r.warmup_failures >= threshold =>
        {
            Some(FailureReason::WarmupFailed {
                failures: r.warmup_failures,
                last_error: r.last_warmup_error.clone(),
            })
        }
        ContainerState::Running if r.phase == Phase::Starting => (since(r.first_seen)
            > start_period
            && r.health_failures >= threshold)
            .then(|| FailureReason::NeverHealthy {
                start_period,
                last_error: r.last_probe_error.clone(),
            }),
        ContainerState::Running
            if r.phase == Phase::Joining
                && r.joined_at.is_some_and(|t| since(t) > start_period) =>
        {
            Some(FailureReason::LbCheckNeverPassed { start_period })
        }
        ContainerState::Running if r.health_failures >= threshold => {
            Some(FailureReason::Unhealthy {
                failures: r.health_failures,
                last_error: r.last_probe_error.clone(),
            })
        }
        _ => None,
    }
}

/// Plans one pass.
#[must_use]
pub fn plan(input: &Input<'_>) -> Plan {
    let Input {
        spec,
        state,
        obs,
        removed,
        now,
        ..
    } = *input;
    let mut steps = Vec::new();
    if !state.adopted && !obs.up.is_subset(&obs.answered) {
        // Not every up server answered the first listing: adopt nothing yet, so a replica is
        // never started beside one that is merely slow to be listed.
        return Plan {
            steps,
            requeue: timings::RETRY_REQUEUE,
        };
    }

    // Bookkeeping: what the listing says of the replicas known and unknown.
    let listed: BTreeSet<&str> = obs.containers.iter().map(|c| c.id.as_str()).collect();
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for r in state.replicas.values() {
        if listed.contains(r.id.as_str()) {
            continue;
        }
        // Not listed: gone if its server answered; if its server did not answer, kept as it
        // was while the server still counts as up, lost once it is down.
        let unknown = !obs.answered.contains(&r.server) && obs.up.contains(&r.server);
        if unknown {
            continue;
        }
        if r.phase == Phase::Draining {
            if obs.answered.contains(&r.server) {
                gone.insert(r.id.clone());
                steps.push(Step::Forget { id: r.id.clone() });
            }
            continue;
        }
        if unreachable(obs, &r.server) && obs.lb.as_ref().is_none_or(|_| obs.serving(&r.name)) {
            // No control path, but HAProxy's checks pass (or HAProxy did not say): it serves.
            continue;
        }
        gone.insert(r.id.clone());
        steps.push(Step::Lost {
            id: r.id.clone(),
            in_lb: obs.in_lb(&r.name),
        });
    }
    let tracked: Vec<Replica> = obs
        .containers
        .iter()
        .filter(|c| !state.replicas.contains_key(&c.id))
        .map(|c| track(c, obs, now))
        .collect();
    // Replicas HAProxy serves from a server without a control path that the loop does not
    // know (it restarted meanwhile): left serving and counted, known once the server is back.
    let held_strays: BTreeSet<&str> = obs
        .lb
        .iter()
        .flatten()
        .filter(|s| {
            !state.replicas.values().any(|r| r.name == s.name)
                && !tracked.iter().any(|r| r.name == s.name)
                && (s.in_rotation || s.check_passing)
                && only_unreachable_host(obs, &s.addr)
        })
        .map(|s| s.name.as_str())
        .collect();
    let held = held_strays.len() as u32;
    let mut desired = state.desired;
    if !state.adopted {
        let running = tracked
            .iter()
            .filter(|r| r.container_state == ContainerState::Running)
            .count() as u32
            + held;
        // Within the bounds; the autoscaler moves it to off_hours_replicas outside the window.
        // The desired count saved before the restart wins (replicas may have died while shoal
        // was down); without one, what runs is what was wanted.
        desired = state
            .saved_desired
            .unwrap_or(running)
            .clamp(lower_bound(spec), *spec.max_replicas);
        steps.push(Step::Adopt {
            running,
            desired,
            saved: state.saved_desired,
        });
    }
    if removed {
        desired = 0;
    }
    steps.extend(tracked.iter().cloned().map(|r| Step::Track(Box::new(r))));

    // The replicas this pass works on: known, still there, not draining.
    let working: Vec<&Replica> = state
        .replicas
        .values()
        .filter(|r| r.active() && !gone.contains(&r.id))
        .collect();
    let surge_new: BTreeSet<String> = state
        .rollout
        .as_ref()
        .map(|ro| ro.surges.keys().cloned().collect())
        .unwrap_or_default();

    // Failed replicas.
    let mut replaced: BTreeSet<String> = BTreeSet::new();
    for r in &working {
        if let Some(reason) = failure(r, spec, now) {
            replaced.insert(r.id.clone());
            steps.push(Step::Replace {
                id: r.id.clone(),
                reason,
                in_lb: r.in_lb || obs.in_lb(&r.name),
                rollout_surge: surge_new.contains(&r.id),
            });
        }
    }
    // A container found created but never started on the first listing after a restart was
    // being made when shoal stopped (killed between Docker's create and start): nothing will
    // start it. It is tracked and replaced in this pass, not after its start period (the
    // chaos test saw a replica missing for 25 s with a 20 s start period).
    if !state.adopted {
        for r in tracked
            .iter()
            .filter(|r| r.container_state == ContainerState::Created)
        {
            replaced.insert(r.id.clone());
            steps.push(Step::Replace {
                id: r.id.clone(),
                reason: FailureReason::NeverStarted,
                in_lb: obs.in_lb(&r.name),
                rollout_surge: false,
            });
        }
    }
    let alive: Vec<&Replica> = working
        .iter()
        .copied()
        .filter(|r| !replaced.contains(&r.id))
        .collect();

    // The count and the rollout are decided first, so that a replica on its way out gets no
    // membership step; their steps run after the membership ones.
    let tail = steps.len();
    // The count: desired, plus the rollout's surge replicas while they are on their way.
    let surge_alive = alive.iter().filter(|r| surge_new.contains(&r.id)).count() as u32;
    let mut counted: Vec<&Replica> = alive.clone();
    // A container found this pass counts only when it runs or is about to: one listed while
    // Docker removes it (a drain that finished between the listing and this plan) must not
    // make the count look high and get a serving replica drained in its place.
    counted.extend(tracked.iter().filter(|r| {
        matches!(
            r.container_state,
            ContainerState::Running | ContainerState::Created
        ) && !replaced.contains(&r.id)
    }));
    let active = counted.len() as u32 + held;
    let target = desired.saturating_add(surge_alive);
    let mut loads = loads_for(obs, state, &counted, &replaced);
    let mut placer = Placer::new(spec, state, obs, &replaced, now);
    let mut starting = false;
    if active < target {
        let wanted = target - active;
        let chosen = placer.place(&mut loads, wanted, &mut steps);
        starting |= !chosen.is_empty();
        steps.extend(chosen.into_iter().map(|(server, gpus)| Step::Start {
            server,
            surge_for: None,
            gpus,
        }));
    } else if active > target {
        let candidates: Vec<Candidate> = alive
            .iter()
            .filter(|r| !surge_new.contains(&r.id))
            // Without a control path it could not be stopped: it stays until its server is back.
            .filter(|r| !unreachable(obs, &r.server))
            .map(|r| Candidate {
                id: r.id.clone(),
                server: r.server.clone(),
                serving: r.phase == Phase::Ready,
                created: r.created,
            })
            .collect();
        let why = DrainReason::Surplus { active, target };
        for id in placement::choose_victims(&candidates, &loads, (active - target) as usize) {
            steps.push(Step::Drain {
                id,
                why: why.clone(),
            });
        }
    }

    // The rollout: new before old, at most `max_surge` on their way, never below the floor.
    if let Some(ro) = state.rollout.as_ref().filter(|_| !removed) {
        let failed: Vec<(&Replica, FailureReason)> = steps[..tail]
            .iter()
            .filter_map(|s| match s {
                Step::Replace { id, reason, .. } => working
                    .iter()
                    .find(|r| &r.id == id)
                    .map(|r| (*r, reason.clone())),
                _ => None,
            })
            .collect();
        super::rollout::plan_rollout(
            &mut steps,
            &super::rollout::RolloutInput {
                ro,
                spec,
                alive: &alive,
                counted: &counted,
                failed: &failed,
                desired,
                starting,
                now,
                stuck: &alive
                    .iter()
                    .filter(|r| unreachable(obs, &r.server))
                    .map(|r| r.id.clone())
                    .collect(),
            },
            &mut loads,
            &mut placer,
        );
    }

    let leaving: BTreeSet<String> = steps[tail..]
        .iter()
        .filter_map(|s| match s {
            Step::Drain { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();

    // HAProxy membership (skipped when HAProxy did not answer).
    let mut membership = Vec::new();
    if let Some(view) = &obs.lb {
        // Indexed once: a backend has as many servers as replicas (hundreds at scale).
        let by_name: HashMap<&str, &crate::ports::LbServer> =
            view.iter().map(|s| (s.name.as_str(), s)).collect();
        for r in alive.iter().filter(|r| !leaving.contains(&r.id)) {
            let Some(port) = r.port else { continue };
            // A service with a warm-up lets a replica into HAProxy only once it is warm.
            let warm = spec.warmup.is_none() || r.warmed.is_some();
            let warm_up_due =
                !warm && !r.warming && r.warmup_failures < *spec.health_check.unhealthy_threshold;
            match (r.phase, by_name.get(r.name.as_str()).copied()) {
                (Phase::Starting, None) if r.healthy == Some(true) && warm => {
                    membership.push(Step::Register {
                        id: r.id.clone(),
                        drift: false,
                    })
                }
                (Phase::Starting, None) if r.healthy == Some(true) && warm_up_due => {
                    membership.push(Step::Warmup { id: r.id.clone() })
                }
                (Phase::Joining | Phase::Ready, None) => membership.push(Step::Register {
                    id: r.id.clone(),
                    drift: true,
                }),
                (_, Some(s)) => {
                    let addr_differs = s.port != port
                        || (r.host.parse::<std::net::IpAddr>().is_ok() && s.addr != r.host);
                    if addr_differs {
                        membership.push(Step::SetAddr { id: r.id.clone() });
                    } else if s.maint && s.check_passing {
                        // Admit only once HAProxy's check passes: leaving maintenance makes
                        // a server UP at once, whatever its checks say.
                        membership.push(Step::Promote { id: r.id.clone() });
                    } else if s.in_rotation && r.phase != Phase::Ready {
                        membership.push(Step::MarkReady { id: r.id.clone() });
                    } else if !s.in_rotation && r.phase != Phase::Joining {
                        membership.push(Step::MarkJoining {
                            id: r.id.clone(),
                            status: s.status.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        // Servers that match no replica (lost and replaced ones are handled above); the
        // activator's backup server is the config's, not a replica.
        let names: HashSet<&str> = state
            .replicas
            .values()
            .chain(tracked.iter())
            .map(|r| r.name.as_str())
            .collect();
        for s in view
            .iter()
            .filter(|s| s.name != crate::lb::ACTIVATOR_SERVER)
        {
            let known = names.contains(s.name.as_str());
            if !known && !held_strays.contains(s.name.as_str()) {
                membership.push(Step::RemoveStray {
                    name: s.name.clone(),
                });
            }
        }
    }

    steps.splice(tail..tail, membership);

    // While a replica is on its way in (or a rollout waits for one), look often.
    let transitioning = steps.iter().any(|s| matches!(s, Step::Start { .. }))
        || (state.rollout.is_some() && !removed)
        || counted
            .iter()
            .any(|r| matches!(r.phase, Phase::Starting | Phase::Joining));
    let requeue = if transitioning {
        timings::TRANSITION_REQUEUE
    } else {
        spec.health_check
            .interval()
            .clamp(Duration::from_millis(100), timings::MAX_PASS_INTERVAL)
    };
    Plan { steps, requeue }
}

/// Whether `server` is configured but has no control path (not up): what runs there can be
/// neither listed nor removed.
fn unreachable(obs: &Observation, server: &str) -> bool {
    obs.servers.contains(server) && !obs.up.contains(server)
}

/// Whether `addr` is the host of configured servers that are all without a control path
/// (an address shared with an up server says nothing about where a replica runs).
fn only_unreachable_host(obs: &Observation, addr: &str) -> bool {
    let mut servers = obs
        .hosts
        .iter()
        .filter(|(_, h)| h.as_str() == addr)
        .peekable();
    servers.peek().is_some() && servers.all(|(s, _)| unreachable(obs, s))
}

/// A container seen for the first time, as a `Starting` replica.
fn track(c: &ContainerInfo, obs: &Observation, now: Instant) -> Replica {
    let host = obs.hosts.get(&c.server).cloned().unwrap_or_default();
    Replica::new(c, host, now)
}

/// Server loads for placement: containers as the fleet counts them, less the ones this pass
/// removes, and this service's replicas per server.
fn loads_for(
    obs: &Observation,
    state: &ServiceState,
    counted: &[&Replica],
    replaced: &BTreeSet<String>,
) -> Vec<ServerLoad> {
    // Counted once per server, not once per server and replica (100 servers × 500 replicas).
    let mut removed: HashMap<&str, u32> = HashMap::new();
    for r in state.replicas.values().filter(|r| replaced.contains(&r.id)) {
        *removed.entry(r.server.as_str()).or_default() += 1;
    }
    let mut per_server: HashMap<&str, u32> = HashMap::new();
    for r in counted {
        *per_server.entry(r.server.as_str()).or_default() += 1;
    }
    obs.loads
        .iter()
        .map(|l| ServerLoad {
            containers: l
                .containers
                .saturating_sub(removed.get(l.name.as_str()).copied().unwrap_or(0)),
            replicas: per_server.get(l.name.as_str()).copied().unwrap_or(0),
            ..l.clone()
        })
        .collect()
}

/// Placement for the count and the rollout: by container count alone, or for a GPU service
/// where the devices it needs are free ([`placement::place_gpu`]).
pub(super) struct Placer {
    need: Option<placement::GpuNeed>,
    sharing: bool,
    gpus: Vec<placement::GpuInventory>,
}

impl Placer {
    fn new(
        spec: &ServiceConfig,
        state: &ServiceState,
        obs: &Observation,
        replaced: &BTreeSet<String>,
        now: Instant,
    ) -> Self {
        let need = spec
            .gpus
            .as_ref()
            .map(|g| placement::GpuNeed::from_config(g));
        let mut gpus = obs.gpus.clone().unwrap_or_default();
        for g in &mut gpus {
            // Devices of replicas removed this pass are free again.
            for r in state
                .replicas
                .values()
                .filter(|r| r.server == g.server && replaced.contains(&r.id))
            {
                for d in &r.gpus {
                    g.exclusive.remove(d);
                    if let Some(n) = g.shared.get_mut(d) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            if let Some(b) = state.gpu_backoff.get(&g.server).filter(|b| b.until > now) {
                g.blocked = Some(format!(
                    "its GPU runtime failed; next try in {}s ({})",
                    b.until.saturating_duration_since(now).as_secs().max(1),
                    b.error
                ));
            }
        }
        Self {
            need,
            sharing: spec.gpu_sharing,
            gpus,
        }
    }

    /// Places up to `wanted` replicas; a shortfall adds its step to `steps`.
    pub(super) fn place(
        &mut self,
        loads: &mut [ServerLoad],
        wanted: u32,
        steps: &mut Vec<Step>,
    ) -> Vec<(String, Vec<String>)> {
        let Some(need) = &self.need else {
            let chosen = placement::place(loads, wanted);
            if (chosen.len() as u32) < wanted {
                steps.push(Step::CapacityShort {
                    wanted,
                    placed: chosen.len() as u32,
                });
            }
            return chosen.into_iter().map(|s| (s, Vec::new())).collect();
        };
        let (chosen, why) = placement::place_gpu(loads, &mut self.gpus, wanted, need, self.sharing);
        if (chosen.len() as u32) < wanted {
            steps.push(Step::PlacementShort {
                wanted,
                placed: chosen.len() as u32,
                need: need.to_string(),
                why,
            });
        }
        chosen
    }
}
