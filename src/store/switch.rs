//! The point of no return of a rollout: the environment's current release and the
//! operation's `switch` step, written in one transaction. Recovery decides between
//! finishing and rolling back on that step alone, so the two must never disagree.

use super::error::{Fault, FaultResult};
use super::operations::{ensure_environment_in, expect_one};
use super::SqliteStore;
use crate::ids::{EnvKey, OperationId, ReleaseNumber};
use crate::pause::{self, PausePoint};
use crate::pipeline::model::{Step, StepStatus};

impl SqliteStore {
    pub(super) async fn commit_switch_tx(
        &self,
        id: OperationId,
        env: &EnvKey,
        release: ReleaseNumber,
        finished_at: i64,
    ) -> FaultResult<()> {
        // Test-only (unarmed, it returns at once): the router has switched, the database
        // does not know yet.
        pause::at(PausePoint::SwitchUncommitted).await;
        let step = Step::Switch.to_string();
        let mut tx = self.write().await?;
        ensure_environment_in(&mut tx, env, self.now()).await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT number FROM releases WHERE app = ? AND env = ? AND number = ?",
        )
        .bind(env.app.as_str())
        .bind(env.env.as_str())
        .bind(release.0)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(Fault::Missing(format!("{env} has no release {release}")));
        }
        sqlx::query("UPDATE environments SET current_release = ? WHERE app = ? AND name = ?")
            .bind(release.0)
            .bind(env.app.as_str())
            .bind(env.env.as_str())
            .execute(&mut *tx)
            .await?;
        // The step's row must exist (recorded as it started): a switch that was never
        // recorded as started is not one recovery could reason about.
        let ended = sqlx::query(
            "UPDATE operation_steps SET status = ?, finished_at = ?, message = NULL \
             WHERE operation_id = ? AND step = ?",
        )
        .bind(StepStatus::Succeeded.to_string())
        .bind(finished_at)
        .bind(id.0)
        .bind(&step)
        .execute(&mut *tx)
        .await?;
        if ended.rows_affected() == 0 {
            return Err(Fault::Missing(format!(
                "the switch of operation {id} was not recorded as started"
            )));
        }
        let updated = sqlx::query("UPDATE operations SET step = ? WHERE id = ?")
            .bind(&step)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        expect_one(updated.rows_affected(), id)?;
        tx.commit().await?;
        pause::at(PausePoint::SwitchCommitted).await;
        Ok(())
    }
}
