//! Warm-up before traffic on real Docker and real HAProxy: the workload's first
//! `/api/generate` takes 3 s (a model load, `SHOAL_WORKLOAD_MODEL_LOAD_MS`); with a
//! `warmup` request configured, no client request ever pays it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Opts, Stack, READY};

const MODEL_LOAD_MS: u64 = 3000;

fn warm_opts() -> Opts {
    Opts {
        extra: format!(
            "    environment:\n      - SHOAL_WORKLOAD_MODEL_LOAD_MS={MODEL_LOAD_MS}\n    warmup:\n      path: /api/generate\n      body: '{{\"work\": 0}}'\n      timeout: 20\n"
        ),
        ..Opts::replicas(1, 2)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_takes_no_request_before_its_warm_up_finished() {
    let s = Stack::serving("t-warmup", warm_opts());
    let first: BTreeSet<String> = s.running().into_iter().collect();

    // Steady load through HAProxy across the scale-up.
    let load = s
        .load("/api/generate", Some(r#"{"work": 5}"#))
        .clients(4)
        .pause(Duration::from_millis(20))
        .start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let (code, body) = s.act("scale/up").await;
    assert_eq!(code, 200, "{body}");
    s.wait_ready(2, READY);
    let ready_after = t0.elapsed();
    // Traffic on both for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.finish().await;

    assert_eq!(report.failed(), 0, "{}", report.first_errors(5));
    assert!(
        report
            .samples
            .iter()
            .any(|x| x.outcome.as_ref().is_ok_and(|b| b.contains(r#""cold":"#))),
        "the workload image predates SHOAL_WORKLOAD_MODEL_LOAD_MS: rebuild it with scripts/build-workload-image.sh"
    );
    // A request that reached the new replica cold would have waited for the 3 s load.
    let slowest = report.latency(100);
    assert!(
        slowest < Duration::from_millis(MODEL_LOAD_MS / 2),
        "a client request waited for the model load: {}",
        report.summary()
    );
    assert!(
        report.samples.iter().all(|x| x
            .outcome
            .as_ref()
            .is_ok_and(|b| b.contains(r#""cold":false"#))),
        "a client request loaded the model"
    );
    // The new replica did serve: its hostname (its container id's first 12 characters).
    let new = s
        .running()
        .into_iter()
        .find(|id| !first.contains(id))
        .expect("the new replica");
    let served_new = report
        .samples
        .iter()
        .filter(|x| x.outcome.as_ref().is_ok_and(|b| b.contains(&new[..12])))
        .count();
    assert!(
        served_new > 0,
        "the new replica took no traffic: {}",
        report.summary()
    );
    // It entered HAProxy only after its warm-up, which took the load time.
    assert!(
        ready_after >= Duration::from_millis(MODEL_LOAD_MS),
        "{ready_after:?}"
    );
    let events = s.events().await;
    let warmed = events
        .iter()
        .filter(|e| e["action"] == "replica_warmed_up")
        .count();
    assert_eq!(warmed, 2, "one warm-up per replica: {events:#?}");
    let stats = s.stats().await;
    let last = stats["startup"]["last_warmup_seconds"].as_f64().unwrap();
    assert!(last >= MODEL_LOAD_MS as f64 / 1000.0, "{stats}");
    assert!(
        stats["startup"]["start_delay_seconds"].as_f64().unwrap() >= last,
        "{stats}"
    );
}
