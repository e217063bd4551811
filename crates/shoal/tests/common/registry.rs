//! A real image registry: Debian's `docker-registry` (the CNCF distribution registry),
//! serving plain HTTP on a namespace server's bridge address (`gateway:port`), with its
//! storage in a temp dir; stopped and removed on drop. Images are built and pushed through
//! the namespace server's dockerd (the host's refuses plain-HTTP registries; DESIGN.md).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::netns::NetnsServer;
use super::wait::Wait;

/// A running registry.
pub struct Registry {
    /// `host:port` it serves on.
    pub addr: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    /// Starts a registry on `host` (an address of this machine) at a free port.
    pub fn start(host: &str) -> Self {
        Self::start_with(host, |_| (String::new(), String::new()))
    }

    /// Like [`Self::start`], with extra YAML made from the registry's directory (where the
    /// caller put its certificate and htpasswd file): lines under `http:` (`tls:`) and
    /// top-level ones (`auth:`).
    pub fn start_with(
        host: &str,
        extra: impl FnOnce(&std::path::Path) -> (String, String),
    ) -> Self {
        let port = {
            let l = std::net::TcpListener::bind(format!("{host}:0")).expect("a free port");
            l.local_addr().unwrap().port()
        };
        let addr = format!("{host}:{port}");
        let dir = tempfile::tempdir().expect("tempdir");
        let (http_extra, top_extra) = extra(dir.path());
        let conf = dir.path().join("registry.yml");
        std::fs::write(
            &conf,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{http_extra}{top_extra}",
                root = dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (apt install docker-registry)");
        let r = Registry { addr, dir, child };
        let target: std::net::SocketAddr = r.addr.parse().unwrap();
        Wait::new("the registry to listen", Duration::from_secs(30))
            .every(Duration::from_millis(100))
            .explain(|| r.log())
            .until(|| {
                std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok()
            });
        r
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the registry process: a registry that accepts
    /// connections and does not answer, then answers again.
    pub fn pause(&self, paused: bool) {
        let sig = if paused { "-STOP" } else { "-CONT" };
        super::cmd::run("kill", &[sig, &self.child.id().to_string()]);
    }

    /// The registry's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The registry's directory (for certificates and htpasswd files).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// `addr/name:tag`.
    pub fn image(&self, name_tag: &str) -> String {
        format!("{}/{name_tag}", self.addr)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Resumes the registry if a test paused it and panicked (a stopped process would not
    /// die of SIGKILL until continued on some kernels; continuing first is harmless).
    pub fn resume_quietly(&self) {
        super::cmd::run_quiet("kill", &["-CONT", &self.child.id().to_string()]);
    }
}

/// Builds `tag` on `ns`'s dockerd from `base` (present there) with the Dockerfile `lines`
/// after `FROM base`; no file or image on the host.
pub fn build(ns: &NetnsServer, base: &str, lines: &str, tag: &str) {
    let mut child = ns
        .docker()
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker build");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("FROM {base}\n{lines}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `docker tag SRC DST` and `docker push DST` through `ns`'s dockerd. Returns the pushed
/// digest (`sha256:...`).
pub fn push(ns: &NetnsServer, src: &str, dst: &str) -> String {
    push_as(ns, src, dst, None)
}

/// [`push`] with the docker CLI config in `config` (after a `docker login`).
pub fn push_as(ns: &NetnsServer, src: &str, dst: &str, config: Option<&std::path::Path>) -> String {
    let ok = |mut c: Command, what: &str| {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut t = ns.docker();
    t.args(["tag", src, dst]);
    ok(t, "docker tag");
    let mut p = ns.docker();
    if let Some(c) = config {
        p.env("DOCKER_CONFIG", c);
    }
    p.args(["push", dst]);
    let out = ok(p, "docker push");
    out.split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .expect("a digest in docker push's output")
        .to_owned()
}

/// The image ID of `image` on `ns`'s dockerd.
pub fn image_id(ns: &NetnsServer, image: &str) -> String {
    let out = ns
        .docker()
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .unwrap();
    assert!(out.status.success(), "inspect {image}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A registry with TLS (a certificate for its address from a test CA the namespace
/// servers' dockerd trusts through `/etc/docker/certs.d/<addr>/ca.crt`, removed on drop)
/// and htpasswd auth with one user.
pub struct PrivateRegistry {
    /// The registry.
    pub registry: Registry,
    /// `/etc/docker/certs.d/<addr>`.
    trust: PathBuf,
    /// A docker CLI config dir for `docker login` (so the host's ~/.docker stays untouched).
    pub docker_config: tempfile::TempDir,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivateRegistry {
    /// Starts it on `host` with user `user` / `password`.
    pub fn start(host: &str, user: &str, password: &str) -> Self {
        let hash = bcrypt::hash(password, 4).expect("bcrypt");
        let registry = Registry::start_with(host, |d| {
            let p = |f: &str| d.join(f).display().to_string();
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=shoal test CA",
                "-keyout",
                &p("ca.key"),
                "-out",
                &p("ca.crt"),
            ]);
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={host}"),
                "-addext",
                &format!("subjectAltName=IP:{host}"),
                "-keyout",
                &p("server.key"),
                "-out",
                &p("server.csr"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &p("server.csr"),
                "-CA",
                &p("ca.crt"),
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-copy_extensions",
                "copyall",
                "-out",
                &p("server.crt"),
            ]);
            std::fs::write(d.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            (
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    p("server.crt"),
                    p("server.key")
                ),
                format!(
                    "auth:\n  htpasswd:\n    realm: shoal-test\n    path: {}\n",
                    p("htpasswd")
                ),
            )
        });
        let trust = PathBuf::from("/etc/docker/certs.d").join(&registry.addr);
        std::fs::create_dir_all(&trust).unwrap();
        std::fs::copy(registry.dir().join("ca.crt"), trust.join("ca.crt")).unwrap();
        Self {
            registry,
            trust,
            docker_config: tempfile::tempdir().unwrap(),
        }
    }

    /// `docker login` through `ns`'s dockerd (for pushing), into [`Self::docker_config`].
    pub fn login(&self, ns: &NetnsServer, user: &str, password: &str) {
        let mut c = ns.docker();
        c.env("DOCKER_CONFIG", self.docker_config.path()).args([
            "login",
            &self.registry.addr,
            "-u",
            user,
            "--password-stdin",
        ]);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker login: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.registry.log()
        );
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.trust);
        // The parent only if this made it and nothing else is in it.
        if let Some(parent) = self.trust.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Builds `tag` on `ns`'s dockerd from `base` plus a layer holding `bytes` random bytes (a
/// layer no other image shares, so pulling it moves that many bytes).
pub fn build_with_random_layer(ns: &NetnsServer, base: &str, bytes: usize, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut data = vec![0u8; bytes];
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut urandom, &mut data).unwrap();
    std::fs::write(dir.path().join("blob"), data).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nCOPY blob /blob\n"),
    )
    .unwrap();
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let out = ns
        .docker()
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(Stdio::from(tar.stdout.take().unwrap()))
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success());
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
