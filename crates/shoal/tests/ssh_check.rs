//! `shoal check` and `config check` against a real server reached over SSH: a network
//! namespace with its own dockerd and sshd (generated host and client keys). The good case
//! reports the server usable with its Docker version; every bad input (unknown host key,
//! changed host key, a key the server rejects, a port with nothing listening, a key file
//! that does not exist, a partitioned server) gives a clear error within a bound, never a
//! hang; `serve` refuses a server with a changed host key and says why in `GET /servers`.
//! Needs root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::docker::require_image;
use common::netns::{NetnsServer, SshAccess};
use common::serve::Serve;
use common::{shoal, IMAGE};

/// No `shoal check` here may take longer (connect_timeout 3 s + slack).
const CHECK_LIMIT: Duration = Duration::from_secs(20);

fn config(dir: &Path, ns: &NetnsServer, port: u16, key: &Path, known_hosts: &Path) -> PathBuf {
    let path = dir.join(format!("c-{}.yaml", rand_suffix()));
    let yaml = format!(
        "load_balancer:
  runtime_api: unix:{dir}/no-haproxy.sock
servers:
  - host: {ip}
    name: ns
    ssh_user: root
    ssh_key: {key}
    ssh_port: {port}
    docker_socket: {sock}
    max_containers: 7
services:
  web:
    image: {IMAGE}
    port: {fe}
autoscaler:
  state_file: {dir}/state-{n}.db
api:
  bind: 127.0.0.1:{api}
ssh:
  known_hosts: {kh}
  connect_timeout: 3
",
        dir = dir.display(),
        ip = ns.ip,
        key = key.display(),
        sock = ns.socket().display(),
        kh = known_hosts.display(),
        fe = common::free_port(),
        api = common::free_port(),
        n = rand_suffix(),
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Runs `shoal check --config FILE`; returns its output and how long it took.
fn check(config: &Path) -> (Output, Duration) {
    let t0 = Instant::now();
    let out = shoal()
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("shoal check");
    (out, t0.elapsed())
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `shoal check` fails (exit 1) within [`CHECK_LIMIT`] and says every one of `says`.
fn assert_refused(what: &str, config: &Path, says: &[&str]) -> String {
    let (out, took) = check(config);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{what}: exit 1\n{t}");
    assert!(took < CHECK_LIMIT, "{what}: took {took:?}\n{t}");
    for s in says {
        assert!(t.contains(s), "{what}: the output says {s:?}\n{t}");
    }
    eprintln!("{what} ({took:?}):\n{t}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_server_over_ssh_and_every_bad_input_clearly() {
    require_image();
    let mut ns = NetnsServer::start(IMAGE);
    let SshAccess {
        key,
        known_hosts,
        host_key_pub,
    } = ns.start_sshd();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Usable: SSH ok, host key verified, the engine's version, API, 0/7 containers, the
    // image present, a skew.
    let good = config(d, &ns, 22, &key, &known_hosts);
    let (out, took) = check(&good);
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{t}\nsshd log:\n{}",
        ns.sshd_log()
    );
    let docker_version =
        common::cmd::stdout(
            ns.docker()
                .args(["version", "--format", "{{.Server.Version}}"]),
        );
    let row = t
        .lines()
        .find(|l| l.starts_with("ns "))
        .expect("a row for ns");
    for cell in [
        "ssh://root@",
        " ok ",
        "verified",
        docker_version.as_str(),
        "0/7",
        "present",
        "yes",
    ] {
        assert!(row.contains(cell), "the row says {cell:?}: {row}\n{t}");
    }
    assert!(t.contains("all 1 server(s) usable"), "{t}");
    eprintln!("usable ({took:?}):\n{t}");

    // `config check` on the same file: valid, no warning.
    let cc = shoal()
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(cc.status.success() && cc.stderr.is_empty(), "{}", text(&cc));

    // Unknown host key: an empty known_hosts.
    let empty = d.join("known_hosts.empty");
    std::fs::write(&empty, "").unwrap();
    let t = assert_refused(
        "unknown host key",
        &config(d, &ns, 22, &key, &empty),
        &[
            "unknown",
            &format!(
                "no ED25519 host key is known for {} in {}",
                ns.ip,
                empty.display()
            ),
            &format!("ssh-keyscan -p 22 {} >> {}", ns.ip, empty.display()),
        ],
    );
    assert!(!t.contains("verified"), "{t}");

    // A known_hosts file that does not exist.
    let missing = d.join("no-such-known_hosts");
    assert_refused(
        "missing known_hosts",
        &config(d, &ns, 22, &key, &missing),
        &[&format!(
            "known_hosts file {} does not exist",
            missing.display()
        )],
    );

    // Changed host key: known_hosts holds another key for this address.
    let other = d.join("other_host_key");
    common::cmd::run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            other.to_str().unwrap(),
        ],
    );
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let changed = d.join("known_hosts.changed");
    let mut parts = other_pub.split_whitespace();
    std::fs::write(
        &changed,
        format!(
            "{} {} {}\n",
            ns.ip,
            parts.next().unwrap(),
            parts.next().unwrap()
        ),
    )
    .unwrap();
    let real_fp = common::cmd::stdout_of(
        "ssh-keygen",
        &["-lf", ns.dir.join("ssh/host_ed25519.pub").to_str().unwrap()],
    );
    let real_fp = real_fp.split_whitespace().nth(1).unwrap().to_owned();
    let changed_config = config(d, &ns, 22, &key, &changed);
    assert_refused(
        "changed host key",
        &changed_config,
        &[
            "changed",
            "has CHANGED",
            &real_fp,
            &format!("{}:1", changed.display()),
            &format!("ssh-keygen -f {} -R '{}'", changed.display(), ns.ip),
        ],
    );
    assert!(!host_key_pub.is_empty());

    // A key the server rejects.
    let stranger = d.join("stranger_key");
    common::cmd::run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            stranger.to_str().unwrap(),
        ],
    );
    assert_refused(
        "rejected key",
        &config(d, &ns, 22, &stranger, &known_hosts),
        &[
            "rejected the login",
            "Permission denied",
            stranger.to_str().unwrap(),
        ],
    );

    // A port with nothing listening.
    assert_refused(
        "nothing on the port",
        &config(d, &ns, 2222, &key, &known_hosts),
        &[
            &format!("cannot connect to root@{}:2222", ns.ip),
            "Connection refused",
        ],
    );

    // A key path that does not exist: `config check` names it (a warning: the file is not
    // this machine's to judge when the config is written elsewhere), `shoal check` refuses.
    let nokey = d.join("no-such-key");
    let bad_key = config(d, &ns, 22, &nokey, &known_hosts);
    let cc = shoal()
        .args(["config", "check"])
        .arg(&bad_key)
        .output()
        .unwrap();
    let ct = text(&cc);
    assert!(cc.status.success(), "{ct}");
    assert!(
        ct.contains(&format!(
            "warning: ns: ssh_key {} cannot be used",
            nokey.display()
        )),
        "{ct}"
    );
    assert_refused(
        "missing key file",
        &bad_key,
        &[&format!("ssh_key {} cannot be used", nokey.display())],
    );

    // `serve` refuses the server with the changed key and says so in GET /servers.
    let yaml = std::fs::read_to_string(&changed_config).unwrap();
    let api: u16 = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("bind: 127.0.0.1:"))
        .unwrap()
        .parse()
        .unwrap();
    let serve = Serve::start(&changed_config, api, &d.join("serve.log"));
    let servers: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{api}/servers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &servers["servers"][0];
    assert_eq!(s["status"], "down", "{s}\n{}", serve.log());
    assert!(
        s["reason"].as_str().unwrap_or("").contains("has CHANGED"),
        "{s}"
    );
    drop(serve);

    // A partitioned server: connect_timeout bounds the attempt.
    ns.set_link(false);
    assert_refused(
        "partitioned",
        &good,
        &[&format!(
            "cannot connect to root@{}:22: Connection timed out",
            ns.ip
        )],
    );
    ns.set_link(true);
}
