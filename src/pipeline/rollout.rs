//! The rollout of a release up to its point of no return: `before_release`, stopping the
//! services that may not run twice, starting the new instances and waiting until they
//! are healthy, the `deploy` hook with requests held, and the switch. What follows the
//! switch is in `after_switch.rs`, switching back on failure in `rollback.rs`. Every
//! operation kind that changes what runs goes through here.

use std::time::Duration;

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::config::model::AppConfig;
use crate::ids::OperationId;
use crate::pipeline::health::wait_healthy;
use crate::pipeline::hooks::run_hook;
use crate::pipeline::model::{InstanceRecord, Operation, Release, Step};
use crate::pipeline::plan::{self, ReleaseContext};
use crate::pipeline::progress::Progress;
use crate::pipeline::steps::{StepEnd, StepRecorder};
use crate::pipeline::traits::{Backend, Effects};

/// How long the router may take to finish requests in flight to old instances.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// During the watch, health checks come at the check's interval, but at least this often.
pub const WATCH_CHECK_EVERY: Duration = Duration::from_millis(500);

/// A release to roll out, with the one it replaces.
pub struct Target {
    pub release: Release,
    pub config: AppConfig,
    pub previous: Option<(Release, AppConfig)>,
    pub run_before_release: bool,
    /// Run the `deploy` and `post_deploy` hooks.
    pub run_deploy_hooks: bool,
}

/// How a rollout ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Failed before anything changed.
    Failed(String),
    /// Failed; the old release serves again.
    RolledBack(String),
    /// Failed, and so did putting the old release back.
    RollbackFailed(String),
    /// Cancelled by an operator; the old release serves.
    Cancelled,
}

pub struct Rollout<'a> {
    pub fx: &'a Effects,
    pub op: &'a Operation,
    pub steps: &'a StepRecorder,
    pub cancel: &'a CancellationToken,
}

/// What the rollout has changed so far, so that a rollback can undo exactly that.
#[derive(Default)]
pub(crate) struct Changes {
    /// The new instances (all this operation's).
    pub started: Vec<InstanceRecord>,
    /// Old instances stopped before the new ones started (`zero_downtime: false`).
    pub stopped_old: Vec<InstanceRecord>,
    /// Traffic (and the current release) may have moved to the new release.
    pub switched: bool,
}

