//! Updates on paused time over the fakes: a good release replaces every replica, a bad one
//! (its new replicas never pass their checks) is rolled back to the exact image it replaced,
//! a missing tag replaces nothing, a second update is refused, a manual rollback restores
//! the previous image, and a server lost mid-update never leaves fewer than `min_replicas`
//! ready.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::fake::{fake_image_id, World};
use super::loop_tests::{actions, app, app_with_journal, config, events, ready, until, BACKEND};
use crate::app::App;
use crate::commands;
use crate::release::{UpdateKind, UpdatePhase};

const SERVICE: &str = "    min_replicas: 3\n    max_replicas: 4\n    health_check:\n      path: /health\n      interval: 1\n      timeout: 1\n      start_period: 10\n      unhealthy_threshold: 2\n";

/// Image IDs of the running replicas of `web`.
fn images(world: &World) -> BTreeSet<String> {
    world
        .running("web")
        .iter()
        .map(|c| c.image.id.clone())
        .collect()
}

fn phase(app: &App) -> Option<UpdatePhase> {
    app.service("web")
        .and_then(|rt| rt.snapshot().update)
        .map(|u| u.phase)
}

/// Three replicas of web:1 in rotation on `servers`.
async fn three_ready(servers: &[&str], extra: &str) -> (World, Arc<App>) {
    let world = World::new(servers);
    let app = app(&world, config(servers, &format!("{SERVICE}{extra}")));
    app.start().await;
    until(Duration::from_secs(30), "three ready", || ready(&app) == 3).await;
    assert_eq!(images(&world), BTreeSet::from([fake_image_id("web:1")]));
    (world, app)
}

/// Pushes another image under the same tag `web:1` (healthy or not); returns its ID.
fn push_again(world: &World, healthy: bool) -> String {
    let id = fake_image_id("web:1 again");
    world.with(|w| {
        w.images.insert("web:1".into(), id.clone());
        w.pushed.insert(id.clone());
        if !healthy {
            w.unhealthy_images.insert(id.clone());
        }
    });
    id
}

/// Runs until the update ends, noting the fewest replicas in rotation meanwhile.
async fn until_ended(app: &App, world: &World, limit: Duration) -> (UpdatePhase, usize) {
    let mut fewest = usize::MAX;
    until(limit, "the update ends", || {
        fewest = fewest.min(world.in_rotation(BACKEND).len());
        phase(app).is_some_and(|p| !p.running())
    })
    .await;
    (phase(app).unwrap(), fewest)
}

#[tokio::test(start_paused = true)]
async fn a_good_release_under_the_same_tag_replaces_every_replica_and_rollback_restores_it() {
    let (world, app) = three_ready(&["s1", "s2"], "").await;
    let old = fake_image_id("web:1");
    let new = push_again(&world, true);
    commands::update(app.context(), "web", UpdateKind::RollingUpdate, None).unwrap();
    let (end, fewest) = until_ended(&app, &world, Duration::from_secs(120)).await;
    assert_eq!(end, UpdatePhase::Done, "{:#?}", events(&app));
    assert!(fewest >= 3, "never fewer than 3 in rotation, saw {fewest}");
    until(Duration::from_secs(30), "old ones drained", || {
        world.running("web").len() == 3
    })
    .await;
    assert_eq!(images(&world), BTreeSet::from([new.clone()]));
    // The autoscaler held while the update ran (its check interval is 10 s; the update took
    // longer) and said so once.
    let held: Vec<_> = actions(&app, "scale_held")
        .into_iter()
        .filter(|e| e.reason.contains("held while an update runs"))
        .collect();
    assert_eq!(held.len(), 1, "{:#?}", events(&app));
    let u = app.service("web").unwrap().snapshot().update.unwrap();
    assert_eq!((u.replaced, u.to_replace), (3, 3));
    assert_eq!(u.from.as_ref().unwrap().image.id, old);
    assert_eq!(u.to.as_ref().unwrap().image.id, new);
    assert!(world.with(|w| w.pulls.len()) >= 2, "pulled on both servers");

    // The tag moves on (a third push): the rollback still returns the exact old image,
    // pulled by digest, not by the tag.
    world.with(|w| {
        let third = fake_image_id("web:1 third");
        w.images.insert("web:1".into(), third.clone());
        w.pushed.insert(third);
    });
    commands::rollback(app.context(), "web").unwrap();
    let (end, fewest) = until_ended(&app, &world, Duration::from_secs(120)).await;
    assert_eq!(end, UpdatePhase::Done, "{:#?}", events(&app));
    assert!(fewest >= 3, "{fewest}");
    until(Duration::from_secs(30), "drained", || {
        world.running("web").len() == 3
    })
    .await;
    assert_eq!(images(&world), BTreeSet::from([old]));
}

