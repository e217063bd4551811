//! The HTTP API of `shoal serve` (axum): the seed's endpoints, `/metrics`, `/openapi.json`.
//!
//! The only module that knows HTTP status codes and JSON shapes. Mutating endpoints need
//! `Authorization: Bearer <token>` (compared in constant time) unless no token is configured.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::autoscale::cooldown_left;
use crate::commands::{self, CommandError};
use crate::config::{Config, DockerEndpoint};
use crate::engine::ContainerSpec;
use crate::reconcile::Phase;
use crate::reconcile::Trigger;

/// Shared state of the handlers.
#[derive(Debug)]
pub struct ApiState {
    /// The control plane.
    pub app: Arc<App>,
    /// Bearer token for mutating endpoints; `None`: not required.
    pub token: Option<String>,
}

/// An API error: a status and a message, rendered as `{"error": "..."}`.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
    extra: Option<Value>,
}

impl AppError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            extra: None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let (Some(extra), Some(obj)) = (self.extra, body.as_object_mut()) {
            if let Some(e) = extra.as_object() {
                obj.extend(e.clone());
            }
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<CommandError> for AppError {
    fn from(e: CommandError) -> Self {
        let status = match &e {
            CommandError::UnknownService(_) => StatusCode::NOT_FOUND,
            CommandError::AtBound { .. } | CommandError::OutsideWindow { .. } => {
                StatusCode::CONFLICT
            }
            CommandError::NoCapacity { .. } | CommandError::NoServerUp => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            CommandError::NotApplied(_) => StatusCode::BAD_REQUEST,
            CommandError::BadConfig(err) => {
                return AppError {
                    status: StatusCode::BAD_REQUEST,
                    message: e.to_string(),
                    extra: Some(json!({ "issues": err.issues, "file": err.file })),
                }
            }
        };
        AppError::new(status, e.to_string())
    }
}

type ApiResult = Result<Response, AppError>;

/// The router with every endpoint.
pub fn router(state: Arc<ApiState>) -> Router {
    let mutating = Router::new()
        .route("/services/{name}/scale/up", post(scale_up))
        .route("/services/{name}/scale/down", post(scale_down))
        .route("/services/{name}/deploy", post(deploy))
        .route("/services/{name}/rolling-update", post(rolling_update))
        .route("/config/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(root))
        .route("/status", get(status))
        .route("/servers", get(servers))
        .route("/services", get(services))
        .route("/services/{name}/stats", get(stats))
        .route("/services/{name}/events", get(events))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(mutating)
        .fallback(|| async {
            AppError::new(StatusCode::NOT_FOUND, "no such endpoint; see /openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed; see /openapi.json",
            )
        })
        .with_state(state)
}

async fn require_token(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &state.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .map(str::trim);
        let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.as_bytes())));
        if !ok {
            let msg = if given.is_none() {
                "missing Authorization: Bearer token"
            } else {
                "invalid token"
            };
            let mut resp = AppError::new(StatusCode::UNAUTHORIZED, msg).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
    }
    next.run(req).await
}

async fn root() -> Json<Value> {
    Json(json!({ "status": "running" }))
}

