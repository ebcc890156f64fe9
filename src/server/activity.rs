//! The activity report: every operation with who started it, its environment, type,
//! commit, releases, state and times, as RFC 4180 CSV or JSON. It streams: operations are
//! read a page at a time (keyset pagination on the id) and written as they are read, so
//! a report of a million operations takes the memory of one page. Operations of apps
//! deleted since are included (they keep their app and environment as text), and a
//! token's report lists only its environments.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};
use utoipa::IntoParams;

use crate::pipeline::model::Operation;
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult, ErrorBody};
use crate::server::operations::visible_env;
use crate::server::AppState;
use crate::store::{ActivityFilter, SqliteStore};

/// Operations read per query.
pub const PAGE: i64 = 500;

/// The CSV header, in column order.
pub const COLUMNS: [&str; 13] = [
    "operation_id",
    "app",
    "environment",
    "type",
    "state",
    "initiator",
    "commit",
    "release_before",
    "release_after",
    "created_at",
    "started_at",
    "finished_at",
    "duration_seconds",
];

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Only this app.
    pub app: Option<String>,
    /// Only this environment (of `app`, or of every app).
    pub env: Option<String>,
    /// From this day (`2026-11-01`, UTC) or time (RFC 3339), included.
    pub since: Option<String>,
    /// To this day (included) or time (RFC 3339, excluded).
    pub until: Option<String>,
    /// `csv` (default for `activity.csv`) or `json` (default for `activity`).
    pub format: Option<String>,
}

/// The activity report (JSON by default; `format=csv` for CSV).
#[utoipa::path(get, path = "/api/v1/activity", tag = "activity", params(ActivityQuery),
    responses((status = 200, description = "a JSON array of operations, or CSV with format=csv", body = Vec<crate::server::views::OperationView>),
        (status = 400, body = ErrorBody)))]
pub async fn activity(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ActivityQuery>,
) -> ApiResult<Response> {
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::BadRequest("`format` is `csv` or `json`".into())),
    };
    report(state, principal, query, csv)
}

/// The activity report as RFC 4180 CSV (CRLF line ends, a header row).
#[utoipa::path(get, path = "/api/v1/activity.csv", tag = "activity", params(ActivityQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ErrorBody)))]
pub async fn activity_csv(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ActivityQuery>,
) -> ApiResult<Response> {
    report(state, principal, query, true)
}

