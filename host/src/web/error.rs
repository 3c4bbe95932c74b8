//! The one place the library's errors become HTTP statuses. Every route returns [`ApiError`]; its body is
//! `{"error": message}` with the message the CLI prints for the same failure (without `kanban: `).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::board::BoardError;
use crate::ops::attachments::{BadName, TooBig};
use crate::ops::input::UsageError;
use crate::policy::plugins::PluginStoreError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    /// 400 naming the field at fault: `priority: invalid type: string "x", expected i64`.
    pub fn field(field: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, format!("{field}: {message}"))
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> ApiError {
        ApiError::new(status_of(&err), format!("{err:#}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        anyhow::Error::from(err).into()
    }
}

impl From<BoardError> for ApiError {
    fn from(err: BoardError) -> ApiError {
        anyhow::Error::from(err).into()
    }
}

/// The status of a library error: the first cause that says something decides.
fn status_of(err: &anyhow::Error) -> StatusCode {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return store_status(e);
        }
        if let Some(e) = cause.downcast_ref::<BoardError>() {
            return match e {
                BoardError::NotFound { .. } | BoardError::BadSlug(_) => StatusCode::NOT_FOUND,
                BoardError::Invalid(_) => StatusCode::BAD_REQUEST,
                BoardError::Exists(_) => StatusCode::CONFLICT,
                BoardError::Store(e) => store_status(e),
                BoardError::Config(_) | BoardError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            };
        }
        if cause.downcast_ref::<UsageError>().is_some() || cause.downcast_ref::<BadName>().is_some() {
            return StatusCode::BAD_REQUEST;
        }
        if cause.downcast_ref::<TooBig>().is_some() {
            return StatusCode::PAYLOAD_TOO_LARGE;
        }
        if let Some(PluginStoreError::NotInstalled(_)) = cause.downcast_ref::<PluginStoreError>() {
            return StatusCode::NOT_FOUND;
        }
    }
    StatusCode::INTERNAL_SERVER_ERROR
}

fn store_status(err: &StoreError) -> StatusCode {
    match err {
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::Refused(_) => StatusCode::CONFLICT,
        StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
        // Busy, not broken: the client may retry.
        StoreError::Locked { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
