//! One operation from start to end: what each kind does before and after its rollout,
//! its `after_<op>_success|failure` hooks, and the final state it records.

use tokio_util::sync::CancellationToken;

use crate::config::model::{AppConfig, HookedOperation};
use crate::pipeline::hooks::run_hook;
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::{Operation, OperationKind, OperationState, Release, Step};
use crate::pipeline::progress::{HookCourse, Progress, NOT_RUN_AGAIN};
use crate::pipeline::rollout::{context, Outcome, Rollout, Target};
use crate::pipeline::steps::{StepEnd, StepRecorder};
use crate::pipeline::traits::{Effects, Exposure};

/// Runs an operation that the worker has marked running, and returns its final state
/// and a one-line summary.
pub async fn run(
    fx: &Effects,
    op: &Operation,
    log: &OperationLog,
    cancel: &CancellationToken,
) -> (OperationState, String) {
    let steps = StepRecorder::of(fx, op, log);
    let runner = Runner {
        fx,
        op,
        steps: &steps,
        cancel,
    };
    let (outcome, hooks) = match runner.prepare().await {
        Ok(Prepared::Rollout(target)) => {
            let target = *target;
            let rollout = Rollout {
                fx,
                op,
                steps: &steps,
                cancel,
            };
            let outcome = rollout.run(&target).await;
            (outcome, Some(target.config))
        }
        Ok(Prepared::Unchanged { config, release }) => (
            runner.redeploy(&config, &release, &Progress::fresh()).await,
            Some(config),
        ),
        Ok(Prepared::Teardown { config }) => (runner.teardown(config.as_ref()).await, None),
        Err(PrepareError { why, config }) => (Outcome::Failed(why), config),
    };
    if let Some(config) = &hooks {
        runner
            .after_hooks(config, &outcome, &Progress::fresh())
            .await;
        if outcome == Outcome::Succeeded {
            runner.prune_artifacts(config.retain).await;
        }
    }
    settle(op, outcome, log).await
}

/// The final state and summary of an outcome, with the log's last line saying them.
pub(in crate::pipeline) async fn settle(
    op: &Operation,
    outcome: Outcome,
    log: &OperationLog,
) -> (OperationState, String) {
    let (state, summary) = match outcome {
        Outcome::Succeeded => (OperationState::Succeeded, format!("{} succeeded", op.kind)),
        Outcome::Failed(why) => (OperationState::Failed, why),
        Outcome::RolledBack(why) => (OperationState::RolledBack, format!("{why}; rolled back")),
        Outcome::RollbackFailed(why) => (OperationState::RollbackFailed, why),
        Outcome::Cancelled => (
            OperationState::Cancelled,
            "cancelled; the old release serves".to_owned(),
        ),
    };
    log.line(format!("==> {state}: {summary}")).await;
    (state, summary)
}

// One value per operation, moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Prepared {
    Rollout(Box<Target>),
    /// Nothing changed: only `post_deploy` runs.
    Unchanged {
        config: AppConfig,
        release: Release,
    },
    /// Everything stops; the serving release's config gives the stop timeouts.
    Teardown {
        config: Option<AppConfig>,
    },
}

pub(super) struct PrepareError {
    pub why: String,
    /// The config, when it could be read: its `after_*_failure` hooks still run.
    pub config: Option<AppConfig>,
}

impl From<String> for PrepareError {
    fn from(why: String) -> Self {
        Self { why, config: None }
    }
}

pub(super) struct Runner<'a> {
    pub fx: &'a Effects,
    pub op: &'a Operation,
    pub steps: &'a StepRecorder,
    pub cancel: &'a CancellationToken,
}

