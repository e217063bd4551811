//! Docker's own health verdict: a replica whose image's HEALTHCHECK fails is reported
//! `unhealthy` by Docker, whose `health_status` event wakes the loop; the listing says
//! `(unhealthy)` and the replica is replaced (out of HAProxy first), as Docker Swarm would,
//! even though shoal's own probe of `health_check.path` passes. The image is the workload
//! with a HEALTHCHECK that always fails (it runs the binary with an unknown flag): built here,
//! removed at the end. Real Docker Engine, real HAProxy.

mod common;

use std::time::{Duration, Instant};

use common::{Opts, Stack, Wait, IMAGE};

/// A workload image with a HEALTHCHECK that fails after a 3 s start period (1 s interval,
/// 2 retries), tagged for this test process; removed on drop.
struct UnhealthyImage(String);

impl UnhealthyImage {
    fn build() -> Self {
        let tag = format!("shoal-workload-unhealthy:{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM {IMAGE}\nHEALTHCHECK --interval=1s --timeout=1s --start-period=3s --retries=2 \
                 CMD [\"/shoal-workload\", \"--no-such-flag\"]\n"
            ),
        )
        .unwrap();
        common::cmd::succeed(
            std::process::Command::new("docker")
                .args(["build", "-q", "-t", &tag])
                .arg(dir.path()),
        );
        Self(tag)
    }
}

impl Drop for UnhealthyImage {
    fn drop(&mut self) {
        common::cmd::run_quiet("docker", &["rmi", "-f", &self.0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_docker_reports_unhealthy_is_replaced() {
    let image = UnhealthyImage::build();
    let mut s = Stack::new(
        "dhc",
        Opts {
            min: 1,
            max: 1,
            image: image.0.clone(),
            ..Opts::default()
        },
    );
    s.start_shoal();
    let first = Wait::new("the first replica UP in HAProxy", Duration::from_secs(30))
        .until(|| s.up_servers().pop());
    let t0 = Instant::now();
    // Docker turns it unhealthy (its HEALTHCHECK fails) while shoal's probe of /api/tags
    // passes; it is replaced.
    let e = Wait::new(
        "the replica replaced for Docker's verdict",
        Duration::from_secs(30),
    )
    .until_async(async || {
        s.events().await.into_iter().find(|e| {
            e["action"] == "replica_replaced"
                && e["replica"] == first.as_str()
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("Docker reports it unhealthy"))
        })
    })
    .await;
    let took = t0.elapsed();
    assert!(
        !s.servers().iter().any(|r| r.name == first),
        "it left HAProxy: {:?}",
        s.servers()
    );
    let metrics = s.metrics().await;
    let events: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("shoal_docker_events_total{") && l.contains("action=\"health_status\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        events >= 1.0,
        "the health_status event was received:\n{metrics}"
    );
    eprintln!("replaced {took:?} after it was UP: {e}");
}