fn service_summary(app: &App, cfg: &Config, name: &str) -> Value {
    let svc = &cfg.services[name];
    let spec = ContainerSpec::from_service(svc);
    let now = jiff::Timestamp::now();
    let window = crate::autoscale::window_state(cfg, svc, now);
    let pcfg = crate::policy::PolicyConfig::from_service(svc, cfg.autoscaler.dry_run);
    let (autoscaler, utilization) = match app.service(name) {
        Some(rt) => {
            let st = rt.snapshot();
            (
                json!({
                    "policy": pcfg.kind,
                    "dry_run": pcfg.dry_run,
                    "check_interval": *cfg.autoscaler.check_interval,
                    "off_hours_replicas": svc.business_hours_only.then_some(pcfg.off_hours),
                    "target_utilization": (pcfg.kind == crate::policy::PolicyKind::Target).then_some(pcfg.target),
                    "target_sessions_per_replica": pcfg.target_sessions,
                    "last_decision": st.last_decision,
                }),
                st.utilization.map(round2),
            )
        }
        None => (Value::Null, None),
    };
    let (desired, counts, rollout, last_error, cooldown_left) = match app.service(name) {
        Some(rt) => {
            let st = rt.snapshot();
            let count = |p: Phase| st.replicas.values().filter(|r| r.phase == p).count();
            let left = cooldown_left(svc, st.last_action, app.clock.now());
            (
                st.desired,
                json!({
                    "ready": count(Phase::Ready),
                    "joining": count(Phase::Joining),
                    "starting": count(Phase::Starting),
                    "draining": count(Phase::Draining),
                    "total": st.replicas.len(),
                }),
                serde_json::to_value(&st.rollout).unwrap_or(Value::Null),
                st.last_error.clone(),
                left,
            )
        }
        None => (0, json!({}), Value::Null, None, 0),
    };
    json!({
        "name": name,
        "image": *svc.image,
        "port": *svc.port,
        "revision": spec.revision,
        "min_replicas": *svc.min_replicas,
        "max_replicas": *svc.max_replicas,
        "desired": desired,
        "replicas": counts,
        "scale_up_threshold": *svc.scale_up_threshold,
        "scale_down_threshold": *svc.scale_down_threshold,
        "cooldown_period": *svc.cooldown_period,
        "cooldown_remaining_seconds": cooldown_left,
        "business_hours_only": svc.business_hours_only,
        "business_hours": window,
        "utilization": utilization,
        "autoscaler": autoscaler,
        "health_check": {
            "path": *svc.health_check.path,
            "interval": *svc.health_check.interval,
            "timeout": *svc.health_check.timeout,
        },
        "rollout": rollout,
        "last_error": last_error,
    })
}

async fn status(State(s): State<Arc<ApiState>>) -> Json<Value> {
    let app = &s.app;
    let cfg = app.config();
    let servers = app.fleet.all();
    let up = servers.iter().filter(|h| h.status().up).count();
    let services: Vec<Value> = cfg
        .services
        .keys()
        .map(|n| service_summary(app, &cfg, n))
        .collect();
    Json(json!({
        "status": "running",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "config_file": app.config_path.display().to_string(),
        "servers": { "total": servers.len(), "up": up },
        "business_hours": cfg.autoscaler.business_hours.window().ok().map(|w| w.state(jiff::Timestamp::now())),
        "services": services,
        "load_balancer": { "runtime_api": *cfg.load_balancer.runtime_api },
    }))
}

async fn servers(State(s): State<Arc<ApiState>>) -> Json<Value> {
    let list: Vec<Value> = s
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
                DockerEndpoint::Ssh {
                    user, host, port, ..
                } => format!(
                    "ssh://{}{host}:{port}",
                    user.map(|u| format!("{u}@")).unwrap_or_default()
                ),
            };
            json!({
                "name": *c.name,
                "host": *c.host,
                "role": c.role,
                "max_containers": *c.max_containers,
                "endpoint": endpoint,
                "status": if st.up { "up" } else { "down" },
                "up": st.up,
                "reason": st.reason,
                "docker_version": st.docker_version,
                "api_version": st.api_version,
                "containers": st.containers,
                "last_seen": st.last_seen,
            })
        })
        .collect();
    Json(json!({ "servers": list }))
}

async fn services(State(s): State<Arc<ApiState>>) -> Json<Value> {
    let cfg = s.app.config();
    let list: Vec<Value> = cfg
        .services
        .keys()
        .map(|n| service_summary(&s.app, &cfg, n))
        .collect();
    Json(json!({ "services": list }))
}

fn known_service(app: &App, name: &str) -> Result<(), AppError> {
    if app.config().service(name).is_some() && app.service(name).is_some() {
        Ok(())
    } else {
        Err(AppError::new(
            StatusCode::NOT_FOUND,
            format!("unknown service {name:?}"),
        ))
    }
}

