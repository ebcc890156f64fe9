//! `slipway serve`: the API, the router and the pipeline in one process. Only this
//! module knows HTTP routes and JSON shapes of the API.

pub mod activity;
pub mod api;
pub mod auth;
pub mod catalog;
pub mod error;
pub mod listen;
pub mod maintenance;
pub mod metrics;
pub mod openapi;
pub mod operations;
pub mod reports;
pub mod tokens;
pub mod views;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ids::EnvKey;
use crate::pipeline::log::LogBus;
use crate::pipeline::traits::{Effects, NoReporter, Store, SystemClock, Traffic};
use crate::pipeline::Pipeline;
use crate::router::{Router, RouterOptions};
use crate::runtime::local::LocalRuntime;
use crate::source::LocalSources;
use crate::store::SqliteStore;

/// Which runtime instances run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    Local,
    Docker,
}

/// What `slipway serve` is configured with (flags, or `SLIPWAY_*` variables).
#[derive(Clone)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub router: SocketAddr,
    pub runtime: RuntimeKind,
    pub public_url: Option<String>,
    /// Used to fetch git repositories; never logged.
    pub github_token: Option<String>,
    /// Webhooks in, statuses out (`public_url` is filled in by `start`).
    pub github: crate::github::GitHubOptions,
    /// The `slipway` binary, to mask instance output with `slipway __mask-log` (local
    /// runtime); `None` writes instance output to its file unmasked.
    pub output_masker: Option<PathBuf>,
    /// The router's timeouts.
    pub router_options: RouterOptions,
    /// How long a client of `listen` may take to send a request's headers, and a
    /// webhook delivery's body; a slower one is cut off (`DEFAULT_READ_TIMEOUT`).
    pub read_timeout: std::time::Duration,
}

/// GitHub gives a delivery 10 seconds; no honest client of the API needs longer to send
/// its headers.
pub const DEFAULT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The running `slipway` binary, when this process is one: what masks instance output.
/// A test binary that starts a server in-process is not, and gets `None`.
pub fn own_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    (exe.file_stem()? == "slipway").then_some(exe)
}

/// Written by hand so that the GitHub token never reaches a log.
impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("router", &self.router)
            .field("runtime", &self.runtime)
            .field("public_url", &self.public_url)
            .field("github_token", &self.github_token.as_ref().map(|_| "****"))
            .field("github", &self.github)
            .field("output_masker", &self.output_masker)
            .field("router_options", &self.router_options)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot use the data directory {path}: {source}; check --data")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr} ({what}): {source}; is another server running there? choose another with {flag}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        flag: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Docker(#[from] crate::runtime::docker::DockerSetupError),
    #[error("recovering interrupted operations failed: {0}")]
    Recovery(String),
    #[error("{0}")]
    GitHub(#[from] crate::github::GitHubError),
    #[error("{0}")]
    TestPause(String),
}

/// What the API handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Pipeline,
    pub store: Arc<dyn Store>,
    /// The same database, for the API's own tables and queries (tokens, activity, metrics).
    pub sqlite: Arc<SqliteStore>,
    pub router: Router,
    pub admin_hash: [u8; 32],
    pub data_dir: PathBuf,
}

impl AppState {
    pub fn router_url(&self, env: &EnvKey) -> String {
        self.router.url(env)
    }
}

