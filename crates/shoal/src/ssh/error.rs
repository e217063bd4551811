//! Why an SSH connection could not be made, in words an operator can act on.

use std::path::{Path, PathBuf};

use super::{keyscan_hint, SshSettings, SshTarget};

/// Why a server could not be reached over SSH.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SshError {
    /// The private key cannot be used.
    #[error("SSH to {server}: {reason}")]
    KeyFile {
        /// Server name.
        server: String,
        /// What is wrong with the file.
        reason: String,
    },
    /// The known_hosts file does not exist.
    #[error(
        "SSH to {server} refused: the known_hosts file {} does not exist, so the server's host \
         key cannot be verified; after checking the key's fingerprint with the server's \
         administrator, add it with: {keyscan}", file.display()
    )]
    NoKnownHosts {
        /// Server name.
        server: String,
        /// The file.
        file: PathBuf,
        /// The command that adds the key.
        keyscan: String,
    },
    /// The server's host key is not in known_hosts.
    #[error(
        "SSH to {server} refused: no {alg} host key is known for {name} in {} (strict checking); \
         after checking the key's fingerprint with the server's administrator, add it with: \
         {keyscan}", file.display()
    )]
    HostKeyUnknown {
        /// Server name.
        server: String,
        /// Key type the server offered (`ED25519`, ...).
        alg: String,
        /// The host as known_hosts names it.
        name: String,
        /// The known_hosts file.
        file: PathBuf,
        /// The command that adds the key.
        keyscan: String,
    },
    /// The server's host key differs from the one in known_hosts.
    #[error(
        "SSH to {server} refused: the host key of {name} has CHANGED: the server sent {alg} key \
         {fingerprint}, but {offending} holds a different one. Someone may be intercepting the \
         connection; if the change is expected (the server was reinstalled), remove the old key \
         with: ssh-keygen -f {} -R '{name}', then add the new one with: {keyscan}", file.display()
    )]
    HostKeyChanged {
        /// Server name.
        server: String,
        /// Key type.
        alg: String,
        /// The key the server sent (`SHA256:...`).
        fingerprint: String,
        /// The host as known_hosts names it.
        name: String,
        /// `FILE:LINE` of the key on record.
        offending: String,
        /// The known_hosts file.
        file: PathBuf,
        /// The command that adds the key.
        keyscan: String,
    },
    /// The server refused the key.
    #[error("SSH to {server}: {dest} rejected the login ({detail}); is the public key of {key} in the user's authorized_keys?")]
    AuthRejected {
        /// Server name.
        server: String,
        /// `user@host:port`.
        dest: String,
        /// The key used.
        key: String,
        /// ssh's words.
        detail: String,
    },
    /// Nothing listens on the port, or the host is unreachable.
    #[error("SSH to {server}: cannot connect to {dest}: {detail}")]
    Connect {
        /// Server name.
        server: String,
        /// `user@host:port`.
        dest: String,
        /// ssh's words (`Connection refused`, `Connection timed out`, ...).
        detail: String,
    },
    /// The connection (or the forward) was not up in time.
    #[error("SSH to {server}: {dest} did not answer within {secs}s")]
    Timeout {
        /// Server name.
        server: String,
        /// `user@host:port`.
        dest: String,
        /// The bound.
        secs: u64,
    },
    /// The connection was made, but the Docker socket could not be forwarded.
    #[error("SSH to {server}: connected, but forwarding the Docker socket failed: {detail}")]
    Forward {
        /// Server name.
        server: String,
        /// ssh's words.
        detail: String,
    },
    /// Anything else ssh said.
    #[error("SSH to {server} failed: {detail}")]
    Other {
        /// Server name.
        server: String,
        /// ssh's last words.
        detail: String,
    },
    /// A local problem (no ssh binary, no run directory).
    #[error("SSH to {server}: {reason}")]
    Local {
        /// Server name.
        server: String,
        /// Why.
        reason: String,
    },
}

impl SshError {
    /// Whether the server's identity could not be verified (unknown or changed host key).
    #[must_use]
    pub fn is_host_key(&self) -> bool {
        matches!(
            self,
            Self::NoKnownHosts { .. } | Self::HostKeyUnknown { .. } | Self::HostKeyChanged { .. }
        )
    }

    /// Reads ssh's log (`-E`) of a connection that exited.
    #[must_use]
    pub fn interpret(t: &SshTarget, s: &SshSettings, log: &str, _code: Option<i32>) -> Self {
        let server = t.server.clone();
        let file = s.known_hosts.clone();
        let keyscan = keyscan_hint(t, &file);
        let lines: Vec<&str> = log
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let find = |needle: &str| lines.iter().find(|l| l.contains(needle)).copied();
        if find("REMOTE HOST IDENTIFICATION HAS CHANGED").is_some()
            || find("has changed and you have requested strict checking").is_some()
        {
            let alg = find("key sent by the remote host is")
                .and_then(|l| l.split_whitespace().nth(3))
                .unwrap_or("host")
                .to_owned();
            let fingerprint = lines
                .iter()
                .find(|l| l.starts_with("SHA256:") || l.starts_with("MD5:"))
                .map_or_else(String::new, |l| l.trim_end_matches('.').to_owned());
            let offending = find("Offending")
                .and_then(|l| l.split(" in ").nth(1))
                .map_or_else(|| file.display().to_string(), str::to_owned);
            return Self::HostKeyChanged {
                server,
                alg,
                fingerprint,
                name: t.known_hosts_name(),
                offending,
                file,
                keyscan,
            };
        }
        if let Some(l) = find("host key is known for") {
            // "No ED25519 host key is known for [h]:p and you have requested strict checking."
            let alg = l.split_whitespace().nth(1).unwrap_or("host").to_owned();
            return Self::HostKeyUnknown {
                server,
                alg,
                name: t.known_hosts_name(),
                file,
                keyscan,
            };
        }
        if find("Host key verification failed").is_some() {
            return Self::HostKeyUnknown {
                server,
                alg: "host".to_owned(),
                name: t.known_hosts_name(),
                file,
                keyscan,
            };
        }
        let dest = t.display();
        if let Some(l) = find("Permission denied") {
            return Self::AuthRejected {
                server,
                dest,
                key: t.key.as_deref().map_or_else(
                    || "ssh's default keys".to_owned(),
                    |k| Path::display(k).to_string(),
                ),
                detail: l.rsplit(": ").next().unwrap_or(l).to_owned(),
            };
        }
        if let Some(l) = find("connect to host") {
            return Self::Connect {
                server,
                dest,
                detail: l.rsplit(": ").next().unwrap_or(l).to_owned(),
            };
        }
        if let Some(l) = find("forward").or_else(|| find("Could not request local forwarding")) {
            return Self::Forward {
                server,
                detail: l.to_owned(),
            };
        }
        let tail: Vec<&str> = lines.iter().rev().take(3).rev().copied().collect();
        Self::Other {
            server,
            detail: if tail.is_empty() {
                "ssh exited without a message".to_owned()
            } else {
                tail.join(" / ")
            },
        }
    }
}
