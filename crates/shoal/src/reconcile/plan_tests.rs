//! Properties of the planner over generated states and observations.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::observe::Observation;
use super::plan::{plan, Input, Plan, Step};
use crate::config::{Config, ServiceConfig};
use crate::engine::{ContainerInfo, ContainerState};
use crate::placement::ServerLoad;
use crate::ports::LbServer;
use crate::service::{Phase, Replica, Rollout, ServiceState};

const SERVERS: [&str; 3] = ["s1", "s2", "s3"];

pub(super) fn spec(min: u32, max: u32) -> ServiceConfig {
    let text = format!(
        "servers:\n  - name: s1\n    host: 10.0.0.1\n    docker_host: unix:///x.sock\n\
         services:\n  web:\n    image: web:1\n    port: 80\n    min_replicas: {min}\n    max_replicas: {max}\n\
         \x20   health_check:\n      path: /h\n      interval: 1\n      start_period: 30\n      unhealthy_threshold: 3\n"
    );
    Config::parse(&text, "t.yaml").unwrap().services["web"].clone()
}

/// A generated replica: (server, phase, container state, health failures, healthy, age s).
pub(super) type Gen = (usize, u8, bool, u32, bool, u64);

fn replica(i: usize, g: &Gen, now: Instant) -> Replica {
    let (server, phase, running, failures, healthy, age) = *g;
    let phase = match phase % 4 {
        0 => Phase::Starting,
        1 => Phase::Joining,
        2 => Phase::Ready,
        _ => Phase::Draining,
    };
    let info = ContainerInfo {
        id: format!("id{i}"),
        name: format!("web-{i}"),
        service: "web".into(),
        server: SERVERS[server % 3].into(),
        revision: "r1".into(),
        state: if running {
            ContainerState::Running
        } else {
            ContainerState::Exited
        },
        status: String::new(),
        host_port: Some(30000 + i as u16),
        created: i as i64,
        image: Default::default(),
        gpus: Vec::new(),
        gpu_sharing: false,
    };
    let mut r = Replica::new(
        &info,
        "10.0.0.1".into(),
        now.checked_sub(Duration::from_secs(age)).unwrap_or(now),
    );
    r.phase = phase;
    r.health_failures = failures;
    r.healthy = Some(healthy && failures == 0);
    r.in_lb = matches!(phase, Phase::Joining | Phase::Ready);
    r.joined_at = r.in_lb.then_some(r.first_seen);
    r
}

pub(super) fn world(
    gens: &[Gen],
    desired: u32,
    rollout: Option<(usize, bool)>,
) -> (ServiceState, Observation, Instant) {
    let now = Instant::now() + Duration::from_secs(1000);
    let replicas: BTreeMap<String, Replica> = gens
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("id{i}"), replica(i, g, now)))
        .collect();
    let obs = Observation {
        up: SERVERS.iter().map(|s| (*s).to_owned()).collect(),
        answered: SERVERS.iter().map(|s| (*s).to_owned()).collect(),
        servers: SERVERS.iter().map(|s| (*s).to_owned()).collect(),
        containers: replicas
            .values()
            .map(|r| ContainerInfo {
                id: r.id.clone(),
                name: r.name.clone(),
                service: "web".into(),
                server: r.server.clone(),
                revision: r.revision.clone(),
                state: r.container_state,
                status: String::new(),
                host_port: r.port,
                created: r.created,
                image: r.image.clone(),
                gpus: Vec::new(),
                gpu_sharing: false,
            })
            .collect(),
        hosts: SERVERS
            .iter()
            .map(|s| ((*s).to_owned(), "10.0.0.1".to_owned()))
            .collect(),
        loads: SERVERS
            .iter()
            .map(|s| ServerLoad {
                name: (*s).to_owned(),
                up: true,
                max_containers: 10,
                containers: replicas.values().filter(|r| r.server == *s).count() as u32,
                replicas: 0,
            })
            .collect(),
        lb: Some(
            replicas
                .values()
                .filter(|r| r.in_lb)
                .map(|r| LbServer {
                    name: r.name.clone(),
                    addr: "10.0.0.1".into(),
                    port: r.port.unwrap(),
                    status: if r.phase == Phase::Ready {
                        "UP"
                    } else {
                        "MAINT"
                    }
                    .into(),
                    in_rotation: r.phase == Phase::Ready,
                    maint: r.phase != Phase::Ready,
                    check_passing: r.healthy == Some(true),
                })
                .collect(),
        ),
        lb_error: None,
        probes: BTreeMap::new(),
        gpus: None,
    };
    let rollout = rollout.map(|(k, with_surge)| {
        let ids: Vec<String> = replicas.keys().cloned().collect();
        let surges = if with_surge && ids.len() >= 2 {
            BTreeMap::from([(ids[0].clone(), ids[1].clone())])
        } else {
            BTreeMap::new()
        };
        Rollout {
            revision: "r2".into(),
            to: crate::release::test_revision("r2"),
            from: Some(crate::release::test_revision("r1")),
            replace_ids: ids.iter().skip(1).take(k).cloned().collect(),
            surges,
            replaced: 0,
            rollback: None,
            max_surge: 1,
            max_unavailable: 0,
            progress_deadline: Duration::from_secs(600),
            last_progress: now,
        }
    });
    let state = ServiceState {
        desired,
        adopted: true,
        replicas,
        rollout,
        ..ServiceState::default()
    };
    (state, obs, now)
}

