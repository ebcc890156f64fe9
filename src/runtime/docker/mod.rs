//! The docker runtime: artifacts are images (built from the app's Dockerfile, or pulled
//! by digest), instances are containers on a Docker Engine reached through bollard
//! (`DOCKER_HOST` honoured), and hooks run in ephemeral containers of the release's
//! image. The pipeline's guarantees are the local runtime's: the same health checks,
//! switch, drain and stop semantics, and re-adoption of running instances by container id.
//!
//! **Invariant:** every container and image Slipway makes carries `slipway.*` labels
//! (app, environment, service, release, instance, operation), so that it can be found
//! after a restart and cleaned up without touching anything else on the engine.

mod build;
mod engine;
mod files;
mod instances;
mod run;
mod sources;
pub mod spec;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::exec::StartExecOptions;
use bollard::models::ExecConfig;
use bollard::Docker;

use crate::config::model::HealthCheck;
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::{Artifact, InstanceRecord};
use crate::pipeline::traits::{
    BuildSpec, CommandOutcome, CommandSpec, EffectError, EffectResult, InstanceSpec, Runtime,
    StopOutcome,
};
use crate::runtime::{health, human};

pub use build::IMAGE_MARKER;
pub use engine::EngineUnreachable;
pub use sources::DockerSources;

/// Why `--runtime docker` cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DockerSetupError {
    #[error(transparent)]
    Engine(#[from] EngineUnreachable),
    #[error("the docker runtime cannot ask registries: {0}")]
    Registry(#[from] crate::source::image::ImageError),
}

/// The runtime and the image-aware sources of `--runtime docker`: what the server hands
/// the pipeline. Fails when the engine does not answer, before any port is bound.
pub async fn runtime_and_sources(
    data_dir: &std::path::Path,
    local: crate::source::LocalSources,
) -> Result<(Arc<dyn Runtime>, Arc<dyn crate::pipeline::traits::Sources>), DockerSetupError> {
    let runtime = DockerRuntime::connect().await?;
    let sources = DockerSources::new(local, &runtime, data_dir)?;
    Ok((Arc::new(runtime), Arc::new(sources)))
}

/// How often a command check looks whether its command ended.
const EXEC_POLL: Duration = Duration::from_millis(50);

/// Runs builds, hooks and instances on a Docker Engine. Cheap to clone.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    /// One lock per artifact key: two deploys of one commit build it once.
    build_locks: Arc<tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl DockerRuntime {
    /// Connects to the engine `DOCKER_HOST` names (default: the local socket).
    pub async fn connect() -> Result<DockerRuntime, EngineUnreachable> {
        Ok(DockerRuntime {
            docker: engine::connect().await?,
            build_locks: Arc::default(),
        })
    }

    /// The engine client, for whoever needs the same connection (the image sources).
    pub fn engine(&self) -> &Docker {
        &self.docker
    }
}

/// The image an artifact runs; only images run on the docker runtime.
fn image_of(artifact: &Artifact) -> EffectResult<&str> {
    match artifact {
        Artifact::Image { reference, .. } => Ok(reference),
        Artifact::Directory { path } => Err(EffectError::Failed(format!(
            "the docker runtime cannot run the directory artifact {path}: deploy again to build an image"
        ))),
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn artifact(&self, key: &str) -> EffectResult<Option<Artifact>> {
        build::existing(&self.docker, key).await
    }

    async fn build(&self, spec: &BuildSpec, log: &OperationLog) -> EffectResult<Artifact> {
        let lock = self
            .build_locks
            .lock()
            .await
            .entry(spec.artifact_key.clone())
            .or_default()
            .clone();
        let _building = lock.lock().await;
        if let Some(artifact) = build::existing(&self.docker, &spec.artifact_key).await? {
            log.line(format!(
                "    image {} exists already: reusing it",
                image_of(&artifact)?
            ))
            .await;
            return Ok(artifact);
        }
        build::build(&self.docker, spec, log).await
    }

    async fn run(
        &self,
        artifact: &Artifact,
        spec: &CommandSpec,
        log: &OperationLog,
    ) -> EffectResult<CommandOutcome> {
        let image = image_of(artifact)?;
        engine::ensure_image(&self.docker, image, Some(log)).await?;
        run::run(&self.docker, image, spec, log).await
    }

    async fn start(&self, spec: &InstanceSpec, log: &OperationLog) -> EffectResult<InstanceRecord> {
        let image = image_of(&spec.artifact)?;
        engine::ensure_image(&self.docker, image, Some(log)).await?;
        instances::start(&self.docker, image, spec, log).await
    }

    async fn is_running(&self, instance: &InstanceRecord) -> bool {
        instances::is_running(&self.docker, instance).await
    }

    async fn stop(&self, instance: &InstanceRecord, grace: Duration) -> EffectResult<StopOutcome> {
        instances::stop(&self.docker, instance, grace).await
    }

    async fn check(
        &self,
        instance: &InstanceRecord,
        check: &HealthCheck,
        _artifact: &Artifact,
    ) -> Result<(), String> {
        let container = instances::inspect(&self.docker, &instance.handle)
            .await
            .map_err(|e| format!("the container is gone: {}", engine::describe(&e)))?;
        if !instances::running(&container) {
            return Err("the instance is not running".to_owned());
        }
        match check {
            HealthCheck::Http(http) => {
                let address = instance
                    .address
                    .as_deref()
                    .ok_or("the instance has no address to check")?;
                health::http_check(address, http).await
            }
            HealthCheck::Tcp { port, timeout, .. } => {
                let ip = instances::network_address(&container)
                    .ok_or("the container has no network address")?;
                health::tcp_check(&format!("{ip}:{port}"), *timeout).await
            }
            HealthCheck::Command {
                command, timeout, ..
            } => self.check_command(instance, command, *timeout).await,
            HealthCheck::Uptime(wanted) => health::uptime_check(instance.started_at, *wanted),
        }
    }

    async fn prune(&self, artifact: &Artifact) -> EffectResult<()> {
        build::prune(&self.docker, image_of(artifact)?).await
    }
}

impl DockerRuntime {
    /// A command check: `sh -c <command>` inside the instance's container, healthy on
    /// exit 0. Its output is not kept: a check runs every interval.
    async fn check_command(
        &self,
        instance: &InstanceRecord,
        command: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let exec = ExecConfig {
            cmd: Some(vec!["sh".into(), "-c".into(), command.into()]),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            ..ExecConfig::default()
        };
        let describe = |e: bollard::errors::Error| {
            format!(
                "the check command could not start: {}",
                engine::describe(&e)
            )
        };
        let created = self
            .docker
            .create_exec(&instance.handle, exec)
            .await
            .map_err(describe)?;
        let detached = StartExecOptions {
            detach: true,
            ..StartExecOptions::default()
        };
        self.docker
            .start_exec(&created.id, Some(detached))
            .await
            .map_err(describe)?;
        let ended = tokio::time::timeout(timeout, async {
            loop {
                match self.docker.inspect_exec(&created.id).await {
                    Ok(state) if state.running != Some(true) => {
                        return Ok(state.exit_code.unwrap_or(-1))
                    }
                    Ok(_) => tokio::time::sleep(EXEC_POLL).await,
                    Err(error) => return Err(describe(error)),
                }
            }
        })
        .await;
        match ended {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(code)) => Err(format!("the check command failed: exit code {code}")),
            Ok(Err(why)) => Err(why),
            Err(_) => Err(format!("no answer within {}", human::duration(timeout))),
        }
    }
}
