//! The second half of recovery, run by the environment's worker before anything queued
//! there: what is left of an interrupted operation as its course says — the steps after
//! the switch, or the rollback — then its after hooks and its final state. The first
//! half (`recover`, at start) has already decided the course, recorded it when it
//! changes anything, and routed the environment to the release that will serve.

use tokio_util::sync::CancellationToken;

use crate::config::model::AppConfig;
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::{InstanceRecord, Operation, OperationKind, OperationState, Step};
use crate::pipeline::operation::{settle, Runner};
use crate::pipeline::progress::Progress;
use crate::pipeline::recovery::plan::{self, Course};
use crate::pipeline::rollout::{of_operation, Changes, Outcome, Rollout, Target};
use crate::pipeline::steps::StepRecorder;
use crate::pipeline::traits::Effects;

/// Finishes or rolls back an operation that a killed server left running; returns its
/// final state and summary.
pub(crate) async fn resume(
    fx: &Effects,
    op: &Operation,
    course: Course,
    progress: &Progress,
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
    let rollout = Rollout {
        fx,
        op,
        steps: &steps,
        cancel,
    };
    let target = target_of(fx, op, log).await;
    let why = format!("the server stopped {}", plan::stopped_at(op, progress));
    let outcome = match course {
        Course::Teardown => {
            let config = serving_config(fx, op).await;
            runner.teardown(config.as_ref()).await
        }
        Course::Finish { rolled_out: false } => match &target {
            Some(target) => {
                runner
                    .redeploy(&target.config, &target.release, progress)
                    .await
            }
            None => Outcome::Failed(format!(
                "{why}, and what it deployed cannot be read back; nothing changed"
            )),
        },
        Course::Finish { rolled_out: true } => match &target {
            Some(target) => {
                let (started, old) = split_instances(fx, op).await;
                let changes = Changes {
                    started,
                    stopped_old: Vec::new(),
                    switched: true,
                };
                rollout.after_switch(target, &old, changes, progress).await
            }
            None => {
                // Only a release deleted under the server's feet can get here: the new
                // release serves, and nothing more can be done about the old one.
                log.line("    the configuration of the new release cannot be read: the steps after the switch are not run").await;
                Outcome::Succeeded
            }
        },
        Course::RollBack => match &target {
            Some(target) => {
                let (started, old) = split_instances(fx, op).await;
                let changes = Changes {
                    stopped_old: stopped_first(target, &old, progress),
                    started,
                    switched: progress.succeeded(Step::Switch)
                        || progress.status(Step::Rollback).is_some(),
                };
                rollout.roll_back(target, &old, changes, why).await
            }
            None => {
                // No release was made yet (the crash came during resolve or build): only
                // what this operation may have started goes.
                let (started, _) = split_instances(fx, op).await;
                rollout.stop_all(&started, None).await;
                Outcome::RolledBack(format!("{why}; nothing had changed"))
            }
        },
        Course::Decided(state) => decided(state, progress, &why),
    };
    let hooks_config = match &target {
        Some(target) => Some(target.config.clone()),
        None => config_of_source(fx, op, progress, log).await,
    };
    if let Some(config) = &hooks_config {
        runner.after_hooks(config, &outcome, progress).await;
        if outcome == Outcome::Succeeded {
            runner.prune_artifacts(config.retain).await;
        }
    }
    settle(op, outcome, log).await
}

/// The release the operation rolls out and the one it replaces, read back from the
/// store and the artifacts, as `prepare` made them.
async fn target_of(fx: &Effects, op: &Operation, log: &OperationLog) -> Option<Target> {
    let store = &fx.store;
    let release = store.release(&op.env, op.release_after?).await.ok()??;
    let config = match fx
        .sources
        .config_of_artifact(&release.artifact, &op.env.app)
        .await
    {
        Ok(config) => config,
        Err(errors) => {
            log.line(format!(
                "    the configuration of {} cannot be read: {errors}",
                release.number
            ))
            .await;
            return None;
        }
    };
    let previous = match op.release_before {
        Some(number) => match store.release(&op.env, number).await.ok().flatten() {
            Some(previous) => fx
                .sources
                .config_of_artifact(&previous.artifact, &op.env.app)
                .await
                .ok()
                .map(|config| (previous, config)),
            None => None,
        },
        None => None,
    };
    // As `prepare` decides: only a deploy runs before_release and the deploy hooks.
    let deploy = op.kind == OperationKind::Deploy;
    Some(Target {
        release,
        config,
        previous,
        run_before_release: deploy,
        run_deploy_hooks: deploy,
    })
}