pub(super) fn run(
    spec: &ServiceConfig,
    state: &ServiceState,
    obs: &Observation,
    now: Instant,
) -> Plan {
    plan(&Input {
        spec,
        state,
        obs,
        removed: false,
        now,
    })
}

fn gen_replica() -> impl Strategy<Value = Gen> {
    (
        0usize..3,
        0u8..4,
        prop::bool::weighted(0.85),
        0u32..5,
        prop::bool::weighted(0.8),
        0u64..100,
    )
}

fn healthy_replica() -> impl Strategy<Value = Gen> {
    (
        0usize..3,
        0u8..3,
        Just(true),
        Just(0u32),
        Just(true),
        0u64..100,
    )
}

/// Active replicas after the plan: active before, less replaced, lost and drained, plus
/// started.
fn active_after(state: &ServiceState, p: &Plan) -> i64 {
    let active = state.replicas.values().filter(|r| r.active()).count() as i64;
    let removed = p
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::Replace { .. } | Step::Lost { .. } | Step::Drain { .. }
            )
        })
        .count() as i64;
    let started = p
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Start { .. }))
        .count() as i64;
    active - removed + started
}

proptest! {
    #[test]
    fn never_two_steps_on_one_replica(
        gens in prop::collection::vec(gen_replica(), 0..8),
        desired in 1u32..6,
        rollout in prop::option::of((0usize..5, any::<bool>())),
    ) {
        let spec = spec(1, 6);
        let (state, obs, now) = world(&gens, desired, rollout);
        let p = run(&spec, &state, &obs, now);
        let mut seen = BTreeSet::new();
        for s in &p.steps {
            if let Some(id) = s.replica() {
                prop_assert!(seen.insert(id.to_owned()), "two steps on {id}: {:#?}", p.steps);
            }
        }
    }

    #[test]
    fn desired_count_is_reached_when_there_is_room(
        gens in prop::collection::vec(gen_replica(), 0..8),
        desired in 1u32..6,
    ) {
        let spec = spec(1, 6);
        let (state, obs, now) = world(&gens, desired, None);
        let p = run(&spec, &state, &obs, now);
        prop_assert_eq!(active_after(&state, &p), i64::from(desired), "{:#?}", p.steps);
    }

    #[test]
    fn every_failed_replica_is_replaced_exactly_once(
        gens in prop::collection::vec(gen_replica(), 1..8),
        desired in 1u32..6,
    ) {
        let spec = spec(1, 6);
        let (state, obs, now) = world(&gens, desired, None);
        let p = run(&spec, &state, &obs, now);
        let failed: BTreeSet<&str> = state
            .replicas
            .values()
            .filter(|r| r.active() && super::plan::failure(r, &spec, now).is_some())
            .map(|r| r.id.as_str())
            .collect();
        let replaced: Vec<&str> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Replace { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        prop_assert_eq!(replaced.len(), failed.len());
        prop_assert_eq!(replaced.into_iter().collect::<BTreeSet<_>>(), failed);
    }

    #[test]
    fn a_rollout_never_takes_ready_replicas_below_min(
        gens in prop::collection::vec(healthy_replica(), 2..8),
        min in 1u32..4,
        rollout in (0usize..6, any::<bool>()),
    ) {
        let spec = spec(min, 6);
        let (state, obs, now) = world(&gens, min.max(2), Some(rollout));
        let p = run(&spec, &state, &obs, now);
        let ready_before = state.count(Phase::Ready) as u32;
        let ready_drained = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Drain { id, .. } | Step::Replace { id, .. }
                if state.replicas[id].phase == Phase::Ready))
            .count() as u32;
        let ready_after = ready_before - ready_drained;
        prop_assert!(ready_after >= ready_before.min(min), "{ready_before} -> {ready_after}: {:#?}", p.steps);
    }
}