async fn stats(State(s): State<Arc<ApiState>>, Path(name): Path<String>) -> ApiResult {
    known_service(&s.app, &name)?;
    let cfg = s.app.config();
    let svc = &cfg.services[&name];
    let cpus = svc.cpus.as_ref().map(|c| c.value);
    let replicas = s
        .app
        .service(&name)
        .map(|rt| rt.snapshot().replicas.values().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    // CPU and memory from the Docker stats API, all replicas at once, each call bounded.
    let samples = futures_util::future::join_all(replicas.iter().map(|r| {
        let engine = s.app.fleet.get(&r.server).and_then(|h| h.engine());
        let id = r.id.clone();
        async move {
            match engine {
                Some(e) if r.container_state == crate::engine::ContainerState::Running => {
                    e.stats(&id).await.ok()
                }
                _ => None,
            }
        }
    }))
    .await;
    let mut ready_cpu = Vec::new();
    let list: Vec<Value> = replicas
        .iter()
        .zip(samples)
        .map(|(r, sample)| {
            let cpu = sample.map(|x| x.0);
            let util = cpu.map(|c| cpus.map_or(c, |n| c / n));
            if r.phase == Phase::Ready {
                if let Some(u) = util {
                    ready_cpu.push(u);
                }
            }
            json!({
                "id": &r.id[..12.min(r.id.len())],
                "name": r.name,
                "server": r.server,
                "address": r.port.map(|p| format!("{}:{p}", r.host)),
                "phase": r.phase,
                "container_state": r.container_state,
                "status": r.status,
                "revision": r.revision,
                "healthy": r.healthy,
                "health_failures": r.health_failures,
                "last_probe_error": r.last_probe_error,
                "in_load_balancer": r.in_lb,
                "lb_status": r.lb_status,
                "cpu_percent": cpu.map(round2),
                "utilization": util.map(round2),
                "memory_bytes": sample.map(|x| x.1),
            })
        })
        .collect();
    let mean = (!ready_cpu.is_empty())
        .then(|| round2(ready_cpu.iter().sum::<f64>() / ready_cpu.len() as f64));
    let mut body = service_summary(&s.app, &cfg, &name);
    if let Some(obj) = body.as_object_mut() {
        obj.insert("utilization_now".into(), json!(mean));
        obj.insert("cpu_limit_cores".into(), json!(cpus));
        obj.insert("containers".into(), Value::Array(list));
    }
    Ok(Json(body).into_response())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn events(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(page) = page.map_err(|e| AppError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if s.app.config().service(&name).is_none() {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            format!("unknown service {name:?}"),
        ));
    }
    let limit = page.limit.unwrap_or(50).clamp(1, 1000);
    let offset = page.offset.unwrap_or(0);
    let (events, total) = s.app.journal.list(&name, offset, limit);
    Ok(Json(json!({ "service": name, "total": total, "offset": offset, "limit": limit, "events": events })).into_response())
}

async fn scale_up(State(s): State<Arc<ApiState>>, Path(name): Path<String>) -> ApiResult {
    scale(&s, &name, true)
}

async fn scale_down(State(s): State<Arc<ApiState>>, Path(name): Path<String>) -> ApiResult {
    scale(&s, &name, false)
}

fn scale(s: &ApiState, name: &str, up: bool) -> ApiResult {
    let (before, after) = commands::scale(&s.app, name, up, Trigger::Manual)?;
    Ok(Json(json!({
        "service": name,
        "action": if up { "scale_up" } else { "scale_down" },
        "previous": before,
        "desired": after,
    }))
    .into_response())
}

async fn deploy(State(s): State<Arc<ApiState>>, Path(name): Path<String>) -> ApiResult {
    known_service(&s.app, &name)?;
    let ro = commands::deploy(&s.app, &name, false)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "service": name,
            "revision": ro.revision,
            "replicas_to_replace": ro.replace_ids.len(),
        })),
    )
        .into_response())
}