impl Rollout<'_> {
    pub async fn run(&self, target: &Target) -> Outcome {
        let env = &self.op.env;
        let log = &self.steps.log;
        let ctx = context(self.op, &target.release, &target.config);
        let old: Vec<InstanceRecord> = match self.fx.store.instances(Some(env)).await {
            Ok(all) => all
                .into_iter()
                .filter(|i| !of_operation(i, self.op.id))
                .collect(),
            Err(error) => {
                return Outcome::Failed(format!("could not list the running instances: {error}"))
            }
        };
        let mut changes = Changes::default();

        if target.run_before_release {
            if let Some(hook) = &target.config.hooks.before_release {
                let specs = ctx.hook("before_release", hook);
                let body = async {
                    run_hook(self.fx, &target.release.artifact, &specs, log)
                        .await
                        .map(StepEnd::Done)
                };
                let result = tokio::select! {
                    result = self.steps.run(Step::BeforeRelease, body) => result,
                    () = self.cancel.cancelled() => return Outcome::Cancelled,
                };
                if let Err(error) = result {
                    return Outcome::Failed(format!(
                        "before_release failed: {error}; nothing changed"
                    ));
                }
            }
        }
        if self.cancel.is_cancelled() {
            return Outcome::Cancelled;
        }

        // Services that may not run two releases side by side stop first.
        let stop_first: Vec<InstanceRecord> = old
            .iter()
            .filter(|i| {
                target
                    .config
                    .services
                    .get(&i.service)
                    .is_some_and(|s| !s.zero_downtime)
            })
            .cloned()
            .collect();
        if !stop_first.is_empty() {
            let body = async {
                let old_routed = target
                    .previous
                    .as_ref()
                    .and_then(|p| plan::routed_service(&p.1));
                let remaining = backends(
                    old.iter()
                        .filter(|i| !stop_first.contains(i) && Some(&i.service) == old_routed),
                );
                self.fx.traffic.switch(env, remaining).await;
                self.stop_all(&stop_first, target.previous.as_ref().map(|p| &p.1))
                    .await;
                Ok::<_, String>(StepEnd::Done(()))
            };
            let _ = self.steps.run(Step::StopOld, body).await;
            changes.stopped_old = stop_first;
        }

        let start = self.steps.run(
            Step::StartInstances,
            self.start_all(&ctx, target, &mut changes),
        );
        let started = tokio::select! {
            result = start => result,
            () = self.cancel.cancelled() => Err("cancelled".to_owned()),
        };
        if let Err(error) = started {
            return self.roll_back(target, &old, changes, error).await;
        }
        if self.cancel.is_cancelled() {
            return self
                .roll_back(target, &old, changes, "cancelled".into())
                .await;
        }

        let routed = plan::routed_service(&target.config).cloned();
        let new_backends = backends(
            changes
                .started
                .iter()
                .filter(|i| Some(&i.service) == routed.as_ref()),
        );
        // The environment's own port and domain, as the new release names them, are open
        // before it takes traffic: a port that is taken fails the deploy, nothing changed.
        let exposure = plan::exposure(&target.config, env);
        if let Err(error) = self.fx.traffic.expose(env, &exposure).await {
            return self.roll_back(target, &old, changes, error).await;
        }
        let deploy_hook = target
            .config
            .hooks
            .deploy
            .as_ref()
            .filter(|_| target.run_deploy_hooks && routed.is_some());
        if let Some(hook) = deploy_hook {
            self.fx
                .traffic
                .hold(env, target.config.hooks.deploy_hold)
                .await;
            let specs = ctx.hook("deploy", hook);
            let body = async {
                Ok::<_, String>(
                    match run_hook(self.fx, &target.release.artifact, &specs, log).await {
                        Ok(()) => StepEnd::Done(()),
                        Err(error) => StepEnd::Warning(
                            (),
                            format!("deploy hook failed: {error}; the deploy goes on"),
                        ),
                    },
                )
            };
            let _ = self.steps.run(Step::DeployHook, body).await;
        }

        // The point of no return: the new current release and the step's success are
        // one store call, so a restarted server never finds one without the other.
        let switch = async {
            if routed.is_some() {
                self.fx.traffic.switch(env, new_backends.clone()).await;
            }
            self.fx
                .store
                .commit_switch(
                    self.op.id,
                    env,
                    target.release.number,
                    self.fx.clock.now_millis(),
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(StepEnd::Done(()))
        };
        let switched = self.steps.run(Step::Switch, switch).await;
        self.fx.traffic.release_hold(env).await;
        changes.switched = true;
        if let Err(error) = switched {
            return self.roll_back(target, &old, changes, error).await;
        }
        self.after_switch(target, &old, changes, &Progress::fresh())
            .await
    }

    async fn start_all(
        &self,
        ctx: &ReleaseContext<'_>,
        target: &Target,
        changes: &mut Changes,
    ) -> Result<StepEnd<()>, String> {
        let log = &self.steps.log;
        for spec in ctx.instances(&target.release.artifact) {
            let instance = self
                .fx
                .runtime
                .start(&spec, log)
                .await
                .map_err(|e| format!("{}.{} did not start: {e}", spec.service, spec.index))?;
            if let Err(error) = self.fx.store.save_instance(&instance).await {
                changes.started.push(instance);
                return Err(format!("could not record the instance: {error}"));
            }
            changes.started.push(instance);
        }
        let checks = changes.started.iter().filter_map(|instance| {
            let service = target.config.services.get(&instance.service)?;
            let check = plan::health_check(service)?;
            Some(async move {
                let result = wait_healthy(
                    self.fx.runtime.as_ref(),
                    instance,
                    &check,
                    &target.release.artifact,
                )
                .await;
                (instance, result)
            })
        });
        let mut failures = Vec::new();
        for (instance, result) in join_all(checks).await {
            let name = format!("{}.{}", instance.service, instance.index);
            match result {
                Ok(took) => {
                    log.line(format!(
                        "    {name} healthy after {}",
                        crate::pipeline::format_duration(took)
                    ))
                    .await
                }
                Err(why) => failures.push(format!("{name} {why}")),
            }
        }
        if failures.is_empty() {
            Ok(StepEnd::Done(()))
        } else {
            Err(failures.join("; "))
        }
    }

    /// Stops instances concurrently, each with its service's `stop_timeout`, and forgets them.
    pub async fn stop_all(&self, instances: &[InstanceRecord], config: Option<&AppConfig>) {
        let log = &self.steps.log;
        let stops = instances.iter().map(|instance| async move {
            let grace = config
                .and_then(|c| c.services.get(&instance.service))
                .map_or(crate::config::model::DEFAULT_STOP_TIMEOUT, |s| {
                    s.stop_timeout
                });
            let outcome = self.fx.runtime.stop(instance, grace).await;
            (instance, grace, outcome)
        });
        for (instance, grace, outcome) in join_all(stops).await {
            let name = format!(
                "{}.{} ({})",
                instance.service, instance.index, instance.release
            );
            let line = match outcome {
                Ok(crate::pipeline::traits::StopOutcome::Exited) => {
                    format!("    {name} stopped on SIGTERM")
                }
                Ok(crate::pipeline::traits::StopOutcome::Killed) => format!(
                    "    {name} ignored SIGTERM for {}: killed with SIGKILL",
                    crate::pipeline::format_duration(grace)
                ),
                Ok(crate::pipeline::traits::StopOutcome::AlreadyGone) => {
                    format!("    {name} was no longer running")
                }
                Err(error) => format!("    {name} could not be stopped: {error}"),
            };
            log.line(line).await;
            if let Err(error) = self.fx.store.remove_instance(&instance.id).await {
                tracing::error!(instance = %instance.id, %error, "could not forget a stopped instance");
            }
        }
    }
}

/// The release context of an operation.
pub fn context<'a>(
    op: &'a Operation,
    release: &'a Release,
    config: &'a AppConfig,
) -> ReleaseContext<'a> {
    ReleaseContext {
        env: &op.env,
        release: release.number,
        commit: release.commit.as_deref(),
        operation: op.id,
        kind: op.kind,
        config,
        scale: &release.scale,
        variables: &release.variables,
    }
}

/// Whether an instance was started by operation `op` (its id ends in `-op<id>`, see
/// `InstanceSpec::instance_id`): a restart's new instances have the old ones' release.
pub fn of_operation(instance: &InstanceRecord, op: OperationId) -> bool {
    instance.id.ends_with(&format!("-op{op}"))
}

/// The router backends of instances that take HTTP.
pub fn backends<'a>(instances: impl Iterator<Item = &'a InstanceRecord>) -> Vec<Backend> {
    instances
        .filter_map(|i| {
            let address = i.address.clone()?;
            Some(Backend {
                address,
                release: i.release,
                instance: i.id.clone(),
            })
        })
        .collect()
}
