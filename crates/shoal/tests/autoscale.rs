//! Autoscaling end to end: real load through real HAProxy to real containers, CPU from the
//! Docker stats API, the policy deciding, the journal explaining.

mod common;

use std::time::Duration;

use common::{Load, Opts, Stack, Wait, READY};
use serde_json::Value;

/// Clients that keep every replica's CPU busy: each request burns 200 ms of CPU.
fn start_load(s: &Stack, clients: usize) -> Load {
    s.load("/api/generate", Some(r#"{"work": 200}"#))
        .clients(clients)
        .start()
}

/// Waits (trying every 500 ms) until the service's desired count is `n`.
async fn wait_desired(s: &Stack, n: u64, what: &str, limit: Duration) {
    Wait::new(what, limit)
        .every(Duration::from_millis(500))
        .until_async(async || {
            let now = desired(&s.stats().await);
            (now == n).then_some(()).ok_or(format!("desired {now}"))
        })
        .await;
}

fn desired(stats: &Value) -> u64 {
    stats["desired"].as_u64().unwrap()
}

fn autoscale_opts(extra: &str) -> Opts {
    Opts {
        min: 1,
        max: 3,
        extra: format!(
            "    cpus: 0.25\n    scale_up_threshold: 50\n    scale_down_threshold: 15\n{extra}"
        ),
        check_interval: 2,
        cooldown: 3,
        ..Opts::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_scales_up_and_idle_scales_back_to_min() {
    let s = Stack::serving("t-autoscale", autoscale_opts(""));

    let load = start_load(&s, 6);
    wait_desired(
        &s,
        3,
        "load to drive the service to max_replicas",
        Duration::from_secs(60),
    )
    .await;
    s.wait_ready(3, READY);
    let served = load.finish().await.ok();
    assert!(served > 10, "the load ran ({served} requests)");

    // Every automatic step is journaled with the utilization that caused it.
    let ups: Vec<Value> = s
        .events()
        .await
        .into_iter()
        .filter(|e| e["action"] == "scale_up" && e["details"]["rule"] == "threshold")
        .collect();
    assert!(ups.len() >= 2, "{ups:?}");
    for e in &ups {
        let u = e["details"]["utilization"].as_f64().unwrap();
        assert!(
            u > 50.0,
            "scaled up at {u}% with an up threshold of 50%: {e}"
        );
        assert!(e["reason"].as_str().unwrap().contains("scale up"), "{e}");
    }

    // Idle: back to min_replicas, one step per cooldown.
    wait_desired(
        &s,
        1,
        "idle to return to min_replicas",
        Duration::from_secs(60),
    )
    .await;
    s.wait_ready(1, READY);
    let downs = s
        .events()
        .await
        .into_iter()
        .filter(|e| e["action"] == "scale_down" && e["details"]["rule"] == "threshold")
        .count();
    assert_eq!(downs, 2, "3 -> 2 -> 1");
    let metrics = s.metrics().await;
    for family in [
        "shoal_utilization_percent{service=",
        "shoal_memory_bytes{service=",
        "shoal_business_window_open{service=",
        "shoal_cooldown_remaining_seconds{service=",
    ] {
        assert!(metrics.contains(family), "{family} missing: {metrics}");
    }
    assert!(
        metrics.contains(&format!(
            "shoal_autoscaler_decisions_total{{service=\"{}\",direction=\"down\",reason=\"threshold\"}} 2",
            s.service
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "shoal_scale_actions_total{{service=\"{}\",direction=\"up\",trigger=\"autoscaler\"}} 2",
            s.service
        )),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_window_holds_off_hours_replicas_and_says_why() {
    // A window that opens two hours from now: closed for the whole test.
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let start = now
        .checked_add(jiff::SignedDuration::from_hours(2))
        .unwrap();
    let end = now
        .checked_add(jiff::SignedDuration::from_hours(3))
        .unwrap();
    let mut opts = autoscale_opts("    business_hours_only: true\n    off_hours_replicas: 2\n");
    opts.autoscaler_extra = format!(
        "  business_hours:\n    start: \"{:02}:{:02}\"\n    end: \"{:02}:{:02}\"\n    timezone: UTC\n",
        start.hour(),
        start.minute(),
        end.hour(),
        end.minute()
    );
    let mut s = Stack::new("t-window", opts);
    s.start_shoal();
    s.wait_ready(2, READY);
    let stats = s.stats().await;
    assert_eq!(stats["desired"], 2);
    assert_eq!(stats["business_hours"]["open"], false, "{stats}");
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(&format!(
            "shoal_business_window_open{{service=\"{}\"}} 0",
            s.service
        )),
        "{metrics}"
    );
    assert!(
        stats["business_hours"]["next_change"].is_string(),
        "{stats}"
    );

    let why = s
        .events()
        .await
        .into_iter()
        .find(|e| e["details"]["rule"] == "window_closed")
        .expect("a journaled window decision");
    assert!(
        why["reason"]
            .as_str()
            .unwrap()
            .contains("outside business hours"),
        "{why}"
    );
    assert_eq!(why["desired_after"], 2);

    // Manual scaling outside the window is refused, and nothing changes.
    let (code, body) = s.act("scale/up").await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("business hours"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.running().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_journals_decisions_and_changes_nothing() {
    let s = Stack::serving("t-dryrun", autoscale_opts("    dry_run: true\n"));
    let before = s.running();
    let load = start_load(&s, 4);
    let held = Wait::new("a dry-run decision to scale up", Duration::from_secs(30))
        .every(Duration::from_millis(500))
        .until_async(async || {
            s.events()
                .await
                .into_iter()
                .find(|e| e["details"]["held"] == "dry_run" && e["details"]["direction"] == "up")
        })
        .await;
    load.finish().await;
    assert_eq!(held["action"], "scale_held");
    assert!(
        held["reason"]
            .as_str()
            .unwrap()
            .contains("dry run: would set 1 -> 2"),
        "{held}"
    );
    assert_eq!(s.running(), before, "dry run changes nothing");
    let stats = s.stats().await;
    assert_eq!(stats["desired"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_and_cooldown_survive_a_restart() {
    let opts = Opts {
        cooldown: 600,
        ..Opts::default()
    };
    let mut s = Stack::serving("t-persist", opts);
    let (code, _) = s.act("scale/up").await;
    assert_eq!(code, 200);
    s.wait_ready(2, READY);
    s.kill_shoal();
    s.start_shoal();
    let services = s.get("/services").await;
    let svc = &services["services"][0];
    let left = svc["cooldown_remaining_seconds"].as_u64().unwrap();
    assert!(
        left > 500 && left <= 600,
        "cooldown survived the restart: {left}s left"
    );
    let events = s.events().await;
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "scale_up" && e["reason"].as_str().unwrap().contains("manual")),
        "journal survived the restart: {events:?}"
    );
}