fn report(
    state: AppState,
    principal: Principal,
    query: ActivityQuery,
    csv: bool,
) -> ApiResult<Response> {
    let filter = ActivityFilter {
        since: query
            .since
            .as_deref()
            .map(|t| parse_time(t, false))
            .transpose()?,
        until: query
            .until
            .as_deref()
            .map(|t| parse_time(t, true))
            .transpose()?,
        app: query.app.clone(),
        env: query.env.clone(),
    };
    if let (Some(app), Some(env)) = (&query.app, &query.env) {
        visible_env(&principal, app, env)?;
    }
    let sqlite = state.sqlite.clone();
    let (content_type, body) = if csv {
        (
            "text/csv; charset=utf-8",
            Body::from_stream(csv_stream(sqlite, principal, filter)),
        )
    } else {
        (
            "application/json",
            Body::from_stream(json_stream(sqlite, principal, filter)),
        )
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    if csv {
        headers.insert(
            header::CONTENT_DISPOSITION,
            header::HeaderValue::from_static("attachment; filename=\"activity.csv\""),
        );
    }
    Ok(response)
}

/// Pages of the operations a principal sees (all when `principal` is None), in id order.
fn pages(
    store: std::sync::Arc<SqliteStore>,
    principal: Option<Principal>,
    filter: ActivityFilter,
) -> impl Stream<Item = Result<Vec<Operation>, std::io::Error>> {
    futures_util::stream::unfold(Some(0i64), move |after| {
        let (store, principal, filter) = (store.clone(), principal.clone(), filter.clone());
        async move {
            let after = after?;
            match store.activity_page(&filter, after, PAGE).await {
                Ok(page) => {
                    let next = if (page.len() as i64) < PAGE {
                        None
                    } else {
                        page.last().map(|op| op.id.0)
                    };
                    let visible = page
                        .into_iter()
                        .filter(|op| principal.as_ref().is_none_or(|p| p.sees(&op.env)))
                        .collect();
                    Some((Ok(visible), next))
                }
                Err(error) => {
                    tracing::error!(%error, "the activity report stopped");
                    Some((
                        Err(std::io::Error::other(
                            "the activity report could not be read",
                        )),
                        None,
                    ))
                }
            }
        }
    })
}

fn csv_stream(
    store: std::sync::Arc<SqliteStore>,
    principal: Principal,
    filter: ActivityFilter,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let header = futures_util::stream::once(async { Ok(Bytes::from(csv_header())) });
    let rows = futures_util::StreamExt::map(pages(store, Some(principal), filter), |page| {
        page.map(|ops| Bytes::from(csv_rows(&ops)))
    });
    futures_util::StreamExt::chain(header, rows)
}

fn json_stream(
    store: std::sync::Arc<SqliteStore>,
    principal: Principal,
    filter: ActivityFilter,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let mut first = true;
    let rows = futures_util::StreamExt::map(pages(store, Some(principal), filter), move |page| {
        page.map(|ops| {
            let mut out = String::new();
            for op in ops {
                out.push_str(if first { "\n" } else { ",\n" });
                first = false;
                let view = crate::server::views::OperationView::from(op);
                out.push_str(&serde_json::to_string(&view).unwrap_or_else(|_| "null".into()));
            }
            Bytes::from(out)
        })
    });
    let open = futures_util::stream::once(async { Ok(Bytes::from_static(b"[")) });
    let close = futures_util::stream::once(async { Ok(Bytes::from_static(b"\n]\n")) });
    futures_util::StreamExt::chain(futures_util::StreamExt::chain(open, rows), close)
}

/// Writes the report of `filter` (every environment it names) to `out`, a page at a time.
pub async fn write_csv(
    store: std::sync::Arc<SqliteStore>,
    filter: ActivityFilter,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    out.write_all(csv_header().as_bytes()).await?;
    let mut pages = std::pin::pin!(pages(store, None, filter));
    while let Some(page) = futures_util::StreamExt::next(&mut pages).await {
        out.write_all(csv_rows(&page?).as_bytes()).await?;
    }
    out.flush().await
}

pub fn csv_header() -> String {
    let mut line = COLUMNS.join(",");
    line.push_str("\r\n");
    line
}

/// The CSV lines of some operations.
pub fn csv_rows(ops: &[Operation]) -> String {
    let mut out = String::with_capacity(ops.len() * 160);
    for op in ops {
        let duration = match (op.started_at, op.finished_at) {
            (Some(start), Some(end)) => format!("{:.3}", (end - start).max(0) as f64 / 1000.0),
            _ => String::new(),
        };
        let fields = [
            op.id.0.to_string(),
            op.env.app.to_string(),
            op.env.env.to_string(),
            op.kind.to_string(),
            op.state.to_string(),
            op.initiator.clone(),
            op.commit.clone().unwrap_or_default(),
            op.release_before.map(|r| r.to_string()).unwrap_or_default(),
            op.release_after.map(|r| r.to_string()).unwrap_or_default(),
            iso_time(op.created_at),
            op.started_at.map(iso_time).unwrap_or_default(),
            op.finished_at.map(iso_time).unwrap_or_default(),
            duration,
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_field(&mut out, field);
        }
        out.push_str("\r\n");
    }
    out
}

/// RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled.
pub fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// Unix milliseconds as ISO 8601 UTC, to the second: `2026-11-01T09:30:00Z`.
pub fn iso_time(millis: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

/// A day (`2026-11-01`, UTC) or an RFC 3339 time, as unix milliseconds. A day given as
/// the end of a range means the end of that day, so `--until 2026-11-30` includes it.
pub fn parse_time(text: &str, end_of_day: bool) -> ApiResult<i64> {
    let text = text.trim();
    if let Ok(time) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok((time.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let day = Date::parse(text, format_description!("[year]-[month]-[day]")).map_err(|_| {
        ApiError::BadRequest(format!(
            "`{text}` is neither a day (2026-11-01) nor an RFC 3339 time (2026-11-01T09:30:00Z)"
        ))
    })?;
    let day = if end_of_day {
        day.next_day().unwrap_or(day)
    } else {
        day
    };
    Ok(PrimitiveDateTime::new(day, Time::MIDNIGHT)
        .assume_utc()
        .unix_timestamp()
        * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        let mut out = String::new();
        push_field(&mut out, "plain");
        out.push(',');
        push_field(&mut out, "a, \"b\"\nc");
        assert_eq!(out, "plain,\"a, \"\"b\"\"\nc\"");
    }

    #[test]
    fn days_and_times_are_read_in_utc() {
        assert_eq!(
            parse_time("2026-11-01", false).ok(),
            Some(1_793_491_200_000)
        );
        assert_eq!(
            parse_time("2026-11-01", true).ok(),
            Some(1_793_491_200_000 + 86_400_000)
        );
        assert_eq!(
            parse_time("2026-11-01T01:00:00+01:00", false).ok(),
            Some(1_793_491_200_000)
        );
        assert!(parse_time("yesterday", false).is_err());
        assert_eq!(iso_time(1_793_491_200_000), "2026-11-01T00:00:00Z");
    }
}
