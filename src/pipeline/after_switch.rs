//! What a rollout does once traffic is on the new release: drain the old instances,
//! confirm through the router that the new release answers, stop the old instances,
//! `post_deploy`, and the `watch` (which keeps the old instances, on standby at the
//! router for retries, until it passes). A server that restarts after the switch goes on
//! from here too, skipping what its predecessor recorded as done.

use std::time::Duration;

use crate::config::model::HealthCheck;
use crate::pipeline::health::{details, timing};
use crate::pipeline::hooks::run_hook;
use crate::pipeline::model::{InstanceRecord, Step};
use crate::pipeline::plan;
use crate::pipeline::progress::{HookCourse, Progress, NOT_RUN_AGAIN};
use crate::pipeline::rollout::{
    backends, context, Changes, Outcome, Rollout, Target, DRAIN_DEADLINE, WATCH_CHECK_EVERY,
};
use crate::pipeline::steps::StepEnd;

/// How long after a failed health check the watch waits to be told that the instance
/// exited, so that a crash is reported as one (its port closes before its exit is told).
const EXIT_TOLD_WITHIN: Duration = Duration::from_millis(100);

impl Rollout<'_> {
    /// Everything after the switch. `old` are the instances the new release replaces;
    /// `progress` is what a previous server already did (nothing, for a fresh rollout).
    pub(crate) async fn after_switch(
        &self,
        target: &Target,
        old: &[InstanceRecord],
        changes: Changes,
        progress: &Progress,
    ) -> Outcome {
        let env = &self.op.env;
        let routed = plan::routed_service(&target.config).cloned();
        let old_routed = target
            .previous
            .as_ref()
            .and_then(|p| plan::routed_service(&p.1));
        let old_backends = backends(
            old.iter()
                .filter(|i| !changes.stopped_old.contains(i) && Some(&i.service) == old_routed),
        );

        let watch = routed
            .as_ref()
            .and_then(|name| target.config.services.get(name))
            .and_then(|s| s.http.as_ref())
            .map_or(Duration::ZERO, |http| http.watch);
        // The old release runs on through the watch: a GET or HEAD that cannot reach a new
        // instance (one that crashed) is tried on it rather than failed.
        let standby = !watch.is_zero() && !old_backends.is_empty();
        if standby {
            self.fx.traffic.standby(env, old_backends.clone()).await;
        }

        if !progress.is_resumed() {
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
        } else if progress.interrupted(Step::Drain) {
            // The requests being drained went through the router that died with the old
            // server; the new router never sent anything to the old instances.
            self.steps
                .interrupted(
                    Step::Drain,
                    "the requests in flight through the stopped server were cut with it",
                )
                .await;
        }

        if routed.is_some() && !progress.succeeded(Step::Confirm) {
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
                return self.roll_back(target, old, changes, error).await;
            }
        }

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
                let ctx = context(self.op, &target.release, &target.config);
                let specs = ctx.hook("post_deploy", hook);
                let body = async {
                    Ok::<_, String>(
                        match run_hook(self.fx, &target.release.artifact, &specs, &self.steps.log)
                            .await
                        {
                            Ok(()) => StepEnd::Done(()),
                            Err(error) => StepEnd::Warning(
                                (),
                                format!("post_deploy hook failed: {error}; no rollback"),
                            ),
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
        }

        if !watch.is_zero() {
            if !progress.ended(Step::Watch) {
                let left = progress.watch_left(watch, self.fx.clock.now_millis());
                if left < watch {
                    self.steps
                        .log
                        .line(format!(
                            "    the watch goes on: {} of {} left",
                            crate::pipeline::format_duration(left),
                            crate::pipeline::format_duration(watch)
                        ))
                        .await;
                }
                let watched = self
                    .steps
                    .run(Step::Watch, self.watch(&changes.started, target, left))
                    .await;
                if let Err(error) = watched {
                    return self.roll_back(target, old, changes, error).await;
                }
            }
            if standby {
                self.fx.traffic.standby(env, Vec::new()).await;
                // A retry it took a moment ago finishes before the old release stops.
                self.fx.traffic.drain(&old_backends, DRAIN_DEADLINE).await;
            }
            self.stop_old_step(&still_old, target).await;
        }
        Outcome::Succeeded
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
                    // A check that failed because the instance just exited says so; the
                    // exit may be told a moment after its port closed.
                    let exited = !self.fx.runtime.is_running(instance).await
                        || tokio::time::timeout(
                            EXIT_TOLD_WITHIN,
                            self.fx.runtime.wait_exit(instance),
                        )
                        .await
                        .is_ok();
                    if exited {
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

    pub(crate) async fn stop_old_step(&self, old: &[InstanceRecord], target: &Target) {
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
}
