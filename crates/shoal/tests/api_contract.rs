//! The API against its own contract: schemathesis (from PyPI, installed by
//! `scripts/ensure-deps.sh --tests`) reads `/openapi.json` of a real `shoal serve` running a
//! real service on the local Docker Engine behind a real HAProxy, and sends generated
//! requests to every operation, with and without the token.
//!
//! Checks: every one schemathesis has (`--checks all`): no 5xx, every status code and
//! content type documented, every body matching its schema, schema-violating input
//! refused with a 4xx, undocumented methods answered 405, and `ignored_auth`: every
//! operation that names the bearer scheme answers 401 without the token (and with a wrong
//! one). The service's real name is used for half of the `{name}` parameters, so commands
//! reach a real service, not only 404s.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Opts, Stack, TOKEN};

/// The schemathesis executable: `SHOAL_SCHEMATHESIS`, else where ensure-deps installs it.
fn schemathesis() -> String {
    std::env::var("SHOAL_SCHEMATHESIS")
        .unwrap_or_else(|_| "/opt/shoal-schemathesis/bin/schemathesis".to_owned())
}

/// Upper bound of one run (schemathesis' own budget is `--max-time`, below it).
const RUN_LIMIT: Duration = Duration::from_secs(150);

#[test]
fn every_operation_matches_its_schema_and_mutations_need_the_token() {
    let exe = schemathesis();
    assert!(
        std::path::Path::new(&exe).exists(),
        "{exe} is missing: run scripts/ensure-deps.sh --tests (or set SHOAL_SCHEMATHESIS)"
    );
    let stack = Stack::serving("contract", Opts::replicas(1, 2));
    // The token reaches schemathesis through its environment and its config file's
    // `${...}`, never its command line.
    let config = stack.dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"headers = {{ Authorization = "Bearer ${{SHOAL_API_TOKEN}}" }}

[dictionaries.services]
values = ["{service}"]

[parameters]
"path.name" = {{ dictionary = "services", probability = 0.5 }}

# An update's `image` is a Docker image reference: a grammar the schema states in words
# (and bounds by length) but not as a pattern, so a generated string the server refuses
# with 400 and its reason is expected there. Every other check stays on these operations.
[[operations]]
include-path-regex = "/(deploy|rolling-update)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"#,
            service = stack.service
        ),
    )
    .unwrap();
    let report = stack.dir.path().join("junit.xml");
    let start = Instant::now();
    let mut child = Command::new(&exe)
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(stack.url("/openapi.json"))
        .args([
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            "--max-time",
            "60",
            "--workers",
            "1",
            "--seed",
            "1",
            "--request-timeout",
            "30",
            "--report",
            "junit",
            "--report-junit-path",
        ])
        .arg(&report)
        .env("SHOAL_API_TOKEN", TOKEN)
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(stack.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start schemathesis");
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        start.elapsed() <= RUN_LIMIT,
        "schemathesis ran longer than {RUN_LIMIT:?}:\n{stdout}"
    );
    assert!(
        out.status.success(),
        "schemathesis found problems (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code(),
    );
    // It really ran: every documented operation but the document itself (which
    // schemathesis reads, not tests) has test cases in the report, none failed.
    let doc = serde_json::to_value(shoal::api::openapi_document()).unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if path != "/openapi.json" {
                operations.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(operations.len() >= 13, "{operations:?}");
    let junit = std::fs::read_to_string(&report).expect("the JUnit report");
    for op in &operations {
        assert!(
            junit.contains(&format!("testcase name=\"{op}\"")),
            "{op} was not tested:\n{stdout}"
        );
    }
    assert!(!junit.contains("<failure"), "{junit}");
    assert!(
        stdout.contains(&format!("Tested: {}", operations.len())),
        "{stdout}"
    );
    assert!(
        !stack.shoal_log().contains(TOKEN),
        "the token is in shoal's log"
    );
}