#[test]
fn the_first_listing_waits_for_every_up_server() {
    let spec = spec(1, 4);
    let (mut state, mut obs, now) = world(&[(0, 2, true, 0, true, 50)], 1, None);
    state.adopted = false;
    state.replicas.clear();
    obs.answered.remove("s2");
    let p = run(&spec, &state, &obs, now);
    assert!(p.steps.is_empty(), "{:#?}", p.steps);
    obs.answered.insert("s2".into());
    let p = run(&spec, &state, &obs, now);
    assert!(
        matches!(
            p.steps[0],
            Step::Adopt {
                running: 1,
                desired: 1,
                ..
            }
        ),
        "{:#?}",
        p.steps
    );
    assert!(
        !p.steps.iter().any(|s| matches!(s, Step::Start { .. })),
        "adopted replica counts: {:#?}",
        p.steps
    );
}

#[test]
fn a_container_listed_while_docker_removes_it_never_costs_a_serving_replica() {
    // Replica id0 serves; the listing also shows a container the loop no longer knows (its
    // drain finished between the listing and this plan) in Docker's `removing` state.
    let spec = spec(1, 4);
    let (state, mut obs, now) = world(&[(0, 2, true, 0, true, 50)], 1, None);
    let mut gone = obs.containers[0].clone();
    gone.id = "removed-meanwhile".into();
    gone.name = "web-old".into();
    gone.state = ContainerState::Removing;
    obs.containers.push(gone);
    let p = run(&spec, &state, &obs, now);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s, Step::Drain { .. } | Step::Start { .. })),
        "{:#?}",
        p.steps
    );
}

/// `server` without a control path: not up, not listed; HAProxy's view unchanged.
fn cut(obs: &mut Observation, server: &str) {
    obs.up.remove(server);
    obs.answered.remove(server);
    obs.containers.retain(|c| c.server != server);
    for l in obs.loads.iter_mut().filter(|l| l.name == server) {
        l.up = false;
    }
}

/// HAProxy's checks of `name` fail (it is DOWN).
fn fails_in_lb(obs: &mut Observation, name: &str) {
    for s in obs.lb.iter_mut().flatten().filter(|s| s.name == name) {
        s.status = "DOWN".into();
        s.in_rotation = false;
        s.check_passing = false;
    }
}

fn lost(p: &Plan) -> Vec<&str> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::Lost { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

fn started_on(p: &Plan) -> Vec<&str> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::Start { server, .. } => Some(server.as_str()),
            _ => None,
        })
        .collect()
}

/// Two ready replicas: id0 on s1, id1 on s2.
const TWO_READY: [Gen; 2] = [(0, 2, true, 0, true, 50), (1, 2, true, 0, true, 50)];

#[test]
fn a_replica_haproxy_still_serves_from_a_server_without_control_path_is_kept_and_counted() {
    let spec = spec(1, 4);
    let (state, mut obs, now) = world(&TWO_READY, 2, None);
    cut(&mut obs, "s2");
    let p = run(&spec, &state, &obs, now);
    assert!(lost(&p).is_empty(), "{:#?}", p.steps);
    assert!(
        started_on(&p).is_empty(),
        "nothing duplicated: {:#?}",
        p.steps
    );
    assert!(
        !p.steps.iter().any(|s| matches!(
            s,
            Step::Replace { .. } | Step::Drain { .. } | Step::RemoveStray { .. }
        )),
        "{:#?}",
        p.steps
    );
    // Without HAProxy's view it is kept as well.
    obs.lb = None;
    let p = run(&spec, &state, &obs, now);
    assert!(
        lost(&p).is_empty() && started_on(&p).is_empty(),
        "{:#?}",
        p.steps
    );
}

