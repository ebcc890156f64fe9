//! Reads for the activity report, `/metrics` and the weekly reports: operations paged by
//! id (keyset pagination, so a report of any size is read a page at a time), and a few
//! aggregate queries that SQLite answers without sending every row.
//!
//! Operations name their app and environment as text, so operations of apps deleted
//! since are read like any others.

use super::rows::{OperationRow, OPERATION_COLUMNS};
use super::SqliteStore;
use crate::ids::EnvKey;
use crate::pipeline::model::Operation;
use crate::pipeline::traits::{EffectError, EffectResult};

/// Which operations an activity report covers. Times are unix milliseconds; `until` is
/// exclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    pub app: Option<String>,
    pub env: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// The upper bounds (seconds) of the operation duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The duration histogram of one kind of operation (finished operations only).
#[derive(Clone, Debug, PartialEq)]
pub struct DurationHistogram {
    pub kind: String,
    /// Cumulative counts, one per `DURATION_BUCKETS` entry.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

fn failed(what: &'static str) -> impl Fn(sqlx::Error) -> EffectError {
    move |error| EffectError::Store(format!("{what}: {error}"))
}

impl SqliteStore {
    /// Up to `limit` operations with an id above `after_id`, in id order.
    pub async fn activity_page(
        &self,
        filter: &ActivityFilter,
        after_id: i64,
        limit: i64,
    ) -> EffectResult<Vec<Operation>> {
        // `?n IS NULL OR ...` keeps one statement for every combination of filters.
        let sql = format!(
            "SELECT {OPERATION_COLUMNS} FROM operations \
             WHERE id > ?1 AND (?2 IS NULL OR app = ?2) AND (?3 IS NULL OR env = ?3) \
               AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR created_at < ?5) \
             ORDER BY id LIMIT ?6"
        );
        let rows: Vec<OperationRow> = sqlx::query_as(&sql)
            .bind(after_id)
            .bind(filter.app.as_deref())
            .bind(filter.env.as_deref())
            .bind(filter.since)
            .bind(filter.until)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("cannot read the activity"))?;
        rows.into_iter()
            .map(OperationRow::into_model)
            .collect::<Result<_, _>>()
            .map_err(|fault| fault.context(format_args!("cannot read the activity")))
    }

    /// Up to `limit` operations with an id below `before_id`, newest first (optionally of
    /// one app): the pages a scoped token's operation list is filtered from.
    pub async fn operations_before(
        &self,
        before_id: i64,
        app: Option<&str>,
        limit: i64,
    ) -> EffectResult<Vec<Operation>> {
        let sql = format!(
            "SELECT {OPERATION_COLUMNS} FROM operations WHERE id < ?1 AND (?2 IS NULL OR app = ?2) \
             ORDER BY id DESC LIMIT ?3"
        );
        let rows: Vec<OperationRow> = sqlx::query_as(&sql)
            .bind(before_id)
            .bind(app)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("cannot list operations"))?;
        rows.into_iter()
            .map(OperationRow::into_model)
            .collect::<Result<_, _>>()
            .map_err(|fault| fault.context(format_args!("cannot list operations")))
    }

    /// The environments that had an operation in `[since, until)`, plus every environment
    /// that exists now.
    pub async fn environments_with_activity(
        &self,
        since: i64,
        until: i64,
    ) -> EffectResult<Vec<EnvKey>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT app, env FROM operations WHERE created_at >= ? AND created_at < ? \
             UNION SELECT app, name FROM environments ORDER BY 1, 2",
        )
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("cannot list environments for the weekly reports"))?;
        Ok(rows
            .into_iter()
            .map(|(app, env)| EnvKey::new(app, env))
            .collect())
    }

    /// `(kind, state, count)` of every operation ever recorded.
    pub async fn operation_counts(&self) -> EffectResult<Vec<(String, String, u64)>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT kind, state, COUNT(*) FROM operations GROUP BY kind, state ORDER BY kind, state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("cannot count operations"))?;
        Ok(rows
            .into_iter()
            .map(|(k, s, n)| (k, s, n.max(0) as u64))
            .collect())
    }

    /// `(app, env, queued operations)` of every environment with a queue.
    pub async fn queue_depths(&self) -> EffectResult<Vec<(String, String, u64)>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT app, env, COUNT(*) FROM operations WHERE state = 'queued' GROUP BY app, env ORDER BY app, env",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("cannot read the queues"))?;
        Ok(rows
            .into_iter()
            .map(|(a, e, n)| (a, e, n.max(0) as u64))
            .collect())
    }

    /// A histogram of the durations of finished operations, per kind, aggregated by
    /// SQLite in one pass.
    pub async fn duration_histograms(&self) -> EffectResult<Vec<DurationHistogram>> {
        let buckets: Vec<String> = DURATION_BUCKETS
            .iter()
            .map(|le| {
                format!(
                    "SUM(CASE WHEN d <= {} THEN 1 ELSE 0 END)",
                    (le * 1000.0) as i64
                )
            })
            .collect();
        let sql = format!(
            "SELECT kind, COUNT(*), COALESCE(SUM(d), 0), {} FROM \
               (SELECT kind, finished_at - started_at AS d FROM operations \
                WHERE started_at IS NOT NULL AND finished_at IS NOT NULL) \
             GROUP BY kind ORDER BY kind",
            buckets.join(", ")
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("cannot read operation durations"))?;
        use sqlx::Row;
        let mut histograms = Vec::new();
        for row in rows {
            let read = |i: usize| -> Result<i64, sqlx::Error> {
                row.try_get::<Option<i64>, _>(i).map(|v| v.unwrap_or(0))
            };
            let kind: String = row
                .try_get(0)
                .map_err(failed("cannot read operation durations"))?;
            let count = read(1).map_err(failed("cannot read operation durations"))?;
            let sum_millis = read(2).map_err(failed("cannot read operation durations"))?;
            let mut cumulative = Vec::with_capacity(DURATION_BUCKETS.len());
            for i in 0..DURATION_BUCKETS.len() {
                cumulative.push(
                    read(3 + i)
                        .map_err(failed("cannot read operation durations"))?
                        .max(0) as u64,
                );
            }
            histograms.push(DurationHistogram {
                kind,
                buckets: cumulative,
                count: count.max(0) as u64,
                sum_seconds: sum_millis as f64 / 1000.0,
            });
        }
        Ok(histograms)
    }
}
