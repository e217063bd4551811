//! A second "server" on this machine: a network namespace with its own IP, joined to the
//! root namespace by a bridge, running its own dockerd (recipe: /work/shared/DESIGN.md,
//! "Several servers on one machine").
//!
//! Names (bridge, veth, namespace) carry the test process's pid (at most 15 characters);
//! the /24 is taken from 10.77.0.0/16 where nothing else on the machine uses it. [`NetnsServer`]
//! tears everything down on drop, panicking test or not. Needs root.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cmd::{run, run_quiet};
use super::docker;
use super::subnet::reserve_subnet;
use super::wait::Wait;

/// A namespace "server" with its own IP and dockerd.
pub struct NetnsServer {
    /// Namespace name (`ip netns`).
    pub netns: String,
    /// Bridge in the root namespace.
    pub bridge: String,
    /// Root-side end of the veth pair.
    pub veth: String,
    /// The namespace's IP (the server's `host`).
    pub ip: String,
    /// The bridge's IP (the root namespace's address on that link).
    pub gateway: String,
    /// Docker bridge of the namespace dockerd (`--bip`).
    pub bip: String,
    /// State dir: socket, data root, exec root, pidfile, log.
    pub dir: PathBuf,
    dockerd: Option<Child>,
    /// Whether dockerd also listens on `tcp://{ip}:2375` (inside the namespace, so the
    /// control connection crosses the same link as the replicas' traffic).
    tcp: bool,
    /// Whether dockerd also listens on `tcp://{ip}:2376` with `--tlsverify` (certificates
    /// under `dir/tls`: see [`Self::start_with_tls`]).
    tls: bool,
    /// Marker dir that reserves the /24 among concurrent test processes.
    reservation: PathBuf,
    /// The namespace's sshd (see [`Self::start_sshd`]).
    sshd: Option<Child>,
    /// Extra dockerd arguments (see [`Self::start_trusting_registries`]).
    dockerd_args: Vec<String>,
}

/// Port of the namespace dockerd's TCP listener (see [`NetnsServer::start_with_tcp`]).
pub const DOCKER_TCP_PORT: u16 = 2375;

/// Port of the namespace dockerd's TLS listener (see [`NetnsServer::start_with_tls`]).
pub const DOCKER_TLS_PORT: u16 = 2376;

impl NetnsServer {
    /// Creates bridge, namespace, veth pair and addresses, starts dockerd and loads `image`.
    pub fn start(image: &str) -> Self {
        Self::start_inner(image, false, false, "")
    }

    /// Like [`Self::start`], with dockerd also listening on `tcp://{ip}:2376` with
    /// `--tlsverify`: a test CA (`openssl`), a server certificate for the namespace's IP and
    /// a client certificate it signed, in [`Self::tls_client_dir`] (a `DOCKER_CERT_PATH`).
    pub fn start_with_tls(image: &str) -> Self {
        Self::start_inner(image, false, true, "")
    }

    /// `DOCKER_CERT_PATH` of a client the TLS listener accepts.
    pub fn tls_client_dir(&self) -> PathBuf {
        assert!(self.tls, "dockerd was started without TLS");
        self.dir.join("tls/client")
    }

    /// The CA that signed the TLS listener's certificates (to issue more clients).
    pub fn tls_ca(&self) -> super::tls::TestCa {
        super::tls::TestCa {
            dir: self.dir.join("tls/ca"),
        }
    }

    /// `tcp://{ip}:2376` (only with [`Self::start_with_tls`]).
    pub fn tls_docker_host(&self) -> String {
        assert!(self.tls, "dockerd was started without TLS");
        format!("tcp://{}:{DOCKER_TLS_PORT}", self.ip)
    }

    /// Like [`Self::start`], for the `tag`-th of several servers of one test process
    /// (`tag`: one letter, part of the interface names).
    pub fn start_tagged(image: &str, tag: &str) -> Self {
        assert!(tag.len() <= 2, "interface names have at most 15 characters");
        Self::start_inner(image, false, false, tag)
    }

    /// Like [`Self::start`], with dockerd also listening on `tcp://{ip}:2375` (plain HTTP,
    /// bound to the namespace's address only, reachable only over the test bridge). A
    /// server configured with [`Self::tcp_docker_host`] is then cut off, control plane
    /// included, when the link goes down.
    pub fn start_with_tcp(image: &str) -> Self {
        Self::start_inner(image, true, false, "")
    }

    /// Like [`Self::start`], with a dockerd that pulls over plain HTTP from registries on the
    /// test bridges (`--insecure-registry 10.77.0.0/16`; see [`super::registry`]).
    pub fn start_trusting_registries(image: &str) -> Self {
        Self::start_full(
            image,
            false,
            false,
            "",
            vec!["--insecure-registry".into(), "10.77.0.0/16".into()],
        )
    }