#[test]
fn a_replica_failing_haproxy_on_a_server_without_control_path_is_lost_and_started_elsewhere() {
    let spec = spec(1, 4);
    let (state, mut obs, now) = world(&TWO_READY, 2, None);
    cut(&mut obs, "s2");
    fails_in_lb(&mut obs, "web-1");
    let p = run(&spec, &state, &obs, now);
    assert_eq!(lost(&p), ["id1"], "{:#?}", p.steps);
    assert!(
        matches!(
            p.steps.iter().find(|s| matches!(s, Step::Lost { .. })),
            Some(Step::Lost { in_lb: true, .. })
        ),
        "it leaves HAProxy: {:#?}",
        p.steps
    );
    let on = started_on(&p);
    assert_eq!(on.len(), 1, "{:#?}", p.steps);
    assert_ne!(
        on[0], "s2",
        "nothing is placed on a server without control path"
    );
    // The same when HAProxy no longer lists it at all.
    let (state, mut obs, now) = world(&TWO_READY, 2, None);
    cut(&mut obs, "s2");
    obs.lb.as_mut().unwrap().retain(|s| s.name != "web-1");
    let p = run(&spec, &state, &obs, now);
    assert_eq!(lost(&p), ["id1"], "{:#?}", p.steps);
    assert_eq!(started_on(&p).len(), 1, "{:#?}", p.steps);
}

#[test]
fn surplus_is_never_drained_from_a_server_without_control_path() {
    let spec = spec(1, 4);
    // id1 on s2 is the newest and the most loaded server's: it would be the victim.
    let gens = [
        (0, 2, true, 0, true, 50),
        (1, 2, true, 0, true, 10),
        (1, 2, true, 0, true, 5),
    ];
    let (state, mut obs, now) = world(&gens, 2, None);
    cut(&mut obs, "s2");
    let p = run(&spec, &state, &obs, now);
    let drained: Vec<&str> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Drain { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(drained, ["id0"], "{:#?}", p.steps);
    // Only replicas there are surplus: the surplus waits for the server.
    let (state, mut obs, now) = world(&gens[1..], 1, None);
    cut(&mut obs, "s2");
    let p = run(&spec, &state, &obs, now);
    assert!(
        !p.steps.iter().any(|s| matches!(s, Step::Drain { .. })),
        "{:#?}",
        p.steps
    );
}

#[test]
fn after_a_restart_replicas_haproxy_serves_from_a_server_without_control_path_are_left_and_counted()
{
    let spec = spec(1, 4);
    let (mut state, mut obs, now) = world(&TWO_READY, 2, None);
    // The restarted loop knows nothing; s2 (10.0.0.2) has no control path.
    state.adopted = false;
    state.replicas.clear();
    obs.hosts.insert("s2".into(), "10.0.0.2".into());
    for s in obs.lb.iter_mut().flatten().filter(|s| s.name == "web-1") {
        s.addr = "10.0.0.2".into();
    }
    cut(&mut obs, "s2");
    let p = run(&spec, &state, &obs, now);
    assert!(
        matches!(
            p.steps[0],
            Step::Adopt {
                running: 2,
                desired: 2,
                ..
            }
        ),
        "{:#?}",
        p.steps
    );
    assert!(started_on(&p).is_empty(), "{:#?}", p.steps);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s, Step::RemoveStray { name } if name == "web-1")),
        "{:#?}",
        p.steps
    );
    // Failing HAProxy's checks, it is a stray like any other: removed, and replaced when
    // the count saved before the restart wants it.
    fails_in_lb(&mut obs, "web-1");
    state.saved_desired = Some(2);
    let p = run(&spec, &state, &obs, now);
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(s, Step::RemoveStray { name } if name == "web-1")),
        "{:#?}",
        p.steps
    );
    assert_eq!(started_on(&p).len(), 1, "{:#?}", p.steps);
}

#[test]
fn a_rollout_waits_for_an_old_replica_on_a_server_without_control_path() {
    let spec = spec(1, 4);
    // Replicas id0 (s1) and id1 (s2); the rollout has id1 left to replace.
    let (state, mut obs, now) = world(&TWO_READY, 2, Some((1, false)));
    assert_eq!(
        state.rollout.as_ref().unwrap().replace_ids,
        BTreeSet::from(["id1".to_owned()])
    );
    cut(&mut obs, "s2");
    let p = run(&spec, &state, &obs, now);
    assert!(
        !p.steps.iter().any(|s| matches!(
            s,
            Step::Start { .. } | Step::RolloutDone { .. } | Step::Drain { .. }
        )),
        "{:#?}",
        p.steps
    );
    // Back: it is rolled.
    let (state, obs, now) = world(&TWO_READY, 2, Some((1, false)));
    let p = run(&spec, &state, &obs, now);
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(s, Step::Start { surge_for: Some(old), .. } if old == "id1")),
        "{:#?}",
        p.steps
    );
}

