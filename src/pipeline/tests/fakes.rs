//! In-memory runtime, router and sources that record what the pipeline asks of them,
//! so tests can assert on the order of effects with paused time.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::config::model::{AppConfig, HealthCheck};
use crate::config::ConfigErrors;
use crate::ids::{AppName, EnvKey, ReleaseNumber};
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::{Artifact, InstanceRecord, SourceSpec};
use crate::pipeline::traits::*;

/// What happened, in order: `build shop-1`, `hook before_release`, `start web.1 v2`...
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
    /// The position of the first event starting with `prefix`.
    pub fn position(&self, prefix: &str) -> Option<usize> {
        self.all().iter().position(|e| e.starts_with(prefix))
    }
}

/// How the fake runtime misbehaves.
#[derive(Default)]
pub struct Behaviour {
    /// Instances of these commits never become healthy.
    pub unhealthy_commits: HashSet<String>,
    /// Instances of these commits pass two checks, then fail.
    pub flaky_commits: HashSet<String>,
    /// Instances of these commits exit this long after they start.
    pub crashing_commits: BTreeMap<String, Duration>,
    /// Hooks with these labels exit 1.
    pub failing_hooks: HashSet<String>,
    /// Hooks with these labels never end (until cancelled).
    pub hanging_hooks: HashSet<String>,
    pub ignore_sigterm: bool,
}

pub struct FakeRuntime {
    pub events: Events,
    pub behaviour: Mutex<Behaviour>,
    built: Mutex<BTreeMap<String, String>>,
    running: Arc<Mutex<HashSet<String>>>,
    checks: Mutex<BTreeMap<String, u32>>,
    /// Instance id -> commit, to look up behaviour.
    commits: Mutex<BTreeMap<String, String>>,
    next_port: AtomicU32,
}

impl FakeRuntime {
    pub fn new(events: Events) -> Self {
        Self {
            events,
            behaviour: Mutex::new(Behaviour::default()),
            built: Mutex::default(),
            running: Arc::default(),
            checks: Mutex::default(),
            commits: Mutex::default(),
            next_port: AtomicU32::new(1000),
        }
    }
    pub fn running_count(&self) -> usize {
        self.running.lock().unwrap().len()
    }
}

fn commit_of(artifact: &Artifact) -> String {
    match artifact {
        Artifact::Directory { path } => path.clone(),
        Artifact::Image { digest, .. } => digest.clone(),
    }
}

fn name(instance: &InstanceRecord) -> String {
    format!(
        "{}.{} {}",
        instance.service, instance.index, instance.release
    )
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn artifact(&self, key: &str) -> EffectResult<Option<Artifact>> {
        Ok(self
            .built
            .lock()
            .unwrap()
            .get(key)
            .map(|path| Artifact::Directory { path: path.clone() }))
    }
    async fn build(&self, spec: &BuildSpec, _log: &OperationLog) -> EffectResult<Artifact> {
        let commit = spec.source_dir.display().to_string();
        self.events.push(format!("build {commit}"));
        if self
            .behaviour
            .lock()
            .unwrap()
            .failing_hooks
            .contains("build")
        {
            return Err(EffectError::Failed("build hook failed: exit code 1".into()));
        }
        self.built
            .lock()
            .unwrap()
            .insert(spec.artifact_key.clone(), commit.clone());
        Ok(Artifact::Directory { path: commit })
    }
    async fn run(
        &self,
        _artifact: &Artifact,
        spec: &CommandSpec,
        _log: &OperationLog,
    ) -> EffectResult<CommandOutcome> {
        self.events.push(format!(
            "hook {} {}",
            spec.label,
            spec.env.get("SLIPWAY_RELEASE").cloned().unwrap_or_default()
        ));
        let (fails, hangs) = {
            let behaviour = self.behaviour.lock().unwrap();
            (
                behaviour.failing_hooks.contains(&spec.label),
                behaviour.hanging_hooks.contains(&spec.label),
            )
        };
        if hangs {
            std::future::pending::<()>().await;
        }
        Ok(if fails {
            CommandOutcome::Exited(1)
        } else {
            CommandOutcome::Exited(0)
        })
    }
    async fn start(
        &self,
        spec: &InstanceSpec,
        _log: &OperationLog,
    ) -> EffectResult<InstanceRecord> {
        let id = spec.instance_id();
        let port = self.next_port.fetch_add(1, Ordering::Relaxed);
        let record = InstanceRecord {
            id: id.clone(),
            env: spec.env.clone(),
            service: spec.service.clone(),
            release: spec.release,
            index: spec.index,
            handle: port.to_string(),
            address: spec.http.then(|| format!("127.0.0.1:{port}")),
            started_at: 0,
        };
        self.events.push(format!("start {}", name(&record)));
        self.running.lock().unwrap().insert(id.clone());
        let crash = self
            .behaviour
            .lock()
            .unwrap()
            .crashing_commits
            .get(&commit_of(&spec.artifact))
            .copied();
        if let Some(after) = crash {
            let (running, crashed) = (self.running.clone(), id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                running.lock().unwrap().remove(&crashed);
            });
        }
        self.commits
            .lock()
            .unwrap()
            .insert(id, commit_of(&spec.artifact));
        Ok(record)
    }
    async fn is_running(&self, instance: &InstanceRecord) -> bool {
        self.running.lock().unwrap().contains(&instance.id)
    }
    async fn stop(&self, instance: &InstanceRecord, grace: Duration) -> EffectResult<StopOutcome> {
        if !self.running.lock().unwrap().remove(&instance.id) {
            return Ok(StopOutcome::AlreadyGone);
        }
        self.events.push(format!("stop {}", name(instance)));
        if self.behaviour.lock().unwrap().ignore_sigterm {
            tokio::time::sleep(grace).await;
            return Ok(StopOutcome::Killed);
        }
        Ok(StopOutcome::Exited)
    }
    async fn check(
        &self,
        instance: &InstanceRecord,
        _check: &HealthCheck,
        _artifact: &Artifact,
    ) -> Result<(), String> {
        let commit = self
            .commits
            .lock()
            .unwrap()
            .get(&instance.id)
            .cloned()
            .unwrap_or_default();
        let count = {
            let mut checks = self.checks.lock().unwrap();
            let count = checks.entry(instance.id.clone()).or_default();
            *count += 1;
            *count
        };
        let behaviour = self.behaviour.lock().unwrap();
        if behaviour.unhealthy_commits.contains(&commit)
            || (behaviour.flaky_commits.contains(&commit) && count > 2)
        {
            return Err("connection refused".into());
        }
        Ok(())
    }
    async fn prune(&self, artifact: &Artifact) -> EffectResult<()> {
        self.events.push(format!("prune {}", commit_of(artifact)));
        Ok(())
    }
}

