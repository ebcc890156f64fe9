//! The pipeline's view of the world: one trait per external effect, defined by the
//! operations the pipeline needs. Implementations live in `store/`, `runtime/`,
//! `router/` and `source/`; the pipeline never sees a database row, a process or a socket.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::model::{AppConfig, HealthCheck, Hook};
use crate::config::ConfigErrors;
use crate::ids::{AppName, EnvKey, OperationId, ReleaseNumber, ServiceName};
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::*;

/// Errors of the world outside the pipeline, with a message fit for an operation log.
#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    #[error("{0}")]
    Failed(String),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("cancelled")]
    Cancelled,
    #[error("database: {0}")]
    Store(String),
}

pub type EffectResult<T> = Result<T, EffectError>;

/// Where operations, releases, logs and instances are kept.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn ensure_environment(&self, env: &EnvKey) -> EffectResult<()>;
    async fn environments(&self) -> EffectResult<Vec<EnvKey>>;

    /// Creates an operation in state `queued`.
    async fn create_operation(&self, new: NewOperation) -> EffectResult<Operation>;
    /// Records an operation that never runs, already `superseded` with `why`: a deploy
    /// with a newer one of the same branch behind it. Created final in one write, so no
    /// worker can start it in between.
    async fn create_superseded(&self, new: NewOperation, why: &str) -> EffectResult<Operation>;
    async fn operation(&self, id: OperationId) -> EffectResult<Option<Operation>>;
    /// Newest first; `env: None` lists all environments.
    async fn operations(&self, env: Option<&EnvKey>, limit: i64) -> EffectResult<Vec<Operation>>;
    /// Queued operations of an environment, oldest first.
    async fn queued_operations(&self, env: &EnvKey) -> EffectResult<Vec<Operation>>;
    /// Operations left `running` (by a server that was killed).
    async fn running_operations(&self) -> EffectResult<Vec<Operation>>;
    /// Sets state; `running` sets `started_at`, final states set `finished_at`.
    async fn set_operation_state(
        &self,
        id: OperationId,
        state: OperationState,
        message: Option<&str>,
    ) -> EffectResult<()>;
    async fn set_operation_releases(
        &self,
        id: OperationId,
        before: Option<ReleaseNumber>,
        after: Option<ReleaseNumber>,
    ) -> EffectResult<()>;
    async fn set_operation_commit(&self, id: OperationId, commit: &str) -> EffectResult<()>;

    /// Records a step starting (status `running`) or ending (same step, final status);
    /// also sets the operation's `step`.
    async fn record_step(&self, id: OperationId, record: &StepRecord) -> EffectResult<()>;
    async fn steps(&self, id: OperationId) -> EffectResult<Vec<StepRecord>>;

    /// Appends lines; returns nothing, sequence numbers are assigned in order.
    async fn append_log(&self, id: OperationId, at: i64, lines: &[String]) -> EffectResult<()>;
    /// Lines with `seq > after`, oldest first, at most `limit`.
    async fn log_lines(
        &self,
        id: OperationId,
        after: i64,
        limit: i64,
    ) -> EffectResult<Vec<LogLine>>;

    /// Creates the next release number of its environment.
    async fn create_release(&self, release: NewRelease) -> EffectResult<Release>;
    async fn release(&self, env: &EnvKey, number: ReleaseNumber) -> EffectResult<Option<Release>>;
    /// Newest first.
    async fn releases(&self, env: &EnvKey) -> EffectResult<Vec<Release>>;
    /// The release now serving, if any.
    async fn current_release(&self, env: &EnvKey) -> EffectResult<Option<Release>>;
    async fn set_current_release(
        &self,
        env: &EnvKey,
        number: Option<ReleaseNumber>,
    ) -> EffectResult<()>;
    /// The point of no return of a rollout: makes `release` the environment's current
    /// release and records the operation's `switch` step (recorded as started before) as
    /// succeeded at `finished_at`, in one transaction, so that a restarted server sees
    /// both or neither. Fails when the step was never recorded as started.
    async fn commit_switch(
        &self,
        id: OperationId,
        env: &EnvKey,
        release: ReleaseNumber,
        finished_at: i64,
    ) -> EffectResult<()>;

    async fn save_instance(&self, instance: &InstanceRecord) -> EffectResult<()>;
    async fn remove_instance(&self, id: &str) -> EffectResult<()>;
    /// `env: None` lists all environments' instances.
    async fn instances(&self, env: Option<&EnvKey>) -> EffectResult<Vec<InstanceRecord>>;

    async fn variables(&self, env: &EnvKey) -> EffectResult<Vec<Variable>>;
    async fn set_variables(&self, env: &EnvKey, vars: &[Variable]) -> EffectResult<()>;
    async fn unset_variables(&self, env: &EnvKey, keys: &[String]) -> EffectResult<()>;
}

