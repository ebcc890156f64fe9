//! The accept loop of `--listen` (API and webhooks): HTTP/1.1 with keep-alive, or
//! HTTP/2, one task per connection, with a deadline on each request's headers.
//!
//! `axum::serve` sets no timer, so a client that sends its headers a byte at a time
//! (slow-loris) would hold its connection, and a task, forever. Here hyper's
//! `header_read_timeout` closes a connection whose request headers are not all in
//! within `read_timeout`, counted from the first time hyper waits for them; a
//! keep-alive connection left idle that long is closed the same way, which a client
//! simply reopens. On shutdown it stops accepting and lets requests in flight finish,
//! as `axum::serve` did.

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

/// How long requests in flight get once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    let graceful = GracefulShutdown::new();
    let tasks = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "could not accept an API connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let served = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned(),
        );
        tasks.spawn(async move {
            if let Err(error) = served.await {
                // A header timeout lands here too: the client was too slow, not a fault.
                tracing::debug!(%error, %peer, "an API connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("API requests still in flight after {SHUTDOWN_GRACE:?}; closing them");
    }
    tasks.close();
}
