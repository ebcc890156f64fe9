//! The rollout of a release: start new instances, wait until they are healthy, hold
//! traffic for the `deploy` hook, switch, drain, confirm, `post_deploy`, watch, stop the
//! old instances — and, when any of that fails, switch back to the old instances that
//! were kept for exactly that. Every operation kind that changes what runs ends here.

use std::time::Duration;

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::config::model::{AppConfig, HealthCheck};
use crate::pipeline::health::{details, timing, wait_healthy};
use crate::pipeline::hooks::run_hook;
use crate::pipeline::model::{InstanceRecord, Operation, Release, Step};
use crate::pipeline::plan::{self, ReleaseContext};
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
struct Changes {
    started: Vec<InstanceRecord>,
    stopped_old: Vec<InstanceRecord>,
    switched: bool,
}

impl Rollout<'_> {
    pub async fn run(&self, target: &Target) -> Outcome {
        let env = &self.op.env;
        let log = &self.steps.log;
        let ctx = context(self.op, &target.release, &target.config);
        let old: Vec<InstanceRecord> = match self.fx.store.instances(Some(env)).await {
            Ok(all) => all
                .into_iter()
                .filter(|i| !i.id.ends_with(&format!("-op{}", self.op.id)))
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
        let old_routed = target
            .previous
            .as_ref()
            .and_then(|p| plan::routed_service(&p.1));
        let old_backends = backends(
            old.iter()
                .filter(|i| !changes.stopped_old.contains(i) && Some(&i.service) == old_routed),
        );
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

        let switch = async {
            if routed.is_some() {
                self.fx.traffic.switch(env, new_backends.clone()).await;
            }
            self.fx
                .store
                .set_current_release(env, Some(target.release.number))
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

        if !old_backends.is_empty() {
            let drain = async {
                let left = self.fx.traffic.drain(&old_backends, DRAIN_DEADLINE).await;
                Ok::<_, String>(match left {
                    0 => StepEnd::Done(()),
                    n => StepEnd::Warning(
                        (),
                        format!("{n} request(s) still in flight after {DRAIN_DEADLINE:?}"),
                    ),
                })
            };
            let _ = self.steps.run(Step::Drain, drain).await;
        }

        if routed.is_some() {
            let expected = target.release.number;
            let confirm = async {
                match self.fx.traffic.probe(env).await {
                    Ok(release) if release == expected => Ok(StepEnd::Done(())),
                    Ok(release) => Err(format!(
                        "the router answered from {release}, not {expected}"
                    )),
                    Err(error) => Err(format!("no answer through the router: {error}")),
                }
            };
            if let Err(error) = self.steps.run(Step::Confirm, confirm).await {
                return self.roll_back(target, &old, changes, error).await;
            }
        }

        let watch = routed
            .as_ref()
            .and_then(|name| target.config.services.get(name))
            .and_then(|s| s.http.as_ref())
            .map_or(Duration::ZERO, |http| http.watch);
        let still_old: Vec<InstanceRecord> = old
            .iter()
            .filter(|i| !changes.stopped_old.contains(i))
            .cloned()
            .collect();
        if watch.is_zero() {
            self.stop_old_step(&still_old, target).await;
        }

        if target.run_deploy_hooks {
            if let Some(hook) = &target.config.hooks.post_deploy {
                let specs = ctx.hook("post_deploy", hook);
                let body = async {
                    Ok::<_, String>(
                        match run_hook(self.fx, &target.release.artifact, &specs, log).await {
                            Ok(()) => StepEnd::Done(()),
                            Err(error) => StepEnd::Warning(
                                (),
                                format!("post_deploy hook failed: {error}; no rollback"),
                            ),
                        },
                    )
                };
                let _ = self.steps.run(Step::PostDeploy, body).await;
            }
        }

        if !watch.is_zero() {
            let watched = self
                .steps
                .run(Step::Watch, self.watch(&changes.started, target, watch))
                .await;
            if let Err(error) = watched {
                return self.roll_back(target, &old, changes, error).await;
            }
            self.stop_old_step(&still_old, target).await;
        }
        Outcome::Succeeded
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

    /// Keeps checking the new instances for `watch` after the switch: an instance that
    /// exits is seen as soon as the runtime tells (so that a crash switches traffic back
    /// at once), and each health check runs every `interval` of its check (at most
    /// `WATCH_CHECK_EVERY`).
    async fn watch(
        &self,
        started: &[InstanceRecord],
        target: &Target,
        watch: Duration,
    ) -> Result<StepEnd<()>, String> {
        let start = tokio::time::Instant::now();
        let until = start + watch;
        let mut watched: Vec<(&InstanceRecord, HealthCheck, tokio::time::Instant)> = started
            .iter()
            .filter_map(|instance| {
                let check = target
                    .config
                    .services
                    .get(&instance.service)
                    .and_then(plan::health_check)?;
                Some((instance, check, start))
            })
            .collect();
        let instances: Vec<&InstanceRecord> = watched.iter().map(|(i, _, _)| *i).collect();
        let exits = instances.into_iter().map(|instance| {
            Box::pin(async move {
                self.fx.runtime.wait_exit(instance).await;
                instance
            })
        });
        let mut first_exit: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> =
            if watched.is_empty() {
                Box::pin(std::future::pending())
            } else {
                Box::pin(futures_util::future::select_all(exits))
            };
        loop {
            let now = tokio::time::Instant::now();
            for (instance, check, next_check) in &mut watched {
                if now < *next_check {
                    continue;
                }
                if let Err(why) = self
                    .fx
                    .runtime
                    .check(instance, check, &target.release.artifact)
                    .await
                {
                    let name = format!("{}.{}", instance.service, instance.index);
                    // A check that failed because the instance just exited says so.
                    if !self.fx.runtime.is_running(instance).await {
                        let why = self.fx.runtime.exit_report(instance).await;
                        return Err(format!("{name} exited during the watch{}", details(why)));
                    }
                    return Err(format!(
                        "{name} failed its health check during the watch: {why}"
                    ));
                }
                let (interval, _) = timing(check);
                *next_check = now + interval.min(WATCH_CHECK_EVERY);
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return Ok(StepEnd::Done(()));
            }
            let next = watched
                .iter()
                .map(|(_, _, next_check)| *next_check)
                .min()
                .unwrap_or(until)
                .min(until);
            tokio::select! {
                (instance, _, _) = &mut first_exit => {
                    let name = format!("{}.{}", instance.service, instance.index);
                    let why = self.fx.runtime.exit_report(instance).await;
                    return Err(format!("{name} exited during the watch{}", details(why)));
                }
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }

    async fn stop_old_step(&self, old: &[InstanceRecord], target: &Target) {
        if old.is_empty() {
            return;
        }
        let body = async {
            self.stop_all(old, target.previous.as_ref().map(|p| &p.1))
                .await;
            Ok::<_, String>(StepEnd::Done(()))
        };
        let _ = self.steps.run(Step::StopOld, body).await;
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

    /// Puts the old release back: traffic to the old instances, new ones stopped, old
    /// ones that were stopped first started again.
    async fn roll_back(
        &self,
        target: &Target,
        old: &[InstanceRecord],
        changes: Changes,
        why: String,
    ) -> Outcome {
        let env = &self.op.env;
        let cancelled = self.cancel.is_cancelled();
        let body = async {
            if changes.switched || !changes.stopped_old.is_empty() {
                let old_routed = target
                    .previous
                    .as_ref()
                    .and_then(|p| plan::routed_service(&p.1));
                let kept = backends(old.iter().filter(|i| {
                    !changes.stopped_old.contains(i) && Some(&i.service) == old_routed
                }));
                self.fx.traffic.switch(env, kept).await;
                let previous = target.previous.as_ref().map(|p| p.0.number);
                self.fx
                    .store
                    .set_current_release(env, previous)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            self.stop_all(&changes.started, Some(&target.config)).await;
            if !changes.stopped_old.is_empty() {
                self.restart_stopped(target, old, &changes.stopped_old)
                    .await?;
            }
            let serving = target
                .previous
                .as_ref()
                .map_or("no release".to_owned(), |p| p.0.number.to_string());
            self.steps
                .log
                .line(format!("    rolled back: {serving} is serving"))
                .await;
            Ok::<_, String>(StepEnd::Done(()))
        };
        match self.steps.run(Step::Rollback, body).await {
            Ok(()) if cancelled => Outcome::Cancelled,
            Ok(()) => Outcome::RolledBack(why),
            Err(error) => {
                Outcome::RollbackFailed(format!("{why}; then the rollback failed: {error}"))
            }
        }
    }

    async fn restart_stopped(
        &self,
        target: &Target,
        old: &[InstanceRecord],
        stopped: &[InstanceRecord],
    ) -> Result<(), String> {
        let Some((release, config)) = &target.previous else {
            return Ok(());
        };
        let ctx = context(self.op, release, config);
        let mut restarted = Vec::new();
        for instance in stopped {
            let Some(service) = config.services.get(&instance.service) else {
                continue;
            };
            let spec = ctx.instance(
                &release.artifact,
                &instance.service,
                service,
                instance.index,
            );
            let record = self
                .fx
                .runtime
                .start(&spec, &self.steps.log)
                .await
                .map_err(|e| e.to_string())?;
            self.fx
                .store
                .save_instance(&record)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(check) = plan::health_check(service) {
                wait_healthy(self.fx.runtime.as_ref(), &record, &check, &release.artifact).await?;
            }
            restarted.push(record);
        }
        let routed = plan::routed_service(config);
        let serving = old
            .iter()
            .filter(|i| !stopped.contains(i))
            .chain(restarted.iter())
            .filter(|i| Some(&i.service) == routed);
        self.fx
            .traffic
            .switch(&self.op.env, backends(serving))
            .await;
        Ok(())
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
