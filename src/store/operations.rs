//! Apps, environments and operations: creating an operation, reading it back, the
//! queues the workers take from, and the changes of its state.

use sqlx::SqliteConnection;

use super::error::{Fault, FaultResult};
use super::rows::{to_json, OperationRow, OPERATION_COLUMNS};
use super::SqliteStore;
use crate::ids::{EnvKey, OperationId, ReleaseNumber};
use crate::pipeline::model::{NewOperation, Operation, OperationState};

/// Creates the app and environment rows if they are missing, inside the caller's
/// transaction, so that every write naming an environment can rely on it existing.
pub(super) async fn ensure_environment_in(
    conn: &mut SqliteConnection,
    env: &EnvKey,
    now: i64,
) -> FaultResult<()> {
    sqlx::query("INSERT INTO apps (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING")
        .bind(env.app.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO environments (app, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(env.app.as_str())
    .bind(env.env.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl SqliteStore {
    pub(super) async fn ensure_environment_row(&self, env: &EnvKey) -> FaultResult<()> {
        let mut tx = self.write().await?;
        ensure_environment_in(&mut tx, env, self.now()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn environment_keys(&self) -> FaultResult<Vec<EnvKey>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT app, name FROM environments ORDER BY app, name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(app, env)| EnvKey::new(app, env))
            .collect())
    }

    pub(super) async fn insert_operation(&self, new: &NewOperation) -> FaultResult<Operation> {
        self.insert_operation_in(new, OperationState::Queued, None)
            .await
    }

    /// An operation created already `superseded` (it never runs), finished now.
    pub(super) async fn insert_superseded(
        &self,
        new: &NewOperation,
        why: &str,
    ) -> FaultResult<Operation> {
        self.insert_operation_in(new, OperationState::Superseded, Some(why))
            .await
    }

    async fn insert_operation_in(
        &self,
        new: &NewOperation,
        state: OperationState,
        message: Option<&str>,
    ) -> FaultResult<Operation> {
        let source = new
            .source
            .as_ref()
            .map(|source| to_json(source, "source"))
            .transpose()?;
        let args = to_json(&new.args, "args")?;
        let now = self.now();
        let mut tx = self.write().await?;
        ensure_environment_in(&mut tx, &new.env, now).await?;
        let sql = format!(
            "INSERT INTO operations (app, env, kind, state, source, commit_sha, args, initiator, \
               message, created_at, finished_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, CASE WHEN ?11 THEN ?10 END) \
             RETURNING {OPERATION_COLUMNS}"
        );
        let row: OperationRow = sqlx::query_as(&sql)
            .bind(new.env.app.as_str())
            .bind(new.env.env.as_str())
            .bind(new.kind.to_string())
            .bind(state.to_string())
            .bind(source)
            .bind(new.commit.as_deref())
            .bind(args)
            .bind(new.initiator.as_str())
            .bind(message)
            .bind(now)
            .bind(state.is_final())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row.into_model()
    }

    pub(super) async fn operation_by_id(&self, id: OperationId) -> FaultResult<Option<Operation>> {
        let sql = format!("SELECT {OPERATION_COLUMNS} FROM operations WHERE id = ?");
        let row: Option<OperationRow> = sqlx::query_as(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(OperationRow::into_model).transpose()
    }

    pub(super) async fn operations_newest_first(
        &self,
        env: Option<&EnvKey>,
        limit: i64,
    ) -> FaultResult<Vec<Operation>> {
        let rows: Vec<OperationRow> = match env {
            Some(env) => {
                let sql = format!(
                    "SELECT {OPERATION_COLUMNS} FROM operations WHERE app = ? AND env = ? ORDER BY id DESC LIMIT ?"
                );
                sqlx::query_as(&sql)
                    .bind(env.app.as_str())
                    .bind(env.env.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql =
                    format!("SELECT {OPERATION_COLUMNS} FROM operations ORDER BY id DESC LIMIT ?");
                sqlx::query_as(&sql)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.into_iter().map(OperationRow::into_model).collect()
    }

    pub(super) async fn operations_in_state(
        &self,
        state: OperationState,
        env: Option<&EnvKey>,
    ) -> FaultResult<Vec<Operation>> {
        let rows: Vec<OperationRow> = match env {
            Some(env) => {
                let sql = format!(
                    "SELECT {OPERATION_COLUMNS} FROM operations WHERE state = ? AND app = ? AND env = ? ORDER BY id"
                );
                sqlx::query_as(&sql)
                    .bind(state.to_string())
                    .bind(env.app.as_str())
                    .bind(env.env.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {OPERATION_COLUMNS} FROM operations WHERE state = ? ORDER BY id"
                );
                sqlx::query_as(&sql)
                    .bind(state.to_string())
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.into_iter().map(OperationRow::into_model).collect()
    }

    pub(super) async fn update_operation_state(
        &self,
        id: OperationId,
        state: OperationState,
        message: Option<&str>,
    ) -> FaultResult<()> {
        let now = self.now();
        // `running` keeps the first start time (an operation resumed after a restart
        // started when it first ran); a final state stamps the end.
        let result = sqlx::query(
            "UPDATE operations SET state = ?1, \
               started_at = CASE WHEN ?2 THEN COALESCE(started_at, ?3) ELSE started_at END, \
               finished_at = CASE WHEN ?4 THEN ?3 ELSE finished_at END, \
               message = COALESCE(?5, message) \
             WHERE id = ?6",
        )
        .bind(state.to_string())
        .bind(state == OperationState::Running)
        .bind(now)
        .bind(state.is_final())
        .bind(message)
        .bind(id.0)
        .execute(&self.pool)
        .await?;
        expect_one(result.rows_affected(), id)
    }

    pub(super) async fn update_operation_releases(
        &self,
        id: OperationId,
        before: Option<ReleaseNumber>,
        after: Option<ReleaseNumber>,
    ) -> FaultResult<()> {
        let result =
            sqlx::query("UPDATE operations SET release_before = ?, release_after = ? WHERE id = ?")
                .bind(before.map(|n| n.0))
                .bind(after.map(|n| n.0))
                .bind(id.0)
                .execute(&self.pool)
                .await?;
        expect_one(result.rows_affected(), id)
    }

    pub(super) async fn update_operation_commit(
        &self,
        id: OperationId,
        commit: &str,
    ) -> FaultResult<()> {
        let result = sqlx::query("UPDATE operations SET commit_sha = ? WHERE id = ?")
            .bind(commit)
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        expect_one(result.rows_affected(), id)
    }
}

/// An update of one operation that changed nothing names an operation that does not exist.
pub(super) fn expect_one(rows_affected: u64, id: OperationId) -> FaultResult<()> {
    if rows_affected == 0 {
        return Err(Fault::Missing(format!("there is no operation {id}")));
    }
    Ok(())
}
