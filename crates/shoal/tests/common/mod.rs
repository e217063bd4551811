//! Test harness: a real HAProxy, a real `shoal serve`, the real Docker Engine.
//!
//! Every test gets its own service name, ports, HAProxy and shoal process, so tests run in
//! parallel without seeing each other. Containers of a test's service are removed when its
//! [`Stack`] drops.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod netns;

/// The workload image the tests run as the service (built by scripts/build-workload-image.sh).
pub const IMAGE: &str = "shoal-workload:latest";
/// Token the test stacks use.
pub const TOKEN: &str = "test-token-0123456789";

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Path of the shoal binary under test.
pub fn shoal_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shoal"))
}

/// Fails the test early with a clear message when the workload image is missing.
pub fn require_image() {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", IMAGE])
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "image {IMAGE} is missing: run scripts/build-workload-image.sh (the test script does)"
    );
}

/// Removes every container of `service` (labelled by shoal).
pub fn remove_service_containers(service: &str) {
    for id in container_ids(service, true) {
        let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    }
}

/// Ids of the containers of `service` (all states when `all`).
pub fn container_ids(service: &str, all: bool) -> Vec<String> {
    let filter = format!("label=io.shoal.service={service}");
    let mut args = vec!["ps", "-q", "--no-trunc", "--filter", &filter];
    if all {
        args.push("-a");
    }
    let out = Command::new("docker")
        .args(&args)
        .output()
        .expect("docker ps");
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect();
    ids.sort();
    ids
}

/// Polls `f` until it returns Some or `limit` passes.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A running HAProxy process.
pub struct Haproxy {
    child: Child,
    /// Runtime API socket.
    pub socket: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// Starts haproxy on a cfg file and waits for its runtime socket.
    pub fn start(cfg: &Path, socket: &Path) -> Self {
        let check = Command::new("haproxy")
            .args(["-c", "-q", "-f"])
            .arg(cfg)
            .output()
            .expect("haproxy -c");
        assert!(
            check.status.success(),
            "haproxy refused the rendered cfg: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let _ = std::fs::remove_file(socket);
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let h = Haproxy {
            child,
            socket: socket.to_owned(),
        };
        wait_for("haproxy runtime socket", Duration::from_secs(10), || {
            UnixStream::connect(&h.socket).ok().map(|_| ())
        });
        h
    }

    /// Sends one runtime API command and returns the answer.
    pub fn command(&self, cmd: &str) -> String {
        let mut s = UnixStream::connect(&self.socket).expect("connect haproxy socket");
        s.write_all(format!("{cmd}\n").as_bytes()).expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    /// Server names in `backend` with their operational state (2 = running/UP).
    pub fn servers(&self, backend: &str) -> Vec<(String, u32)> {
        self.command(&format!("show servers state {backend}"))
            .lines()
            .skip(1) // format version
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((f.get(3)?.to_string(), f.get(5)?.parse().ok()?))
            })
            .collect()
    }
}

/// A test stack: config, HAProxy, shoal serve.
pub struct Stack {
    /// Unique service name.
    pub service: String,
    /// Temp dir with config, cfg, socket.
    pub dir: tempfile::TempDir,
    /// HAProxy frontend port of the service.
    pub frontend: u16,
    /// shoal API port.
    pub api_port: u16,
    /// The config file.
    pub config: PathBuf,
    /// HAProxy.
    pub haproxy: Option<Haproxy>,
    /// shoal serve.
    pub shoal: Option<Child>,
    /// Async HTTP client.
    pub http: reqwest::Client,
}

/// Options for a stack's service.
pub struct Opts {
    /// min_replicas.
    pub min: u32,
    /// max_replicas.
    pub max: u32,
    /// Extra YAML lines under the service (indented 4 spaces).
    pub extra: String,
    /// `autoscaler.check_interval`.
    pub check_interval: u64,
    /// `cooldown_period`.
    pub cooldown: u64,
    /// Extra YAML lines under `autoscaler` (indented 2 spaces).
    pub autoscaler_extra: String,
    /// Image of the service (default: the workload).
    pub image: String,
    /// Extra YAML lines under `servers` (indented 2 spaces), after `local`.
    pub servers_extra: String,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            min: 1,
            max: 3,
            extra: String::new(),
            check_interval: 5,
            // Long, so the autoscaler leaves manually scaled test services alone.
            cooldown: 600,
            autoscaler_extra: String::new(),
            image: IMAGE.to_owned(),
            servers_extra: String::new(),
        }
    }
}

