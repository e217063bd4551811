//! The shared container listing ([`crate::inventory`]) over the fake engine on paused time:
//! reused only while nothing changed, never across a change shoal made, shared when it fails.

use std::time::Duration;

use tokio::time::Instant;

use super::fake::{FakeConnector, World};
use super::loop_tests::config;
use crate::engine::{ContainerSpec, ContainerState};
use crate::inventory::Inventory;
use crate::ports::{Connector, DockerApi};

async fn engine(world: &World, inv: &Inventory) -> std::sync::Arc<dyn DockerApi> {
    let cfg = config(&["s1"], "");
    let raw = FakeConnector(world.clone())
        .connect(&cfg.servers[0], Duration::from_secs(1))
        .await
        .unwrap();
    inv.track(raw)
}

fn spec() -> ContainerSpec {
    ContainerSpec::from_service(&config(&["s1"], "").services["web"])
}

#[tokio::test(start_paused = true)]
async fn a_listing_is_never_reused_across_a_change_shoal_made() {
    let world = World::new(&["s1"]);
    let inv = Inventory::default();
    let e = engine(&world, &inv).await;
    let long = Duration::from_secs(3600);
    assert!(inv.containers(e.as_ref(), long).await.unwrap().is_empty());
    let id = e.create_replica("web", "web-1", &spec()).await.unwrap();
    let listed = inv.containers(e.as_ref(), long).await.unwrap();
    assert_eq!(listed.len(), 1, "the container it just created");
    e.stop(&id, Duration::from_secs(1)).await.unwrap();
    e.remove(&id).await.unwrap();
    assert!(inv.containers(e.as_ref(), long).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_unannounced_change_is_seen_once_the_listing_is_older_than_allowed() {
    let world = World::new(&["s1"]);
    let inv = Inventory::default();
    let e = engine(&world, &inv).await;
    let id = e.create_replica("web", "web-1", &spec()).await.unwrap();
    let max_age = Duration::from_millis(2500);
    assert_eq!(
        inv.containers(e.as_ref(), max_age).await.unwrap()[0].state,
        ContainerState::Running
    );
    // Died with no event (the stream was down): the listing is still young enough.
    world.kill("s1", &id, false);
    assert_eq!(
        inv.containers(e.as_ref(), max_age).await.unwrap()[0].state,
        ContainerState::Running
    );
    tokio::time::advance(max_age + Duration::from_millis(1)).await;
    assert_eq!(
        inv.containers(e.as_ref(), max_age).await.unwrap()[0].state,
        ContainerState::Exited
    );
    // An event (or anything else that invalidates) makes it list at once.
    e.create_replica("web", "web-2", &spec()).await.unwrap();
    inv.containers(e.as_ref(), max_age).await.unwrap();
    let other = world.running("web")[0].id.clone();
    world.kill("s1", &other, false);
    inv.invalidate();
    let listed = inv.containers(e.as_ref(), max_age).await.unwrap();
    assert!(listed.iter().all(|c| c.state == ContainerState::Exited));
    // Zero age always lists.
    world.with(|w| w.servers.get_mut("s1").unwrap().containers.clear());
    assert!(inv
        .containers(e.as_ref(), Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(start_paused = true)]
async fn callers_behind_a_hung_server_share_one_timeout() {
    let world = World::new(&["s1"]);
    let inv = Inventory::default();
    let e = engine(&world, &inv).await;
    world.with(|w| w.servers.get_mut("s1").unwrap().answering = false);
    let started = Instant::now();
    let calls = (0..10).map(|_| inv.containers(e.as_ref(), Duration::from_secs(1)));
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_err));
    let took = started.elapsed();
    assert!(
        took < crate::timings::LIST_TIMEOUT * 2,
        "ten callers took {took:?}: one timeout each, in a row"
    );
    let message = results[9].as_ref().unwrap_err().to_string();
    assert!(
        message.contains("s1") && message.contains("timed out"),
        "{message}"
    );
}

/// A call the engine refused (an image without a command) says the server answers: however
/// many, it stays up; calls that got no answer take it down after `DOWN_AFTER_FAILURES`.
#[tokio::test(start_paused = true)]
async fn only_calls_without_an_answer_count_against_a_server() {
    use crate::engine::EngineError;
    let world = World::new(&["s1"]);
    let cfg = config(&["s1"], "");
    let fleet = crate::fleet::Fleet::new(&cfg, std::sync::Arc::new(FakeConnector(world)));
    fleet.check_all(Duration::from_secs(1)).await;
    let s1 = fleet.get("s1").unwrap();
    assert!(s1.status().up);
    let refused = EngineError::Docker {
        server: "s1".into(),
        op: "create container",
        status: Some(400),
        message: "No command specified".into(),
    };
    for _ in 0..5 {
        s1.report_failure(&refused);
    }
    assert!(s1.status().up, "{:?}", s1.status());
    let silent = EngineError::Timeout {
        server: "s1".into(),
        op: "create container",
        secs: 10,
    };
    for _ in 0..crate::timings::DOWN_AFTER_FAILURES {
        s1.report_failure(&silent);
    }
    assert!(!s1.status().up);
}
