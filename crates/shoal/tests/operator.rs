//! What the operator sees and deploys (`deploy/`, `/ui`, `/metrics`), against real parts:
//! Debian's Prometheus and promtool, docker-compose, headless Chromium, systemd-analyze,
//! HAProxy, the shoal image on the real Docker Engine, and the backup script.
//! Everything is installed (and the image built) by scripts/ensure-deps.sh.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::cmd::succeed;
use common::docker::docker;
use common::prometheus::Prometheus;
use common::serve::Serve;
use common::{http_client, repo, shoal, shoal_bin, wait_for_async, Opts, Stack, READY, TOKEN};
use serde_json::Value;

/// The metric names an expression mentions (shoal's and HAProxy's).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &expr[i..];
        let starts = rest.starts_with("shoal_") || rest.starts_with("haproxy_");
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts && boundary {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.insert(rest[..len].to_owned());
            i += len;
        } else {
            i += 1;
        }
    }
    out
}

/// Every `expr` of the Grafana dashboard, with Grafana's variables as Grafana would fill
/// them for "All" services, and the templating queries.
fn dashboard_exprs() -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(repo("deploy/grafana/dashboards/shoal.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut exprs = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&dash["panels"], &mut exprs);
    let exprs = exprs
        .into_iter()
        .map(|e| {
            e.replace("$__rate_interval", "1m")
                .replace("${service}", ".*")
                .replace("$service", ".*")
        })
        .collect();
    let templating = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["definition"].as_str().unwrap().to_owned())
        .collect();
    (exprs, templating)
}