impl Stack {
    /// Writes a config for a new uniquely named service and starts HAProxy (not shoal).
    pub fn new(prefix: &str, opts: Opts) -> Self {
        require_image();
        let service = format!("{prefix}-{}", std::process::id() % 100000);
        remove_service_containers(&service);
        let dir = tempfile::tempdir().expect("tempdir");
        let frontend = free_port();
        let stats = free_port();
        let api_port = free_port();
        let socket = dir.path().join("haproxy.sock");
        let yaml = format!(
            "load_balancer:
  stats_port: {stats}
  runtime_api: unix:{socket}
  bind_address: 127.0.0.1
  config_file: {cfgfile}
  drain_timeout: 10
servers:
  - host: 127.0.0.1
    name: local
    docker_host: unix:///var/run/docker.sock
    max_containers: 100
{servers_extra}services:
  {service}:
    image: {image}
    port: {frontend}
    container_port: 11434
    min_replicas: {min}
    max_replicas: {max}
    cooldown_period: {cooldown}
    stop_timeout: 5
    health_check:
      path: /api/tags
      interval: 1
      timeout: 1
      start_period: 20
{extra}autoscaler:
  check_interval: {check_interval}
  log_level: debug
{autoscaler_extra}api:
  bind: 127.0.0.1:{api_port}
",
            socket = socket.display(),
            cfgfile = dir.path().join("haproxy.cfg").display(),
            min = opts.min,
            max = opts.max,
            extra = opts.extra,
            check_interval = opts.check_interval,
            cooldown = opts.cooldown,
            image = opts.image,
            autoscaler_extra = opts.autoscaler_extra,
            servers_extra = opts.servers_extra,
        );
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let render = Command::new(shoal_bin())
            .args(["haproxy", "render", "--config"])
            .arg(&config)
            .arg("--output")
            .arg(dir.path().join("haproxy.cfg"))
            .output()
            .expect("shoal haproxy render");
        assert!(
            render.status.success(),
            "render failed: {}",
            String::from_utf8_lossy(&render.stderr)
        );
        let haproxy = Haproxy::start(&dir.path().join("haproxy.cfg"), &socket);
        Stack {
            service,
            dir,
            frontend,
            api_port,
            config,
            haproxy: Some(haproxy),
            shoal: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
        }
    }

    /// Starts `shoal serve` and waits for its API.
    pub fn start_shoal(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("shoal.log")).expect("log file");
        let child = Command::new(shoal_bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("SHOAL_API_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start shoal");
        self.shoal = Some(child);
        let url = self.url("/");
        wait_for("shoal API", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", self.api_port)).ok()?;
            let out = Command::new("curl").args(["-sf", &url]).output().ok()?;
            out.status.success().then_some(())
        });
    }

    /// Stops shoal (SIGKILL: the replicas must survive anything).
    pub fn kill_shoal(&mut self) {
        if let Some(mut c) = self.shoal.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The log of shoal serve so far.
    pub fn shoal_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("shoal.log")).unwrap_or_default()
    }

    /// URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    /// URL through HAProxy's frontend.
    pub fn frontend_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.frontend)
    }

    /// GET an API path as JSON.
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON")
    }

    /// POST an API path with the token; returns status and JSON body.
    pub async fn post(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("POST");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Backend name in HAProxy.
    pub fn backend(&self) -> String {
        format!("{}_backend", self.service)
    }

    /// HAProxy servers of the backend that are UP.
    pub fn up_servers(&self) -> Vec<String> {
        self.haproxy
            .as_ref()
            .expect("haproxy")
            .servers(&self.backend())
            .into_iter()
            .filter(|(_, op)| *op == 2)
            .map(|(n, _)| n)
            .collect()
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// `GET /services/{service}/stats`.
    pub async fn stats(&self) -> Value {
        self.get(&format!("/services/{}/stats", self.service)).await
    }

    /// Events of the service (newest first).
    pub async fn events(&self) -> Vec<Value> {
        self.get(&format!("/services/{}/events?limit=500", self.service))
            .await["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Running containers of the service.
    pub fn running(&self) -> Vec<String> {
        container_ids(&self.service, false)
    }

    /// Waits until `n` replicas run and are UP in HAProxy.
    pub fn wait_ready(&self, n: usize, limit: Duration) {
        wait_for(
            &format!("{n} running replicas UP in HAProxy"),
            limit,
            || (self.running().len() == n && self.up_servers().len() == n).then_some(()),
        );
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- shoal log ---\n{}", self.shoal_log());
        }
        self.kill_shoal();
        self.haproxy.take();
        remove_service_containers(&self.service);
    }
}
