//! End to end on one server: real Docker Engine, real HAProxy, real `shoal serve`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::docker::{self, container_ids};
use common::{wait_for, wait_for_async, Haproxy, Opts, Stack, READY, TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_runs_min_replicas_behind_haproxy() {
    let s = Stack::serving("t-deploy", Opts::replicas(2, 3));

    let body = s
        .http
        .get(s.frontend_url("/"))
        .send()
        .await
        .expect("GET through HAProxy")
        .text()
        .await
        .unwrap();
    assert_eq!(body, "Ollama is running");
    let tags = s
        .http
        .get(s.frontend_url("/api/tags"))
        .send()
        .await
        .unwrap();
    assert_eq!(tags.status(), 200);

    let stats = s.stats().await;
    let listed: BTreeSet<String> = stats["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed.len(), 2, "{stats}");
    let up: BTreeSet<String> = s.up_servers().into_iter().collect();
    assert_eq!(
        listed, up,
        "stats lists exactly the replicas HAProxy serves"
    );
    assert_eq!(stats["desired"], 2);

    // Deploy with an unchanged spec replaces nothing and keeps the count.
    let (code, body) = s.act("deploy").await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["to_replace"], 0, "{body}");
    assert_eq!(body["phase"], "done", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_up_adds_a_serving_replica_and_stops_at_max() {
    let s = Stack::serving("t-scaleup", Opts::replicas(1, 2));

    let (code, body) = s.act("scale/up").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["desired"], 2);
    s.wait_ready(2, READY);

    // Both replicas answer through HAProxy.
    let seen = s.wait_reached_by(2, 10).await;
    assert_eq!(seen.len(), 2);

    let before = s.running();
    let (code, body) = s.act("scale/up").await;
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("max_replicas"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.running(), before, "nothing changes at the bound");
    let svc = s.stats().await;
    assert_eq!(svc["desired"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_under_steady_load_fails_no_request() {
    let s = Stack::serving("t-scaledown", Opts::replicas(1, 3));
    for _ in 0..2 {
        let (code, _) = s.act("scale/up").await;
        assert_eq!(code, 200);
    }
    s.wait_ready(3, READY);

    // Steady clients through HAProxy, each request doing a little work.
    let load = s
        .load("/api/generate", Some(r#"{"work": 20}"#))
        .clients(4)
        .start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..2 {
        let (code, body) = s.act("scale/down").await;
        assert_eq!(code, 200, "{body}");
    }
    s.wait_ready(1, READY);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = load.finish().await;
    let ok = report.ok();
    assert!(ok > 50, "the load ran ({ok} requests)");
    assert_eq!(
        report.failed(),
        0,
        "requests failed during scale-down: {}",
        report.first_errors(5)
    );

    // At min_replicas, scale down is refused.
    let (code, _) = s.act("scale/down").await;
    assert_eq!(code, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replica_leaves_haproxy_and_is_replaced() {
    let s = Stack::serving("t-kill", Opts::replicas(2, 3));
    let before = s.running();
    let victim = before[0].clone();
    let victim_name = docker::inspect(docker::docker(), &victim, "{{.Name}}")
        .trim_start_matches('/')
        .to_owned();
    let deaths_before = deaths_seen(&s.metrics().await);
    docker::kill(&victim);

    wait_for(
        "killed replica out of HAProxy",
        Duration::from_secs(20),
        || (!s.servers().iter().any(|r| r.name == victim_name)).then_some(()),
    );
    // The death came through the server's event stream (the counter counts only this
    // service's containers), not only through the next listing.
    let deaths_after = deaths_seen(&s.metrics().await);
    assert!(
        deaths_after > deaths_before,
        "no die event counted: {deaths_before} before, {deaths_after} after"
    );
    s.wait_ready(2, READY);
    let after = s.running();
    assert!(
        !after.contains(&victim),
        "the killed container is not running again"
    );
    assert_eq!(after.len(), 2);
    // No duplicate: all containers (any state) are the two running ones.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(container_ids(&s.service, true), s.running());
    let events = s.get(&format!("/services/{}/events", s.service)).await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "replica_replaced"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_shoal_adopts_running_replicas() {
    let mut s = Stack::serving("t-adopt", Opts::replicas(1, 3));
    let (code, _) = s.act("scale/up").await;
    assert_eq!(code, 200);
    s.wait_ready(2, READY);
    let before = s.running();

    s.kill_shoal();
    s.start_shoal();
    // Give the new process several passes to do something wrong.
    tokio::time::sleep(Duration::from_secs(5)).await;
    s.wait_ready(2, READY);
    assert_eq!(
        s.running(),
        before,
        "same containers: none lost, none added"
    );
    let stats = s.stats().await;
    assert_eq!(stats["desired"], 2, "desired comes back from what runs");
    assert_eq!(stats["replicas"]["ready"], 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_without_token_and_for_unknown_services() {
    let s = Stack::serving("t-auth", Opts::default());
    let url = s.url(&format!("/services/{}/scale/up", s.service));
    let r = s.http.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s.http.post(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].is_string());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.running().len(), 1, "nothing changed");

    let (code, body) = s.post("/services/nope/scale/up").await;
    assert_eq!(code, 404, "{body}");
    let r = s
        .http
        .get(s.url("/services/nope/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Bad query parameters are a JSON 400; the Bearer scheme is case-insensitive.
    let r = s
        .http
        .get(s.url(&format!("/services/{}/events?limit=abc", s.service)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    let r = s
        .http
        .post(s.url(&format!("/services/{}/deploy", s.service)))
        .header("Authorization", format!("bearer {}", TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Root, metrics and OpenAPI answer.
    assert_eq!(s.get("/").await["status"], "running");
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(&format!(
            "shoal_desired_replicas{{service=\"{}\"}} 1",
            s.service
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("shoal_server_up{server=\"local\"} 1"),
        "{metrics}"
    );
    let doc = s.get("/openapi.json").await;
    assert!(doc["paths"]["/services/{name}/scale/up"]["post"].is_object());

    // A bad config on reload is refused and the running state stays.
    let good = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        good.replace("min_replicas: 1", "min_replicas: 9"),
    )
    .unwrap();
    let (code, body) = s.post("/config/reload").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("greater than max_replicas"),
        "{body}"
    );
    assert_eq!(s.running().len(), 1);
    std::fs::write(&s.config, good).unwrap();
    let (code, body) = s.post("/config/reload").await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rolls_a_changed_spec_one_at_a_time_without_failing_requests() {
    let s = Stack::serving("t-rollout", Opts::replicas(2, 3));
    let before = s.running();

    // Change the spec (an environment variable) and reload: the reload rolls it out
    // through the same path as deploy.
    let yaml = std::fs::read_to_string(&s.config).unwrap();
    let changed = yaml.replace(
        "    container_port: 11434\n",
        "    container_port: 11434\n    environment:\n      - ROLLOUT=2\n",
    );
    assert_ne!(yaml, changed);
    let load = s
        .load("/api/tags", None)
        .clients(3)
        .pause(Duration::from_millis(10))
        .start();
    std::fs::write(&s.config, changed).unwrap();
    let (code, body) = s.post("/config/reload").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["changes"][0]
            .as_str()
            .unwrap()
            .contains("rolling it out"),
        "{body}"
    );
    // A deploy meanwhile is refused: one update at a time.
    let (code, body) = s.act("deploy").await;
    assert_eq!(code, 409, "{body}");

    let mut most = 0;
    let mut fewest_up = usize::MAX;
    let after = wait_for("both replicas replaced", Duration::from_secs(90), || {
        let now = s.running();
        most = most.max(now.len());
        fewest_up = fewest_up.min(s.up_servers().len());
        let fresh = now.len() == 2 && now.iter().all(|id| !before.contains(id));
        (fresh && s.up_servers().len() == 2).then_some(now)
    });
    let report = load.finish().await;
    let ok = report.ok();
    assert!(ok > 20, "the load ran ({ok})");
    assert_eq!(
        report.failed(),
        0,
        "requests failed during the rollout: {}",
        report.first_errors(5)
    );
    for id in &after {
        let env = docker::inspect(docker::docker(), id, "{{json .Config.Env}}");
        assert!(env.contains("ROLLOUT=2"), "{env}");
    }
    let events = s.events().await;
    assert!(
        events.iter().any(|e| e["reason"]
            .as_str()
            .unwrap()
            .contains("rollout finished: 2 replica(s) replaced")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_removed_by_reload_drains_to_zero_and_can_come_back() {
    let s = Stack::serving("t-remove", Opts::replicas(2, 3));
    let yaml = std::fs::read_to_string(&s.config).unwrap();
    // Keep the file valid: `services: {}` replaces the only service.
    let start = yaml.find("services:\n").unwrap();
    let end = yaml.find("autoscaler:\n").unwrap();
    let without = format!("{}services: {{}}\n{}", &yaml[..start], &yaml[end..]);
    std::fs::write(&s.config, &without).unwrap();
    let (code, body) = s.post("/config/reload").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["changes"][0]
            .as_str()
            .unwrap()
            .contains("draining to zero"),
        "{body}"
    );
    wait_for(
        "all replicas drained and removed",
        Duration::from_secs(60),
        || container_ids(&s.service, true).is_empty(),
    );
    assert!(s.up_servers().is_empty(), "out of HAProxy too");
    let r = s
        .http
        .get(s.url(&format!("/services/{}/stats", s.service)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    std::fs::write(&s.config, &yaml).unwrap();
    let (code, body) = s.post("/config/reload").await;
    assert_eq!(code, 200, "{body}");
    s.wait_ready(2, READY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_failing_its_health_check_is_replaced() {
    // The workload answers /api/tags with 503 after 4 s: shoal's probe fails three times in a
    // row and the replica is replaced (and its replacement, in turn, later).
    let opts = Opts {
        min: 1,
        max: 2,
        extra: "    environment:\n      - SHOAL_WORKLOAD_UNHEALTHY_AFTER_SECS=4\n".into(),
        ..Opts::default()
    };
    let mut s = Stack::new("t-unhealthy", opts);
    s.start_shoal();
    s.wait_ready(1, READY);
    let first = s.running();
    let replaced = wait_for_async(
        "a health-check replacement",
        Duration::from_secs(40),
        async || {
            s.events().await.into_iter().find(|e| {
                e["action"] == "replica_replaced"
                    && e["reason"]
                        .as_str()
                        .unwrap_or("")
                        .contains("failed health checks")
            })
        },
    )
    .await;
    assert!(
        replaced["reason"].as_str().unwrap().contains("503"),
        "{replaced}"
    );
    wait_for("the replacement running", Duration::from_secs(20), || {
        let now = s.running();
        (now.len() == 1 && now != first).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_restarted_without_servers_is_repopulated() {
    let mut s = Stack::serving("t-hapheal", Opts::replicas(2, 3));
    // Restart HAProxy from the bare rendered cfg (no servers), as after a crash with a lost cfg.
    let cfg = s.dir.path().join("bare.cfg");
    s.render_haproxy_cfg(&cfg);
    let runtime_api = s.haproxy().runtime_api.clone();
    s.haproxy.take();
    s.haproxy = Some(Haproxy::start(&cfg, &runtime_api));
    assert!(s.up_servers().is_empty(), "HAProxy starts empty");
    wait_for(
        "shoal re-adds both replicas",
        Duration::from_secs(30),
        || s.up_servers().len() == 2,
    );
    let body = s
        .http
        .get(s.frontend_url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "Ollama is running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_pulled_in_the_background_and_a_failed_pull_is_journaled() {
    // A registry on loopback that does not exist: the pull fails at once, and no traffic
    // leaves the machine.
    let opts = Opts {
        image: "127.0.0.1:1/shoal-missing:latest".into(),
        ..Opts::default()
    };
    let mut s = Stack::new("t-pull", opts);
    s.start_shoal();
    let failed = wait_for_async(
        "a journaled pull failure",
        Duration::from_secs(30),
        async || {
            s.events().await.into_iter().find(|e| {
                e["action"] == "pull" && e["reason"].as_str().unwrap_or("").contains("failed")
            })
        },
    )
    .await;
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("retrying in 60s"),
        "{failed}"
    );
    // The loop and the API stay responsive, nothing runs, nothing is retried at once.
    let t = std::time::Instant::now();
    let stats = s.stats().await;
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(stats["replicas"]["total"], 0, "{stats}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pulls = s
        .events()
        .await
        .into_iter()
        .filter(|e| e["action"] == "pull")
        .count();
    assert_eq!(
        pulls, 2,
        "one attempt (started + failed) within the retry interval"
    );
    assert!(s.running().is_empty());
}

/// `shoal_docker_events_total{server="local",action="die"}`, 0 while absent.
fn deaths_seen(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("shoal_docker_events_total{server=\"local\",action=\"die\"} "))
        .map_or(0, |v| v.trim().parse().expect("a counter value"))
}
