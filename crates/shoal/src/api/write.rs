//! Mutating endpoints (bearer token): scale, reload (updates are in `release`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;

use super::error::AppError;
use super::model::{ErrorBody, ReloadResponse, ScaleAction, ScaleResponse};
use super::ApiState;
use crate::commands;
use crate::service::Trigger;

/// Add one replica (within max_replicas); starts the cooldown.
#[utoipa::path(
    post, path = "/services/{name}/scale/up", tag = "commands",
    params(("name" = String, Path, description = "Service name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Desired count raised", body = ScaleResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "Already at max_replicas, or outside business hours", body = ErrorBody),
        (status = 503, description = "No server can take another replica", body = ErrorBody),
    ),
)]
pub(super) async fn scale_up(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Json<ScaleResponse>, AppError> {
    scale(&s, name, true)
}

/// Remove one replica gracefully (within min_replicas); starts the cooldown.
#[utoipa::path(
    post, path = "/services/{name}/scale/down", tag = "commands",
    params(("name" = String, Path, description = "Service name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Desired count lowered", body = ScaleResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "Already at min_replicas, or outside business hours", body = ErrorBody),
    ),
)]
pub(super) async fn scale_down(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Json<ScaleResponse>, AppError> {
    scale(&s, name, false)
}

fn scale(s: &ApiState, name: String, up: bool) -> Result<Json<ScaleResponse>, AppError> {
    let (previous, desired) = commands::scale(&s.app, &name, up, Trigger::Manual)?;
    Ok(Json(ScaleResponse {
        service: name,
        action: if up {
            ScaleAction::ScaleUp
        } else {
            ScaleAction::ScaleDown
        },
        previous,
        desired,
    }))
}

/// Re-read the config file; on error nothing changes.
#[utoipa::path(
    post, path = "/config/reload", tag = "commands",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Reloaded", body = ReloadResponse),
        (status = 400, description = "The config was refused (with every issue); the running config stays", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 500, description = "The config could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn reload(
    State(s): State<Arc<ApiState>>,
) -> Result<Json<ReloadResponse>, AppError> {
    let changes = commands::reload(&s.app).await?;
    Ok(Json(ReloadResponse {
        reloaded: true,
        changes,
    }))
}
