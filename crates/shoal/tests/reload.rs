//! `shoal serve` reloads its config on SIGHUP as on `POST /config/reload`: services added and
//! removed, what changed journaled, an invalid file changing nothing. Runs on a fleet that
//! cannot be reached (no Docker or HAProxy needed: the config and API are what is tested).

mod common;

use std::time::Duration;

use common::serve::{unreachable_fleet, Serve};
use common::{free_port, wait_for};

/// GET with curl (the test is synchronous), parsed as JSON.
fn get(url: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-sf", url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "GET {url} failed");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn services(api: u16) -> Vec<String> {
    let body = get(&format!("http://127.0.0.1:{api}/services"));
    body["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn events(api: u16, service: &str) -> Vec<serde_json::Value> {
    let body = get(&format!("http://127.0.0.1:{api}/services/{service}/events"));
    body["events"].as_array().cloned().unwrap_or_default()
}

#[test]
fn sighup_reloads_the_config_and_a_broken_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (config, api) = unreachable_fleet(dir.path());
    let original = std::fs::read_to_string(&config).unwrap();
    let mut serve = Serve::start(&config, api, &dir.path().join("shoal.log"));
    assert_eq!(services(api), ["web"]);

    // A service added, then SIGHUP.
    let with_api = original.replace(
        "services:\n",
        &format!(
            "services:\n  api:\n    image: shoal-workload:latest\n    port: {}\n",
            free_port()
        ),
    );
    std::fs::write(&config, &with_api).unwrap();
    serve.signal("HUP");
    wait_for("the added service", Duration::from_secs(10), || {
        (services(api) == ["api", "web"]).then_some(())
    });
    let added = events(api, "api");
    assert!(
        added.iter().any(|e| e["action"] == "config_reloaded"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("service api added")),
        "{added:?}"
    );

    // A broken file: nothing changes, the error names the place, shoal keeps running.
    std::fs::write(
        &config,
        with_api.replace("max_replicas: 3", "max_replicas: ["),
    )
    .unwrap();
    serve.signal("HUP");
    wait_for(
        "the reload error in the log",
        Duration::from_secs(10),
        || {
            serve
                .log()
                .contains("SIGHUP: config not reloaded")
                .then_some(())
        },
    );
    let log = serve.log();
    let after = &log[log.find("SIGHUP: config not reloaded").unwrap()..];
    let broken_line = with_api
        .lines()
        .position(|l| l.contains("max_replicas: 3"))
        .unwrap()
        + 1;
    let place = format!("{}:{broken_line}:", config.display());
    assert!(after.contains(&place), "no {place}<column> in:\n{after}");
    assert!(serve.is_running());
    assert_eq!(services(api), ["api", "web"]);

    // The service removed again.
    std::fs::write(&config, &original).unwrap();
    serve.signal("HUP");
    wait_for("the removed service", Duration::from_secs(10), || {
        (services(api) == ["web"]).then_some(())
    });
    assert!(serve.is_running());
}
