//! One operation from start to end: what each kind does before and after its rollout,
//! its `after_<op>_success|failure` hooks, and the final state it records.

use tokio_util::sync::CancellationToken;

use crate::config::model::{AppConfig, HookedOperation};
use crate::pipeline::hooks::run_hook;
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::{Artifact, Operation, OperationKind, OperationState, Release, Step};
use crate::pipeline::plan;
use crate::pipeline::rollout::{context, Outcome, Rollout, Target};
use crate::pipeline::steps::{StepEnd, StepRecorder};
use crate::pipeline::traits::{BuildSpec, Effects, NewRelease};

/// Runs an operation that the worker has marked running, and returns its final state
/// and a one-line summary.
pub async fn run(fx: &Effects, op: &Operation, log: &OperationLog, cancel: &CancellationToken) -> (OperationState, String) {
    let steps = StepRecorder { fx: fx.clone(), operation: op.id, log: log.clone() };
    let runner = Runner { fx, op, steps: &steps, cancel };
    let (outcome, hooks) = match runner.prepare().await {
        Ok(Prepared::Rollout(target)) => {
            let rollout = Rollout { fx, op, steps: &steps, cancel };
            let outcome = rollout.run(&target).await;
            (outcome, Some(target.config))
        }
        Ok(Prepared::Unchanged { config, release }) => (runner.redeploy(&config, &release).await, Some(config)),
        Err(PrepareError { why, config }) => (Outcome::Failed(why), config),
    };
    if let Some(config) = hooks {
        runner.after_hooks(&config, &outcome).await;
    }
    let (state, summary) = match outcome {
        Outcome::Succeeded => (OperationState::Succeeded, format!("{} succeeded", op.kind)),
        Outcome::Failed(why) => (OperationState::Failed, why),
        Outcome::RolledBack(why) => (OperationState::RolledBack, format!("{why}; rolled back")),
        Outcome::RollbackFailed(why) => (OperationState::RollbackFailed, why),
        Outcome::Cancelled => (OperationState::Cancelled, "cancelled; the old release serves".to_owned()),
    };
    log.line(format!("==> {state}: {summary}")).await;
    (state, summary)
}

enum Prepared {
    Rollout(Target),
    /// Nothing changed: only `post_deploy` runs.
    Unchanged { config: AppConfig, release: Release },
}

struct PrepareError {
    why: String,
    /// The config, when it could be read: its `after_*_failure` hooks still run.
    config: Option<AppConfig>,
}

impl From<String> for PrepareError {
    fn from(why: String) -> Self {
        Self { why, config: None }
    }
}

struct Runner<'a> {
    fx: &'a Effects,
    op: &'a Operation,
    steps: &'a StepRecorder,
    cancel: &'a CancellationToken,
}

