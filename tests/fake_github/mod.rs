//! A fake GitHub REST API for tests: an HTTP server on loopback that records every
//! request, checks it against GitHub's published schema of the operations Slipway uses
//! (`shared/fixtures/github-api/rest-subset.json`: method, path, required fields, enum
//! values, lengths and counts, plus the 140-character status descriptions GitHub
//! enforces), and answers with the spec's example responses. It can fail the first
//! requests (500, or 403 with rate-limit headers) to play an outage.

#![allow(dead_code)]

pub mod harness;
mod schema;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// How the fake fails while it plays an outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    ServerError,
    /// 403 with `x-ratelimit-remaining: 0`, `x-ratelimit-reset` and `retry-after`.
    RateLimited,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    /// What the fake answered.
    pub status: u16,
    /// The body of its answer (`id` of a created check run, an installation token…).
    pub answer: Value,
}

impl Recorded {
    /// `POST /repos/{owner}/{repo}/statuses/{sha}` and so on.
    pub fn operation(&self) -> Option<String> {
        schema::operation_of(&self.method, &self.path).map(|(key, _)| key)
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    violations: Vec<String>,
    fail_first: usize,
    outage: Option<Outage>,
    next_id: i64,
}

/// A running fake; stops with the test's runtime.
#[derive(Clone)]
pub struct FakeGitHub {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    spec: Arc<Value>,
}

impl FakeGitHub {
    /// Starts the fake on a free port, in a thread of its own.
    pub fn start() -> FakeGitHub {
        Self::start_failing(0, Outage::ServerError)
    }

    /// Starts a fake that fails its first `count` requests.
    pub fn start_failing(count: usize, outage: Outage) -> FakeGitHub {
        let spec = Arc::new(schema::load());
        let inner = Arc::new(Mutex::new(Inner {
            fail_first: count,
            outage: Some(outage),
            next_id: 1000,
            ..Inner::default()
        }));
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        let state = (inner.clone(), spec.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the fake");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind the fake");
                let _ = tx.send(listener.local_addr().expect("its address"));
                let app = axum::Router::new().fallback(answer).with_state(state);
                let _ = axum::serve(listener, app).await;
            });
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the fake GitHub starts");
        FakeGitHub {
            url: format!("http://{addr}"),
            inner,
            spec,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The requests GitHub accepted (what GitHub "has").
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.status < 300)
            .collect()
    }

    /// Everything that broke GitHub's schema.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// The `id` GitHub gave the check run created for `head_sha` with this name.
    pub fn check_run_id(&self, name: &str, head_sha: &str) -> Option<i64> {
        self.accepted()
            .into_iter()
            .find(|r| {
                r.method == "POST"
                    && r.path.ends_with("/check-runs")
                    && r.body["name"] == name
                    && r.body["head_sha"] == head_sha
            })
            .and_then(|r| r.answer["id"].as_i64())
    }

    /// The accepted updates of one check run, in order.
    pub fn check_run_updates(&self, id: i64) -> Vec<Recorded> {
        self.accepted()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with(&format!("/check-runs/{id}")))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type FakeState = (Arc<Mutex<Inner>>, Arc<Value>);

async fn answer(
    State((inner, spec)): State<FakeState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::String("<not JSON>".into()))
    };
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    let mut record = Recorded {
        method: method.to_string(),
        path: path.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
        status: 0,
        answer: Value::Null,
    };

    if inner.fail_first > 0 {
        inner.fail_first -= 1;
        let response = match inner.outage {
            Some(Outage::RateLimited) => {
                record.status = 403;
                let reset = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() + 1)
                    .unwrap_or(0);
                (
                    StatusCode::FORBIDDEN,
                    [
                        ("x-ratelimit-remaining", "0".to_owned()),
                        ("x-ratelimit-reset", reset.to_string()),
                        ("retry-after", "1".to_owned()),
                    ],
                    axum::Json(json!({ "message": "API rate limit exceeded" })),
                )
                    .into_response()
            }
            _ => {
                record.status = 500;
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({ "message": "Server Error" })),
                )
                    .into_response()
            }
        };
        inner.requests.push(record);
        return response;
    }

    let mut problems = Vec::new();
    if !authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("Bearer ") && a.len() > 7)
    {
        problems.push("no bearer token".to_owned());
    }
    let Some((key, operation)) = schema::operation_of(method.as_str(), &path) else {
        inner.violations.push(format!(
            "{method} {path}: not an operation of the API subset"
        ));
        record.status = 404;
        inner.requests.push(record);
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "message": "Not Found" })),
        )
            .into_response();
    };
    problems.extend(schema::check_request(&spec, &key, &operation, &path, &body));
    let id = inner.next_id;
    inner.next_id += 1;
    let (status, response) = schema::example_response(&spec, &key, id, &operation);
    for problem in problems {
        inner.violations.push(format!("{key}: {problem}"));
    }
    record.status = status;
    record.answer = response.clone();
    inner.requests.push(record);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        axum::Json(response),
    )
        .into_response()
}
