//! The local runtime: builds are directories under the data directory, hooks and
//! instances are processes on this machine, each the leader of its own process group.
//!
//! **Invariant:** an instance is never a child the server depends on: its output goes to
//! a file, not through the server, and it keeps running when the server exits, to be
//! re-adopted (by pid) after a restart. Hooks, in contrast, never outlive their run.

mod build;
mod command;
mod exits;
mod instances;
mod layout;
pub mod mask_log;
mod output;
mod ports;
mod process;
mod reap;
mod rotate;
mod sweep;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::model::HealthCheck;
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::{Artifact, InstanceRecord};
use crate::pipeline::traits::{
    BuildSpec, CommandOutcome, CommandSpec, EffectError, EffectResult, InstanceSpec, Runtime,
    StopOutcome,
};
use crate::runtime::health;
use crate::runtime::human;
use crate::runtime::local::command::{execute, Execution, HOOK_KILL_GRACE};
use crate::runtime::local::instances::Children;
use crate::runtime::local::layout::Layout;
use crate::runtime::local::process::{environment, failure};

/// Runs everything as processes on this machine, keeping its files under `data_dir`.
pub struct LocalRuntime {
    layout: Layout,
    children: Children,
    /// The `slipway` binary, which masks instance output (`slipway __mask-log`).
    output_masker: Option<PathBuf>,
    /// The variables of the instances this process started, by instance id, so that a
    /// command health check runs with the same `SLIPWAY_*` and configuration variables as
    /// the instance (an instance adopted after a restart gets only `PORT`).
    instance_vars: std::sync::Mutex<HashMap<String, BTreeMap<String, String>>>,
    /// One lock per artifact key: two deploys of one commit build it once, the second
    /// waits and reuses the first's artifact.
    build_locks: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl LocalRuntime {
    pub fn new(data_dir: PathBuf) -> LocalRuntime {
        LocalRuntime {
            layout: Layout::new(data_dir),
            children: Children::default(),
            output_masker: None,
            instance_vars: std::sync::Mutex::default(),
            build_locks: tokio::sync::Mutex::default(),
        }
    }

    /// Masks configuration values in instance output with `exe __mask-log` (the `slipway`
    /// binary itself), so the instance log files hold no secret.
    pub fn with_output_masker(mut self, exe: PathBuf) -> LocalRuntime {
        self.output_masker = Some(exe);
        self
    }

    async fn build_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.build_locks
            .lock()
            .await
            .entry(key.to_owned())
            .or_default()
            .clone()
    }
}

/// The directory of a directory artifact; the local runtime has no other kind.
fn artifact_dir(artifact: &Artifact) -> EffectResult<PathBuf> {
    match artifact {
        Artifact::Directory { path } => Ok(PathBuf::from(path)),
        Artifact::Image { reference, .. } => Err(EffectError::Failed(format!(
            "the local runtime cannot run the image {reference}: use the docker runtime"
        ))),
    }
}

#[async_trait]
impl Runtime for LocalRuntime {
    async fn artifact(&self, key: &str) -> EffectResult<Option<Artifact>> {
        build::finished(&self.layout, key)
    }

    async fn build(&self, spec: &BuildSpec, log: &OperationLog) -> EffectResult<Artifact> {
        let lock = self.build_lock(&spec.artifact_key).await;
        let _building = lock.lock().await;
        build::build(&self.layout, spec, log).await
    }

    async fn run(
        &self,
        artifact: &Artifact,
        spec: &CommandSpec,
        log: &OperationLog,
    ) -> EffectResult<CommandOutcome> {
        let dir = artifact_dir(artifact)?;
        let cwd = spec
            .cwd
            .as_ref()
            .map_or_else(|| dir.clone(), |relative| dir.join(relative));
        let outcome = execute(Execution {
            argv: &spec.argv,
            cwd: &cwd,
            env: environment(&spec.env),
            timeout: spec.timeout,
            kill_grace: HOOK_KILL_GRACE,
            output: Some((log, &spec.label)),
            scope: self.layout.scope(),
        })
        .await
        .map_err(|error| EffectError::Failed(format!("could not start {}: {error}", spec.label)))?;
        Ok(outcome)
    }

