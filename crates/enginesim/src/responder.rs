//! The stand-in for a running container's service: a TCP listener on the simulated
//! server's loopback address that answers every HTTP request `200 {"models":[]}` and closes
//! (enough for shoal's probe and HAProxy's check). It stops when dropped.

use std::net::Ipv4Addr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
Content-Length: 13\r\nConnection: close\r\n\r\n{\"models\":[]}";

/// A listening responder; dropping it stops it.
#[derive(Debug)]
pub struct Responder {
    port: u16,
    task: JoinHandle<()>,
}

impl Responder {
    /// Listens on `ip`, on a port the kernel picks.
    pub async fn start(ip: Ipv4Addr) -> std::io::Result<Self> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let mut seen = Vec::new();
                    // Read the request head (bounded), answer, close.
                    while seen.len() < 16 * 1024 {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            let _ = conn.write_all(ANSWER).await;
                            let _ = conn.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { port, task })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
