//! `shoal simulate` end to end: the shipped traces through examples/autoscale.yaml.

mod common;

use std::process::Output;

use common::{repo, shoal};
use serde_json::Value;

fn simulate(args: &[&str]) -> Output {
    shoal()
        .arg("simulate")
        .arg("--config")
        .arg(repo("examples/autoscale.yaml"))
        .args(args)
        .output()
        .unwrap()
}

fn report(trace: &str, policy: &str) -> Value {
    let trace = repo(&format!("traces/{trace}.csv"));
    let out = simulate(&[
        "--trace",
        trace.to_str().unwrap(),
        "--policy",
        policy,
        "--json",
        "--timeline",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn both_policies_run_both_traces_within_bounds() {
    for trace in ["business-day", "spiky"] {
        for policy in ["threshold", "target"] {
            let r = report(trace, policy);
            let ctx = format!("{trace} / {policy}");
            assert_eq!(r["service"], "ollama", "{ctx}");
            assert_eq!(r["policy"]["kind"], policy, "{ctx}");
            let (min, max) = (num(&r["policy"], "min"), num(&r["policy"], "max"));
            assert_eq!((min, max), (1.0, 8.0), "{ctx}");
            let timeline = r["timeline"].as_array().unwrap();
            assert_eq!(timeline.len() as f64, num(&r, "steps"), "{ctx}");
            assert!(!timeline.is_empty(), "{ctx}");
            for s in timeline {
                let d = num(s, "desired");
                assert!((min..=max).contains(&d), "{ctx}: {s}");
                assert!(num(s, "ready") <= max, "{ctx}: {s}");
            }
            let peak = num(&r, "peak_replicas");
            assert!((min..=max).contains(&peak), "{ctx}: peak {peak}");
            assert!(num(&r, "actions") >= 2.0, "{ctx}: it scaled");
            assert_eq!(
                num(&r, "actions"),
                num(&r, "ups") + num(&r, "downs"),
                "{ctx}"
            );
            // Cost lies between min x duration and max x duration.
            let minutes = num(&r, "duration_s") / 60.0;
            let cost = num(&r, "replica_minutes");
            assert!(
                cost >= min * minutes && cost <= max * minutes,
                "{ctx}: {cost}"
            );
            assert!(num(&r, "overload_minutes") <= minutes, "{ctx}");
            let u = num(&r, "mean_utilization");
            assert!((0.0..=100.0).contains(&u), "{ctx}: {u}");
            if trace == "business-day" {
                assert_eq!(num(&r, "duration_s"), 36_000.0);
                assert!(peak > 3.0, "{ctx}: the peak needs more than 3 replicas");
            }
        }
    }
}

#[test]
fn policies_differ_and_reports_repeat() {
    let thr = report("spiky", "threshold");
    let tgt = report("spiky", "target");
    assert_ne!(thr["timeline"], tgt["timeline"]);
    assert_eq!(report("spiky", "target"), tgt, "deterministic");
}

#[test]
fn summary_and_timeline_csv() {
    let trace = repo("traces/business-day.csv");
    let out = simulate(&["--trace", trace.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("replica-minutes"), "{text}");
    assert!(text.contains("threshold (up > 75%"), "{text}");

    let out = simulate(&["--trace", trace.to_str().unwrap(), "--timeline"]);
    assert!(out.status.success());
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with("t,load,desired,ready,utilization,action,held,reason\n"));
    assert_eq!(
        csv.lines().count(),
        2401,
        "10 h every 15 s, plus the header"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("overload-minutes"));
}

#[test]
fn bad_trace_exits_2_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "# t\ntime,load\n0,10\n60,lots\n").unwrap();
    let out = simulate(&["--trace", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4: error:", bad.display())),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let missing = dir.path().join("missing.csv");
    let out = simulate(&["--trace", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unknown_service_exits_2() {
    let trace = repo("traces/spiky.csv");
    let out = simulate(&["--trace", trace.to_str().unwrap(), "--service", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service \"nope\""));
}
