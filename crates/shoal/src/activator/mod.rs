//! The activator: scale to zero, wake on request.
//!
//! A service with `wake_on_request: true` that may be at zero replicas (`idle_to_zero_after`,
//! or `off_hours_replicas: 0` outside business hours) has a backup server in its HAProxy
//! backend: this listener (`activator.bind`). HAProxy sends a request there only when no
//! replica is up, with the service named in [`crate::lb::SERVICE_HEADER`]. The request
//! then:
//!
//! 1. starts the wake-up when none is under way and nothing is wanted (desired 0 → 1; the
//!    loop places and starts the replica as any other, bounds and GPUs included); every
//!    concurrent request shares that one wake-up;
//! 2. is held until a replica passed shoal's health check and its warm-up (it is then in
//!    HAProxy, waiting for HAProxy's own checks, or in rotation), at most
//!    `activation_timeout`;
//! 3. is forwarded to that replica (proxied here, the answer streamed back), not sent back
//!    through HAProxy: nothing can loop, and a request already held is not queued again.
//!
//! Past the timeout it gets `503` with `Retry-After`; when the last request waiting gives
//! up and still nothing is ready, the service goes back to zero, so the replica on its way
//! is removed rather than left half-started. Idle for `idle_to_zero_after`, the service
//! goes back to zero ([`sleep::watch`]). Every wake-up and sleep is journaled.

pub mod sleep;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::context::Context;
use crate::journal::{Action, NewEvent};
use crate::lb::SERVICE_HEADER;
use crate::service::ServiceRuntime;
use crate::timings;

use sleep::Wake;

/// Largest request body the activator holds while a replica starts.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// Starts the activator on `listener` (its own task) for as long as the process runs.
pub fn spawn(ctx: Arc<Context>, listener: tokio::net::TcpListener) {
    let http = match reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "activator: cannot build its HTTP client");
            return;
        }
    };
    let state = Arc::new(Activator { ctx, http });
    let router = axum::Router::new().fallback(handle).with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "activator stopped");
        }
    });
}

/// The address to listen on, when a service of `config` sleeps.
#[must_use]
pub fn wanted(config: &crate::config::Config) -> Option<SocketAddr> {
    config
        .services
        .values()
        .any(crate::config::ServiceConfig::sleeps)
        .then(|| config.activator.addr())
        .flatten()
}

struct Activator {
    ctx: Arc<Context>,
    http: reqwest::Client,
}

/// Counts a request as waiting while it lives.
struct Waiting(Arc<ServiceRuntime>);

impl Waiting {
    fn new(rt: &Arc<ServiceRuntime>) -> Self {
        rt.update(|st| st.sleep.waiting = st.sleep.waiting.saturating_add(1));
        Self(rt.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0
            .update(|st| st.sleep.waiting = st.sleep.waiting.saturating_sub(1));
    }
}

fn unavailable(retry_after: Duration, message: String) -> Response {
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, message + "\n").into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after.as_secs().max(1)),
    );
    r
}

async fn handle(State(a): State<Arc<Activator>>, req: Request) -> Response {
    let ctx = &a.ctx;
    let service = req
        .headers()
        .get(SERVICE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cfg = ctx.config();
    let (Some(svc), Some(rt)) = (
        cfg.service(&service).filter(|s| s.sleeps()),
        ctx.service(&service),
    ) else {
        return unavailable(
            Duration::from_secs(5),
            format!("no service {service:?} wakes on request here"),
        );
    };
    let timeout = svc.activation_timeout();
    let deadline = Instant::now() + timeout;
    let _waiting = Waiting::new(&rt);
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body not read: {e}\n"),
            )
                .into_response()
        }
    };

    let now = Instant::now();
    let wake = rt.update(|st| sleep::on_request(st, *svc.max_replicas, now));
    if wake == Wake::Begin {
        ctx.journal.record(NewEvent {
            service: &service,
            action: Action::Wake,
            reason: format!(
                "a request arrived with no replica: waking (desired 0 -> 1); requests wait up to {}s",
                timeout.as_secs()
            ),
            desired: Some((0, 1)),
            ..Default::default()
        });
        save_desired(ctx, &rt);
        rt.wake.notify_one();
    }
    let target = loop {
        if let Some(t) = rt.update(|st| sleep::ready_replica(st)) {
            break Some(t);
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(timings::ACTIVATOR_POLL.min(deadline - Instant::now())).await;
    };
    let Some((host, port)) = target else {
        drop(_waiting);
        let slept = rt.update(sleep::on_timeout);
        if slept {
            ctx.journal.record(NewEvent {
                service: &service,
                action: Action::Sleep,
                reason: format!(
                    "wake-up timed out: no replica healthy and warm within activation_timeout {}s; back to zero (the replica on its way is removed)",
                    timeout.as_secs()
                ),
                desired: Some((1, 0)),
                ..Default::default()
            });
            save_desired(ctx, &rt);
            rt.wake.notify_one();
        }
        return unavailable(
            timeout,
            format!(
                "{service} is starting and not ready within {}s; retry later",
                timeout.as_secs()
            ),
        );
    };
    let woke = rt.update(|st| {
        let since = st.sleep.waking_since.take();
        st.sleep.waking = false;
        since
    });
    if let Some(since) = woke {
        ctx.journal.record(NewEvent {
            service: &service,
            action: Action::Wake,
            reason: format!(
                "woken: a replica is healthy and warm {:.2}s after the first request",
                since.elapsed().as_secs_f64()
            ),
            ..Default::default()
        });
    }
    forward(&a.http, &parts, body, &host, port, deadline).await
}

