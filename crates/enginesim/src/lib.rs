//! `shoal-enginesim`: a **simulation** of the part of the Docker Engine API that shoal uses,
//! for many servers at once — one process, one unix socket per simulated server.
//!
//! It exists for what no real part can do on one test machine: a fleet of 100 servers with
//! 50 containers each. It is not a container runtime. A "container" is a record with labels,
//! a state and a published port; while it "runs", a tiny HTTP responder listens on its port
//! (on the simulated server's own loopback address, `127.1.X.Y`), so shoal's health probes
//! and HAProxy's checks reach something real. Nothing else is simulated: shoal, HAProxy and
//! the API load are the real programs.
//!
//! Endpoints served (under any `/vX.Y` prefix, like dockerd): `GET|HEAD /_ping`,
//! `GET /version` (API 1.41, as the Engine 20.10 of the test machine), `GET /info`,
//! `GET /containers/json` (`all`, `filters` with `label`), `POST /containers/create`,
//! `POST /containers/{id}/start|stop|kill`, `DELETE /containers/{id}` (`force`),
//! `GET /containers/{id}/json`, `GET /containers/{id}/stats` (`stream=false`; a constant
//! CPU percent and memory), `GET /events` (`since`, `filters`: live, newline-delimited JSON),
//! `GET /images/{name}/json`, `POST /images/create`. Anything else answers 404 with a
//! Docker-style `{"message": ...}`.
//!
//! `POST /containers/{id}/kill` is how a test makes a "container" die: its responder stops,
//! it is listed as exited (137) and a `die` event is sent, as dockerd does.

pub mod api;
pub mod responder;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use store::SimConfig;

/// The address of simulated server `i` (`127.OCTET.(i/200).(i%200+1)`).
#[must_use]
pub fn server_ip(octet: u8, i: u16) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, octet, (i / 200) as u8, (i % 200 + 1) as u8)
}

/// The socket of simulated server `i` in `dir`.
#[must_use]
pub fn socket_path(dir: &Path, i: u16) -> PathBuf {
    dir.join(format!("s{i:03}.sock"))
}

/// Simulated servers `0..servers`, each listening on [`socket_path`] (call inside a Tokio
/// runtime). Returns the servers' stores.
pub fn start(
    dir: &Path,
    servers: u16,
    octet: u8,
    cfg: SimConfig,
) -> std::io::Result<Vec<Arc<store::Server>>> {
    std::fs::create_dir_all(dir)?;
    let cfg = Arc::new(cfg);
    let mut out = Vec::new();
    for i in 0..servers {
        let path = socket_path(dir, i);
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("listening on {}: {e}", path.display()))
        })?;
        let server = Arc::new(store::Server::new(
            format!("sim{i:03}"),
            server_ip(octet, i),
            cfg.clone(),
        ));
        out.push(server.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, api::router(server)).await {
                eprintln!("shoal-enginesim: server {i} stopped: {e}");
            }
        });
    }
    Ok(out)
}
