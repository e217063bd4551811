//! The seed's Phase 8.2 failure sequence and the control-path faults on the plan's fleet
//! reached over SSH only: four servers, each a network namespace with its own IP, dockerd
//! and sshd (generated host and client keys, one known_hosts), HAProxy and `shoal serve` on
//! this machine, steady client traffic through HAProxy, four replicas (one per server).
//! Kill a container; stop Docker on server 2 and start it again; restart shoal (SIGKILL);
//! SIGKILL shoal mid scale-up and mid scale-down; stop sshd on server 3 and cut its SSH
//! connection while its replica is healthy (it keeps serving, nothing is duplicated, the
//! server is `unreachable` with the reason; sshd back: `up`, no action); cut the network
//! link of server 4 and heal it (its replica moves, the count settles). After each: the
//! replicas running equal the desired count, HAProxy holds exactly them (all UP), no
//! duplicate or orphan container on any server, and the last requests all succeed. Failed
//! requests per fault are printed. Needs root.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::docker::require_image;
use common::netns::NetnsServer;
use common::{http_client, Load, Opts, Stack, Wait, IMAGE};

const READY: Duration = Duration::from_secs(90);
const LAST_N: usize = 30;

fn steady_load(s: &Stack) -> Load {
    Load::get(s.frontend_url("/api/tags"))
        .pause(Duration::from_millis(50))
        .http(http_client(Duration::from_secs(3)))
        .start()
}

