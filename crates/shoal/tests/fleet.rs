//! Two real servers: the host's Docker Engine (`local`) and a dockerd in a network namespace
//! with its own IP (`ns`). The seed plan's failure-recovery "Test 2: server failure": the
//! namespace's dockerd stops, shoal notices, HAProxy drops its replica, a replacement starts
//! on `local`, traffic keeps flowing; the server returns and the count settles at the
//! desired one again. A dockerd that crashes while its replica keeps serving leaves the
//! server `unreachable`: the replica stays in rotation, nothing is started in its place. A
//! network partition takes both away: the replica moves. Needs root (network namespaces, a
//! second dockerd).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::docker::{self, require_image};
use common::load::Report;
use common::netns::NetnsServer;
use common::{http_client, wait_for, Load, Opts, Stack, Wait, IMAGE};
use serde_json::Value;

const READY: Duration = Duration::from_secs(60);

/// How many of the last requests of a load must all succeed once a failure is handled.
const LAST_N: usize = 40;

/// A stack with `local` and `ns` (reached at `docker_host`), min 2 / max 3, the service
/// with `extra` YAML lines, settled with one replica per server, both UP and both reached
/// through HAProxy. Returns the stack, the name of the replica on `ns` and what `/whoami`
/// answered.
async fn two_server_stack(
    ns: &NetnsServer,
    prefix: &str,
    docker_host: &str,
    extra: &str,
) -> (Stack, String, BTreeSet<String>) {
    let mut s = Stack::new(
        prefix,
        Opts {
            min: 2,
            max: 3,
            cooldown: 600,
            check_interval: 5,
            extra: extra.to_owned(),
            servers_extra: format!(
                "  - host: {ip}\n    name: ns\n    docker_host: {docker_host}\n    max_containers: 100\n{tls}",
                ip = ns.ip,
                // Plain TCP beyond loopback must be asked for (the test bridge only).
                tls = if docker_host.starts_with("tcp://") { "    docker_tls: false\n" } else { "" },
            ),
            ..Opts::default()
        },
    );
    s.start_shoal();
    wait_for("one replica per server, both UP", READY, || {
        s.running().len() == 1 && ns.running(&s.service).len() == 1 && s.up_servers().len() == 2
    });
    let placed = s.placement().await;
    let servers: BTreeSet<&str> = placed.values().map(String::as_str).collect();
    assert_eq!(servers, BTreeSet::from(["local", "ns"]), "{placed:?}");
    let ns_replica = placed
        .iter()
        .find(|(_, srv)| *srv == "ns")
        .map(|(n, _)| n.clone())
        .unwrap();
    let hosts = s.wait_reached_by(2, 12).await;
    (s, ns_replica, hosts)
}

/// Steady traffic through HAProxy: one client, a request every 50 ms, 3 s timeout.
fn steady_load(s: &Stack) -> Load {
    Load::get(s.frontend_url("/api/tags"))
        .pause(Duration::from_millis(50))
        .http(http_client(Duration::from_secs(3)))
        .start()
}

/// After 5 more seconds of `load`: enough requests ran and the last [`LAST_N`] all
/// succeeded. Returns the report and when the failures happened (from `t0`).
async fn finish_recovered(load: Load, t0: Instant) -> (Report, Vec<Duration>) {
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = load.finish().await;
    let failed = log.failures_since(t0);
    assert!(log.total() > LAST_N * 2, "enough requests: {}", log.total());
    assert!(
        log.last_ok(LAST_N),
        "the last {LAST_N} requests succeed (failures at {failed:?}; {})",
        log.first_errors(5)
    );
    (log, failed)
}

/// Whether `name` is in the backend and UP.
fn in_rotation(s: &Stack, name: &str) -> bool {
    s.servers().iter().any(|r| r.name == name && r.is_up())
}

/// Waits (30 s) until `name` is out of rotation; returns when, from `t0`.
fn wait_out_of_rotation(s: &Stack, name: &str, t0: Instant) -> Duration {
    wait_for(
        "the ns replica out of rotation",
        Duration::from_secs(30),
        || (!in_rotation(s, name)).then(|| t0.elapsed()),
    )
}

