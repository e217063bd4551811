//! The HTTP API of `shoal serve` (axum): the seed's endpoints, `/metrics`, `/openapi.json`,
//! the status page `/ui`.
//!
//! The only module that knows HTTP status codes and JSON shapes. Every body is a type in
//! [`model`]; `/openapi.json` is generated from those types and from the `#[utoipa::path]`
//! of each handler. Every route is listed once, in `table`; the router is built from that
//! list only, and a test checks the document against it. Mutating endpoints need
//! `Authorization: Bearer <token>` (compared in constant time) unless no token is configured.

mod auth;
mod convert;
mod docs;
mod error;
pub mod model;
mod model_release;
mod read;
mod release;
pub mod server;
mod ui;
mod write;

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::middleware;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

pub use auth::effective_token;
pub use docs::{openapi_document, ApiDoc};
pub use error::AppError;

use crate::app::App;

/// Shared state of the handlers.
#[derive(Debug)]
pub struct ApiState {
    /// The control plane.
    pub app: Arc<App>,
    /// Bearer token for mutating endpoints; `None`: not required.
    pub token: Option<String>,
    /// The last `/metrics` body and when it was rendered ([`crate::timings::METRICS_REUSE`]).
    pub(crate) metrics: tokio::sync::Mutex<Option<(tokio::time::Instant, axum::body::Bytes)>>,
}

impl ApiState {
    /// The API's state for `app`, mutating routes guarded by `token` when there is one.
    #[must_use]
    pub fn new(app: Arc<App>, token: Option<String>) -> Self {
        Self {
            app,
            token,
            metrics: tokio::sync::Mutex::new(None),
        }
    }
}

/// An app (not started) of one server whose Docker socket in `dir` does not exist and one
/// service `web`, for the API's tests.
#[cfg(test)]
pub(crate) fn test_app(dir: &std::path::Path) -> Arc<App> {
    let yaml = format!(
        "load_balancer:
  runtime_api: unix:{dir}/haproxy.sock
servers:
  - host: 127.0.0.1
    name: local
    docker_host: unix://{dir}/no-docker.sock
services:
  web:
    image: example:1
    port: 18080
autoscaler:
  state_file: {dir}/state.db
",
        dir = dir.display()
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let cfg = crate::config::Config::load(&path).unwrap();
    App::new(cfg, path).unwrap()
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone who reaches the API.
    Open,
    /// Only with the bearer token (when one is configured).
    Token,
}

/// One route the router serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    /// HTTP method.
    pub method: Method,
    /// Path as axum and OpenAPI both write it (`/services/{name}/stats`).
    pub path: &'static str,
    /// Whether it needs the token.
    pub access: Access,
}

struct Route {
    info: RouteInfo,
    handler: MethodRouter<Arc<ApiState>>,
}

fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, Arc<ApiState>>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum can route");
    Route {
        info: RouteInfo {
            method,
            path,
            access,
        },
        handler: on(filter, handler),
    }
}

/// Every route, once: the router is built from this list and nothing else.
fn table() -> Vec<Route> {
    use Access::{Open, Token};
    vec![
        route(Method::GET, "/", Open, read::root),
        route(Method::GET, "/status", Open, read::status),
        route(Method::GET, "/servers", Open, read::servers),
        route(Method::GET, "/services", Open, read::services),
        route(Method::GET, "/services/{name}/stats", Open, read::stats),
        route(Method::GET, "/services/{name}/events", Open, read::events),
        route(Method::GET, "/metrics", Open, read::metrics),
        route(Method::GET, "/openapi.json", Open, read::openapi),
        route(Method::GET, "/ui", Open, ui::ui),
        route(
            Method::POST,
            "/services/{name}/scale/up",
            Token,
            write::scale_up,
        ),
        route(
            Method::POST,
            "/services/{name}/scale/down",
            Token,
            write::scale_down,
        ),
        route(
            Method::GET,
            "/services/{name}/update",
            Open,
            release::status,
        ),
        route(
            Method::GET,
            "/services/{name}/revisions",
            Open,
            release::revisions,
        ),
        route(
            Method::POST,
            "/services/{name}/deploy",
            Token,
            release::deploy,
        ),
        route(
            Method::POST,
            "/services/{name}/rolling-update",
            Token,
            release::rolling_update,
        ),
        route(
            Method::POST,
            "/services/{name}/rollback",
            Token,
            release::rollback,
        ),
        route(Method::POST, "/config/reload", Token, write::reload),
    ]
}

/// Every route the router serves.
#[must_use]
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|r| r.info).collect()
}

/// The router with every endpoint.
pub fn router(state: Arc<ApiState>) -> Router {
    let (mut open, mut guarded) = (Router::new(), Router::new());
    for r in table() {
        match r.info.access {
            Access::Open => open = open.route(r.info.path, r.handler),
            Access::Token => guarded = guarded.route(r.info.path, r.handler),
        }
    }
    let guarded = guarded.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    open.merge(guarded)
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

fn known_service(app: &App, name: &str) -> Result<(), AppError> {
    if app.config().service(name).is_some() && app.service(name).is_some() {
        Ok(())
    } else {
        Err(AppError::unknown_service(name))
    }
}