/// Names of the service's containers on `ns` (all states when `all`).
fn names(ns: &NetnsServer, service: &str, all: bool) -> Vec<String> {
    if !ns.docker_answers() {
        return Vec::new();
    }
    let mut c = ns.docker();
    c.args([
        "ps",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label=io.shoal.service={service}"),
    ]);
    if all {
        c.arg("-a");
    }
    let mut v: Vec<String> = common::cmd::stdout(&mut c)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// Waits until exactly `n` replicas run over both servers, each name once, every container
/// of the service on either server running (no orphan left behind), shoal reporting
/// exactly them, HAProxy holding exactly them all UP; stable for 3 s.
async fn settle(s: &Stack, fleet: &[NetnsServer], n: usize) -> BTreeMap<String, usize> {
    settle_on(s, &fleet.iter().collect::<Vec<_>>(), n).await
}

/// [`settle`] over the servers `fleet` only (a server cut off from this machine still runs
/// its old replica; it is left out until it is back).
async fn settle_on(s: &Stack, fleet: &[&NetnsServer], n: usize) -> BTreeMap<String, usize> {
    let mut since: Option<Instant> = None;
    Wait::new(format!("{n} replicas, stable for 3 s"), READY)
        .every(Duration::from_millis(300))
        .until_async(async || {
            let mut running = Vec::new();
            let mut all = Vec::new();
            let mut per = BTreeMap::new();
            for ns in fleet.iter().copied() {
                let r = names(ns, &s.service, false);
                per.insert(ns.netns.clone(), r.len());
                running.extend(r);
                all.extend(names(ns, &s.service, true));
            }
            let set: BTreeSet<String> = running.iter().cloned().collect();
            let placed = s.placement().await;
            let up: BTreeSet<String> = s.up_servers().into_iter().collect();
            let in_lb: BTreeSet<String> = s.servers().into_iter().map(|r| r.name).collect();
            let ok = running.len() == n
                && set.len() == n
                && all.len() == n
                && placed.keys().cloned().collect::<BTreeSet<_>>() == set
                && up == set
                && in_lb == set;
            if !ok {
                since = None;
                return Err(format!(
                    "running {running:?}, all {all:?}, shoal {placed:?}, UP {up:?}, in HAProxy {in_lb:?}"
                ));
            }
            let t = since.get_or_insert_with(Instant::now).elapsed();
            if t < Duration::from_secs(3) {
                return Err(format!("settled {t:?} ago"));
            }
            Ok(per)
        })
        .await
}

/// Stops `load` 3 s later; asserts the last requests succeeded; prints and returns the
/// failed count.
async fn finish(fault: &str, load: Load, t0: Instant) -> u64 {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = load.finish().await;
    assert!(
        r.total() > LAST_N,
        "{fault}: enough requests ({})",
        r.total()
    );
    assert!(
        r.last_ok(LAST_N),
        "{fault}: the last {LAST_N} requests succeed; {}",
        r.first_errors(5)
    );
    let failed = r.failed();
    eprintln!(
        "FAULT {fault}: {} requests, {failed} failed (at {:?}), recovered in {:?}",
        r.total(),
        r.failures_since(t0),
        t0.elapsed()
    );
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_8_2_over_ssh() {
    require_image();
    let mut fleet: Vec<NetnsServer> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|t| NetnsServer::start_tagged(IMAGE, t))
        .collect();
    let mut known_hosts = String::new();
    let mut servers = String::new();
    for (i, ns) in fleet.iter_mut().enumerate() {
        let access = ns.start_sshd();
        known_hosts.push_str(&std::fs::read_to_string(&access.known_hosts).unwrap());
        servers.push_str(&format!(
            "  - host: {ip}\n    name: server{n}\n    ssh_user: root\n    ssh_key: {key}\n    docker_socket: {sock}\n    max_containers: 12\n",
            ip = ns.ip,
            n = i + 1,
            key = access.key.display(),
            sock = ns.socket().display(),
        ));
    }
    let kh_dir = tempfile::tempdir().unwrap();
    let kh = kh_dir.path().join("known_hosts");
    std::fs::write(&kh, known_hosts).unwrap();
    let mut s = Stack::new(
        "sshf",
        Opts {
            min: 4,
            max: 6,
            local: false,
            servers_extra: servers,
            top_extra: format!(
                "ssh:\n  known_hosts: {}\n  connect_timeout: 5\n",
                kh.display()
            ),
            ..Opts::default()
        },
    );

    // `shoal check` first, as a user would.
    let out = common::shoal()
        .args(["check", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    s.start_shoal();
    let per = settle(&s, &fleet, 4).await;
    assert!(per.values().all(|&n| n == 1), "spread: {per:?}");
    for name in ["server1", "server2", "server3", "server4"] {
        let v = s.server(name).await;
        assert_eq!(v["status"], "up", "{v}");
        assert!(
            v["endpoint"].as_str().unwrap().starts_with("ssh://root@"),
            "{v}"
        );
        // Running / max, the replicas HAProxy serves there, since when, the clock's skew.
        assert_eq!(
            (&v["containers_running"], &v["max_containers"]),
            (&1.into(), &12.into()),
            "{v}"
        );
        assert_eq!(v["serving"], 1, "{v}");
        assert!(v["since"].is_string(), "{v}");
        assert!(
            v["clock_skew_ms"]
                .as_i64()
                .is_some_and(|ms| ms.abs() < 2_000),
            "the same clock: {v}"
        );
    }
    let mut failed = BTreeMap::new();

    // 1. Kill a container on server1.
    let load = steady_load(&s);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    let victim = names(&fleet[0], &s.service, false).pop().unwrap();
    common::cmd::succeed(fleet[0].docker().args(["kill", &victim]));
    settle(&s, &fleet, 4).await;
    failed.insert(
        "kill a container",
        finish("kill a container", load, t0).await,
    );

    // 2. Stop Docker on server2, then start it again.
    let load = steady_load(&s);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    fleet[1].stop_dockerd();
    Wait::new("server2 down", Duration::from_secs(30))
        .until_async(async || (s.server("server2").await["status"] == "down").then_some(()))
        .await;
    let per = settle(&s, &fleet, 4).await;
    assert_eq!(
        per[&fleet[1].netns], 0,
        "moved off server2 while it is down"
    );
    fleet[1].start_dockerd();
    Wait::new("server2 up again", Duration::from_secs(60))
        .until_async(async || (s.server("server2").await["status"] == "up").then_some(()))
        .await;
    settle(&s, &fleet, 4).await;
    failed.insert(
        "docker stop/start on server2",
        finish("docker stop/start on server2", load, t0).await,
    );

    // 3. Restart shoal (SIGKILL, start): it adopts what runs, nothing new.
    let before: BTreeSet<String> = fleet
        .iter()
        .flat_map(|ns| names(ns, &s.service, true))
        .collect();
    let load = steady_load(&s);
    let t0 = Instant::now();
    s.kill_shoal();
    s.start_shoal();
    settle(&s, &fleet, 4).await;
    let after: BTreeSet<String> = fleet
        .iter()
        .flat_map(|ns| names(ns, &s.service, true))
        .collect();
    assert_eq!(
        before, after,
        "a restarted shoal adopts the replicas, creates none"
    );
    failed.insert("shoal restart", finish("shoal restart", load, t0).await);
    // The killed shoal's SSH connections were ended by the new one: one per server.
    let masters = ssh_masters(&s);
    assert_eq!(masters, 4, "one SSH connection per server after a restart");

    // 4. SIGKILL mid scale-up: a fifth replica created, not yet UP.
    let load = steady_load(&s);
    let t0 = Instant::now();
    let (code, body) = s.act("scale/up").await;
    assert_eq!(code, 200, "{body}");
    Wait::new("a fifth container created", Duration::from_secs(30))
        .every(Duration::from_millis(50))
        .until(|| {
            (fleet
                .iter()
                .map(|ns| names(ns, &s.service, true).len())
                .sum::<usize>()
                == 5)
                .then_some(())
        });
    s.kill_shoal();
    s.start_shoal();
    settle(&s, &fleet, 5).await;
    failed.insert(
        "kill -9 mid scale-up",
        finish("kill -9 mid scale-up", load, t0).await,
    );

    // 5. SIGKILL mid scale-down: a replica draining.
    let load = steady_load(&s);
    let t0 = Instant::now();
    let (code, body) = s.act("scale/down").await;
    assert_eq!(code, 200, "{body}");
    Wait::new(
        "a replica leaving HAProxy's rotation",
        Duration::from_secs(30),
    )
    .every(Duration::from_millis(50))
    .until(|| (s.up_servers().len() < 5).then_some(()));
    s.kill_shoal();
    s.start_shoal();
    settle(&s, &fleet, 4).await;
    failed.insert(
        "kill -9 mid scale-down",
        finish("kill -9 mid scale-down", load, t0).await,
    );

    // 6. sshd stopped on server3, its SSH connection cut; its replica stays healthy.
    let per = settle(&s, &fleet, 4).await;
    assert_eq!(per[&fleet[2].netns], 1, "server3 runs a replica: {per:?}");
    let load = steady_load(&s);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = all_names(&fleet, &s.service);
    let acted = changes(&s).await;
    let t0 = Instant::now();
    fleet[2].stop_sshd();
    Wait::new("server3 unreachable", Duration::from_secs(30))
        .until_async(async || {
            let v = s.server("server3").await;
            (v["status"] == "unreachable").then_some(v)
        })
        .await;
    let v = s.server("server3").await;
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("SSH") && reason.contains(&fleet[2].ip),
        "the reason says the SSH connection to it failed: {v}"
    );
    assert_eq!(v["serving"], 1, "{v}");
    assert!(v["since"].is_string(), "{v}");
    // It keeps serving, nothing is duplicated (well past the down threshold).
    tokio::time::sleep(Duration::from_secs(8)).await;
    settle(&s, &fleet, 4).await;
    assert_eq!(s.server("server3").await["status"], "unreachable");
    assert_eq!(
        all_names(&fleet, &s.service),
        before,
        "no container created or removed"
    );
    let access = fleet[2].start_sshd();
    assert!(access.key.exists());
    Wait::new("server3 up again", Duration::from_secs(60))
        .until_async(async || (s.server("server3").await["status"] == "up").then_some(()))
        .await;
    settle(&s, &fleet, 4).await;
    assert_eq!(all_names(&fleet, &s.service), before, "no action on return");
    assert_eq!(
        changes(&s).await,
        acted,
        "no replica event while unreachable and back"
    );
    failed.insert(
        "sshd stopped and back on server3",
        finish("sshd stopped and back on server3", load, t0).await,
    );

    // 7. Network link of server4 cut, then healed: its replica moves, the count settles.
    let load = steady_load(&s);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    fleet[3].set_link(false);
    Wait::new("server4 down", Duration::from_secs(60))
        .until_async(async || (s.server("server4").await["status"] == "down").then_some(()))
        .await;
    let rest: Vec<&NetnsServer> = fleet[..3].iter().collect();
    settle_on(&s, &rest, 4).await;
    fleet[3].set_link(true);
    Wait::new("server4 up again", Duration::from_secs(60))
        .until_async(async || (s.server("server4").await["status"] == "up").then_some(()))
        .await;
    settle(&s, &fleet, 4).await;
    failed.insert(
        "link of server4 cut and healed",
        finish("link of server4 cut and healed", load, t0).await,
    );

    eprintln!("failed requests per fault: {failed:?}");
    drop(s);
    // Nothing of the service left on either server after the stack is gone.
    drop(fleet);
}

/// Every container of `service` on the fleet, any state.
fn all_names(fleet: &[NetnsServer], service: &str) -> BTreeSet<String> {
    fleet
        .iter()
        .flat_map(|ns| names(ns, service, true))
        .collect()
}

/// The newest of the service's journal entries that changed what runs or what HAProxy
/// serves: (seq, action, reason).
async fn changes(s: &Stack) -> Option<(u64, String, String)> {
    s.events().await.iter().find_map(|e| {
        let a = e["action"].as_str()?;
        (a.starts_with("replica_") || a.starts_with("lb_")).then(|| {
            (
                e["seq"].as_u64().unwrap_or(0),
                a.to_owned(),
                e["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
    })
}

/// Live `ssh` ControlMasters of this stack's shoal (their command lines name its run dir).
fn ssh_masters(s: &Stack) -> usize {
    let state = s.dir.path().join("shoal-state.db");
    let run_dir = shoal::ssh::SshSettings::run_dir_for(&state);
    let needle = run_dir.display().to_string();
    let mut n = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with("ssh ") && cmd.contains(" -M ") && cmd.contains(&needle) {
            n += 1;
        }
    }
    n
}