/// The operation's instances (the new ones) and the environment's others (the old ones).
async fn split_instances(
    fx: &Effects,
    op: &Operation,
) -> (Vec<InstanceRecord>, Vec<InstanceRecord>) {
    let all = fx.store.instances(Some(&op.env)).await.unwrap_or_default();
    all.into_iter().partition(|i| of_operation(i, op.id))
}

/// The old instances that stopped before the new ones started (`zero_downtime: false`)
/// and are gone now: the rollback starts them again. They are no longer recorded, so
/// they are worked out from the previous release's scale.
fn stopped_first(
    target: &Target,
    old: &[InstanceRecord],
    progress: &Progress,
) -> Vec<InstanceRecord> {
    let Some((previous, _)) = &target.previous else {
        return Vec::new();
    };
    // Only the stop-first `stop_old` can have run in an operation that rolls back: the
    // one after the switch comes once nothing can roll back any more.
    if progress.status(Step::StopOld).is_none() {
        return Vec::new();
    }
    let mut missing = Vec::new();
    for (service, scale) in &previous.scale.services {
        let stops_first = target
            .config
            .services
            .get(service)
            .is_some_and(|s| !s.zero_downtime);
        if !stops_first {
            continue;
        }
        for index in 1..=scale.instances {
            let running = old
                .iter()
                .any(|i| &i.service == service && i.index == index && i.release == previous.number);
            if !running {
                missing.push(InstanceRecord {
                    id: format!("{service}.{index} of {}", previous.number),
                    env: previous.env.clone(),
                    service: service.clone(),
                    release: previous.number,
                    index,
                    handle: String::new(),
                    address: None,
                    started_at: 0,
                });
            }
        }
    }
    missing
}

/// The outcome an operation had reached before the server stopped, from its records.
fn decided(state: OperationState, progress: &Progress, why: &str) -> Outcome {
    let failure = [
        Step::Resolve,
        Step::Build,
        Step::BeforeRelease,
        Step::StartInstances,
        Step::Switch,
        Step::Confirm,
        Step::Watch,
    ]
    .into_iter()
    .find(|step| progress.status(*step) == Some(crate::pipeline::model::StepStatus::Failed))
    .map_or_else(|| why.to_owned(), |step| format!("{step} failed"));
    match state {
        OperationState::Failed => Outcome::Failed(format!("{failure}; nothing changed")),
        OperationState::RollbackFailed => {
            Outcome::RollbackFailed(format!("{failure}; then the rollback failed"))
        }
        _ => Outcome::RolledBack(failure),
    }
}

/// The configuration of the serving release (a teardown's stop timeouts).
async fn serving_config(fx: &Effects, op: &Operation) -> Option<AppConfig> {
    let release = fx.store.current_release(&op.env).await.ok()??;
    fx.sources
        .config_of_artifact(&release.artifact, &op.env.app)
        .await
        .ok()
}

/// A deploy stopped before its release was made (during its build) has its config only
/// in its source: fetched again, so that `after_deploy_failure` runs as it would have.
async fn config_of_source(
    fx: &Effects,
    op: &Operation,
    progress: &Progress,
    log: &OperationLog,
) -> Option<AppConfig> {
    if op.kind != OperationKind::Deploy || !progress.succeeded(Step::Resolve) {
        return None;
    }
    let fetched = fx.sources.fetch(op.source.as_ref()?, log).await.ok()?;
    fx.sources
        .config_of_source(&fetched, &op.env.app)
        .await
        .ok()
}
