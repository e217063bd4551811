//! Updates over HTTP: deploy, rolling update and rollback (bearer token), the update's
//! progress and the revisions a service ran. Their bodies are in [`model`] like every other.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::AppError;
use super::model::{
    ErrorBody, PullInfo, RevisionInfo, RevisionList, UpdateBody, UpdateInfo, UpdateState,
};
use super::{known_service, ApiState};
use crate::commands;
use crate::release::{Revision, UpdateKind, UpdatePhase, UpdateStatus};

/// How long a deploy or rolling update waits for its pulls to resolve the image before it
/// answers (with `phase: pulling` if they have not).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

impl From<&Revision> for RevisionInfo {
    fn from(r: &Revision) -> Self {
        Self {
            id: r.id.clone(),
            image: r.image.reference.clone(),
            image_id: r.image.id.clone(),
            digest: r.image.digest.clone(),
            created_at: r.created_at.clone(),
        }
    }
}

impl From<UpdatePhase> for UpdateState {
    fn from(p: UpdatePhase) -> Self {
        match p {
            UpdatePhase::Pulling => Self::Pulling,
            UpdatePhase::Rolling => Self::Rolling,
            UpdatePhase::RollingBack => Self::RollingBack,
            UpdatePhase::Done => Self::Done,
            UpdatePhase::RolledBack => Self::RolledBack,
            UpdatePhase::Failed => Self::Failed,
        }
    }
}

pub(super) fn info(service: &str, u: &UpdateStatus) -> UpdateInfo {
    UpdateInfo {
        service: service.to_owned(),
        kind: match u.kind {
            UpdateKind::Deploy => "deploy",
            UpdateKind::RollingUpdate => "rolling_update",
            UpdateKind::Rollback => "rollback",
        }
        .to_owned(),
        phase: u.phase.into(),
        running: u.phase.running(),
        image: u.image.clone(),
        pulls: u
            .pulls
            .iter()
            .map(|p| PullInfo {
                server: p.server.clone(),
                state: p.state.clone(),
                seconds: p.seconds,
                error: p.error.clone(),
                image_id: p.image_id.clone(),
            })
            .collect(),
        from: u.from.as_ref().map(Into::into),
        to: u.to.as_ref().map(Into::into),
        to_replace: u.to_replace,
        replaced: u.replaced,
        reason: u.reason.clone(),
        started_at: u.started_at.clone(),
        finished_at: u.finished_at.clone(),
    }
}

fn body_image(body: &Bytes) -> Result<Option<String>, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let bad = |e: String| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON such as {{\"image\": \"registry:5000/app:v2\"}}: {e}"),
        )
    };
    // An object, or `null` (the documented "no body": the schema's body is optional). Not
    // an array, which serde would otherwise read as the struct's fields in order.
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    if !(v.is_object() || v.is_null()) {
        return Err(bad("expected an object".into()));
    }
    let b: Option<UpdateBody> = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
    let image = b.and_then(|b| b.image);
    // Refused here, before anything starts: the config's rule for image references.
    if let Some(i) = &image {
        crate::config::syntax::image_reference(i).map_err(|e| {
            AppError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "image {:?} is not an image reference such as registry:5000/app:v2: it {e}",
                    i.chars().take(80).collect::<String>()
                ),
            )
        })?;
    }
    Ok(image)
}

/// The status now, or once the pulls are done (at most [`ANSWER_WITHIN`]).
async fn answer(s: &ApiState, name: &str, started: UpdateStatus) -> UpdateInfo {
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    loop {
        let now = s
            .app
            .service(name)
            .and_then(|rt| rt.snapshot().update)
            .filter(|u| u.started_at == started.started_at);
        match now {
            Some(u)
                if u.phase != UpdatePhase::Pulling || tokio::time::Instant::now() >= deadline =>
            {
                return info(name, &u)
            }
            None => return info(name, &started),
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn update(
    s: &ApiState,
    name: String,
    kind: UpdateKind,
    body: &Bytes,
) -> Result<(StatusCode, Json<UpdateInfo>), AppError> {
    known_service(&s.app, &name)?;
    let image = body_image(body)?;
    let started = commands::update(s.app.context(), &name, kind, image)?;
    Ok((StatusCode::ACCEPTED, Json(answer(s, &name, started).await)))
}

/// Roll replicas of another revision to the current spec (or `{"image": ...}`), pulling
/// the image where it is missing; rolled back automatically when a new replica fails.
#[utoipa::path(
    post, path = "/services/{name}/deploy", tag = "commands",
    params(("name" = String, Path, description = "Service name")),
    request_body(content = Option<UpdateBody>, description = "Optional: the image to run instead of the configured one"),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Update started; follow GET /services/{name}/update", body = UpdateInfo),
        (status = 400, description = "The body is not {\"image\": \"...\"}", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "An update is already running", body = ErrorBody),
        (status = 503, description = "No server is up", body = ErrorBody),
    ),
)]
pub(super) async fn deploy(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<UpdateInfo>), AppError> {
    update(&s, name, UpdateKind::Deploy, &body).await
}

