//! The API's one error type: each variant maps to a status code and a JSON body
//! `{"error": "..."}` whose message says what to do. Internal errors are logged once,
//! with their detail, and answered without it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::pipeline::traits::EffectError;

/// The largest JSON body the API reads (uploads have their own limit): a request is a
/// few hundred bytes, a batch of variables a few kilobytes.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the token is missing, malformed, unknown or revoked: send `Authorization: Bearer <token>` (the admin token is in <data>/admin.token; `slipway tokens create` makes others)")]
    Unauthorized,
    /// The token sees the environment but its role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
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
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "API request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The JSON body of every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what to do; never contains a variable's value.
    pub error: String,
}

/// `Json<T>` whose rejection never quotes the body: serde's messages can quote the
/// values they choke on, and a body may carry a variable's value. The body is read
/// within the route's `DefaultBodyLimit` (`MAX_JSON_BYTES`), and decoded by `decode_json`.
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
        if !json_content_type(request.headers()) {
            return Err(ApiError::BadRequest(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                    ApiError::PayloadTooLarge(format!(
                        "the body is larger than the {} KiB a JSON request may be",
                        MAX_JSON_BYTES / 1024
                    ))
                }
                _ => ApiError::BadRequest(
                    "the body could not be read to its end: the connection was cut".into(),
                ),
            })?;
        decode_json(&bytes).map(ApiJson)
    }
}

/// `application/json`, or any `application/*+json`.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let Some(subtype) = essence
        .get(.."application/".len())
        .filter(|prefix| prefix.eq_ignore_ascii_case("application/"))
        .map(|_| &essence["application/".len()..])
    else {
        return false;
    };
    subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json")
}

/// Decodes an API request body; the error says what is wrong without quoting a value.
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let message = error.to_string();
        ApiError::BadRequest(match error.classify() {
            _ if message.contains("recursion limit exceeded") => {
                "the body nests deeper than 128 levels; no request of this API does".into()
            }
            serde_json::error::Category::Data if message.starts_with("missing field `") => {
                let field = message["missing field `".len()..]
                    .split('`')
                    .next()
                    .unwrap_or_default();
                format!("the body has no `{field}`; see /api/v1/openapi.json")
            }
            serde_json::error::Category::Data => {
                "the body does not have the expected fields and types; see /api/v1/openapi.json"
                    .into()
            }
            _ => "the body is not valid JSON".into(),
        })
    })
}

/// `Path<T>` whose rejection is an `ApiError` (JSON, and the segment shortened).
pub struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        let rejection = match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => return Ok(ApiPath(value)),
            Err(rejection) => rejection,
        };
        let PathRejection::FailedToDeserializePathParams(failed) = &rejection else {
            return Err(ApiError::Internal(rejection.body_text()));
        };
        Err(ApiError::BadRequest(match failed.kind() {
            ErrorKind::ParseErrorAtKey {
                value,
                expected_type,
                ..
            }
            | ErrorKind::ParseErrorAtIndex {
                value,
                expected_type,
                ..
            }
            | ErrorKind::ParseError {
                value,
                expected_type,
            } => {
                let what = if expected_type.starts_with('i') || expected_type.starts_with('u') {
                    "a number"
                } else {
                    expected_type
                };
                format!("`{}` in the URL is not {what}", crate::text::shown(value))
            }
            ErrorKind::InvalidUtf8InPathParam { key } => {
                format!("the `{key}` in the URL is not UTF-8 once percent-decoded")
            }
            _ => "the URL's path is not one this route takes; see /api/v1/openapi.json".into(),
        }))
    }
}

/// The answer for a path no route serves.
pub async fn no_route() -> ApiError {
    ApiError::NotFound("no such route; the routes are listed in /api/v1/openapi.json".into())
}