/// What is needed to create a release.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRelease {
    pub env: EnvKey,
    pub commit: Option<String>,
    pub artifact: Artifact,
    pub config_hash: String,
    pub variables: BTreeMap<String, String>,
    pub scale: Scale,
    pub operation: OperationId,
}

/// A command to run, as a value: what a hook or a check will execute.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandSpec {
    /// What the log calls it: `before_release`, `build`, `health check`.
    pub label: String,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Relative to the artifact (local runtime: its directory; docker: the image's workdir).
    pub cwd: Option<PathBuf>,
    pub timeout: Duration,
}

impl CommandSpec {
    /// The argv of a hook body: a script for `sh -c`, or each command of a list.
    pub fn from_hook(label: &str, hook: &Hook, env: &BTreeMap<String, String>) -> Vec<CommandSpec> {
        use crate::config::model::HookBody;
        let scripts: Vec<&String> = match &hook.body {
            HookBody::Script(script) => vec![script],
            HookBody::Commands(commands) => commands.iter().collect(),
        };
        scripts
            .into_iter()
            .map(|script| CommandSpec {
                label: label.to_owned(),
                argv: vec!["sh".to_owned(), "-c".to_owned(), script.clone()],
                env: env.clone(),
                cwd: None,
                timeout: hook.timeout,
            })
            .collect()
    }
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandOutcome {
    Exited(i32),
    /// Killed by a signal it did not handle.
    Signalled(i32),
    /// Did not finish in time: it was sent SIGTERM, then SIGKILL.
    TimedOut,
}

impl CommandOutcome {
    pub fn success(&self) -> bool {
        *self == CommandOutcome::Exited(0)
    }
}

/// What a build is given.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildSpec {
    pub env: EnvKey,
    /// The unpacked source (local runtime) or build context (docker).
    pub source_dir: PathBuf,
    /// Identifies the artifact: the same key means the same build output.
    pub artifact_key: String,
    pub commit: Option<String>,
    /// The build hook, if any, already with its variables.
    pub hook: Option<Vec<CommandSpec>>,
    pub dockerfile: Option<String>,
}

/// One instance to start.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSpec {
    pub env: EnvKey,
    /// The operation starting it: a restart starts new instances of the same release.
    pub operation: OperationId,
    pub service: ServiceName,
    pub release: ReleaseNumber,
    pub index: u32,
    pub artifact: Artifact,
    pub command: String,
    /// Run before `command` on every start; its failure fails the start.
    pub pre_start: Option<Vec<CommandSpec>>,
    /// Every variable the process gets, `PORT` excluded (the runtime assigns it).
    pub env_vars: BTreeMap<String, String>,
    /// Whether the instance takes HTTP traffic (and so gets a `PORT`).
    pub http: bool,
    pub size_mb: u32,
    pub stop_timeout: Duration,
}

impl InstanceSpec {
    pub fn instance_id(&self) -> String {
        format!(
            "{}-{}-{}-{}-{}-op{}",
            self.env.app, self.env.env, self.service, self.release, self.index, self.operation
        )
    }
}

/// How a stop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// Exited after SIGTERM within the grace.
    Exited,
    /// Ignored SIGTERM for `stop_timeout` and was killed.
    Killed,
    /// Was no longer running.
    AlreadyGone,
}

/// Runs builds, hooks and instances: processes on this machine, or containers.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Whether a build of this key already exists (the build is then skipped).
    async fn artifact(&self, key: &str) -> EffectResult<Option<Artifact>>;
    /// Builds the artifact, streaming output into the log.
    async fn build(&self, spec: &BuildSpec, log: &OperationLog) -> EffectResult<Artifact>;
    /// Runs one command in an ephemeral instance of `artifact`.
    async fn run(
        &self,
        artifact: &Artifact,
        spec: &CommandSpec,
        log: &OperationLog,
    ) -> EffectResult<CommandOutcome>;
    /// Starts an instance (running its `pre_start` first); returns once it is started,
    /// not once it is healthy.
    async fn start(&self, spec: &InstanceSpec, log: &OperationLog) -> EffectResult<InstanceRecord>;
    /// Whether the instance is still running.
    async fn is_running(&self, instance: &InstanceRecord) -> bool;
    /// Resolves once the instance is no longer running. The default asks `is_running`
    /// every 100 ms; a runtime that is told when its processes end answers at once.
    async fn wait_exit(&self, instance: &InstanceRecord) {
        while self.is_running(instance).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    /// For an instance that is no longer running: what a person needs to know about why
    /// (how it ended, a port another process holds, where its output is), when the
    /// runtime can tell.
    async fn exit_report(&self, instance: &InstanceRecord) -> Option<String> {
        let _ = instance;
        None
    }
    /// Stops an instance: SIGTERM, then SIGKILL after `grace`.
    async fn stop(&self, instance: &InstanceRecord, grace: Duration) -> EffectResult<StopOutcome>;
    /// One health check of a running instance; `Ok(())` when healthy, else why not.
    async fn check(
        &self,
        instance: &InstanceRecord,
        check: &HealthCheck,
        artifact: &Artifact,
    ) -> Result<(), String>;
    /// Deletes an artifact that no release needs any more.
    async fn prune(&self, artifact: &Artifact) -> EffectResult<()>;
    /// After a restart: stops whatever runs from this runtime's artifacts or builds that
    /// is not one of `known` (a hook or an unrecorded instance of a server that was
    /// killed). Returns a description of each thing stopped.
    async fn reap_unknown(&self, known: &[InstanceRecord]) -> Vec<String> {
        let _ = known;
        Vec::new()
    }
}

