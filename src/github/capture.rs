//! Where a validation's build writes its log. The runtimes write through an
//! `OperationLog`, which persists lines to a `Store` under an operation id; a validation
//! has no operation (its output goes to its check run, not to the activity history), so
//! this `Store` keeps the last lines in memory and refuses everything else — a build
//! touches nothing but its log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ids::{EnvKey, OperationId, ReleaseNumber};
use crate::pipeline::log::{LogBus, Masker, OperationLog};
use crate::pipeline::model::{
    InstanceRecord, LogLine, NewOperation, Operation, OperationState, Release, StepRecord, Variable,
};
use crate::pipeline::traits::{EffectError, EffectResult, NewRelease, Store, SystemClock};

/// How many of the last lines are kept: the check run shows the log's tail.
const KEPT_LINES: usize = 400;

/// The last lines written to a validation's log.
#[derive(Clone, Default)]
pub struct CapturedLog {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl CapturedLog {
    /// An `OperationLog` whose lines (masked with `masker`) land here.
    pub fn log(&self, masker: Masker) -> OperationLog {
        OperationLog::new(
            // No operation: the id is never stored anywhere.
            OperationId(0),
            Arc::new(self.clone()),
            Arc::new(SystemClock),
            masker,
            LogBus::default(),
        )
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

fn refused<T>() -> EffectResult<T> {
    Err(EffectError::Failed(
        "a validation's build has no operation to record".into(),
    ))
}

#[async_trait]
impl Store for CapturedLog {
    async fn append_log(&self, _id: OperationId, _at: i64, lines: &[String]) -> EffectResult<()> {
        let mut kept = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for line in lines {
            if kept.len() == KEPT_LINES {
                kept.pop_front();
            }
            kept.push_back(line.clone());
        }
        Ok(())
    }

    async fn ensure_environment(&self, _env: &EnvKey) -> EffectResult<()> {
        refused()
    }
    async fn environments(&self) -> EffectResult<Vec<EnvKey>> {
        refused()
    }
    async fn create_operation(&self, _new: NewOperation) -> EffectResult<Operation> {
        refused()
    }
    async fn create_superseded(&self, _new: NewOperation, _why: &str) -> EffectResult<Operation> {
        refused()
    }
    async fn operation(&self, _id: OperationId) -> EffectResult<Option<Operation>> {
        refused()
    }
    async fn operations(&self, _env: Option<&EnvKey>, _limit: i64) -> EffectResult<Vec<Operation>> {
        refused()
    }
    async fn queued_operations(&self, _env: &EnvKey) -> EffectResult<Vec<Operation>> {
        refused()
    }
    async fn running_operations(&self) -> EffectResult<Vec<Operation>> {
        refused()
    }
    async fn set_operation_state(
        &self,
        _id: OperationId,
        _state: OperationState,
        _message: Option<&str>,
    ) -> EffectResult<()> {
        refused()
    }
    async fn set_operation_releases(
        &self,
        _id: OperationId,
        _before: Option<ReleaseNumber>,
        _after: Option<ReleaseNumber>,
    ) -> EffectResult<()> {
        refused()
    }
    async fn set_operation_commit(&self, _id: OperationId, _commit: &str) -> EffectResult<()> {
        refused()
    }
    async fn record_step(&self, _id: OperationId, _record: &StepRecord) -> EffectResult<()> {
        refused()
    }
    async fn steps(&self, _id: OperationId) -> EffectResult<Vec<StepRecord>> {
        refused()
    }
    async fn log_lines(
        &self,
        _id: OperationId,
        _after: i64,
        _limit: i64,
    ) -> EffectResult<Vec<LogLine>> {
        refused()
    }
    async fn create_release(&self, _release: NewRelease) -> EffectResult<Release> {
        refused()
    }
    async fn release(
        &self,
        _env: &EnvKey,
        _number: ReleaseNumber,
    ) -> EffectResult<Option<Release>> {
        refused()
    }
    async fn releases(&self, _env: &EnvKey) -> EffectResult<Vec<Release>> {
        refused()
    }
    async fn current_release(&self, _env: &EnvKey) -> EffectResult<Option<Release>> {
        refused()
    }
    async fn set_current_release(
        &self,
        _env: &EnvKey,
        _number: Option<ReleaseNumber>,
    ) -> EffectResult<()> {
        refused()
    }
    async fn commit_switch(
        &self,
        _id: OperationId,
        _env: &EnvKey,
        _release: ReleaseNumber,
        _finished_at: i64,
    ) -> EffectResult<()> {
        refused()
    }
    async fn save_instance(&self, _instance: &InstanceRecord) -> EffectResult<()> {
        refused()
    }
    async fn remove_instance(&self, _id: &str) -> EffectResult<()> {
        refused()
    }
    async fn instances(&self, _env: Option<&EnvKey>) -> EffectResult<Vec<InstanceRecord>> {
        refused()
    }
    async fn variables(&self, _env: &EnvKey) -> EffectResult<Vec<Variable>> {
        refused()
    }
    async fn set_variables(&self, _env: &EnvKey, _vars: &[Variable]) -> EffectResult<()> {
        refused()
    }
    async fn unset_variables(&self, _env: &EnvKey, _keys: &[String]) -> EffectResult<()> {
        refused()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_last_lines_masked() {
        let captured = CapturedLog::default();
        let log = captured.log(Masker::new(["s3cret-value"]));
        for i in 0..(KEPT_LINES + 10) {
            log.line(format!("line {i} token=s3cret-value")).await;
        }
        let lines = captured.lines();
        assert_eq!(lines.len(), KEPT_LINES);
        assert_eq!(lines[0], "line 10 token=****");
        assert!(lines.iter().all(|l| !l.contains("s3cret")));
    }
}