async fn rolling_update(State(s): State<Arc<ApiState>>, Path(name): Path<String>) -> ApiResult {
    known_service(&s.app, &name)?;
    let update = commands::rolling_update(s.app.context(), &name)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "service": name,
            "image": update.image,
            "pulling_on": update.pulling_on,
            "then": "every replica is replaced one at a time, new before old; follow GET /services/{name}/events",
        })),
    )
        .into_response())
}

async fn reload(State(s): State<Arc<ApiState>>) -> ApiResult {
    let changes = commands::reload(&s.app).await?;
    Ok(Json(json!({ "reloaded": true, "changes": changes })).into_response())
}

async fn metrics(State(s): State<Arc<ApiState>>) -> Response {
    let app = &s.app;
    let cfg = app.config();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let mut replicas = Vec::new();
    let mut running = Vec::new();
    let mut desired = Vec::new();
    let mut scale_actions = Vec::new();
    let mut replacements = Vec::new();
    let mut utilization = Vec::new();
    let mut memory = Vec::new();
    let mut decisions = Vec::new();
    let mut window_open = Vec::new();
    let mut cooldown = Vec::new();
    let now = jiff::Timestamp::now();
    for name in cfg.services.keys() {
        let Some(rt) = app.service(name) else {
            continue;
        };
        let st = rt.snapshot();
        let l = format!("service=\"{name}\"");
        replicas.push((
            l.clone(),
            st.replicas
                .values()
                .filter(|r| r.phase == Phase::Ready)
                .count() as f64,
        ));
        running.push((
            l.clone(),
            st.replicas
                .values()
                .filter(|r| r.container_state == crate::engine::ContainerState::Running)
                .count() as f64,
        ));
        desired.push((l.clone(), f64::from(st.desired)));
        for ((dir, trigger), n) in &st.scale_actions {
            scale_actions.push((
                format!("{l},direction=\"{dir}\",trigger=\"{trigger}\""),
                *n as f64,
            ));
        }
        for (reason, n) in &st.replacements {
            replacements.push((format!("{l},reason=\"{reason}\""), *n as f64));
        }
        if let Some(u) = st.utilization {
            utilization.push((l.clone(), round2(u)));
        }
        if let Some(m) = st.memory_bytes {
            memory.push((l.clone(), m as f64));
        }
        for ((dir, reason), n) in &st.decisions {
            decisions.push((
                format!("{l},direction=\"{dir}\",reason=\"{reason}\""),
                *n as f64,
            ));
        }
        let svc = &cfg.services[name];
        let open = crate::autoscale::window_state(&cfg, svc, now).is_none_or(|w| w.open);
        window_open.push((l.clone(), f64::from(u8::from(open))));
        cooldown.push((
            l.clone(),
            cooldown_left(svc, st.last_action, app.clock.now()) as f64,
        ));
    }
    family(
        "shoal_replicas",
        "gauge",
        "Replicas in rotation (healthy and UP in HAProxy).",
        replicas,
    );
    family(
        "shoal_replicas_running",
        "gauge",
        "Replica containers Docker reports running.",
        running,
    );
    family(
        "shoal_desired_replicas",
        "gauge",
        "Replicas the control loop converges to.",
        desired,
    );
    family(
        "shoal_scale_actions_total",
        "counter",
        "Scale actions by direction and trigger.",
        scale_actions,
    );
    family(
        "shoal_replica_replacements_total",
        "counter",
        "Replicas replaced, by reason.",
        replacements,
    );
    family(
        "shoal_utilization_percent",
        "gauge",
        "Mean utilization of the ready replicas at the last evaluation (percent of the CPU limit, or of one core).",
        utilization,
    );
    family(
        "shoal_memory_bytes",
        "gauge",
        "Memory of the ready replicas at the last evaluation, summed.",
        memory,
    );
    family(
        "shoal_autoscaler_decisions_total",
        "counter",
        "Autoscaler evaluations that acted or were held, by direction and reason.",
        decisions,
    );
    family(
        "shoal_business_window_open",
        "gauge",
        "1 when the service may scale now (always 1 without business_hours_only).",
        window_open,
    );
    family(
        "shoal_cooldown_remaining_seconds",
        "gauge",
        "Seconds until the service may scale again.",
        cooldown,
    );
    let servers = app.fleet.all();
    family(
        "shoal_server_up",
        "gauge",
        "1 when the server's Docker Engine answers.",
        servers
            .iter()
            .map(|h| {
                (
                    format!("server=\"{}\"", h.name()),
                    f64::from(u8::from(h.status().up)),
                )
            })
            .collect(),
    );
    family(
        "shoal_server_containers",
        "gauge",
        "shoal-managed containers on the server.",
        servers
            .iter()
            .map(|h| {
                (
                    format!("server=\"{}\"", h.name()),
                    f64::from(h.status().containers),
                )
            })
            .collect(),
    );
    family(
        "shoal_uptime_seconds",
        "gauge",
        "Seconds since shoal serve started.",
        vec![(String::new(), app.started.elapsed().as_secs_f64().floor())],
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.replace("{}", ""),
    )
        .into_response()
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3.1 description of this API.
#[must_use]
pub fn openapi_document() -> Value {
    let err = json!({ "$ref": "#/components/responses/Error" });
    let name =
        json!([{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }]);
    let get_op = |summary: &str| json!({ "get": { "summary": summary, "responses": { "200": { "description": "OK", "content": { "application/json": {} } } } } });
    let svc_get = |summary: &str| json!({ "get": { "summary": summary, "parameters": name, "responses": { "200": { "description": "OK", "content": { "application/json": {} } }, "404": err } } });
    let mutate = |summary: &str, ok: &str, extra: Value| {
        let mut responses = json!({ ok: { "description": "Done", "content": { "application/json": {} } }, "401": err, "404": err });
        if let (Some(r), Some(e)) = (responses.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        json!({ "post": { "summary": summary, "security": [{ "bearer": [] }], "parameters": name, "responses": responses } })
    };
    json!({
        "openapi": "3.1.0",
        "info": { "title": "shoal", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Control plane API: services, servers, scaling, deploys. Errors are {\"error\": \"...\"}." },
        "paths": {
            "/": get_op("Liveness: {\"status\":\"running\"}"),
            "/status": get_op("Overall status: servers, services, uptime"),
            "/servers": get_op("Servers and whether their Docker Engine answers"),
            "/services": get_op("Services with desired and actual replica counts"),
            "/services/{name}/stats": svc_get("Replicas of a service with health, HAProxy state, CPU and memory"),
            "/services/{name}/events": {
                "get": { "summary": "Decision journal of a service, newest first",
                         "parameters": [name[0].clone(),
                            { "name": "limit", "in": "query", "schema": { "type": "integer", "default": 50 } },
                            { "name": "offset", "in": "query", "schema": { "type": "integer", "default": 0 } }],
                         "responses": { "200": { "description": "OK" }, "404": err } } },
            "/services/{name}/scale/up": mutate("Add one replica (within max_replicas); starts the cooldown", "200",
                json!({ "409": err, "503": err })),
            "/services/{name}/scale/down": mutate("Remove one replica gracefully (within min_replicas); starts the cooldown", "200",
                json!({ "409": err })),
            "/services/{name}/deploy": mutate("Roll replicas to the current spec, one at a time, new before old", "202", json!({})),
            "/services/{name}/rolling-update": mutate("Pull the image on every up server (in the background), then replace every replica, one at a time", "202",
                json!({ "503": err })),
            "/config/reload": { "post": { "summary": "Re-read the config file; on error nothing changes",
                "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "Reloaded" }, "400": err, "401": err } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text/plain exposition format" } } } },
            "/openapi.json": get_op("This document"),
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": { "description": "Error", "content": { "application/json": {
                "schema": { "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] } } } } }
        }
    })
}