/// Pull the image again on every up server (the configured one, or `{"image": ...}`),
/// then replace every replica one surge at a time, new before old, health-gated; rolled back
/// automatically when a new replica fails.
#[utoipa::path(
    post, path = "/services/{name}/rolling-update", tag = "commands",
    params(("name" = String, Path, description = "Service name")),
    request_body(content = Option<UpdateBody>, description = "Optional: the image to run instead of the configured one"),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Pulls started; the rollout follows. Follow GET /services/{name}/update", body = UpdateInfo),
        (status = 400, description = "The body is not {\"image\": \"...\"}", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "An update is already running", body = ErrorBody),
        (status = 503, description = "No server is up", body = ErrorBody),
    ),
)]
pub(super) async fn rolling_update(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<UpdateInfo>), AppError> {
    update(&s, name, UpdateKind::RollingUpdate, &body).await
}

/// Roll every replica back to the previous revision (the newest earlier one that was not
/// itself rolled back), exactly as pinned: same image ID.
#[utoipa::path(
    post, path = "/services/{name}/rollback", tag = "commands",
    params(("name" = String, Path, description = "Service name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Rollback started; follow GET /services/{name}/update", body = UpdateInfo),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "An update is running, or there is no earlier revision", body = ErrorBody),
        (status = 503, description = "No server is up", body = ErrorBody),
    ),
)]
pub(super) async fn rollback(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<UpdateInfo>), AppError> {
    known_service(&s.app, &name)?;
    let started = commands::rollback(s.app.context(), &name)?;
    Ok((StatusCode::ACCEPTED, Json(answer(&s, &name, started).await)))
}

/// The update running, or the last one since shoal started: pulls per server, replicas
/// replaced, the outcome and why.
#[utoipa::path(
    get, path = "/services/{name}/update", tag = "services",
    params(("name" = String, Path, description = "Service name")),
    responses(
        (status = 200, description = "The update", body = UpdateInfo),
        (status = 404, description = "No such service, or no update since shoal started", body = ErrorBody),
    ),
)]
pub(super) async fn status(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Json<UpdateInfo>, AppError> {
    known_service(&s.app, &name)?;
    let u = s
        .app
        .service(&name)
        .and_then(|rt| rt.snapshot().update)
        .ok_or_else(|| {
            AppError::new(
                StatusCode::NOT_FOUND,
                format!("{name}: no update since shoal started"),
            )
        })?;
    Ok(Json(info(&name, &u)))
}

/// The revisions the service ran (pinned images), the current one first; kept in the
/// journal across restarts.
#[utoipa::path(
    get, path = "/services/{name}/revisions", tag = "services",
    params(("name" = String, Path, description = "Service name")),
    responses(
        (status = 200, description = "Revisions, current first", body = RevisionList),
        (status = 404, description = "No such service", body = ErrorBody),
    ),
)]
pub(super) async fn revisions(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Json<RevisionList>, AppError> {
    known_service(&s.app, &name)?;
    let current = s
        .app
        .service(&name)
        .and_then(|rt| rt.snapshot().target)
        .map(|t| t.id);
    let revisions = s
        .app
        .journal
        .revisions(&name)
        .iter()
        .map(|r| super::model::RevisionEntry {
            revision: (&r.revision).into(),
            current: current.as_deref() == Some(r.revision.id.as_str()),
            failed: r.failed,
            activated_at: jiff::Timestamp::from_millisecond(r.activated_ms)
                .map(|t| t.to_string())
                .unwrap_or_default(),
        })
        .collect();
    Ok(Json(RevisionList {
        service: name,
        current,
        revisions,
    }))
}
