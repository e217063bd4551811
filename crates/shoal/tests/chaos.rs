//! Chaos: shoal is SIGKILLed at a random moment (0–2 s) after a scale-up, a scale-down or a
//! rolling update, restarted, and the product's promises are checked once it recovers, on
//! two real servers (the host's Docker Engine and a dockerd in a network namespace), real
//! HAProxy, the real `shoal serve`:
//!
//! - the desired count is the last one the API acknowledged, within the bounds, and exactly
//!   that many replicas run, each ready (shoal's view);
//! - HAProxy's servers are exactly the running replicas, all UP;
//! - no orphan (a container of the service shoal does not count, in any state) and no
//!   duplicate name, on either server;
//! - the journal is readable after the restart and holds the restart's adoption.
//!
//! Each must hold for [`STABLE`] in a row within [`CONVERGE`] of the restart. Rounds:
//! `SHOAL_CHAOS_ROUNDS` (default [`DEFAULT_ROUNDS`], sized for CI; `scripts/chaos.sh` runs 60),
//! random choices from `SHOAL_CHAOS_SEED` (printed, so a run can be replayed). Violations are
//! collected over all rounds and reported together. Needs root (network namespace).

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::docker::{self, require_image, service_label};
use common::netns::NetnsServer;
use common::{Opts, Stack, IMAGE};

const MIN: u32 = 2;
const MAX: u32 = 4;
const DEFAULT_ROUNDS: u32 = 10;
/// How long the invariants must hold in a row.
const STABLE: Duration = Duration::from_secs(2);
/// How long recovery may take (a drain of `drain_timeout` 10 s and a start period included).
const CONVERGE: Duration = Duration::from_secs(60);

/// xorshift64*: enough randomness for choosing actions and delays, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `(name, state)` of every container of `service` on the engine `docker` talks to.
fn containers(mut docker: Command, service: &str) -> Vec<(String, String)> {
    let out = docker
        .args(["ps", "-a", "--filter"])
        .arg(format!("label={}", service_label(service)))
        .args(["--format", "{{.Names}} {{.State}}"])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (n, s) = l.split_once(' ')?;
            Some((n.to_owned(), s.to_owned()))
        })
        .collect()
}