    fn start_inner(image: &str, tcp: bool, tls: bool, tag: &str) -> Self {
        Self::start_full(image, tcp, tls, tag, Vec::new())
    }

    fn start_full(image: &str, tcp: bool, tls: bool, tag: &str, dockerd_args: Vec<String>) -> Self {
        let pid = std::process::id();
        // The full pid keeps names unique among live processes ("shn" + 7 digits + tag <= 15).
        let netns = format!("shn{pid}{tag}");
        let bridge = format!("shb{pid}{tag}");
        let veth = format!("shv{pid}{tag}");
        // Leftovers of an earlier (killed) process that had the same pid.
        run_quiet("ip", &["netns", "del", &netns]);
        run_quiet("ip", &["link", "del", &veth]);
        run_quiet("ip", &["link", "del", &bridge]);

        let (octet, reservation) = reserve_subnet(pid);
        let gateway = format!("10.77.{octet}.1");
        let ip = format!("10.77.{octet}.2");
        // Docker's bridge inside the namespace (invisible outside it).
        let bip = format!("172.31.{octet}.1/24");

        let dir = tempfile::Builder::new()
            .prefix("shf")
            .tempdir_in("/tmp")
            .expect("tempdir")
            .keep();
        let mut s = NetnsServer {
            netns,
            bridge,
            veth,
            ip,
            gateway,
            bip,
            dir,
            dockerd: None,
            tcp,
            tls,
            reservation,
            sshd: None,
            dockerd_args,
        };
        // From here on, Drop cleans up whatever was made.
        s.setup_network();
        if tls {
            let ca = super::tls::TestCa::new(&s.dir.join("tls/ca"), "shoal-test-ca");
            ca.server(&s.dir.join("tls/server"), &s.ip);
            ca.client(&s.dir.join("tls/client"));
        }
        s.start_dockerd();
        s.load_image(image);
        s
    }

    fn setup_network(&self) {
        let (br, ns, veth) = (&self.bridge, &self.netns, &self.veth);
        run("ip", &["link", "add", br, "type", "bridge"]);
        run(
            "ip",
            &["addr", "add", &format!("{}/24", self.gateway), "dev", br],
        );
        run("ip", &["link", "set", br, "up"]);
        run("ip", &["netns", "add", ns]);
        run(
            "ip",
            &[
                "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
        );
        run("ip", &["link", "set", veth, "master", br, "up"]);
        run(
            "ip",
            &[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", self.ip),
                "dev",
                "eth0",
            ],
        );
        run("ip", &["-n", ns, "link", "set", "eth0", "up"]);
        run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        run(
            "ip",
            &["-n", ns, "route", "add", "default", "via", &self.gateway],
        );
    }

    /// The dockerd socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `unix:///...` for shoal's `docker_host` and `docker -H`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `tcp://{ip}:2375` (only with [`Self::start_with_tcp`]).
    pub fn tcp_docker_host(&self) -> String {
        assert!(self.tcp, "dockerd was started without its TCP listener");
        format!("tcp://{}:{DOCKER_TCP_PORT}", self.ip)
    }

    /// Takes the root-side veth down (`false`: a partition — packets to the namespace are
    /// dropped, connections hang) or up again (`true`).
    pub fn set_link(&self, up: bool) {
        run(
            "ip",
            &["link", "set", &self.veth, if up { "up" } else { "down" }],
        );
    }

    /// SIGKILLs dockerd (a crash: no container is stopped) and reaps it.
    pub fn kill_dockerd(&mut self) {
        if let Some(mut child) = self.dockerd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Pids of live processes whose command line mentions this server's state dir
    /// (containerd, containerd-shims, docker-proxy), excluding dockerd itself.
    pub fn helper_pids(&self) -> Vec<(u32, String)> {
        let needle = self.dir.display().to_string();
        let dockerd = self.dockerd.as_ref().map(Child::id);
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if Some(pid) == dockerd {
                continue;
            }
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) && !cmd.starts_with("nsenter") {
                out.push((pid, cmd.trim().to_owned()));
            }
        }
        out
    }

