//! [`RuntimeAddr`]: where the runtime API listens, parsed from `load_balancer.runtime_api`.

use std::fmt;
use std::path::PathBuf;

use crate::lb::{host_port, validate_host, LbError, Result};

/// Where the runtime API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeAddr {
    /// A unix socket (`unix:/path` or `/abs/path`).
    Unix(PathBuf),
    /// A TCP socket (`host:port`, IPv6 as `[addr]:port`).
    Tcp {
        /// Host name or IP address (without brackets).
        host: String,
        /// Port.
        port: u16,
    },
}

impl RuntimeAddr {
    /// Parses `unix:/path`, `/abs/path` or `host:port`.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |reason: &str| LbError::InvalidAddress {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let v = value.trim();
        if let Some(path) = v.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("the unix socket path is empty"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if v.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(v)));
        }
        let (host, port) = v
            .rsplit_once(':')
            .ok_or_else(|| bad("expected unix:/path, /absolute/path or host:port"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port must be 1-65535"))?;
        validate_host(host).map_err(|_| bad("the host must be an IP address or a DNS name"))?;
        Ok(Self::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for RuntimeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp { host, port } => f.write_str(&host_port(host, *port)),
        }
    }
}
