//! Recording steps: each step is saved as it starts and as it ends, before the next one
//! begins, so a restarted server knows exactly where an operation stood.

use std::future::Future;

use crate::ids::OperationId;
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::{Operation, Step, StepRecord, StepStatus};
use crate::pipeline::traits::{EffectResult, Effects};

/// Writes step records and the matching log headers of one operation.
pub struct StepRecorder {
    pub fx: Effects,
    pub operation: OperationId,
    pub log: OperationLog,
}

/// How a step went, as the step's body reports it.
pub enum StepEnd<T> {
    Done(T),
    /// The step failed, but the operation goes on.
    Warning(T, String),
    Skipped(T, String),
}

impl StepRecorder {
    /// The recorder of `op`'s steps, into its log.
    pub fn of(fx: &Effects, op: &Operation, log: &OperationLog) -> StepRecorder {
        StepRecorder {
            fx: fx.clone(),
            operation: op.id,
            log: log.clone(),
        }
    }

    /// Runs one step: records it running, runs `body`, records how it ended.
    pub async fn run<T, E, F>(&self, step: Step, body: F) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: Future<Output = Result<StepEnd<T>, E>>,
    {
        let started_at = self.fx.clock.now_millis();
        self.log.line(format!("==> {}", step_title(step))).await;
        self.save(StepRecord {
            step,
            status: StepStatus::Running,
            started_at,
            finished_at: None,
            message: None,
        })
        .await;
        let result = body.await;
        let (status, message) = match &result {
            Ok(StepEnd::Done(_)) => (StepStatus::Succeeded, None),
            Ok(StepEnd::Warning(_, why)) => (StepStatus::Warning, Some(why.clone())),
            Ok(StepEnd::Skipped(_, why)) => (StepStatus::Skipped, Some(why.clone())),
            Err(error) => (StepStatus::Failed, Some(error.to_string())),
        };
        if let Some(message) = &message {
            let prefix = match status {
                StepStatus::Warning => "warning: ",
                StepStatus::Failed => "failed: ",
                _ => "",
            };
            self.log.line(format!("    {prefix}{message}")).await;
        }
        let finished_at = self.fx.clock.now_millis();
        self.save(StepRecord {
            step,
            status,
            started_at,
            finished_at: Some(finished_at),
            message,
        })
        .await;
        self.fx.reporter.operation_changed(self.operation).await;
        result.map(|end| match end {
            StepEnd::Done(value) | StepEnd::Warning(value, _) | StepEnd::Skipped(value, _) => value,
        })
    }

    /// Records a step that a server restart interrupted and that is not run again, as a
    /// warning saying `why`.
    pub async fn interrupted(&self, step: Step, why: &str) {
        let ended = async { Ok::<_, String>(StepEnd::Warning((), why.to_owned())) };
        let _ = self.run(step, ended).await;
    }

    async fn save(&self, record: StepRecord) {
        if let Err(error) = self.try_save(&record).await {
            // The step's outcome still reaches the log; recovery treats an unrecorded
            // step as not reached, which errs on the side of rolling back.
            tracing::error!(operation = %self.operation, %error, "could not record a step");
        }
    }

    async fn try_save(&self, record: &StepRecord) -> EffectResult<()> {
        self.fx.store.record_step(self.operation, record).await
    }
}

/// What the log calls a step.
pub fn step_title(step: Step) -> &'static str {
    match step {
        Step::Resolve => "resolve the source",
        Step::Build => "build",
        Step::BeforeRelease => "before_release hook",
        Step::StopOld => "stop the old instances",
        Step::StartInstances => "start the new instances",
        Step::DeployHook => "deploy hook (requests held)",
        Step::Switch => "switch traffic",
        Step::Drain => "drain the old instances",
        Step::PostDeploy => "post_deploy hook",
        Step::Watch => "watch the new release",
        Step::Confirm => "confirm the release serving",
        Step::AfterHooks => "after hooks",
        Step::Rollback => "roll back",
    }
}
