//! Mutating endpoints (bearer token): scale, deploy, rolling update, reload.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::AppError;
use super::model::{
    DeployResponse, ErrorBody, ReloadResponse, RollingUpdateResponse, ScaleAction, ScaleResponse,
};
use super::{known_service, ApiState};
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

/// Roll replicas to the current spec, one at a time, new before old.
#[utoipa::path(
    post, path = "/services/{name}/deploy", tag = "commands",
    params(("name" = String, Path, description = "Service name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Rollout started", body = DeployResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
    ),
)]
pub(super) async fn deploy(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<DeployResponse>), AppError> {
    known_service(&s.app, &name)?;
    let ro = commands::deploy(&s.app, &name, false)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeployResponse {
            service: name,
            revision: ro.revision,
            replicas_to_replace: ro.replace_ids.len(),
        }),
    ))
}

/// Pull the image on every up server (in the background), then replace every replica, one
/// at a time.
#[utoipa::path(
    post, path = "/services/{name}/rolling-update", tag = "commands",
    params(("name" = String, Path, description = "Service name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Pulls started; the rollout follows", body = RollingUpdateResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 503, description = "No server is up", body = ErrorBody),
    ),
)]
pub(super) async fn rolling_update(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<RollingUpdateResponse>), AppError> {
    known_service(&s.app, &name)?;
    let update = commands::rolling_update(s.app.context(), &name)?;
    let (image, pulling_on) = (update.image, update.pulling_on);
    Ok((
        StatusCode::ACCEPTED,
        Json(RollingUpdateResponse {
            service: name,
            image,
            pulling_on,
            then: "every replica is replaced one at a time, new before old; follow GET /services/{name}/events".into(),
        }),
    ))
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