#[tokio::test(start_paused = true)]
async fn a_release_that_never_passes_its_checks_is_rolled_back_to_the_same_image() {
    let (world, app) = three_ready(&["s1", "s2"], "").await;
    let old = fake_image_id("web:1");
    let before: BTreeSet<String> = world.running("web").iter().map(|c| c.id.clone()).collect();
    push_again(&world, false);
    commands::update(app.context(), "web", UpdateKind::RollingUpdate, None).unwrap();
    let started = Instant::now();
    let mut first_failed_check = None;
    let mut fewest = usize::MAX;
    until(Duration::from_secs(120), "rolled back", || {
        fewest = fewest.min(world.in_rotation(BACKEND).len());
        let failing = app
            .service("web")
            .unwrap()
            .snapshot()
            .replicas
            .values()
            .any(|r| r.healthy == Some(false) && r.image.id != old);
        if failing && first_failed_check.is_none() {
            first_failed_check = Some(Instant::now());
        }
        phase(&app) == Some(UpdatePhase::RolledBack)
    })
    .await;
    let back_after = first_failed_check.map(|t| t.elapsed());
    assert!(fewest >= 3, "never fewer than 3 in rotation, saw {fewest}");
    until(Duration::from_secs(30), "only old replicas run", || {
        world.running("web").len() == 3
    })
    .await;
    assert_eq!(images(&world), BTreeSet::from([old.clone()]));
    // Nothing had been replaced yet (the first new replica failed): the old ones still run.
    let now: BTreeSet<String> = world.running("web").iter().map(|c| c.id.clone()).collect();
    assert_eq!(now, before);
    let u = app.service("web").unwrap().snapshot().update.unwrap();
    let reason = u.reason.unwrap();
    assert!(reason.contains("failed"), "{reason}");
    assert!(
        reason.contains("no passing health check within start_period 10s"),
        "{reason}"
    );
    let failed = actions(&app, "rollout_failed");
    assert_eq!(failed.len(), 1, "{:#?}", events(&app));
    assert!(
        failed[0].reason.contains("rolling 0 replica(s) back"),
        "{}",
        failed[0].reason
    );
    assert_eq!(actions(&app, "rolled_back").len(), 1);
    // The journal remembers the bad revision as failed; a manual rollback skips it.
    let revs = app.journal.revisions("web");
    assert_eq!(revs[0].revision.image.id, old, "current first");
    assert!(revs.iter().any(|r| r.failed));
    eprintln!(
        "rolled back {:?} after the first failed check ({:?} after the update started)",
        back_after,
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_release_found_after_replacing_some_replicas_rolls_those_back() {
    // The new image passes at first and dies once in rotation: one old replica is replaced
    // before the new one dies, and the rollback puts an old-image replica back in its place.
    let (world, app) = three_ready(&["s1", "s2"], "").await;
    let old = fake_image_id("web:1");
    let new = push_again(&world, true);
    commands::update(app.context(), "web", UpdateKind::RollingUpdate, None).unwrap();
    until(Duration::from_secs(60), "one replaced", || {
        app.service("web")
            .unwrap()
            .snapshot()
            .update
            .is_some_and(|u| u.replaced >= 1)
    })
    .await;
    // Every replica of the new image dies.
    for c in world
        .running("web")
        .into_iter()
        .filter(|c| c.image.id == new)
    {
        world.kill(&c.server, &c.id, true);
    }
    let (end, fewest) = until_ended(&app, &world, Duration::from_secs(120)).await;
    assert_eq!(end, UpdatePhase::RolledBack, "{:#?}", events(&app));
    assert!(fewest >= 2, "{fewest}");
    until(
        Duration::from_secs(60),
        "three old ones in rotation",
        || world.running("web").len() == 3 && ready(&app) == 3,
    )
    .await;
    assert_eq!(images(&world), BTreeSet::from([old]));
    let reason = app
        .service("web")
        .unwrap()
        .snapshot()
        .update
        .unwrap()
        .reason
        .unwrap();
    assert!(reason.contains("exited"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn a_missing_tag_replaces_nothing_and_a_second_update_is_refused() {
    let (world, app) = three_ready(&["s1"], "").await;
    let before: BTreeSet<String> = world.running("web").iter().map(|c| c.id.clone()).collect();
    commands::update(
        app.context(),
        "web",
        UpdateKind::RollingUpdate,
        Some("web:does-not-exist".into()),
    )
    .unwrap();
    let (end, _) = until_ended(&app, &world, Duration::from_secs(10)).await;
    assert_eq!(end, UpdatePhase::Failed);
    let u = app.service("web").unwrap().snapshot().update.unwrap();
    assert!(
        u.reason.as_deref().unwrap().contains("manifest unknown"),
        "{u:?}"
    );
    assert_eq!(u.pulls[0].state, "failed");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let now: BTreeSet<String> = world.running("web").iter().map(|c| c.id.clone()).collect();
    assert_eq!(now, before, "nothing replaced");

    // A second update while one runs is refused.
    push_again(&world, true);
    commands::update(app.context(), "web", UpdateKind::RollingUpdate, None).unwrap();
    let second = commands::update(app.context(), "web", UpdateKind::Deploy, None);
    let e = second.unwrap_err().to_string();
    assert!(e.contains("already running"), "{e}");
    let third = commands::rollback(app.context(), "web")
        .unwrap_err()
        .to_string();
    assert!(third.contains("already running"), "{third}");
    let (end, _) = until_ended(&app, &world, Duration::from_secs(120)).await;
    assert_eq!(end, UpdatePhase::Done);
}

#[tokio::test(start_paused = true)]
async fn a_server_lost_mid_update_never_leaves_fewer_than_min_ready() {
    let (world, app) = three_ready(&["s1", "s2", "s3"], "").await;
    push_again(&world, true);
    commands::update(app.context(), "web", UpdateKind::RollingUpdate, None).unwrap();
    until(Duration::from_secs(60), "one replaced", || {
        app.service("web")
            .unwrap()
            .snapshot()
            .update
            .is_some_and(|u| u.replaced >= 1)
    })
    .await;
    // s3 is gone: no control path, and its replicas fail HAProxy's checks too.
    world.with(|w| {
        let s3 = w.servers.get_mut("s3").unwrap();
        s3.answering = false;
        s3.reachable = false;
    });
    until(Duration::from_secs(60), "the lost replica noticed", || {
        !actions(&app, "replica_lost").is_empty()
    })
    .await;
    // The loss itself takes its replica out at once (nothing can help that); the update goes
    // on only once the count is back, and from then on never below min_replicas ready.
    until(Duration::from_secs(60), "back to 3 ready", || {
        ready(&app) >= 3
    })
    .await;
    let mut fewest_ready = usize::MAX;
    until(Duration::from_secs(180), "update done, 3 ready", || {
        fewest_ready = fewest_ready.min(ready(&app));
        phase(&app).is_some_and(|p| !p.running()) && ready(&app) == 3
    })
    .await;
    assert_eq!(phase(&app), Some(UpdatePhase::Done), "{:#?}", events(&app));
    assert!(
        fewest_ready >= 3,
        "fewest ready after recovering: {fewest_ready}"
    );
    assert!(
        world
            .running("web")
            .iter()
            .filter(|c| c.server != "s3")
            .count()
            >= 3
    );
}

/// A good release with `rollout` settings: at most `desired + surge` replicas at once, never
/// fewer than `desired - unavailable` in rotation, every replica on the new image at the end.
async fn good_release_with(rollout: &str, surge: usize, unavailable: usize) {
    let (world, app) = three_ready(&["s1", "s2"], rollout).await;
    let new = push_again(&world, true);
    commands::update(app.context(), "web", UpdateKind::RollingUpdate, None).unwrap();
    let mut most = 0;
    let mut fewest = usize::MAX;
    until(Duration::from_secs(120), "the update ends", || {
        most = most.max(world.running("web").len());
        fewest = fewest.min(world.in_rotation(BACKEND).len());
        phase(&app).is_some_and(|p| !p.running())
    })
    .await;
    assert_eq!(phase(&app), Some(UpdatePhase::Done), "{:#?}", events(&app));
    until(Duration::from_secs(30), "three on the new image", || {
        world.running("web").len() == 3 && images(&world) == BTreeSet::from([new.clone()])
    })
    .await;
    assert!(
        most <= 3 + surge,
        "at most {} at once, saw {most}",
        3 + surge
    );
    assert!(
        fewest >= 3 - unavailable,
        "at least {} in rotation, saw {fewest}",
        3 - unavailable
    );
}

#[tokio::test(start_paused = true)]
async fn max_surge_two_replaces_two_at_a_time() {
    good_release_with("    rollout: {max_surge: 2}\n", 2, 0).await;
}

#[tokio::test(start_paused = true)]
async fn max_unavailable_one_without_surge_replaces_in_place() {
    // min 3 would forbid any replica out of rotation: the floor is min_replicas. With
    // desired 3 and min 2 (set below), one may be out at a time.
    let world = World::new(&["s1", "s2"]);
    let app = app(
        &world,
        config(
            &["s1", "s2"],
            &format!(
                "{}    rollout: {{max_surge: 0, max_unavailable: 1}}\n",
                SERVICE.replace("min_replicas: 3", "min_replicas: 2")
            ),
        ),
    );
    app.start().await;
    until(Duration::from_secs(30), "two ready", || ready(&app) == 2).await;
    commands::scale(&app, "web", true, crate::service::Trigger::Manual).unwrap();
    until(Duration::from_secs(30), "three ready", || ready(&app) == 3).await;
    let new = push_again(&world, true);
    commands::update(app.context(), "web", UpdateKind::RollingUpdate, None).unwrap();
    let (mut most, mut fewest) = (0, usize::MAX);
    until(Duration::from_secs(120), "the update ends", || {
        most = most.max(world.running("web").len());
        fewest = fewest.min(world.in_rotation(BACKEND).len());
        phase(&app).is_some_and(|p| !p.running())
    })
    .await;
    assert_eq!(phase(&app), Some(UpdatePhase::Done), "{:#?}", events(&app));
    until(Duration::from_secs(30), "three on the new image", || {
        world.running("web").len() == 3 && images(&world) == BTreeSet::from([new.clone()])
    })
    .await;
    assert!(most <= 3, "no surge: at most 3 at once, saw {most}");
    assert!(
        fewest >= 2,
        "at most one out of rotation, saw {fewest} in rotation"
    );
    assert!(
        actions(&app, "rollout")
            .iter()
            .any(|e| e.reason.contains("retired within max_unavailable")),
        "{:#?}",
        events(&app)
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_shoal_keeps_making_replicas_from_the_pinned_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let world = World::new(&["s1"]);
    let first = app_with_journal(
        &world,
        config(&["s1"], SERVICE),
        crate::journal::Journal::open(&path).unwrap(),
    );
    first.start().await;
    until(Duration::from_secs(30), "three ready", || {
        ready(&first) == 3
    })
    .await;
    let new = push_again(&world, true);
    commands::update(first.context(), "web", UpdateKind::RollingUpdate, None).unwrap();
    until_ended(&first, &world, Duration::from_secs(120)).await;
    let pinned = first.service("web").unwrap().snapshot().target.unwrap();
    assert_eq!(pinned.image.id, new);
    // The tag moves on while shoal is "down"; the restarted shoal reads the journal and
    // still makes replicas from the exact image it had pinned, not from the tag.
    world.with(|w| {
        let third = fake_image_id("web:1 third");
        w.images.insert("web:1".into(), third.clone());
        w.pushed.insert(third);
    });
    let second = app_with_journal(
        &world,
        config(&["s1"], SERVICE),
        crate::journal::Journal::open(&path).unwrap(),
    );
    second.start().await;
    let target = second.service("web").unwrap().snapshot().target;
    assert_eq!(target.as_ref().map(|t| &t.id), Some(&pinned.id));
    assert_eq!(target.unwrap().container_spec().image, new);
}
