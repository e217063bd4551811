//! Read-only endpoints: status, servers, services, stats, events, metrics, the document.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::AppError;
use super::model::{
    AutoscalerInfo, ErrorBody, EventList, EventsQuery, HealthCheckInfo, Liveness, LoadBalancerInfo,
    ReplicaCounts, ReplicaStats, Server, ServerCounts, ServerList, ServerState, ServiceList,
    ServiceStats, ServiceSummary, Status, MAX_EVENTS_LIMIT, MAX_EVENTS_OFFSET,
};
use super::{known_service, ApiState};
use crate::app::App;
use crate::autoscale::cooldown_left;
use crate::config::{Config, DockerEndpoint};
use crate::engine::ContainerSpec;
use crate::service::Phase;

/// Liveness.
#[utoipa::path(
    get, path = "/", tag = "status",
    responses((status = 200, description = "shoal serve is running", body = Liveness)),
)]
pub(super) async fn root() -> Json<Liveness> {
    Json(Liveness {
        status: "running".into(),
    })
}

/// One service as `/services`, `/status` and `/services/{name}/stats` report it.
fn service_summary(app: &App, cfg: &Config, name: &str) -> ServiceSummary {
    let svc = &cfg.services[name];
    let spec = ContainerSpec::from_service(svc);
    let now = app.clock.now();
    let window = crate::autoscale::window_state(cfg, svc, now);
    let pcfg = crate::policy::PolicyConfig::from_service(svc, cfg.autoscaler.dry_run);
    // The state without its replicas (thousands at scale; cloning them for every request
    // was most of a /status), and the replicas counted by phase under the same lock.
    let (st, counts) = app.service(name).map_or((None, [0; 4]), |rt| {
        rt.update(|st| {
            let mut counts = [0_usize; 4];
            for r in st.replicas.values() {
                counts[phase_index(r.phase)] += 1;
            }
            // Read below: a field read from `st` must be copied here.
            let light = crate::service::ServiceState {
                desired: st.desired,
                last_action: st.last_action,
                utilization: st.utilization,
                last_decision: st.last_decision.clone(),
                rollout: st.rollout.clone(),
                last_error: st.last_error.clone(),
                // The pinned revision, what the adaptive policy learned, the start times.
                target: st.target.clone(),
                policy: st.policy.clone(),
                start_seconds: st.start_seconds.clone(),
                ..Default::default()
            };
            (Some((light, st.replicas.len())), counts)
        })
    });
    let count = |p: Phase| counts[phase_index(p)];
    let total = st.as_ref().map_or(0, |(_, n)| *n);
    let st = st.map(|(st, _)| st);
    ServiceSummary {
        name: name.to_owned(),
        image: svc.image.value.clone(),
        port: *svc.port,
        revision: st
            .as_ref()
            .and_then(|st| st.target.as_ref())
            .map_or(spec.revision, |t| t.id.clone()),
        min_replicas: *svc.min_replicas,
        max_replicas: *svc.max_replicas,
        desired: st.as_ref().map_or(0, |st| st.desired),
        replicas: ReplicaCounts {
            ready: count(Phase::Ready),
            joining: count(Phase::Joining),
            starting: count(Phase::Starting),
            draining: count(Phase::Draining),
            total,
        },
        scale_up_threshold: *svc.scale_up_threshold,
        scale_down_threshold: *svc.scale_down_threshold,
        cooldown_period: *svc.cooldown_period,
        cooldown_remaining_seconds: st
            .as_ref()
            .map_or(0, |st| cooldown_left(svc, st.last_action, now)),
        business_hours_only: svc.business_hours_only,
        business_hours: window.map(Into::into),
        utilization: st.as_ref().and_then(|st| st.utilization).map(round2),
        autoscaler: st.as_ref().map(|st| AutoscalerInfo {
            policy: pcfg.kind.into(),
            dry_run: pcfg.dry_run,
            check_interval: *cfg.autoscaler.check_interval,
            off_hours_replicas: svc.business_hours_only.then_some(pcfg.off_hours),
            target_utilization: (pcfg.kind != crate::policy::PolicyKind::Threshold)
                .then_some(pcfg.target),
            target_sessions_per_replica: pcfg.target_sessions,
            last_decision: st.last_decision.as_ref().map(Into::into),
            learned: (pcfg.kind == crate::policy::PolicyKind::Adaptive).then(|| {
                let l = &st.policy.learned;
                let full = l.capacity().map(round2);
                crate::api::model::LearnedCapacity {
                    requests_per_second_at_full: full,
                    requests_per_second_at_target: l
                        .capacity()
                        .map(|c| round2(c * pcfg.adaptive_target / 100.0)),
                    observations: l.observations.len(),
                    needed: crate::policy::MIN_OBSERVATIONS,
                    updated: l.updated.map(|t| t.to_string()),
                }
            }),
            observed_start_seconds: st.start_seconds.iter().copied().reduce(f64::max),
        }),
        health_check: HealthCheckInfo {
            path: svc.health_check.path.value.clone(),
            interval: *svc.health_check.interval,
            timeout: *svc.health_check.timeout,
        },
        rollout: st
            .as_ref()
            .and_then(|st| st.rollout.as_ref())
            .map(Into::into),
        last_error: st.and_then(|st| st.last_error),
    }
}

