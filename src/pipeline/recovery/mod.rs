//! What a server does when it starts after being stopped or killed, in two halves.
//!
//! At start (`recover`, before the router takes traffic), for every operation left
//! `running`: decide its course from its recorded steps (`plan`), write that decision
//! down before anything changes (a second crash then takes the same course), and say it
//! in the operation's log. Then kill the processes the database does not know (a hook of
//! the killed server), and route every environment to the one release that will serve:
//! the new one for an operation being finished, the old one for one being rolled back.
//!
//! Then, in each environment's worker and before anything queued there (`resume`): the
//! rest — stopping the instances of the release that lost, what was left of the steps
//! after the switch, the after hooks — and the final state.

pub mod plan;
pub mod resume;

use std::collections::HashMap;

use crate::ids::{EnvKey, OperationId};
use crate::pipeline::log::Masker;
use crate::pipeline::model::{InstanceRecord, Operation, Step, StepRecord, StepStatus};
use crate::pipeline::plan as release_plan;
use crate::pipeline::progress::Progress;
use crate::pipeline::rollout::{backends, of_operation};
use crate::pipeline::traits::EffectResult;
use crate::pipeline::worker::Pipeline;
use plan::Course;

/// An interrupted operation, with what recovery decided for it, waiting for its worker.
pub struct Resumption {
    pub op: Operation,
    pub course: Course,
    pub progress: Progress,
}

/// Which of an environment's instances the router may use while its interrupted
/// operation is resumed.
#[derive(Clone, Copy, Debug)]
enum Routing {
    /// Those of the serving release, except this operation's (it is rolled back).
    Without(OperationId),
    /// This operation's only (it is finished; the old instances are about to stop).
    Only(OperationId),
    /// None: the environment is being torn down.
    Nothing,
}

impl Pipeline {
    /// Decides the course of interrupted operations and restores routing. Call once at
    /// start, before the router takes traffic and before `start_queued`, which hands the
    /// interrupted operations to their workers.
    pub async fn recover(&self) -> EffectResult<()> {
        let store = &self.fx.store;
        let mut routing = HashMap::new();
        for op in store.running_operations().await? {
            let progress = Progress::resumed(&store.steps(op.id).await?);
            let course = plan::course(op.kind, &progress);
            let line = format!(
                "==> recovering after a server restart: the server stopped {}; {}",
                plan::stopped_at(&op, &progress),
                intent(&op, course, &progress)
            );
            self.log(&op, Masker::default()).line(line).await;
            match course {
                Course::RollBack => {
                    if !progress.interrupted(Step::Rollback) {
                        // Recorded before the current release moves back, so that a crash
                        // in between cannot make the next start finish the rollout instead.
                        let decided = StepRecord {
                            step: Step::Rollback,
                            status: StepStatus::Running,
                            started_at: self.fx.clock.now_millis(),
                            finished_at: None,
                            message: None,
                        };
                        store.record_step(op.id, &decided).await?;
                    }
                    if progress.succeeded(Step::Switch) {
                        store
                            .set_current_release(&op.env, op.release_before)
                            .await?;
                    }
                    routing.insert(op.env.clone(), Routing::Without(op.id));
                }
                Course::Finish { rolled_out: true } => {
                    routing.insert(op.env.clone(), Routing::Only(op.id));
                }
                Course::Teardown => {
                    routing.insert(op.env.clone(), Routing::Nothing);
                }
                Course::Finish { rolled_out: false } | Course::Decided(_) => {}
            }
            tracing::warn!(operation = %op.id, ?course, "resuming an operation the previous server left running");
            self.queue_resumption(Resumption {
                op,
                course,
                progress,
            });
        }
        // A hook that was running when the server was killed, or an instance started but
        // not yet recorded, must not go on unseen.
        let known = store.instances(None).await?;
        for reaped in self.fx.runtime.reap_unknown(&known).await {
            tracing::warn!(%reaped, "stopped a process left by the previous server");
        }
        self.restore_routes(&routing).await
    }

    /// Points the router at the running instances of each environment's serving release
    /// (narrowed by `routing` where an interrupted operation is resumed), and forgets
    /// instances that are no longer running.
    async fn restore_routes(&self, routing: &HashMap<EnvKey, Routing>) -> EffectResult<()> {
        let store = &self.fx.store;
        for env in store.environments().await? {
            let mut alive = Vec::new();
            for instance in store.instances(Some(&env)).await? {
                if self.fx.runtime.is_running(&instance).await {
                    alive.push(instance);
                } else {
                    tracing::warn!(instance = %instance.id, "an instance died while the server was stopped");
                    store.remove_instance(&instance.id).await?;
                }
            }
            let Some(release) = store.current_release(&env).await? else {
                continue;
            };
            let Ok(config) = self
                .fx
                .sources
                .config_of_artifact(&release.artifact, &env.app)
                .await
            else {
                tracing::error!(%env, "the configuration of the serving release cannot be read; not routed");
                continue;
            };
            let routed = release_plan::routed_service(&config);
            let allowed = |i: &InstanceRecord| match routing.get(&env) {
                None => true,
                Some(Routing::Without(op)) => !of_operation(i, *op),
                Some(Routing::Only(op)) => of_operation(i, *op),
                Some(Routing::Nothing) => false,
            };
            let serving = alive
                .iter()
                .filter(|i| i.release == release.number && Some(&i.service) == routed)
                .filter(|i| allowed(i));
            self.fx.traffic.switch(&env, backends(serving)).await;
            let exposure = release_plan::exposure(&config, &env);
            if let Err(error) = self.fx.traffic.expose(&env, &exposure).await {
                tracing::error!(%env, %error, "the environment's own port is not served");
            }
        }
        Ok(())
    }
}

/// What recovery will do, in words, for the log.
fn intent(op: &Operation, course: Course, progress: &Progress) -> String {
    let before = op
        .release_before
        .map_or("no release".to_owned(), |r| r.to_string());
    let after = op
        .release_after
        .map_or("the new release".to_owned(), |r| r.to_string());
    match course {
        Course::Finish { rolled_out: true } => {
            format!(
                "the switch to {after} had happened: finishing the {}",
                op.kind
            )
        }
        Course::Finish { rolled_out: false } => {
            format!("nothing needed to change: finishing the {}", op.kind)
        }
        Course::RollBack if progress.status(Step::Rollback).is_some() => {
            format!("it was rolling back: finishing the rollback to {before}")
        }
        Course::RollBack => {
            format!("the switch had not happened: rolling back to {before}")
        }
        Course::Decided(state) => {
            format!("it had already ended {state}: only its after hooks were left")
        }
        Course::Teardown => "running the teardown again".to_owned(),
    }
}
