//! An in-memory `Store`, so pipeline tests can run with paused time and no IO.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ids::{EnvKey, OperationId, ReleaseNumber};
use crate::pipeline::model::*;
use crate::pipeline::traits::{EffectError, EffectResult, NewRelease, Store};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    envs: Vec<EnvKey>,
    ops: BTreeMap<i64, Operation>,
    steps: BTreeMap<i64, Vec<StepRecord>>,
    logs: BTreeMap<i64, Vec<LogLine>>,
    releases: Vec<Release>,
    current: BTreeMap<EnvKey, ReleaseNumber>,
    instances: BTreeMap<String, InstanceRecord>,
    variables: BTreeMap<EnvKey, BTreeMap<String, Variable>>,
    clock: i64,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap();
        state.clock += 1;
        f(&mut state)
    }

    /// Every log line of an operation, for assertions.
    pub fn log_text(&self, id: OperationId) -> Vec<String> {
        self.with(|s| {
            s.logs
                .get(&id.0)
                .map(|l| l.iter().map(|l| l.text.clone()).collect())
                .unwrap_or_default()
        })
    }
}

fn missing(what: &str) -> EffectError {
    EffectError::Store(format!("no {what}"))
}

#[async_trait]
impl Store for MemoryStore {
    async fn ensure_environment(&self, env: &EnvKey) -> EffectResult<()> {
        self.with(|s| {
            if !s.envs.contains(env) {
                s.envs.push(env.clone());
            }
        });
        Ok(())
    }
    async fn environments(&self) -> EffectResult<Vec<EnvKey>> {
        Ok(self.with(|s| s.envs.clone()))
    }
    async fn create_operation(&self, new: NewOperation) -> EffectResult<Operation> {
        self.ensure_environment(&new.env).await?;
        Ok(self.with(|s| {
            let id = s.ops.len() as i64 + 1;
            let op = Operation {
                id: OperationId(id),
                env: new.env,
                kind: new.kind,
                state: OperationState::Queued,
                step: None,
                source: new.source,
                commit: new.commit,
                args: new.args,
                release_before: None,
                release_after: None,
                initiator: new.initiator,
                message: None,
                created_at: s.clock,
                started_at: None,
                finished_at: None,
            };
            s.ops.insert(id, op.clone());
            op
        }))
    }
    async fn create_superseded(&self, new: NewOperation, why: &str) -> EffectResult<Operation> {
        let op = self.create_operation(new).await?;
        Ok(self.with(|s| {
            let op = s.ops.get_mut(&op.id.0).expect("just created");
            op.state = OperationState::Superseded;
            op.message = Some(why.to_owned());
            op.finished_at = Some(s.clock);
            op.clone()
        }))
    }
    async fn operation(&self, id: OperationId) -> EffectResult<Option<Operation>> {
        Ok(self.with(|s| s.ops.get(&id.0).cloned()))
    }
    async fn operations(&self, env: Option<&EnvKey>, limit: i64) -> EffectResult<Vec<Operation>> {
        Ok(self.with(|s| {
            s.ops
                .values()
                .rev()
                .filter(|op| env.is_none_or(|e| &op.env == e))
                .take(limit as usize)
                .cloned()
                .collect()
        }))
    }
    async fn queued_operations(&self, env: &EnvKey) -> EffectResult<Vec<Operation>> {
        Ok(self.with(|s| {
            s.ops
                .values()
                .filter(|op| &op.env == env && op.state == OperationState::Queued)
                .cloned()
                .collect()
        }))
    }
    async fn running_operations(&self) -> EffectResult<Vec<Operation>> {
        Ok(self.with(|s| {
            s.ops
                .values()
                .filter(|op| op.state == OperationState::Running)
                .cloned()
                .collect()
        }))
    }
    async fn set_operation_state(
        &self,
        id: OperationId,
        state: OperationState,
        message: Option<&str>,
    ) -> EffectResult<()> {
        self.with(|s| {
            let now = s.clock;
            let op = s.ops.get_mut(&id.0).ok_or_else(|| missing("operation"))?;
            op.state = state;
            if state == OperationState::Running {
                op.started_at.get_or_insert(now);
            }
            if state.is_final() {
                op.finished_at = Some(now);
            }
            if let Some(message) = message {
                op.message = Some(message.to_owned());
            }
            Ok(())
        })
    }
    async fn set_operation_releases(
        &self,
        id: OperationId,
        before: Option<ReleaseNumber>,
        after: Option<ReleaseNumber>,
    ) -> EffectResult<()> {
        self.with(|s| {
            let op = s.ops.get_mut(&id.0).ok_or_else(|| missing("operation"))?;
            op.release_before = before;
            op.release_after = after;
            Ok(())
        })
    }
    async fn set_operation_commit(&self, id: OperationId, commit: &str) -> EffectResult<()> {
        self.with(|s| {
            s.ops
                .get_mut(&id.0)
                .ok_or_else(|| missing("operation"))?
                .commit = Some(commit.to_owned());
            Ok(())
        })
    }
    async fn record_step(&self, id: OperationId, record: &StepRecord) -> EffectResult<()> {
        self.with(|s| {
            let steps = s.steps.entry(id.0).or_default();
            match steps.iter_mut().find(|r| r.step == record.step) {
                Some(existing) => *existing = record.clone(),
                None => steps.push(record.clone()),
            }
            if let Some(op) = s.ops.get_mut(&id.0) {
                op.step = Some(record.step);
            }
        });
        Ok(())
    }
    async fn steps(&self, id: OperationId) -> EffectResult<Vec<StepRecord>> {
        Ok(self.with(|s| s.steps.get(&id.0).cloned().unwrap_or_default()))
    }
    async fn append_log(&self, id: OperationId, at: i64, lines: &[String]) -> EffectResult<()> {
        self.with(|s| {
            let log = s.logs.entry(id.0).or_default();
            for text in lines {
                let seq = log.len() as i64 + 1;
                log.push(LogLine {
                    seq,
                    at,
                    text: text.clone(),
                });
            }
        });
        Ok(())
    }
    async fn log_lines(
        &self,
        id: OperationId,
        after: i64,
        limit: i64,
    ) -> EffectResult<Vec<LogLine>> {
        Ok(self.with(|s| {
            let log = s.logs.get(&id.0).cloned().unwrap_or_default();
            log.into_iter()
                .filter(|l| l.seq > after)
                .take(limit as usize)
                .collect()
        }))
    }
    async fn create_release(&self, new: NewRelease) -> EffectResult<Release> {
        Ok(self.with(|s| {
            let number = s
                .releases
                .iter()
                .filter(|r| r.env == new.env)
                .map(|r| r.number.0)
                .max()
                .unwrap_or(0)
                + 1;
            let release = Release {
                env: new.env,
                number: ReleaseNumber(number),
                commit: new.commit,
                artifact: new.artifact,
                config_hash: new.config_hash,
                variables: new.variables,
                scale: new.scale,
                operation: new.operation,
                created_at: s.clock,
            };
            s.releases.push(release.clone());
            release
        }))
    }
    async fn release(&self, env: &EnvKey, number: ReleaseNumber) -> EffectResult<Option<Release>> {
        Ok(self.with(|s| {
            s.releases
                .iter()
                .find(|r| &r.env == env && r.number == number)
                .cloned()
        }))
    }
    async fn releases(&self, env: &EnvKey) -> EffectResult<Vec<Release>> {
        Ok(self.with(|s| {
            s.releases
                .iter()
                .rev()
                .filter(|r| &r.env == env)
                .cloned()
                .collect()
        }))
    }
    async fn current_release(&self, env: &EnvKey) -> EffectResult<Option<Release>> {
        Ok(self.with(|s| {
            let number = s.current.get(env)?;
            s.releases
                .iter()
                .find(|r| &r.env == env && r.number == *number)
                .cloned()
        }))
    }
    async fn set_current_release(
        &self,
        env: &EnvKey,
        number: Option<ReleaseNumber>,
    ) -> EffectResult<()> {
        self.with(|s| match number {
            Some(number) => s.current.insert(env.clone(), number),
            None => s.current.remove(env),
        });
        Ok(())
    }
    async fn commit_switch(
        &self,
        id: OperationId,
        env: &EnvKey,
        release: ReleaseNumber,
        finished_at: i64,
    ) -> EffectResult<()> {
        // One lock for both, as one transaction in SQLite.
        self.with(|s| {
            let step = s
                .steps
                .get_mut(&id.0)
                .and_then(|steps| steps.iter_mut().find(|r| r.step == Step::Switch))
                .ok_or_else(|| missing("switch step"))?;
            step.status = StepStatus::Succeeded;
            step.finished_at = Some(finished_at);
            step.message = None;
            s.current.insert(env.clone(), release);
            if let Some(op) = s.ops.get_mut(&id.0) {
                op.step = Some(Step::Switch);
            }
            Ok(())
        })
    }
    async fn save_instance(&self, instance: &InstanceRecord) -> EffectResult<()> {
        self.with(|s| s.instances.insert(instance.id.clone(), instance.clone()));
        Ok(())
    }
    async fn remove_instance(&self, id: &str) -> EffectResult<()> {
        self.with(|s| s.instances.remove(id));
        Ok(())
    }
    async fn instances(&self, env: Option<&EnvKey>) -> EffectResult<Vec<InstanceRecord>> {
        Ok(self.with(|s| {
            s.instances
                .values()
                .filter(|i| env.is_none_or(|e| &i.env == e))
                .cloned()
                .collect()
        }))
    }
    async fn variables(&self, env: &EnvKey) -> EffectResult<Vec<Variable>> {
        Ok(self.with(|s| {
            s.variables
                .get(env)
                .map(|v| v.values().cloned().collect())
                .unwrap_or_default()
        }))
    }
    async fn set_variables(&self, env: &EnvKey, vars: &[Variable]) -> EffectResult<()> {
        self.with(|s| {
            let map = s.variables.entry(env.clone()).or_default();
            for var in vars {
                map.insert(var.key.clone(), var.clone());
            }
        });
        Ok(())
    }
    async fn unset_variables(&self, env: &EnvKey, keys: &[String]) -> EffectResult<()> {
        self.with(|s| {
            if let Some(map) = s.variables.get_mut(env) {
                for key in keys {
                    map.remove(key);
                }
            }
        });
        Ok(())
    }
}