/// Waits (30 s) until `name` is deleted from the backend; returns when, from `t0`.
fn wait_gone_from_haproxy(s: &Stack, name: &str, t0: Instant) -> Duration {
    let h = s.haproxy();
    let b = s.backend();
    Wait::new(
        "the ns replica deleted from HAProxy",
        Duration::from_secs(30),
    )
    .explain(|| {
        format!(
            "show servers state:\n{}\nshow stat (scur etc):\n{}\ndel server answer: {}\n\
                 show sess:\n{}",
            h.command(&format!("show servers state {b}")),
            h.command("show stat")
                .lines()
                .filter(|l| l.starts_with('#') || l.contains(name))
                .collect::<Vec<_>>()
                .join("\n"),
            h.command(&format!("del server {b}/{name}")),
            h.command("show sess"),
        )
    })
    .until(|| (!s.servers().iter().any(|r| r.name == name)).then(|| t0.elapsed()))
}

/// Waits until a replacement on `local` makes 2 local replicas in rotation: exactly what
/// shoal reports, the ns replica out. Returns when, from `t0`.
async fn wait_replaced_on_local(s: &Stack, ns_replica: &str, t0: Instant) -> Duration {
    let t = wait_for(
        "a replacement on local: 2 local replicas in rotation",
        READY,
        || (s.running().len() == 2 && s.up_servers().len() == 2).then(|| t0.elapsed()),
    );
    let after = s.placement().await;
    assert!(
        after.len() == 2 && after.values().all(|srv| srv == "local"),
        "the desired count is met on reachable servers: {after:?}"
    );
    let up: BTreeSet<String> = s.up_servers().into_iter().collect();
    assert_eq!(up, after.keys().cloned().collect::<BTreeSet<_>>());
    assert!(!up.contains(ns_replica));
    t
}

/// Waits (30 s) until shoal reports server `name` with `status`, calling `each_try`
/// before every look; returns the server's entry.
async fn wait_status(s: &Stack, name: &str, status: &str, mut each_try: impl FnMut()) -> Value {
    let what = format!("{name} reported {status}");
    Wait::new(what, Duration::from_secs(30))
        .until_async(async || {
            each_try();
            let v = s.server(name).await;
            (v["status"] == status).then_some(v)
        })
        .await
}

/// Waits until exactly `n` replicas run in total (local + ns), all UP in HAProxy, shoal
/// reports `n`, with no duplicate name, for 5 s in a row. Returns (on local, on ns).
async fn settle(s: &Stack, ns: &NetnsServer, n: usize) -> (usize, usize) {
    let mut stable_since: Option<Instant> = None;
    Wait::new(format!("{n} replicas in total, stable for 5 s"), READY)
        .every(Duration::from_millis(300))
        .until_async(async || {
            let (l, r) = (s.running(), ns.running(&s.service));
            let placed = s.placement().await;
            let up: BTreeSet<String> = s.up_servers().into_iter().collect();
            let ok = l.len() + r.len() == n
                && placed.len() == n
                && up.len() == n
                && up == placed.keys().cloned().collect::<BTreeSet<_>>();
            if !ok {
                stable_since = None;
                return Err(format!(
                    "local {l:?}, ns {r:?}, shoal {placed:?}, UP {up:?}"
                ));
            }
            let stable = stable_since.get_or_insert_with(Instant::now).elapsed();
            if stable < Duration::from_secs(5) {
                return Err(format!("settled only {stable:?} ago"));
            }
            Ok((l.len(), r.len()))
        })
        .await
}

/// How long the load keeps running after a return settled, in the crash and partition tests.
const LINGER: Duration = Duration::from_secs(2);

