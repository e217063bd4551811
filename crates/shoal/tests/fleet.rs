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
