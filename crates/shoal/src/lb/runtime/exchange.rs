//! One command on the wire (connect, write the line, read the answer to EOF, all within the
//! timeout), and reading an answer as success or failure.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{HaproxyClient, RuntimeAddr, MAX_ANSWER};
use crate::lb::{LbError, Result};

impl HaproxyClient {
    /// One non-interactive exchange: connect, write `cmd\n`, read to EOF; bounded by the
    /// timeout. `cmd` must already be validated.
    pub(super) async fn exchange(&self, cmd: &str) -> Result<String> {
        tracing::debug!(addr = %self.addr, command = cmd, "runtime API");
        let addr = self.addr.to_string();
        let io_err = |source| LbError::Connect {
            addr: addr.clone(),
            source,
        };
        let run = async {
            match &self.addr {
                RuntimeAddr::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(io_err)?;
                    talk(stream, cmd).await.map_err(io_err)
                }
                RuntimeAddr::Tcp { host, port } => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                        .await
                        .map_err(io_err)?;
                    talk(stream, cmd).await.map_err(io_err)
                }
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(LbError::Timeout {
                addr: addr.clone(),
                command: cmd.to_owned(),
                timeout: self.timeout,
            }),
        }
    }
}

async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    cmd: &str,
) -> std::io::Result<String> {
    let mut line = Vec::with_capacity(cmd.len() + 1);
    line.extend_from_slice(cmd.as_bytes());
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.flush().await?;
    let mut buf = Vec::new();
    (&mut stream).take(MAX_ANSWER).read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

pub(super) fn first_line(answer: &str) -> &str {
    answer
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// Whether an answer reads as one of HAProxy's CLI error messages.
pub fn looks_failed(answer: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "Unknown",
        "unknown",
        "Can't",
        "Cannot",
        "cannot",
        "Invalid",
        "invalid",
        "No such",
        "Server is not",
        "Server still has",
        "Require",
        "Permission denied",
        "Only ",
        "Already exists",
        "Missing",
        "missing",
        "Expects",
        "Error",
        "error",
        "Failed",
        "failed",
        "Not ",
        "This command",
        "Usage",
        "Backend must",
        "Backend is",
        "Proxy is",
        "Frontend is",
        "'",
    ];
    let first = first_line(answer);
    PREFIXES.iter().any(|p| first.starts_with(p))
}

pub(super) fn refused(cmd: &str, answer: &str) -> LbError {
    let answer = answer.trim();
    LbError::Refused {
        command: cmd.to_owned(),
        answer: if answer.is_empty() {
            "(empty answer)".to_owned()
        } else {
            answer.to_owned()
        },
    }
}

pub(super) fn no_such_server(backend: &str, name: &str) -> LbError {
    LbError::NoSuchServer {
        backend: backend.to_owned(),
        server: name.to_owned(),
    }
}
