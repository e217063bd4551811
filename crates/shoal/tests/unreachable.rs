//! Servers that cannot be reached: reported with a reason, never a crash; scale-up is 503.

mod common;

use std::time::Duration;

use common::serve::{unreachable_fleet, Serve};
use common::TOKEN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_servers_are_reported_and_scale_up_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let (config, api) = unreachable_fleet(dir.path());
    let mut serve = Serve::start(&config, api, &dir.path().join("shoal.log"));
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{api}");

    let servers: serde_json::Value = http
        .get(format!("{base}/servers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = servers["servers"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for s in list {
        assert_eq!(s["status"], "down", "{s}");
    }
    let ssh = list.iter().find(|s| s["name"] == "viassh").unwrap();
    assert!(
        ssh["reason"]
            .as_str()
            .unwrap()
            .contains("ssh_key /root/.ssh/id_rsa cannot be used"),
        "{ssh}"
    );
    let gone = list.iter().find(|s| s["name"] == "gone").unwrap();
    assert!(
        gone["reason"].as_str().unwrap().contains("no-docker.sock"),
        "{gone}"
    );

    let r = http
        .post(format!("{base}/services/web/scale/up"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("gone is down"),
        "{body}"
    );

    // Still alive after several passes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let root = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert!(serve.is_running(), "serve is still running");
}
