//! What each operation kind prepares before its rollout: the release to roll out (new
//! or reused), its configuration, and which hooks run.
//!
//! | kind | release | before_release | deploy, post_deploy |
//! |---|---|---|---|
//! | deploy | new: built artifact, current variables, config scale | yes | yes |
//! | redeploy | the serving one, nothing restarted | no | post_deploy only |
//! | restart | the serving one, new instances | no | no |
//! | configure | new: same artifact, current variables | no | no |
//! | scale | new: same artifact, new scale | no | no |
//! | rollback | new: a copy of an earlier release (artifact, variables, scale) | no | no |

use std::collections::BTreeSet;

use crate::config::model::AppConfig;
use crate::ids::ReleaseNumber;
use crate::pipeline::model::{
    Artifact, OperationKind, OperationState, Release, Scale, ServiceScale, Step,
};
use crate::pipeline::operation::{PrepareError, Prepared, Runner};
use crate::pipeline::plan;
use crate::pipeline::rollout::Target;
use crate::pipeline::steps::StepEnd;
use crate::pipeline::traits::{BuildSpec, CommandSpec, NewRelease};

impl Runner<'_> {
    pub(super) async fn prepare(&self) -> Result<Prepared, PrepareError> {
        let env = &self.op.env;
        let current = self
            .fx
            .store
            .current_release(env)
            .await
            .map_err(|e| e.to_string())?;
        let previous = match &current {
            Some(release) => match self
                .fx
                .sources
                .config_of_artifact(&release.artifact, &env.app)
                .await
            {
                Ok(config) => Some((release.clone(), config)),
                Err(errors) => {
                    self.steps
                        .log
                        .line(format!(
                            "    the serving release's configuration cannot be read: {errors}"
                        ))
                        .await;
                    None
                }
            },
            None => None,
        };
        if self.op.kind == OperationKind::Deploy {
            return self.prepare_deploy(previous).await;
        }
        if self.op.kind == OperationKind::Teardown {
            return Ok(Prepared::Teardown {
                config: previous.map(|(_, config)| config),
            });
        }
        let Some((serving, config)) = previous else {
            return Err(format!(
                "nothing to {}: {env} has no release serving yet; deploy first",
                self.op.kind
            )
            .into());
        };
        match self.op.kind {
            OperationKind::Redeploy => Ok(Prepared::Unchanged {
                config,
                release: serving,
            }),
            OperationKind::Restart => {
                self.set_releases(Some(serving.number), Some(serving.number))
                    .await?;
                Ok(reuse(
                    serving.clone(),
                    config.clone(),
                    Some((serving, config)),
                ))
            }
            OperationKind::Configure => {
                let variables = self
                    .fx
                    .store
                    .variables(env)
                    .await
                    .map_err(|e| e.to_string())?;
                let runtime_vars = plan::runtime_variables(&variables);
                let release = self
                    .new_release(
                        serving.commit.clone(),
                        &serving,
                        serving.artifact.clone(),
                        runtime_vars,
                        serving.scale.clone(),
                    )
                    .await?;
                Ok(reuse(release, config.clone(), Some((serving, config))))
            }
            OperationKind::Scale => {
                let scale =
                    scaled(&serving.scale, &config, &self.op.args).map_err(PrepareError::from)?;
                let release = self
                    .new_release(
                        serving.commit.clone(),
                        &serving,
                        serving.artifact.clone(),
                        serving.variables.clone(),
                        scale,
                    )
                    .await?;
                Ok(reuse(release, config.clone(), Some((serving, config))))
            }
            OperationKind::Rollback => {
                let target = self.rollback_target(&serving).await?;
                let target_config = self
                    .fx
                    .sources
                    .config_of_artifact(&target.artifact, &env.app)
                    .await
                    .map_err(|errors| {
                        format!(
                            "the configuration of {} cannot be read: {errors}",
                            target.number
                        )
                    })?;
                self.steps
                    .log
                    .line(format!(
                        "    rolling back to {} (commit {})",
                        target.number,
                        target.commit.as_deref().unwrap_or("none")
                    ))
                    .await;
                let release = self
                    .new_release(
                        target.commit.clone(),
                        &serving,
                        target.artifact.clone(),
                        target.variables.clone(),
                        target.scale.clone(),
                    )
                    .await?;
                Ok(reuse(release, target_config, Some((serving, config))))
            }
            OperationKind::Deploy | OperationKind::Teardown => unreachable!("handled above"),
        }
    }

    async fn set_releases(
        &self,
        before: Option<ReleaseNumber>,
        after: Option<ReleaseNumber>,
    ) -> Result<(), PrepareError> {
        self.fx
            .store
            .set_operation_releases(self.op.id, before, after)
            .await
            .map_err(|e| e.to_string().into())
    }

    /// A new release replacing the serving one, with another artifact, configuration or scale.
    async fn new_release(
        &self,
        commit: Option<String>,
        serving: &Release,
        artifact: Artifact,
        variables: std::collections::BTreeMap<String, String>,
        scale: Scale,
    ) -> Result<Release, PrepareError> {
        let release = self
            .fx
            .store
            .create_release(NewRelease {
                env: self.op.env.clone(),
                commit,
                artifact,
                config_hash: plan::config_hash(&variables),
                variables,
                scale,
                operation: self.op.id,
            })
            .await
            .map_err(|e| e.to_string())?;
        self.set_releases(Some(serving.number), Some(release.number))
            .await?;
        self.steps
            .log
            .line(format!("    release {}", release.number))
            .await;
        Ok(release)
    }

    /// `--to vN`, or the newest earlier release that served.
    async fn rollback_target(&self, serving: &Release) -> Result<Release, PrepareError> {
        let env = &self.op.env;
        let requested = match self.op.args.get("to") {
            Some(value) => {
                let text = value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string());
                Some(text.parse::<ReleaseNumber>().map_err(PrepareError::from)?)
            }
            None => None,
        };
        let releases = self
            .fx
            .store
            .releases(env)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(number) = requested {
            return releases
                .into_iter()
                .find(|r| r.number == number)
                .ok_or_else(|| {
                    format!("{env} has no release {number}; `slipway releases` lists them").into()
                });
        }
        let served = self.served_releases().await?;
        releases
            .into_iter()
            .find(|r| r.number < serving.number && served.contains(&r.number))
            .ok_or_else(|| format!("{env} has no earlier release to roll back to").into())
    }

    /// The releases that some operation put into service.
    async fn served_releases(&self) -> Result<BTreeSet<ReleaseNumber>, PrepareError> {
        let ops = self
            .fx
            .store
            .operations(Some(&self.op.env), 10_000)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ops
            .iter()
            .filter(|op| op.state == OperationState::Succeeded)
            .filter_map(|op| op.release_after)
            .collect())
    }

    async fn prepare_deploy(
        &self,
        previous: Option<(Release, AppConfig)>,
    ) -> Result<Prepared, PrepareError> {
        let env = &self.op.env;
        let fx = self.fx;
        let log = &self.steps.log;
        let source = self
            .op
            .source
            .clone()
            .ok_or_else(|| "a deploy needs a source".to_owned())?;
        let resolve = async {
            let fetched = fx
                .sources
                .fetch(&source, log)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(commit) = &fetched.commit {
                log.line(format!("    commit {commit}")).await;
                fx.store
                    .set_operation_commit(self.op.id, commit)
                    .await
                    .map_err(|e| e.to_string())?;
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
                return Ok(StepEnd::Skipped(
                    artifact,
                    "reusing the build of this commit".to_owned(),
                ));
            }
            let env_vars = plan::build_env(env, fetched.commit.as_deref(), self.op.id, &variables);
            let spec = BuildSpec {
                env: env.clone(),
                source_dir: fetched.dir.clone(),
                artifact_key: key.clone(),
                commit: fetched.commit.clone(),
                hook: config
                    .build
                    .hook
                    .as_ref()
                    .map(|hook| CommandSpec::from_hook("build", hook, &env_vars)),
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
            Err(why) => {
                return Err(PrepareError {
                    why: format!("build failed: {why}; nothing changed"),
                    config: Some(config),
                })
            }
        };

        let runtime_vars = plan::runtime_variables(&variables);
        let config_hash = plan::config_hash(&runtime_vars);
        let scale = plan::scale_for_deploy(&config, previous.as_ref().map(|p| &p.0.scale));
        if let Some((release, _)) = &previous {
            let unchanged = same_artifact(&release.artifact, &artifact)
                && release.config_hash == config_hash
                && release.scale == scale;
            if unchanged && self.all_instances_running(release).await {
                log.line(format!(
                    "    no change since {}: redeploying it (only post_deploy runs)",
                    release.number
                ))
                .await;
                self.set_releases(Some(release.number), Some(release.number))
                    .await?;
                return Ok(Prepared::Unchanged {
                    config,
                    release: release.clone(),
                });
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
        self.set_releases(previous.as_ref().map(|p| p.0.number), Some(release.number))
            .await?;
        log.line(format!("    release {}", release.number)).await;
        Ok(Prepared::Rollout(Box::new(Target {
            release,
            config,
            previous,
            run_before_release: true,
            run_deploy_hooks: true,
        })))
    }

    /// Whether the release runs as many instances as its scale asks for: an environment
    /// whose instances were stopped (by `slipway up`'s Ctrl-C, say) is started again.
    async fn all_instances_running(&self, release: &Release) -> bool {
        let Ok(instances) = self.fx.store.instances(Some(&self.op.env)).await else {
            return false;
        };
        let wanted: u32 = release.scale.services.values().map(|s| s.instances).sum();
        let mut running = 0;
        for instance in instances.iter().filter(|i| i.release == release.number) {
            if self.fx.runtime.is_running(instance).await {
                running += 1;
            }
        }
        running >= wanted
    }
}

/// A rollout of an existing artifact: no before_release, no deploy hooks.
fn reuse(release: Release, config: AppConfig, previous: Option<(Release, AppConfig)>) -> Prepared {
    Prepared::Rollout(Box::new(Target {
        release,
        config,
        previous,
        run_before_release: false,
        run_deploy_hooks: false,
    }))
}

/// The scale after `slipway scale web=3 --size 1024`: `args` is
/// `{"services": {"web": 3}, "size": 1024}`; the services named are pinned.
pub fn scaled(
    current: &Scale,
    config: &AppConfig,
    args: &serde_json::Value,
) -> Result<Scale, String> {
    let mut scale = current.clone();
    let size = match args.get("size") {
        Some(size) => Some(
            size.as_u64()
                .filter(|s| (1..=1_048_576).contains(s))
                .ok_or_else(|| format!("size {size} is not a number of MB between 1 and 1048576"))?
                as u32,
        ),
        None => None,
    };
    let services = args.get("services").and_then(|s| s.as_object());
    if services.is_none_or(|s| s.is_empty()) && size.is_none() {
        return Err("nothing to scale: give SERVICE=COUNT and/or --size MB".into());
    }
    let named: Vec<(String, Option<u32>)> = match services {
        Some(map) => map
            .iter()
            .map(|(name, count)| {
                let count = count.as_u64().filter(|c| *c <= 100).ok_or_else(|| {
                    format!("{name}={count}: the count must be a number from 0 to 100")
                })?;
                Ok((name.clone(), Some(count as u32)))
            })
            .collect::<Result<_, String>>()?,
        // `--size` alone resizes every service.
        None => config
            .services
            .keys()
            .map(|name| (name.to_string(), None))
            .collect(),
    };
    for (name, count) in named {
        let key = crate::ids::ServiceName::from(name.as_str());
        let Some(service) = config.services.get(&key) else {
            let known: Vec<String> = config.services.keys().map(|k| k.to_string()).collect();
            return Err(format!(
                "there is no service `{name}`; the services are: {}",
                known.join(", ")
            ));
        };
        let entry = scale.services.entry(key).or_insert(ServiceScale {
            instances: service.instances,
            size_mb: service.size_mb,
            pinned: false,
        });
        if let Some(count) = count {
            entry.instances = count;
        }
        if let Some(size) = size {
            entry.size_mb = size;
        }
        entry.pinned = true;
    }
    Ok(scale)
}

fn same_artifact(a: &Artifact, b: &Artifact) -> bool {
    match (a, b) {
        (Artifact::Directory { path: a }, Artifact::Directory { path: b }) => a == b,
        (Artifact::Image { digest: a, .. }, Artifact::Image { digest: b, .. }) => a == b,
        _ => false,
    }
}
