//! GPU replicas on the real Docker Engine of this machine, which has no NVIDIA runtime: the
//! device request is what Docker stores, starting one fails with an error naming the server
//! and the missing runtime, and `shoal serve` backs off instead of retrying in a loop.

mod common;

use std::time::Duration;

use common::docker::{container_ids, docker, inspect, remove_service_containers, require_image};
use common::{wait_for_async, Opts, Stack, IMAGE};
use shoal::config::Config;
use shoal::engine::{ContainerSpec, Engine, EngineError};
use shoal::ssh::SshSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_replica_carries_its_device_request_and_fails_clearly_without_a_runtime() {
    require_image();
    let service = format!("t-gpu-{}", std::process::id() % 100000);
    remove_service_containers(&service);
    let yaml = format!(
        "servers:\n  - host: 127.0.0.1\n    name: local\n    docker_host: unix:///var/run/docker.sock\n    gpus: 2\nservices:\n  {service}:\n    image: {IMAGE}\n    port: 18080\n    container_port: 11434\n    gpus: 1\n"
    );
    let cfg = Config::parse(&yaml, "gpu.yaml").expect("config");
    let dir = tempfile::tempdir().unwrap();
    let settings = SshSettings::new(&cfg, dir.path().to_path_buf());
    let engine = Engine::connect(&cfg.servers[0], &settings, Duration::from_secs(10))
        .await
        .expect("connect");
    let mut spec = ContainerSpec::from_service(&cfg.services[&service]);
    spec.gpu_devices = vec!["1".to_owned()];

    // Created: Docker holds the device request placement chose (device 1 of 2).
    let name = format!("shoal-{service}-created");
    let id = engine.create(&service, &name, &spec).await.expect("create");
    let requests: serde_json::Value = serde_json::from_str(&inspect(
        docker(),
        &id,
        "{{json .HostConfig.DeviceRequests}}",
    ))
    .expect("DeviceRequests JSON");
    assert_eq!(requests[0]["Driver"], "nvidia", "{requests}");
    assert_eq!(
        requests[0]["DeviceIDs"],
        serde_json::json!(["1"]),
        "{requests}"
    );
    assert_eq!(
        requests[0]["Capabilities"],
        serde_json::json!([["gpu"]]),
        "{requests}"
    );
    assert_eq!(
        inspect(docker(), &id, "{{index .Config.Labels \"io.shoal.gpus\"}}"),
        "1"
    );

    // Started: this machine has no NVIDIA runtime; the error says so and names the server.
    let err = engine
        .start(&id, &spec)
        .await
        .expect_err("no GPU runtime here");
    assert!(matches!(err, EngineError::NoGpuRuntime { .. }), "{err:?}");
    let msg = err.to_string();
    for part in [
        "server local",
        "no GPU runtime",
        "\"nvidia\"",
        "NVIDIA Container Toolkit",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    engine.remove(&id).await.expect("remove");

    // The path serve takes creates, fails to start, and leaves nothing behind.
    let err = engine
        .create_replica(&service, &format!("shoal-{service}-full"), &spec)
        .await
        .expect_err("no GPU runtime here");
    assert!(matches!(err, EngineError::NoGpuRuntime { .. }), "{err:?}");
    assert!(container_ids(&service, true).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_journals_the_missing_runtime_and_backs_off_the_server() {
    let opts = Opts {
        local: false,
        servers_extra: "  - host: 127.0.0.1\n    name: local\n    docker_host: unix:///var/run/docker.sock\n    gpus: 1\n  - host: 127.0.0.1\n    name: nogpu\n    docker_host: unix:///var/run/docker.sock\n".into(),
        extra: "    gpus: 1\n".into(),
        ..Opts::replicas(1, 1)
    };
    let mut s = Stack::new("t-gpuserve", opts);
    s.start_shoal();

    // The one start on `local` fails with the runtime error; `nogpu` is never tried.
    let failed = |events: &[serde_json::Value]| {
        events
            .iter()
            .filter(|e| {
                e["action"] == "error"
                    && e["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("starting a GPU replica on local failed"))
            })
            .count()
    };
    let events = wait_for_async(
        "the GPU runtime error",
        Duration::from_secs(20),
        async || {
            let ev = s.events().await;
            (failed(&ev) > 0).then_some(ev)
        },
    )
    .await;
    let first = events
        .iter()
        .find(|e| e["action"] == "error")
        .and_then(|e| e["reason"].as_str())
        .unwrap()
        .to_owned();
    assert!(first.contains("no GPU runtime"), "{first}");
    assert!(first.contains("for the next 30s"), "{first}");

    // Then the planner says why nothing can be placed, per server, and waits.
    let short = wait_for_async(
        "a placement_short event",
        Duration::from_secs(10),
        async || {
            s.events()
                .await
                .into_iter()
                .find(|e| e["action"] == "placement_short")
        },
    )
    .await;
    let why = short["reason"].as_str().unwrap();
    assert!(why.contains("nogpu has no GPUs"), "{why}");
    assert!(
        why.contains("local its GPU runtime failed; next try in"),
        "{why}"
    );

    // Several seconds of 100-250 ms passes later: still one attempt, nothing running.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let events = s.events().await;
    assert_eq!(failed(&events), 1, "retried in a loop: {events:#?}");
    assert!(
        !events.iter().any(|e| e["action"] == "replica_started"),
        "{events:#?}"
    );
    assert!(container_ids(&s.service, true).is_empty());
    let stats = s.stats().await;
    assert!(
        stats["startup"]["gpu_backoff"]["local"]
            .as_str()
            .is_some_and(|e| e.contains("no GPU runtime")),
        "{stats}"
    );
    assert!(
        stats["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("needing 1 GPU(s)")),
        "{stats}"
    );
    // The server itself is fine: up, not failed.
    assert_eq!(s.server("local").await["up"], true);
}

#[test]
fn shoal_check_shows_each_servers_gpus_and_the_missing_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "servers:\n  - host: 127.0.0.1\n    name: gpubox\n    docker_host: unix:///var/run/docker.sock\n    gpus: 2\n  - host: 127.0.0.1\n    name: plain\n    docker_host: unix:///var/run/docker.sock\nservices:\n  web:\n    image: {IMAGE}\n    port: 18081\n    gpus: 1\n"
        ),
    )
    .unwrap();
    let out = common::shoal()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("shoal check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("GPUS"), "{text}");
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    // This machine's Docker lists no nvidia runtime.
    assert!(row("gpubox").contains("2 (0,1), no runtime"), "{text}");
    assert!(!row("plain").contains("runtime"), "{text}");
    assert!(
        text.contains(
            "gpubox: warning: gpus: 2 GPU(s) declared, but Docker there lists no nvidia runtime"
        ),
        "{text}"
    );
}
