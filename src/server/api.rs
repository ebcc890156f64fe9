//! The JSON API under `/api/v1`: deploys, operations, their logs, releases and
//! configuration variables.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};

use crate::ids::{EnvKey, OperationId, ReleaseNumber};
use crate::pipeline::model::{LogLine, NewOperation, Operation, OperationKind, SourceSpec, StepRecord, Variable};
use crate::server::auth::require_admin;
use crate::server::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::source::upload;

/// Path parameters naming an environment.
#[derive(Deserialize)]
pub struct EnvPath {
    pub app: String,
    pub env: String,
}

impl EnvPath {
    fn key(&self) -> ApiResult<EnvKey> {
        for (what, name) in [("app", &self.app), ("environment", &self.env)] {
            if !is_dns_label(name) {
                return Err(ApiError::BadRequest(format!(
                    "`{name}` is not a valid {what} name: use lowercase letters, digits and `-` (at most 63)"
                )));
            }
        }
        Ok(EnvKey::new(self.app.clone(), self.env.clone()))
    }
}

/// Whether a name can be part of a host name (and of a file name): `[a-z0-9-]{1,63}`.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[derive(Deserialize)]
pub struct UploadQuery {
    pub commit: Option<String>,
    pub initiator: Option<String>,
}

/// `POST /api/v1/apps/{app}/environments/{env}/uploads`: a gzipped tar of a folder.
pub async fn deploy_upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<EnvPath>,
    Query(query): Query<UploadQuery>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    require_admin(&headers, &state.admin_hash)?;
    let env = path.key()?;
    if let Some(commit) = &query.commit {
        if commit.len() > 64 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::BadRequest(format!("`{commit}` is not a git commit sha")));
        }
    }
    let sources = state.data_dir.join("sources");
    let (dir, hash) = tokio::task::spawn_blocking(move || upload::unpack(&body, &sources))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let source = SourceSpec::Upload { path: dir.display().to_string(), commit: query.commit.clone(), content_hash: hash };
    let op = submit(&state, env, OperationKind::Deploy, Some(source), query.commit, serde_json::Value::Null, query.initiator).await?;
    Ok((StatusCode::CREATED, Json(op)))
}

/// The body of `POST .../operations`.
#[derive(Deserialize)]
pub struct OperationRequest {
    pub kind: OperationKind,
    /// For deploys: `{"type": "git", "url": ..., "reference": ...}` or `{"type": "image", "reference": ...}`.
    pub source: Option<SourceSpec>,
    #[serde(default)]
    pub args: serde_json::Value,
    pub initiator: Option<String>,
}

/// `POST /api/v1/apps/{app}/environments/{env}/operations`.
pub async fn create_operation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<EnvPath>,
    Json(request): Json<OperationRequest>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&headers, &state.admin_hash)?;
    let env = path.key()?;
    if let Some(SourceSpec::Upload { .. }) = request.source {
        return Err(ApiError::BadRequest("upload a folder with POST .../uploads".into()));
    }
    if request.kind == OperationKind::Deploy && request.source.is_none() {
        return Err(ApiError::BadRequest("a deploy needs a `source`: git or image".into()));
    }
    if request.kind == OperationKind::Rollback {
        if let Some(to) = request.args.get("to") {
            let to = to.as_str().map(str::to_owned).unwrap_or_else(|| to.to_string());
            to.parse::<ReleaseNumber>().map_err(ApiError::BadRequest)?;
        }
    }
    let op = submit(&state, env, request.kind, request.source, None, request.args, request.initiator).await?;
    Ok((StatusCode::CREATED, Json(op)))
}

async fn submit(
    state: &AppState,
    env: EnvKey,
    kind: OperationKind,
    source: Option<SourceSpec>,
    commit: Option<String>,
    args: serde_json::Value,
    initiator: Option<String>,
) -> ApiResult<Operation> {
    let initiator = initiator.filter(|i| i.len() <= 200).unwrap_or_else(|| "api (admin token)".to_owned());
    let new = NewOperation { env, kind, source, commit, args, initiator };
    Ok(state.pipeline.submit(new).await?)
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub app: Option<String>,
    pub env: Option<String>,
    pub limit: Option<i64>,
}