/// A router that remembers which backends each environment has.
#[derive(Default)]
pub struct FakeTraffic {
    pub events: Events,
    pub routes: Mutex<BTreeMap<EnvKey, Vec<Backend>>>,
    /// The last exposure of each environment.
    pub exposed: Mutex<BTreeMap<EnvKey, Exposure>>,
    /// Ports that something else listens on.
    pub taken_ports: Mutex<HashSet<u16>>,
}

impl FakeTraffic {
    pub fn new(events: Events) -> Self {
        Self {
            events,
            routes: Mutex::default(),
            exposed: Mutex::default(),
            taken_ports: Mutex::default(),
        }
    }
    /// The releases of the backends an environment routes to.
    pub fn routed_releases(&self, env: &EnvKey) -> Vec<ReleaseNumber> {
        let mut releases: Vec<ReleaseNumber> = self
            .routes
            .lock()
            .unwrap()
            .get(env)
            .into_iter()
            .flatten()
            .map(|b| b.release)
            .collect();
        releases.dedup();
        releases
    }
}

#[async_trait]
impl Traffic for FakeTraffic {
    async fn expose(&self, env: &EnvKey, exposure: &Exposure) -> Result<(), String> {
        if let Some(port) = exposure.port {
            if self.taken_ports.lock().unwrap().contains(&port) {
                return Err(format!("port {port} is taken"));
            }
            self.events.push(format!("expose {env} on port {port}"));
        }
        self.exposed
            .lock()
            .unwrap()
            .insert(env.clone(), exposure.clone());
        Ok(())
    }
    async fn switch(&self, env: &EnvKey, backends: Vec<Backend>) {
        let mut releases: Vec<String> = backends.iter().map(|b| b.release.to_string()).collect();
        releases.dedup();
        self.events.push(format!("switch [{}]", releases.join(",")));
        self.routes.lock().unwrap().insert(env.clone(), backends);
    }
    async fn standby(&self, _env: &EnvKey, backends: Vec<Backend>) {
        let mut releases: Vec<String> = backends.iter().map(|b| b.release.to_string()).collect();
        releases.dedup();
        self.events
            .push(format!("standby [{}]", releases.join(",")));
    }
    async fn hold(&self, _env: &EnvKey, _hold: Duration) {
        self.events.push("hold");
    }
    async fn release_hold(&self, _env: &EnvKey) {
        self.events.push("release hold");
    }
    async fn drain(&self, _backends: &[Backend], _deadline: Duration) -> usize {
        0
    }
    async fn probe(&self, env: &EnvKey) -> Result<ReleaseNumber, String> {
        self.routed_releases(env)
            .first()
            .copied()
            .ok_or_else(|| "no backend".into())
    }
    fn url(&self, env: &EnvKey) -> String {
        format!("http://{}-{}.localhost", env.app, env.env)
    }
}

/// Sources whose commits are names in a map of configs: a git deploy of `c2` deploys the
/// config stored under `c2`.
#[derive(Default)]
pub struct FakeSources {
    pub configs: Mutex<BTreeMap<String, AppConfig>>,
}

#[async_trait]
impl Sources for FakeSources {
    async fn fetch(&self, spec: &SourceSpec, _log: &OperationLog) -> EffectResult<FetchedSource> {
        let SourceSpec::Git { reference, .. } = spec else {
            return Err(EffectError::Failed("fake sources only know git".into()));
        };
        if !self.configs.lock().unwrap().contains_key(reference) {
            return Err(EffectError::Failed(format!("no commit {reference}")));
        }
        Ok(FetchedSource {
            dir: reference.into(),
            commit: Some(reference.clone()),
            content_id: reference.clone(),
        })
    }
    async fn config_of_source(
        &self,
        source: &FetchedSource,
        _app: &AppName,
    ) -> Result<AppConfig, ConfigErrors> {
        let key = source.dir.display().to_string();
        Ok(self.configs.lock().unwrap()[&key].clone())
    }
    async fn config_of_artifact(
        &self,
        artifact: &Artifact,
        _app: &AppName,
    ) -> Result<AppConfig, ConfigErrors> {
        Ok(self.configs.lock().unwrap()[&commit_of(artifact)].clone())
    }
}
