//! What a server does when it starts after being stopped or killed: every operation left
//! `running` is finished or rolled back as its recorded steps allow, instances that died
//! meanwhile are forgotten, and routing is rebuilt from the database, so running apps
//! keep serving without a redeploy.

use crate::pipeline::log::Masker;
use crate::pipeline::model::{OperationState, Step, StepStatus};
use crate::pipeline::plan;
use crate::pipeline::rollout::backends;
use crate::pipeline::traits::EffectResult;
use crate::pipeline::worker::Pipeline;

impl Pipeline {
    /// Resolves interrupted operations and restores routing. Call once at start, before
    /// the router takes traffic and before `start_queued`.
    pub async fn recover(&self) -> EffectResult<()> {
        let store = &self.fx.store;
        for op in store.running_operations().await? {
            let steps = store.steps(op.id).await?;
            let switched = steps
                .iter()
                .any(|s| s.step == Step::Switch && s.status == StepStatus::Succeeded);
            let log = self.log(&op, Masker::default());
            let current = store.current_release(&op.env).await?;
            let (state, why) = if switched {
                // The new release took traffic and is recorded as serving: keep it.
                (OperationState::Succeeded, "the server stopped after the switch; the new release serves, and the steps after the switch were not run".to_owned())
            } else {
                // Nothing was switched: whatever this operation started goes away.
                let suffix = format!("-op{}", op.id);
                for instance in store.instances(Some(&op.env)).await? {
                    if instance.id.ends_with(&suffix) {
                        let _ = self
                            .fx
                            .runtime
                            .stop(&instance, std::time::Duration::from_secs(10))
                            .await;
                        store.remove_instance(&instance.id).await?;
                    }
                }
                let serving = current
                    .as_ref()
                    .map_or("no release".to_owned(), |r| r.number.to_string());
                (
                    OperationState::RolledBack,
                    format!(
                        "the server stopped before the switch; rolled back: {serving} is serving"
                    ),
                )
            };
            log.line(format!("==> {state}: {why}")).await;
            store.set_operation_state(op.id, state, Some(&why)).await?;
            self.fx.reporter.operation_changed(op.id).await;
        }
        // A hook that was running when the server was killed, or an instance started but
        // not yet recorded, must not go on unseen.
        let known = store.instances(None).await?;
        for reaped in self.fx.runtime.reap_unknown(&known).await {
            tracing::warn!(%reaped, "stopped a process left by the previous server");
        }
        self.restore_routes().await
    }

    /// Points the router at the running instances of each environment's serving release,
    /// and forgets instances that are no longer running.
    pub async fn restore_routes(&self) -> EffectResult<()> {
        let store = &self.fx.store;
        for env in store.environments().await? {
            let mut alive = Vec::new();
            for instance in store.instances(Some(&env)).await? {
                if self.fx.runtime.is_running(&instance).await {
                    alive.push(instance);
                } else {
                    tracing::warn!(instance = %instance.id, "an instance died while the server was stopped");
                    store.remove_instance(&instance.id).await?;
                }
            }
            let Some(release) = store.current_release(&env).await? else {
                continue;
            };
            let Ok(config) = self
                .fx
                .sources
                .config_of_artifact(&release.artifact, &env.app)
                .await
            else {
                tracing::error!(%env, "the configuration of the serving release cannot be read; not routed");
                continue;
            };
            let routed = plan::routed_service(&config);
            let serving = alive
                .iter()
                .filter(|i| i.release == release.number && Some(&i.service) == routed);
            self.fx.traffic.switch(&env, backends(serving)).await;
        }
        Ok(())
    }
}
