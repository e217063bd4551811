//! `shoal::lb` against a real HAProxy (Debian's 2.6 at /usr/sbin/haproxy).
//!
//! Every test has its own temporary directory, runtime socket, free 127.0.0.1 ports, its
//! own HAProxy process (killed on drop) and its own in-process HTTP replicas, so the tests
//! run in parallel. Nothing is sent anywhere but 127.0.0.1. Waits poll with deadlines.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::haproxy::{
    add_server, check_clean, drain_then_remove, is_not_found, promote_if_passing, server_state,
    wait_check_passed, AddError, NotPassing,
};
use common::replica::Replica;
use common::{free_port, repo};
use shoal::config::Config;
use shoal::lb::{render, AdminState, CheckResult, HealthCheck, LbError, Member, OpState};

use common::lab::*;

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn rendered_seed_config_passes_haproxy_check() {
    let seed = repo("tests/fixtures/seed-config.yaml");
    let config = Config::load(&seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let members = BTreeMap::from([(
        "ollama".to_owned(),
        vec![
            Member::new("ollama-server1-1", "192.168.1.10", 32768),
            Member::new("ollama-server2-1", "192.168.1.11", 32768),
        ],
    )]);
    let socket = dir.path().join("admin.sock");
    let text = render(&config, &members, Some(&socket)).unwrap();
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, &text).unwrap();
    check_clean(&path);
    // Without members (a fresh start) and with the default runtime_api path.
    let text = render(&config, &BTreeMap::new(), None).unwrap();
    assert!(
        text.contains("stats socket /run/haproxy/admin.sock "),
        "{text}"
    );
    std::fs::write(&path, &text).unwrap();
    check_clean(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamic_server_goes_up_and_serves() {
    let lab = Lab::started();
    let be = lab.backend();
    let http = http();
    // No member yet: HAProxy answers 503.
    assert!(get(&http, &lab.url("/"))
        .await
        .unwrap_err()
        .starts_with("503"));

    let a = Replica::healthy("a").await;
    lab.add(&a).await;

    let st = server_state(&lab.client, &be, "a").await.unwrap();
    assert_eq!(st.op_state, OpState::Running, "{st:?}");
    assert_eq!(st.admin.state(), AdminState::Ready, "{st:?}");
    assert_eq!(st.check_result, CheckResult::Passed, "{st:?}");
    assert!(st.in_rotation());
    assert_eq!((st.addr.as_str(), st.port), ("127.0.0.1", a.port()));
    assert_eq!(st.status_word(), "UP");
    let row = lab.client.server_stats(&be, "a").await.unwrap();
    // "UP 1/2" right after leaving maintenance (health = rise), "UP" after more checks.
    assert!(row.status.starts_with("UP"), "{row:?}");
    assert_eq!(row.check_status.as_deref(), Some("L7OK"), "{row:?}");

    assert_eq!(get(&http, &lab.url("/hello")).await.unwrap(), "a");
    assert!(a.hits() >= 1);
    let fe = lab
        .haproxy
        .as_ref()
        .unwrap()
        .stat_row("web_frontend", "FRONTEND")
        .unwrap();
    // One keep-alive client connection so far.
    assert!(fe["stot"].parse::<u64>().unwrap() >= 1, "{fe:?}");
    let srv = lab.client.server_stats(&be, "a").await.unwrap();
    assert!(srv.stot >= 1, "{srv:?}");
    assert_eq!(srv.scur, 0, "{srv:?}");

    // The stats listener serves the Prometheus exporter.
    let metrics = get(
        &http,
        &format!("http://127.0.0.1:{}/metrics", lab.stats_port),
    )
    .await
    .unwrap();
    assert!(metrics.contains("haproxy_server_status"), "{metrics:.300}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_check_interval_still_admits_quickly() {
    // With `inter 10s` alone HAProxy would run a new server's first check ~10 s after
    // `enable health`; `downinter`/`fastinter` of 1 s bring rise=2 passes within ~2 s.
    let lab = Lab::started();
    let be = lab.backend();
    let a = Replica::healthy("a").await;
    let check = HealthCheck {
        inter: Duration::from_secs(10),
        fall: 3,
        rise: 2,
        timeout: Duration::from_secs(1),
    };
    let start = Instant::now();
    add_server(
        &lab.client,
        &be,
        "a",
        "127.0.0.1",
        a.port(),
        &check,
        Duration::from_secs(8),
    )
    .await
    .unwrap();
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(a.checks() >= 2, "{}", a.checks());
    let st = server_state(&lab.client, &be, "a").await.unwrap();
    assert!(st.in_rotation(), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registered_server_takes_no_traffic_until_ready() {
    let lab = Lab::started();
    let be = lab.backend();
    let a = Replica::healthy("a").await;
    lab.client
        .register_server(&be, "a", "127.0.0.1", a.port(), &fast_check())
        .await
        .unwrap();
    let st = server_state(&lab.client, &be, "a").await.unwrap();
    assert_eq!(st.admin.state(), AdminState::Maint, "{st:?}");
    assert_ne!(st.check_state & CHK_ST_ENABLED, 0, "{st:?}");
    // Checks run while it is in maintenance; it still gets no traffic.
    wait_check_passed(&lab.client, &be, "a", 2, CHECK_WAIT)
        .await
        .unwrap();
    let http = http();
    assert!(get(&http, &lab.url("/"))
        .await
        .unwrap_err()
        .starts_with("503"));
    assert_eq!(a.hits(), 0);
    lab.client
        .set_state(&be, "a", AdminState::Ready)
        .await
        .unwrap();
    assert_eq!(get(&http, &lab.url("/")).await.unwrap(), "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unhealthy_server_never_receives_traffic() {
    let lab = Lab::started();
    let be = lab.backend();
    let good = Replica::healthy("good").await;
    let bad = Replica::start("bad", 500, Duration::ZERO).await;
    lab.add(&good).await;

    let load = load(&lab, 4);
    let e = add_server(
        &lab.client,
        &be,
        "bad",
        "127.0.0.1",
        bad.port(),
        &fast_check(),
        Duration::from_millis(1500),
    )
    .await
    .unwrap_err();
    match &e {
        AddError::NotPassing(NotPassing { last, waited }) => {
            assert_eq!(last.check_result, CheckResult::Failed, "{e}");
            assert_eq!(last.check_status, L7STS, "{e}");
            assert!(last.is_maint(), "{e}");
            assert!(*waited >= Duration::from_millis(1500), "{e}");
        }
        other => panic!("expected NotPassing, got {other}"),
    }
    // It stays down and out of rotation while its checks keep failing.
    let target = bad.checks() + 3;
    eventually(
        "three more failing checks",
        Duration::from_secs(10),
        || async { bad.checks() >= target },
    )
    .await;
    let report = load.finish().await;
    let ok = report.ok();
    let st = server_state(&lab.client, &be, "bad").await.unwrap();
    assert_eq!(st.op_state, OpState::Stopped, "{st:?}");
    assert_eq!(st.check_result, CheckResult::Failed, "{st:?}");
    assert!(!st.in_rotation());
    let row = lab.client.server_stats(&be, "bad").await.unwrap();
    assert_ne!(row.status, "UP", "{row:?}");
    assert_eq!(row.check_status.as_deref(), Some("L7STS"), "{row:?}");
    assert_eq!(bad.hits(), 0, "the failing replica received traffic");
    assert_eq!(report.failed(), 0, "{}", report.first_errors(10));
    assert!(ok > 0);
    assert_eq!(good.hits(), ok);

    // A reconcile loop's non-blocking admission refuses it while its checks fail...
    let client = &lab.client;
    assert!(!promote_if_passing(client, &be, "bad", 2).await.unwrap());
    assert!(server_state(client, &be, "bad").await.unwrap().is_maint());
    // ...and admits it once they pass.
    bad.health.store(200, Ordering::SeqCst);
    eventually("bad admitted", Duration::from_secs(10), || async {
        promote_if_passing(client, &be, "bad", 2).await.unwrap()
    })
    .await;
    let http = http();
    let url = lab.url("/");
    eventually("bad serves", Duration::from_secs(5), || async {
        get(&http, &url).await.unwrap();
        bad.hits() > 0
    })
    .await;

    // Cleaning it up works like any removal.
    lab.client.remove(&be, "bad", false).await.unwrap();
    assert!(is_not_found(
        &server_state(&lab.client, &be, "bad").await.unwrap_err()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_check_takes_a_server_down_and_back_up() {
    let lab = Lab::started();
    let be = lab.backend();
    let a = Replica::healthy("a").await;
    let b = Replica::healthy("b").await;
    for r in [&a, &b] {
        lab.add(r).await;
    }
    b.health.store(500, Ordering::SeqCst);
    let client = &lab.client;
    eventually("b DOWN", Duration::from_secs(10), || async {
        server_state(client, &be, "b").await.unwrap().op_state == OpState::Stopped
    })
    .await;
    assert_eq!(client.server_stats(&be, "b").await.unwrap().status, "DOWN");
    let before = b.hits();
    let http = http();
    for _ in 0..10 {
        assert_eq!(get(&http, &lab.url("/")).await.unwrap(), "a");
    }
    assert_eq!(b.hits(), before);

    b.health.store(200, Ordering::SeqCst);
    eventually("b UP again", Duration::from_secs(10), || async {
        server_state(client, &be, "b").await.unwrap().in_rotation()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drained_server_is_removed_without_losing_requests() {
    let lab = Lab::started();
    let be = lab.backend();
    let a = Replica::start("a", 200, Duration::from_millis(20)).await;
    let b = Replica::start("b", 200, Duration::from_millis(150)).await;
    for r in [&a, &b] {
        lab.add(r).await;
    }
    let load = load(&lab, 8);
    let client = &lab.client;
    eventually("traffic on b", Duration::from_secs(10), || async {
        load.served_by("b") >= 5 && client.server_stats(&be, "b").await.unwrap().scur > 0
    })
    .await;

    let drain = drain_then_remove(client, &be, "b", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.log()));
    assert!(!drain.timed_out, "{drain:?}");
    assert_eq!(drain.sessions_left, 0);
    let b_hits_at_removal = b.hits();

    // Keep the load going a little after the removal.
    let target = load.served_by("a") + 20;
    eventually("more traffic on a", Duration::from_secs(10), || async {
        load.served_by("a") >= target
    })
    .await;
    let report = load.finish().await;
    assert_eq!(
        report.failed(),
        0,
        "of {}: {}",
        report.total(),
        report.first_errors(10)
    );
    let names: Vec<_> = client
        .servers_state(&be)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a"]);
    assert_eq!(b.hits(), b_hits_at_removal, "b got traffic after removal");
    eprintln!("drain report: {drain:?}; load: {}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_timeout_shuts_sessions_and_removes() {
    let lab = Lab::started();
    let be = lab.backend();
    let slow = Replica::start("slow", 200, Duration::from_secs(5)).await;
    lab.add(&slow).await;
    let url = lab.url("/");
    let pending = tokio::spawn(async move { get(&http(), &url).await });
    let client = &lab.client;
    eventually("a session on slow", Duration::from_secs(5), || async {
        client.server_stats(&be, "slow").await.unwrap().scur > 0
    })
    .await;
    let report = drain_then_remove(client, &be, "slow", Duration::from_millis(300))
        .await
        .unwrap();
    assert!(report.timed_out, "{report:?}");
    assert_eq!(report.sessions_left, 1);
    assert!(report.waited >= Duration::from_millis(300));
    assert!(is_not_found(
        &server_state(client, &be, "slow").await.unwrap_err()
    ));
    // The cut session fails (the replica would have been stopped anyway).
    assert!(pending.await.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletion_is_refused_while_a_session_lasts() {
    let lab = Lab::started();
    let be = lab.backend();
    let slow = Replica::start("slow", 200, Duration::from_secs(30)).await;
    lab.add(&slow).await;
    let url = lab.url("/");
    let pending = tokio::spawn(async move { get(&http(), &url).await });
    let client = &lab.client;
    eventually("a session on slow", Duration::from_secs(5), || async {
        client.server_stats(&be, "slow").await.unwrap().scur > 0
    })
    .await;

    // In maintenance, HAProxy refuses to delete a server while a session lasts...
    client
        .set_state(&be, "slow", AdminState::Maint)
        .await
        .unwrap();
    let haproxy = lab.haproxy.as_ref().unwrap();
    let answer = haproxy.command(&format!("del server {be}/slow"));
    assert!(
        answer.starts_with("Server still has connections attached"),
        "{answer}"
    );
    // ...so a removal that leaves sessions alone gives up after its bounded retries, the
    // server and its session still there...
    let start = Instant::now();
    let e = client.remove(&be, "slow", false).await.unwrap_err();
    assert!(matches!(e, LbError::StillConnected { .. }), "{e}");
    assert!(start.elapsed() >= shoal::timings::DEL_RETRY_FOR);
    assert_eq!(client.server_stats(&be, "slow").await.unwrap().scur, 1);
    assert!(!pending.is_finished());
    // ...and one that shuts them down completes, cutting the session.
    client.remove(&be, "slow", true).await.unwrap();
    assert!(is_not_found(
        &server_state(client, &be, "slow").await.unwrap_err()
    ));
    let cut = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .expect("the session ends when it is shut down");
    assert!(cut.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_addr_moves_a_server_to_another_port() {
    let lab = Lab::started();
    let be = lab.backend();
    let a = Replica::healthy("a").await;
    let b = Replica::healthy("b").await;
    add_server(
        &lab.client,
        &be,
        "s1",
        "127.0.0.1",
        a.port(),
        &fast_check(),
        CHECK_WAIT,
    )
    .await
    .unwrap();
    let http = http();
    assert_eq!(get(&http, &lab.url("/")).await.unwrap(), "a");

    lab.client
        .set_addr(&be, "s1", "127.0.0.1", b.port())
        .await
        .unwrap();
    let st = server_state(&lab.client, &be, "s1").await.unwrap();
    assert_eq!(st.port, b.port());
    let url = lab.url("/");
    eventually(
        "traffic on the new port",
        Duration::from_secs(5),
        || async { get(&http, &url).await.as_deref() == Ok("b") },
    )
    .await;
    let a_hits = a.hits();
    for _ in 0..5 {
        assert_eq!(get(&http, &url).await.unwrap(), "b");
    }
    assert_eq!(a.hits(), a_hits);
    // Unchanged address: still fine.
    lab.client
        .set_addr(&be, "s1", "127.0.0.1", b.port())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_with_rendered_members_restores_servers() {
    let mut lab = Lab::started();
    let be = lab.backend();
    let a = Replica::healthy("a").await;
    let b = Replica::healthy("b").await;
    for r in [&a, &b] {
        lab.add(r).await;
    }
    let members: Vec<Member> = lab
        .client
        .servers_state(&be)
        .await
        .unwrap()
        .iter()
        .filter(|s| s.addr != "-")
        .map(|s| Member::new(s.name.clone(), s.addr.clone(), s.port))
        .collect();
    assert_eq!(members.len(), 2);

    lab.start(&members);
    let client = &lab.client;
    let mut got: Vec<(String, u16)> = client
        .servers_state(&be)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.port))
        .collect();
    got.sort();
    assert_eq!(got, [("a".into(), a.port()), ("b".into(), b.port())]);
    eventually("both UP after restart", Duration::from_secs(10), || async {
        let s = client.servers_state(&be).await.unwrap();
        s.iter()
            .all(|s| s.in_rotation() && s.check_result == CheckResult::Passed)
    })
    .await;
    let http = http();
    let url = lab.url("/");
    eventually("both serve", Duration::from_secs(10), || async {
        get(&http, &url).await.unwrap();
        a.hits() > 0 && b.hits() > 0
    })
    .await;

    // Servers from the configuration file can be drained and deleted like dynamic ones.
    let report = drain_then_remove(client, &be, "a", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.log()));
    assert!(!report.timed_out);
    for _ in 0..5 {
        assert_eq!(get(&http, &url).await.unwrap(), "b");
    }
    // And a dynamic server with the same name can come back.
    add_server(
        client,
        &be,
        "a",
        "127.0.0.1",
        a.port(),
        &fast_check(),
        CHECK_WAIT,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn haproxy_errors_are_typed() {
    let mut lab = Lab::started();
    let be = lab.backend();
    let c = &lab.client;

    let e = c.servers_state("nosuch_backend").await.unwrap_err();
    assert!(
        matches!(e, LbError::Refused { .. }) && is_not_found(&e),
        "{e}"
    );
    let e = c
        .set_state(&be, "ghost", AdminState::Drain)
        .await
        .unwrap_err();
    assert!(is_not_found(&e), "{e}");
    let e = c.remove(&be, "ghost", false).await.unwrap_err();
    assert!(is_not_found(&e), "{e}");
    let e = c.server_stats(&be, "ghost").await.unwrap_err();
    assert!(matches!(e, LbError::NoSuchServer { .. }), "{e}");
    let e = c.set_addr(&be, "ghost", "127.0.0.1", 80).await.unwrap_err();
    assert!(is_not_found(&e), "{e}");

    let a = Replica::healthy("a").await;
    add_server(
        c,
        &be,
        "a",
        "127.0.0.1",
        a.port(),
        &fast_check(),
        CHECK_WAIT,
    )
    .await
    .unwrap();
    let e = c
        .register_server(&be, "a", "127.0.0.1", a.port(), &fast_check())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LbError::Refused { answer, .. } if answer.starts_with("Already exists")),
        "{e}"
    );
    // `del server` on a server that is not in maintenance is refused by HAProxy; the
    // client's remove puts it in maintenance first, so it succeeds.
    let answer = lab
        .haproxy
        .as_ref()
        .unwrap()
        .command(&format!("del server {be}/a"));
    assert!(
        answer.starts_with("Only servers in maintenance"),
        "{answer}"
    );
    c.remove(&be, "a", false).await.unwrap();

    // Dropping HAProxy: the next command is a connection error, bounded by the timeout.
    drop(lab.haproxy.take());
    let start = Instant::now();
    let e = c.servers_state(&be).await.unwrap_err();
    assert!(matches!(e, LbError::Connect { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tcp_runtime_api_works() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("unused.sock");
    let runtime_api = format!("127.0.0.1:{}", free_port());
    let mut lab = Lab::with_runtime_api(dir, socket, &runtime_api);
    lab.start(&[]);
    let text = std::fs::read_to_string(lab.dir.path().join("haproxy.cfg")).unwrap();
    assert!(text.contains(&format!("stats socket ipv4@{runtime_api} level admin")));
    assert!(!lab.socket.exists());
    let be = lab.backend();
    let a = Replica::healthy("a").await;
    lab.add(&a).await;
    assert!(server_state(&lab.client, &be, "a")
        .await
        .unwrap()
        .in_rotation());
}
