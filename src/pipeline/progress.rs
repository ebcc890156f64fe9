//! How far an operation got, as its recorded steps say: what an operation that a new
//! server resumes must not do again. A fresh operation has done nothing, so every step
//! runs; a resumed one skips the steps that ended, and does not run again a hook that
//! had started, because a hook (a migration, an import, a notification) may not be safe
//! to run twice.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::pipeline::model::{Step, StepRecord, StepStatus};

/// The recorded steps of an operation, by step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    steps: BTreeMap<Step, StepRecord>,
    resumed: bool,
}

/// What to do about a hook step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookCourse {
    Run,
    /// It ended before the restart.
    Done,
    /// It had started when the server stopped: recorded as a warning, not run again.
    Interrupted,
}

/// What the log and the step record say about a step that the restart interrupted.
pub const NOT_RUN_AGAIN: &str =
    "interrupted when the server stopped; not run again, since a hook may not be safe to repeat";

impl Progress {
    /// An operation starting now: nothing is done.
    pub fn fresh() -> Progress {
        Progress::default()
    }

    /// An operation a killed server left running, with the steps it recorded.
    pub fn resumed(steps: &[StepRecord]) -> Progress {
        Progress {
            steps: steps.iter().map(|s| (s.step, s.clone())).collect(),
            resumed: true,
        }
    }

    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// The steps recorded, in pipeline order.
    pub fn recorded(&self) -> impl Iterator<Item = Step> + '_ {
        self.steps.keys().copied()
    }

    pub fn status(&self, step: Step) -> Option<StepStatus> {
        self.steps.get(&step).map(|s| s.status)
    }

    /// The step ended (succeeded, warned, skipped or failed) before the restart.
    pub fn ended(&self, step: Step) -> bool {
        self.status(step)
            .is_some_and(|status| status != StepStatus::Running)
    }

    /// The step had started and not ended when the server stopped.
    pub fn interrupted(&self, step: Step) -> bool {
        self.status(step) == Some(StepStatus::Running)
    }

    pub fn succeeded(&self, step: Step) -> bool {
        self.status(step) == Some(StepStatus::Succeeded)
    }

    pub fn hook(&self, step: Step) -> HookCourse {
        if self.interrupted(step) {
            HookCourse::Interrupted
        } else if self.ended(step) {
            HookCourse::Done
        } else {
            HookCourse::Run
        }
    }

    /// How much of a `watch` is left at `now` (Unix ms). A watch that the restart
    /// interrupted goes on from where it was, counted from when it started: the new
    /// release has served all that time, and the resumed watch checks it at least once
    /// more before the old release is stopped.
    pub fn watch_left(&self, watch: Duration, now: i64) -> Duration {
        match self.steps.get(&Step::Watch) {
            Some(record) if record.status == StepStatus::Running => {
                let elapsed = u64::try_from(now - record.started_at).unwrap_or(0);
                watch.saturating_sub(Duration::from_millis(elapsed))
            }
            _ => watch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: Step, status: StepStatus, started_at: i64) -> StepRecord {
        StepRecord {
            step,
            status,
            started_at,
            finished_at: None,
            message: None,
        }
    }

    #[test]
    fn a_fresh_operation_runs_every_hook_and_the_whole_watch() {
        let fresh = Progress::fresh();
        assert_eq!(fresh.hook(Step::PostDeploy), HookCourse::Run);
        assert_eq!(
            fresh.watch_left(Duration::from_secs(30), 1_000_000),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn a_started_hook_is_not_run_again_and_a_watch_goes_on_where_it_was() {
        let progress = Progress::resumed(&[
            record(Step::PostDeploy, StepStatus::Running, 0),
            record(Step::AfterHooks, StepStatus::Warning, 0),
            record(Step::Watch, StepStatus::Running, 10_000),
        ]);
        assert_eq!(progress.hook(Step::PostDeploy), HookCourse::Interrupted);
        assert_eq!(progress.hook(Step::AfterHooks), HookCourse::Done);
        assert_eq!(progress.hook(Step::DeployHook), HookCourse::Run);
        let watch = Duration::from_secs(30);
        assert_eq!(progress.watch_left(watch, 22_000), Duration::from_secs(18));
        assert_eq!(progress.watch_left(watch, 90_000), Duration::ZERO);
        // A clock that went backwards does not lengthen the watch.
        assert_eq!(progress.watch_left(watch, 0), watch);
    }
}