/// A backend of a route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Backend {
    pub address: String,
    pub release: ReleaseNumber,
    pub instance: String,
}

/// Where an environment answers besides `<app>-<env>.localhost`, from its
/// `environments.<env>` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exposure {
    /// A host name of its own (`domain`).
    pub domain: Option<String>,
    /// A router port of its own (`port`): every request that arrives there is its.
    pub port: Option<u16>,
}

/// The router, as the pipeline drives it.
#[async_trait]
pub trait Traffic: Send + Sync + 'static {
    /// Makes the environment answer at `exposure`, and no longer where an earlier one said.
    /// Fails, changing nothing, when its port cannot be listened on.
    async fn expose(&self, env: &EnvKey, exposure: &Exposure) -> Result<(), String>;
    /// Atomically replaces the backends of an environment's web service; ends a standby.
    async fn switch(&self, env: &EnvKey, backends: Vec<Backend>);
    /// Keeps `backends` (the release switched away from, running on through a watch) on
    /// standby: never routed to, but where a GET or HEAD goes for its second try when it
    /// could not reach the routed instances — a new release that crashed. None ends it;
    /// so does the next `switch`.
    async fn standby(&self, env: &EnvKey, backends: Vec<Backend>);
    /// Holds new requests (a `deploy` hook is running) until `release_hold`, or `hold` passes.
    async fn hold(&self, env: &EnvKey, hold: Duration);
    async fn release_hold(&self, env: &EnvKey);
    /// Waits until no request is in flight to these backends, or `deadline` passes.
    /// Returns how many requests were still in flight at the deadline.
    async fn drain(&self, backends: &[Backend], deadline: Duration) -> usize;
    /// Sends a request through the router and says which release answered.
    async fn probe(&self, env: &EnvKey) -> Result<ReleaseNumber, String>;
    /// The URL of an environment, for people.
    fn url(&self, env: &EnvKey) -> String;
}

/// Where the source of a deploy comes from, and the configuration of what was built.
#[async_trait]
pub trait Sources: Send + Sync + 'static {
    /// Materialises the source in a directory and says which commit it is.
    async fn fetch(&self, spec: &SourceSpec, log: &OperationLog) -> EffectResult<FetchedSource>;
    /// Reads the app configuration of a fetched source.
    async fn config_of_source(
        &self,
        source: &FetchedSource,
        app: &AppName,
    ) -> Result<AppConfig, ConfigErrors>;
    /// Reads the app configuration that an artifact was built with (for operations
    /// that reuse a release's artifact: redeploy, restart, rollback...).
    async fn config_of_artifact(
        &self,
        artifact: &Artifact,
        app: &AppName,
    ) -> Result<AppConfig, ConfigErrors>;
}

#[derive(Clone, Debug, PartialEq)]
pub struct FetchedSource {
    pub dir: PathBuf,
    pub commit: Option<String>,
    /// A hash of the content: with the build variables, the artifact key.
    pub content_id: String,
}

/// Wall-clock time, for timestamps. Waiting uses `tokio::time`, which tests pause.
pub trait Clock: Send + Sync + 'static {
    /// Unix milliseconds.
    fn now_millis(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// Told whenever an operation changes (queued, started, a step ended, finished), so that
/// outcomes can be reported elsewhere (GitHub). It reads what it needs from the store;
/// it must return quickly and never fail the operation.
#[async_trait]
pub trait Reporter: Send + Sync + 'static {
    async fn operation_changed(&self, operation: OperationId);
}

/// Reports nothing.
pub struct NoReporter;

#[async_trait]
impl Reporter for NoReporter {
    async fn operation_changed(&self, _operation: OperationId) {}
}

/// Everything an operation needs from the outside world.
#[derive(Clone)]
pub struct Effects {
    pub store: Arc<dyn Store>,
    pub runtime: Arc<dyn Runtime>,
    pub traffic: Arc<dyn Traffic>,
    pub sources: Arc<dyn Sources>,
    pub clock: Arc<dyn Clock>,
    pub reporter: Arc<dyn Reporter>,
}
