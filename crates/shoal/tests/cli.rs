//! The CLI: its offline commands (`config check`, `haproxy render`), and its client
//! commands against a real `shoal serve` whose servers cannot be reached (no Docker or
//! HAProxy needed: every answer is real, read into the API's types).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use shoal::api::model::{EventList, ServerList, ServiceList, ServiceStats, Status};

use common::{free_port, haproxy, repo, shoal, TOKEN};

/// `shoal config check PATH`.
fn config_check(path: impl AsRef<Path>) -> Output {
    shoal()
        .args(["config", "check"])
        .arg(path.as_ref())
        .output()
        .unwrap()
}

#[test]
fn seed_config_validates_offline() {
    let out = config_check(repo("tests/fixtures/seed-config.yaml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 server(s), 1 service(s)"));
}

#[test]
fn example_configs_validate() {
    let examples = std::fs::read_dir(repo("examples")).unwrap();
    let mut checked = 0;
    for f in examples {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "yaml") {
            let out = config_check(&f);
            assert!(
                out.status.success(),
                "{}: {}",
                f.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn bad_config_exits_2_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::fs::read_to_string(repo("tests/fixtures/seed-config.yaml")).unwrap();
    let bad = seed.replace("scale_down_threshold: 25", "scale_down_threshold: 90");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, bad).unwrap();
    let out = config_check(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = seed
        .lines()
        .position(|l| l.contains("scale_down_threshold"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(
            "bad.yaml:{line}:27: error: services.ollama.scale_down_threshold (90)"
        )),
        "{err}"
    );

    let typo = seed.replace("cooldown_period", "cooldown_perod");
    std::fs::write(&path, typo).unwrap();
    let out = config_check(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `cooldown_period`"));
}

#[test]
fn haproxy_render_passes_haproxy_check() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    let out = shoal()
        .args(["haproxy", "render", "--config"])
        .arg(repo("tests/fixtures/seed-config.yaml"))
        .arg("--output")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("backend ollama_backend"));
    assert!(text.contains("option httpchk GET /api/tags"));
    haproxy::check(&cfg);
}

#[test]
fn serve_refuses_open_api_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let seed = std::fs::read_to_string(repo("tests/fixtures/seed-config.yaml")).unwrap();
    std::fs::write(&path, format!("{seed}\napi:\n  bind: 0.0.0.0:18999\n")).unwrap();
    let out = shoal()
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("SHOAL_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a token"));
}