/// `GET /api/v1/operations?app=&env=`.
pub async fn list_operations(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<Operation>>> {
    require_admin(&headers, &state.admin_hash)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let ops = match (&query.app, &query.env) {
        (Some(app), Some(env)) => {
            let key = EnvPath { app: app.clone(), env: env.clone() }.key()?;
            state.store.operations(Some(&key), limit).await?
        }
        (app, _) => {
            let all = state.store.operations(None, limit).await?;
            all.into_iter().filter(|op| app.as_ref().is_none_or(|a| op.env.app.as_str() == a)).collect()
        }
    };
    Ok(Json(ops))
}

#[derive(Serialize)]
pub struct OperationDetail {
    #[serde(flatten)]
    pub operation: Operation,
    pub steps: Vec<StepRecord>,
}

async fn find_operation(state: &AppState, id: i64) -> ApiResult<Operation> {
    state
        .store
        .operation(OperationId(id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no operation {id}; `slipway ops` lists them")))
}

/// `GET /api/v1/operations/{id}`.
pub async fn get_operation(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult<Json<OperationDetail>> {
    require_admin(&headers, &state.admin_hash)?;
    let operation = find_operation(&state, id).await?;
    let steps = state.store.steps(operation.id).await?;
    Ok(Json(OperationDetail { operation, steps }))
}

/// `POST /api/v1/operations/{id}/cancel`.
pub async fn cancel_operation(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult<Json<serde_json::Value>> {
    require_admin(&headers, &state.admin_hash)?;
    find_operation(&state, id).await?;
    let cancelled = state.pipeline.cancel(OperationId(id)).await?;
    if !cancelled {
        return Err(ApiError::Conflict(format!("operation {id} has already ended")));
    }
    Ok(Json(serde_json::json!({ "cancelled": id })))
}

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    pub after: i64,
    /// Wait (up to 20 s) for new lines when there are none yet and the operation runs.
    #[serde(default)]
    pub wait: bool,
}

#[derive(Serialize)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    pub state: crate::pipeline::model::OperationState,
    pub finished: bool,
}

/// `GET /api/v1/operations/{id}/log?after=N&wait=true`: a page of log lines (long poll).
pub async fn operation_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Json<LogPage>> {
    require_admin(&headers, &state.admin_hash)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Subscribe before reading, so a line written in between still wakes us.
        let notified = state.pipeline.bus.notified();
        let op = find_operation(&state, id).await?;
        let lines = state.store.log_lines(op.id, query.after, 1000).await?;
        let finished = op.state.is_final();
        if !lines.is_empty() || finished || !query.wait || tokio::time::Instant::now() >= deadline {
            return Ok(Json(LogPage { lines, state: op.state, finished }));
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

/// `GET /api/v1/operations/{id}/log/stream`: the log as server-sent events, following
/// until the operation ends. Each event is one line; the last one is `event: end`.
pub async fn operation_log_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>> {
    require_admin(&headers, &state.admin_hash)?;
    find_operation(&state, id).await?;
    let stream = async_stream(state, id);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn async_stream(state: AppState, id: i64) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    futures_util::stream::unfold((state, 0i64, false), move |(state, after, done)| async move {
        if done {
            return None;
        }
        let bus = state.pipeline.bus.clone();
        loop {
            let notified = bus.notified();
            let op = state.store.operation(OperationId(id)).await.ok().flatten()?;
            let lines = state.store.log_lines(op.id, after, 1000).await.ok()?;
            if let Some(last) = lines.last() {
                let next = last.seq;
                let data = lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n");
                return Some((Ok(Event::default().id(next.to_string()).data(data)), (state, next, false)));
            }
            if op.state.is_final() {
                let event = Event::default().event("end").data(op.state.to_string());
                return Some((Ok(event), (state, after, true)));
            }
            let _ = tokio::time::timeout(Duration::from_secs(15), notified).await;
        }
    })
}

/// `GET /api/v1/apps/{app}/environments/{env}/releases`.
pub async fn list_releases(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<EnvPath>,
) -> ApiResult<Json<serde_json::Value>> {
    require_admin(&headers, &state.admin_hash)?;
    let env = path.key()?;
    let current = state.store.current_release(&env).await?.map(|r| r.number);
    let releases: Vec<serde_json::Value> = state
        .store
        .releases(&env)
        .await?
        .into_iter()
        .map(|r| {
            // Variables are secrets: a release shows only the hash of its configuration.
            serde_json::json!({
                "number": r.number, "name": r.number.to_string(), "commit": r.commit,
                "artifact": r.artifact, "config_hash": r.config_hash, "scale": r.scale,
                "operation": r.operation, "created_at": r.created_at, "current": Some(r.number) == current,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "url": state.router_url(&env), "releases": releases })))
}

#[derive(Deserialize)]
pub struct VariablesRequest {
    #[serde(default)]
    pub set: Vec<Variable>,
    #[serde(default)]
    pub unset: Vec<String>,
}

/// `GET /api/v1/apps/{app}/environments/{env}/config`: keys only (values are secrets).
pub async fn list_variables(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<EnvPath>,
) -> ApiResult<Json<serde_json::Value>> {
    require_admin(&headers, &state.admin_hash)?;
    let env = path.key()?;
    let vars = state.store.variables(&env).await?;
    let listed: Vec<serde_json::Value> = vars.iter().map(|v| serde_json::json!({ "key": v.key, "build": v.build })).collect();
    Ok(Json(serde_json::json!({ "variables": listed })))
}

/// `PATCH /api/v1/apps/{app}/environments/{env}/config`: set and unset variables. They
/// take effect with the next release.
pub async fn change_variables(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<EnvPath>,
    Json(request): Json<VariablesRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    require_admin(&headers, &state.admin_hash)?;
    let env = path.key()?;
    for var in &request.set {
        if var.key.is_empty() || !var.key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || var.key.as_bytes()[0].is_ascii_digit() {
            return Err(ApiError::BadRequest(format!(
                "`{}` is not a valid variable name: use letters, digits and `_`, not starting with a digit",
                var.key
            )));
        }
    }
    state.store.ensure_environment(&env).await?;
    state.store.set_variables(&env, &request.set).await?;
    state.store.unset_variables(&env, &request.unset).await?;
    // Runtime variables make a new release at once (a `configure` operation); build
    // variables wait for the next deploy, which they rebuild.
    let runtime_change = request.set.iter().any(|v| !v.build) || !request.unset.is_empty();
    let serving = state.store.current_release(&env).await?.is_some();
    let operation = if runtime_change && serving {
        let op = submit(&state, env, OperationKind::Configure, None, None, serde_json::Value::Null, Some("api (admin token)".into())).await?;
        Some(op)
    } else {
        None
    };
    Ok(Json(serde_json::json!({ "set": request.set.len(), "unset": request.unset.len(), "operation": operation })))
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok"
}

