//! A real Prometheus (Debian's `prometheus`), killed on drop, and its HTTP API.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{free_port, http_client, wait_for_async};

/// `prometheus` on a free port of 127.0.0.1 with `config` and its own storage.
pub struct Prometheus {
    child: Child,
    /// Its HTTP port.
    pub port: u16,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts it with the config file `config` and waits for `/-/ready`.
    pub async fn start(config: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (scripts/ensure-deps.sh installs it)");
        let p = Prometheus {
            child,
            port,
            dir,
            http: http_client(Duration::from_secs(10)),
        };
        let url = p.url("/-/ready");
        wait_for_async("Prometheus ready", Duration::from_secs(30), async || {
            let r = p.http.get(&url).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        p
    }

    /// URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path with query parameters; the JSON body (whatever the status).
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        self.http
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .expect("Prometheus API")
            .json()
            .await
            .expect("Prometheus API JSON")
    }

    /// An instant query: the JSON answer (`status`, `data` or `error`).
    pub async fn query(&self, expr: &str) -> Value {
        self.api("/api/v1/query", &[("query", expr)]).await
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
