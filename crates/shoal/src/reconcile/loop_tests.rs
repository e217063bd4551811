//! The loop on paused Tokio time over the in-memory fakes of [`super::fake`]: scenarios that
//! take tens of seconds end to end run here in milliseconds of real time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::fake::{FakeConnector, FakeLb, FakeProber, World};
use crate::app::App;
use crate::clock::Clock;
use crate::commands;
use crate::config::Config;
use crate::context::Parts;
use crate::journal::{Event, Journal};
use crate::ports::LoadBalancer;
use crate::reconcile::Phase;
use crate::reconcile::Trigger;

pub(super) const BACKEND: &str = "web_backend";

pub(super) fn config(servers: &[&str], service: &str) -> Config {
    let servers: String = servers
        .iter()
        .map(|s| {
            format!(
                "  - name: {s}\n    host: 10.0.0.1\n    max_containers: 6\n    docker_host: unix:///fake/{s}.sock\n"
            )
        })
        .collect();
    let text = format!(
        "load_balancer:\n  runtime_api: unix:/fake/haproxy.sock\n  drain_timeout: 30\n\
         servers:\n{servers}\
         services:\n  web:\n    image: web:1\n    port: 8080\n{service}\
         autoscaler:\n  check_interval: 10\n  business_hours:\n    start: \"00:00\"\n    end: \"23:59\"\n    timezone: UTC\n"
    );
    Config::parse(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub(super) fn app(world: &World, config: Config) -> Arc<App> {
    app_with_journal(world, config, Journal::in_memory())
}

/// [`app`] with the given journal (a file, to see what a restart finds).
pub(super) fn app_with_journal(world: &World, config: Config, journal: Journal) -> Arc<App> {
    let lb_world = world.clone();
    let parts = Parts {
        connector: Arc::new(FakeConnector(world.clone())),
        make_lb: Arc::new(move |_| Ok(Arc::new(FakeLb(lb_world.clone())) as Arc<dyn LoadBalancer>)),
        prober: Arc::new(FakeProber(world.clone())),
        journal,
        clock: Clock::paused_at("2026-11-30T10:00:00Z".parse().unwrap()),
    };
    App::with_parts(config, PathBuf::from("test.yaml"), parts).unwrap()
}

pub(super) fn events(app: &App) -> Vec<Event> {
    let mut e = app.journal.list("web", 0, 1000).0;
    e.reverse();
    e
}

pub(super) fn actions(app: &App, action: &str) -> Vec<Event> {
    events(app)
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

/// Advances paused time in `step`s until `f` holds or `limit` passes; returns the time it
/// took (virtual).
pub(super) async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

pub(super) fn ready(app: &App) -> usize {
    app.service("web")
        .map_or(0, |rt| rt.snapshot().count(Phase::Ready))
}

#[tokio::test(start_paused = true)]
async fn replica_that_never_passes_its_check_is_replaced_after_start_period() {
    let world = World::new(&["s1"]);
    world.with(|w| w.new_healthy = false);
    let app = app(
        &world,
        config(&["s1"], "    min_replicas: 1\n    max_replicas: 2\n    health_check:\n      path: /health\n      interval: 1\n      timeout: 1\n      start_period: 20\n      unhealthy_threshold: 3\n"),
    );
    let real = std::time::Instant::now();
    app.start().await;
    until(Duration::from_secs(5), "the first replica starts", || {
        world.running("web").len() == 1
    })
    .await;
    let started = Instant::now();
    // Within the start period nothing is replaced, however often the probe fails.
    tokio::time::sleep(Duration::from_secs(19)).await;
    assert!(
        actions(&app, "replica_replaced").is_empty(),
        "{:#?}",
        events(&app)
    );
    assert_eq!(ready(&app), 0);
    world.with(|w| w.new_healthy = true);
    let took = until(Duration::from_secs(10), "replaced", || {
        !actions(&app, "replica_replaced").is_empty()
    })
    .await;
    let replaced_after = started.elapsed();
    assert!(
        replaced_after > Duration::from_secs(20),
        "replaced after {replaced_after:?}, before start_period"
    );
    assert!(
        took < Duration::from_secs(5),
        "replaced {took:?} after start_period"
    );
    let e = &actions(&app, "replica_replaced")[0];
    assert!(
        e.reason
            .contains("no passing health check within start_period 20s"),
        "{}",
        e.reason
    );
    // Its replacement (healthy now) enters rotation; exactly one replica runs.
    until(Duration::from_secs(10), "replacement ready", || {
        ready(&app) == 1
    })
    .await;
    assert_eq!(
        world.running("web").len(),
        1,
        "{:#?}\n{:#?}",
        events(&app),
        world.0.lock().unwrap()
    );
    assert_eq!(world.in_rotation(BACKEND).len(), 1);
    eprintln!("virtual {:?}, real {:?}", started.elapsed(), real.elapsed());
}

#[tokio::test(start_paused = true)]
async fn cooldown_holds_the_next_scale_up_then_releases_it() {
    let world = World::new(&["s1"]);
    world.with(|w| w.cpu = 95.0);
    let app = app(
        &world,
        config(&["s1"], "    min_replicas: 1\n    max_replicas: 4\n    cooldown_period: 60\n    scale_up_threshold: 75\n    scale_down_threshold: 10\n    health_check:\n      path: /health\n      interval: 1\n"),
    );
    app.start().await;
    until(Duration::from_secs(30), "first scale up", || {
        actions(&app, "scale_up").len() == 1
    })
    .await;
    let first = Instant::now();
    until(Duration::from_secs(30), "a hold", || {
        actions(&app, "scale_held").iter().any(|e| {
            e.details
                .as_ref()
                .and_then(|d| d.get("held"))
                .and_then(Value::as_str)
                == Some("cooldown")
        })
    })
    .await;
    assert_eq!(
        actions(&app, "scale_up").len(),
        1,
        "no second action inside the cooldown"
    );
    let took = until(Duration::from_secs(90), "second scale up", || {
        actions(&app, "scale_up").len() == 2
    })
    .await;
    let gap = first.elapsed();
    assert!(
        gap >= Duration::from_secs(60),
        "second scale-up {gap:?} after the first: inside the cooldown"
    );
    assert!(
        gap <= Duration::from_secs(75),
        "second scale-up {gap:?} after the first ({took:?})"
    );
    let desired = app.service("web").unwrap().snapshot().desired;
    assert_eq!(desired, 3);
}

#[tokio::test(start_paused = true)]
async fn drain_timeout_bounds_a_drain_with_stuck_sessions() {
    let world = World::new(&["s1"]);
    let app = app(
        &world,
        config(&["s1"], "    min_replicas: 1\n    max_replicas: 3\n    cooldown_period: 0\n    health_check:\n      path: /health\n      interval: 1\n"),
    );
    app.start().await;
    until(Duration::from_secs(10), "one ready", || ready(&app) == 1).await;
    commands::scale(&app, "web", true, Trigger::Manual).unwrap();
    until(Duration::from_secs(10), "two ready", || ready(&app) == 2).await;
    // Every replica has a client that never finishes.
    let names: Vec<String> = world.running("web").into_iter().map(|c| c.name).collect();
    world.with(|w| {
        names.iter().for_each(|n| {
            w.stuck_sessions.insert(n.clone(), 1);
        })
    });
    commands::scale(&app, "web", false, Trigger::Manual).unwrap();
    let started = Instant::now();
    until(Duration::from_secs(5), "draining", || {
        !actions(&app, "replica_draining").is_empty()
    })
    .await;
    // Out of rotation at once, but not removed while its session lasts...
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(world.in_rotation(BACKEND).len(), 1);
    assert_eq!(
        world.running("web").len(),
        2,
        "removed before drain_timeout"
    );
    // ...until drain_timeout (30 s) ends the wait; its sessions are shut down.
    until(Duration::from_secs(10), "removed", || {
        !actions(&app, "replica_removed").is_empty()
    })
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(33),
        "removed after {took:?}"
    );
    let e = &actions(&app, "replica_removed")[0];
    assert!(e.reason.contains("drain_timeout ran out"), "{}", e.reason);
    assert_eq!(world.running("web").len(), 1);
}

/// Two replicas of `web` in rotation, one on `s1`, one on `s2`.
async fn two_servers_one_replica_each() -> (World, Arc<App>) {
    let world = World::new(&["s1", "s2"]);
    let app = app(
        &world,
        config(&["s1", "s2"], "    min_replicas: 2\n    max_replicas: 4\n    health_check:\n      path: /health\n      interval: 1\n"),
    );
    app.start().await;
    until(Duration::from_secs(10), "two ready", || ready(&app) == 2).await;
    assert_eq!(on(&world, "s1"), 1, "spread over both servers");
    assert_eq!(on(&world, "s2"), 1, "spread over both servers");
    (world, app)
}

/// Running containers of `web` on `server`.
fn on(world: &World, server: &str) -> usize {
    world
        .running("web")
        .iter()
        .filter(|c| c.server == server)
        .count()
}

/// Journal events that change what runs or what HAProxy serves.
fn changes(app: &App) -> Vec<Event> {
    events(app)
        .into_iter()
        .filter(|e| {
            e.action.starts_with("replica_") || e.action.starts_with("lb_") || e.action == "error"
        })
        .collect()
}

fn server_state(app: &App, server: &str) -> crate::fleet::ServerStatus {
    app.fleet.get(server).unwrap().status()
}

#[tokio::test(start_paused = true)]
async fn a_lost_control_path_with_healthy_replicas_keeps_them_serving_and_starts_none() {
    let (world, app) = two_servers_one_replica_each().await;
    let created = world.with(|w| w.created);
    // s2's engine stops answering (sshd gone); its replica still passes HAProxy's checks.
    world.with(|w| w.servers.get_mut("s2").unwrap().answering = false);
    until(Duration::from_secs(30), "s2 unreachable", || {
        server_state(&app, "s2").state == crate::fleet::ServerState::Unreachable
    })
    .await;
    let st = server_state(&app, "s2");
    assert!(!st.up);
    assert_eq!(st.serving, 1, "{st:?}");
    assert!(
        st.reason.as_deref().is_some_and(|r| r.contains("s2")),
        "the reason names what failed: {st:?}"
    );
    // HAProxy's checks judge it now: shoal does not probe it (a probe of a server that is
    // gone would only wait out its timeout and slow the pass).
    let port = world
        .running("web")
        .iter()
        .find(|c| c.server == "s2")
        .and_then(|c| c.host_port)
        .unwrap();
    let probed = || world.with(|w| w.probed.get(&port).copied().unwrap_or(0));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = probed();
    // Well past every failure threshold: nothing duplicated, nothing lost, still serving.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        probed(),
        before,
        "the replica without a control path was probed"
    );
    assert_eq!(world.with(|w| w.created), created, "{:#?}", events(&app));
    assert_eq!((on(&world, "s1"), on(&world, "s2")), (1, 1));
    assert_eq!(world.in_rotation(BACKEND).len(), 2);
    assert_eq!(ready(&app), 2);
    assert!(
        actions(&app, "replica_lost").is_empty(),
        "{:#?}",
        events(&app)
    );
    // Nothing new is placed there: a scale-up goes to s1.
    commands::scale(&app, "web", true, Trigger::Manual).unwrap();
    until(Duration::from_secs(10), "three ready", || ready(&app) == 3).await;
    assert_eq!((on(&world, "s1"), on(&world, "s2")), (2, 1));
    commands::scale(&app, "web", false, Trigger::Manual).unwrap();
    until(Duration::from_secs(30), "back to two", || {
        world.running("web").len() == 2 && ready(&app) == 2
    })
    .await;
    // The drained one was on s1: the one without a control path could not be stopped.
    assert_eq!((on(&world, "s1"), on(&world, "s2")), (1, 1));
    let created = world.with(|w| w.created);
    let acted = changes(&app).len();
    // The control path is back: up, and nothing to do.
    world.with(|w| w.servers.get_mut("s2").unwrap().answering = true);
    until(Duration::from_secs(30), "s2 up", || {
        server_state(&app, "s2").state == crate::fleet::ServerState::Up
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(probed() > before, "probed again once back");
    assert_eq!(world.with(|w| w.created), created);
    assert_eq!(changes(&app).len(), acted, "{:#?}", &changes(&app)[acted..]);
    assert_eq!(world.in_rotation(BACKEND).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_server_gone_has_its_replicas_replaced_elsewhere_and_reconciled_on_return() {
    let (world, app) = two_servers_one_replica_each().await;
    // s2 is gone: no control path, and its replica fails HAProxy's checks too.
    world.with(|w| {
        let s2 = w.servers.get_mut("s2").unwrap();
        s2.answering = false;
        s2.reachable = false;
    });
    let took = until(
        Duration::from_secs(30),
        "replacement on s1 in rotation",
        || on(&world, "s1") == 2 && ready(&app) == 2 && !actions(&app, "replica_lost").is_empty(),
    )
    .await;
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(
        server_state(&app, "s2").state,
        crate::fleet::ServerState::Down
    );
    assert_eq!(
        world.in_rotation(BACKEND).len(),
        2,
        "{:#?}\n{:#?}",
        events(&app),
        world.0.lock().unwrap().backends
    );
    assert_eq!(
        world.registered(BACKEND).len(),
        2,
        "the lost one left HAProxy"
    );
    // s2 answers again with its old replica still running: the surplus is drained, exactly
    // two remain, none duplicated.
    world.with(|w| {
        let s2 = w.servers.get_mut("s2").unwrap();
        s2.answering = true;
        s2.reachable = true;
    });
    until(Duration::from_secs(30), "back to exactly two", || {
        world.running("web").len() == 2
            && app.service("web").unwrap().snapshot().replicas.len() == 2
            && ready(&app) == 2
    })
    .await;
    // And it stays so: no duplicate, no orphan.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(world.running("web").len(), 2);
    assert_eq!(world.in_rotation(BACKEND).len(), 2);
    assert_eq!(
        server_state(&app, "s2").state,
        crate::fleet::ServerState::Up
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_pass_stays_in_its_service() {
    let world = World::new(&["s1"]);
    let app = app(
        &world,
        config(&["s1"], "    min_replicas: 1\n    max_replicas: 2\n    health_check:\n      path: /health\n      interval: 1\n"),
    );
    app.start().await;
    until(Duration::from_secs(10), "one ready", || ready(&app) == 1).await;
    // A task that panics while changing the state poisons nothing: readers and the loop go on.
    let rt = app.service("web").unwrap();
    let rt2 = rt.clone();
    let _ = tokio::spawn(async move { rt2.update(|_| panic!("boom")) }).await;
    assert_eq!(rt.snapshot().count(Phase::Ready), 1);
    commands::scale(&app, "web", true, Trigger::Manual).unwrap();
    until(Duration::from_secs(10), "two ready", || ready(&app) == 2).await;
}

/// One replica of `web` on `s1`, in rotation, the loop at rest (it passes every 2 s: the
/// check interval is longer) and the event watcher's stream open.
async fn one_replica_at_rest() -> (World, Arc<App>) {
    let world = World::new(&["s1"]);
    let app = app(
        &world,
        config(&["s1"], "    min_replicas: 1\n    max_replicas: 1\n    health_check:\n      path: /health\n      interval: 10\n      timeout: 1\n"),
    );
    app.start().await;
    until(Duration::from_secs(30), "one replica in rotation", || {
        world.in_rotation(BACKEND).len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    (world, app)
}

/// The one running container of `web`: (server, id, name).
fn only_replica(world: &World) -> (String, String, String) {
    let running = world.running("web");
    assert_eq!(running.len(), 1, "{running:#?}");
    let c = &running[0];
    (c.server.clone(), c.id.clone(), c.name.clone())
}

#[tokio::test(start_paused = true)]
async fn a_container_death_event_takes_it_out_of_the_load_balancer_before_the_next_pass() {
    let (world, app) = one_replica_at_rest().await;

    // Without an event, a dead container stays registered until the next pass lists it.
    let (server, id, name) = only_replica(&world);
    world.kill(&server, &id, false);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        world.registered(BACKEND).contains(&name),
        "a silent death was noticed at once: the test would not show the event's effect"
    );
    until(Duration::from_secs(10), "replaced by listing", || {
        world.in_rotation(BACKEND).len() == 1 && world.running("web").len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    // With its event, it leaves at once (well before the 2 s requeue).
    let (server, id, name) = only_replica(&world);
    world.kill(&server, &id, true);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !world.registered(BACKEND).contains(&name),
        "{name} is still registered 20 ms after its die event"
    );
    let counted = app
        .fleet
        .get("s1")
        .unwrap()
        .events_received()
        .get("die")
        .copied();
    assert_eq!(counted, Some(1));
    until(Duration::from_secs(10), "replaced", || {
        world.in_rotation(BACKEND).len() == 1
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_event_stream_is_reopened_from_the_last_event() {
    let (world, _app) = one_replica_at_rest().await;
    let (server, id, _) = only_replica(&world);
    world.kill(&server, &id, true); // the fake's first event: time 1
    until(Duration::from_secs(10), "replaced", || {
        world.in_rotation(BACKEND).len() == 1 && world.running("web").len() == 1
    })
    .await;

    world.end_event_streams();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let opened = world.with(|w| w.events_opened.clone());
    assert_eq!(
        opened,
        vec![("s1".to_owned(), None), ("s1".to_owned(), Some(1))],
        "opened from now, then again from the last event's time"
    );
    // Events reach the loop through the reopened stream.
    let (server, id, name) = only_replica(&world);
    world.kill(&server, &id, true);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !world.registered(BACKEND).contains(&name),
        "{name} is still registered 20 ms after its die event on the reopened stream"
    );
}
