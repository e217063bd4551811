//! A test stack: a config for one uniquely named service, a real HAProxy, a real
//! `shoal serve`, the real Docker Engine. Containers of the service are removed when the
//! [`Stack`] drops.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::docker::{container_ids, remove_service_containers, require_image};
use super::haproxy::{Haproxy, ServerRow};
use super::load::{Load, LoadSpec};
use super::serve::Serve;
use super::wait::{wait_for, wait_for_async};
use super::{free_port, http_client, shoal, IMAGE, READY, TOKEN};

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
    /// Whether the host's engine is server `local` (default true).
    pub local: bool,
    /// Extra top-level YAML lines (such as an `ssh:` section).
    pub top_extra: String,
    /// `health_check.start_period` (seconds).
    pub start_period: u64,
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
            local: true,
            top_extra: String::new(),
            start_period: 20,
        }
    }
}

impl Opts {
    /// The defaults with `min_replicas`/`max_replicas`.
    pub fn replicas(min: u32, max: u32) -> Self {
        Self {
            min,
            max,
            ..Self::default()
        }
    }
}

/// A test stack: config, HAProxy, shoal serve.
pub struct Stack {
    /// Unique service name.
    pub service: String,
    /// Temp dir with config, cfg, socket, logs.
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
    pub shoal: Option<Serve>,
    /// Async HTTP client (20 s timeout, a fresh connection a request).
    pub http: reqwest::Client,
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
        let cfg = dir.path().join("haproxy.cfg");
        let yaml = format!(
            "load_balancer:
  stats_port: {stats}
  runtime_api: unix:{socket}
  bind_address: 127.0.0.1
  config_file: {cfgfile}
  drain_timeout: 10
servers:
{local}{servers_extra}services:
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
      start_period: {start_period}
{extra}autoscaler:
  check_interval: {check_interval}
  log_level: debug
{autoscaler_extra}api:
  bind: 127.0.0.1:{api_port}
{top_extra}",
            socket = socket.display(),
            cfgfile = cfg.display(),
            min = opts.min,
            max = opts.max,
            extra = opts.extra,
            check_interval = opts.check_interval,
            cooldown = opts.cooldown,
            image = opts.image,
            autoscaler_extra = opts.autoscaler_extra,
            servers_extra = opts.servers_extra,
            top_extra = opts.top_extra,
            start_period = opts.start_period,
            local = if opts.local {
                "  - host: 127.0.0.1\n    name: local\n    docker_host: unix:///var/run/docker.sock\n    max_containers: 100\n"
            } else {
                ""
            },
        );
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let mut s = Stack {
            service,
            dir,
            frontend,
            api_port,
            config,
            haproxy: None,
            shoal: None,
            http: http_client(Duration::from_secs(20)),
        };
        s.render_haproxy_cfg(&cfg);
        s.haproxy = Some(Haproxy::start(&cfg, &format!("unix:{}", socket.display())));
        s
    }

    /// A new stack with shoal started and `opts.min` replicas running and UP.
    pub fn serving(prefix: &str, opts: Opts) -> Self {
        let min = opts.min as usize;
        let mut s = Self::new(prefix, opts);
        s.start_shoal();
        s.wait_ready(min, READY);
        s
    }

    /// `shoal haproxy render` of the stack's config (no servers) to `path`.
    pub fn render_haproxy_cfg(&self, path: &std::path::Path) {
        let render = shoal()
            .args(["haproxy", "render", "--config"])
            .arg(&self.config)
            .arg("--output")
            .arg(path)
            .output()
            .expect("shoal haproxy render");
        assert!(
            render.status.success(),
            "render failed: {}",
            String::from_utf8_lossy(&render.stderr)
        );
    }

    /// Starts `shoal serve` and waits for its API.
    pub fn start_shoal(&mut self) {
        let log = self.dir.path().join("shoal.log");
        self.shoal = Some(Serve::start(&self.config, self.api_port, &log));
    }

    /// Stops shoal (SIGKILL: the replicas must survive anything).
    pub fn kill_shoal(&mut self) {
        self.shoal.take();
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

    /// POST `/services/{service}/{action}` (`scale/up`, `scale/down`, `deploy`).
    pub async fn act(&self, action: &str) -> (u16, Value) {
        self.post(&format!("/services/{}/{action}", self.service))
            .await
    }

    /// Load through HAProxy's frontend on `path`, sent with the stack's client.
    pub fn load(&self, path: &str, body: Option<&str>) -> LoadSpec {
        let url = self.frontend_url(path);
        match body {
            Some(body) => Load::post(url, body),
            None => Load::get(url),
        }
        .http(self.http.clone())
    }

    /// Backend name in HAProxy.
    pub fn backend(&self) -> String {
        format!("{}_backend", self.service)
    }

    /// The running HAProxy.
    pub fn haproxy(&self) -> &Haproxy {
        self.haproxy.as_ref().expect("haproxy")
    }

    /// The servers of the backend in HAProxy.
    pub fn servers(&self) -> Vec<ServerRow> {
        self.haproxy().servers(&self.backend())
    }

    /// HAProxy servers of the backend that are UP.
    pub fn up_servers(&self) -> Vec<String> {
        self.servers()
            .into_iter()
            .filter(ServerRow::is_up)
            .map(|r| r.name)
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

    /// Replica name -> server, as shoal reports it.
    pub async fn placement(&self) -> BTreeMap<String, String> {
        self.stats().await["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    c["server"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The entry of server `name` in `GET /servers` (null when absent).
    pub async fn server(&self, name: &str) -> Value {
        let all = self.get("/servers").await;
        all["servers"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["name"] == name).cloned())
            .unwrap_or(Value::Null)
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

    /// Waits (at most 20 s) until `tries` requests in a row through HAProxy to `/whoami`
    /// are answered 200 by `n` different replicas; returns their answers.
    pub async fn wait_reached_by(&self, n: usize, tries: usize) -> BTreeSet<String> {
        let what = format!("traffic reaching {n} replicas");
        wait_for_async(&what, Duration::from_secs(20), async || {
            let mut hosts = BTreeSet::new();
            for _ in 0..tries {
                let r = self
                    .http
                    .get(self.frontend_url("/whoami"))
                    .send()
                    .await
                    .ok()?;
                if r.status() != 200 {
                    return None;
                }
                hosts.insert(r.text().await.ok()?);
            }
            (hosts.len() == n).then_some(hosts)
        })
        .await
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
        // The SSH sockets and logs of its servers reached over SSH, if any.
        let state = self.dir.path().join("shoal-state.db");
        let _ = std::fs::remove_dir_all(shoal::ssh::SshSettings::run_dir_for(&state));
    }
}
