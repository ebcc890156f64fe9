//! `GET /metrics` in the Prometheus text format. Operation counts, durations and queue
//! depths are read from the database at each scrape (a few aggregate queries), so they
//! are right after a restart; router requests come from the router's counter.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::server::error::ApiResult;
use crate::server::AppState;
use crate::store::DURATION_BUCKETS;

/// The exposition text of every series.
pub async fn render(state: &AppState) -> ApiResult<String> {
    let mut out = String::new();
    // Writing to a String cannot fail; `let _` keeps the formatting readable.
    let _ = writeln!(
        out,
        "# HELP slipway_operations_total Operations recorded, by type and state."
    );
    let _ = writeln!(out, "# TYPE slipway_operations_total counter");
    for (kind, state_name, count) in state.sqlite.operation_counts().await? {
        let _ = writeln!(
            out,
            "slipway_operations_total{{kind=\"{}\",state=\"{}\"}} {count}",
            label(&kind),
            label(&state_name)
        );
    }
    let _ = writeln!(
        out,
        "# HELP slipway_operation_duration_seconds How long finished operations ran, by type."
    );
    let _ = writeln!(out, "# TYPE slipway_operation_duration_seconds histogram");
    for histogram in state.sqlite.duration_histograms().await? {
        let kind = label(&histogram.kind);
        for (le, count) in DURATION_BUCKETS.iter().zip(&histogram.buckets) {
            let _ = writeln!(
                out,
                "slipway_operation_duration_seconds_bucket{{kind=\"{kind}\",le=\"{le}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "slipway_operation_duration_seconds_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}",
            histogram.count
        );
        let _ = writeln!(
            out,
            "slipway_operation_duration_seconds_sum{{kind=\"{kind}\"}} {}",
            histogram.sum_seconds
        );
        let _ = writeln!(
            out,
            "slipway_operation_duration_seconds_count{{kind=\"{kind}\"}} {}",
            histogram.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP slipway_queue_depth Operations waiting for their environment's worker."
    );
    let _ = writeln!(out, "# TYPE slipway_queue_depth gauge");
    let queues = state.sqlite.queue_depths().await?;
    let mut depths: std::collections::BTreeMap<(String, String), u64> = state
        .store
        .environments()
        .await?
        .into_iter()
        .map(|e| ((e.app.to_string(), e.env.to_string()), 0))
        .collect();
    depths.extend(queues.into_iter().map(|(app, env, n)| ((app, env), n)));
    for ((app, env), depth) in depths {
        let _ = writeln!(
            out,
            "slipway_queue_depth{{app=\"{}\",env=\"{}\"}} {depth}",
            label(&app),
            label(&env)
        );
    }
    let _ = writeln!(out, "# HELP slipway_router_requests_total HTTP requests the router received since the server started.");
    let _ = writeln!(out, "# TYPE slipway_router_requests_total counter");
    let _ = writeln!(
        out,
        "slipway_router_requests_total {}",
        state.router.requests_total()
    );
    let _ = writeln!(
        out,
        "# HELP slipway_router_client_connections Client connections each router worker serves."
    );
    let _ = writeln!(out, "# TYPE slipway_router_client_connections gauge");
    for (worker, open) in state.router.client_connections().iter().enumerate() {
        let _ = writeln!(
            out,
            "slipway_router_client_connections{{worker=\"{worker}\"}} {open}"
        );
    }
    Ok(out)
}

/// A label value escaped as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics` (no token: it holds counts, never names of secrets or values).
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let text = render(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}
