//! Tests of the local runtime with real processes, real files and real HTTP on loopback.
//! The operation log goes to a store that only records lines, so these tests do not
//! depend on the database module.

mod builds;
mod commands;
mod instances;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::ids::{EnvKey, OperationId, ReleaseNumber};
use crate::pipeline::log::{LogBus, Masker, OperationLog};
use crate::pipeline::model::*;
use crate::pipeline::traits::{
    CommandSpec, EffectError, EffectResult, NewRelease, Store, SystemClock,
};

/// Records log lines; everything else is outside what a runtime may touch.
#[derive(Default)]
pub(super) struct LinesStore {
    lines: Mutex<Vec<String>>,
    appends: Mutex<usize>,
}

impl LinesStore {
    pub(super) fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }
    pub(super) fn appends(&self) -> usize {
        *self.appends.lock().expect("appends")
    }
}

fn outside<T>() -> EffectResult<T> {
    Err(EffectError::Store(
        "a runtime does not use this part of the store".into(),
    ))
}

#[async_trait]
impl Store for LinesStore {
    async fn append_log(&self, _id: OperationId, _at: i64, lines: &[String]) -> EffectResult<()> {
        self.lines.lock().expect("lines").extend_from_slice(lines);
        *self.appends.lock().expect("appends") += 1;
        Ok(())
    }
    async fn ensure_environment(&self, _: &EnvKey) -> EffectResult<()> {
        outside()
    }
    async fn environments(&self) -> EffectResult<Vec<EnvKey>> {
        outside()
    }
    async fn create_operation(&self, _: NewOperation) -> EffectResult<Operation> {
        outside()
    }
    async fn create_superseded(&self, _: NewOperation, _: &str) -> EffectResult<Operation> {
        outside()
    }
    async fn operation(&self, _: OperationId) -> EffectResult<Option<Operation>> {
        outside()
    }
    async fn operations(&self, _: Option<&EnvKey>, _: i64) -> EffectResult<Vec<Operation>> {
        outside()
    }
    async fn queued_operations(&self, _: &EnvKey) -> EffectResult<Vec<Operation>> {
        outside()
    }
    async fn running_operations(&self) -> EffectResult<Vec<Operation>> {
        outside()
    }
    async fn set_operation_state(
        &self,
        _: OperationId,
        _: OperationState,
        _: Option<&str>,
    ) -> EffectResult<()> {
        outside()
    }
    async fn set_operation_releases(
        &self,
        _: OperationId,
        _: Option<ReleaseNumber>,
        _: Option<ReleaseNumber>,
    ) -> EffectResult<()> {
        outside()
    }
    async fn set_operation_commit(&self, _: OperationId, _: &str) -> EffectResult<()> {
        outside()
    }
    async fn record_step(&self, _: OperationId, _: &StepRecord) -> EffectResult<()> {
        outside()
    }
    async fn steps(&self, _: OperationId) -> EffectResult<Vec<StepRecord>> {
        outside()
    }
    async fn log_lines(&self, _: OperationId, _: i64, _: i64) -> EffectResult<Vec<LogLine>> {
        outside()
    }
    async fn create_release(&self, _: NewRelease) -> EffectResult<Release> {
        outside()
    }
    async fn release(&self, _: &EnvKey, _: ReleaseNumber) -> EffectResult<Option<Release>> {
        outside()
    }
    async fn releases(&self, _: &EnvKey) -> EffectResult<Vec<Release>> {
        outside()
    }
    async fn current_release(&self, _: &EnvKey) -> EffectResult<Option<Release>> {
        outside()
    }
    async fn set_current_release(&self, _: &EnvKey, _: Option<ReleaseNumber>) -> EffectResult<()> {
        outside()
    }
    async fn commit_switch(
        &self,
        _: OperationId,
        _: &EnvKey,
        _: ReleaseNumber,
        _: i64,
    ) -> EffectResult<()> {
        outside()
    }
    async fn save_instance(&self, _: &InstanceRecord) -> EffectResult<()> {
        outside()
    }
    async fn remove_instance(&self, _: &str) -> EffectResult<()> {
        outside()
    }
    async fn instances(&self, _: Option<&EnvKey>) -> EffectResult<Vec<InstanceRecord>> {
        outside()
    }
    async fn variables(&self, _: &EnvKey) -> EffectResult<Vec<Variable>> {
        outside()
    }
    async fn set_variables(&self, _: &EnvKey, _: &[Variable]) -> EffectResult<()> {
        outside()
    }
    async fn unset_variables(&self, _: &EnvKey, _: &[String]) -> EffectResult<()> {
        outside()
    }
}

/// An operation log over a recording store, masking `secrets`.
pub(super) fn recorded_log(secrets: &[&str]) -> (OperationLog, Arc<LinesStore>) {
    let store = Arc::new(LinesStore::default());
    let log = OperationLog::new(
        OperationId(1),
        store.clone(),
        Arc::new(SystemClock),
        Masker::new(secrets.iter().copied()),
        LogBus::default(),
    );
    (log, store)
}

/// A hook command as the pipeline builds one: `sh -c <script>`.
pub(super) fn script(label: &str, script: &str, timeout: Duration) -> CommandSpec {
    CommandSpec {
        label: label.to_owned(),
        argv: vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()],
        env: BTreeMap::new(),
        cwd: None,
        timeout,
    }
}

pub(super) fn directory(path: &Path) -> Artifact {
    Artifact::Directory {
        path: path.to_string_lossy().into_owned(),
    }
}

/// Polls `condition` until it holds or `limit` passes; says whether it held.
pub(super) async fn eventually<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition().await
}

/// Whether a process with this pid exists (zombies included).
pub(super) fn pid_exists(pid: i32) -> bool {
    crate::runtime::local::process::process_alive(pid)
}
