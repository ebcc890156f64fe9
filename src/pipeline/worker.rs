//! The dispatcher: one worker per environment runs its operations one at a time, in
//! the order they were queued. Of several queued deploys only the newest runs; the
//! others end `superseded`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ids::{EnvKey, OperationId};
use crate::pipeline::log::{LogBus, Masker, OperationLog};
use crate::pipeline::model::{NewOperation, Operation, OperationKind, OperationState};
use crate::pipeline::recovery::Resumption;
use crate::pipeline::traits::{EffectResult, Effects};

/// Runs operations. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub fx: Effects,
    pub bus: LogBus,
    inner: Arc<Inner>,
}

struct Inner {
    workers: Mutex<HashMap<EnvKey, Arc<Notify>>>,
    running: Mutex<HashMap<OperationId, CancellationToken>>,
    /// Operations a killed server left running, which their environment's worker
    /// finishes or rolls back before it takes anything queued.
    resumptions: Mutex<HashMap<EnvKey, Vec<Resumption>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Pipeline {
    pub fn new(fx: Effects, bus: LogBus) -> Self {
        let inner = Inner {
            workers: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            resumptions: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        };
        Self {
            fx,
            bus,
            inner: Arc::new(inner),
        }
    }

    /// Queues an operation and wakes its environment's worker.
    pub async fn submit(&self, new: NewOperation) -> EffectResult<Operation> {
        let op = self.fx.store.create_operation(new).await?;
        self.fx.reporter.operation_changed(op.id).await;
        self.wake(&op.env);
        Ok(op)
    }

    /// Records a deploy that will never run because a newer one of the same branch is
    /// behind it (a storm of pushes): `superseded` at once, its log says why, and its
    /// reporter hears its end.
    pub async fn record_superseded(&self, new: NewOperation, why: &str) -> EffectResult<Operation> {
        let op = self.fx.store.create_superseded(new, why).await?;
        self.log(&op, Masker::default())
            .line(format!("==> superseded: {why}"))
            .await;
        self.fx.reporter.operation_changed(op.id).await;
        Ok(op)
    }

    /// Cancels an operation: a queued one at once, a running one at its next safe point
    /// (it then rolls back). Returns false when it had already ended.
    pub async fn cancel(&self, id: OperationId) -> EffectResult<bool> {
        let Some(op) = self.fx.store.operation(id).await? else {
            return Ok(false);
        };
        match op.state {
            OperationState::Queued => {
                self.fx
                    .store
                    .set_operation_state(
                        id,
                        OperationState::Cancelled,
                        Some("cancelled while queued"),
                    )
                    .await?;
                self.fx.reporter.operation_changed(id).await;
                Ok(true)
            }
            OperationState::Running => {
                let token = self.lock_running().get(&id).cloned();
                if let Some(token) = token {
                    self.log(&op, Masker::default())
                        .line("==> cancel requested")
                        .await;
                    token.cancel();
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// A log handle for an operation, masking the values of its environment's variables.
    pub fn log(&self, op: &Operation, masker: Masker) -> OperationLog {
        OperationLog::new(
            op.id,
            self.fx.store.clone(),
            self.fx.clock.clone(),
            masker,
            self.bus.clone(),
        )
    }

    /// Starts the workers of every environment that has queued operations or an
    /// interrupted one to resume.
    pub async fn start_queued(&self) -> EffectResult<()> {
        for env in self.fx.store.environments().await? {
            let resuming = self.lock_resumptions().contains_key(&env);
            if resuming || !self.fx.store.queued_operations(&env).await?.is_empty() {
                self.wake(&env);
            }
        }
        Ok(())
    }

    /// Hands an interrupted operation to its environment's worker (see `recover`).
    pub(crate) fn queue_resumption(&self, resumption: Resumption) {
        self.lock_resumptions()
            .entry(resumption.op.env.clone())
            .or_default()
            .push(resumption);
    }

    /// Stops taking operations. Running ones are abandoned where they stand: they are
    /// recorded step by step, and the next start finishes or rolls them back.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    fn wake(&self, env: &EnvKey) {
        let mut workers = self.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = workers.get(env) {
            notify.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        workers.insert(env.clone(), notify.clone());
        let pipeline = self.clone();
        let env = env.clone();
        self.inner.tasks.spawn(async move {
            let shutdown = pipeline.inner.shutdown.clone();
            // Biased: once the server stops, the operation is dropped where it stands
            // rather than polled on towards its end.
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {}
                () = pipeline.work(&env, &notify) => {}
            }
        });
    }

    async fn work(&self, env: &EnvKey, notify: &Notify) {
        loop {
            let resumption = self
                .lock_resumptions()
                .get_mut(env)
                .filter(|waiting| !waiting.is_empty())
                .map(|waiting| waiting.remove(0));
            if let Some(resumption) = resumption {
                self.resume(resumption).await;
                continue;
            }
            match self.next(env).await {
                Ok(Some(op)) => self.run(op).await,
                Ok(None) => notify.notified().await,
                Err(error) => {
                    tracing::error!(%env, %error, "the operation queue could not be read; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The next operation to run, superseding queued deploys that a newer one replaces.
    async fn next(&self, env: &EnvKey) -> EffectResult<Option<Operation>> {
        let queued = self.fx.store.queued_operations(env).await?;
        let newest_deploy = queued
            .iter()
            .filter(|op| op.kind == OperationKind::Deploy)
            .map(|op| op.id)
            .max();
        for op in &queued {
            if op.kind == OperationKind::Deploy && Some(op.id) != newest_deploy {
                let newer = newest_deploy.map_or_else(String::new, |id| id.to_string());
                let why = format!("superseded by operation {newer}, a newer deploy");
                self.fx
                    .store
                    .set_operation_state(op.id, OperationState::Superseded, Some(&why))
                    .await?;
                self.log(op, Masker::default())
                    .line(format!("==> superseded: {why}"))
                    .await;
                self.fx.reporter.operation_changed(op.id).await;
                continue;
            }
            return Ok(Some(op.clone()));
        }
        Ok(None)
    }

    async fn run(&self, op: Operation) {
        let store = &self.fx.store;
        if let Err(error) = store
            .set_operation_state(op.id, OperationState::Running, None)
            .await
        {
            tracing::error!(operation = %op.id, %error, "could not start an operation");
            return;
        }
        let log = self.log(&op, self.masker(&op.env).await);
        self.fx.reporter.operation_changed(op.id).await;
        // Its own token, not a child of the shutdown's: a server that stops abandons its
        // operations where they stand (the next start resumes them); it does not cancel
        // them, which would roll back a deploy that a restart could have finished.
        let token = CancellationToken::new();
        self.lock_running().insert(op.id, token.clone());
        log.line(format!(
            "==> {} of {} started by {}",
            op.kind, op.env, op.initiator
        ))
        .await;
        let (state, summary) = crate::pipeline::operation::run(&self.fx, &op, &log, &token).await;
        self.conclude(op.id, state, &summary).await;
    }

    /// Finishes or rolls back an operation a killed server left running.
    async fn resume(&self, resumption: Resumption) {
        let Resumption {
            op,
            course,
            progress,
        } = resumption;
        let log = self.log(&op, self.masker(&op.env).await);
        let token = CancellationToken::new();
        self.lock_running().insert(op.id, token.clone());
        let (state, summary) = crate::pipeline::recovery::resume::resume(
            &self.fx, &op, course, &progress, &log, &token,
        )
        .await;
        self.conclude(op.id, state, &summary).await;
    }

    /// Records how an operation ended and tells whoever follows it.
    async fn conclude(&self, id: OperationId, state: OperationState, summary: &str) {
        self.lock_running().remove(&id);
        if let Err(error) = self
            .fx
            .store
            .set_operation_state(id, state, Some(summary))
            .await
        {
            tracing::error!(operation = %id, %error, "could not record how an operation ended");
        }
        self.fx.reporter.operation_changed(id).await;
        self.bus.wake();
    }

    /// Masks every value an operation of `env` could print: the current variables, and
    /// those of earlier releases (a rollback brings them back).
    async fn masker(&self, env: &EnvKey) -> Masker {
        let store = &self.fx.store;
        let variables = store.variables(env).await.unwrap_or_default();
        let releases = store.releases(env).await.unwrap_or_default();
        let old_values = releases.into_iter().flat_map(|r| r.variables.into_values());
        Masker::new(variables.into_iter().map(|v| v.value).chain(old_values))
    }

    fn lock_resumptions(&self) -> std::sync::MutexGuard<'_, HashMap<EnvKey, Vec<Resumption>>> {
        self.inner
            .resumptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<OperationId, CancellationToken>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}