    /// A `docker` command against this server's engine.
    pub fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H").arg(self.docker_host());
        c
    }

    /// Whether this server's dockerd is answering.
    pub fn docker_answers(&self) -> bool {
        self.docker()
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts dockerd in the namespace (same data root every time) and waits until it answers.
    pub fn start_dockerd(&mut self) {
        assert!(self.dockerd.is_none(), "dockerd already running");
        let d = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("dockerd.log"))
            .expect("dockerd log");
        // The host's daemon.json (storage driver, MTU, log options) minus what the flags set:
        // dockerd refuses a directive given both ways.
        let mut conf: serde_json::Map<String, serde_json::Value> =
            std::fs::read_to_string("/etc/docker/daemon.json")
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
        for k in [
            "data-root",
            "graph",
            "hosts",
            "exec-root",
            "pidfile",
            "bip",
            "iptables",
        ] {
            conf.remove(k);
        }
        let conf_file = d.join("daemon.json");
        std::fs::write(&conf_file, serde_json::Value::Object(conf).to_string())
            .expect("write daemon.json");
        // `nsenter --net=`, not `ip netns exec` (which remounts /sys and hides the cgroups).
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .arg("dockerd")
            .arg("--config-file")
            .arg(&conf_file)
            .arg("--host")
            .arg(self.docker_host())
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("--bip")
            .arg(&self.bip)
            .arg("--iptables=true")
            .args(&self.dockerd_args)
            .args(
                self.tcp
                    .then(|| format!("--host=tcp://{}:{DOCKER_TCP_PORT}", self.ip)),
            )
            .args(
                self.tls
                    .then(|| {
                        let t = d.join("tls");
                        [
                            format!("--host=tcp://{}:{DOCKER_TLS_PORT}", self.ip),
                            "--tlsverify".to_owned(),
                            format!("--tlscacert={}", t.join("ca/ca.pem").display()),
                            format!("--tlscert={}", t.join("server/cert.pem").display()),
                            format!("--tlskey={}", t.join("server/key.pem").display()),
                        ]
                    })
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd in the namespace");
        self.dockerd = Some(child);
        let log_file = self.dir.join("dockerd.log");
        Wait::new("the namespace dockerd to answer", Duration::from_secs(60))
            .every(Duration::from_millis(250))
            .explain(move || std::fs::read_to_string(log_file).unwrap_or_default())
            .until(|| {
                if let Some(st) = self
                    .dockerd
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    self.dockerd = None;
                    panic!("namespace dockerd exited ({st}):\n{}", self.dockerd_log());
                }
                self.docker_answers()
            });
    }

    /// Sends dockerd SIGTERM (it stops its containers, then exits); [`Self::reap_dockerd`]
    /// waits for the exit.
    pub fn term_dockerd(&self) {
        if let Some(child) = &self.dockerd {
            run_quiet("kill", &["-TERM", &child.id().to_string()]);
        }
    }

    /// Waits (bounded: 30 s) for dockerd to exit after [`Self::term_dockerd`], then SIGKILL.
    /// Returns whether it exited by itself.
    pub fn reap_dockerd(&mut self) -> bool {
        let Some(mut child) = self.dockerd.take() else {
            return true;
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Whether dockerd has exited (reaping it when it has).
    pub fn dockerd_exited(&mut self) -> bool {
        match self.dockerd.as_mut().map(Child::try_wait) {
            None | Some(Ok(Some(_)) | Err(_)) => {
                self.dockerd = None;
                true
            }
            Some(Ok(None)) => false,
        }
    }

    /// Stops dockerd: SIGTERM, bounded wait, then SIGKILL.
    pub fn stop_dockerd(&mut self) -> bool {
        self.term_dockerd();
        self.reap_dockerd()
    }

    /// The dockerd log so far.
    pub fn dockerd_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Copies `image` from the host's engine into this server's.
    pub fn load_image(&self, image: &str) {
        docker::copy_image(image, self.docker());
    }

    /// Ids of containers with `label` on this server (all states when `all`); empty when
    /// dockerd does not answer.
    pub fn container_ids(&self, label: &str, all: bool) -> Vec<String> {
        docker::ids_with_label(self.docker(), label, all)
    }

    /// Running containers of `service` on this server.
    pub fn running(&self, service: &str) -> Vec<String> {
        self.container_ids(&docker::service_label(service), false)
    }

    fn unmount_leftovers(&self) {
        let prefix = self.dir.display().to_string();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        // Deepest first.
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            run_quiet("umount", &[p]);
            run_quiet("umount", &["-l", p]);
        }
    }
}

/// SSH access to a namespace server: its sshd's generated host key, a generated client key
/// it accepts for root, and a known_hosts file that holds its host key.
pub struct SshAccess {
    /// The client's private key.
    pub key: PathBuf,
    /// A known_hosts file with the server's host key (for `ip`, port 22).
    pub known_hosts: PathBuf,
    /// The server's public host key line (`ssh-ed25519 AAAA...`).
    pub host_key_pub: String,
}

impl NetnsServer {
    fn ssh_dir(&self) -> PathBuf {
        self.dir.join("ssh")
    }