/// Why the invariants do not hold now (`Ok` when they do) for `desired` replicas.
async fn check(s: &Stack, ns: &NetnsServer, desired: u32) -> Result<(), String> {
    let mut all = containers(docker::docker(), &s.service);
    all.extend(containers(ns.docker(), &s.service));
    let names: Vec<&String> = all.iter().map(|(n, _)| n).collect();
    let unique: BTreeSet<&String> = names.iter().copied().collect();
    if unique.len() != names.len() {
        return Err(format!("duplicate container names: {all:?}"));
    }
    let running: BTreeSet<String> = all
        .iter()
        .filter(|(_, st)| st == "running")
        .map(|(n, _)| n.clone())
        .collect();
    if all.len() != desired as usize || running.len() != desired as usize {
        return Err(format!(
            "{desired} desired but containers (any state) {all:?}"
        ));
    }
    let servers = s.servers();
    let in_lb: BTreeSet<String> = servers.iter().map(|r| r.name.clone()).collect();
    let up: BTreeSet<String> = s.up_servers().into_iter().collect();
    if in_lb != running || up != running {
        return Err(format!(
            "HAProxy has {in_lb:?} (UP {up:?}), running {running:?}"
        ));
    }
    let stats = s.stats().await;
    if stats["desired"] != desired {
        return Err(format!(
            "shoal's desired is {} (the last acknowledged {desired})",
            stats["desired"]
        ));
    }
    let ready: BTreeSet<String> = stats["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["phase"] == "ready")
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let known = stats["containers"].as_array().map_or(0, Vec::len);
    if ready != running || known != running.len() {
        return Err(format!(
            "shoal tracks {known}, ready {ready:?}, running {running:?}"
        ));
    }
    Ok(())
}

/// Waits until [`check`] holds for [`STABLE`] in a row; returns how long it took, or the
/// last reason it did not hold at [`CONVERGE`].
async fn converge(s: &Stack, ns: &NetnsServer, desired: u32) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut since: Option<Instant> = None;
    loop {
        match check(s, ns, desired).await {
            Ok(()) => {
                let at = *since.get_or_insert_with(Instant::now);
                if at.elapsed() >= STABLE {
                    return Ok(at - t0);
                }
            }
            Err(why) => {
                since = None;
                if t0.elapsed() > CONVERGE {
                    return Err(why);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The journal answers after the restart and holds an adoption newer than `before` events.
async fn journal_readable(s: &Stack) -> Result<usize, String> {
    let r = s
        .http
        .get(s.url(&format!("/services/{}/events?limit=500", s.service)))
        .send()
        .await
        .map_err(|e| format!("events: {e}"))?;
    if r.status() != 200 {
        return Err(format!("events answered {}", r.status()));
    }
    let v: serde_json::Value = r.json().await.map_err(|e| format!("events JSON: {e}"))?;
    let events = v["events"].as_array().cloned().unwrap_or_default();
    if !events.iter().any(|e| e["action"] == "adopted") {
        return Err("no adoption journaled after the restart".into());
    }
    Ok(events.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_scaling_and_rolling_updates_keeps_the_promises() {
    require_image();
    let rounds: u32 = std::env::var("SHOAL_CHAOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let seed: u64 = std::env::var("SHOAL_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("CHAOS: {rounds} rounds, SHOAL_CHAOS_SEED={seed}");
    let mut rng = Rng(seed);
    let ns = NetnsServer::start(IMAGE);
    let mut s = Stack::new(
        "t-chaos",
        Opts {
            min: MIN,
            max: MAX,
            // The autoscaler only journals: only the test's commands change the count.
            extra: "    dry_run: true\n".into(),
            servers_extra: format!(
                "  - host: {ip}\n    name: ns\n    docker_host: {dh}\n    max_containers: 100\n",
                ip = ns.ip,
                dh = ns.docker_host()
            ),
            ..Opts::default()
        },
    );
    s.start_shoal();
    let mut desired = MIN;
    converge(&s, &ns, desired)
        .await
        .unwrap_or_else(|why| panic!("the stack never settled: {why}"));

    let mut violations: Vec<String> = Vec::new();
    let mut took: Vec<Duration> = Vec::new();
    for round in 1..=rounds {
        let action = match (desired, rng.below(3)) {
            (d, 0) if d < MAX => "scale/up",
            (d, 1) if d > MIN => "scale/down",
            (d, _) if d == MAX && rng.below(2) == 0 => "scale/down",
            (d, _) if d == MIN && rng.below(2) == 0 => "scale/up",
            _ => "rolling-update",
        };
        let (code, body) = s.act(action).await;
        if !(200..300).contains(&code) {
            violations.push(format!("round {round}: {action} answered {code}: {body}"));
            continue;
        }
        match action {
            "scale/up" => desired += 1,
            "scale/down" => desired -= 1,
            _ => {}
        }
        let delay = Duration::from_millis(rng.below(2001));
        tokio::time::sleep(delay).await;
        s.kill_shoal();
        s.start_shoal();
        let outcome = converge(&s, &ns, desired).await;
        let journal = journal_readable(&s).await;
        match (&outcome, &journal) {
            (Ok(t), Ok(n)) => {
                took.push(*t);
                eprintln!(
                    "round {round}: {action} (desired {desired}), SIGKILL after {delay:?}: \
                     recovered in {t:?}; journal {n} events"
                );
            }
            _ => {
                let why = format!(
                    "round {round}: {action} (desired {desired}), SIGKILL after {delay:?}: \
                     {outcome:?}; journal {journal:?}"
                );
                eprintln!(
                    "VIOLATION {why}\n--- shoal log tail ---\n{}",
                    tail(&s.shoal_log(), 40)
                );
                violations.push(why);
                // Give the next round a settled start where possible.
                let _ = converge(&s, &ns, desired).await;
            }
        }
    }
    took.sort();
    let p50 = took.get(took.len() / 2).copied().unwrap_or_default();
    let max = took.last().copied().unwrap_or_default();
    eprintln!(
        "CHAOS RESULT: {rounds} SIGKILLs, {} violations; recovery p50 {p50:?}, max {max:?} \
         (seed {seed})",
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "violations:\n{}",
        violations.join("\n")
    );
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
