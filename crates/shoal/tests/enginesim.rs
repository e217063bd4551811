//! shoal against the engine SIMULATOR (`shoal-enginesim`, run in this test process): eight
//! simulated servers, each a unix socket speaking the part of the Docker Engine API shoal
//! uses, with real HAProxy and a real `shoal serve`. A modest size of what
//! `scripts/bench-scale.sh` runs at 100 servers × 50 containers, so the simulator and the
//! paths a big fleet takes stay exercised in CI. The simulator stands in for what no real part
//! can do here (a hundred Docker Engines); its "containers" answer HTTP on the simulated
//! server's loopback address, so shoal's probes and HAProxy's checks are real.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Opts, Stack, Wait};
use shoal_enginesim::store::{Server, State};
use shoal_enginesim::SimConfig;

const SERVERS: u16 = 8;
const REPLICAS: usize = 16;

/// Running containers of `service` on each simulated server, by server name.
fn running(sim: &[Arc<Server>], service: &str) -> BTreeMap<String, Vec<String>> {
    sim.iter()
        .map(|s| {
            let inner = s.lock();
            let names = inner
                .containers
                .values()
                .filter(|c| c.state == State::Running)
                .filter(|c| c.labels.get("io.shoal.service").map(String::as_str) == Some(service))
                .map(|c| c.name.clone())
                .collect();
            (s.name.clone(), names)
        })
        .collect()
}

/// Every container of `service` (any state) on all simulated servers.
fn all_containers(sim: &[Arc<Server>], service: &str) -> Vec<(String, String)> {
    sim.iter()
        .flat_map(|s| {
            let inner = s.lock();
            inner
                .containers
                .values()
                .filter(|c| c.labels.get("io.shoal.service").map(String::as_str) == Some(service))
                .map(|c| (c.id.clone(), c.name.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `POST /containers/{id}/kill` on a simulated server's socket, as a dying process would
/// look to dockerd's clients.
fn kill(socket: &Path, id: &str) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg("--unix-socket")
        .arg(socket)
        .arg(format!("http://sim/v1.41/containers/{id}/kill"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "204", "kill answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_runs_a_simulated_fleet_and_replaces_a_dead_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socks = dir.path().join("sim");
    let octet = 2 + (std::process::id() % 200) as u8;
    let sim = shoal_enginesim::start(
        &socks,
        SERVERS,
        octet,
        SimConfig {
            latency: Duration::ZERO,
            cpu_percent: 5.0,
            memory_bytes: 64 << 20,
        },
    )
    .expect("simulator");
    let servers: String = (0..SERVERS)
        .map(|i| {
            format!(
                "  - host: {ip}\n    name: sim{i}\n    docker_host: unix://{sock}\n    max_containers: 4\n",
                ip = shoal_enginesim::server_ip(octet, i),
                sock = shoal_enginesim::socket_path(&socks, i).display(),
            )
        })
        .collect();
    let mut s = Stack::new(
        "t-sim",
        Opts {
            min: REPLICAS as u32,
            max: REPLICAS as u32,
            local: false,
            servers_extra: servers,
            ..Opts::default()
        },
    );
    s.start_shoal();

    // 1. From nothing to 16 replicas, two a server (placement spreads), all UP in HAProxy.
    let placed = Wait::new(
        "16 replicas in rotation on the simulated fleet",
        Duration::from_secs(60),
    )
    .until_async(async || {
        let on = running(&sim, &s.service);
        let up: BTreeSet<String> = s.up_servers().into_iter().collect();
        let names: BTreeSet<String> = on.values().flatten().cloned().collect();
        if names.len() == REPLICAS && up == names {
            Ok(on)
        } else {
            Err(format!("running {on:?}, UP in HAProxy {up:?}"))
        }
    })
    .await;
    for (server, names) in &placed {
        assert_eq!(names.len(), 2, "two replicas on {server}: {placed:?}");
    }
    let stats = s.stats().await;
    assert_eq!(stats["desired"], REPLICAS, "{stats}");
    let fleet = s.get("/servers").await;
    let up = fleet["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter(|x| x["status"] == "up")
        .count();
    assert_eq!(
        up,
        usize::from(SERVERS),
        "every simulated server up: {fleet}"
    );

    // 2. A replica dies (its responder stops, Docker lists it exited, a `die` event): it
    // leaves HAProxy, its container is removed, a replacement takes its place.
    let victim_server = &sim[3];
    let (victim_id, victim) = {
        let inner = victim_server.lock();
        let c = inner
            .containers
            .values()
            .find(|c| c.state == State::Running)
            .expect("a replica on sim3");
        (c.id.clone(), c.name.clone())
    };
    kill(&shoal_enginesim::socket_path(&socks, 3), &victim_id);
    Wait::new("the dead replica replaced", Duration::from_secs(30))
        .until_async(async || {
            let on = running(&sim, &s.service);
            let names: BTreeSet<String> = on.values().flatten().cloned().collect();
            let up: BTreeSet<String> = s.up_servers().into_iter().collect();
            let all = all_containers(&sim, &s.service);
            let ok = names.len() == REPLICAS
                && !names.contains(&victim)
                && up == names
                && all.len() == REPLICAS;
            ok.then_some(()).ok_or_else(|| {
                format!(
                    "running {on:?}, UP {up:?}, containers (any state) {}",
                    all.len()
                )
            })
        })
        .await;
    // haproxy.cfg (what a restarted HAProxy starts from) follows: the replacement in, the
    // dead one out (shoal skips rewriting it only while nothing changed).
    let cfg_file = s.dir.path().join("haproxy.cfg");
    Wait::new(
        "haproxy.cfg lists the replicas in rotation",
        Duration::from_secs(10),
    )
    .until(|| {
        let text = std::fs::read_to_string(&cfg_file).unwrap_or_default();
        let listed: BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("server "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        let names: BTreeSet<String> = running(&sim, &s.service).into_values().flatten().collect();
        if listed == names {
            Ok(())
        } else {
            Err(format!("haproxy.cfg has {listed:?}, running {names:?}"))
        }
    });
    let events = s.events().await;
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "replica_replaced" && e["replica"] == victim.as_str()),
        "the replacement is journaled: {events:?}"
    );

    // 3. The loop's pass duration is measured (what the scale benchmark reads).
    let metrics = s.metrics().await;
    let passes: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("shoal_reconcile_pass_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(passes > 10.0, "passes observed: {passes}");
}
