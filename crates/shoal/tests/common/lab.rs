//! The HAProxy lab of `tests/haproxy.rs`: one HAProxy with the frontend and backend of one
//! service, rendered by shoal, its runtime API client, and in-process replicas.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal::config::Config;
use shoal::lb::{backend_name, render, HaproxyClient, HealthCheck, Member};

use super::haproxy::{add_server, check_clean};
use super::replica::Replica;
use super::{free_port, keep_alive_client, repo, Haproxy, Load, Wait};

pub const SERVICE: &str = "web";

/// One test's world: a temp dir, ports, the config, a client and (when started) HAProxy.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub frontend_port: u16,
    pub stats_port: u16,
    pub config: Config,
    pub client: HaproxyClient,
    pub haproxy: Option<Haproxy>,
    pub starts: u32,
}

pub fn lab_config(dir: &Path, runtime_api: &str, frontend_port: u16, stats_port: u16) -> Config {
    let yaml = format!(
        "load_balancer:
  stats_port: {stats_port}
  runtime_api: {runtime_api}
  bind_address: 127.0.0.1
  timeout: 2
servers:
  - host: 127.0.0.1
    name: local
    docker_host: unix:///var/run/docker.sock
services:
  {SERVICE}:
    image: test
    port: {frontend_port}
    health_check:
      path: /health
      interval: 1
      timeout: 1
      unhealthy_threshold: 2
"
    );
    Config::parse(&yaml, &dir.join("config.yaml").display().to_string()).unwrap()
}

impl Lab {
    /// A lab with HAProxy running, no server in the backend.
    pub fn started() -> Self {
        let mut lab = Self::new();
        lab.start(&[]);
        lab
    }

    /// Adds `r` to the backend as server `r.name` with [`fast_check`] and waits until it
    /// is UP.
    pub async fn add(&self, r: &Replica) {
        add_server(
            &self.client,
            &self.backend(),
            r.name,
            "127.0.0.1",
            r.port(),
            &fast_check(),
            CHECK_WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
    }

    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let runtime_api = format!("unix:{}", socket.display());
        Self::with_runtime_api(dir, socket, &runtime_api)
    }

    pub fn with_runtime_api(dir: tempfile::TempDir, socket: PathBuf, runtime_api: &str) -> Self {
        let (frontend_port, stats_port) = (free_port(), free_port());
        let config = lab_config(dir.path(), runtime_api, frontend_port, stats_port);
        let client = HaproxyClient::from_config(&config.load_balancer).unwrap();
        Self {
            dir,
            socket,
            frontend_port,
            stats_port,
            config,
            client,
            haproxy: None,
            starts: 0,
        }
    }

    pub fn backend(&self) -> String {
        backend_name(SERVICE)
    }

    /// Renders the configuration with `members`, checks it with `haproxy -c` and returns
    /// its path.
    pub fn write_config(&self, members: &[Member]) -> PathBuf {
        let map = BTreeMap::from([(SERVICE.to_owned(), members.to_vec())]);
        let text = render(&self.config, &map, None).unwrap();
        let path = self.dir.path().join("haproxy.cfg");
        std::fs::write(&path, &text).unwrap();
        check_clean(&path);
        path
    }

    /// (Re)starts HAProxy on a configuration rendered with `members` and waits until its
    /// runtime API answers.
    pub fn start(&mut self, members: &[Member]) {
        drop(self.haproxy.take());
        loop {
            let cfg = self.write_config(members);
            self.starts += 1;
            let api = self.config.load_balancer.runtime_api.value.clone();
            match Haproxy::spawn(&cfg, &api) {
                Ok(h) => {
                    self.haproxy = Some(h);
                    return;
                }
                // Another test took one of our ports between `free_port` and the bind:
                // pick new ones, once per first start.
                Err(e)
                    if self.starts <= 3 && members.is_empty() && e.log.contains("cannot bind") =>
                {
                    self.frontend_port = free_port();
                    self.stats_port = free_port();
                    self.config =
                        lab_config(self.dir.path(), &api, self.frontend_port, self.stats_port);
                }
                Err(e) => panic!("haproxy exited with {}:\n{}", e.status, e.log),
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.frontend_port)
    }

    pub fn log(&self) -> String {
        self.haproxy.as_ref().map(Haproxy::log).unwrap_or_default()
    }
}

/// Fast check parameters for runtime-added servers.
pub fn fast_check() -> HealthCheck {
    HealthCheck {
        inter: Duration::from_millis(200),
        fall: 2,
        rise: 2,
        timeout: Duration::from_secs(1),
    }
}

/// How long a server added with [`fast_check`] may take to pass its checks.
pub const CHECK_WAIT: Duration = Duration::from_secs(10);

/// HAProxy's `HCHK_STATUS_L7STS` (`srv_check_status`): the check got a wrong HTTP status.
pub const L7STS: u32 = 17;

/// `CHK_ST_ENABLED` of `srv_check_state`: the server's checks run.
pub const CHK_ST_ENABLED: u32 = 0x04;

pub fn http() -> reqwest::Client {
    keep_alive_client(Duration::from_secs(10))
}

/// GET through the frontend; `Ok(body)` only for a 200.
pub async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    if status == 200 {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// Polls `cond` every 50 ms until it holds; panics after `limit`.
pub async fn eventually(what: &str, limit: Duration, cond: impl AsyncFnMut() -> bool) {
    Wait::new(what, limit)
        .every(Duration::from_millis(50))
        .until_async(cond)
        .await;
}

/// `clients` clients sending GETs through the frontend in a loop until stopped.
pub fn load(lab: &Lab, clients: usize) -> Load {
    Load::get(lab.url("/"))
        .clients(clients)
        .http(http())
        .start()
}
