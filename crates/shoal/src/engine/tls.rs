//! The client side of a `tcp://` engine with TLS: the files of a `docker_cert_path`
//! directory (Docker's `DOCKER_CERT_PATH` layout), checked before bollard reads them so a
//! missing or unreadable one is named, not reported as a handshake failure.

use std::path::{Path, PathBuf};

use super::EngineError;
use crate::config::{DockerEndpoint, ServerConfig, CERT_FILES};

/// `(ca, cert, key)` of `dir`.
#[must_use]
pub fn cert_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let [ca, cert, key] = CERT_FILES.map(|f| dir.join(f));
    (ca, cert, key)
}

/// Why the files of `dir` cannot be used, if they cannot: each missing or unreadable one.
pub fn check_cert_files(dir: &Path) -> Result<(), String> {
    let problems: Vec<String> = CERT_FILES
        .iter()
        .filter_map(|f| {
            let path = dir.join(f);
            match std::fs::read(&path) {
                Ok(bytes) if bytes.is_empty() => Some(format!("{} is empty", path.display())),
                Ok(_) => None,
                Err(e) => Some(format!("{} cannot be read: {e}", path.display())),
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("docker_cert_path: {}", problems.join("; ")))
    }
}

/// Problems with the local files of servers' `docker_cert_path`, for `config check` to warn
/// about (the config stays valid: the files may be put in place before `serve`, which
/// refuses to connect without them): (what, problem).
#[must_use]
pub fn cert_file_problems(servers: &[ServerConfig]) -> Vec<(String, String)> {
    servers
        .iter()
        .filter_map(|s| match s.endpoint() {
            DockerEndpoint::TcpTls { cert_path, .. } => check_cert_files(&cert_path)
                .err()
                .map(|p| (format!("server {}", s.name.value), p)),
            _ => None,
        })
        .collect()
}

/// `e` with what it means for the files of `dir`, when it is a refused TLS handshake.
#[must_use]
pub fn explain(e: EngineError, dir: &Path) -> EngineError {
    let EngineError::Docker {
        server,
        op,
        status,
        message,
    } = e
    else {
        return e;
    };
    let hint = if message.contains("invalid peer certificate") {
        Some(format!(
            "the engine's certificate is not trusted: it must be signed by {} and name the \
             docker_host address",
            dir.join("ca.pem").display()
        ))
    } else if message.contains("alert: BadCertificate")
        || message.contains("alert: UnknownCA")
        || message.contains("alert: CertificateRequired")
    {
        Some(format!(
            "the engine refused the client certificate {}: it must be signed by the CA dockerd \
             trusts (--tlscacert)",
            dir.join("cert.pem").display()
        ))
    } else {
        None
    };
    EngineError::Docker {
        server,
        op,
        status,
        message: match hint {
            Some(h) => format!("{h} ({message})"),
            None => message,
        },
    }
}
