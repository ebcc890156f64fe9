//! What an operation did: its steps (one row per step, updated as it ends) and its
//! log lines (numbered 1, 2, 3... per operation, in the order they were appended).

use sqlx::{QueryBuilder, Sqlite};

use super::error::FaultResult;
use super::operations::expect_one;
use super::rows::StepRow;
use super::SqliteStore;
use crate::ids::OperationId;
use crate::pipeline::model::{LogLine, StepRecord};

/// Rows of one log insert: 4 parameters each, far below SQLite's limit of 32,766.
const LOG_ROWS_PER_INSERT: usize = 250;

impl SqliteStore {
    pub(super) async fn upsert_step(
        &self,
        id: OperationId,
        record: &StepRecord,
    ) -> FaultResult<()> {
        let step = record.step.to_string();
        let mut tx = self.write().await?;
        let updated = sqlx::query("UPDATE operations SET step = ? WHERE id = ?")
            .bind(&step)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        expect_one(updated.rows_affected(), id)?;
        // The row keeps its rowid on update, so `steps` lists steps in the order they
        // first started even when a later record of an earlier step arrives.
        sqlx::query(
            "INSERT INTO operation_steps (operation_id, step, status, started_at, finished_at, message) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (operation_id, step) DO UPDATE SET \
               status = excluded.status, started_at = excluded.started_at, \
               finished_at = excluded.finished_at, message = excluded.message",
        )
        .bind(id.0)
        .bind(&step)
        .bind(record.status.to_string())
        .bind(record.started_at)
        .bind(record.finished_at)
        .bind(record.message.as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn step_records(&self, id: OperationId) -> FaultResult<Vec<StepRecord>> {
        let rows: Vec<StepRow> = sqlx::query_as(
            "SELECT step, status, started_at, finished_at, message FROM operation_steps \
             WHERE operation_id = ? ORDER BY rowid",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|row| row.into_model(id)).collect()
    }

    pub(super) async fn insert_log_lines(
        &self,
        id: OperationId,
        at: i64,
        lines: &[String],
    ) -> FaultResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        // The next seq is read and used in one immediate transaction: no other appender
        // can take the write lock in between, so concurrent appends never collide.
        let mut tx = self.write().await?;
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) FROM operation_logs WHERE operation_id = ?",
        )
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await?;
        // Many rows per statement: a hook that floods its output writes hundreds of
        // thousands of lines, and one statement per line would cost a round trip each.
        let mut seq = last;
        for chunk in lines.chunks(LOG_ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO operation_logs (operation_id, seq, at, text) ",
            );
            insert.push_values(chunk, |mut row, text| {
                seq += 1;
                row.push_bind(id.0)
                    .push_bind(seq)
                    .push_bind(at)
                    .push_bind(text.as_str());
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn log_lines_after(
        &self,
        id: OperationId,
        after: i64,
        limit: i64,
    ) -> FaultResult<Vec<LogLine>> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, at, text FROM operation_logs WHERE operation_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id.0)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, at, text)| LogLine { seq, at, text })
            .collect())
    }
}
