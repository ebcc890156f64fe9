//! Slipway's built-in HTTP router: a reverse proxy in front of every environment's web
//! instances, built so a deploy drops no request.
//!
//! - Requests are routed by `Host` (`<app>-<env>.localhost`, or a configured domain), or by
//!   a fixed port per environment (`serve_environment`).
//! - The routing table is an immutable snapshot swapped atomically (`switch`); requests
//!   read it with one `ArcSwap` load and take no lock.
//! - Every request to a backend is counted until its response body ends, so `drain` can
//!   wait for the old instances to finish before they are stopped.
//! - `hold` parks new requests while a `deploy` hook runs; `release_hold` sends them to the
//!   backends current at that moment.
//! - Connections are served by the router's own worker threads, one single-threaded
//!   runtime each, with a pool of keep-alive connections to the instances per worker
//!   (`workers.rs`, `pool.rs`).
//!
//! **Invariant:** the router never decides what is healthy; it routes to exactly the
//! backends the pipeline last switched to.

mod body;
mod h1;
mod headers;
mod hold;
mod inflight;
mod pool;
mod ports;
mod probe;
mod proxy;
mod send;
mod serve;
mod table;
mod upgrade;
mod workers;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use tokio::net::TcpListener;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::ports::Ports;
use self::table::{Environments, Table};
use self::workers::{Padded, Workers};
use crate::ids::{EnvKey, ReleaseNumber};
use crate::pipeline::traits::{Backend, Exposure, Traffic};

/// How long the router waits on the instances behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterOptions {
    /// No response headers from an instance by then: 504.
    pub upstream_timeout: Duration,
    /// Connecting to an instance takes longer: it counts as refused.
    pub connect_timeout: Duration,
    /// Threads serving connections, each with its own event loop.
    pub workers: usize,
}

impl Default for RouterOptions {
    fn default() -> Self {
        Self {
            upstream_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            workers: default_workers(),
        }
    }
}

/// One worker per core, as nginx's `worker_processes auto`.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The router. Cheap to clone: every clone routes with the same table.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

/// What every request and every pipeline call shares.
pub(crate) struct Inner {
    listen: SocketAddr,
    options: RouterOptions,
    /// The snapshot requests route with.
    table: ArcSwap<Table>,
    /// The record the snapshot is built from; locked only by the pipeline's calls.
    environments: Mutex<Environments>,
    workers: Workers,
    /// Client connections each worker serves, on every listener: a new one goes to the
    /// worker serving the fewest (`serve.rs`).
    client_connections: Box<[std::sync::atomic::AtomicUsize]>,
    /// Requests received, counted per worker: one counter that every core writes would
    /// move its cache line between them on every request.
    requests: Box<[workers::Padded<AtomicU64>]>,
    /// Environments' own ports, their listeners, and the token that stops them all.
    ports: Ports,
    port_listeners: TaskTracker,
    closing: CancellationToken,
}

impl Router {
    /// A router that says it listens on `listen` (for `url` and `probe`); it serves once
    /// given a listener.
    pub fn new(listen: SocketAddr, options: RouterOptions) -> Router {
        let workers = Workers::new(options.workers);
        Router {
            inner: Arc::new(Inner {
                listen,
                table: ArcSwap::from_pointee(Table::default()),
                environments: Mutex::new(Environments::new(workers.count())),
                requests: (0..workers.count()).map(|_| Padded::default()).collect(),
                client_connections: (0..workers.count())
                    .map(|_| std::sync::atomic::AtomicUsize::new(0))
                    .collect(),
                workers,
                options,

                ports: Ports::default(),
                port_listeners: TaskTracker::new(),
                closing: CancellationToken::new(),
            }),
        }
    }

