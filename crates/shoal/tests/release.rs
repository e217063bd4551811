//! Releases through a real registry (Debian's `docker-registry`) onto a real server (a
//! network namespace with its own dockerd), with steady client traffic through a real
//! HAProxy the whole time: the same tag pushed again rolls every replica to the new image;
//! a manual rollback returns the old digest; a second update while one runs gets 409; a
//! release that never passes its health check is rolled back to the same digest as before,
//! and the CLI says why and exits 4; a tag that does not exist replaces nothing. Not one
//! request fails. Needs root (a network namespace, a second dockerd).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::netns::NetnsServer;
use common::registry::{self, Registry};
use common::{http_client, shoal, Load, Opts, Stack, IMAGE, TOKEN};
use serde_json::Value;

/// The digests and image IDs of the service's replicas (`GET /services/{name}/stats`).
async fn running_images(s: &Stack) -> (BTreeSet<String>, BTreeSet<String>) {
    let stats = s.stats().await;
    let c = stats["containers"].as_array().unwrap();
    let digests = c
        .iter()
        .map(|r| r["digest"].as_str().unwrap_or("-").to_owned())
        .collect();
    let ids = c
        .iter()
        .map(|r| r["image_id"].as_str().unwrap().to_owned())
        .collect();
    (digests, ids)
}

/// Waits until the update ends; returns its status.
async fn until_ended(s: &Stack) -> Value {
    common::wait_for_async("the update to end", Duration::from_secs(120), || async {
        let u = s.get(&format!("/services/{}/update", s.service)).await;
        (u["running"] == false).then_some(u)
    })
    .await
}

/// Waits until exactly `n` replicas run and are in rotation, all on image `id`.
async fn until_all_on(s: &Stack, ns: &NetnsServer, n: usize, id: &str) {
    common::wait_for_async(
        &format!("{n} replicas in rotation, all on {id}"),
        Duration::from_secs(60),
        || async {
            let (_, ids) = running_images(s).await;
            (ns.running(&s.service).len() == n
                && s.up_servers().len() == n
                && ids == BTreeSet::from([id.to_owned()]))
            .then_some(())
        },
    )
    .await;
}

