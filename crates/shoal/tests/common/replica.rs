//! Tiny in-process HTTP replicas on 127.0.0.1 for the HAProxy tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP replica on 127.0.0.1:<random>: answers `GET /health` with its current health
/// status and anything else with 200 and its name, after `delay`.
pub struct Replica {
    pub name: &'static str,
    addr: SocketAddr,
    /// The status `GET /health` answers with.
    pub health: Arc<AtomicU16>,
    /// Requests other than health checks.
    hits: Arc<AtomicU64>,
    /// Health checks received.
    checks: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    /// A replica answering its health checks with 200 and requests at once.
    pub async fn healthy(name: &'static str) -> Self {
        Self::start(name, 200, Duration::ZERO).await
    }

    pub async fn start(name: &'static str, health: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health_status = Arc::new(AtomicU16::new(health));
        let hits = Arc::new(AtomicU64::new(0));
        let checks = Arc::new(AtomicU64::new(0));
        let (h, c, k) = (health_status.clone(), hits.clone(), checks.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (h, c, k) = (h.clone(), c.clone(), k.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(1024);
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if buf.len() > 16 * 1024 {
                            return;
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let status = if path == "/health" {
                        k.fetch_add(1, Ordering::SeqCst);
                        h.load(Ordering::SeqCst)
                    } else {
                        c.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        200
                    };
                    let body = name;
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(resp.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            name,
            addr,
            health: health_status,
            hits,
            checks,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}