    /// Serves every environment by `Host` until `shutdown` resolves; then stops accepting
    /// and gives requests in flight up to 10 s. The environments' own ports stop with it.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let served = serve::serve(Arc::clone(&self.inner), listener, None, shutdown).await;
        self.inner.closing.cancel();
        self.inner.port_listeners.close();
        self.inner.port_listeners.wait().await;
        served
    }

    /// Serves one environment on its own listener (its fixed port), whatever the `Host`.
    pub async fn serve_environment(
        self,
        env: EnvKey,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        serve::serve(self.inner, listener, Some(env), shutdown).await
    }

    /// Extra host names of an environment (its configured domains), replacing earlier ones.
    pub fn set_domains(&self, env: &EnvKey, domains: Vec<String>) {
        self.inner
            .update(|environments| environments.set_domains(env, domains));
    }

    /// Stops routing an environment (it was torn down); held requests are let go.
    pub fn remove(&self, env: &EnvKey) {
        if let Some(gate) = self.inner.update(|environments| environments.remove(env)) {
            gate.release();
        }
        self.inner.ports.close(env);
    }

    /// Requests received since start, for `/metrics`.
    pub fn requests_total(&self) -> u64 {
        self.inner
            .requests
            .iter()
            .map(|count| count.0.load(Ordering::Relaxed))
            .sum()
    }

    /// The client connections each of the router's workers serves now, for `/metrics`.
    pub fn client_connections(&self) -> Vec<usize> {
        self.inner
            .client_connections
            .iter()
            .map(|open| open.load(Ordering::Relaxed))
            .collect()
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("listen", &self.inner.listen)
            .field("options", &self.inner.options)
            .field("requests_total", &self.requests_total())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn environments(&self) -> MutexGuard<'_, Environments> {
        // A panic while the record was locked left it whole (every edit is one assignment).
        self.environments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Edits the record and publishes a new snapshot, under the lock so edits are ordered.
    fn update<R>(&self, change: impl FnOnce(&mut Environments) -> R) -> R {
        let mut environments = self.environments();
        let result = change(&mut environments);
        self.table.store(Arc::new(environments.build()));
        result
    }
}

impl Router {
    /// Maintenance: holds the environment's requests (each waits up to `longest_wait`,
    /// then gets a 503 saying so) until `maintenance(env, None)`. Independent of the holds
    /// that deploys take.
    pub fn maintenance(&self, env: &EnvKey, longest_wait: Option<Duration>) {
        tracing::info!(%env, on = longest_wait.is_some(), "maintenance");
        self.inner
            .update(|environments| environments.hold_gate(env))
            .maintenance(longest_wait);
    }

    /// Whether an environment is in maintenance.
    pub fn in_maintenance(&self, env: &EnvKey) -> bool {
        self.inner
            .update(|environments| environments.hold_gate(env))
            .in_maintenance()
    }
}

#[async_trait]
impl Traffic for Router {
    async fn expose(&self, env: &EnvKey, exposure: &Exposure) -> Result<(), String> {
        self.set_port(env, exposure.port).await?;
        self.set_domains(env, exposure.domain.iter().cloned().collect());
        Ok(())
    }

    async fn switch(&self, env: &EnvKey, backends: Vec<Backend>) {
        tracing::info!(%env, backends = backends.len(), "switching traffic");
        self.inner
            .update(|environments| environments.set_backends(env, backends));
    }

    async fn standby(&self, env: &EnvKey, backends: Vec<Backend>) {
        tracing::info!(%env, backends = backends.len(), "backends on standby for retries");
        self.inner
            .update(|environments| environments.set_standby(env, backends));
    }

    async fn hold(&self, env: &EnvKey, hold: Duration) {
        tracing::info!(%env, ?hold, "holding requests");
        self.inner
            .update(|environments| environments.hold_gate(env))
            .hold(hold);
    }

    async fn release_hold(&self, env: &EnvKey) {
        tracing::info!(%env, "releasing held requests");
        self.inner
            .update(|environments| environments.hold_gate(env))
            .release();
    }

    async fn drain(&self, backends: &[Backend], deadline: Duration) -> usize {
        let counters = self.inner.environments().counters_for(backends);
        let deadline = tokio::time::Instant::now() + deadline;
        let mut left = 0;
        for counter in counters {
            left += counter.wait_idle(deadline).await;
        }
        left
    }

    async fn probe(&self, env: &EnvKey) -> Result<ReleaseNumber, String> {
        probe::probe(&self.inner, env).await
    }

    fn url(&self, env: &EnvKey) -> String {
        let host = self
            .inner
            .environments()
            .domain_of(env)
            .unwrap_or_else(|| table::default_host(env));
        match self.inner.listen.port() {
            80 => format!("http://{host}"),
            port => format!("http://{host}:{port}"),
        }
    }
}
