//! API errors: a status and an [`ErrorBody`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::model::ErrorBody;
use crate::commands::CommandError;

/// An API error: a status and its body, rendered as `{"error": "..."}`.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    body: ErrorBody,
}

impl AppError {
    /// An error with a message only.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody::new(message),
        }
    }

    /// An error with a full body.
    pub fn with_body(status: StatusCode, body: ErrorBody) -> Self {
        Self { status, body }
    }

    /// `404 unknown service "name"`.
    pub fn unknown_service(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("unknown service {name:?}"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
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
            CommandError::Update(u) => match u {
                crate::release::UpdateError::BadRequest(_) => StatusCode::BAD_REQUEST,
                crate::release::UpdateError::UnknownService(_) => StatusCode::NOT_FOUND,
                crate::release::UpdateError::NoServerUp => StatusCode::SERVICE_UNAVAILABLE,
                crate::release::UpdateError::Busy { .. }
                | crate::release::UpdateError::NoPrevious(_) => StatusCode::CONFLICT,
            },
            CommandError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            CommandError::BadConfig(err) => {
                return AppError::with_body(
                    StatusCode::BAD_REQUEST,
                    ErrorBody {
                        error: e.to_string(),
                        issues: Some(err.issues.iter().cloned().map(Into::into).collect()),
                        file: Some(err.file.clone()),
                    },
                )
            }
        };
        AppError::new(status, e.to_string())
    }
}
