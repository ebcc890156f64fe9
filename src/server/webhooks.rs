//! `POST /webhooks/github`: GitHub's deliveries. The signature is checked over the raw
//! body before anything is parsed; an accepted delivery is stored before it is answered
//! (202), and worked on afterwards by the GitHub delivery worker.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};

use crate::github::{GitHub, MAX_PAYLOAD_BYTES};

/// The webhook route, with its own body limit (GitHub's 25 MB).
pub fn routes(github: GitHub) -> axum::Router {
    axum::Router::new()
        .route("/webhooks/github", post(receive))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
        .with_state(github)
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

async fn receive(State(github): State<GitHub>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !github.verify(&body, header("x-hub-signature-256")) {
        tracing::warn!("refused a webhook delivery with a bad or missing X-Hub-Signature-256");
        return answer(
            StatusCode::UNAUTHORIZED,
            "bad or missing X-Hub-Signature-256",
        );
    }
    let (Some(event), Some(delivery)) = (header("x-github-event"), header("x-github-delivery"))
    else {
        return answer(
            StatusCode::BAD_REQUEST,
            "X-GitHub-Event and X-GitHub-Delivery are required",
        );
    };
    if delivery.is_empty() || delivery.len() > 100 {
        return answer(
            StatusCode::BAD_REQUEST,
            "X-GitHub-Delivery is not a delivery id",
        );
    }
    let form =
        header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let json_text = if form {
        match form_urlencoded::parse(&body).find(|(key, _)| key == "payload") {
            Some((_, payload)) => payload.into_owned(),
            None => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "a form-encoded delivery needs a `payload` field",
                )
            }
        }
    } else {
        match std::str::from_utf8(&body) {
            Ok(text) => text.to_owned(),
            Err(_) => return answer(StatusCode::BAD_REQUEST, "the body is not UTF-8 JSON"),
        }
    };
    let payload: Value = match serde_json::from_str(&json_text) {
        Ok(payload @ Value::Object(_)) => payload,
        Ok(_) | Err(_) => {
            return answer(StatusCode::BAD_REQUEST, "the payload is not a JSON object")
        }
    };
    if event == "ping" {
        return answer(StatusCode::OK, "pong");
    }
    match github.accept(delivery, event, &payload, &json_text).await {
        Ok(true) => {
            tracing::info!(delivery, event, "accepted a GitHub delivery");
            answer(StatusCode::ACCEPTED, "accepted")
        }
        Ok(false) => answer(StatusCode::OK, "this delivery was received before"),
        Err(error) => {
            tracing::error!(delivery, %error, "could not store a GitHub delivery");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the delivery could not be stored; redeliver it",
            )
        }
    }
}