    async fn start(&self, spec: &InstanceSpec, log: &OperationLog) -> EffectResult<InstanceRecord> {
        let dir = artifact_dir(&spec.artifact)?;
        let record = instances::start(
            &self.layout,
            &self.children,
            self.output_masker.as_deref(),
            &dir,
            spec,
            log,
        )
        .await?;
        self.lock_instance_vars()
            .insert(record.id.clone(), spec.env_vars.clone());
        Ok(record)
    }

    async fn is_running(&self, instance: &InstanceRecord) -> bool {
        instances::is_running(&self.layout, &self.children, instance)
    }

    async fn wait_exit(&self, instance: &InstanceRecord) {
        instances::wait_exit(&self.layout, &self.children, instance).await
    }

    async fn exit_report(&self, instance: &InstanceRecord) -> Option<String> {
        exits::report(&self.layout, &self.children, instance).await
    }

    async fn stop(&self, instance: &InstanceRecord, grace: Duration) -> EffectResult<StopOutcome> {
        let stopped = instances::stop(&self.layout, &self.children, instance, grace).await;
        self.lock_instance_vars().remove(&instance.id);
        stopped
    }

    async fn check(
        &self,
        instance: &InstanceRecord,
        check: &HealthCheck,
        artifact: &Artifact,
    ) -> Result<(), String> {
        if !self.is_running(instance).await {
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
                health::tcp_check(&format!("127.0.0.1:{port}"), *timeout).await
            }
            HealthCheck::Command {
                command, timeout, ..
            } => {
                self.check_command(instance, command, *timeout, artifact)
                    .await
            }
            HealthCheck::Uptime(wanted) => health::uptime_check(instance.started_at, *wanted),
        }
    }

    async fn prune(&self, artifact: &Artifact) -> EffectResult<()> {
        build::prune(&self.layout, artifact_dir(artifact)?).await
    }

    async fn reap_unknown(&self, known: &[InstanceRecord]) -> Vec<String> {
        let known: std::collections::BTreeSet<i32> =
            known.iter().filter_map(|i| i.handle.parse().ok()).collect();
        let (artifacts, builds) = (self.layout.artifacts_dir(), self.layout.builds_dir());
        let groups =
            tokio::task::spawn_blocking(move || reap::groups_under(&[&artifacts, &builds]))
                .await
                .unwrap_or_default();
        let unknown: std::collections::BTreeSet<i32> = groups.difference(&known).copied().collect();
        reap::kill_groups(&unknown);
        let mut reaped: Vec<String> = unknown
            .iter()
            .map(|pgid| format!("process group {pgid}"))
            .collect();
        // No command runs yet while the server starts: anything tagged as one of this
        // data directory's runs was left by a killed server (a daemon that left its group).
        let scope = self.layout.scope().to_owned();
        let tagged = tokio::task::spawn_blocking(move || sweep::kill_scope(&scope))
            .await
            .unwrap_or_default();
        reaped.extend(
            tagged
                .iter()
                .map(|l| format!("process {} ({}) of a hook", l.pid, l.name)),
        );
        reaped
    }
}

impl LocalRuntime {
    fn lock_instance_vars(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<String, String>>> {
        self.instance_vars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A command check: `sh -c <command>` in the artifact, healthy on exit 0. Its output
    /// is not kept: a check runs every interval and would flood the operation log.
    async fn check_command(
        &self,
        instance: &InstanceRecord,
        command: &str,
        timeout: Duration,
        artifact: &Artifact,
    ) -> Result<(), String> {
        let dir = artifact_dir(artifact).map_err(|error| error.to_string())?;
        let mut vars = self
            .lock_instance_vars()
            .get(&instance.id)
            .cloned()
            .unwrap_or_default();
        if let Some(port) = instance
            .address
            .as_deref()
            .and_then(|a| a.rsplit(':').next())
        {
            vars.insert("PORT".to_owned(), port.to_owned());
        }
        let argv = ["sh".to_owned(), "-c".to_owned(), command.to_owned()];
        let outcome = execute(Execution {
            argv: &argv,
            cwd: &dir,
            env: environment(&vars),
            timeout,
            // A check that hangs is simply killed; it holds no state worth a grace.
            kill_grace: Duration::ZERO,
            output: None,
            scope: self.layout.scope(),
        })
        .await
        .map_err(|error| format!("the check command could not start: {error}"))?;
        match outcome {
            CommandOutcome::Exited(0) => Ok(()),
            CommandOutcome::TimedOut => {
                Err(format!("no answer within {}", human::duration(timeout)))
            }
            ended => Err(failure("the check command", &ended, timeout)),
        }
    }
}
