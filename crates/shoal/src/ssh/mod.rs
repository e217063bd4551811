//! SSH transport: one multiplexed connection per server that forwards the server's Docker
//! socket to a local unix socket, which [`crate::engine::Engine`] then talks to.
//!
//! The connection is the system's OpenSSH client run as a ControlMaster in the foreground
//! (`ssh -M -S CTL -N -L LOCAL:REMOTE`), a child process shoal owns: a watcher task learns
//! the moment it exits, and dropping the [`Tunnel`] kills it. Every argument is passed as
//! argv; no shell and no command string is ever built. Host keys are verified against one
//! known_hosts file only (`StrictHostKeyChecking=yes`, `UserKnownHostsFile=FILE`,
//! `GlobalKnownHostsFile=/dev/null`, `-F none`): an unknown or changed key is refused with
//! a [`SshError`] that names the key, the file and the command that adds it.
//!
//! The control and forwarded sockets of a server live at fixed paths in a private (0700)
//! run directory, so a shoal that was SIGKILLed leaves nothing behind that the next start
//! does not clean up first (`ssh -O exit` on a stale control socket).

mod error;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

pub use error::SshError;

use crate::config::{Config, DockerEndpoint, ServerConfig};

/// Settings shared by every SSH connection of one shoal process.
#[derive(Clone, Debug)]
pub struct SshSettings {
    /// The only known_hosts file consulted (`~` expanded).
    pub known_hosts: PathBuf,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Private directory for control and forwarded sockets and ssh's logs.
    pub run_dir: PathBuf,
}

impl SshSettings {
    /// Settings of `config`'s `ssh:` section, with sockets under `run_dir`.
    #[must_use]
    pub fn new(config: &Config, run_dir: PathBuf) -> Self {
        Self {
            known_hosts: expand_home(&config.ssh.known_hosts),
            connect_timeout: config.ssh.connect_timeout(),
            run_dir,
        }
    }

    /// The run directory of a `serve` whose state file is `state_file`: one per state file
    /// (so two instances never share sockets) and stable across restarts (so leftovers of a
    /// killed one are found): `$TMPDIR/shoal-ssh-HASH`.
    #[must_use]
    pub fn run_dir_for(state_file: &Path) -> PathBuf {
        use sha2::{Digest, Sha256};
        let abs = std::path::absolute(state_file).unwrap_or_else(|_| state_file.to_owned());
        let hash = Sha256::digest(abs.as_os_str().as_encoded_bytes());
        let hex: String = hash[..5].iter().map(|b| format!("{b:02x}")).collect();
        std::env::temp_dir().join(format!("shoal-ssh-{hex}"))
    }
}

/// `~/x` with the home directory (`$HOME`); anything else as it is.
#[must_use]
pub fn expand_home(p: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => {
            std::env::var_os("HOME").map_or_else(|| p.to_owned(), |h| PathBuf::from(h).join(rest))
        }
        Err(_) => p.to_owned(),
    }
}

/// Where and as whom one server is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    /// Server name (names the sockets).
    pub server: String,
    /// Login user (`None`: ssh's default, the local user).
    pub user: Option<String>,
    /// Host name or address.
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// Private key (`None`: ssh's default identities).
    pub key: Option<PathBuf>,
    /// The Docker socket's path on the server.
    pub remote_socket: String,
}

impl SshTarget {
    /// The target of a server reached over SSH; `None` for a `docker_host` server.
    #[must_use]
    pub fn of(server: &ServerConfig) -> Option<Self> {
        match server.endpoint() {
            DockerEndpoint::Ssh {
                user,
                host,
                port,
                key,
                socket,
            } => Some(Self {
                server: server.name.value.clone(),
                user,
                host,
                port,
                key: key.map(|k| expand_home(&k)),
                remote_socket: socket,
            }),
            _ => None,
        }
    }

