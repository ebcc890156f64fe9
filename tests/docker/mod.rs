//! The harness of the docker runtime's tests: a whole Slipway stack in this process
//! (SQLite store, router, pipeline) on the real Docker Engine, test images built from
//! Debian's `busybox-static`, and a `docker-registry` on loopback.
//!
//! Every app a test deploys has a unique name; dropping its `Cleanup` removes every
//! container and image labelled with it, so a failing test leaves nothing behind.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use slipway::ids::EnvKey;
use slipway::pipeline::log::LogBus;
use slipway::pipeline::model::{NewOperation, Operation, OperationKind, SourceSpec};
use slipway::pipeline::traits::{Effects, NoReporter, Store, SystemClock};
use slipway::pipeline::Pipeline;
use slipway::router::{Router, RouterOptions};
use slipway::runtime::docker::{DockerRuntime, DockerSources};
use slipway::source::LocalSources;
use slipway::store::SqliteStore;
use tokio_util::sync::CancellationToken;

/// The base image of every test app: busybox (sh, httpd) on an empty image.
pub const BASE_IMAGE: &str = "slipway-test/busybox:latest";

/// How long any deploy may take before the test gives up.
const OPERATION_LIMIT: Duration = Duration::from_secs(120);

/// Runs `docker` and returns its stdout; panics with its stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        output.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The engine must be there: these tests fail, loudly, rather than skip.
pub async fn require_engine() -> DockerRuntime {
    match DockerRuntime::connect().await {
        Ok(runtime) => runtime,
        Err(error) => {
            panic!("the docker runtime tests need a Docker Engine, and none answered: {error}")
        }
    }
}

/// Builds `BASE_IMAGE` once per test binary.
pub fn base_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let busybox = Path::new("/usr/bin/busybox");
        assert!(busybox.is_file(), "the docker tests need Debian's busybox-static (apt-get install busybox-static)");
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::copy(busybox, dir.path().join("busybox")).expect("copy busybox");
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nLABEL slipway.test=base\n",
        )
        .expect("write the Dockerfile");
        docker(&["build", "-q", "-t", BASE_IMAGE, &dir.path().to_string_lossy()]);
    });
    BASE_IMAGE
}

/// A name no other test (or run) uses.
pub fn unique_app(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the containers and images of an app when dropped.
pub struct Cleanup {
    pub app: String,
    pub images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let run = |args: &[&str]| Command::new("docker").args(args).output().ok();
        let label = format!("label=slipway.app={}", self.app);
        if let Some(out) = run(&["ps", "-aq", "--filter", &label]) {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                run(&["rm", "-f", "-v", id]);
            }
        }
        let repository = format!("slipway/{}", self.app);
        if let Some(out) = run(&["images", "-q", &repository]) {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                run(&["rmi", "-f", id]);
            }
        }
        for image in &self.images {
            run(&["rmi", "-f", image]);
        }
    }
}

/// An app folder: a Dockerfile on the base image, a page that says `marker`, a
/// `/healthcheck`, and the given `slipway.yml`.
pub fn app_dir(root: &Path, name: &str, marker: &str, slipway_yml: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("www")).expect("create the app folder");
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY www /www\nCOPY slipway.yml /app/slipway.yml\nWORKDIR /app\n",
            base_image()
        ),
    )
    .expect("write the Dockerfile");
    std::fs::write(dir.join("www/index.html"), format!("{marker}\n")).expect("write the page");
    std::fs::write(dir.join("www/healthcheck"), "ok\n").expect("write the health page");
    std::fs::write(dir.join("slipway.yml"), slipway_yml).expect("write slipway.yml");
    dir
}

/// A `slipway.yml` for a busybox httpd web service, with `extra` lines appended.
pub fn web_config(app: &str, command: &str, stop_timeout: &str, extra: &str) -> String {
    format!(
        "app: {app}\nservices:\n  web:\n    command: {command}\n    size: 64\n    stop_timeout: {stop_timeout}\n    http:\n      health:\n        path: /healthcheck\n        strict: true\n        interval: 100ms\n        deadline: 8s\n{extra}"
    )
}

pub const HTTPD: &str = "exec httpd -f -p $PORT -h /www";

/// A whole Slipway stack with the docker runtime, in this process.
pub struct Stack {
    pub pipeline: Pipeline,
    pub store: Arc<SqliteStore>,
    pub router_addr: SocketAddr,
    pub data_dir: PathBuf,
    shutdown: CancellationToken,
    router_task: tokio::task::JoinHandle<()>,
}