/// Runs the deploy job's script of deploy/gitlab-ci.example.yml with `sh`, as a GitLab
/// runner would, against this stack. Returns (success, output).
fn ci_deploy_job(s: &Stack, registry_image: &str, sha: &str) -> (bool, String) {
    let text = std::fs::read_to_string(common::repo("deploy/gitlab-ci.example.yml")).unwrap();
    let ci: Value = serde_saphyr::from_str(&text).expect("the CI example is YAML");
    let script: Vec<&str> = ci["deploy"]["script"]
        .as_array()
        .expect("deploy.script")
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let out = std::process::Command::new("sh")
        .args(["-c", &script.join("\n")])
        .env("SHOAL_API", s.url(""))
        .env("SHOAL_API_TOKEN", TOKEN)
        .env("SHOAL_SERVICE", &s.service)
        .env("CI_REGISTRY_IMAGE", registry_image)
        .env("CI_COMMIT_SHA", sha)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn post_json(s: &Stack, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.http.post(s.url(path)).bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_through_a_real_registry_fail_no_request_and_roll_back_a_bad_one() {
    let ns = NetnsServer::start_trusting_registries(IMAGE);
    let reg = Registry::start(&ns.gateway);
    let live = reg.image("app:live");
    // Three builds of the workload, told apart by a label (so three image IDs); v3 answers
    // its health check (/api/tags) with 503 from the start.
    registry::build(&ns, IMAGE, "LABEL io.shoal.test.version=1", "rel:v1");
    registry::build(&ns, IMAGE, "LABEL io.shoal.test.version=2", "rel:v2");
    registry::build(
        &ns,
        IMAGE,
        "LABEL io.shoal.test.version=3\nENV SHOAL_WORKLOAD_UNHEALTHY_AFTER_SECS=0",
        "rel:v3",
    );
    let v1_digest = registry::push(&ns, "rel:v1", &live);
    let (v1, v2, v3) = (
        registry::image_id(&ns, "rel:v1"),
        registry::image_id(&ns, "rel:v2"),
        registry::image_id(&ns, "rel:v3"),
    );
    // shoal pulls the tag itself: the namespace server has only the local builds.
    let out = ns.docker().args(["rmi", &live]).output().unwrap();
    assert!(out.status.success());

    let mut s = Stack::new(
        "t-release",
        Opts {
            min: 2,
            max: 3,
            image: live.clone(),
            local: false,
            start_period: 6,
            servers_extra: format!(
                "  - host: {}\n    name: ns\n    docker_host: {}\n    max_containers: 20\n",
                ns.ip,
                ns.docker_host()
            ),
            ..Opts::default()
        },
    );
    s.start_shoal();
    until_all_on(&s, &ns, 2, &v1).await;
    let (digests, _) = running_images(&s).await;
    assert_eq!(
        digests,
        BTreeSet::from([format!("{}/app@{v1_digest}", reg.addr)]),
        "the replicas record the digest they were pulled at"
    );

    let load = Load::get(s.frontend_url("/api/tags"))
        .pause(Duration::from_millis(20))
        .http(http_client(Duration::from_secs(3)))
        .start();

    // 1. v2 pushed under the same tag: a rolling update puts every replica on v2.
    let v2_digest = registry::push(&ns, "rel:v2", &live);
    let (code, body) = s.act("rolling-update").await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["kind"], "rolling_update");
    let u = until_ended(&s).await;
    assert_eq!(u["phase"], "done", "{u:#}");
    assert_eq!(u["to"]["image_id"], v2.as_str(), "{u:#}");
    assert_eq!(u["from"]["image_id"], v1.as_str(), "{u:#}");
    assert_eq!(u["pulls"][0]["state"], "pulled", "{u:#}");
    until_all_on(&s, &ns, 2, &v2).await;
    let v2_digests = running_images(&s).await.0;
    assert_eq!(
        v2_digests,
        BTreeSet::from([format!("{}/app@{v2_digest}", reg.addr)])
    );

    // 2. A manual rollback (the CLI, following it) returns the old digest.
    let out = shoal()
        .args(["--api", &s.url(""), "rollback", &s.service])
        .env("SHOAL_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("replicas replaced 2/2"), "{text}");
    until_all_on(&s, &ns, 2, &v1).await;
    assert_eq!(
        running_images(&s).await.0,
        BTreeSet::from([format!("{}/app@{v1_digest}", reg.addr)])
    );

    // 3. Two concurrent updates: one runs, the other gets 409.
    let (ru, dep) = (
        format!("/services/{}/rolling-update", s.service),
        format!("/services/{}/deploy", s.service),
    );
    let (a, b) = tokio::join!(post_json(&s, &ru, None), post_json(&s, &dep, None));
    let codes = BTreeSet::from([a.0, b.0]);
    assert_eq!(codes, BTreeSet::from([202, 409]), "{a:?} {b:?}");
    let refused = if a.0 == 409 { &a.1 } else { &b.1 };
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{refused}"
    );
    assert_eq!(until_ended(&s).await["phase"], "done");
    until_all_on(&s, &ns, 2, &v2).await;

    // 4. v3 never passes its health check: `shoal deploy --all --watch` shows it roll back
    //    and exits 4; every replica is back on v2, same digest.
    registry::push(&ns, "rel:v3", &live);
    let before: BTreeSet<String> = ns.running(&s.service).into_iter().collect();
    let out = shoal()
        .args([
            "--api",
            &s.url(""),
            "deploy",
            &s.service,
            "--all",
            "--watch",
        ])
        .env("SHOAL_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stdout.contains("rolling back"), "{stdout}");
    assert!(stderr.contains("update rolled back"), "{stderr}");
    assert!(stderr.contains("no passing health check"), "{stderr}");
    until_all_on(&s, &ns, 2, &v2).await;
    assert_eq!(
        running_images(&s).await.0,
        v2_digests,
        "the same digest as before"
    );
    let after: BTreeSet<String> = ns.running(&s.service).into_iter().collect();
    assert_eq!(
        after, before,
        "the first new replica failed: nothing had been replaced"
    );
    let events = s.events().await;
    let said = |action: &str, needle: &str| {
        events
            .iter()
            .any(|e| e["action"] == action && e["reason"].as_str().unwrap_or("").contains(needle))
    };
    assert!(
        said("rollout_failed", "no passing health check"),
        "{events:#?}"
    );
    assert!(
        said("rolled_back", "every replica runs revision"),
        "{events:#?}"
    );
    let revs = s.get(&format!("/services/{}/revisions", s.service)).await;
    assert!(
        revs["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["image_id"] == v3.as_str() && r["failed"] == true),
        "{revs:#}"
    );

    // 4b. deploy/gitlab-ci.example.yml's deploy job, as CI would run it: a good image
    //     passes the job, a bad one fails it with shoal's reason.
    registry::push(&ns, "rel:v2", &reg.image("app:sha2"));
    registry::push(&ns, "rel:v3", &reg.image("app:sha3"));
    let (ok, text) = ci_deploy_job(&s, &reg.image("app"), "sha2");
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("every replica runs {}/app@{v2_digest}", reg.addr)),
        "{text}"
    );
    until_all_on(&s, &ns, 2, &v2).await;
    let (ok, text) = ci_deploy_job(&s, &reg.image("app"), "sha3");
    assert!(!ok, "{text}");
    assert!(
        text.contains("shoal rolled_back the update: new replica"),
        "{text}"
    );
    until_all_on(&s, &ns, 2, &v2).await;
    let before: BTreeSet<String> = ns.running(&s.service).into_iter().collect();

    // 5. A body that is not {"image": ...} is a 400 naming the problem; a tag that does not
    //    exist: a clear error naming it, and nothing replaced.
    let r = s
        .http
        .post(s.url(&format!("/services/{}/rolling-update", s.service)))
        .bearer_auth(TOKEN)
        .body("{\"imag\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `imag`"),
        "{e}"
    );
    let (code, body) = post_json(
        &s,
        &format!("/services/{}/rolling-update", s.service),
        Some(serde_json::json!({"image": reg.image("app:no-such-tag")})),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let u = until_ended(&s).await;
    assert_eq!(u["phase"], "failed", "{u:#}");
    let reason = u["reason"].as_str().unwrap();
    assert!(reason.contains("app:no-such-tag"), "{reason}");
    assert!(
        reason.contains("manifest unknown") || reason.contains("not found"),
        "{reason}"
    );
    assert!(
        reason.contains("failed after"),
        "the time it took: {reason}"
    );
    assert_eq!(
        ns.running(&s.service).into_iter().collect::<BTreeSet<_>>(),
        before,
        "nothing replaced"
    );

    let report = load.finish().await;
    assert!(report.ok() > 200, "the load ran: {}", report.summary());
    assert_eq!(
        report.failed(),
        0,
        "requests failed: {}",
        report.first_errors(5)
    );
    eprintln!("load: {}", report.summary());
    drop(reg);
    s.kill_shoal();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_registry_is_pulled_with_its_credentials_and_a_wrong_password_replaces_nothing() {
    const RIGHT: &str = "right-password-7f3a";
    const WRONG: &str = "wrong-password-c21d";
    // No --insecure-registry: the namespace dockerd must verify the registry's certificate
    // against the test CA.
    let ns = NetnsServer::start(IMAGE);
    let reg = registry::PrivateRegistry::start(&ns.gateway, "ci", RIGHT);
    let addr = reg.registry.addr.clone();
    let image = reg.registry.image("app:v1");
    registry::build(&ns, IMAGE, "LABEL io.shoal.test.version=1", "priv:v1");
    registry::build(&ns, IMAGE, "LABEL io.shoal.test.version=2", "priv:v2");
    reg.login(&ns, "ci", RIGHT);
    let config = Some(reg.docker_config.path());
    registry::push_as(&ns, "priv:v1", &image, config);
    let v1 = registry::image_id(&ns, "priv:v1");
    assert!(ns
        .docker()
        .args(["rmi", &image])
        .output()
        .unwrap()
        .status
        .success());

    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), format!("{RIGHT}\n")).unwrap();
    let mut s = Stack::new(
        "t-private",
        Opts {
            min: 1,
            max: 2,
            image: image.clone(),
            local: false,
            start_period: 6,
            servers_extra: format!(
                "  - host: {}\n    name: ns\n    docker_host: {}\n    max_containers: 20\n",
                ns.ip,
                ns.docker_host()
            ),
            top_extra: format!(
                "registries:\n  \"{addr}\":\n    username: ci\n    password_file: {}\n",
                secret.path().display()
            ),
            ..Opts::default()
        },
    );
    s.start_shoal();
    // The right credentials: shoal pulls the image itself and the replica runs it.
    until_all_on(&s, &ns, 1, &v1).await;
    let before = ns.running(&s.service);

    // A wrong password: a clear error naming the registry, and nothing replaced.
    std::fs::write(secret.path(), format!("{WRONG}\n")).unwrap();
    registry::push_as(&ns, "priv:v2", &image, config);
    let (code, body) = s.act("rolling-update").await;
    assert_eq!(code, 202, "{body}");
    let u = until_ended(&s).await;
    assert_eq!(u["phase"], "failed", "{u:#}");
    let reason = u["reason"].as_str().unwrap();
    assert!(reason.contains(&addr), "names the registry: {reason}");
    assert!(
        reason.contains("unauthorized") || reason.contains("authentication required"),
        "Docker's own reason: {reason}"
    );
    assert!(reason.contains("credentials of registry"), "{reason}");
    eprintln!("wrong password: {reason}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ns.running(&s.service), before, "nothing replaced");

    // The password is in no API answer, journal entry or log line.
    let events = serde_json::to_string(&s.events().await).unwrap();
    let answers = format!("{u}{events}{}", s.stats().await);
    let log = s.shoal_log();
    for pw in [RIGHT, WRONG] {
        assert!(!answers.contains(pw), "a password in an API answer");
        assert!(!log.contains(pw), "a password in the log");
    }
    s.kill_shoal();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_from_a_registry_slow_to_answer_is_not_cut_by_the_engine_call_timeout() {
    // The registry is stopped (SIGSTOP: it accepts connections and answers nothing) for
    // 14 s while shoal pulls, longer than the engine client's 10 s request timeout, which
    // used to cut the pull and report "pull image timed out after 600s". Then the link is
    // shaped (tc tbf) so the layer itself takes seconds to arrive.
    let ns = NetnsServer::start_trusting_registries(IMAGE);
    let reg = Registry::start(&ns.gateway);
    let image = reg.image("app:slow");
    registry::build_with_random_layer(&ns, IMAGE, 256 * 1024, "slow:v1");
    registry::push(&ns, "slow:v1", &image);
    let id = registry::image_id(&ns, "slow:v1");
    assert!(ns
        .docker()
        .args(["rmi", &image, "slow:v1"])
        .output()
        .unwrap()
        .status
        .success());
    common::cmd::run(
        "tc",
        &[
            "qdisc", "add", "dev", &ns.veth, "root", "tbf", "rate", "320kbit", "burst", "8kb",
            "latency", "2s",
        ],
    );
    let mut s = Stack::new(
        "t-slowpull",
        Opts {
            min: 1,
            max: 1,
            image: image.clone(),
            local: false,
            servers_extra: format!(
                "  - host: {}\n    name: ns\n    docker_host: {}\n    max_containers: 20\n",
                ns.ip,
                ns.docker_host()
            ),
            ..Opts::default()
        },
    );
    reg.pause(true);
    s.start_shoal();
    tokio::time::sleep(Duration::from_secs(14)).await;
    reg.pause(false);
    common::wait_for("the replica runs", Duration::from_secs(50), || {
        (ns.running(&s.service).len() == 1).then_some(())
    });
    let events = s.events().await;
    let pulls: Vec<&str> = events
        .iter()
        .filter(|e| e["action"] == "pull")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        !pulls.iter().any(|r| r.contains("failed")),
        "no pull failed: {pulls:#?}"
    );
    let pulled = pulls
        .iter()
        .find(|r| r.starts_with("pulled "))
        .unwrap_or_else(|| panic!("no pull event: {events:#?}"));
    let secs: f64 = pulled
        .rsplit(" in ")
        .next()
        .and_then(|t| t.trim_end_matches('s').parse().ok())
        .unwrap_or_else(|| panic!("{pulled}"));
    eprintln!("{pulled}");
    assert!(
        secs > 12.0,
        "the pull outlasted the 10 s engine call timeout: {pulled}"
    );
    until_all_on(&s, &ns, 1, &id).await;
    reg.resume_quietly();
    s.kill_shoal();
}
