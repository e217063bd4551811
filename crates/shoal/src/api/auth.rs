//! The bearer token of mutating endpoints, compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::AppError;
use super::ApiState;
use crate::config::{syntax, ApiConfig};

/// The token `serve` requires: `SHOAL_API_TOKEN` when it is set (`env`), else `api.token`,
/// else none. A token that is set must pass [`syntax::api_token`] (at least 16 visible
/// ASCII characters): a blank or short one is refused, never taken as "no token" or used.
/// The error names where the token came from, never the token.
///
/// # Errors
/// When the token that would be used is blank, too short or has spaces or control
/// characters.
pub fn effective_token(config: &ApiConfig, env: Option<String>) -> Result<Option<String>, String> {
    if let Some(t) = env {
        syntax::api_token(&t).map_err(|e| format!("SHOAL_API_TOKEN {e}"))?;
        return Ok(Some(t));
    }
    match &config.token {
        Some(t) => {
            syntax::api_token(t).map_err(|e| format!("api.token {e}"))?;
            Ok(Some(t.value.clone()))
        }
        None => Ok(None),
    }
}

/// Lets the request through when no token is configured or the right one is given;
/// otherwise `401` with `WWW-Authenticate: Bearer`.
pub(super) async fn require_token(
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