/// Saves the desired count a wake-up or a sleep set, so a restarted serve adopts the service
/// as it was (asleep at zero, or awake) rather than as the autoscaler last left it.
pub(crate) fn save_desired(ctx: &Context, rt: &ServiceRuntime) {
    let (last_action, desired) = rt.update(|st| (st.last_action, st.desired));
    ctx.journal.save_service_state(
        &rt.name,
        &crate::journal::SavedState {
            last_action,
            desired: Some(desired),
        },
    );
}

/// Hop-by-hop headers (RFC 9110 7.6.1), never forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "host"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !hop_by_hop(k) && k.as_str() != SERVICE_HEADER.to_ascii_lowercase() {
            to.append(k.clone(), v.clone());
        }
    }
}

/// Sends the held request to the replica at `host:port` and streams its answer back.
async fn forward(
    http: &reqwest::Client,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Response {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    let url = format!("http://{}{path}", crate::lb::host_port(host, port));
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    // Until the answer starts: the rest of the activation timeout, at least 10 s.
    let connect = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(10));
    let sent = tokio::time::timeout(
        connect,
        http.request(parts.method.clone(), &url)
            .headers(headers)
            .body(body)
            .send(),
    )
    .await;
    match sent {
        Ok(Ok(resp)) => {
            let mut out = Response::builder().status(resp.status());
            if let Some(h) = out.headers_mut() {
                copy_headers(resp.headers(), h);
            }
            out.body(Body::from_stream(resp.bytes_stream()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Ok(Err(e)) => {
            tracing::warn!(url, error = %e, "activator: forwarding failed");
            (
                StatusCode::BAD_GATEWAY,
                "the woken replica did not answer\n",
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "the woken replica did not answer in time\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// The forwarded answer is streamed: its first chunk arrives while the replica is still
    /// writing the rest (Ollama's generate streams one JSON line per token).
    #[tokio::test]
    async fn a_forwarded_answer_streams_and_carries_method_path_body_and_headers() {
        let replica = axum::Router::new().fallback(|req: Request| async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1024).await.unwrap();
            let first = format!(
                "{} {} {} {}\n",
                parts.method,
                parts.uri,
                String::from_utf8_lossy(&body),
                parts
                    .headers
                    .get("x-client")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
            );
            let chunks =
                futures_util::stream::iter([first, "second\n".to_owned()]).then(|c| async move {
                    if c == "second\n" {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Ok::<_, std::io::Error>(c)
                });
            Response::builder()
                .header("x-replica", "yes")
                .body(Body::from_stream(chunks))
                .unwrap()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, replica).await.unwrap() });

        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/api/generate?x=1")
            .header("x-client", "c1")
            .header(SERVICE_HEADER, "web")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let resp = forward(
            &http,
            &parts,
            axum::body::Bytes::from_static(b"{\"prompt\":\"hi\"}"),
            "127.0.0.1",
            port,
            deadline,
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-replica"], "yes");
        let t0 = std::time::Instant::now();
        let mut stream = resp.into_body().into_data_stream();
        let first = stream.next().await.unwrap().unwrap();
        let first_after = t0.elapsed();
        assert_eq!(
            String::from_utf8_lossy(&first),
            "POST /api/generate?x=1 {\"prompt\":\"hi\"} c1\n"
        );
        let mut rest = Vec::new();
        while let Some(c) = stream.next().await {
            rest.extend_from_slice(&c.unwrap());
        }
        assert_eq!(String::from_utf8_lossy(&rest), "second\n");
        assert!(
            first_after < Duration::from_millis(400) && t0.elapsed() >= Duration::from_millis(400),
            "not streamed: first chunk after {first_after:?}, all after {:?}",
            t0.elapsed()
        );
    }
}