#[test]
fn a_container_left_created_by_a_killed_shoal_is_replaced_at_adoption() {
    // shoal was SIGKILLed between Docker's create and start: after the restart the first
    // listing shows one serving replica and one container that nothing will ever start.
    let spec = spec(2, 4);
    let (mut state, mut obs, now) = world(&[(0, 2, true, 0, true, 50)], 2, None);
    state.adopted = false;
    state.replicas.clear();
    let mut created = obs.containers[0].clone();
    created.id = "half-made".into();
    created.name = "web-half".into();
    created.server = "s2".into();
    created.state = ContainerState::Created;
    obs.containers.push(created);
    let p = run(&spec, &state, &obs, now);
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(s, Step::Replace { id, .. } if id == "half-made")),
        "the half-made container is replaced at once: {:#?}",
        p.steps
    );
    let starts = p
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Start { .. }))
        .count();
    assert_eq!(
        starts, 1,
        "and a replica started in its place: {:#?}",
        p.steps
    );
    // Once adopted, a created container is the loop's own start in progress: left alone.
    state.adopted = true;
    state.desired = 2;
    let p = run(&spec, &state, &obs, now);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s, Step::Replace { id, .. } if id == "half-made")),
        "{:#?}",
        p.steps
    );
}

#[test]
fn a_replica_docker_reports_unhealthy_is_replaced_whatever_shoal_s_probe_says() {
    let spec = spec(1, 4);
    let (mut state, mut obs, now) = world(&TWO_READY, 2, None);
    for status in [
        "Up 3 minutes (healthy)",
        "Up 2 seconds (health: starting)",
        "Up 3 minutes",
    ] {
        state.replicas.get_mut("id0").unwrap().status = status.into();
        let p = run(&spec, &state, &obs, now);
        assert!(
            !p.steps.iter().any(|s| matches!(s, Step::Replace { .. })),
            "{status}: {:#?}",
            p.steps
        );
    }
    state.replicas.get_mut("id0").unwrap().status = "Up 3 minutes (unhealthy)".into();
    obs.containers[0].status = "Up 3 minutes (unhealthy)".into();
    let p = run(&spec, &state, &obs, now);
    let replaced: Vec<_> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Replace {
                id, reason, in_lb, ..
            } => Some((id.as_str(), reason.clone(), *in_lb)),
            _ => None,
        })
        .collect();
    assert_eq!(replaced.len(), 1, "{:#?}", p.steps);
    assert_eq!(replaced[0].0, "id0");
    assert!(replaced[0].2, "it leaves HAProxy");
    assert!(
        replaced[0]
            .1
            .to_string()
            .starts_with("Docker reports it unhealthy"),
        "{}",
        replaced[0].1
    );
}

/// 500 ready replicas probed in the same instant (they came up together) are spread over
/// the passes at rest instead of being probed together every interval; none waits more
/// longer than the catch-up takes (500 / 150 → four passes, so three beyond its interval),
/// and no pass probes more than its budget.
#[test]
fn routine_probes_that_fell_due_together_spread_over_the_passes() {
    use super::plan::{probes_due, routine_probe_budget};
    let mut spec = spec(1, 500);
    spec.health_check.interval.value = 10;
    let interval = spec.health_check.interval();
    let gens: Vec<Gen> = (0..500).map(|i| (i, 2, true, 0, true, 100)).collect();
    let (mut state, _, start) = world(&gens, 500, None);
    for r in state.replicas.values_mut() {
        r.last_probe = Some(start);
    }
    let budget = routine_probe_budget(500, interval);
    assert_eq!(budget, 150);
    let gap = Duration::from_secs(2);
    let mut per_pass = Vec::new();
    let mut longest = Duration::ZERO;
    let mut now = start;
    for _ in 0..60 {
        now += gap;
        let due = probes_due(&state, &spec, now);
        per_pass.push(due.len());
        for (id, ..) in due {
            let r = state.replicas.get_mut(&id).unwrap();
            longest = longest.max(now - r.last_probe.unwrap());
            r.last_probe = Some(now);
        }
    }
    assert!(per_pass.iter().all(|n| *n <= budget), "{per_pass:?}");
    assert!(longest <= interval + 3 * gap, "longest gap {longest:?}");
    // At rest each replica is probed once an interval (five passes), never in one pass.
    for w in per_pass[30..].windows(5) {
        assert_eq!(w.iter().sum::<usize>(), 500, "{per_pass:?}");
    }
    // A replica whose last probe failed, or never probed, is never held back.
    let id = state.replicas.keys().next().unwrap().clone();
    state.replicas.get_mut(&id).unwrap().health_failures = 1;
    state.replicas.get_mut(&id).unwrap().last_probe = Some(now - interval);
    let due = probes_due(&state, &spec, now);
    assert!(due.iter().any(|(d, ..)| *d == id));
}
