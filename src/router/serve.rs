//! The accept loops: every worker accepts on its own copy of the listener and runs one task
//! per client connection (HTTP/1.1 with keep-alive, or HTTP/2), upgrades allowed. A
//! worker that accepts a connection while another serves fewer hands it over, so that a
//! burst of new connections (a load balancer's pool opening, a client reconnecting
//! after a restart) is not all served by whichever worker woke first. On shutdown each
//! stops accepting, lets its connections finish the requests they have in flight for up
//! to ten seconds, then closes whatever is left.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::proxy::Connection;
use super::Inner;
use crate::ids::EnvKey;

/// How long requests in flight get once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A connection accepted by one worker for another to serve.
type HandedOver = (std::net::TcpStream, SocketAddr);

pub(crate) async fn serve(
    inner: Arc<Inner>,
    listener: TcpListener,
    env: Option<EnvKey>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(address = %listener.local_addr()?, env = ?env.as_ref().map(ToString::to_string), workers = inner.workers.count(), "router listening");
    // One descriptor per worker, each registered with that worker's event loop; the
    // kernel hands every new connection to whichever worker accepts it first.
    let workers = inner.workers.count();
    let listener = listener.into_std()?;
    let mut copies = (0..workers)
        .map(|_| listener.try_clone())
        .collect::<std::io::Result<Vec<_>>>()?;
    drop(listener);
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
    let mut receivers: Vec<_> = receivers.into_iter().map(Some).collect();
    let share = Arc::new(Share {
        inner: Arc::clone(&inner),
        senders,
    });
    let stop = CancellationToken::new();
    // Dropping this future (its caller gave up on it) stops the loops too.
    let _stop_on_drop = stop.clone().drop_guard();
    let loops = inner.workers.spawn_on_each(|index| {
        let listener = copies.pop().expect("one copy per worker");
        let handed = receivers[index].take().expect("one channel per worker");
        let worker = Worker {
            inner: Arc::clone(&inner),
            env: env.clone(),
            share: Arc::clone(&share),
            index,
        };
        let stop = stop.clone();
        async move {
            let listener = TcpListener::from_std(listener)?;
            worker.accept_loop(listener, handed, stop).await;
            Ok::<_, std::io::Error>(())
        }
    })?;
    drop(share);
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

/// What the workers serving one listener share: how many connections each serves (on
/// every listener), and how to hand one over.
struct Share {
    inner: Arc<Inner>,
    senders: Vec<mpsc::UnboundedSender<HandedOver>>,
}

impl Share {
    fn open(&self, worker: usize) -> &AtomicUsize {
        &self.inner.client_connections[worker]
    }

    /// The worker that should serve a new connection: the one serving the fewest, this
    /// one on a tie. Counted as that worker's from now on.
    fn assign(&self, me: usize) -> usize {
        let open = &self.inner.client_connections;
        let mut best = me;
        let mut fewest = open[me].load(Ordering::Relaxed);
        for (index, count) in open.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            if count < fewest {
                (best, fewest) = (index, count);
            }
        }
        open[best].fetch_add(1, Ordering::Relaxed);
        best
    }
}

/// Counts a connection as its worker's until it ends.
struct Counted(Arc<Share>, usize);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.open(self.1).fetch_sub(1, Ordering::Relaxed);
    }
}

/// One worker's share of a listener.
struct Worker {
    inner: Arc<Inner>,
    env: Option<EnvKey>,
    share: Arc<Share>,
    index: usize,
}