fn phase_index(p: Phase) -> usize {
    match p {
        Phase::Ready => 0,
        Phase::Joining => 1,
        Phase::Starting => 2,
        Phase::Draining => 3,
    }
}

/// Overall status: servers, services, uptime.
#[utoipa::path(
    get, path = "/status", tag = "status",
    responses((status = 200, description = "The control plane at a glance", body = Status)),
)]
pub(super) async fn status(State(s): State<Arc<ApiState>>) -> Json<Status> {
    let app = &s.app;
    let cfg = app.config();
    let servers = app.fleet.all();
    Json(Status {
        status: "running".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: app.started.elapsed().as_secs(),
        config_file: app.config_path.display().to_string(),
        servers: ServerCounts {
            total: servers.len(),
            up: servers.iter().filter(|h| h.status().up).count(),
        },
        business_hours: cfg
            .autoscaler
            .business_hours
            .window()
            .ok()
            .map(|w| w.state(app.clock.now()).into()),
        services: cfg
            .services
            .keys()
            .map(|n| service_summary(app, &cfg, n))
            .collect(),
        load_balancer: LoadBalancerInfo {
            runtime_api: cfg.load_balancer.runtime_api.value.clone(),
        },
    })
}

/// Servers: state (`up`, `unreachable`, `down`), reason, since when, Docker version,
/// containers, clock skew.
#[utoipa::path(
    get, path = "/servers", tag = "servers",
    responses((status = 200, description = "Every configured server", body = ServerList)),
)]
pub(super) async fn servers(State(s): State<Arc<ApiState>>) -> Json<ServerList> {
    let servers = s
        .app
        .fleet
        .all()
        .iter()
        .map(|h| {
            let c = &h.config;
            let st = h.status();
            let endpoint = match c.endpoint() {
                DockerEndpoint::Unix(p) => format!("unix://{}", p.display()),
                DockerEndpoint::Tcp(a) => format!("tcp://{a}"),
                DockerEndpoint::TcpTls { addr, .. } => format!("tcp://{addr} (TLS)"),
                DockerEndpoint::Ssh {
                    user, host, port, ..
                } => format!(
                    "ssh://{}{host}:{port}",
                    user.map(|u| format!("{u}@")).unwrap_or_default()
                ),
            };
            Server {
                name: c.name.value.clone(),
                host: c.host.value.clone(),
                role: c.role.clone(),
                max_containers: *c.max_containers,
                endpoint,
                status: match st.state {
                    crate::fleet::ServerState::Up => ServerState::Up,
                    crate::fleet::ServerState::Unreachable => ServerState::Unreachable,
                    crate::fleet::ServerState::Down => ServerState::Down,
                },
                up: st.up,
                reason: st.reason,
                since: st.since,
                docker_version: st.docker_version,
                api_version: st.api_version,
                containers: st.containers,
                containers_running: st.containers_running,
                serving: st.serving,
                clock_skew_ms: st.skew_ms,
                last_seen: st.last_seen,
            }
        })
        .collect();
    Json(ServerList { servers })
}

/// Services with desired and actual replica counts.
#[utoipa::path(
    get, path = "/services", tag = "services",
    responses((status = 200, description = "Every configured service", body = ServiceList)),
)]
pub(super) async fn services(State(s): State<Arc<ApiState>>) -> Json<ServiceList> {
    let cfg = s.app.config();
    Json(ServiceList {
        services: cfg
            .services
            .keys()
            .map(|n| service_summary(&s.app, &cfg, n))
            .collect(),
    })
}

