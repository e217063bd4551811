//! A Docker Engine reached over `tcp://` with TLS: a dockerd in a network namespace
//! listening with `--tlsverify` on certificates made for the test (a CA, a server
//! certificate for the namespace's IP, client certificates, with the `openssl` CLI). With
//! `docker_cert_path`, `shoal check` finds it usable and `serve` runs a replica there behind
//! HAProxy; plain `tcp://` to it is refused by `config check` (file:line:column and the way
//! out) unless `docker_tls: false` says so (a warning; the TLS port then refuses the plain
//! connection, clearly); a client certificate from another CA and a missing key file are
//! refused with what went wrong. Needs root.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::docker::require_image;
use common::netns::NetnsServer;
use common::tls::TestCa;
use common::{shoal, Opts, Stack, Wait, IMAGE};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A config with one service and the server `tls` at `docker_host` with `lines`.
fn config(dir: &Path, name: &str, docker_host: &str, lines: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "load_balancer:\n  runtime_api: unix:{d}/no-haproxy.sock\nservers:\n  - host: 10.0.0.9\n    name: tls\n    docker_host: {docker_host}\n{lines}    max_containers: 5\nservices:\n  web:\n    image: {IMAGE}\n    port: {fe}\nautoscaler:\n  state_file: {d}/{name}.db\n",
            d = dir.display(),
            fe = common::free_port(),
        ),
    )
    .unwrap();
    path
}

fn run(args: &[&str], config: &Path) -> Output {
    shoal().args(args).arg(config).output().expect("run shoal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_engine_is_used_with_its_certificates_and_plain_tcp_is_refused() {
    require_image();
    let ns = NetnsServer::start_with_tls(IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host = ns.tls_docker_host();
    let certs = ns.tls_client_dir();

    // Plain tcp:// beyond loopback: refused by config check, with where and the way out.
    let plain = config(d, "plain", &host, "");
    let out = run(&["config", "check"], &plain);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains(&format!("{}:6:18", plain.display())), "{t}");
    assert!(
        t.contains("is plain TCP to an address that is not loopback"),
        "{t}"
    );
    assert!(
        t.contains("docker_cert_path") && t.contains("docker_tls: false"),
        "{t}"
    );

    // Asked for with docker_tls: false: a warning, and the TLS port refuses the plain
    // connection, which `shoal check` reports.
    let asked = config(d, "asked", &host, "    docker_tls: false\n");
    let out = run(&["config", "check"], &asked);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("warning: server tls: docker_tls: false: plain TCP"),
        "{t}"
    );
    let out = run(&["check", "--config"], &asked);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("Client sent an HTTP request to an HTTPS server"),
        "{t}"
    );
    eprintln!("plain HTTP to the TLS port:\n{t}");

    // With its certificates: usable, the engine's version reported.
    let good = config(
        d,
        "good",
        &host,
        &format!("    docker_cert_path: {}\n", certs.display()),
    );
    let out = run(&["config", "check"], &good);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["check", "--config"], &good);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let version =
        common::cmd::stdout(
            ns.docker()
                .args(["version", "--format", "{{.Server.Version}}"]),
        );
    let row = t
        .lines()
        .find(|l| l.starts_with("tls "))
        .expect("a row for tls");
    assert!(row.contains(version.trim()) && row.contains("0/5"), "{t}");
    eprintln!("with certificates:\n{t}");

    // A client certificate from another CA: the engine refuses the handshake.
    let other = TestCa::new(&d.join("other-ca"), "another-ca");
    let stranger = other.client(&d.join("stranger"));
    // The server is still verified against the right CA: only the client is a stranger.
    std::fs::copy(certs.join("ca.pem"), stranger.join("ca.pem")).unwrap();
    let refused = config(
        d,
        "stranger",
        &host,
        &format!("    docker_cert_path: {}\n", stranger.display()),
    );
    let out = run(&["check", "--config"], &refused);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "the engine refused the client certificate {}",
            stranger.join("cert.pem").display()
        )) && t.contains("BadCertificate"),
        "{t}"
    );
    eprintln!("client certificate of another CA:\n{t}");

    // A server certificate that does not chain to ca.pem: refused, not trusted.
    let untrusting = d.join("untrusting");
    std::fs::create_dir_all(&untrusting).unwrap();
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(certs.join(f), untrusting.join(f)).unwrap();
    }
    std::fs::copy(other.cert(), untrusting.join("ca.pem")).unwrap();
    let out = run(
        &["check", "--config"],
        &config(
            d,
            "untrusting",
            &host,
            &format!("    docker_cert_path: {}\n", untrusting.display()),
        ),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "the engine's certificate is not trusted: it must be signed by {}",
            untrusting.join("ca.pem").display()
        )) && t.contains("invalid peer certificate: UnknownIssuer"),
        "{t}"
    );
    eprintln!("server certificate not from ca.pem:\n{t}");

    // A missing key file: config check warns, shoal check names the file.
    let nokey = d.join("nokey");
    std::fs::create_dir_all(&nokey).unwrap();
    for f in ["ca.pem", "cert.pem"] {
        std::fs::copy(certs.join(f), nokey.join(f)).unwrap();
    }
    let missing = config(
        d,
        "nokey",
        &host,
        &format!("    docker_cert_path: {}\n", nokey.display()),
    );
    let out = run(&["config", "check"], &missing);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let key_path = nokey.join("key.pem").display().to_string();
    assert!(
        t.contains("warning: server tls") && t.contains(&key_path),
        "{t}"
    );
    let out = run(&["check", "--config"], &missing);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("{key_path} cannot be read")), "{t}");

    // serve: a replica on the TLS engine, in HAProxy, answering through it.
    let mut s = Stack::new(
        "tls",
        Opts {
            min: 1,
            max: 2,
            local: false,
            servers_extra: format!(
                "  - host: {ip}\n    name: tls\n    docker_host: {host}\n    docker_cert_path: {c}\n    max_containers: 5\n",
                ip = ns.ip,
                c = certs.display(),
            ),
            ..Opts::default()
        },
    );
    s.start_shoal();
    Wait::new(
        "a replica on the TLS engine, UP in HAProxy",
        Duration::from_secs(60),
    )
    .until(|| (ns.running(&s.service).len() == 1 && s.up_servers().len() == 1).then_some(()));
    let v = s.server("tls").await;
    assert_eq!(v["status"], "up", "{v}");
    assert_eq!(v["endpoint"], format!("{host} (TLS)"), "{v}");
    assert_eq!(v["docker_version"].as_str(), Some(version.trim()), "{v}");
    let r = common::http_client(Duration::from_secs(3))
        .get(s.frontend_url("/api/tags"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
