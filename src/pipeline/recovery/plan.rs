//! What becomes of an operation that a killed server left `running`, decided from its
//! kind and its recorded steps alone (no IO, so every case is a unit test below):
//!
//! | recorded | course | ends |
//! |---|---|---|
//! | a teardown | run the teardown again: it is idempotent | succeeded |
//! | `rollback` started, not ended | finish the rollback | rolled_back |
//! | `rollback` ended | only the after hooks were left | rolled_back / rollback_failed |
//! | `resolve`, `build` or `before_release` failed | only the after hooks were left | failed |
//! | `start_instances`, `switch`, `confirm` or `watch` failed | roll back (it was about to) | rolled_back |
//! | `switch` succeeded | finish what is left after the switch | succeeded (or rolled_back if the confirm or the watch fails) |
//! | a redeploy, or a deploy that found nothing to change | finish: `post_deploy`, after hooks | succeeded |
//! | anything else: the switch had not happened | roll back | rolled_back |
//!
//! `switch` succeeded is recorded in the same transaction as the new current release
//! (`Store::commit_switch`), so it is the point of no return both ways.

use crate::pipeline::model::{Operation, OperationKind, OperationState, Step, StepStatus};
use crate::pipeline::progress::Progress;

/// What recovery does with an interrupted operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Course {
    /// The new release serves: run what is left after the switch. `rolled_out: false` is
    /// a deploy that had nothing to switch (a redeploy): only its hooks are left.
    Finish { rolled_out: bool },
    /// Put back the release that served before, then `after_<op>_failure`.
    RollBack,
    /// The outcome was decided before the server stopped; only the after hooks may be left.
    Decided(OperationState),
    /// Run the teardown again.
    Teardown,
}

/// The steps whose failure ends an operation with nothing changed.
const BEFORE_ANY_CHANGE: [Step; 3] = [Step::Resolve, Step::Build, Step::BeforeRelease];
/// The steps whose failure makes the rollout roll back.
const ROLLING_BACK: [Step; 4] = [
    Step::StartInstances,
    Step::Switch,
    Step::Confirm,
    Step::Watch,
];

pub fn course(kind: OperationKind, progress: &Progress) -> Course {
    if kind == OperationKind::Teardown {
        return Course::Teardown;
    }
    match progress.status(Step::Rollback) {
        Some(StepStatus::Running) => return Course::RollBack,
        Some(StepStatus::Failed) => return Course::Decided(OperationState::RollbackFailed),
        Some(_) => return Course::Decided(OperationState::RolledBack),
        None => {}
    }
    let failed = |step: &Step| progress.status(*step) == Some(StepStatus::Failed);
    if BEFORE_ANY_CHANGE.iter().any(failed) {
        return Course::Decided(OperationState::Failed);
    }
    if ROLLING_BACK.iter().any(failed) {
        return Course::RollBack;
    }
    if progress.succeeded(Step::Switch) {
        return Course::Finish { rolled_out: true };
    }
    if had_nothing_to_change(kind, progress) {
        return Course::Finish { rolled_out: false };
    }
    Course::RollBack
}

/// A redeploy never changes what runs; a deploy that found no change went from its
/// build straight to `post_deploy` or its after hooks, starting and stopping nothing.
fn had_nothing_to_change(kind: OperationKind, progress: &Progress) -> bool {
    let touched_instances = [Step::StopOld, Step::StartInstances, Step::Switch]
        .iter()
        .any(|step| progress.status(*step).is_some());
    let reached_the_hooks =
        progress.status(Step::PostDeploy).is_some() || progress.status(Step::AfterHooks).is_some();
    match kind {
        OperationKind::Redeploy => !touched_instances,
        OperationKind::Deploy => {
            let only_its_steps = progress.recorded().all(|step| {
                matches!(
                    step,
                    Step::Resolve | Step::Build | Step::PostDeploy | Step::AfterHooks
                )
            });
            !touched_instances
                && only_its_steps
                && reached_the_hooks
                && progress.ended(Step::Resolve)
                && progress.ended(Step::Build)
        }
        _ => false,
    }
}