impl Worker {
    /// Accepts, and serves what it accepted or was handed, until `stop`.
    async fn accept_loop(
        self,
        listener: TcpListener,
        mut handed: mpsc::UnboundedReceiver<HandedOver>,
        stop: CancellationToken,
    ) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().keep_alive(true).timer(TokioTimer::new());
        let served = Served {
            builder,
            stopping: Arc::default(),
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
        };

        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                Some((stream, peer)) = handed.recv() => match TcpStream::from_std(stream) {
                    Ok(stream) => {
                        self.serve(&served, stream, peer);
                        continue;
                    }
                    Err(error) => {
                        self.share.open(self.index).fetch_sub(1, Ordering::Relaxed);
                        tracing::warn!(%error, "could not take over a connection");
                        continue;
                    }
                },
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "could not accept a connection");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            let to = self.share.assign(self.index);
            if to == self.index {
                self.serve(&served, stream, peer);
                continue;
            }
            // Handed over as a plain socket, registered again with the other worker's
            // event loop. Should that worker be gone (shutting down), serve it here.
            match stream.into_std() {
                Ok(stream) => {
                    if let Err(mpsc::error::SendError((stream, peer))) =
                        self.share.senders[to].send((stream, peer))
                    {
                        self.share.open(to).fetch_sub(1, Ordering::Relaxed);
                        self.share.open(self.index).fetch_add(1, Ordering::Relaxed);
                        if let Ok(stream) = TcpStream::from_std(stream) {
                            self.serve(&served, stream, peer);
                        } else {
                            self.share.open(self.index).fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                }
                Err(error) => {
                    self.share.open(to).fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(%error, "could not hand a connection over");
                }
            }
        }

        drop(listener);
        drop(handed);
        served.shut_down().await;
    }

    /// Serves one client connection (already counted as this worker's) on this worker.
    fn serve(&self, served: &Served, stream: TcpStream, peer: SocketAddr) {
        let counted = Counted(Arc::clone(&self.share), self.index);
        // Small writes (SSE events, WebSocket frames) must not wait for Nagle.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let connection = Arc::new(Connection {
            router: Arc::clone(&self.inner),
            client_ip: client_ip(peer),
            env: self.env.clone(),
            tunnels: served.tasks.clone(),
            closing: served.closing.clone(),
        });
        // One reference count per request, on this connection's own (the router's is
        // shared by every core).
        let service = service_fn(move |request| {
            let connection = Arc::clone(&connection);
            async move { Ok::<_, Infallible>(connection.router.handle(request, &connection).await) }
        });
        let connection = served
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let watched = Watched {
            connection: Box::pin(connection),
            stopping: Arc::clone(&served.stopping),
            key: served.stopping.key(),
            waker: None,
            told: false,
        };
        served.tasks.spawn(async move {
            let _counted = counted;
            if let Some(Err(error)) = watched.await {
                tracing::debug!(%error, %peer, "client connection ended with an error");
            }
        });
    }
}

/// How a worker tells its client connections that the router stops: first to finish
/// the requests they serve and close (hyper's graceful shutdown), then, past the grace,
/// to close at once. A connection registers its task's waker once, not on every poll as
/// a cancellation future would (a lock and a check per poll, twice a request).
#[derive(Default)]
struct Stopping {
    /// [`RUNNING`], [`GRACEFUL`] or [`CLOSE`].
    state: AtomicU8,
    wakers: std::sync::Mutex<HashMap<u64, Waker>>,
    next_key: AtomicU64,
}

const RUNNING: u8 = 0;
const GRACEFUL: u8 = 1;
const CLOSE: u8 = 2;

impl Stopping {
    fn key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    fn wakers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waker>> {
        // Every edit is one insert or remove: a panic cannot leave the map half-done.
        self.wakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves every connection to `state`, waking each to act on it.
    fn set(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        for waker in self.wakers().values() {
            waker.wake_by_ref();
        }
    }
}

/// A client connection that heeds [`Stopping`]. `None` when it was closed past the grace.
struct Watched<C> {
    connection: std::pin::Pin<Box<C>>,
    stopping: Arc<Stopping>,
    key: u64,
    /// The waker registered with `stopping`, if any.
    waker: Option<Waker>,
    /// Whether the connection was told to shut down gracefully.
    told: bool,
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = Option<Result<(), C::Error>>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Registered before the state is read: a change after the read wakes us.
        if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let waker = cx.waker().clone();
            this.stopping.wakers().insert(this.key, waker.clone());
            this.waker = Some(waker);
        }
        match this.stopping.state.load(Ordering::Acquire) {
            RUNNING => {}
            GRACEFUL if !this.told => {
                this.connection.as_mut().graceful_shutdown();
                this.told = true;
            }
            GRACEFUL => {}
            _ => return Poll::Ready(None),
        }
        this.connection.as_mut().poll(cx).map(Some)
    }
}

impl<C> Drop for Watched<C> {
    fn drop(&mut self) {
        if self.waker.is_some() {
            self.stopping.wakers().remove(&self.key);
        }
    }
}

/// The connections one worker serves for one listener, and how they end.
struct Served {
    builder: auto::Builder<TokioExecutor>,
    stopping: Arc<Stopping>,
    tasks: TaskTracker,
    closing: CancellationToken,
}

impl Served {
    /// Lets requests in flight finish within the grace, then closes what is left.
    async fn shut_down(self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        self.stopping.set(GRACEFUL);
        self.tasks.close();
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "requests still in flight after {SHUTDOWN_GRACE:?}; closing their connections"
            );
            self.stopping.set(CLOSE);
            self.closing.cancel();
            self.tasks.wait().await;
        }
    }
}

fn client_ip(peer: SocketAddr) -> HeaderValue {
    let ip = peer.ip().to_canonical().to_string();
    // An IP address is always a valid header value.
    HeaderValue::from_str(&ip).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}