/// The `ns` server comes back (`heal`) under steady load: shoal reports it up, the count
/// settles at 2 (what shoal reports, HAProxy's UP servers and shoal's desired count
/// agreeing); `linger` later the load stops. Returns the load's report and what happened
/// when.
async fn recover(
    s: &Stack,
    ns: &mut NetnsServer,
    heal: impl FnOnce(&mut NetnsServer),
    linger: Duration,
) -> (Report, String) {
    let load = steady_load(s);
    let t1 = Instant::now();
    heal(ns);
    let t_heal = t1.elapsed();
    let running_then = ns.running(&s.service);
    let all_then = ns.container_ids(&docker::service_label(&s.service), true);
    wait_status(s, "ns", "up", || {}).await;
    let t_up = t1.elapsed();
    let (on_local, on_ns) = settle(s, ns, 2).await;
    let t_settled = t1.elapsed();
    tokio::time::sleep(linger).await;
    let log = load.finish().await;
    let placement = s.placement().await;
    assert_eq!(placement.len(), 2, "{placement:?}");
    let up: BTreeSet<String> = s.up_servers().into_iter().collect();
    assert_eq!(up, placement.keys().cloned().collect::<BTreeSet<_>>());
    let stats = s.stats().await;
    assert_eq!(stats["desired"], 2, "{stats}");
    let what = format!(
        "back after {t_heal:?}; service containers on ns then: running {running_then:?}, all \
         {all_then:?}; ns up after {t_up:?}; settled after {t_settled:?} with {on_local} on \
         local, {on_ns} on ns ({placement:?}); during the return: {}, failures at {:?}\n\
         recent events (newest first):\n{}",
        log.summary(),
        log.failures_since(t1),
        recent_events(s, 12).await
    );
    (log, what)
}