/// Where the operation stood, for its log: "while step `deploy_hook` was running".
pub fn stopped_at(op: &Operation, progress: &Progress) -> String {
    match op.step {
        Some(step) if progress.interrupted(step) => format!("while step `{step}` was running"),
        Some(step) => format!("after step `{step}` had ended"),
        None => "before its first step".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::model::StepRecord;
    use StepStatus::{Failed, Running, Skipped, Succeeded, Warning};

    fn progress(steps: &[(Step, StepStatus)]) -> Progress {
        let records: Vec<StepRecord> = steps
            .iter()
            .map(|(step, status)| StepRecord {
                step: *step,
                status: *status,
                started_at: 0,
                finished_at: None,
                message: None,
            })
            .collect();
        Progress::resumed(&records)
    }

    fn deploy(steps: &[(Step, StepStatus)]) -> Course {
        course(OperationKind::Deploy, &progress(steps))
    }

    const SWITCHED: [(Step, StepStatus); 6] = [
        (Step::Resolve, Succeeded),
        (Step::Build, Succeeded),
        (Step::BeforeRelease, Succeeded),
        (Step::StartInstances, Succeeded),
        (Step::DeployHook, Succeeded),
        (Step::Switch, Succeeded),
    ];

    #[test]
    fn before_the_switch_every_step_rolls_back() {
        let mut steps = Vec::new();
        for step in [
            Step::Resolve,
            Step::Build,
            Step::BeforeRelease,
            Step::StopOld,
            Step::StartInstances,
            Step::DeployHook,
            Step::Switch,
        ] {
            steps.push((step, Running));
            assert_eq!(deploy(&steps), Course::RollBack, "interrupted in {step}");
            steps.pop();
            steps.push((step, Succeeded));
        }
        assert_eq!(deploy(&[]), Course::RollBack, "before any step");
    }

    #[test]
    fn after_the_switch_every_step_finishes() {
        for step in [
            Step::Drain,
            Step::Confirm,
            Step::StopOld,
            Step::PostDeploy,
            Step::Watch,
            Step::AfterHooks,
        ] {
            let mut steps = SWITCHED.to_vec();
            steps.push((step, Running));
            assert_eq!(
                deploy(&steps),
                Course::Finish { rolled_out: true },
                "interrupted in {step}"
            );
        }
        assert_eq!(deploy(&SWITCHED), Course::Finish { rolled_out: true });
    }

    #[test]
    fn a_failure_keeps_its_meaning() {
        let built_badly = [(Step::Resolve, Succeeded), (Step::Build, Failed)];
        assert_eq!(
            deploy(&built_badly),
            Course::Decided(OperationState::Failed)
        );
        let unhealthy = [(Step::Build, Succeeded), (Step::StartInstances, Failed)];
        assert_eq!(deploy(&unhealthy), Course::RollBack);
        let mut watch_failed = SWITCHED.to_vec();
        watch_failed.push((Step::Watch, Failed));
        assert_eq!(deploy(&watch_failed), Course::RollBack);
        watch_failed.push((Step::Rollback, Running));
        assert_eq!(deploy(&watch_failed), Course::RollBack);
        watch_failed.pop();
        watch_failed.push((Step::Rollback, Succeeded));
        watch_failed.push((Step::AfterHooks, Running));
        assert_eq!(
            deploy(&watch_failed),
            Course::Decided(OperationState::RolledBack)
        );
        let rollback_failed = [(Step::StartInstances, Failed), (Step::Rollback, Failed)];
        assert_eq!(
            deploy(&rollback_failed),
            Course::Decided(OperationState::RollbackFailed)
        );
    }

    #[test]
    fn a_deploy_with_nothing_to_change_finishes_its_hooks() {
        let unchanged = [
            (Step::Resolve, Succeeded),
            (Step::Build, Skipped),
            (Step::PostDeploy, Running),
        ];
        assert_eq!(deploy(&unchanged), Course::Finish { rolled_out: false });
        let redeploy = progress(&[(Step::PostDeploy, Warning)]);
        assert_eq!(
            course(OperationKind::Redeploy, &redeploy),
            Course::Finish { rolled_out: false }
        );
        // A cancelled before_release stays `running` in the record: not "nothing to change".
        let cancelled = [
            (Step::Resolve, Succeeded),
            (Step::Build, Succeeded),
            (Step::BeforeRelease, Running),
            (Step::AfterHooks, Running),
        ];
        assert_eq!(deploy(&cancelled), Course::RollBack);
    }

    #[test]
    fn other_kinds_follow_the_switch_and_a_teardown_runs_again() {
        let restart = progress(&[(Step::StartInstances, Running)]);
        assert_eq!(course(OperationKind::Restart, &restart), Course::RollBack);
        let scaled = progress(&[(Step::StartInstances, Succeeded), (Step::Switch, Succeeded)]);
        assert_eq!(
            course(OperationKind::Scale, &scaled),
            Course::Finish { rolled_out: true }
        );
        let teardown = progress(&[(Step::StopOld, Running)]);
        assert_eq!(course(OperationKind::Teardown, &teardown), Course::Teardown);
    }
}
