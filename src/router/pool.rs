//! Keep-alive connections to one instance, pooled per router worker.
//!
//! A request leases a connection (the most recently used idle one, else a new one), sends
//! on it (`h1.rs`), and the response body gives it back when its last byte has been read —
//! so a connection is never lent while a response is still streaming on it. Each worker thread
//! has its own slot: a connection is only ever used by the thread whose runtime drives it
//! (see `workers.rs`), and the slot's lock is never contended on the hot path.
//!
//! Idle connections are closed after [`IDLE_TIMEOUT`], past [`MAX_IDLE_PER_WORKER`], when
//! the instance closes them (seen when one is next leased), and when the instance leaves
//! the routing table (the pool is dropped with the last reference to it).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::h1::Conn;
use super::workers;

/// An idle connection older than this is closed rather than reused.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle connections kept per instance and worker; more are closed when they come back.
const MAX_IDLE_PER_WORKER: usize = 256;

/// New connections to one instance that have not answered a request yet, at most. A new
/// connection sits in the instance's accept queue until the app takes it, and a queue
/// that overflows drops the next connection attempts, which the kernel retries only a
/// second later: a burst of requests on a cold pool (a switch to new instances under
/// load) must not open more connections at once than a small app's queue holds (Python's
/// `http.server` listens with a backlog of 5). Past it, a request waits for a connection
/// given back or for its turn to open one — at most [`UNPROVEN_WAIT`], after which it
/// opens one anyway: an app that is slow to answer must not be starved of connections.
const UNPROVEN_AT_ONCE: usize = 4;

/// The longest a request waits for a turn to open a connection (see above).
const UNPROVEN_WAIT: Duration = Duration::from_millis(100);

/// The connections to one instance.
#[derive(Debug)]
pub(crate) struct Pool {
    /// `host:port` to connect to.
    address: Box<str>,
    slots: Box<[Slot]>,
    /// Turns to open a connection, held until it answered its first request.
    unproven: Arc<Semaphore>,
}

/// One worker's connections to the instance.
#[derive(Debug, Default)]
struct Slot {
    idle: Mutex<VecDeque<Idle>>,
    /// Told when a connection comes back, for a request waiting for one.
    given_back: Notify,
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    /// When it came back, to within a second (`workers::coarse_now`).
    since: Instant,
}

/// Why no connection could be had.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Refused(std::io::Error),
    TimedOut(Duration),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Refused(error) => write!(f, "could not connect: {error}"),
            ConnectError::TimedOut(after) => write!(f, "could not connect within {after:?}"),
        }
    }
}

/// A connection lent to one request. Given back with [`Lease::give_back`] once the
/// response is whole; dropped otherwise, which closes it.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<Pool>,
    slot: usize,
    pub conn: Conn,
    /// Whether the connection served an earlier request (and so may have been closed by
    /// the instance while idle).
    pub reused: bool,
    /// A new connection's turn, given up once it answered (`answered`) or is dropped.
    unproven: Option<OwnedSemaphorePermit>,
}

impl Pool {
    pub(crate) fn new(address: &str, workers: usize) -> Pool {
        Pool {
            address: address.into(),
            slots: (0..workers.max(1)).map(|_| Slot::default()).collect(),
            unproven: Arc::new(Semaphore::new(UNPROVEN_AT_ONCE)),
        }
    }

    fn slot(&self, index: usize) -> MutexGuard<'_, VecDeque<Idle>> {
        // Every edit of a slot is one push or pop: a panic cannot leave it half-done.
        self.slots[index]
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection of this worker that is still open, else a new one, within
    /// `connect_timeout`.
    pub(crate) async fn lease(
        self: &Arc<Self>,
        connect_timeout: Duration,
    ) -> Result<Lease, ConnectError> {
        let slot = workers::current() % self.slots.len();
        if let Some(lease) = self.idle(slot) {
            return Ok(lease);
        }
        let deadline = tokio::time::Instant::now() + connect_timeout;
        loop {
            let permit = match Arc::clone(&self.unproven).try_acquire_owned() {
                Ok(permit) => Some(permit),
                // As many new connections as the instance may queue are waiting to be
                // taken: wait for one of this worker's to come back, or for a turn.
                Err(_) => {
                    let given_back = self.slots[slot].given_back.notified();
                    let turn = Arc::clone(&self.unproven).acquire_owned();
                    let waited = deadline.min(tokio::time::Instant::now() + UNPROVEN_WAIT);
                    tokio::select! {
                        () = given_back => match self.idle(slot) {
                            Some(lease) => return Ok(lease),
                            None => continue,
                        },
                        permit = turn => permit.ok(),
                        () = tokio::time::sleep_until(waited) => None,
                    }
                }
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let conn = self.connect(left, connect_timeout).await?;
            return Ok(Lease {
                pool: Arc::clone(self),
                slot,
                conn,
                reused: false,
                unproven: permit,
            });
        }
    }

    /// The most recently used idle connection of `slot` that is still open.
    fn idle(self: &Arc<Self>, slot: usize) -> Option<Lease> {
        loop {
            let Idle { mut conn, since } = self.slot(slot).pop_back()?;
            if workers::coarse_now().saturating_duration_since(since) > IDLE_TIMEOUT
                || conn.is_broken()
            {
                continue;
            }
            return Some(Lease {
                pool: Arc::clone(self),
                slot,
                conn,
                reused: true,
                unproven: None,
            });
        }
    }

    /// A new connection within `left` (of the request's `timeout`, which errors name).
    async fn connect(&self, left: Duration, timeout: Duration) -> Result<Conn, ConnectError> {
        let stream = match tokio::time::timeout(left, TcpStream::connect(&*self.address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(ConnectError::Refused(error)),
            Err(_) => return Err(ConnectError::TimedOut(timeout)),
        };
        // Requests and answers are small writes that must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(Conn::new(stream))
    }

    fn put_back(&self, slot: usize, conn: Conn) {
        let now = workers::coarse_now();
        let mut idle = self.slot(slot);
        while idle
            .front()
            .is_some_and(|oldest| now.saturating_duration_since(oldest.since) > IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE_PER_WORKER {
            idle.push_back(Idle { conn, since: now });
            drop(idle);
            self.slots[slot].given_back.notify_one();
        }
    }

    /// Closes the idle connections: the instance was switched away from, so no new
    /// request will lease them.
    pub(crate) fn close_idle(&self) {
        for index in 0..self.slots.len() {
            self.slot(index).clear();
        }
    }
}

impl Lease {
    /// The connection answered a request: the instance has taken it, and another new
    /// connection may be opened in its place in the instance's queue.
    pub(crate) fn answered(&mut self) {
        self.unproven = None;
    }

    /// The response has been read to its end: the connection can serve another request.
    pub(crate) fn give_back(self) {
        self.pool.put_back(self.slot, self.conn);
    }

    /// The connection itself, never to be lent again (an upgrade's tunnel takes it).
    pub(crate) fn into_conn(self) -> Conn {
        self.conn
    }
}
