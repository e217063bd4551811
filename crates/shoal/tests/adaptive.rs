//! The adaptive policy on the real Docker Engine and a real HAProxy: it learns the capacity
//! per replica of a CPU-costly workload from HAProxy's request counter and the Docker stats
//! API, sizes a load step in one decision, and scales back in one after the load.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Opts, Stack, Wait};
use serde_json::Value;

/// Each request spins for 5 ms; with `cpus: 0.1` (10 ms of CPU per 100 ms) a replica serves
/// about 20 req/s at 100% of its limit, and runs at about `rate x 5%` below that. The quota
/// also bounds what the test costs the machine: 0.1 core per replica.
const WORK_MS: u64 = 5;

/// Open-loop load: `rate` requests per second, evenly spaced, each sent whether or not the
/// earlier ones were answered (demand does not wait for capacity, as real clients do not).
struct OpenLoad {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl OpenLoad {
    fn start(s: &Stack, rate: f64) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let url = s.frontend_url("/api/generate");
        let http = s.http.clone();
        let body = format!("{{\"work\": {WORK_MS}}}");
        let (ok2, failed2) = (ok.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                let (http, url, body) = (http.clone(), url.clone(), body.clone());
                let (ok, failed) = (ok2.clone(), failed2.clone());
                tokio::spawn(async move {
                    let r = http.post(url).body(body).send().await;
                    match r {
                        Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                });
            }
        });
        Self {
            stop,
            task,
            ok,
            failed,
        }
    }

    /// Stops sending; returns (answered, failed).
    async fn finish(self) -> (u64, u64) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        // Let the requests in flight (100 ms each) finish.
        tokio::time::sleep(Duration::from_millis(500)).await;
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

fn scale_events(events: &[Value], action: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["action"] == action && e["details"]["policy"] == "adaptive")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_sizes_a_load_step_in_one_decision_and_back() {
    let mut s = Stack::serving(
        "t-adaptive",
        Opts {
            min: 1,
            max: 5,
            extra: "    cpus: 0.1\n    scale_policy: adaptive\n    \
                    adaptive_target_utilization: 80\n    scale_down_stabilization: 8\n"
                .to_owned(),
            check_interval: 2,
            cooldown: 2,
            ..Opts::default()
        },
    );

    // 1. Learn: 8 req/s keep the one replica at about 40%.
    let learn = OpenLoad::start(&s, 8.0);
    let learned = Wait::new(
        "the adaptive policy to learn the capacity",
        Duration::from_secs(40),
    )
    .every(Duration::from_millis(500))
    .until_async(async || {
        let st = s.stats().await;
        st["autoscaler"]["learned"]["requests_per_second_at_full"].as_f64()
    })
    .await;
    // About 20 req/s per replica at 100% (10 ms of CPU per 100 ms / 5 ms); the CFS quota,
    // the machine's other work and Docker's 1 s CPU window make it approximate.
    assert!(
        (10.0..=40.0).contains(&learned),
        "learned {learned} req/s per replica"
    );
    let stats = s.stats().await;
    assert_eq!(stats["desired"], 1, "8 req/s fits one replica: {stats}");
    let text = common::shoal()
        .args(["--api", &s.url(""), "stats", &s.service])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("adaptive: learned"), "{text}");

    // 2. Step: 60 req/s, three times what one replica can serve. The CPU is pinned at
    // 100%, so target tracking could only double; the rate says how many are needed.
    learn.finish().await;
    let step = OpenLoad::start(&s, 60.0);
    let up = Wait::new("a scale-up for the step", Duration::from_secs(20))
        .every(Duration::from_millis(300))
        .until_async(async || scale_events(&s.events().await, "scale_up").pop())
        .await;
    let per = up["details"]["learned"]["requests_per_second_at_target"]
        .as_f64()
        .unwrap();
    let needed = (60.0 / per).ceil().min(5.0) as u64;
    assert!(
        needed >= 3,
        "the step needs several replicas ({per} req/s each)"
    );
    assert_eq!(up["desired_before"], 1, "{up}");
    // One decision to about the needed count (the measured rate is within a few percent of
    // 60 req/s, so one replica either way of the exact figure).
    let to = up["desired_after"].as_u64().unwrap();
    assert!(
        to.abs_diff(needed) <= 1 && to >= 3,
        "1 -> {to}, needed {needed}: {up}"
    );
    eprintln!(
        "learned {learned} req/s per replica at 100%; {}",
        up["reason"]
    );
    assert!(
        up["reason"].as_str().unwrap().contains("demand"),
        "sized from demand: {up}"
    );
    // Held while the load lasts: no second scale-up.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let ups = scale_events(&s.events().await, "scale_up");
    // The replicas it started were timed (creation to ready): what pre-warming uses.
    let started = s.stats().await["autoscaler"]["observed_start_seconds"].as_f64();
    eprintln!("observed start {started:?} s");
    assert!(
        started.is_some_and(|t| (0.0..=60.0).contains(&t)),
        "observed start {started:?}"
    );
    let (answered, failed) = step.finish().await;
    assert_eq!(ups.len(), 1, "one decision for the step: {ups:?}");
    assert!(answered > 100, "{answered} answered, {failed} failed");

    // 3. After the load: back to 1 once the 8 s window has passed (the last second of the
    // load, measured in part, may leave a step on the way, as with any windowed rate).
    Wait::new("a scale-down to min", Duration::from_secs(40))
        .every(Duration::from_millis(500))
        .until_async(async || {
            let d = s.stats().await["desired"].as_u64().unwrap();
            (d == 1).then_some(()).ok_or(format!("desired {d}"))
        })
        .await;
    let downs = scale_events(&s.events().await, "scale_down");
    for d in &downs {
        eprintln!("{}", d["reason"]);
    }
    assert!((1..=2).contains(&downs.len()), "{downs:?}");
    assert!(downs.iter().any(|e| e["desired_before"] == to), "{downs:?}");
    assert!(downs.iter().any(|e| e["desired_after"] == 1), "{downs:?}");

    // 4. What it learned survives a restart of shoal (the journal's policy_state).
    let before = s.stats().await["autoscaler"]["learned"].clone();
    assert!(before["observations"].as_u64().unwrap() >= 3, "{before}");
    s.kill_shoal();
    s.start_shoal();
    let after = s.stats().await["autoscaler"]["learned"].clone();
    // No load since the restart, so whatever it knows came from the journal. Saves are
    // throttled (when the estimate moves by more than 1%), so the last observation or two
    // may be missing.
    let (b, a) = (
        before["requests_per_second_at_full"].as_f64().unwrap(),
        after["requests_per_second_at_full"].as_f64(),
    );
    let a = a.unwrap_or_else(|| panic!("nothing learned after the restart: {after}"));
    assert!((a - b).abs() <= 0.02 * b, "{before} / {after}");
    assert!(after["observations"].as_u64().unwrap() >= 3, "{after}");
}
