//! Releases, numbered v1, v2, ... per environment, and which one each environment
//! now serves.

use super::error::{Fault, FaultResult};
use super::operations::ensure_environment_in;
use super::rows::{to_json, ReleaseRow, RELEASE_COLUMNS};
use super::SqliteStore;
use crate::ids::{EnvKey, ReleaseNumber};
use crate::pipeline::model::Release;
use crate::pipeline::traits::NewRelease;

impl SqliteStore {
    pub(super) async fn insert_release(&self, new: &NewRelease) -> FaultResult<Release> {
        let artifact = to_json(&new.artifact, "artifact")?;
        let variables = to_json(&new.variables, "variables")?;
        let scale = to_json(&new.scale, "scale")?;
        let now = self.now();
        let mut tx = self.write().await?;
        ensure_environment_in(&mut tx, &new.env, now).await?;
        // The number is computed by the insert itself, inside an immediate transaction:
        // two releases of one environment can never get the same number.
        let sql = format!(
            "INSERT INTO releases ({RELEASE_COLUMNS}) \
             SELECT ?1, ?2, COALESCE(MAX(number), 0) + 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9 \
             FROM releases WHERE app = ?1 AND env = ?2 \
             RETURNING {RELEASE_COLUMNS}"
        );
        let row: ReleaseRow = sqlx::query_as(&sql)
            .bind(new.env.app.as_str())
            .bind(new.env.env.as_str())
            .bind(new.commit.as_deref())
            .bind(artifact)
            .bind(new.config_hash.as_str())
            .bind(variables)
            .bind(scale)
            .bind(new.operation.0)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row.into_model()
    }

    pub(super) async fn release_by_number(
        &self,
        env: &EnvKey,
        number: ReleaseNumber,
    ) -> FaultResult<Option<Release>> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE app = ? AND env = ? AND number = ?"
        );
        let row: Option<ReleaseRow> = sqlx::query_as(&sql)
            .bind(env.app.as_str())
            .bind(env.env.as_str())
            .bind(number.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(ReleaseRow::into_model).transpose()
    }

    pub(super) async fn releases_newest_first(&self, env: &EnvKey) -> FaultResult<Vec<Release>> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE app = ? AND env = ? ORDER BY number DESC"
        );
        let rows: Vec<ReleaseRow> = sqlx::query_as(&sql)
            .bind(env.app.as_str())
            .bind(env.env.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(ReleaseRow::into_model).collect()
    }

    pub(super) async fn serving_release(&self, env: &EnvKey) -> FaultResult<Option<Release>> {
        let columns: Vec<String> = RELEASE_COLUMNS
            .split(", ")
            .map(|column| format!("r.{column}"))
            .collect();
        let sql = format!(
            "SELECT {} FROM environments e JOIN releases r \
               ON r.app = e.app AND r.env = e.name AND r.number = e.current_release \
             WHERE e.app = ? AND e.name = ?",
            columns.join(", ")
        );
        let row: Option<ReleaseRow> = sqlx::query_as(&sql)
            .bind(env.app.as_str())
            .bind(env.env.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(ReleaseRow::into_model).transpose()
    }

    pub(super) async fn update_current_release(
        &self,
        env: &EnvKey,
        number: Option<ReleaseNumber>,
    ) -> FaultResult<()> {
        let mut tx = self.write().await?;
        ensure_environment_in(&mut tx, env, self.now()).await?;
        if let Some(number) = number {
            let exists: Option<i64> = sqlx::query_scalar(
                "SELECT number FROM releases WHERE app = ? AND env = ? AND number = ?",
            )
            .bind(env.app.as_str())
            .bind(env.env.as_str())
            .bind(number.0)
            .fetch_optional(&mut *tx)
            .await?;
            if exists.is_none() {
                return Err(Fault::Missing(format!("{env} has no release {number}")));
            }
        }
        sqlx::query("UPDATE environments SET current_release = ? WHERE app = ? AND name = ?")
            .bind(number.map(|n| n.0))
            .bind(env.app.as_str())
            .bind(env.env.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
