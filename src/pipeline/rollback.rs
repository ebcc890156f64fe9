//! Putting the old release back after a failed rollout: traffic to the old instances,
//! which were kept running for exactly that, the current release reset, the new
//! instances stopped, and old instances that had to stop first started again. Also what a
//! restarted server does with an operation it rolls back.

use crate::pipeline::health::wait_healthy;
use crate::pipeline::model::{InstanceRecord, Step};
use crate::pipeline::plan;
use crate::pipeline::rollout::{backends, context, Changes, Outcome, Rollout, Target};
use crate::pipeline::steps::StepEnd;

impl Rollout<'_> {
    /// Puts the old release back: traffic to the old instances, new ones stopped, old
    /// ones that were stopped first started again.
    pub(crate) async fn roll_back(
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
            // The environment answers where the release serving again says: a port the
            // failed release opened is closed, one it closed is opened again.
            let exposure = target
                .previous
                .as_ref()
                .map(|(_, config)| plan::exposure(config, env))
                .unwrap_or_default();
            if let Err(error) = self.fx.traffic.expose(env, &exposure).await {
                self.steps.log.line(format!("    {error}")).await;
            }
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