#[test]
fn client_reports_unreachable_api_with_exit_3() {
    let out = shoal()
        .args(["--api", "http://127.0.0.1:9", "services"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

/// `shoal serve` on a config whose servers are all down.
struct Serve {
    _serve: common::serve::Serve,
    api: String,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (config, api_port) = common::serve::unreachable_fleet(dir.path());
        let serve = common::serve::Serve::start(&config, api_port, &dir.path().join("serve.log"));
        Serve {
            _serve: serve,
            api: format!("http://127.0.0.1:{api_port}"),
            config,
            _dir: dir,
        }
    }

    /// Runs a client command with the token.
    fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(args, Some(TOKEN))
    }

    fn cli_with(&self, args: &[&str], token: Option<&str>) -> Output {
        let mut cmd = shoal();
        cmd.args(["--api", &self.api]).args(args);
        match token {
            Some(t) => cmd.env("SHOAL_API_TOKEN", t),
            None => cmd.env_remove("SHOAL_API_TOKEN"),
        };
        cmd.output().unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    stdout(o)
}

/// `--json` output, read back into the API type it was printed from.
fn json<T: serde::de::DeserializeOwned>(o: &Output) -> T {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn client_commands_print_tables_from_a_real_serve() {
    let s = Serve::start();

    let status = ok(&s.cli(&["status"]));
    assert!(status.starts_with("shoal "), "{status}");
    assert!(status.contains("servers 0/2 up"), "{status}");
    let row = status
        .lines()
        .find(|l| l.starts_with("web "))
        .expect(&status);
    assert!(row.contains("shoal-workload:latest"), "{row}");
    assert!(row.contains("1..3"), "{row}");
    assert!(row.contains("any time"), "{row}");

    let services = ok(&s.cli(&["services"]));
    assert!(services.starts_with("SERVICE  "), "{services}");
    assert!(
        services.lines().any(|l| l.starts_with("web ")),
        "{services}"
    );

    let servers = ok(&s.cli(&["servers"]));
    let gone = servers
        .lines()
        .find(|l| l.starts_with("gone "))
        .expect(&servers);
    assert!(gone.contains(" down "), "{gone}");
    assert!(gone.contains("0/12"), "{gone}");
    let ssh = servers
        .lines()
        .find(|l| l.starts_with("viassh "))
        .expect(&servers);
    assert!(ssh.contains("ssh://admin@192.0.2.10:22"), "{ssh}");
    assert!(
        ssh.contains("ssh_key /root/.ssh/id_rsa cannot be used"),
        "{ssh}"
    );

    let stats = ok(&s.cli(&["stats", "web"]));
    assert!(stats.starts_with("web: 0/0 ready, desired "), "{stats}");
    assert!(stats.contains("REPLICA  SERVER  ADDRESS"), "{stats}");

    let events = ok(&s.cli(&["events", "web", "--limit", "5"]));
    let header: Vec<&str> = events.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TIME", "ACTION", "DESIRED", "REASON"], "{events}");

    // Nothing can be placed: the API's 503 is printed with its message, exit 1.
    let up = s.cli(&["scale", "web", "up"]);
    assert_eq!(up.status.code(), Some(1), "{}", stdout(&up));
    assert!(stderr(&up).starts_with("error (503): "), "{}", stderr(&up));
    assert!(stderr(&up).contains("gone is down"), "{}", stderr(&up));

    let all = s.cli(&["deploy", "web", "--all"]);
    assert_eq!(all.status.code(), Some(1));
    assert_eq!(stderr(&all), "error (503): no server is up\n");

    let deploy = s.cli(&["deploy", "web"]);
    assert_eq!(deploy.status.code(), Some(1));
    assert_eq!(stderr(&deploy), "error (503): no server is up\n");

    let missing = s.cli(&["stats", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stderr(&missing), "error (404): unknown service \"nope\"\n");

    let no_token = s.cli_with(&["scale", "web", "down"], None);
    assert_eq!(no_token.status.code(), Some(1));
    assert_eq!(
        stderr(&no_token),
        "error (401): missing Authorization: Bearer token (set SHOAL_API_TOKEN)\n"
    );
}

#[test]
fn client_json_is_the_api_model() {
    let s = Serve::start();

    let status: Status = json(&s.cli(&["--json", "status"]));
    assert_eq!(status.status, "running");
    assert_eq!((status.servers.total, status.servers.up), (2, 0));
    assert_eq!(status.services.len(), 1);
    assert_eq!(status.services[0].name, "web");

    let services: ServiceList = json(&s.cli(&["--json", "services"]));
    assert_eq!(services.services[0].max_replicas, 3);
    assert!(services.services[0].business_hours.is_none());

    let servers: ServerList = json(&s.cli(&["--json", "servers"]));
    assert!(servers.servers.iter().all(|x| !x.up));

    let stats: ServiceStats = json(&s.cli(&["--json", "stats", "web"]));
    assert_eq!(stats.service.name, "web");
    assert!(stats.containers.is_empty());
    assert_eq!(stats.cpu_limit_cores, None);

    let events: EventList = json(&s.cli(&["--json", "events", "web", "--limit", "7"]));
    assert_eq!(events.service, "web");
    assert_eq!(
        events.limit, 7,
        "the limit reaches the API as a query parameter"
    );

    // The CLI prints what the API sent, field for field (the same types both ways).
    let raw = get_json(&format!("{}/servers", s.api));
    let printed: serde_json::Value = json(&s.cli(&["--json", "servers"]));
    assert_eq!(printed, raw);
}

#[test]
fn client_reload_reports_changes_and_refusals() {
    let s = Serve::start();
    assert_eq!(ok(&s.cli(&["reload"])), "reloaded; nothing changed\n");

    let good = std::fs::read_to_string(&s.config).unwrap();
    let added = good.replace(
        "autoscaler:\n",
        &format!(
            "  extra:\n    image: shoal-workload:latest\n    port: {}\nautoscaler:\n",
            free_port()
        ),
    );
    write(&s.config, &added);
    assert_eq!(
        ok(&s.cli(&["reload"])),
        "reloaded:\n  service extra added\n"
    );

    write(
        &s.config,
        &added.replace("min_replicas: 1", "min_replicas: 9"),
    );
    let refused = s.cli(&["reload"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(
        err.starts_with("error (400): config not reloaded; the running config stays:"),
        "{err}"
    );
    assert!(err.contains("min_replicas (9)"), "{err}");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// GET a URL as JSON (curl: these tests have no async runtime).
fn get_json(url: &str) -> serde_json::Value {
    let out = Command::new("curl").args(["-sf", url]).output().unwrap();
    assert!(out.status.success(), "curl {url}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An HTTP server that answers every request with `status` and `body`, once per connection.
fn fake_api(status: &str, body: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let status = status.to_owned();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn client_refuses_an_answer_of_the_wrong_shape() {
    let api = fake_api("200 OK", r#"{"servers": 5}"#);
    let out = shoal().args(["--api", &api, "servers"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error (200): "), "{err}");
    assert!(err.contains("unreadable answer"), "{err}");

    let api = fake_api("409 Conflict", r#"{"error": "at max_replicas"}"#);
    let out = shoal()
        .args(["--api", &api, "scale", "web", "up"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error (409): at max_replicas\n"
    );
}
