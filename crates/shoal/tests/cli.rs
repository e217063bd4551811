//! The CLI's offline commands: `config check` and `haproxy render`.

mod common;

use std::path::Path;
use std::process::Output;

use common::{haproxy, repo, shoal};

/// `shoal config check PATH`.
fn config_check(path: impl AsRef<Path>) -> Output {
    shoal()
        .args(["config", "check"])
        .arg(path.as_ref())
        .output()
        .unwrap()
}

#[test]
fn seed_config_validates_offline() {
    let out = config_check(repo("tests/fixtures/seed-config.yaml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 server(s), 1 service(s)"));
}

#[test]
fn example_configs_validate() {
    let examples = std::fs::read_dir(repo("examples")).unwrap();
    let mut checked = 0;
    for f in examples {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "yaml") {
            let out = config_check(&f);
            assert!(
                out.status.success(),
                "{}: {}",
                f.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn bad_config_exits_2_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::fs::read_to_string(repo("tests/fixtures/seed-config.yaml")).unwrap();
    let bad = seed.replace("scale_down_threshold: 25", "scale_down_threshold: 90");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, bad).unwrap();
    let out = config_check(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = seed
        .lines()
        .position(|l| l.contains("scale_down_threshold"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(
            "bad.yaml:{line}:27: error: services.ollama.scale_down_threshold (90)"
        )),
        "{err}"
    );

    let typo = seed.replace("cooldown_period", "cooldown_perod");
    std::fs::write(&path, typo).unwrap();
    let out = config_check(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `cooldown_period`"));
}

#[test]
fn haproxy_render_passes_haproxy_check() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    let out = shoal()
        .args(["haproxy", "render", "--config"])
        .arg(repo("tests/fixtures/seed-config.yaml"))
        .arg("--output")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("backend ollama_backend"));
    assert!(text.contains("option httpchk GET /api/tags"));
    haproxy::check(&cfg);
}

#[test]
fn serve_refuses_open_api_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let seed = std::fs::read_to_string(repo("tests/fixtures/seed-config.yaml")).unwrap();
    std::fs::write(&path, format!("{seed}\napi:\n  bind: 0.0.0.0:18999\n")).unwrap();
    let out = shoal()
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("SHOAL_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a token"));
}

#[test]
fn client_reports_unreachable_api_with_exit_3() {
    let out = shoal()
        .args(["--api", "http://127.0.0.1:9", "services"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}
