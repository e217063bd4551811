//! HAProxy: the runtime-API client and the `haproxy.cfg` renderer.
//!
//! This is the only module of shoal that knows the HAProxy protocol. It does not decide
//! anything: the reconcile loop tells it which replica goes in or out, and it carries that
//! out against HAProxy (runtime API) or writes it down (rendered configuration).
//!
//! Facts it relies on, verified against Debian's HAProxy 2.6.12:
//! - a server created with `add server` starts in forced maintenance (`srv_admin_state` 1,
//!   `srv_op_state` 0, check health 0) with its check configured but disabled
//!   (`srv_check_state` 2); `enable health` starts the checks (state 6), and they run and
//!   count (health 0 to rise+fall-1) while the server is still in maintenance;
//! - the first check of a new server runs one `downinter` (default: `inter`) after
//!   `add server`, not at once: with `inter 10s` that is ~10 s.
//!   [`HaproxyClient::register_server`] therefore gives `fastinter`/`downinter` of at most
//!   1 s ([`HealthCheck::fast_inter`]);
//! - leaving maintenance (`set server .. state ready`; `enable server` is deprecated in
//!   2.6) makes a checked server UP at once with health = rise ("start OK but check
//!   immediately"), whatever its checks said, so a new server is put in rotation only once
//!   its checks pass in maintenance ([`ServerState::check_passing`]: `rise` passing checks);
//! - `del server` needs the server in maintenance ("Only servers in maintenance mode can be
//!   deleted.") and answers "Server still has connections attached to it, cannot remove
//!   it." while sessions remain; entering maintenance closes idle server connections at
//!   once, so only active sessions block deletion (`shutdown sessions server` ends them);
//! - `default-server` lines are not applied to dynamic servers: check parameters are passed
//!   explicitly on `add server`;
//! - a dynamic server given a host name gets no address (there is no resolver), so host names
//!   are resolved here before `add server` / `set server .. addr`;
//! - servers from the configuration file can be deleted at runtime too (in maintenance);
//! - an `operator`-level socket answers "Permission denied" to all of the above.

mod render;
mod runtime;

use std::time::Duration;

use crate::config::HealthCheckConfig;

pub use render::{backend_name, frontend_name, render, ACTIVATOR_SERVER, SERVICE_HEADER};
pub use runtime::{
    answer_looks_failed, parse_servers_state, parse_stats, AdminFlags, AdminState, CheckResult,
    HaproxyClient, OpState, RuntimeAddr, ServerState, StatKind, StatRow,
};

/// Errors of the HAProxy client and renderer.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// `load_balancer.runtime_api` is not `unix:/path`, `/abs/path` or `host:port`.
    #[error("invalid runtime API address {value:?}: {reason}")]
    InvalidAddress {
        /// The address as configured.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The runtime API socket could not be reached, or the exchange failed midway.
    #[error("HAProxy runtime API at {addr}: {source}")]
    Connect {
        /// The runtime API address.
        addr: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A command did not complete (connect, write, read to EOF) within the timeout.
    #[error("HAProxy runtime API at {addr} did not complete {command:?} within {timeout:?}")]
    Timeout {
        /// The runtime API address.
        addr: String,
        /// The command sent.
        command: String,
        /// The per-command timeout.
        timeout: Duration,
    },
    /// HAProxy answered with an error message.
    #[error("HAProxy refused {command:?}: {answer}")]
    Refused {
        /// The command sent.
        command: String,
        /// HAProxy's answer, trimmed.
        answer: String,
    },
    /// HAProxy's answer could not be parsed.
    #[error("cannot parse HAProxy's answer to {command:?}: {reason}")]
    Parse {
        /// The command sent.
        command: String,
        /// What did not match the expected format.
        reason: String,
    },
    /// A name, host, path or command was refused before anything was sent.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// What the value is (backend name, server name, host, command, ...).
        what: &'static str,
        /// The refused value.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A replica host name did not resolve to an address.
    #[error("cannot resolve host {host:?}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why resolution failed.
        reason: String,
    },
    /// The server is not (or no longer) in the backend.
    #[error("no server {backend}/{server} in HAProxy")]
    NoSuchServer {
        /// Backend name.
        backend: String,
        /// Server name.
        server: String,
    },
    /// `del server` kept answering that connections are still attached.
    #[error("HAProxy refuses to delete {backend}/{server}: it still has connections attached")]
    StillConnected {
        /// Backend name.
        backend: String,
        /// Server name.
        server: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = LbError> = std::result::Result<T, E>;

/// HAProxy check parameters of one replica, independent of the probed path (the path is
/// the backend's `option httpchk`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Interval between two checks (`inter`). At least 1 ms.
    pub inter: Duration,
    /// Consecutive failed checks that take a running server DOWN (`fall`). At least 1.
    pub fall: u32,
    /// Consecutive passed checks that bring a DOWN server back UP (`rise`), and that a new
    /// server needs before it is put in rotation ([`ServerState::check_passing`]). At least 1.
    pub rise: u32,
    /// Timeout of one probe (rendered as the backend's `timeout check`; HAProxy 2.6 has no
    /// per-server check timeout, so runtime-added servers use the backend's).
    pub timeout: Duration,
}

/// `rise` used when the configuration does not say (HAProxy's default).
pub const DEFAULT_RISE: u32 = 2;

/// Upper bound of [`HealthCheck::fast_inter`].
const FAST_INTER_MAX: Duration = Duration::from_secs(1);

impl HealthCheck {
    /// Check parameters from a service's `health_check` section: `interval` -> `inter`,
    /// `unhealthy_threshold` -> `fall`, [`DEFAULT_RISE`] -> `rise`, `timeout`.
    #[must_use]
    pub fn from_config(hc: &HealthCheckConfig) -> Self {
        Self {
            inter: hc.interval(),
            fall: *hc.unhealthy_threshold,
            rise: DEFAULT_RISE,
            timeout: hc.timeout(),
        }
    }

    /// Check interval while a server is DOWN or changing state (`downinter`, `fastinter`):
    /// `inter`, at most 1 s. HAProxy schedules a new server's first check after
    /// `downinter` (default `inter`), so this bounds how long a new replica waits for its
    /// first check, and makes transitions quicker without probing healthy servers more.
    #[must_use]
    pub fn fast_inter(&self) -> Duration {
        self.inter.min(FAST_INTER_MAX)
    }

    /// The check keywords shared by `add server` and `default-server`:
    /// `inter <ms>ms fastinter <ms>ms downinter <ms>ms fall <n> rise <n>`.
    pub(crate) fn keywords(&self) -> String {
        let fast = self.fast_inter().as_millis().max(1);
        format!(
            "inter {}ms fastinter {fast}ms downinter {fast}ms fall {} rise {}",
            self.inter.as_millis().max(1),
            self.fall.max(1),
            self.rise.max(1)
        )
    }
}

/// One replica as HAProxy sees it: a server line of a service's backend.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// HAProxy server name (unique within the backend).
    pub name: String,
    /// Address HAProxy connects to (IP address or host name).
    pub host: String,
    /// Port HAProxy connects to.
    pub port: u16,
}