    /// How known_hosts names this host: `host`, or `[host]:port` off port 22.
    #[must_use]
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }

    /// `user@host:port` for messages.
    #[must_use]
    pub fn display(&self) -> String {
        format!(
            "{}{}:{}",
            self.user
                .as_ref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default(),
            self.host,
            self.port
        )
    }
}

/// Problems of the local files an SSH server needs (its key, the known_hosts file), one
/// sentence each; empty when there are none. Reads only file metadata.
#[must_use]
pub fn local_file_problems(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut any_ssh = false;
    for s in &config.servers {
        let Some(t) = SshTarget::of(s) else { continue };
        any_ssh = true;
        if let Some(key) = &t.key {
            if let Err(e) = check_key_file(key) {
                out.push((s.name.value.clone(), e));
            }
        }
    }
    if any_ssh {
        let kh = expand_home(&config.ssh.known_hosts);
        if !kh.is_file() {
            out.push((
                "ssh".to_owned(),
                format!(
                    "known_hosts file {} does not exist: every SSH server will be refused \
                     (add each server's key with: ssh-keyscan -p PORT HOST >> {})",
                    kh.display(),
                    kh.display()
                ),
            ));
        }
    }
    out
}

fn check_key_file(key: &Path) -> Result<(), String> {
    match std::fs::metadata(key) {
        Ok(m) if m.is_file() => std::fs::File::open(key)
            .map(|_| ())
            .map_err(|e| format!("ssh_key {} cannot be read: {e}", key.display())),
        Ok(_) => Err(format!("ssh_key {} is not a file", key.display())),
        Err(e) => Err(format!("ssh_key {} cannot be used: {e}", key.display())),
    }
}

/// A live SSH connection forwarding a server's Docker socket to [`Tunnel::local_socket`].
/// Dropping it ends the connection.
#[derive(Debug)]
pub struct Tunnel {
    target: SshTarget,
    local: PathBuf,
    ctl: PathBuf,
    alive: Arc<AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
}

impl Tunnel {
    /// Connects to `target` and forwards its Docker socket; returns once the local socket
    /// accepts connections, or the reason it never will. Bounded by the connect timeout
    /// plus a few seconds for the forward.
    pub async fn open(target: &SshTarget, settings: &SshSettings) -> Result<Self, SshError> {
        if let Some(key) = &target.key {
            check_key_file(key).map_err(|reason| SshError::KeyFile {
                server: target.server.clone(),
                reason,
            })?;
        }
        if !settings.known_hosts.is_file() {
            return Err(SshError::NoKnownHosts {
                server: target.server.clone(),
                file: settings.known_hosts.clone(),
                keyscan: keyscan_hint(target, &settings.known_hosts),
            });
        }
        make_private_dir(&settings.run_dir).map_err(|e| SshError::Local {
            server: target.server.clone(),
            reason: format!("cannot create {}: {e}", settings.run_dir.display()),
        })?;
        let base = settings.run_dir.join(&target.server);
        let ctl = base.with_extension("ctl");
        let local = base.with_extension("sock");
        let log = base.with_extension("log");
        clean_stale(&ctl, &local).await;
        let _ = std::fs::remove_file(&log);

        let mut cmd = Command::new("ssh");
        cmd.args(ssh_args(target, settings, &ctl, &local, &log))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| SshError::Local {
            server: target.server.clone(),
            reason: format!("cannot run ssh: {e}"),
        })?;

