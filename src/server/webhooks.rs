//! `POST /webhooks/github`: GitHub's deliveries. The body is read within limits, then
//! `github::delivery::read` decides (signature first, then headers, then payload); an
//! accepted delivery is stored before it is answered (202), and worked on afterwards by
//! the GitHub delivery worker.
//!
//! Limits, because anyone can reach this route before the signature says who they are:
//! a body is at most 25 MB (GitHub's own cap; a larger `Content-Length` is refused before
//! a byte of it is read), it must arrive within the read timeout (GitHub itself gives up
//! after 10 s), and at most `BODIES_AT_ONCE` bodies are read at a time, so unsigned
//! requests can never make the server hold more than 8 × 25 MB.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::github::db::Stored;
use crate::github::delivery::Refusal;
use crate::github::trigger::Trigger;
use crate::github::{GitHub, MAX_PAYLOAD_BYTES};

/// How many delivery bodies are read at once; more wait (within the read timeout).
pub const BODIES_AT_ONCE: usize = 8;

#[derive(Clone)]
struct Webhooks {
    github: GitHub,
    read_timeout: Duration,
    bodies: Arc<Semaphore>,
}

/// The webhook route; `read_timeout` bounds how long a body may take to arrive.
pub fn routes(github: GitHub, read_timeout: Duration) -> axum::Router {
    axum::Router::new()
        .route("/webhooks/github", post(receive))
        .with_state(Webhooks {
            github,
            read_timeout,
            bodies: Arc::new(Semaphore::new(BODIES_AT_ONCE)),
        })
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

fn refused(refusal: &Refusal, headers: &HeaderMap) -> Response {
    let delivery = headers
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok())
        .map(crate::text::shown);
    tracing::warn!(
        status = refusal.status,
        ?delivery,
        "refused a webhook delivery: {}",
        refusal.message
    );
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    answer(status, &refusal.message)
}

async fn receive(State(hooks): State<Webhooks>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&hooks, &headers, body).await {
        Ok(body) => body,
        Err(refusal) => return refused(&refusal, &headers),
    };
    let received = match hooks.github.read(&headers, &body) {
        Ok(received) => received,
        Err(refusal) => return refused(&refusal, &headers),
    };
    if received.trigger == Trigger::Ping {
        return answer(StatusCode::OK, "pong");
    }
    let (delivery, event) = (&received.id, &received.event);
    match hooks.github.accept(&received, &body).await {
        Ok(Stored::New) => {
            tracing::info!(delivery, event, "accepted a GitHub delivery");
            match &received.trigger {
                Trigger::Ignored(why) => answer(
                    StatusCode::ACCEPTED,
                    &format!("accepted, not acted on: {why}"),
                ),
                _ => answer(StatusCode::ACCEPTED, "accepted"),
            }
        }
        Ok(Stored::SameId) => answer(
            StatusCode::OK,
            "this delivery was received before; it is not acted on again",
        ),
        Ok(Stored::SameBody(first)) => {
            tracing::warn!(delivery, event, first = %first, "a delivery repeats the body of an earlier one; not acted on again");
            answer(
                StatusCode::OK,
                &format!(
                    "this body was received before, as delivery {first}; it is not acted on again"
                ),
            )
        }
        Err(error) => {
            tracing::error!(delivery, %error, "could not store a GitHub delivery");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the delivery could not be stored; redeliver it",
            )
        }
    }
}

/// The whole body, or why not: too large (413, before reading when `Content-Length`
/// says so), too slow (408), or cut short (400).
async fn read_body(hooks: &Webhooks, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
    let too_large = || Refusal {
        status: 413,
        message: format!(
            "the body is larger than {} MB, GitHub's cap on a delivery; nothing was read past it",
            MAX_PAYLOAD_BYTES / 1024 / 1024
        ),
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_PAYLOAD_BYTES as u64) {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + hooks.read_timeout;
    let slow = || Refusal {
        status: 408,
        message: format!(
            "the body did not arrive within {}; send it at once",
            crate::config::format_duration(hooks.read_timeout)
        ),
    };
    let _permit = tokio::time::timeout_at(deadline, hooks.bodies.acquire())
        .await
        .map_err(|_| Refusal {
            status: 503,
            message: "too many deliveries are being received at once; redeliver this one".into(),
        })?
        .map_err(|_| slow())?;
    match tokio::time::timeout_at(deadline, Limited::new(body, MAX_PAYLOAD_BYTES).collect()).await
    {
        Err(_) => Err(slow()),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => Err(Refusal {
            status: 400,
            message: "the body ended before its Content-Length said: the connection was cut; send it again".into(),
        }),
    }
}