impl Runner<'_> {
    /// Stops every instance (SIGTERM, then SIGKILL after each service's `stop_timeout`),
    /// takes the environment off the router and leaves it with no serving release.
    /// Doing it twice does no harm, which is how a restarted server finishes one.
    pub(in crate::pipeline) async fn teardown(&self, config: Option<&AppConfig>) -> Outcome {
        let env = &self.op.env;
        let body = async {
            self.fx.traffic.switch(env, Vec::new()).await;
            // No port or domain of its own either: closing them cannot fail.
            let _ = self.fx.traffic.expose(env, &Exposure::default()).await;
            let instances = self
                .fx
                .store
                .instances(Some(env))
                .await
                .map_err(|e| e.to_string())?;
            let rollout = Rollout {
                fx: self.fx,
                op: self.op,
                steps: self.steps,
                cancel: self.cancel,
            };
            rollout.stop_all(&instances, config).await;
            let serving = self
                .fx
                .store
                .current_release(env)
                .await
                .map_err(|e| e.to_string())?;
            self.fx
                .store
                .set_operation_releases(self.op.id, serving.map(|r| r.number), None)
                .await
                .map_err(|e| e.to_string())?;
            self.fx
                .store
                .set_current_release(env, None)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(StepEnd::Done(()))
        };
        match self.steps.run(Step::StopOld, body).await {
            Ok(()) => Outcome::Succeeded,
            Err(why) => Outcome::Failed(format!("teardown failed: {why}")),
        }
    }

    /// A deploy with nothing new: the instances keep running and only `post_deploy` runs
    /// (unless a previous server had started it: `progress`).
    pub(in crate::pipeline) async fn redeploy(
        &self,
        config: &AppConfig,
        release: &Release,
        progress: &Progress,
    ) -> Outcome {
        let _ = self
            .fx
            .store
            .set_operation_releases(self.op.id, Some(release.number), Some(release.number))
            .await;
        if let Some(hook) = &config.hooks.post_deploy {
            let ctx = context(self.op, release, config);
            let specs = ctx.hook("post_deploy", hook);
            let body = async {
                Ok::<_, String>(
                    match run_hook(self.fx, &release.artifact, &specs, &self.steps.log).await {
                        Ok(()) => StepEnd::Done(()),
                        Err(error) => {
                            StepEnd::Warning((), format!("post_deploy hook failed: {error}"))
                        }
                    },
                )
            };
            match progress.hook(Step::PostDeploy) {
                HookCourse::Run => {
                    let _ = self.steps.run(Step::PostDeploy, body).await;
                }
                HookCourse::Interrupted => {
                    self.steps
                        .interrupted(Step::PostDeploy, NOT_RUN_AGAIN)
                        .await
                }
                HookCourse::Done => {}
            }
        }
        Outcome::Succeeded
    }

    /// Deletes the artifacts of releases older than the newest `retain`, except those the
    /// serving release or its predecessor use (a rollback must always be possible).
    pub(in crate::pipeline) async fn prune_artifacts(&self, retain: usize) {
        let store = &self.fx.store;
        let (Ok(releases), Ok(Some(current))) = (
            store.releases(&self.op.env).await,
            store.current_release(&self.op.env).await,
        ) else {
            return;
        };
        let predecessor = releases
            .iter()
            .find(|r| r.number < current.number)
            .map(|r| r.artifact.clone());
        let mut keep: Vec<&crate::pipeline::model::Artifact> =
            releases.iter().take(retain).map(|r| &r.artifact).collect();
        keep.push(&current.artifact);
        keep.extend(predecessor.as_ref());
        for release in releases.iter().skip(retain) {
            if !keep.contains(&&release.artifact) {
                if let Err(error) = self.fx.runtime.prune(&release.artifact).await {
                    tracing::warn!(release = %release.number, %error, "could not prune an artifact");
                }
            }
        }
    }

    /// `after_<op>_success` or `after_<op>_failure`, in an ephemeral instance of the
    /// release now serving. Their failure is reported and changes nothing. Not run again
    /// when a previous server had started them (`progress`).
    pub(in crate::pipeline) async fn after_hooks(
        &self,
        config: &AppConfig,
        outcome: &Outcome,
        progress: &Progress,
    ) {
        let Some(hooked) = hooked_operation(self.op.kind) else {
            return;
        };
        let succeeded = *outcome == Outcome::Succeeded;
        let (name, hook) = if succeeded {
            (
                format!("after_{}_success", hook_name(hooked)),
                config.hooks.after_success.get(&hooked),
            )
        } else {
            (
                format!("after_{}_failure", hook_name(hooked)),
                config.hooks.after_failure.get(&hooked),
            )
        };
        let Some(hook) = hook else { return };
        match progress.hook(Step::AfterHooks) {
            HookCourse::Run => {}
            HookCourse::Done => return,
            HookCourse::Interrupted => {
                return self
                    .steps
                    .interrupted(Step::AfterHooks, NOT_RUN_AGAIN)
                    .await;
            }
        }
        let body = async {
            let serving = self
                .fx
                .store
                .current_release(&self.op.env)
                .await
                .map_err(|e| e.to_string())?;
            let Some(release) = serving else {
                return Ok(StepEnd::Skipped(
                    (),
                    format!("{name} not run: no release is serving"),
                ));
            };
            let ctx = context(self.op, &release, config);
            let specs = ctx.hook(&name, hook);
            Ok::<_, String>(
                match run_hook(self.fx, &release.artifact, &specs, &self.steps.log).await {
                    Ok(()) => StepEnd::Done(()),
                    Err(error) => StepEnd::Warning((), format!("{name} failed: {error}")),
                },
            )
        };
        let _ = self.steps.run(Step::AfterHooks, body).await;
    }
}

fn hooked_operation(kind: OperationKind) -> Option<HookedOperation> {
    match kind {
        OperationKind::Deploy | OperationKind::Redeploy => Some(HookedOperation::Deploy),
        OperationKind::Restart => Some(HookedOperation::Restart),
        OperationKind::Configure => Some(HookedOperation::Configure),
        OperationKind::Scale => Some(HookedOperation::Scale),
        OperationKind::Rollback | OperationKind::Teardown => None,
    }
}

fn hook_name(op: HookedOperation) -> &'static str {
    match op {
        HookedOperation::Deploy => "deploy",
        HookedOperation::Restart => "restart",
        HookedOperation::Configure => "configure",
        HookedOperation::Scale => "scale",
    }
}