impl Runner<'_> {
    async fn prepare(&self) -> Result<Prepared, PrepareError> {
        let env = &self.op.env;
        let store = &self.fx.store;
        let current = store.current_release(env).await.map_err(|e| e.to_string())?;
        let previous = match &current {
            Some(release) => {
                let config = self.fx.sources.config_of_artifact(&release.artifact, &env.app).await;
                config.ok().map(|config| (release.clone(), config))
            }
            None => None,
        };
        match self.op.kind {
            OperationKind::Deploy => self.prepare_deploy(previous).await,
            OperationKind::Redeploy => match previous {
                Some((release, config)) => Ok(Prepared::Unchanged { config, release }),
                None => Err("nothing to redeploy: this environment has no release yet".to_owned().into()),
            },
            kind => Err(format!("`{kind}` is not supported yet").into()),
        }
    }

    async fn prepare_deploy(&self, previous: Option<(Release, AppConfig)>) -> Result<Prepared, PrepareError> {
        let env = &self.op.env;
        let fx = self.fx;
        let log = &self.steps.log;
        let source = self.op.source.clone().ok_or_else(|| "a deploy needs a source".to_owned())?;
        let resolve = async {
            let fetched = fx.sources.fetch(&source, log).await.map_err(|e| e.to_string())?;
            if let Some(commit) = &fetched.commit {
                log.line(format!("    commit {commit}")).await;
                fx.store.set_operation_commit(self.op.id, commit).await.map_err(|e| e.to_string())?;
            }
            let config = match fx.sources.config_of_source(&fetched, &env.app).await {
                Ok(config) => config,
                Err(errors) => {
                    log.line(errors.to_string()).await;
                    return Err("the configuration is not valid; nothing changed".to_owned());
                }
            };
            Ok::<_, String>(StepEnd::Done((fetched, config)))
        };
        let (fetched, config) = self.steps.run(Step::Resolve, resolve).await?;
        let variables = fx.store.variables(env).await.map_err(|e| e.to_string())?;
        let key = plan::artifact_key(env.app.as_str(), &fetched.content_id, &variables);
        let build = async {
            if let Some(artifact) = fx.runtime.artifact(&key).await.map_err(|e| e.to_string())? {
                return Ok(StepEnd::Skipped(artifact, "reusing the build of this commit".to_owned()));
            }
            let env_vars = plan::build_env(env, fetched.commit.as_deref(), self.op.id, &variables);
            let spec = BuildSpec {
                env: env.clone(),
                source_dir: fetched.dir.clone(),
                artifact_key: key.clone(),
                commit: fetched.commit.clone(),
                hook: config.build.hook.as_ref().map(|hook| crate::pipeline::traits::CommandSpec::from_hook("build", hook, &env_vars)),
                dockerfile: config.build.dockerfile.clone(),
            };
            let artifact = tokio::select! {
                result = fx.runtime.build(&spec, log) => result.map_err(|e| e.to_string())?,
                () = self.cancel.cancelled() => return Err("cancelled".to_owned()),
            };
            Ok(StepEnd::Done(artifact))
        };
        let artifact = match self.steps.run(Step::Build, build).await {
            Ok(artifact) => artifact,
            Err(why) => return Err(PrepareError { why: format!("build failed: {why}; nothing changed"), config: Some(config) }),
        };

        let runtime_vars = plan::runtime_variables(&variables);
        let config_hash = plan::config_hash(&runtime_vars);
        let scale = plan::scale_for_deploy(&config, previous.as_ref().map(|p| &p.0.scale));
        if let Some((release, _)) = &previous {
            if same_artifact(&release.artifact, &artifact) && release.config_hash == config_hash && release.scale == scale {
                log.line(format!("    no change since {}: redeploying it (only post_deploy runs)", release.number)).await;
                return Ok(Prepared::Unchanged { config, release: release.clone() });
            }
        }
        let release = fx
            .store
            .create_release(NewRelease {
                env: env.clone(),
                commit: fetched.commit.clone(),
                artifact,
                config_hash,
                variables: runtime_vars,
                scale,
                operation: self.op.id,
            })
            .await
            .map_err(|e| e.to_string())?;
        fx.store
            .set_operation_releases(self.op.id, previous.as_ref().map(|p| p.0.number), Some(release.number))
            .await
            .map_err(|e| e.to_string())?;
        log.line(format!("    release {}", release.number)).await;
        Ok(Prepared::Rollout(Target { release, config, previous, run_before_release: true, run_deploy_hooks: true }))
    }

    /// A deploy with nothing new: the instances keep running and only `post_deploy` runs.
    async fn redeploy(&self, config: &AppConfig, release: &Release) -> Outcome {
        let _ = self
            .fx
            .store
            .set_operation_releases(self.op.id, Some(release.number), Some(release.number))
            .await;
        if let Some(hook) = &config.hooks.post_deploy {
            let ctx = context(self.op, release, config);
            let specs = ctx.hook("post_deploy", hook);
            let body = async {
                Ok::<_, String>(match run_hook(self.fx, &release.artifact, &specs, &self.steps.log).await {
                    Ok(()) => StepEnd::Done(()),
                    Err(error) => StepEnd::Warning((), format!("post_deploy hook failed: {error}")),
                })
            };
            let _ = self.steps.run(Step::PostDeploy, body).await;
        }
        Outcome::Succeeded
    }

    /// `after_<op>_success` or `after_<op>_failure`, in an ephemeral instance of the
    /// release now serving. Their failure is reported and changes nothing.
    async fn after_hooks(&self, config: &AppConfig, outcome: &Outcome) {
        let Some(hooked) = hooked_operation(self.op.kind) else { return };
        let succeeded = *outcome == Outcome::Succeeded;
        let (name, hook) = if succeeded {
            (format!("after_{}_success", hook_name(hooked)), config.hooks.after_success.get(&hooked))
        } else {
            (format!("after_{}_failure", hook_name(hooked)), config.hooks.after_failure.get(&hooked))
        };
        let Some(hook) = hook else { return };
        let body = async {
            let serving = self.fx.store.current_release(&self.op.env).await.map_err(|e| e.to_string())?;
            let Some(release) = serving else {
                return Ok(StepEnd::Skipped((), format!("{name} not run: no release is serving")));
            };
            let ctx = context(self.op, &release, config);
            let specs = ctx.hook(&name, hook);
            Ok::<_, String>(match run_hook(self.fx, &release.artifact, &specs, &self.steps.log).await {
                Ok(()) => StepEnd::Done(()),
                Err(error) => StepEnd::Warning((), format!("{name} failed: {error}")),
            })
        };
        let _ = self.steps.run(Step::AfterHooks, body).await;
    }
}

fn same_artifact(a: &Artifact, b: &Artifact) -> bool {
    match (a, b) {
        (Artifact::Directory { path: a }, Artifact::Directory { path: b }) => a == b,
        (Artifact::Image { digest: a, .. }, Artifact::Image { digest: b, .. }) => a == b,
        _ => false,
    }
}

fn hooked_operation(kind: OperationKind) -> Option<HookedOperation> {
    match kind {
        OperationKind::Deploy | OperationKind::Redeploy => Some(HookedOperation::Deploy),
        OperationKind::Restart => Some(HookedOperation::Restart),
        OperationKind::Configure => Some(HookedOperation::Configure),
        OperationKind::Scale => Some(HookedOperation::Scale),
        OperationKind::Rollback => None,
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