/// Replicas of a service with health, HAProxy state, CPU and memory.
#[utoipa::path(
    get, path = "/services/{name}/stats", tag = "services",
    params(("name" = String, Path, description = "Service name")),
    responses(
        (status = 200, description = "The service and each of its replicas", body = ServiceStats),
        (status = 404, description = "No such service", body = ErrorBody),
    ),
)]
pub(super) async fn stats(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Json<ServiceStats>, AppError> {
    known_service(&s.app, &name)?;
    let cfg = s.app.config();
    let svc = &cfg.services[&name];
    let cpus = svc.cpus.as_ref().map(|c| c.value);
    let Some(rt) = s.app.service(&name) else {
        return Err(AppError::unknown_service(&name));
    };
    let replicas: Vec<_> = rt.update(|st| st.replicas.values().cloned().collect());
    let samples = sampled(&s.app, &rt, &replicas).await;
    let startup = rt.update(|st| startup_info(st, svc));
    let mut ready_cpu = Vec::new();
    let containers = replicas
        .iter()
        .map(|r| (r, samples.get(&r.id).copied()))
        .map(|(r, sample)| {
            let cpu = sample.map(|x| x.0);
            let util = cpu.map(|c| cpus.map_or(c, |n| c / n));
            if r.phase == Phase::Ready {
                if let Some(u) = util {
                    ready_cpu.push(u);
                }
            }
            ReplicaStats {
                id: r.id[..12.min(r.id.len())].to_owned(),
                name: r.name.clone(),
                server: r.server.clone(),
                address: r.port.map(|p| format!("{}:{p}", r.host)),
                phase: r.phase.into(),
                container_state: r.container_state.into(),
                status: r.status.clone(),
                revision: r.revision.clone(),
                image: r.image.reference.clone(),
                image_id: r.image.id.clone(),
                digest: r.image.digest.clone(),
                healthy: r.healthy,
                health_failures: r.health_failures,
                last_probe_error: r.last_probe_error.clone(),
                in_load_balancer: r.in_lb,
                lb_status: r.lb_status.clone(),
                cpu_percent: cpu.map(round2),
                utilization: util.map(round2),
                memory_bytes: sample.map(|x| x.1),
                gpus: r.gpus.clone(),
                warmup_seconds: r.warmed.map(|d| round2(d.as_secs_f64())),
            }
        })
        .collect();
    let mean = (!ready_cpu.is_empty())
        .then(|| round2(ready_cpu.iter().sum::<f64>() / ready_cpu.len() as f64));
    Ok(Json(ServiceStats {
        service: service_summary(&s.app, &cfg, &name),
        utilization_now: mean,
        cpu_limit_cores: cpus,
        containers,
        startup,
    }))
}

/// CPU and memory of `replicas` from the Docker stats API, all at once, each call bounded;
/// sampled at most once per [`crate::timings::STATS_API_REUSE`] per service (requests
/// meanwhile wait for the sampling in flight and share it), so API clients cannot multiply
/// the calls to the engines: at 500 replicas a request was 500 engine calls.
async fn sampled(
    app: &App,
    rt: &crate::service::ServiceRuntime,
    replicas: &[crate::service::Replica],
) -> std::collections::BTreeMap<String, (f64, u64)> {
    let mut last = rt.stats_sample.lock().await;
    if let Some((at, samples)) = last.as_ref() {
        if at.elapsed() < crate::timings::STATS_API_REUSE {
            return samples.clone();
        }
    }
    use futures_util::StreamExt;
    let calls: Vec<_> = replicas
        .iter()
        .map(|r| {
            let engine = app.fleet.get(&r.server).and_then(|h| h.engine());
            async move {
                match engine {
                    Some(e) if r.container_state == crate::engine::ContainerState::Running => {
                        e.stats(&r.id).await.ok().map(|x| (r.id.clone(), x))
                    }
                    _ => None,
                }
            }
        })
        .collect();
    let results: Vec<_> = futures_util::stream::iter(calls)
        .buffer_unordered(crate::timings::FANOUT)
        .collect()
        .await;
    let samples: std::collections::BTreeMap<String, (f64, u64)> =
        results.into_iter().flatten().collect();
    *last = Some((tokio::time::Instant::now(), samples.clone()));
    samples
}

fn startup_info(
    st: &crate::service::ServiceState,
    svc: &crate::config::ServiceConfig,
) -> crate::api::model::StartupInfo {
    let secs = |d: Option<std::time::Duration>| d.map(|d| round2(d.as_secs_f64()));
    let now = tokio::time::Instant::now();
    crate::api::model::StartupInfo {
        last_warmup_seconds: secs(st.startup.last_warmup()),
        median_warmup_seconds: secs(st.startup.median_warmup()),
        start_delay_seconds: secs(st.startup.start_delay()),
        wake_on_request: svc.sleeps(),
        asleep: st.sleep.asleep,
        waking: st.sleep.waking,
        idle_seconds: secs(
            st.sleep
                .last_activity
                .map(|t| now.saturating_duration_since(t)),
        ),
        wakes: st.sleep.wakes,
        sleeps: st.sleep.sleeps,
        gpu_backoff: st
            .gpu_backoff
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(s, b)| (s.clone(), b.error.clone()))
            .collect(),
    }
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Decision journal of a service, newest first.
#[utoipa::path(
    get, path = "/services/{name}/events", tag = "services",
    params(("name" = String, Path, description = "Service name"), EventsQuery),
    responses(
        (status = 200, description = "Events, newest first", body = EventList),
        (status = 400, description = "A query parameter is not a number or out of its range", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
    ),
)]
pub(super) async fn events(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
    page: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventList>, AppError> {
    let Query(page) = page.map_err(|e| AppError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if s.app.config().service(&name).is_none() {
        return Err(AppError::unknown_service(&name));
    }
    let limit = page.limit.unwrap_or(50);
    if !(1..=MAX_EVENTS_LIMIT).contains(&limit) {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            format!("limit {limit} is out of range 1-{MAX_EVENTS_LIMIT}"),
        ));
    }
    let offset = page.offset.unwrap_or(0);
    if offset > MAX_EVENTS_OFFSET {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            format!("offset {offset} is out of range 0-{MAX_EVENTS_OFFSET}"),
        ));
    }
    let (events, total) = s.app.journal.list(&name, offset, limit);
    Ok(Json(EventList {
        service: name,
        total,
        offset,
        limit,
        events: events.into_iter().map(Into::into).collect(),
    }))
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    get, path = "/metrics", tag = "status",
    responses((
        status = 200,
        description = "Metrics in the OpenMetrics text format",
        body = String,
        content_type = crate::metrics::CONTENT_TYPE,
    )),
)]
pub(super) async fn metrics(State(s): State<Arc<ApiState>>) -> Response {
    // Rendered on the async workers: in `spawn_blocking`, a flood of scrapes at 5000
    // replicas grew the blocking pool to 30 threads, each with a heap of its own (RSS 115 MB
    // while they lived), and the passes were no faster. Rendered at most once per
    // METRICS_REUSE, requests meanwhile sharing the body: at 5000 replicas the body is 1 MB,
    // and a flood of scrapes (the route is open) rendering it 280 times a second starved
    // the control loops of the same cores (passes 25 → 177 ms).
    let body = {
        let mut last = s.metrics.lock().await;
        match last.as_ref() {
            Some((at, body)) if at.elapsed() < crate::timings::METRICS_REUSE => body.clone(),
            _ => {
                let body = axum::body::Bytes::from(crate::metrics::render(&s.app));
                *last = Some((tokio::time::Instant::now(), body.clone()));
                body
            }
        }
    };
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "status",
    responses((status = 200, description = "The OpenAPI description of this API", body = Object)),
)]
pub(super) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi_document())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::extract::State;

    use super::super::ApiState;
    use crate::journal::{Action, NewEvent};

    async fn body(state: &Arc<ApiState>) -> String {
        let r = super::metrics(State(state.clone())).await;
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    /// A scrape flood renders `/metrics` once per `METRICS_REUSE`: a request within it gets
    /// the same body, one after it sees what changed.
    #[tokio::test(start_paused = true)]
    async fn metrics_are_rendered_at_most_once_per_reuse_window() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::test_app(dir.path());
        // Its runtime (what /metrics reports on); no Docker answers, nothing else matters.
        app.spawn_service("web");
        let state = Arc::new(ApiState::new(app.clone(), None));
        let line = |b: &str| {
            b.lines()
                .find(|l| {
                    l.starts_with("shoal_journal_events_total") && l.contains("action=\"error\"")
                })
                .map(str::to_owned)
        };
        let first = body(&state).await;
        app.journal.record(NewEvent {
            service: "web",
            action: Action::Error,
            reason: "a test event".into(),
            ..Default::default()
        });
        let again = body(&state).await;
        assert_eq!(first, again, "rendered again within the reuse window");
        tokio::time::advance(crate::timings::METRICS_REUSE + Duration::from_millis(1)).await;
        let later = body(&state).await;
        assert_ne!(line(&later), line(&first), "{later}");
        assert!(line(&later).is_some_and(|l| l.ends_with(" 1")), "{later}");
    }
}
