//! GPU placement and warm-up through the whole loop, on paused time over the fakes of
//! [`super::fake`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::fake::{FakeConnector, FakeLb, FakeProber, World};
use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::context::Parts;
use crate::journal::Journal;
use crate::ports::LoadBalancer;
use crate::reconcile::Phase;

fn app(world: &World, servers: &str, service: &str) -> Arc<App> {
    let text = format!(
        "load_balancer:\n  runtime_api: unix:/fake/haproxy.sock\n\
         servers:\n{servers}\
         services:\n  web:\n    image: web:1\n    port: 8080\n    cooldown_period: 0\n    health_check:\n      path: /health\n      interval: 1\n      start_period: 20\n{service}"
    );
    let config = Config::parse(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let lb_world = world.clone();
    let parts = Parts {
        connector: Arc::new(FakeConnector(world.clone())),
        make_lb: Arc::new(move |_| Ok(Arc::new(FakeLb(lb_world.clone())) as Arc<dyn LoadBalancer>)),
        prober: Arc::new(FakeProber(world.clone())),
        journal: Journal::in_memory(),
        clock: Clock::paused_at("2026-11-30T10:00:00Z".parse().unwrap()),
    };
    App::with_parts(config, PathBuf::from("test.yaml"), parts).unwrap()
}

fn server(name: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    host: 10.0.0.1\n    docker_host: unix:///fake/{name}.sock\n{extra}"
    )
}

async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn actions(app: &App, action: &str) -> Vec<String> {
    app.journal
        .list("web", 0, 1000)
        .0
        .into_iter()
        .filter(|e| e.action == action)
        .map(|e| e.reason)
        .collect()
}

fn ready(app: &App) -> usize {
    app.service("web")
        .map_or(0, |rt| rt.snapshot().count(Phase::Ready))
}

#[tokio::test(start_paused = true)]
async fn gpu_replicas_get_devices_of_their_own_and_freed_ones_are_reused() {
    let world = World::new(&["big", "cpu"]);
    let servers = server("big", "    gpus: 2\n") + &server("cpu", "");
    let app = app(
        &world,
        &servers,
        "    min_replicas: 3\n    max_replicas: 3\n    gpus: 1\n",
    );
    app.start().await;
    until(Duration::from_secs(10), "two replicas ready", || {
        ready(&app) == 2
    })
    .await;
    let devices = |world: &World| {
        let mut d: Vec<(String, Vec<String>)> = world
            .running("web")
            .into_iter()
            .map(|c| (c.server, c.gpus))
            .collect();
        d.sort();
        d
    };
    let held = devices(&world);
    assert_eq!(
        held,
        vec![
            ("big".to_owned(), vec!["0".to_owned()]),
            ("big".to_owned(), vec!["1".to_owned()])
        ]
    );
    // The third cannot be placed: said server by server, once per new situation (3
    // wanted, 2 placed; then 1 wanted, none placed), not at every pass.
    let short = actions(&app, "placement_short");
    assert!(short[0].contains("wanted 1 more replica(s) needing 1 GPU(s) each, placed 0"));
    for s in &short {
        assert!(s.contains("big 0 of 2 GPU(s) free, 1 needed"), "{s}");
        assert!(s.contains("cpu has no GPUs"), "{s}");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(actions(&app, "placement_short").len(), short.len());
    assert!(short.len() <= 2, "{short:?}");
    // A replica dies: its replacement gets the device it held.
    let victim = world.running("web")[0].clone();
    world.kill("big", &victim.id, true);
    until(Duration::from_secs(10), "replaced", || {
        world.running("web").len() == 2 && !world.running("web").iter().any(|c| c.id == victim.id)
    })
    .await;
    assert_eq!(devices(&world), held);
}

#[tokio::test(start_paused = true)]
async fn a_replica_enters_haproxy_only_warm_and_one_whose_warm_up_fails_is_replaced() {
    let world = World::new(&["s1"]);
    world.with(|w| w.warmup_fails = true);
    let app = app(
        &world,
        &server("s1", ""),
        "    min_replicas: 1\n    max_replicas: 2\n    warmup:\n      path: /api/generate\n      body: '{}'\n      timeout: 5\n",
    );
    app.start().await;
    until(Duration::from_secs(5), "a replica runs", || {
        world.running("web").len() == 1
    })
    .await;
    // Healthy, but its warm-up fails: never in HAProxy, then replaced after 3 failures.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(world.registered("web_backend").is_empty());
    until(Duration::from_secs(10), "replaced", || {
        !actions(&app, "replica_replaced").is_empty()
    })
    .await;
    let why = &actions(&app, "replica_replaced")[0];
    assert!(why.contains("3 failed warm-up requests in a row"), "{why}");
    // Warm-ups work again: the replacement warms up, then joins.
    world.with(|w| w.warmup_fails = false);
    until(Duration::from_secs(10), "ready", || ready(&app) == 1).await;
    assert_eq!(actions(&app, "replica_warmed_up").len(), 1);
    // A rolling update's new replica warms up too before it takes traffic.
    crate::commands::update(
        app.context(),
        "web",
        crate::release::UpdateKind::RollingUpdate,
        None,
    )
    .unwrap();
    until(Duration::from_secs(20), "rolled", || {
        !actions(&app, "rollout")
            .iter()
            .all(|r| !r.contains("finished"))
    })
    .await;
    assert_eq!(actions(&app, "replica_warmed_up").len(), 2);
    let warmed_ports = world.with(|w| w.warmups.len());
    assert_eq!(
        warmed_ports, 3,
        "one warm-up target per replica ever started"
    );
}

#[tokio::test(start_paused = true)]
async fn a_sleeping_service_whose_haproxy_lacks_the_activator_says_so() {
    let world = World::new(&["s1"]);
    // The fake HAProxy's backend has no backup server (as a HAProxy started from a config
    // rendered before wake_on_request was set).
    let app = app(
        &world,
        &server("s1", ""),
        "    min_replicas: 1\n    max_replicas: 1\n    wake_on_request: true\n    idle_to_zero_after: 60\n",
    );
    app.start().await;
    let rt = app.service("web").unwrap();
    until(Duration::from_secs(5), "the error", || {
        rt.snapshot()
            .last_error
            .is_some_and(|e| e.contains("has no shoal-activator backup server"))
    })
    .await;
    assert!(world.running("web").is_empty(), "adopted at zero");
}
