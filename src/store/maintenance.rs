//! Which environments an operator put in maintenance, so that a restarted server holds
//! their requests again.

use super::operations::ensure_environment_in;
use super::SqliteStore;
use crate::ids::EnvKey;
use crate::pipeline::traits::{EffectError, EffectResult};

impl SqliteStore {
    pub async fn set_maintenance(&self, env: &EnvKey, on: bool) -> EffectResult<()> {
        let failed = |e: sqlx::Error| {
            EffectError::Store(format!("cannot record the maintenance of {env}: {e}"))
        };
        // Like every write here, an IMMEDIATE transaction: concurrent writers queue, not fail.
        let mut tx = self.write().await.map_err(failed)?;
        ensure_environment_in(&mut tx, env, self.now())
            .await
            .map_err(|e| {
                EffectError::Store(format!("cannot record the maintenance of {env}: {e}"))
            })?;
        sqlx::query("UPDATE environments SET maintenance = ? WHERE app = ? AND name = ?")
            .bind(i64::from(on))
            .bind(env.app.as_str())
            .bind(env.env.as_str())
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)
    }

    /// The environments in maintenance.
    pub async fn environments_in_maintenance(&self) -> EffectResult<Vec<EnvKey>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT app, name FROM environments WHERE maintenance = 1 ORDER BY app, name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| {
            EffectError::Store(format!(
                "cannot read which environments are in maintenance: {e}"
            ))
        })?;
        Ok(rows
            .into_iter()
            .map(|(app, env)| EnvKey::new(app, env))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn maintenance_is_kept_per_environment() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let (staging, prod) = (EnvKey::new("shop", "staging"), EnvKey::new("shop", "prod"));
        store.set_maintenance(&prod, true).await.unwrap();
        store.set_maintenance(&staging, false).await.unwrap();
        drop(store);
        let store = SqliteStore::open(dir.path()).await.unwrap();
        assert_eq!(
            store.environments_in_maintenance().await.unwrap(),
            vec![prod.clone()]
        );
        store.set_maintenance(&prod, false).await.unwrap();
        assert!(store
            .environments_in_maintenance()
            .await
            .unwrap()
            .is_empty());
    }
}