async fn recent_events(s: &Stack, n: usize) -> String {
    s.events()
        .await
        .iter()
        .take(n)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a replica answers directly (not through HAProxy), within 2 s.
async fn answers(addr: &str) -> bool {
    http_client(Duration::from_secs(2))
        .get(format!("http://{addr}/api/tags"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// `addr:port` of a server in the service's HAProxy backend.
fn haproxy_addr(s: &Stack, name: &str) -> Option<String> {
    s.servers()
        .into_iter()
        .find(|r| r.name == name)
        .map(|r| r.addr_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_failure_moves_its_replica_and_the_return_settles_the_count() {
    require_image();
    // Declared before the stack, so it is torn down after shoal and HAProxy stop.
    let mut ns = NetnsServer::start(IMAGE);
    let (s, ns_replica, hosts) = two_server_stack(&ns, "t-fleet", &ns.docker_host(), "").await;

    // 1. Two replicas, one per server, both UP in HAProxy, both reached.
    let placed = s.placement().await;
    let label = docker::inspect(
        ns.docker(),
        &ns_replica,
        "{{index .Config.Labels \"io.shoal.server\"}}",
    );
    assert_eq!(
        label, "ns",
        "the namespace replica is labelled with its server"
    );
    let up: BTreeSet<String> = s.up_servers().into_iter().collect();
    assert_eq!(up, placed.keys().cloned().collect::<BTreeSet<_>>());
    eprintln!("before failure: replicas {placed:?}, /whoami saw {hosts:?}");

    // 2. Server failure: the namespace's dockerd stops.
    let load = steady_load(&s);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    ns.term_dockerd();
    // Poll shoal while dockerd shuts down (it stops its containers first).
    let mut t_exit = None;
    let down = wait_status(&s, "ns", "down", || {
        if t_exit.is_none() && ns.dockerd_exited() {
            t_exit = Some(t0.elapsed());
        }
    })
    .await;
    let t_down = t0.elapsed();
    assert!(ns.reap_dockerd(), "dockerd exits on SIGTERM");
    let t_exit = t_exit.unwrap_or_else(|| t0.elapsed());
    let reason = down["reason"].as_str().unwrap_or_default().to_owned();
    assert!(!reason.is_empty(), "a down server carries a reason: {down}");
    assert_eq!(s.server("local").await["status"], "up");

    let t_out = wait_out_of_rotation(&s, &ns_replica, t0);
    let t_gone = wait_gone_from_haproxy(&s, &ns_replica, t0);
    let t_replaced = wait_replaced_on_local(&s, &ns_replica, t0).await;

    // Traffic keeps flowing: a few failures are allowed only before HAProxy marks the dead
    // replica down; the last requests all succeed.
    let (log, failed) = finish_recovered(load, t0).await;
    eprintln!(
        "FAILOVER: dockerd exited after {t_exit:?} (upper bound); reported down after {t_down:?} (reason: {reason}); ns replica out of \
         rotation after {t_out:?}, deleted from HAProxy after {t_gone:?}; replacement in \
         rotation after {t_replaced:?}; {} failed, at {failed:?} after the stop; {}",
        failed.len(),
        log.summary()
    );

    // 3. The server returns (same data root); exactly 2 replicas remain.
    let (log, what) = recover(&s, &mut ns, NetnsServer::start_dockerd, Duration::ZERO).await;
    eprintln!("RETURN: {what}");
    assert_eq!(
        log.failed(),
        0,
        "removing the surplus replica is graceful: no request fails ({})",
        log.first_errors(5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dockerd_crash_with_replicas_still_serving() {
    require_image();
    let mut ns = NetnsServer::start(IMAGE);
    // The autoscaler only journals: nothing but the failure changes the count.
    let (s, ns_replica, _) =
        two_server_stack(&ns, "t-crash", &ns.docker_host(), "    dry_run: true\n").await;
    let ns_addr = haproxy_addr(&s, &ns_replica).expect("ns replica address in HAProxy");
    assert!(answers(&ns_addr).await, "ns replica answers at {ns_addr}");

    // 1. dockerd crashes (SIGKILL): nothing stops the containers.
    let load = steady_load(&s);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    ns.kill_dockerd();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let helpers: Vec<String> = ns
        .helper_pids()
        .into_iter()
        .map(|(_, c)| c.split_whitespace().next().unwrap_or_default().to_owned())
        .collect();
    let still_serving = answers(&ns_addr).await;
    assert!(!ns.docker_answers(), "the namespace dockerd is gone");
    assert!(
        helpers.iter().any(|c| c.contains("containerd-shim")),
        "the container's shim outlives dockerd: {helpers:?}"
    );
    assert!(
        still_serving,
        "the replica keeps serving at {ns_addr} without its dockerd (helpers: {helpers:?})"
    );

    // No control path, but the replica passes HAProxy's checks: ns is unreachable, the
    // replica keeps serving, nothing is started in its place.
    let v = wait_status(&s, "ns", "unreachable", || {}).await;
    let t_unreachable = t0.elapsed();
    assert_eq!(s.server("local").await["status"], "up");
    assert_eq!(v["serving"], 1, "{v}");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        in_rotation(&s, &ns_replica),
        "the ns replica keeps serving: {:?}",
        s.servers()
    );
    assert_eq!(
        s.running().len(),
        1,
        "nothing started in its place on local"
    );
    let placed = s.placement().await;
    assert!(placed.contains_key(&ns_replica), "{placed:?}");
    assert_eq!(placed.len(), 2, "{placed:?}");
    assert_eq!(s.server("ns").await["status"], "unreachable");
    let (log, failed) = finish_recovered(load, t0).await;
    assert!(
        failed.is_empty(),
        "no request fails: {}",
        log.first_errors(5)
    );
    eprintln!(
        "CRASH: after SIGKILL of dockerd, left running: {helpers:?}; ns replica answers \
         directly: {still_serving}; ns unreachable after {t_unreachable:?} (reason: {}); \
         its replica still in rotation 8 s later, nothing started in its place; {} failed; {}",
        v["reason"],
        failed.len(),
        log.summary()
    );

    // 2. dockerd restarts (same data root): up again, exactly 2 remain.
    let t1 = Instant::now();
    let (log, what) = recover(&s, &mut ns, NetnsServer::start_dockerd, LINGER).await;
    let failed_return = log.failures_since(t1);
    eprintln!("CRASH RETURN: {what}");
    assert!(log.total() > LAST_N, "enough requests: {}", log.total());
    assert!(
        log.last_ok(LAST_N),
        "the last {LAST_N} requests succeed (failures at {failed_return:?}; {})",
        log.first_errors(5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_partition_of_a_server() {
    require_image();
    // shoal reaches this dockerd over TCP on the namespace's address, so the partition cuts
    // the control plane as well as the replicas' traffic (a unix socket would not notice).
    let mut ns = NetnsServer::start_with_tcp(IMAGE);
    // The autoscaler only journals: the long requests must not scale the service up.
    let (s, ns_replica, _) =
        two_server_stack(&ns, "t-part", &ns.tcp_docker_host(), "    dry_run: true\n").await;
    let ns_addr = haproxy_addr(&s, &ns_replica).expect("ns replica address in HAProxy");

    // 1. Partition: the bridge-side veth goes down, with long requests in flight (so some
    // are cut off mid-response on the ns replica, as a real partition does).
    let load = steady_load(&s);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let long = Load::post(s.frontend_url("/api/generate"), r#"{"work": 8000}"#)
        .clients(4)
        .requests(1)
        .http(http_client(Duration::from_secs(70)))
        .start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    ns.set_link(false);
    // How a connection to the namespace fails now (hangs: timeout, rather than refused).
    let probe_start = Instant::now();
    let probe = http_client(Duration::from_secs(2))
        .get(format!("http://{ns_addr}/api/tags"))
        .send()
        .await;
    let probe_took = probe_start.elapsed();
    let probe_err = match &probe {
        Ok(r) => format!("answered {}", r.status()),
        Err(e) => format!(
            "timeout={} connect={} ({e})",
            e.is_timeout(),
            e.is_connect()
        ),
    };
    eprintln!("PARTITION PROBE: direct request failed after {probe_took:?}: {probe_err}");
    assert!(probe.is_err(), "the partitioned replica is unreachable");

    let mut t_out = None;
    let down = wait_status(&s, "ns", "down", || {
        if t_out.is_none() && !in_rotation(&s, &ns_replica) {
            t_out = Some(t0.elapsed());
        }
    })
    .await;
    let t_down = t0.elapsed();
    assert_eq!(s.server("local").await["status"], "up");
    let t_out = t_out.unwrap_or_else(|| wait_out_of_rotation(&s, &ns_replica, t0));
    let t_gone = wait_gone_from_haproxy(&s, &ns_replica, t0);
    let t_replaced = wait_replaced_on_local(&s, &ns_replica, t0).await;
    // The partitioned replica itself is untouched (its dockerd cannot be reached).
    let ns_during = ns.running(&s.service);
    let (log, failed) = finish_recovered(load, t0).await;
    let long = long.finish_within(Duration::from_secs(60)).await;
    let long_outcomes: Vec<(bool, Duration)> =
        long.samples.iter().map(|r| (r.ok(), r.latency)).collect();
    eprintln!(
        "PARTITION LONG REQUESTS (ok, took): {long_outcomes:?}; still waiting after 60 s: {}",
        long.unfinished
    );
    assert!(
        t_down < Duration::from_secs(20),
        "a partitioned server is declared down within a bounded time: {t_down:?}"
    );
    eprintln!(
        "PARTITION: a direct request to the ns replica failed after {probe_took:?} \
         ({probe_err}); ns replica out of rotation (HAProxy check) after {t_out:?}; ns down \
         after {t_down:?} (reason: {}); ns replica deleted from HAProxy after {t_gone:?}; \
         replacement in rotation after {t_replaced:?}; containers still running on ns: \
         {ns_during:?}; {} failed, at {failed:?}; {}",
        down["reason"],
        failed.len(),
        log.summary()
    );

    // 2. Heal: the partitioned replica is still running; the count settles at 2.
    let t1 = Instant::now();
    let (log, what) = recover(&s, &mut ns, |ns| ns.set_link(true), LINGER).await;
    let failed_return = log.failures_since(t1);
    eprintln!("PARTITION HEALED: {what}");
    assert!(
        failed_return.is_empty(),
        "healing drains the surplus gracefully: no request fails ({})",
        log.first_errors(5)
    );
}
