//! A real `shoal serve` process, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{shoal, wait_for, TOKEN};

/// How long `shoal serve` may take to answer on its API.
const START_LIMIT: Duration = Duration::from_secs(20);

/// `shoal serve --config CONFIG` with the test token, its stderr in a log file.
pub struct Serve {
    child: Child,
    /// Its stderr (the tracing log).
    pub log_file: PathBuf,
}

impl Serve {
    /// Starts it and waits until `GET http://127.0.0.1:{api_port}/` answers.
    pub fn start(config: &Path, api_port: u16, log_file: &Path) -> Self {
        let log = std::fs::File::create(log_file).expect("log file");
        let child = shoal()
            .args(["serve", "--config"])
            .arg(config)
            .env("SHOAL_API_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start shoal");
        let serve = Serve {
            child,
            log_file: log_file.to_owned(),
        };
        let url = format!("http://127.0.0.1:{api_port}/");
        wait_for("shoal API", START_LIMIT, || {
            std::net::TcpStream::connect(("127.0.0.1", api_port)).ok()?;
            let out = Command::new("curl").args(["-sf", &url]).output().ok()?;
            out.status.success().then_some(())
        });
        serve
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Sends it a signal (`HUP`, `TERM`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("shoal status").is_none()
    }
}

impl Drop for Serve {
    /// SIGKILL: replicas must survive anything.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a config in `dir` whose two servers cannot be reached (a Docker socket that does
/// not exist, and a server over SSH whose key file does not exist, so it is never contacted) with one service `web`; returns its path and the API
/// port. `shoal serve` runs on it without Docker or HAProxy.
pub fn unreachable_fleet(dir: &Path) -> (PathBuf, u16) {
    let api = super::free_port();
    let yaml = format!(
        "load_balancer:
  runtime_api: unix:{dir}/no-haproxy.sock
servers:
  - host: 127.0.0.1
    name: gone
    docker_host: unix://{dir}/no-docker.sock
  - host: 192.0.2.10
    name: viassh
    ssh_user: admin
    ssh_key: /root/.ssh/id_rsa
services:
  web:
    image: shoal-workload:latest
    port: {fe}
    min_replicas: 1
    max_replicas: 3
autoscaler:
  state_file: {dir}/state.db
api:
  bind: 127.0.0.1:{api}
",
        dir = dir.display(),
        fe = super::free_port(),
    );
    let config = dir.join("c.yaml");
    std::fs::write(&config, yaml).expect("write config");
    (config, api)
}
