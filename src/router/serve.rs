//! The accept loops: every worker accepts on its own copy of the listener and runs one task
//! per client connection it accepted (HTTP/1.1 with keep-alive, or HTTP/2), upgrades
//! allowed. On shutdown each stops accepting, lets its connections finish the requests
//! they have in flight for up to ten seconds, then closes whatever is left.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::proxy::Connection;
use super::Inner;
use crate::ids::EnvKey;

/// How long requests in flight get once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub(crate) async fn serve(
    inner: Arc<Inner>,
    listener: TcpListener,
    env: Option<EnvKey>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(address = %listener.local_addr()?, env = ?env.as_ref().map(ToString::to_string), workers = inner.workers.count(), "router listening");
    // One descriptor per worker, each registered with that worker's event loop; the
    // kernel hands every new connection to whichever worker accepts it first.
    let listener = listener.into_std()?;
    let mut copies = (0..inner.workers.count())
        .map(|_| listener.try_clone())
        .collect::<std::io::Result<Vec<_>>>()?;
    drop(listener);
    let stop = CancellationToken::new();
    // Dropping this future (its caller gave up on it) stops the loops too.
    let _stop_on_drop = stop.clone().drop_guard();
    let loops = inner.workers.spawn_on_each(|_| {
        let listener = copies.pop().expect("one copy per worker");
        let (inner, env, stop) = (Arc::clone(&inner), env.clone(), stop.clone());
        async move {
            let listener = TcpListener::from_std(listener)?;
            accept_loop(inner, listener, env, stop).await;
            Ok::<_, std::io::Error>(())
        }
    })?;
    shutdown.await;
    stop.cancel();
    let mut result = Ok(());
    for worker in loops {
        match worker.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => result = Err(error),
            Err(error) => result = Err(std::io::Error::other(error)),
        }
    }
    result
}

/// One worker's share of a listener, until `stop`.
async fn accept_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    env: Option<EnvKey>,
    stop: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true).timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let tasks = TaskTracker::new();
    let closing = CancellationToken::new();

    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Small writes (SSE events, WebSocket frames) must not wait for Nagle.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let connection = Arc::new(Connection {
            client_ip: client_ip(peer),
            env: env.clone(),
            tunnels: tasks.clone(),
            closing: closing.clone(),
        });
        let inner = Arc::clone(&inner);
        let service = service_fn(move |request| {
            let inner = Arc::clone(&inner);
            let connection = Arc::clone(&connection);
            async move { Ok::<_, Infallible>(inner.handle(request, &connection).await) }
        });
        let served = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned(),
        );
        let closing = closing.clone();
        tasks.spawn(async move {
            tokio::select! {
                result = served => if let Err(error) = result {
                    tracing::debug!(%error, %peer, "client connection ended with an error");
                },
                _ = closing.cancelled() => {}
            }
        });
    }

    drop(listener);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {SHUTDOWN_GRACE:?}; closing their connections"
        );
    }
    tasks.close();
    if tokio::time::timeout_at(deadline, tasks.wait())
        .await
        .is_err()
    {
        closing.cancel();
        tasks.wait().await;
    }
}

fn client_ip(peer: SocketAddr) -> HeaderValue {
    let ip = peer.ip().to_canonical().to_string();
    // An IP address is always a valid header value.
    HeaderValue::from_str(&ip).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}
