//! [`RuntimeAddr`]: where the runtime API listens, parsed from `load_balancer.runtime_api`.

use std::fmt;
use std::path::PathBuf;

use crate::config::syntax;
use crate::lb::{host_port, LbError, Result};

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
    /// Parses `unix:/path`, `/abs/path` or `host:port`
    /// ([`crate::config::syntax::runtime_api`], the check the config's validation makes).
    pub fn parse(value: &str) -> Result<Self> {
        match syntax::runtime_api(value) {
            Ok(syntax::RuntimeApi::Unix(p)) => Ok(Self::Unix(p)),
            Ok(syntax::RuntimeApi::Tcp { host, port }) => Ok(Self::Tcp { host, port }),
            Err(reason) => Err(LbError::InvalidAddress {
                value: value.to_owned(),
                reason,
            }),
        }
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
