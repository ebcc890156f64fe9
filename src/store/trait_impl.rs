//! `impl Store for SqliteStore`: each method calls the query that does the work and
//! says, when it fails, what the pipeline was trying to do.

use async_trait::async_trait;

use super::SqliteStore;
use crate::ids::{EnvKey, OperationId, ReleaseNumber};
use crate::pipeline::model::*;
use crate::pipeline::traits::{EffectResult, NewRelease, Store};

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_environment(&self, env: &EnvKey) -> EffectResult<()> {
        self.ensure_environment_row(env)
            .await
            .map_err(|fault| fault.context(format_args!("cannot create environment {env}")))
    }

    async fn environments(&self) -> EffectResult<Vec<EnvKey>> {
        self.environment_keys()
            .await
            .map_err(|fault| fault.context(format_args!("cannot list environments")))
    }

    async fn create_operation(&self, new: NewOperation) -> EffectResult<Operation> {
        self.insert_operation(&new).await.map_err(|fault| {
            fault.context(format_args!(
                "cannot create a {} operation on {}",
                new.kind, new.env
            ))
        })
    }

    async fn create_superseded(&self, new: NewOperation, why: &str) -> EffectResult<Operation> {
        self.insert_superseded(&new, why).await.map_err(|fault| {
            fault.context(format_args!(
                "cannot record a superseded {} operation on {}",
                new.kind, new.env
            ))
        })
    }

    async fn operation(&self, id: OperationId) -> EffectResult<Option<Operation>> {
        self.operation_by_id(id)
            .await
            .map_err(|fault| fault.context(format_args!("cannot read operation {id}")))
    }

    async fn operations(&self, env: Option<&EnvKey>, limit: i64) -> EffectResult<Vec<Operation>> {
        self.operations_newest_first(env, limit)
            .await
            .map_err(|fault| match env {
                Some(env) => fault.context(format_args!("cannot list the operations of {env}")),
                None => fault.context(format_args!("cannot list operations")),
            })
    }

    async fn queued_operations(&self, env: &EnvKey) -> EffectResult<Vec<Operation>> {
        self.operations_in_state(OperationState::Queued, Some(env))
            .await
            .map_err(|fault| {
                fault.context(format_args!("cannot list the queued operations of {env}"))
            })
    }

    async fn running_operations(&self) -> EffectResult<Vec<Operation>> {
        self.operations_in_state(OperationState::Running, None)
            .await
            .map_err(|fault| fault.context(format_args!("cannot list running operations")))
    }

    async fn set_operation_state(
        &self,
        id: OperationId,
        state: OperationState,
        message: Option<&str>,
    ) -> EffectResult<()> {
        self.update_operation_state(id, state, message)
            .await
            .map_err(|fault| fault.context(format_args!("cannot set operation {id} to {state}")))
    }

    async fn set_operation_releases(
        &self,
        id: OperationId,
        before: Option<ReleaseNumber>,
        after: Option<ReleaseNumber>,
    ) -> EffectResult<()> {
        self.update_operation_releases(id, before, after)
            .await
            .map_err(|fault| {
                fault.context(format_args!("cannot record the releases of operation {id}"))
            })
    }

    async fn set_operation_commit(&self, id: OperationId, commit: &str) -> EffectResult<()> {
        self.update_operation_commit(id, commit)
            .await
            .map_err(|fault| {
                fault.context(format_args!("cannot record the commit of operation {id}"))
            })
    }

    async fn record_step(&self, id: OperationId, record: &StepRecord) -> EffectResult<()> {
        self.upsert_step(id, record).await.map_err(|fault| {
            fault.context(format_args!(
                "cannot record step {} ({}) of operation {id}",
                record.step, record.status
            ))
        })
    }

    async fn steps(&self, id: OperationId) -> EffectResult<Vec<StepRecord>> {
        self.step_records(id)
            .await
            .map_err(|fault| fault.context(format_args!("cannot read the steps of operation {id}")))
    }

    async fn append_log(&self, id: OperationId, at: i64, lines: &[String]) -> EffectResult<()> {
        self.insert_log_lines(id, at, lines).await.map_err(|fault| {
            fault.context(format_args!("cannot append to the log of operation {id}"))
        })
    }

    async fn log_lines(
        &self,
        id: OperationId,
        after: i64,
        limit: i64,
    ) -> EffectResult<Vec<LogLine>> {
        self.log_lines_after(id, after, limit)
            .await
            .map_err(|fault| fault.context(format_args!("cannot read the log of operation {id}")))
    }

    async fn create_release(&self, release: NewRelease) -> EffectResult<Release> {
        self.insert_release(&release).await.map_err(|fault| {
            fault.context(format_args!("cannot create a release of {}", release.env))
        })
    }

    async fn release(&self, env: &EnvKey, number: ReleaseNumber) -> EffectResult<Option<Release>> {
        self.release_by_number(env, number)
            .await
            .map_err(|fault| fault.context(format_args!("cannot read release {number} of {env}")))
    }

    async fn releases(&self, env: &EnvKey) -> EffectResult<Vec<Release>> {
        self.releases_newest_first(env)
            .await
            .map_err(|fault| fault.context(format_args!("cannot list the releases of {env}")))
    }

    async fn current_release(&self, env: &EnvKey) -> EffectResult<Option<Release>> {
        self.serving_release(env).await.map_err(|fault| {
            fault.context(format_args!("cannot read the current release of {env}"))
        })
    }

    async fn set_current_release(
        &self,
        env: &EnvKey,
        number: Option<ReleaseNumber>,
    ) -> EffectResult<()> {
        self.update_current_release(env, number)
            .await
            .map_err(|fault| match number {
                Some(number) => fault.context(format_args!(
                    "cannot make {number} the current release of {env}"
                )),
                None => fault.context(format_args!("cannot clear the current release of {env}")),
            })
    }

    async fn commit_switch(
        &self,
        id: OperationId,
        env: &EnvKey,
        release: ReleaseNumber,
        finished_at: i64,
    ) -> EffectResult<()> {
        self.commit_switch_tx(id, env, release, finished_at)
            .await
            .map_err(|fault| {
                fault.context(format_args!(
                    "cannot commit the switch of {env} to {release} (operation {id})"
                ))
            })
    }

    async fn save_instance(&self, instance: &InstanceRecord) -> EffectResult<()> {
        self.upsert_instance(instance)
            .await
            .map_err(|fault| fault.context(format_args!("cannot record instance {}", instance.id)))
    }

    async fn remove_instance(&self, id: &str) -> EffectResult<()> {
        self.delete_instance(id)
            .await
            .map_err(|fault| fault.context(format_args!("cannot forget instance {id}")))
    }

    async fn instances(&self, env: Option<&EnvKey>) -> EffectResult<Vec<InstanceRecord>> {
        self.instance_records(env).await.map_err(|fault| match env {
            Some(env) => fault.context(format_args!("cannot list the instances of {env}")),
            None => fault.context(format_args!("cannot list instances")),
        })
    }

    async fn variables(&self, env: &EnvKey) -> EffectResult<Vec<Variable>> {
        self.variable_rows(env)
            .await
            .map_err(|fault| fault.context(format_args!("cannot read the variables of {env}")))
    }

    // Keys are names, not secrets, but the messages below name only the environment:
    // the count is enough to act on, and a key can hint at what a value is.
    async fn set_variables(&self, env: &EnvKey, vars: &[Variable]) -> EffectResult<()> {
        self.upsert_variables(env, vars).await.map_err(|fault| {
            fault.context(format_args!(
                "cannot set {} variable(s) of {env}",
                vars.len()
            ))
        })
    }

    async fn unset_variables(&self, env: &EnvKey, keys: &[String]) -> EffectResult<()> {
        self.delete_variables(env, keys).await.map_err(|fault| {
            fault.context(format_args!(
                "cannot unset {} variable(s) of {env}",
                keys.len()
            ))
        })
    }
}
