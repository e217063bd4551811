//! Two real servers: the host's Docker Engine (`local`) and a dockerd in a network namespace
//! with its own IP (`ns`). The seed plan's failure-recovery "Test 2: server failure": the
//! namespace's dockerd stops, shoal notices, HAProxy drops its replica, a replacement starts
//! on `local`, traffic keeps flowing; the server returns and the count settles at the
//! desired one again. Needs root (network namespaces, a second dockerd).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::NetnsServer;
use common::{wait_for, Opts, Stack, IMAGE};
use serde_json::Value;

const READY: Duration = Duration::from_secs(60);

/// Replica name -> server, as shoal reports it.
async fn placement(s: &Stack) -> BTreeMap<String, String> {
    let stats = s.get(&format!("/services/{}/stats", s.service)).await;
    stats["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["server"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn server(s: &Stack, name: &str) -> Value {
    let all = s.get("/servers").await;
    all["servers"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

/// Async polling (the API calls are async).
async fn poll<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Steady traffic through HAProxy; every request's time and outcome.
struct Load {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(Instant, bool)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(url: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let task = tokio::spawn({
            let (stop, log) = (stop.clone(), log.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let ok = match client.get(&url).send().await {
                        Ok(r) => r.status().is_success(),
                        Err(_) => false,
                    };
                    log.lock().unwrap().push((Instant::now(), ok));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Load { stop, log, task }
    }

    async fn finish(self) -> Vec<(Instant, bool)> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        Arc::try_unwrap(self.log)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_failure_moves_its_replica_and_the_return_settles_the_count() {
    common::require_image();
    // Declared before the stack, so it is torn down after shoal and HAProxy stop.
    let mut ns = NetnsServer::start(IMAGE);
    let mut s = Stack::new(
        "t-fleet",
        Opts {
            min: 2,
            max: 3,
            cooldown: 600,
            check_interval: 5,
            servers_extra: format!(
                "  - host: {ip}\n    name: ns\n    docker_host: {dh}\n    max_containers: 100\n",
                ip = ns.ip,
                dh = ns.docker_host(),
            ),
            ..Opts::default()
        },
    );
    let svc_label = format!("io.shoal.service={}", s.service);
    let ns_running = |ns: &NetnsServer| ns.container_ids(&svc_label, false);
    s.start_shoal();

    // 1. Two replicas, one per server, both UP in HAProxy, both reached.
    wait_for("one replica per server, both UP", READY, || {
        (s.running().len() == 1 && ns_running(&ns).len() == 1 && s.up_servers().len() == 2)
            .then_some(())
    });
    let placed = placement(&s).await;
    let servers: BTreeSet<&str> = placed.values().map(String::as_str).collect();
    assert_eq!(servers, BTreeSet::from(["local", "ns"]), "{placed:?}");
    let ns_replica = placed
        .iter()
        .find(|(_, srv)| *srv == "ns")
        .map(|(n, _)| n.clone())
        .unwrap();
    let label = String::from_utf8_lossy(
        &ns.docker()
            .args([
                "inspect",
                "--format",
                "{{index .Config.Labels \"io.shoal.server\"}}",
            ])
            .arg(&ns_replica)
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_owned();
    assert_eq!(
        label, "ns",
        "the namespace replica is labelled with its server"
    );
    let up: BTreeSet<String> = s.up_servers().into_iter().collect();
    assert_eq!(up, placed.keys().cloned().collect::<BTreeSet<_>>());
    let hosts = poll(
        "traffic reaching both replicas",
        Duration::from_secs(20),
        || {
            let (http, url) = (s.http.clone(), s.frontend_url("/whoami"));
            async move {
                let mut hosts = BTreeSet::new();
                for _ in 0..12 {
                    let r = http.get(&url).send().await.ok()?;
                    hosts.insert(r.text().await.ok()?);
                }
                (hosts.len() == 2).then_some(hosts)
            }
        },
    )
    .await;
    eprintln!("before failure: replicas {placed:?}, /whoami saw {hosts:?}");

    // 2. Server failure: the namespace's dockerd stops.
    let load = Load::start(s.frontend_url("/api/tags"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    ns.term_dockerd();
    // Poll shoal while dockerd shuts down (it stops its containers first).
    let mut t_exit = None;
    let down = poll("ns reported down", Duration::from_secs(30), || {
        if t_exit.is_none() && ns.dockerd_exited() {
            t_exit = Some(t0.elapsed());
        }
        let s = &s;
        async move {
            let v = server(s, "ns").await;
            (v["status"] == "down").then_some(v)
        }
    })
    .await;
    let t_down = t0.elapsed();
    assert!(ns.reap_dockerd(), "dockerd exits on SIGTERM");
    let t_exit = t_exit.unwrap_or_else(|| t0.elapsed());
    let reason = down["reason"].as_str().unwrap_or_default().to_owned();
    assert!(!reason.is_empty(), "a down server carries a reason: {down}");
    assert_eq!(server(&s, "local").await["status"], "up");

    let t_out = wait_for(
        "the ns replica leaves HAProxy",
        Duration::from_secs(30),
        || {
            let haproxy = s.haproxy.as_ref().unwrap();
            let state = haproxy.servers(&s.backend());
            (!state.iter().any(|(n, op)| *n == ns_replica && *op == 2)).then(|| t0.elapsed())
        },
    );
    let t_gone = wait_for(
        "the ns replica deleted from HAProxy",
        Duration::from_secs(30),
        || {
            let haproxy = s.haproxy.as_ref().unwrap();
            let state = haproxy.servers(&s.backend());
            (!state.iter().any(|(n, _)| *n == ns_replica)).then(|| t0.elapsed())
        },
    );
    let t_replaced = wait_for(
        "a replacement on local: 2 replicas in rotation",
        READY,
        || (s.running().len() == 2 && s.up_servers().len() == 2).then(|| t0.elapsed()),
    );
    let after = placement(&s).await;
    assert!(
        after.values().all(|srv| srv == "local") && after.len() == 2,
        "both replicas on local after the failure: {after:?}"
    );
    let up: BTreeSet<String> = s.up_servers().into_iter().collect();
    assert_eq!(up, after.keys().cloned().collect::<BTreeSet<_>>());
    assert!(!up.contains(&ns_replica));

    // Traffic keeps flowing: a few failures are allowed only before HAProxy marks the dead
    // replica down; the last requests all succeed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = load.finish().await;
    let failed: Vec<Duration> = log
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| t.saturating_duration_since(t0))
        .collect();
    let last_n = 40;
    assert!(log.len() > last_n * 2, "enough requests: {}", log.len());
    assert!(
        log[log.len() - last_n..].iter().all(|(_, ok)| *ok),
        "the last {last_n} requests succeed (failures at {failed:?})"
    );
    eprintln!(
        "FAILOVER: dockerd exited after {t_exit:?} (upper bound); reported down after {t_down:?} (reason: {reason}); ns replica out of \
         rotation after {t_out:?}, deleted from HAProxy after {t_gone:?}; replacement in \
         rotation after {t_replaced:?}; {} of {} requests failed, at {failed:?} after the stop",
        failed.len(),
        log.len()
    );

    // 3. The server returns (same data root).
    let load = Load::start(s.frontend_url("/api/tags"));
    let t1 = Instant::now();
    ns.start_dockerd();
    let t_dockerd = t1.elapsed();
    let ns_after_start: Vec<String> = ns_running(&ns);
    let ns_all = ns.container_ids(&svc_label, true);
    poll("ns reported up again", Duration::from_secs(30), || async {
        (server(&s, "ns").await["status"] == "up").then_some(())
    })
    .await;
    let t_up = t1.elapsed();
    // Settled: exactly 2 replicas in total, both in rotation, for 5 s in a row.
    let mut stable_since: Option<Instant> = None;
    let settled = wait_for("2 replicas in total, stable", READY, || {
        let (l, n) = (s.running(), ns_running(&ns));
        let ok = l.len() + n.len() == 2 && s.up_servers().len() == 2;
        if !ok {
            stable_since = None;
            return None;
        }
        let since = *stable_since.get_or_insert_with(Instant::now);
        (since.elapsed() >= Duration::from_secs(5)).then_some((l.len(), n.len()))
    });
    let t_settled = t1.elapsed();
    let log = load.finish().await;
    let failed_return = log.iter().filter(|(_, ok)| !ok).count();
    let final_placement = placement(&s).await;
    assert_eq!(final_placement.len(), 2, "{final_placement:?}");
    let up: BTreeSet<String> = s.up_servers().into_iter().collect();
    assert_eq!(up, final_placement.keys().cloned().collect::<BTreeSet<_>>());
    let stats = s.get(&format!("/services/{}/stats", s.service)).await;
    assert_eq!(stats["desired"], 2, "{stats}");
    let events: Vec<String> = s
        .events()
        .await
        .iter()
        .take(12)
        .map(|e| e.to_string())
        .collect();
    eprintln!(
        "RETURN: dockerd answered after {t_dockerd:?}; service containers there at start: \
         running {ns_after_start:?}, all {ns_all:?}; ns up after {t_up:?}; settled after \
         {t_settled:?} with {} on local, {} on ns ({final_placement:?}); {failed_return} of {} \
         requests failed during the return\nrecent events (newest first):\n{}",
        settled.0,
        settled.1,
        log.len(),
        events.join("\n")
    );
    assert_eq!(
        failed_return, 0,
        "removing the surplus replica is graceful: no request fails"
    );
}

/// A stack with `local` and `ns` (reached at `docker_host`), min 2 / max 3, settled with one
/// replica per server, both UP and both reached through HAProxy. Returns the stack and the
/// name of the replica on `ns`.
async fn two_server_stack(ns: &NetnsServer, prefix: &str, docker_host: &str) -> (Stack, String) {
    let mut s = Stack::new(
        prefix,
        Opts {
            min: 2,
            max: 3,
            cooldown: 600,
            check_interval: 5,
            // The autoscaler only journals: the long requests of the partition test must not
            // scale the service up.
            extra: "    dry_run: true\n".to_owned(),
            servers_extra: format!(
                "  - host: {ip}\n    name: ns\n    docker_host: {docker_host}\n    max_containers: 100\n",
                ip = ns.ip,
            ),
            ..Opts::default()
        },
    );
    s.start_shoal();
    let svc_label = format!("io.shoal.service={}", s.service);
    wait_for("one replica per server, both UP", READY, || {
        (s.running().len() == 1
            && ns.container_ids(&svc_label, false).len() == 1
            && s.up_servers().len() == 2)
            .then_some(())
    });
    let placed = placement(&s).await;
    let servers: BTreeSet<&str> = placed.values().map(String::as_str).collect();
    assert_eq!(servers, BTreeSet::from(["local", "ns"]), "{placed:?}");
    let ns_replica = placed
        .iter()
        .find(|(_, srv)| *srv == "ns")
        .map(|(n, _)| n.clone())
        .unwrap();
    poll(
        "traffic reaching both replicas",
        Duration::from_secs(20),
        || {
            let (http, url) = (s.http.clone(), s.frontend_url("/whoami"));
            async move {
                let mut hosts = BTreeSet::new();
                for _ in 0..12 {
                    let r = http.get(&url).send().await.ok()?;
                    hosts.insert(r.text().await.ok()?);
                }
                (hosts.len() == 2).then_some(())
            }
        },
    )
    .await;
    (s, ns_replica)
}

/// `addr:port` of a server in the service's HAProxy backend (`show servers state`).
fn haproxy_addr(s: &Stack, name: &str) -> Option<String> {
    let out = s
        .haproxy
        .as_ref()?
        .command(&format!("show servers state {}", s.backend()));
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(3) != Some(&name) {
            return None;
        }
        Some(format!("{}:{}", f.get(4)?, f.get(18)?))
    })
}

/// Whether a replica answers directly (not through HAProxy), within 2 s.
async fn answers(addr: &str) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    client
        .get(format!("http://{addr}/api/tags"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Failures of a load log, as offsets from `t0`.
fn failures(log: &[(Instant, bool)], t0: Instant) -> Vec<Duration> {
    log.iter()
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| t.saturating_duration_since(t0))
        .collect()
}

/// Waits until exactly `n` replicas run in total (local + ns), all UP in HAProxy, shoal
/// reports `n`, with no duplicate name, for 5 s in a row. Returns (on local, on ns).
async fn settle(s: &Stack, ns: &NetnsServer, n: usize) -> (usize, usize) {
    let svc_label = format!("io.shoal.service={}", s.service);
    let mut stable_since: Option<Instant> = None;
    let start = Instant::now();
    loop {
        let (l, r) = (s.running(), ns.container_ids(&svc_label, false));
        let placed = placement(s).await;
        let up: BTreeSet<String> = s.up_servers().into_iter().collect();
        let ok = l.len() + r.len() == n
            && placed.len() == n
            && up.len() == n
            && up == placed.keys().cloned().collect::<BTreeSet<_>>();
        if ok {
            let since = *stable_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(5) {
                return (l.len(), r.len());
            }
        } else {
            stable_since = None;
        }
        assert!(
            start.elapsed() < READY,
            "timed out settling at {n}: local {l:?}, ns {r:?}, shoal {placed:?}, UP {up:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dockerd_crash_with_replicas_still_serving() {
    common::require_image();
    let mut ns = NetnsServer::start(IMAGE);
    let (s, ns_replica) = two_server_stack(&ns, "t-crash", &ns.docker_host()).await;
    let svc_label = format!("io.shoal.service={}", s.service);
    let ns_addr = haproxy_addr(&s, &ns_replica).expect("ns replica address in HAProxy");
    assert!(answers(&ns_addr).await, "ns replica answers at {ns_addr}");

    // 1. dockerd crashes (SIGKILL): nothing stops the containers.
    let load = Load::start(s.frontend_url("/api/tags"));
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

    let down = poll("ns reported down", Duration::from_secs(30), || {
        let s = &s;
        async move {
            let v = server(s, "ns").await;
            (v["status"] == "down").then_some(v)
        }
    })
    .await;
    let t_down = t0.elapsed();
    assert_eq!(server(&s, "local").await["status"], "up");
    let t_gone = wait_for(
        "the ns replica deleted from HAProxy",
        Duration::from_secs(30),
        || {
            let state = s.haproxy.as_ref().unwrap().servers(&s.backend());
            (!state.iter().any(|(n, _)| *n == ns_replica)).then(|| t0.elapsed())
        },
    );
    let t_replaced = wait_for(
        "a replacement on local: 2 local replicas in rotation",
        READY,
        || (s.running().len() == 2 && s.up_servers().len() == 2).then(|| t0.elapsed()),
    );
    let after = placement(&s).await;
    assert!(
        after.len() == 2 && after.values().all(|srv| srv == "local"),
        "the desired count is met on reachable servers: {after:?}"
    );
    let serving_after = answers(&ns_addr).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = load.finish().await;
    let failed = failures(&log, t0);
    let last_n = 40;
    assert!(log.len() > last_n * 2, "enough requests: {}", log.len());
    assert!(
        log[log.len() - last_n..].iter().all(|(_, ok)| *ok),
        "the last {last_n} requests succeed (failures at {failed:?})"
    );
    eprintln!(
        "CRASH: after SIGKILL of dockerd, left running: {helpers:?}; orphaned ns replica \
         answers directly: {still_serving} (still after the replacement: {serving_after}); \
         ns down after {t_down:?} (reason: {}); ns replica deleted from HAProxy after \
         {t_gone:?}; replacement in rotation after {t_replaced:?}; {} of {} requests failed, \
         at {failed:?}",
        down["reason"],
        failed.len(),
        log.len()
    );

    // 2. dockerd restarts (same data root): the surplus goes, exactly 2 remain.
    let load = Load::start(s.frontend_url("/api/tags"));
    let t1 = Instant::now();
    ns.start_dockerd();
    let t_dockerd = t1.elapsed();
    let ns_running_at_start = ns.container_ids(&svc_label, false);
    let ns_all_at_start = ns.container_ids(&svc_label, true);
    poll("ns reported up again", Duration::from_secs(30), || async {
        (server(&s, "ns").await["status"] == "up").then_some(())
    })
    .await;
    let t_up = t1.elapsed();
    let (on_local, on_ns) = settle(&s, &ns, 2).await;
    let t_settled = t1.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = load.finish().await;
    let failed_return = failures(&log, t1);
    let stats = s.get(&format!("/services/{}/stats", s.service)).await;
    assert_eq!(stats["desired"], 2, "{stats}");
    eprintln!(
        "CRASH RETURN: dockerd answered after {t_dockerd:?}; service containers on ns then: \
         running {ns_running_at_start:?}, all {ns_all_at_start:?}; ns up after {t_up:?}; \
         settled after {t_settled:?} with {on_local} on local, {on_ns} on ns ({:?}); {} of {} \
         requests failed during the return, at {failed_return:?}\nrecent events (newest first):\n{}",
        placement(&s).await,
        failed_return.len(),
        log.len(),
        recent_events(&s, 12).await
    );
    let last_n = 40;
    assert!(log.len() > last_n, "enough requests: {}", log.len());
    assert!(
        log[log.len() - last_n..].iter().all(|(_, ok)| *ok),
        "the last {last_n} requests succeed (failures at {failed_return:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_partition_of_a_server() {
    common::require_image();
    // shoal reaches this dockerd over TCP on the namespace's address, so the partition cuts
    // the control plane as well as the replicas' traffic (a unix socket would not notice).
    let ns = NetnsServer::start_with_tcp(IMAGE);
    let (s, ns_replica) = two_server_stack(&ns, "t-part", &ns.tcp_docker_host()).await;
    let svc_label = format!("io.shoal.service={}", s.service);
    let ns_addr = haproxy_addr(&s, &ns_replica).expect("ns replica address in HAProxy");

    // 1. Partition: the bridge-side veth goes down, with long requests in flight (so some
    // are cut off mid-response on the ns replica, as a real partition does).
    let load = Load::start(s.frontend_url("/api/tags"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let long_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(70))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let long: Vec<_> = (0..4)
        .map(|_| {
            let (c, url) = (long_client.clone(), s.frontend_url("/api/generate"));
            tokio::spawn(async move {
                let start = Instant::now();
                let r = c.post(url).body(r#"{"work": 8000}"#).send().await;
                let ok = match r {
                    Ok(r) => r.status().is_success() && r.text().await.is_ok(),
                    Err(_) => false,
                };
                (ok, start.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    ns.set_link(false);
    // How a connection to the namespace fails now (hangs: timeout, rather than refused).
    let probe_start = Instant::now();
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
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
    let down = poll("ns reported down", Duration::from_secs(30), || {
        let s = &s;
        if t_out.is_none() {
            let state = s.haproxy.as_ref().unwrap().servers(&s.backend());
            if !state.iter().any(|(n, op)| *n == ns_replica && *op == 2) {
                t_out = Some(t0.elapsed());
            }
        }
        async move {
            let v = server(s, "ns").await;
            (v["status"] == "down").then_some(v)
        }
    })
    .await;
    let t_down = t0.elapsed();
    assert_eq!(server(&s, "local").await["status"], "up");
    let t_out = t_out.unwrap_or_else(|| {
        wait_for(
            "the ns replica out of rotation",
            Duration::from_secs(30),
            || {
                let state = s.haproxy.as_ref().unwrap().servers(&s.backend());
                (!state.iter().any(|(n, op)| *n == ns_replica && *op == 2)).then(|| t0.elapsed())
            },
        )
    });
    let t_gone = {
        let start = Instant::now();
        loop {
            let h = s.haproxy.as_ref().unwrap();
            if !h
                .servers(&s.backend())
                .iter()
                .any(|(n, _)| *n == ns_replica)
            {
                break t0.elapsed();
            }
            if start.elapsed() > Duration::from_secs(30) {
                let b = s.backend();
                panic!(
                    "the ns replica still in HAProxy after 30 s\nshow servers state:\n{}\n\
                     show stat (scur etc):\n{}\ndel server answer: {}\nshow sess:\n{}",
                    h.command(&format!("show servers state {b}")),
                    h.command("show stat")
                        .lines()
                        .filter(|l| l.starts_with('#') || l.contains(&ns_replica))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    h.command(&format!("del server {b}/{ns_replica}")),
                    h.command("show sess"),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let t_replaced = wait_for(
        "a replacement on local: 2 local replicas in rotation",
        READY,
        || (s.running().len() == 2 && s.up_servers().len() == 2).then(|| t0.elapsed()),
    );
    let after = placement(&s).await;
    assert!(
        after.len() == 2 && after.values().all(|srv| srv == "local"),
        "the desired count is met on reachable servers: {after:?}"
    );
    // The partitioned replica itself is untouched (its dockerd cannot be reached).
    let ns_during = ns.container_ids(&svc_label, false);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = load.finish().await;
    let failed = failures(&log, t0);
    let last_n = 40;
    assert!(log.len() > last_n * 2, "enough requests: {}", log.len());
    assert!(
        log[log.len() - last_n..].iter().all(|(_, ok)| *ok),
        "the last {last_n} requests succeed (failures at {failed:?})"
    );
    let mut long_outcomes = Vec::new();
    for h in long {
        long_outcomes.push(
            tokio::time::timeout(Duration::from_secs(60), h)
                .await
                .map(|r| r.unwrap())
                .map_err(|_| "still waiting after 60 s"),
        );
    }
    eprintln!("PARTITION LONG REQUESTS (ok, took): {long_outcomes:?}");
    assert!(
        t_down < Duration::from_secs(20),
        "a partitioned server is declared down within a bounded time: {t_down:?}"
    );
    eprintln!(
        "PARTITION: a direct request to the ns replica failed after {probe_took:?} \
         ({probe_err}); ns replica out of rotation (HAProxy check) after {t_out:?}; ns down \
         after {t_down:?} (reason: {}); ns replica deleted from HAProxy after {t_gone:?}; \
         replacement in rotation after {t_replaced:?}; containers still running on ns: \
         {ns_during:?}; {} of {} requests failed, at {failed:?}",
        down["reason"],
        failed.len(),
        log.len()
    );

    // 2. Heal: the partitioned replica is still running; the count settles at 2.
    let load = Load::start(s.frontend_url("/api/tags"));
    let t1 = Instant::now();
    ns.set_link(true);
    poll("ns reported up again", Duration::from_secs(30), || async {
        (server(&s, "ns").await["status"] == "up").then_some(())
    })
    .await;
    let t_up = t1.elapsed();
    let (on_local, on_ns) = settle(&s, &ns, 2).await;
    let t_settled = t1.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = load.finish().await;
    let failed_return = failures(&log, t1);
    let stats = s.get(&format!("/services/{}/stats", s.service)).await;
    assert_eq!(stats["desired"], 2, "{stats}");
    eprintln!(
        "PARTITION HEALED: ns up after {t_up:?}; settled after {t_settled:?} with {on_local} on \
         local, {on_ns} on ns ({:?}); {} of {} requests failed during the return, at \
         {failed_return:?}\nrecent events (newest first):\n{}",
        placement(&s).await,
        failed_return.len(),
        log.len(),
        recent_events(&s, 12).await
    );
    assert!(
        failed_return.is_empty(),
        "healing drains the surplus gracefully: no request fails ({failed_return:?})"
    );
}