impl Stack {
    pub async fn start(data_dir: &Path) -> Stack {
        let runtime = require_engine().await;
        std::fs::create_dir_all(data_dir).expect("the data directory");
        let store = Arc::new(SqliteStore::open(data_dir).await.expect("the store opens"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the router");
        let router_addr = listener.local_addr().expect("the router's address");
        let router = Router::new(router_addr, RouterOptions::default());
        let local = LocalSources::new(data_dir.to_owned(), None, "https://github.com");
        let sources = DockerSources::new(local, &runtime, data_dir).expect("the image sources");
        let fx = Effects {
            store: store.clone(),
            runtime: Arc::new(runtime),
            traffic: Arc::new(router.clone()),
            sources: Arc::new(sources),
            clock: Arc::new(SystemClock),
            reporter: Arc::new(NoReporter),
        };
        let pipeline = Pipeline::new(fx, LogBus::default());
        pipeline.recover().await.expect("recovery");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let router_task = tokio::spawn(async move {
            let _ = router
                .serve(listener, async move { stop.cancelled().await })
                .await;
        });
        Stack {
            pipeline,
            store,
            router_addr,
            data_dir: data_dir.to_owned(),
            shutdown,
            router_task,
        }
    }

    /// Stops the stack as a server stops: the apps keep running.
    pub async fn stop(self) {
        self.pipeline.shutdown().await;
        self.shutdown.cancel();
        let _ = self.router_task.await;
    }

    pub async fn deploy(&self, app: &str, env: &str, source: SourceSpec) -> Operation {
        self.run(app, env, OperationKind::Deploy, Some(source))
            .await
    }

    pub async fn run(
        &self,
        app: &str,
        env: &str,
        kind: OperationKind,
        source: Option<SourceSpec>,
    ) -> Operation {
        let new = NewOperation {
            env: EnvKey::new(app, env),
            kind,
            source,
            commit: None,
            args: serde_json::json!({}),
            initiator: "docker tests".into(),
        };
        let op = self
            .pipeline
            .submit(new)
            .await
            .expect("the operation is queued");
        let started = Instant::now();
        loop {
            let now = self
                .store
                .operation(op.id)
                .await
                .expect("read the operation")
                .expect("the operation exists");
            if now.state.is_final() {
                return now;
            }
            assert!(
                started.elapsed() < OPERATION_LIMIT,
                "operation {} did not end within {OPERATION_LIMIT:?}",
                op.id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn log(&self, op: &Operation) -> String {
        let lines = self
            .store
            .log_lines(op.id, 0, 100_000)
            .await
            .expect("read the log");
        lines
            .into_iter()
            .map(|l| l.text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `GET /` of an environment through the router: status and body.
    pub async fn get(&self, app: &str, env: &str) -> Result<(u16, String), String> {
        get_via(self.router_addr, &format!("{app}-{env}.localhost")).await
    }
}

/// One request through the router, on a fresh connection.
pub async fn get_via(router: SocketAddr, host: &str) -> Result<(u16, String), String> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a client")
    });
    let response = client
        .get(format!("http://{router}/"))
        .header("host", host)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body.trim().to_owned()))
}

/// An upload source of a folder, as `slipway deploy DIR` sends it.
pub fn upload(dir: &Path) -> SourceSpec {
    let content_hash = slipway::source::upload::content_hash(dir).expect("hash the folder");
    SourceSpec::Upload {
        path: dir.to_string_lossy().into_owned(),
        commit: None,
        content_hash,
    }
}

/// Waits for `condition` with a deadline, polling.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The containers of an app, by label.
pub fn containers_of(app: &str, role: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=slipway.app={app}"),
        "--filter",
        &format!("label=slipway.role={role}"),
    ]);
    out.split_whitespace().map(str::to_owned).collect()
}

/// Debian's `docker-registry` on a free loopback port, with its storage in a temporary
/// folder; killed when dropped.
pub struct Registry {
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub async fn start() -> Registry {
        let binary = "/usr/bin/docker-registry";
        assert!(
            Path::new(binary).is_file(),
            "the docker tests need Debian's docker-registry (apt-get install docker-registry)"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
                dir.path().join("storage").display()
            ),
        )
        .expect("write the registry's config");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry {
            address,
            child,
            _dir: dir,
        };
        let url = format!("http://{}/v2/", registry.address);
        wait_for(Duration::from_secs(20), "the registry to answer", || {
            let url = url.clone();
            async move {
                reqwest::get(&url)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        registry
    }

    /// Builds `dir` as `<registry>/<name>:<tag>`, pushes it, and returns the pushed digest.
    pub fn push(&self, dir: &Path, name: &str, tag: &str) -> String {
        let reference = format!("{}/{name}:{tag}", self.address);
        docker(&["build", "-q", "-t", &reference, &dir.to_string_lossy()]);
        let out = docker(&["push", &reference]);
        let digest = out
            .split_whitespace()
            .skip_while(|w| *w != "digest:")
            .nth(1)
            .unwrap_or_else(|| panic!("no digest in the output of docker push: {out}"));
        digest.to_owned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
