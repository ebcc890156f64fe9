//! The API's one error type: each variant maps to a status code and a JSON body
//! `{"error": "..."}` whose message says what to do. Internal errors are logged once,
//! with their detail, and answered without it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::pipeline::traits::EffectError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid token: send `Authorization: Bearer <token>` (the admin token is in <data>/admin.token)")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error")]
    Internal(String),
}

impl From<EffectError> for ApiError {
    fn from(error: EffectError) -> Self {
        ApiError::Internal(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "API request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
