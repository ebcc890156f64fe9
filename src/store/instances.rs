//! The instances now running (so a restarted server can adopt or stop them) and each
//! environment's configuration variables.

use super::error::FaultResult;
use super::operations::ensure_environment_in;
use super::rows::{InstanceRow, INSTANCE_COLUMNS};
use super::SqliteStore;
use crate::ids::EnvKey;
use crate::pipeline::model::{InstanceRecord, Variable};

impl SqliteStore {
    pub(super) async fn upsert_instance(&self, instance: &InstanceRecord) -> FaultResult<()> {
        let mut tx = self.write().await?;
        ensure_environment_in(&mut tx, &instance.env, self.now()).await?;
        let sql = format!(
            "INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET \
               app = excluded.app, env = excluded.env, service = excluded.service, \
               release_number = excluded.release_number, instance_index = excluded.instance_index, \
               handle = excluded.handle, address = excluded.address, started_at = excluded.started_at"
        );
        sqlx::query(&sql)
            .bind(instance.id.as_str())
            .bind(instance.env.app.as_str())
            .bind(instance.env.env.as_str())
            .bind(instance.service.as_str())
            .bind(instance.release.0)
            .bind(i64::from(instance.index))
            .bind(instance.handle.as_str())
            .bind(instance.address.as_deref())
            .bind(instance.started_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removing an instance that is not recorded is not an error: a stop that is
    /// retried after a restart removes it twice.
    pub(super) async fn delete_instance(&self, id: &str) -> FaultResult<()> {
        sqlx::query("DELETE FROM instances WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn instance_records(
        &self,
        env: Option<&EnvKey>,
    ) -> FaultResult<Vec<InstanceRecord>> {
        const ORDER: &str = "ORDER BY app, env, service, release_number, instance_index, id";
        let rows: Vec<InstanceRow> = match env {
            Some(env) => {
                let sql = format!(
                    "SELECT {INSTANCE_COLUMNS} FROM instances WHERE app = ? AND env = ? {ORDER}"
                );
                sqlx::query_as(&sql)
                    .bind(env.app.as_str())
                    .bind(env.env.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances {ORDER}");
                sqlx::query_as(&sql).fetch_all(&self.pool).await?
            }
        };
        rows.into_iter().map(InstanceRow::into_model).collect()
    }

    /// Sorted by key.
    pub(super) async fn variable_rows(&self, env: &EnvKey) -> FaultResult<Vec<Variable>> {
        let rows: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT key, value, build FROM variables WHERE app = ? AND env = ? ORDER BY key",
        )
        .bind(env.app.as_str())
        .bind(env.env.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key, value, build)| Variable { key, value, build })
            .collect())
    }

    /// Sets every variable in one transaction: a `config set A=1 B=2` is all or nothing.
    pub(super) async fn upsert_variables(
        &self,
        env: &EnvKey,
        vars: &[Variable],
    ) -> FaultResult<()> {
        let mut tx = self.write().await?;
        ensure_environment_in(&mut tx, env, self.now()).await?;
        for var in vars {
            sqlx::query(
                "INSERT INTO variables (app, env, key, value, build) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (app, env, key) DO UPDATE SET value = excluded.value, build = excluded.build",
            )
            .bind(env.app.as_str())
            .bind(env.env.as_str())
            .bind(var.key.as_str())
            .bind(var.value.as_str())
            .bind(var.build)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Keys that are not set are ignored, like `unset` in a shell.
    pub(super) async fn delete_variables(&self, env: &EnvKey, keys: &[String]) -> FaultResult<()> {
        let mut tx = self.write().await?;
        for key in keys {
            sqlx::query("DELETE FROM variables WHERE app = ? AND env = ? AND key = ?")
                .bind(env.app.as_str())
                .bind(env.env.as_str())
                .bind(key.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
