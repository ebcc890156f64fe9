//! The pipeline driven through its traits with in-memory fakes and paused time: the
//! order of effects, failure rules, rollback, queueing and recovery, in milliseconds.

mod exposure;
mod fakes;
mod flows;
pub(crate) mod memory_store;
mod recovery;

use std::sync::Arc;
use std::time::Duration;

use crate::config::model::{AppConfig, Hook, HookBody, HookedOperation, DEFAULT_HOOK_TIMEOUT};
use crate::ids::{EnvKey, OperationId, ServiceName};
use crate::pipeline::log::LogBus;
use crate::pipeline::model::{NewOperation, Operation, OperationKind, SourceSpec};
use crate::pipeline::traits::{Clock, Effects, NoReporter};
use crate::pipeline::Pipeline;

use fakes::{Events, FakeRuntime, FakeSources, FakeTraffic};
use memory_store::MemoryStore;

/// Wall-clock time that follows tokio's paused time, so a test can check durations
/// that the pipeline measures with `Clock` (how much of a watch is left).
struct TestClock {
    start: tokio::time::Instant,
}
impl Clock for TestClock {
    fn now_millis(&self) -> i64 {
        self.start.elapsed().as_millis() as i64
    }
}

pub struct World {
    pub events: Events,
    pub store: Arc<MemoryStore>,
    pub runtime: Arc<FakeRuntime>,
    pub traffic: Arc<FakeTraffic>,
    pub sources: Arc<FakeSources>,
    pub pipeline: Pipeline,
    pub env: EnvKey,
}

fn hook(label: &str) -> Hook {
    Hook {
        body: HookBody::Script(format!("echo {label}")),
        timeout: DEFAULT_HOOK_TIMEOUT,
    }
}

/// The sample app (web ×2, worker ×1 that stops first) with every hook.
pub fn config() -> AppConfig {
    let mut config = crate::pipeline::plan::tests::sample_config();
    config.hooks.before_release = Some(hook("before_release"));
    config.hooks.deploy = Some(hook("deploy"));
    config.hooks.post_deploy = Some(hook("post_deploy"));
    config
        .hooks
        .after_success
        .insert(HookedOperation::Deploy, hook("after_deploy_success"));
    config
        .hooks
        .after_failure
        .insert(HookedOperation::Deploy, hook("after_deploy_failure"));
    config
}

/// `config()` with a `watch` of `watch` on its web service.
pub fn config_with_watch(watch: Duration) -> AppConfig {
    let mut config = config();
    config
        .services
        .get_mut(&ServiceName::from("web"))
        .and_then(|web| web.http.as_mut())
        .expect("the sample config's web service speaks HTTP")
        .watch = watch;
    config
}

impl World {
    pub fn new() -> Self {
        let events = Events::default();
        let store = Arc::new(MemoryStore::default());
        let runtime = Arc::new(FakeRuntime::new(events.clone()));
        let traffic = Arc::new(FakeTraffic::new(events.clone()));
        let sources = Arc::new(FakeSources::default());
        let fx = Effects {
            store: store.clone(),
            runtime: runtime.clone(),
            traffic: traffic.clone(),
            sources: sources.clone(),
            clock: Arc::new(TestClock {
                start: tokio::time::Instant::now(),
            }),
            reporter: Arc::new(NoReporter),
        };
        let pipeline = Pipeline::new(fx, LogBus::default());
        Self {
            events,
            store,
            runtime,
            traffic,
            sources,
            pipeline,
            env: EnvKey::new("shop", "staging"),
        }
    }

    /// Makes `commit` deployable with `config`.
    pub fn commit(&self, commit: &str, config: AppConfig) {
        self.sources
            .configs
            .lock()
            .unwrap()
            .insert(commit.to_owned(), config);
    }

    pub async fn submit(
        &self,
        kind: OperationKind,
        source: Option<&str>,
        args: serde_json::Value,
    ) -> Operation {
        let source = source.map(|commit| SourceSpec::Git {
            url: "repo".into(),
            reference: commit.into(),
        });
        let new = NewOperation {
            env: self.env.clone(),
            kind,
            source,
            commit: None,
            args,
            initiator: "test".into(),
        };
        self.pipeline.submit(new).await.unwrap()
    }

    /// Deploys a commit and waits for the end.
    pub async fn deploy(&self, commit: &str) -> Operation {
        let op = self
            .submit(OperationKind::Deploy, Some(commit), serde_json::Value::Null)
            .await;
        self.finished(op.id).await
    }

    /// Waits (in paused time) until the operation has ended.
    pub async fn finished(&self, id: OperationId) -> Operation {
        use crate::pipeline::traits::Store;
        for _ in 0..100_000 {
            let op = self.store.operation(id).await.unwrap().unwrap();
            if op.state.is_final() {
                return op;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("operation {id} did not end");
    }

    pub fn log(&self, id: OperationId) -> String {
        self.store.log_text(id).join("\n")
    }

    /// Waits (in paused time) until the runtime or router did something starting with
    /// `prefix`.
    pub async fn event(&self, prefix: &str) {
        for _ in 0..100_000 {
            if self.events.position(prefix).is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no `{prefix}` among {:?}", self.events.all());
    }

    /// The server is SIGKILLed: its operations stop where they stand (what they recorded
    /// stays), its router forgets every route. Instances survive, as processes do; the
    /// hooks that hung died with the server, and would not hang again.
    pub async fn crash(self) -> World {
        self.pipeline.shutdown().await;
        self.runtime.behaviour.lock().unwrap().hanging_hooks.clear();
        self.events.clear();
        let traffic = Arc::new(FakeTraffic::new(self.events.clone()));
        let fx = Effects {
            traffic: traffic.clone(),
            ..self.pipeline.fx.clone()
        };
        World {
            traffic,
            pipeline: Pipeline::new(fx, LogBus::default()),
            ..self
        }
    }

    /// A new server on the same state: recovery, then the workers.
    pub async fn start(&self) {
        self.pipeline.recover().await.unwrap();
        self.pipeline.start_queued().await.unwrap();
    }
}