/// The stats (exporter) port of a stack's HAProxy, from its config.
fn stats_port(stack: &Stack) -> u16 {
    let cfg = std::fs::read_to_string(&stack.config).unwrap();
    cfg.lines()
        .find_map(|l| l.trim().strip_prefix("stats_port:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("stats_port in the stack's config")
}

/// deploy/prometheus/ as shipped, pointed at this stack's ports and scraping every second.
fn prometheus_config(stack: &Stack, dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(repo("deploy/prometheus/prometheus.yml")).unwrap();
    for needle in [
        "'127.0.0.1:8000'",
        "'127.0.0.1:8404'",
        "scrape_interval: 15s",
    ] {
        assert!(
            shipped.contains(needle),
            "deploy/prometheus/prometheus.yml: {needle}"
        );
    }
    let yml = shipped
        .replace(
            "'127.0.0.1:8000'",
            &format!("'127.0.0.1:{}'", stack.api_port),
        )
        .replace(
            "'127.0.0.1:8404'",
            &format!("'127.0.0.1:{}'", stats_port(stack)),
        )
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    std::fs::copy(repo("deploy/prometheus/alerts.yml"), dir.join("alerts.yml")).unwrap();
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, yml).unwrap();
    path
}

/// Prometheus scrapes shoal and HAProxy with the shipped config; the desired-replicas
/// series follows a scale-up; every dashboard and alert expression evaluates, and every
/// metric they name exists in what Prometheus scraped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_shoal_and_haproxy_and_every_dashboard_and_alert_query_holds() {
    let stack = Stack::serving(
        "prom",
        Opts {
            check_interval: 1,
            // target policy and a CPU limit, so the target and limit series exist too.
            extra: "    scale_policy: target\n    cpus: 0.5\n".into(),
            ..Opts::replicas(1, 3)
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let prom = Prometheus::start(&prometheus_config(&stack, dir.path())).await;
    let value = async |expr: &str| -> Option<String> {
        let r = prom.query(expr).await;
        r["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_owned)
    };
    wait_for_async(
        "shoal and HAProxy scraped",
        Duration::from_secs(20),
        async || {
            (value("up{job=\"shoal\"}").await.as_deref() == Some("1")
                && value("up{job=\"haproxy\"}").await.as_deref() == Some("1"))
            .then_some(())
        },
    )
    .await;
    let desired = format!("shoal_desired_replicas{{service=\"{}\"}}", stack.service);
    assert_eq!(value(&desired).await.as_deref(), Some("1"));

    let (status, body) = stack.act("scale/up").await;
    assert_eq!(status, 200, "{body}");
    wait_for_async(
        "desired 2 in Prometheus",
        Duration::from_secs(15),
        async || {
            let v = value(&desired).await;
            (v.as_deref() == Some("2"))
                .then_some(())
                .ok_or(format!("{v:?}"))
        },
    )
    .await;
    stack.wait_ready(2, READY);
    // Some traffic through HAProxy, so its request counters move.
    let http = http_client(Duration::from_secs(5));
    for _ in 0..20 {
        let r = http
            .get(stack.frontend_url("/api/tags"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    // Every expression of the dashboard and of the rules Prometheus loaded.
    let (mut exprs, templating) = dashboard_exprs();
    assert!(exprs.len() >= 20, "{exprs:?}");
    let rules = prom.api("/api/v1/rules", &[]).await;
    let loaded: Vec<Value> = rules["data"]["groups"]
        .as_array()
        .expect("rule groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let names: BTreeSet<&str> = loaded.iter().filter_map(|r| r["name"].as_str()).collect();
    for alert in [
        "ShoalNotScraped",
        "HAProxyNotScraped",
        "ShoalServiceBelowMinReplicas",
        "ShoalServerDown",
        "ShoalServicePinnedAtMax",
        "ShoalRolloutFailed",
    ] {
        assert!(names.contains(alert), "{alert} not loaded: {names:?}");
    }
    exprs.extend(
        loaded
            .iter()
            .map(|r| r["query"].as_str().unwrap().to_owned()),
    );
    for e in &exprs {
        let r = prom.query(e).await;
        assert_eq!(r["status"], "success", "{e}: {r}");
    }
    let mentioned: BTreeSet<String> = exprs
        .iter()
        .chain(&templating)
        .flat_map(|e| metric_names(e))
        .collect();
    wait_for_async(
        "every metric the dashboard and the alerts name",
        Duration::from_secs(30),
        async || {
            let all = prom.api("/api/v1/label/__name__/values", &[]).await;
            let known: BTreeSet<String> = all["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            let missing: Vec<_> = mentioned.difference(&known).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("not scraped: {missing:?}"))
            }
        },
    )
    .await;
    // The rules evaluate without error inside Prometheus too; none fires on a healthy stack.
    wait_for_async(
        "every rule evaluated and healthy",
        Duration::from_secs(10),
        async || {
            let rules = prom.api("/api/v1/rules", &[]).await;
            let bad: Vec<String> = rules["data"]["groups"][0]["rules"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["health"] != "ok" || r["state"] == "firing")
                .map(|r| {
                    format!(
                        "{} {} {} {}",
                        r["name"], r["health"], r["state"], r["lastError"]
                    )
                })
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(format!("{bad:?}"))
            }
        },
    )
    .await;
    // Per-replica CPU and memory: a series per ready replica once the autoscaler has sampled
    // them and Prometheus has scraped that (both run on their own intervals).
    let query = format!(
        "shoal_replica_memory_bytes{{service=\"{}\"}}",
        stack.service
    );
    wait_for_async(
        "a per-replica memory series in Prometheus",
        Duration::from_secs(30),
        async || {
            let memory = prom.query(&query).await;
            if memory["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                Ok(())
            } else {
                Err(format!("{memory}"))
            }
        },
    )
    .await;
}

#[test]
fn promtool_accepts_the_prometheus_config_and_the_rules_and_their_unit_tests() {
    let dir = repo("deploy/prometheus");
    for args in [
        &["check", "config", "prometheus.yml"][..],
        &["check", "rules", "alerts.yml"],
        &["test", "rules", "alerts_test.yml"],
    ] {
        succeed(Command::new("promtool").args(args).current_dir(&dir));
    }
}

#[test]
fn docker_compose_accepts_the_compose_file_and_requires_the_secrets() {
    let compose = repo("deploy/docker-compose.yml");
    let run = |with_env: bool| {
        let mut c = Command::new("docker-compose");
        c.arg("-f").arg(&compose).arg("config");
        c.env_remove("SHOAL_API_TOKEN")
            .env_remove("GRAFANA_ADMIN_PASSWORD");
        if with_env {
            c.env("SHOAL_API_TOKEN", "compose-test-token-0123")
                .env("GRAFANA_ADMIN_PASSWORD", "p");
        }
        c.output().expect("docker-compose")
    };
    let ok = run(true);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for service in ["shoal:", "haproxy:", "prometheus:", "grafana:"] {
        assert!(text.contains(service), "{service} in:\n{text}");
    }
    // The seed's defect: nothing is mounted over /var/run (only the Docker socket inside).
    assert!(text.contains("/run/haproxy"), "{text}");
    assert!(
        !text.contains(":/var/run:") && !text.contains("target: /var/run\n"),
        "{text}"
    );
    let without = run(false);
    assert!(!without.status.success(), "the token must be required");
}

#[test]
fn the_shipped_haproxy_cfg_is_what_shoal_renders_and_haproxy_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("haproxy.cfg");
    succeed(
        shoal()
            .args(["haproxy", "render", "--config"])
            .arg(repo("deploy/config.yaml"))
            .arg("--output")
            .arg(&out),
    );
    let shipped = std::fs::read_to_string(repo("deploy/haproxy/haproxy.cfg")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        shipped,
        "deploy/haproxy/haproxy.cfg is stale: shoal haproxy render --config deploy/config.yaml --output deploy/haproxy/haproxy.cfg"
    );
    succeed(Command::new("haproxy").arg("-c").arg("-f").arg(&out));
}

#[test]
fn the_systemd_units_verify_and_reload_sends_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for unit in [
        "shoal.service",
        "shoal-backup.service",
        "shoal-backup.timer",
    ] {
        let text = std::fs::read_to_string(repo(&format!("deploy/systemd/{unit}"))).unwrap();
        if unit == "shoal.service" {
            assert!(
                text.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"),
                "{text}"
            );
        }
        // The binaries where this checkout has them.
        let text = text
            .replace(
                "/usr/local/bin/shoal-backup",
                &repo("deploy/backup.sh").display().to_string(),
            )
            .replace("/usr/local/bin/shoal", &shoal_bin().display().to_string());
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let out = succeed(Command::new("systemd-analyze").arg("verify").args(&units));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("Unknown key") && !said.contains("Failed"),
        "{said}"
    );
    // And the config the unit starts from is valid.
    succeed(
        shoal()
            .args(["config", "check"])
            .arg(repo("deploy/config.yaml")),
    );
}

/// Removes the container on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker().args(["rm", "-f", &self.0]).output();
    }
}

#[tokio::test]
async fn the_shoal_image_starts_with_a_mounted_config_and_answers() {
    let config = repo("deploy/config.yaml");
    let out = succeed(docker().args([
        "run",
        "-d",
        "-e",
        &format!("SHOAL_API_TOKEN={TOKEN}"),
        "-v",
        &format!("{}:/etc/shoal/config.yaml:ro", config.display()),
        "-p",
        "127.0.0.1:0:8000",
        "shoal:latest",
    ]));
    let id = Container(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    let port = String::from_utf8_lossy(&succeed(docker().args(["port", &id.0, "8000"])).stdout)
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse::<u16>().ok())
        .expect("published port");
    let http = http_client(Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{port}/");
    let body: Value = wait_for_async("the image's API", Duration::from_secs(20), async || {
        let r = http.get(&url).send().await.ok()?;
        r.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(body, serde_json::json!({"status": "running"}));
    let services: Value = http
        .get(format!("{url}services"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(services["services"][0]["name"], "ollama", "{services}");
}

/// `chromium --headless` with its own profile directory.
fn chromium(dir: &Path) -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", dir.display()));
    c
}

/// The status page in a real browser: the service, its replicas, the chart. The
/// screenshot is kept in target/tmp/artifacts/status-page.png (README shows one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_headless_chromium_shows_the_service_its_replicas_and_the_chart() {
    let stack = Stack::serving(
        "ui",
        Opts {
            check_interval: 1,
            ..Opts::replicas(1, 3)
        },
    );
    let (status, body) = stack.act("scale/up").await;
    assert_eq!(status, 200, "{body}");
    stack.wait_ready(2, READY);
    // A few evaluations after the change, so the chart has a history.
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Without the token; HTML; nothing secret.
    let r = stack.http.get(stack.url("/ui")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(!html.contains(TOKEN), "the page shows the token");
    assert!(!html.contains("<script"), "no JavaScript");

    let profile = tempfile::tempdir().unwrap();
    let url = stack.url("/ui");
    let dom = String::from_utf8_lossy(
        &succeed(chromium(profile.path()).arg("--dump-dom").arg(&url)).stdout,
    )
    .into_owned();
    let svc = &stack.service;
    for needle in [
        format!("id=\"service-{svc}\""),
        "<b>2</b> ready of <b>2</b> desired".to_owned(),
        format!("id=\"chart-{svc}\""),
        "class=\"desired\"".to_owned(),
        "id=\"servers\"".to_owned(),
        "Recent decisions".to_owned(),
    ] {
        assert!(
            dom.contains(&needle),
            "{needle} not in the rendered page:\n{dom}"
        );
    }
    // The desired line of the chart steps from 1 to 2.
    let at = dom.find("class=\"desired\"").unwrap();
    let pts = &dom[at..];
    let pts = &pts[pts.find("points=\"").unwrap() + 8..];
    let pts = &pts[..pts.find('"').unwrap()];
    let ys: BTreeSet<&str> = pts.split(' ').filter_map(|p| p.split(',').nth(1)).collect();
    assert!(ys.len() >= 2, "desired never changed in the chart: {pts}");

    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    succeed(
        chromium(profile.path())
            .arg("--window-size=1280,900")
            .arg(format!("--screenshot={}", png.display()))
            .arg(&url),
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    assert_eq!(width, 1280);
    assert!(bytes.len() > 20_000, "a blank page? {} bytes", bytes.len());
}

/// The backup script's archive restores into an empty directory, and `shoal serve` starts
/// from it with the journal and the cooldown as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_an_empty_directory_with_the_journal_and_cooldowns() {
    let mut stack = Stack::serving("bak", Opts::replicas(1, 3));
    let (status, body) = stack.act("scale/up").await;
    assert_eq!(status, 200, "{body}");
    let before: Value = stack
        .get(&format!("/services/{}/events?limit=500", stack.service))
        .await;
    let total_before = before["total"].as_u64().unwrap();

    // Online: shoal keeps running while the journal is copied.
    let out_dir = tempfile::tempdir().unwrap();
    let out = succeed(
        Command::new(repo("deploy/backup.sh"))
            .arg("backup")
            .arg(&stack.config)
            .arg(out_dir.path()),
    );
    let archive = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(archive.is_file(), "{archive:?}");
    stack.kill_shoal();

    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("shoal");
    succeed(
        Command::new(repo("deploy/backup.sh"))
            .arg("restore")
            .arg(&archive)
            .arg(&target),
    );
    let config = target.join("config.yaml");
    succeed(shoal().args(["config", "check"]).arg(&config));
    let _serve = Serve::start(&config, stack.api_port, &restored.path().join("shoal.log"));

    let services = stack.get("/services").await;
    let svc = &services["services"][0];
    assert_eq!(svc["desired"], 2, "{svc}");
    let left = svc["cooldown_remaining_seconds"].as_u64().unwrap();
    assert!(left > 500, "cooldown lost: {left} s left of 600");
    let after: Value = stack
        .get(&format!("/services/{}/events?limit=500", stack.service))
        .await;
    assert!(after["total"].as_u64().unwrap() >= total_before, "{after}");
    let scaled =
        after["events"].as_array().unwrap().iter().any(|e| {
            e["action"] == "scale_up" && e["desired_before"] == 1 && e["desired_after"] == 2
        });
    assert!(
        scaled,
        "the scale-up is not in the restored journal: {after}"
    );
    // The restored serve uses the restored journal, not the original.
    assert!(target.join("state.db").is_file());
}

#[test]
fn metric_names_are_found_in_expressions() {
    assert_eq!(
        metric_names("sum by (proxy) (rate(haproxy_backend_http_requests_total{x=\"a\"}[1m])) > shoal_max_replicas"),
        BTreeSet::from(["haproxy_backend_http_requests_total".to_owned(), "shoal_max_replicas".to_owned()])
    );
}