        let started = tokio::time::Instant::now();
        let deadline = started + settings.connect_timeout + FORWARD_SLACK;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(SshError::interpret(target, settings, &text, status.code()));
            }
            if tokio::net::UnixStream::connect(&local).await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(SshError::Timeout {
                    server: target.server.clone(),
                    dest: target.display(),
                    secs: (settings.connect_timeout + FORWARD_SLACK).as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let setup_ms = started.elapsed().as_millis() as u64;

        let alive = Arc::new(AtomicBool::new(true));
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(watch(
            child,
            stopped,
            alive.clone(),
            target.server.clone(),
            log,
        ));
        tracing::info!(server = %target.server, dest = %target.display(), setup_ms,
            "SSH connection established");
        Ok(Self {
            target: target.clone(),
            local,
            ctl,
            alive,
            stop: Some(stop),
        })
    }

    /// The local socket that reaches the server's Docker socket.
    #[must_use]
    pub fn local_socket(&self) -> &Path {
        &self.local
    }

    /// The ControlMaster's socket (further sessions multiplex over it).
    #[must_use]
    pub fn control_socket(&self) -> &Path {
        &self.ctl
    }

    /// Whether the connection is still up (its ssh process has not exited).
    #[must_use]
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// The server it connects to.
    #[must_use]
    pub fn target(&self) -> &SshTarget {
        &self.target
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        // The watcher kills ssh; the next open of this server clears its socket files.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Extra time beyond the connect timeout for the forward to be listening.
const FORWARD_SLACK: Duration = Duration::from_secs(3);

/// Keepalive: a connection whose server stops answering is noticed within
/// `ALIVE_INTERVAL * ALIVE_COUNT` (ssh then exits and the watcher marks it dead).
const ALIVE_INTERVAL: u32 = 2;
const ALIVE_COUNT: u32 = 3;

fn ssh_args(
    t: &SshTarget,
    s: &SshSettings,
    ctl: &Path,
    local: &Path,
    log: &Path,
) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = Vec::new();
    let mut opt = |k: &str, v: &std::ffi::OsStr| {
        let mut o = std::ffi::OsString::from(format!("{k}="));
        o.push(v);
        a.push("-o".into());
        a.push(o);
    };
    opt("BatchMode", "yes".as_ref());
    opt("StrictHostKeyChecking", "yes".as_ref());
    opt("UserKnownHostsFile", s.known_hosts.as_os_str());
    opt("GlobalKnownHostsFile", "/dev/null".as_ref());
    opt("UpdateHostKeys", "no".as_ref());
    opt(
        "ConnectTimeout",
        s.connect_timeout.as_secs().max(1).to_string().as_ref(),
    );
    opt("ServerAliveInterval", ALIVE_INTERVAL.to_string().as_ref());
    opt("ServerAliveCountMax", ALIVE_COUNT.to_string().as_ref());
    opt("ExitOnForwardFailure", "yes".as_ref());
    opt("StreamLocalBindUnlink", "yes".as_ref());
    opt("StreamLocalBindMask", "0177".as_ref());
    opt("ControlPersist", "no".as_ref());
    opt("PasswordAuthentication", "no".as_ref());
    opt("KbdInteractiveAuthentication", "no".as_ref());
    if t.key.is_some() {
        opt("IdentitiesOnly", "yes".as_ref());
    }
    let mut forward = local.as_os_str().to_owned();
    forward.push(":");
    forward.push(&t.remote_socket);
    let mut v: Vec<std::ffi::OsString> = vec![
        "-F".into(),
        "none".into(),
        "-E".into(),
        log.into(),
        "-M".into(),
        "-S".into(),
        ctl.into(),
        "-N".into(),
        "-T".into(),
        "-p".into(),
        t.port.to_string().into(),
        "-L".into(),
        forward,
    ];
    if let Some(u) = &t.user {
        v.push("-l".into());
        v.push(u.into());
    }
    if let Some(k) = &t.key {
        v.push("-i".into());
        v.push(k.into());
    }
    v.extend(a);
    // `--` ends the options: a host can never be read as one.
    v.push("--".into());
    v.push(t.host.clone().into());
    v
}

async fn watch(
    mut child: Child,
    stopped: oneshot::Receiver<()>,
    alive: Arc<AtomicBool>,
    server: String,
    log: PathBuf,
) {
    tokio::select! {
        status = child.wait() => {
            alive.store(false, Ordering::SeqCst);
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            tracing::warn!(server, status = ?status.ok(), last, "SSH connection ended");
        }
        _ = stopped => {
            alive.store(false, Ordering::SeqCst);
            let _ = child.kill().await;
        }
    }
}

/// Creates `dir` mode 0700, or takes an existing one only when it is a real directory
/// (not a symlink) owned by this process's user: the directory's name is predictable, and a
/// directory another local user made first would give them the forwarded Docker socket.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    // `/proc/self` belongs to this process's effective user.
    let me = std::fs::metadata("/proc/self")?.uid();
    if !meta.is_dir() || meta.uid() != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory of user {me} (a symlink, or made by uid {}); remove it",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Ends a master a killed shoal left behind and removes its sockets.
async fn clean_stale(ctl: &Path, local: &Path) {
    if ctl.exists() {
        let exit = Command::new("ssh")
            .args(["-F", "none", "-S"])
            .arg(ctl)
            .args(["-O", "exit", "--", "stale"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status();
        let _ = tokio::time::timeout(Duration::from_secs(3), exit).await;
        let _ = std::fs::remove_file(ctl);
    }
    let _ = std::fs::remove_file(local);
}

/// The command that adds `target`'s host key to `file`.
fn keyscan_hint(target: &SshTarget, file: &Path) -> String {
    format!(
        "ssh-keyscan -p {} {} >> {}",
        target.port,
        target.host,
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_directory_someone_else_made_first_is_refused() {
        let base = tempfile::tempdir().unwrap();
        // Ours: made, or taken again, 0700.
        let ours = base.path().join("ours");
        make_private_dir(&ours).unwrap();
        make_private_dir(&ours).unwrap();
        // A symlink planted at the name, to a directory its maker controls.
        let elsewhere = base.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let planted = base.path().join("planted");
        std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
        let e = make_private_dir(&planted).unwrap_err();
        assert!(e.to_string().contains("is not a directory of user"), "{e}");
        // Another user's directory (the tests run as root, which can make one).
        let theirs = base.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        if std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).is_ok() {
            let e = make_private_dir(&theirs).unwrap_err();
            assert!(e.to_string().contains("made by uid 65534"), "{e}");
        }
    }

    #[test]
    fn ssh_is_key_only_with_verified_host_keys_and_the_host_after_the_options() {
        let cfg = Config::parse(
            "ssh:\n  known_hosts: /etc/shoal/known_hosts\nservers:\n  - host: 10.0.0.7\n    name: s1\n    ssh_user: admin\n    ssh_key: /k/id\nservices:\n  web:\n    image: img:1\n    port: 8080\n",
            "t.yaml",
        )
        .unwrap();
        let target = SshTarget::of(&cfg.servers[0]).unwrap();
        let settings = SshSettings::new(&cfg, PathBuf::from("/run/x"));
        let args: Vec<String> = ssh_args(
            &target,
            &settings,
            Path::new("/run/x/ctl"),
            Path::new("/run/x/sock"),
            Path::new("/run/x/log"),
        )
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        for opt in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "UserKnownHostsFile=/etc/shoal/known_hosts",
            "GlobalKnownHostsFile=/dev/null",
            "UpdateHostKeys=no",
            "PasswordAuthentication=no",
            "KbdInteractiveAuthentication=no",
            "IdentitiesOnly=yes",
        ] {
            let i = args
                .iter()
                .position(|a| a == opt)
                .unwrap_or_else(|| panic!("{opt} missing: {args:?}"));
            assert_eq!(args[i - 1], "-o", "{opt}");
        }
        assert_eq!(
            &args[..2],
            ["-F", "none"],
            "no user or system ssh_config is read"
        );
        assert_eq!(
            &args[args.len() - 2..],
            ["--", "10.0.0.7"],
            "the host comes after --"
        );
    }
}
