//! Serving the router on a TCP listener with the limits a network daemon needs: a
//! header-read timeout (slow-loris clients), a request timeout, a body limit and a cap on
//! connections served at once, from the `api:` section of the config.
//!
//! axum's own `serve` sets none of these (hyper applies its header timeout only with a
//! timer, which axum does not give it), so connections are accepted and served here with
//! hyper-util directly; the router is the same.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::AppError;
use crate::config::ApiConfig;

/// The limits applied to the API's connections and requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a request's headers; the connection is closed after it.
    pub header_read_timeout: Duration,
    /// Time from a request's headers to its answer; then it is answered 503.
    pub request_timeout: Duration,
    /// Largest request body, in bytes; a larger one is answered 413.
    pub max_body_bytes: usize,
    /// Most connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Limits {
    /// The limits of the config's `api:` section.
    #[must_use]
    pub fn from_config(api: &ApiConfig) -> Self {
        Self {
            header_read_timeout: api.header_read_timeout(),
            request_timeout: api.request_timeout(),
            max_body_bytes: api.max_body_bytes.value as usize,
            max_connections: (api.max_connections.value as usize).max(1),
        }
    }
}

/// How long connections get to finish their requests after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (for instance out of file descriptors) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The router with the request limits of `limits` (request timeout, body limit).
pub fn with_request_limits(router: Router, limits: Limits) -> Router {
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        limit_request(limits, req, next)
    }))
}

async fn limit_request(limits: Limits, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than the {}-byte limit",
                limits.max_body_bytes
            ),
        )
        .into_response();
    }
    // A body without a declared length is cut at the limit when read.
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, limits.max_body_bytes)));
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than {} s and was abandoned",
                limits.request_timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` completes, with [`Limits`]: at most
/// `max_connections` connections at once, each closed when a request's headers do not arrive
/// within `header_read_timeout` of the connection's start or of the previous answer (so an
/// idle keep-alive connection is closed too), each request bounded by
/// [`with_request_limits`]. After the signal,
/// open connections get [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let router = with_request_limits(router, limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    // HTTP/1 only (the CLI and curl speak it): hyper's automatic HTTP/2 detection reads the
    // first bytes without a timeout, so a client that sends nothing would hold its slot.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        // Wait for a free slot before accepting: beyond the cap, connections queue in the
        // kernel's backlog instead of being read.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "API: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "API connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("API: connections still open after the shutdown grace; closing them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_millis(200),
            max_body_bytes: 16,
            max_connections: 1,
        }
    }

    async fn call(router: Router, req: Request) -> (StatusCode, String) {
        let resp = with_request_limits(router, limits())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_takes_too_long_is_answered_503_with_an_error_body() {
        let slow = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "late"
            }),
        );
        let req = Request::get("/slow").body(Body::empty()).unwrap();
        let (status, body) = call(slow, req).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["error"].as_str().unwrap().contains("longer than 0.2 s"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_body_without_a_declared_length_is_cut_at_the_limit() {
        let echo = Router::new().route(
            "/echo",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        // Chunked (no Content-Length): the limit applies when the handler reads it.
        let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
            axum::body::Bytes::from(vec![b'x'; 64]),
        )]);
        let req = Request::post("/echo")
            .body(Body::from_stream(stream))
            .unwrap();
        let (status, _) = call(echo.clone(), req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let req = Request::post("/echo").body(Body::from("small")).unwrap();
        assert_eq!(call(echo, req).await, (StatusCode::OK, "5".to_owned()));
    }
}