    /// Generates a host key, a client key, authorized_keys and known_hosts (once), and
    /// starts sshd in the namespace on `{ip}:22`; waits until it accepts connections.
    pub fn start_sshd(&mut self) -> SshAccess {
        assert!(self.sshd.is_none(), "sshd already running");
        let d = self.ssh_dir();
        let host_key = d.join("host_ed25519");
        let key = d.join("client_ed25519");
        let known_hosts = d.join("known_hosts");
        if !host_key.exists() {
            std::fs::create_dir_all(&d).expect("ssh dir");
            for k in [&host_key, &key] {
                run(
                    "ssh-keygen",
                    &[
                        "-q",
                        "-t",
                        "ed25519",
                        "-N",
                        "",
                        "-C",
                        "shoal-test",
                        "-f",
                        k.to_str().unwrap(),
                    ],
                );
            }
            std::fs::copy(key.with_extension("pub"), d.join("authorized_keys"))
                .expect("authorized_keys");
            std::fs::write(
                d.join("sshd_config"),
                format!(
                    "Port 22\nListenAddress {ip}\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                     PidFile {pid}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                     AllowStreamLocalForwarding local\nAllowTcpForwarding local\nX11Forwarding no\n\
                     PermitTTY no\nMaxStartups 50\n",
                    ip = self.ip,
                    hk = host_key.display(),
                    ak = d.join("authorized_keys").display(),
                    pid = d.join("sshd.pid").display(),
                ),
            )
            .expect("sshd_config");
            let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
            let mut parts = host_pub.split_whitespace();
            let line = format!("{} {}", parts.next().unwrap(), parts.next().unwrap());
            std::fs::write(&known_hosts, format!("{} {line}\n", self.ip)).expect("known_hosts");
        }
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .arg("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd in the namespace");
        self.sshd = Some(child);
        let addr: std::net::SocketAddr = format!("{}:22", self.ip).parse().unwrap();
        Wait::new("the namespace sshd to listen", Duration::from_secs(20))
            .every(Duration::from_millis(100))
            .until(|| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
            });
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        SshAccess {
            key,
            known_hosts,
            host_key_pub: host_pub
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// Stops sshd and every connection it serves (SIGKILL to the listener and its
    /// per-connection children): the SSH control path is cut, the replicas keep running.
    pub fn stop_sshd(&mut self) {
        let Some(mut child) = self.sshd.take() else {
            return;
        };
        // nsenter execs sshd, so the child's pid is sshd's.
        let mut pids = vec![child.id()];
        let mut i = 0;
        while i < pids.len() {
            let p = pids[i];
            let kids =
                std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
            pids.extend(
                kids.split_whitespace()
                    .filter_map(|k| k.parse::<u32>().ok()),
            );
            i += 1;
        }
        for p in pids.iter().rev() {
            run_quiet("kill", &["-KILL", &p.to_string()]);
        }
        let _ = child.wait();
    }

    /// The sshd log so far.
    pub fn sshd_log(&self) -> String {
        std::fs::read_to_string(self.ssh_dir().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for NetnsServer {
    fn drop(&mut self) {
        self.stop_sshd();
        if std::thread::panicking() {
            let log = self.dockerd_log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let _ = writeln!(
                std::io::stderr(),
                "--- namespace dockerd log (last 40 lines) ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        // Containers first, so nothing keeps running detached from a dockerd.
        if self.dockerd.is_some() {
            for id in self.container_ids("io.shoal.managed=true", true) {
                run_quiet("docker", &["-H", &self.docker_host(), "rm", "-f", &id]);
            }
        }
        self.stop_dockerd();
        // A crashed dockerd (or one that had to be killed) leaves shims and their containers
        // running: kill each shim's children (a container's init; its pid namespace goes
        // with it), then the shim.
        for (pid, cmd) in self.helper_pids() {
            if cmd.contains("containerd-shim") {
                let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                    .unwrap_or_default();
                for c in children.split_whitespace() {
                    run_quiet("kill", &["-KILL", c]);
                }
                run_quiet("kill", &["-KILL", &pid.to_string()]);
            }
        }
        // A dockerd that had to be killed leaves its containerd behind.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("exec/containerd/containerd.pid")) {
            let pid = pid.trim();
            if !pid.is_empty() && std::path::Path::new(&format!("/proc/{pid}")).exists() {
                run_quiet("kill", &["-KILL", pid]);
            }
        }
        self.unmount_leftovers();
        run_quiet("ip", &["netns", "del", &self.netns]);
        run_quiet("ip", &["link", "del", &self.veth]);
        run_quiet("ip", &["link", "del", &self.bridge]);
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.dir.exists() {
            self.unmount_leftovers();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        let _ = std::fs::remove_dir_all(&self.reservation);
    }
}