/// A started server: its addresses, and the handle that stops it.
pub struct RunningServer {
    pub api_addr: SocketAddr,
    pub router_addr: SocketAddr,
    pub admin_token_path: PathBuf,
    pub state: AppState,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, and stops the workers. Running
    /// apps keep running: the next start re-adopts them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.state.pipeline.shutdown().await;
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Opens the state, recovers interrupted operations, binds the API and the router, and
/// starts serving. Every port is bound before anything is served, so a taken port fails
/// the start cleanly.
pub async fn start(options: ServerOptions) -> Result<RunningServer, ServerError> {
    let data_dir = options.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| ServerError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let data_dir = data_dir
        .canonicalize()
        .map_err(|source| ServerError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
    restrict_to_owner(&data_dir).map_err(|source| ServerError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let admin_token =
        auth::load_or_create_admin_token(&data_dir).map_err(|source| ServerError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;

    // Test-only: unset, as it always is outside Slipway's own tests, it does nothing.
    if let Some(point) = crate::pause::arm_from_env(&data_dir).map_err(ServerError::TestPause)? {
        tracing::warn!(
            point = point.name(),
            "{} is set: this server stops for good at that point (a test-only setting)",
            crate::pause::VARIABLE
        );
    }
    let (api_listener, api_addr) = bind(options.listen, "API", "--listen").await?;
    let (router_listener, router_addr) = bind(options.router, "router", "--router").await?;

    let sqlite = Arc::new(SqliteStore::open(&data_dir).await?);
    let pool = sqlite.pool().clone();
    let store: Arc<dyn Store> = sqlite.clone();
    let router = Router::new(router_addr, options.router_options.clone());
    let github_options = crate::github::GitHubOptions {
        public_url: options
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{api_addr}")),
        ..options.github.clone()
    };
    let github = crate::github::GitHub::new(
        github_options,
        &data_dir,
        pool,
        store.clone(),
        Arc::new(router.clone()),
    )?;
    let local = LocalSources::new(
        data_dir.clone(),
        options.github_token.clone(),
        &options.github.git_url,
    );
    let (runtime, local_sources): (
        Arc<dyn crate::pipeline::traits::Runtime>,
        Arc<dyn crate::pipeline::traits::Sources>,
    ) = match options.runtime {
        RuntimeKind::Docker => {
            crate::runtime::docker::runtime_and_sources(&data_dir, local).await?
        }
        RuntimeKind::Local => (
            Arc::new(match &options.output_masker {
                Some(exe) => LocalRuntime::new(data_dir.clone()).with_output_masker(exe.clone()),
                None => LocalRuntime::new(data_dir.clone()),
            }),
            Arc::new(local),
        ),
    };
    let fx = Effects {
        store: store.clone(),
        runtime,
        traffic: Arc::new(router.clone()),
        sources: match &github {
            Some(github) => Arc::new(crate::github::sources::GitHubSources {
                inner: local_sources,
                shared: github.shared.clone(),
                data_dir: data_dir.clone(),
            }),
            None => local_sources,
        },
        clock: Arc::new(SystemClock),
        reporter: match &github {
            Some(github) => github.reporter(),
            None => Arc::new(NoReporter),
        },
    };
    let pipeline = Pipeline::new(fx, LogBus::default());
    pipeline
        .recover()
        .await
        .map_err(|e| ServerError::Recovery(e.to_string()))?;
    // An environment an operator put in maintenance stays in it across a restart.
    for env in sqlite
        .environments_in_maintenance()
        .await
        .map_err(|e| ServerError::Recovery(e.to_string()))?
    {
        router.maintenance(&env, Some(maintenance::MAINTENANCE_WAIT));
    }

    let state = AppState {
        pipeline: pipeline.clone(),
        store,
        sqlite: sqlite.clone(),
        router: router.clone(),
        admin_hash: auth::hash_token(&admin_token),
        data_dir: data_dir.clone(),
    };
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let router_shutdown = shutdown.clone();
    tasks.spawn(async move {
        if let Err(error) = router
            .serve(
                router_listener,
                async move { router_shutdown.cancelled().await },
            )
            .await
        {
            tracing::error!(%error, "the router stopped");
        }
    });
    tasks.spawn(reports::run(sqlite, data_dir.clone(), shutdown.clone()));
    let app = routes(state.clone());
    let app = match &github {
        Some(github) => app.merge(webhooks::routes(github.clone(), options.read_timeout)),
        None => app,
    };
    let api_shutdown = shutdown.clone();
    tasks.spawn(listen::serve(
        api_listener,
        app,
        options.read_timeout,
        async move { api_shutdown.cancelled().await },
    ));
    if let Some(github) = &github {
        github.spawn(pipeline.clone(), &tasks, shutdown.clone());
    }
    pipeline
        .start_queued()
        .await
        .map_err(|e| ServerError::Recovery(e.to_string()))?;
    tracing::info!(api = %api_addr, router = %router_addr, data = %data_dir.display(), "slipway is serving");
    Ok(RunningServer {
        api_addr,
        router_addr,
        admin_token_path: data_dir.join("admin.token"),
        state,
        shutdown,
        tasks,
    })
}

/// Makes the data directory its owner's only (0700): it holds the database, whose
/// variables are secrets stored as they were set, and the admin token. Other users of
/// the machine then cannot read either, whatever the umask made of the files inside.
fn restrict_to_owner(data_dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data_dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
        tracing::info!(data = %data_dir.display(), "made the data directory readable by its owner only (0700)");
    }
    Ok(())
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Binds a listener and reads the address it got (the port, when asked for port 0); a
/// failure names the flag that chose the address.
async fn bind(
    addr: SocketAddr,
    what: &'static str,
    flag: &'static str,
) -> Result<(TcpListener, SocketAddr), ServerError> {
    let error = |source| ServerError::Bind {
        addr,
        what,
        flag,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}

/// The API's routes.
pub fn routes(state: AppState) -> axum::Router {
    // Every /api/v1 route comes from `openapi::api_router`, which documents it.
    let (api_routes, _document) = openapi::api_router().split_for_parts();
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .merge(api_routes)
        .fallback(error::no_route)
        .with_state(state)
}
