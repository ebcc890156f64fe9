//! `/api/v1/operations`: listing operations, one operation with its steps, cancelling,
//! and its log (a page at a time, or as server-sent events until it ends).
//!
//! An operation on an environment outside the token's scope answers exactly like one
//! that does not exist.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::Stream;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ids::{EnvKey, OperationId};
use crate::pipeline::model::Operation;
use crate::server::auth::{Principal, Role};
use crate::server::error::{ApiError, ApiPath, ApiResult, ErrorBody};
use crate::server::views::{Cancelled, LogPage, OperationDetail, OperationView};
use crate::server::AppState;

/// How many operations `GET /api/v1/operations` reads per page while filtering them to
/// the token's environments.
const SCAN_PAGE: i64 = 500;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this app's operations.
    pub app: Option<String>,
    /// Only this environment's operations (with `app`).
    pub env: Option<String>,
    /// At most this many (default 50, at most 1000), newest first.
    pub limit: Option<i64>,
}

/// Operations, newest first, of the environments the token sees.
#[utoipa::path(get, path = "/api/v1/operations", tag = "operations", params(ListQuery),
    responses((status = 200, body = Vec<OperationView>), (status = 401, body = ErrorBody)))]
pub async fn list_operations(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<OperationView>>> {
    let limit = query.limit.unwrap_or(50).clamp(1, 1000) as usize;
    if let (Some(app), Some(env)) = (&query.app, &query.env) {
        let key = crate::server::api::EnvPath {
            app: app.clone(),
            env: env.clone(),
        }
        .key()?;
        principal.require(&key, Role::Read)?;
        let ops = state.store.operations(Some(&key), limit as i64).await?;
        return Ok(Json(ops.into_iter().map(OperationView::from).collect()));
    }
    // Newest first, filtered by scope: read pages going back until `limit` are found.
    let mut found = Vec::new();
    let mut before = i64::MAX;
    loop {
        let page = state
            .sqlite
            .operations_before(before, query.app.as_deref(), SCAN_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        before = last.id.0;
        let full = (page.len() as i64) < SCAN_PAGE;
        found.extend(
            page.into_iter()
                .filter(|op| principal.sees(&op.env))
                .take(limit - found.len()),
        );
        if found.len() >= limit || full {
            break;
        }
    }
    Ok(Json(found.into_iter().map(OperationView::from).collect()))
}

/// The operation, if the token may see its environment.
pub async fn visible_operation(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> ApiResult<Operation> {
    let missing = || ApiError::NotFound(format!("no operation {id}; `slipway ops` lists them"));
    let op = state
        .store
        .operation(OperationId(id))
        .await?
        .ok_or_else(missing)?;
    if !principal.sees(&op.env) {
        return Err(missing());
    }
    Ok(op)
}

/// One operation and its steps.
#[utoipa::path(get, path = "/api/v1/operations/{id}", tag = "operations",
    params(("id" = i64, Path, description = "the operation's id")),
    responses((status = 200, body = OperationDetail), (status = 404, body = ErrorBody)))]
pub async fn get_operation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<OperationDetail>> {
    let operation = visible_operation(&state, &principal, id).await?;
    let steps = state
        .store
        .steps(operation.id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(OperationDetail {
        operation: operation.into(),
        steps,
    }))
}

/// Cancel an operation: a queued one at once, a running one rolls back.
#[utoipa::path(post, path = "/api/v1/operations/{id}/cancel", tag = "operations",
    params(("id" = i64, Path, description = "the operation's id")),
    responses((status = 200, body = Cancelled), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_operation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Cancelled>> {
    let op = visible_operation(&state, &principal, id).await?;
    principal.require(&op.env, Role::Deploy)?;
    let cancelled = state.pipeline.cancel(OperationId(id)).await?;
    if !cancelled {
        return Err(ApiError::Conflict(format!(
            "operation {id} has already ended"
        )));
    }
    Ok(Json(Cancelled { cancelled: id }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Lines after this sequence number.
    #[serde(default)]
    pub after: i64,
    /// Wait (up to 20 s) for new lines when there are none yet and the operation runs.
    #[serde(default)]
    pub wait: bool,
}

/// A page of an operation's log (a long poll with `wait=true`).
#[utoipa::path(get, path = "/api/v1/operations/{id}/log", tag = "operations",
    params(("id" = i64, Path, description = "the operation's id"), LogQuery),
    responses((status = 200, body = LogPage), (status = 404, body = ErrorBody)))]
pub async fn operation_log(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Json<LogPage>> {
    visible_operation(&state, &principal, id).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Subscribe before reading, so a line written in between still wakes us.
        let notified = state.pipeline.bus.notified();
        let op = visible_operation(&state, &principal, id).await?;
        let lines = state.store.log_lines(op.id, query.after, 1000).await?;
        let finished = op.state.is_final();
        if !lines.is_empty() || finished || !query.wait || tokio::time::Instant::now() >= deadline {
            let lines = lines.into_iter().map(Into::into).collect();
            return Ok(Json(LogPage {
                lines,
                state: op.state.to_string(),
                finished,
            }));
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

/// The log as server-sent events, following until the operation ends: each `message`
/// event carries new lines (its id is the last line's sequence number); the last event
/// is `end` with the final state.
#[utoipa::path(get, path = "/api/v1/operations/{id}/log/stream", tag = "operations",
    params(("id" = i64, Path, description = "the operation's id")),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 404, body = ErrorBody)))]
pub async fn operation_log_stream(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>> {
    visible_operation(&state, &principal, id).await?;
    Ok(Sse::new(log_events(state, id)).keep_alive(KeepAlive::default()))
}

fn log_events(
    state: AppState,
    id: i64,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    futures_util::stream::unfold(
        (state, 0i64, false),
        move |(state, after, done)| async move {
            if done {
                return None;
            }
            let bus = state.pipeline.bus.clone();
            loop {
                let notified = bus.notified();
                let op = state
                    .store
                    .operation(OperationId(id))
                    .await
                    .ok()
                    .flatten()?;
                let lines = state.store.log_lines(op.id, after, 1000).await.ok()?;
                if let Some(last) = lines.last() {
                    let next = last.seq;
                    let data = lines
                        .iter()
                        .map(|l| l.text.as_str())
                        .collect::<Vec<_>>()
                        .join("\n");
                    return Some((
                        Ok(Event::default().id(next.to_string()).data(data)),
                        (state, next, false),
                    ));
                }
                if op.state.is_final() {
                    let event = Event::default().event("end").data(op.state.to_string());
                    return Some((Ok(event), (state, after, true)));
                }
                let _ = tokio::time::timeout(Duration::from_secs(15), notified).await;
            }
        },
    )
}

/// Whether an app/env pair given as query parameters is one the token sees.
pub fn visible_env(principal: &Principal, app: &str, env: &str) -> ApiResult<EnvKey> {
    let key = crate::server::api::EnvPath {
        app: app.to_owned(),
        env: env.to_owned(),
    }
    .key()?;
    principal.require(&key, Role::Read)?;
    Ok(key)
}