impl Member {
    /// A member from its parts.
    #[must_use]
    pub fn new(name: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Self {
            name: name.into(),
            host: host.into(),
            port,
        }
    }
}

/// Longest accepted proxy or server name.
const MAX_NAME_LEN: usize = 100;

/// Checks a backend, frontend or server name before it goes into a command or a
/// configuration line: 1-100 characters of ASCII letters, digits, `-`, `_` and `.`.
/// This refuses whitespace, `;`, `#`, `/`, `\`, quotes and control characters.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let bad = |reason: String| {
        Err(LbError::InvalidName {
            what,
            value: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return bad(format!("longer than {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return bad(format!(
            "character {c:?} is not allowed (only letters, digits, '-', '_' and '.')"
        ));
    }
    Ok(())
}

/// Checks a host (IP address or DNS name) before it goes into a command or a
/// configuration line: [`crate::config::syntax::host`], the check the config's validation
/// makes of every server `host`.
pub fn validate_host(host: &str) -> Result<()> {
    crate::config::syntax::host(host).map_err(|reason| LbError::InvalidName {
        what: "host",
        value: host.to_owned(),
        reason,
    })
}

/// Checks a free-form argument (a path, an address) before it goes into a configuration
/// line: [`crate::config::syntax::safe_arg`] (no empty value, whitespace, `;`, `#`, `\`,
/// quotes or control characters).
pub(crate) fn validate_arg(what: &'static str, value: &str) -> Result<()> {
    crate::config::syntax::safe_arg(value).map_err(|reason| LbError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    })
}

/// `host:port` as HAProxy expects it (IPv6 addresses in brackets).
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_separators_and_whitespace() {
        for bad in [
            "a b", "a;b", "a#b", "a/b", "", "a\nb", "a\tb", "a\\b", "a'b", "é",
        ] {
            let e = validate_name("server name", bad).unwrap_err();
            assert!(matches!(e, LbError::InvalidName { .. }), "{bad:?}: {e}");
        }
        let long = "a".repeat(101);
        assert!(validate_name("server name", &long).is_err());
        for good in ["web", "web_backend", "web-server1-3f2a", "a.b", "A9"] {
            validate_name("server name", good).unwrap();
        }
    }

    #[test]
    fn error_message_names_the_offending_character() {
        let e = validate_name("server name", "a;b").unwrap_err().to_string();
        assert!(e.contains("server name") && e.contains("';'"), "{e}");
    }

    #[test]
    fn hosts_are_ip_or_dns_names() {
        for good in [
            "10.0.0.1",
            "::1",
            "fe80::1",
            "server-1.example.com",
            "localhost",
        ] {
            validate_host(good).unwrap();
        }
        for bad in ["", "a b", "1.2.3.4;x", "[::1]", "h#", "a/b"] {
            assert!(validate_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn args_refuse_command_separators() {
        validate_arg("path", "/run/haproxy/admin.sock").unwrap();
        for bad in ["/a b", "/a;b", "/a#b", "/a\0b", ""] {
            assert!(validate_arg("path", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_port_brackets_ipv6() {
        assert_eq!(host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(host_port("::1", 80), "[::1]:80");
        assert_eq!(host_port("example.com", 8080), "example.com:8080");
    }

    #[test]
    fn health_check_from_config() {
        let hc = HealthCheck::from_config(&HealthCheckConfig::default());
        assert_eq!(hc.inter, Duration::from_secs(10));
        assert_eq!((hc.fall, hc.rise), (3, DEFAULT_RISE));
        assert_eq!(hc.timeout, Duration::from_secs(5));
        assert_eq!(
            hc.keywords(),
            "inter 10000ms fastinter 1000ms downinter 1000ms fall 3 rise 2"
        );
        let fast = HealthCheck {
            inter: Duration::from_millis(200),
            ..hc
        };
        assert_eq!(fast.fast_inter(), Duration::from_millis(200));
    }
}
