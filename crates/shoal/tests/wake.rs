//! Scale to zero and wake on request, on real Docker, real HAProxy and a real `shoal serve`:
//! HAProxy's backup server of the sleeping service is shoal's activator.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, wait_for, wait_for_async, Opts, Stack};
use serde_json::Value;

fn sleeping(extra: &str) -> Opts {
    Opts {
        extra: format!("    wake_on_request: true\n{extra}"),
        top_extra: format!("activator:\n  bind: 127.0.0.1:{}\n", free_port()),
        ..Opts::replicas(1, 2)
    }
}

fn count(events: &[Value], action: &str) -> usize {
    events.iter().filter(|e| e["action"] == action).count()
}

/// Starts shoal and waits until it adopted the service at zero replicas.
async fn at_zero(s: &mut Stack) {
    s.start_shoal();
    wait_for_async(
        "the service adopted at zero",
        Duration::from_secs(20),
        async || {
            let st = s.stats().await;
            (st["desired"] == 0 && st["startup"]["wake_on_request"] == true).then_some(())
        },
    )
    .await;
    assert!(s.running().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_requests_at_zero_share_one_wake_up_and_idle_goes_back_to_zero() {
    let mut s = Stack::new(
        "t-wake",
        sleeping("    idle_to_zero_after: 3\n    activation_timeout: 30\n"),
    );
    at_zero(&mut s).await;

    // 20 at once through HAProxy, with no replica anywhere.
    let t0 = Instant::now();
    let answers = futures_util::future::join_all((0..20).map(|i| {
        let (http, url) = (s.http.clone(), s.frontend_url("/api/generate"));
        async move {
            let r = http
                .post(url)
                .body(format!(r#"{{"work": 1, "prompt": "{i}"}}"#))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            Ok::<_, String>((status, r.text().await.unwrap_or_default()))
        }
    }))
    .await;
    let took = t0.elapsed();
    for a in &answers {
        let (status, body) = a.as_ref().expect("request");
        assert_eq!(*status, 200, "{body}");
        assert!(body.contains(r#""done":true"#), "{body}");
    }
    let events = s.events().await;
    assert_eq!(count(&events, "replica_started"), 1, "{events:#?}");
    assert_eq!(s.running().len(), 1);
    // One wake-up: begun once, ended once.
    let wakes: Vec<&str> = events
        .iter()
        .filter(|e| e["action"] == "wake")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(wakes.len(), 2, "{wakes:?}");
    assert!(
        wakes.iter().any(|r| r.contains("waking (desired 0 -> 1)")),
        "{wakes:?}"
    );
    assert!(wakes.iter().any(|r| r.contains("woken")), "{wakes:?}");
    eprintln!("20 requests at zero answered in {took:?}");

    // Warm now: a request goes straight to the replica (HAProxy prefers it to the backup).
    let r = s
        .http
        .get(s.frontend_url("/whoami"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);

    // Idle for idle_to_zero_after (3 s): back to zero, journaled.
    wait_for("the service back at zero", Duration::from_secs(20), || {
        s.running().is_empty()
    });
    let events = s.events().await;
    let sleep = events
        .iter()
        .find(|e| e["action"] == "sleep")
        .expect("a sleep event");
    assert!(
        sleep["reason"].as_str().unwrap().contains("idle after 3s"),
        "{sleep}"
    );
    let st = s.stats().await;
    assert_eq!(st["desired"], 0, "{st}");
    assert_eq!(st["startup"]["asleep"], true, "{st}");
    assert_eq!(st["startup"]["wakes"], 1, "{st}");
    assert_eq!(st["startup"]["sleeps"], 1, "{st}");

    // A restarted serve finds it asleep: adopted at the saved 0, and the autoscaler (every
    // 5 s here) does not raise it to min_replicas.
    s.kill_shoal();
    s.start_shoal();
    let adopted = wait_for_async("adopted again", Duration::from_secs(20), async || {
        let ev = s.events().await;
        (count(&ev, "adopted") == 2).then(|| {
            let newest = ev.iter().find(|e| e["action"] == "adopted");
            newest
                .and_then(|e| e["reason"].as_str())
                .unwrap_or("")
                .to_owned()
        })
    })
    .await;
    assert!(adopted.contains("saved desired 0"), "{adopted}");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(s.running().is_empty());
    assert_eq!(s.stats().await["desired"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_past_its_timeout_answers_503_and_leaves_nothing_started() {
    // The replica never passes its health check: the wake-up cannot finish.
    let mut s = Stack::new(
        "t-wakefail",
        sleeping(
            "    idle_to_zero_after: 60\n    activation_timeout: 3\n    environment:\n      - SHOAL_WORKLOAD_UNHEALTHY_AFTER_SECS=0\n",
        ),
    );
    at_zero(&mut s).await;

    let t0 = Instant::now();
    let answers = futures_util::future::join_all((0..3).map(|_| {
        let (http, url) = (s.http.clone(), s.frontend_url("/api/tags"));
        async move { http.get(url).send().await.expect("GET") }
    }))
    .await;
    let took = t0.elapsed();
    for r in &answers {
        assert_eq!(r.status(), 503);
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("3")
        );
    }
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // The replica that was on its way is removed; the service sleeps again.
    wait_for("no container left", Duration::from_secs(20), || {
        common::docker::container_ids(&s.service, true).is_empty()
    });
    let events = s.events().await;
    assert_eq!(count(&events, "replica_started"), 1, "{events:#?}");
    let slept = events
        .iter()
        .find(|e| e["action"] == "sleep")
        .and_then(|e| e["reason"].as_str())
        .expect("a sleep event");
    assert!(slept.contains("wake-up timed out"), "{slept}");
    let st = s.stats().await;
    assert_eq!(st["desired"], 0, "{st}");
    assert_eq!(st["startup"]["asleep"], true, "{st}");
    // Nothing starts it again behind the requests' back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(common::docker::container_ids(&s.service, true).is_empty());
}
