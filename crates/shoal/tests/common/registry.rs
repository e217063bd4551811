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
        Self::start_with(host, "")
    }

    /// Like [`Self::start`], with extra top-level YAML (`auth:`, or `http.tls` lines
    /// appended under `http:` when `extra` starts with two spaces).
    pub fn start_with(host: &str, extra: &str) -> Self {
        let port = {
            let l = std::net::TcpListener::bind(format!("{host}:0")).expect("a free port");
            l.local_addr().unwrap().port()
        };
        let addr = format!("{host}:{port}");
        let dir = tempfile::tempdir().expect("tempdir");
        let (http_extra, top_extra) = if extra.starts_with("  ") {
            (extra, "")
        } else {
            ("", extra)
        };
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
        Wait::new("the registry to listen", Duration::from_secs(20))
            .every(Duration::from_millis(100))
            .explain(|| r.log())
            .until(|| {
                std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok()
            });
        r
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
