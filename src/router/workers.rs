//! The router's own threads: one single-threaded tokio runtime per worker, the way nginx
//! runs one event loop per worker process.
//!
//! A proxied request crosses two connections, the client's and the instance's; when both
//! are driven by the same thread, handing the request from one to the other is a local
//! wake-up, not a cross-thread one (no futex, no work stealing, no cache line bouncing
//! between cores). So every worker accepts on its own copy of each listener, serves the
//! connections it accepted, and keeps its own pool of connections to the instances
//! (`pool.rs`), indexed by [`current`].
//!
//! The threads start with the first listener served and stop when the router is dropped.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

thread_local! {
    /// The index of the worker running on this thread; 0 on any other thread.
    static WORKER: Cell<usize> = const { Cell::new(0) };
    /// The time at the worker's last heartbeat: a clock read that costs nothing.
    static COARSE_NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The index of the worker this code runs on (0 outside the router's threads), for the
/// per-worker connection pools.
pub(crate) fn current() -> usize {
    WORKER.with(Cell::get)
}

/// The time to within [`HEARTBEAT`], for bookkeeping of that precision (when a pooled
/// connection went idle): read once a second on a worker, rather than once a request.
/// Exact on any other thread.
pub(crate) fn coarse_now() -> Instant {
    COARSE_NOW.with(Cell::get).unwrap_or_else(Instant::now)
}

/// A value of one worker, alone on its cache line: a worker writing its own never moves
/// another's between cores.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub T);

impl Padded<AtomicU64> {
    /// Adds one. Only the worker owning this value writes it, so a plain load and store
    /// do, without the locked instruction an atomic add costs; other threads only read.
    pub(crate) fn bump(&self) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value + 1, Ordering::Relaxed);
    }
}

/// The worker threads, started on first use.
pub(crate) struct Workers {
    count: usize,
    started: OnceLock<Started>,
}

struct Started {
    handles: Vec<Handle>,
    /// Cancelled when the router is dropped: every worker's runtime then ends.
    stop: CancellationToken,
}

impl Workers {
    pub(crate) fn new(count: usize) -> Workers {
        Workers {
            count: count.max(1),
            started: OnceLock::new(),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Runs `make(index)`'s future on every worker (`make` is called once per worker, in
    /// order); returns how to wait for each.
    pub(crate) fn spawn_on_each<F, Fut>(
        &self,
        mut make: F,
    ) -> std::io::Result<Vec<tokio::task::JoinHandle<Fut::Output>>>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let started = self.start()?;
        Ok(started
            .handles
            .iter()
            .enumerate()
            .map(|(index, handle)| handle.spawn(make(index)))
            .collect())
    }

    fn start(&self) -> std::io::Result<&Started> {
        if let Some(started) = self.started.get() {
            return Ok(started);
        }
        let stop = CancellationToken::new();
        let mut handles = Vec::with_capacity(self.count);
        for index in 0..self.count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("slipway-router-{index}"))
                .spawn(move || {
                    WORKER.with(|worker| worker.set(index));
                    runtime.block_on(async {
                        tokio::spawn(heartbeat());
                        stop.cancelled().await;
                    });
                    // Dropping the runtime here cancels whatever it still runs (idle
                    // connections to instances) on the thread that owns it.
                })?;
        }
        // Two racing first calls: the loser's threads stop at once.
        let started = Started { handles, stop };
        match self.started.set(started) {
            Ok(()) => {}
            Err(lost) => lost.stop.cancel(),
        }
        Ok(self.started.get().expect("set just above"))
    }
}

/// Keeps a timer due within a second on every worker, and the worker's coarse clock.
/// Registering a timer that is due before every other one makes tokio wake its driver
/// with a syscall (an `eventfd` write) in case it is parked; with this tick always
/// sooner, a request's 60 s upstream timeout and hyper's 30 s header-read timeout are
/// registered without one.
async fn heartbeat() {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        COARSE_NOW.with(|now| now.set(Some(Instant::now())));
    }
}

const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

impl Drop for Workers {
    fn drop(&mut self) {
        if let Some(started) = self.started.get() {
            started.stop.cancel();
        }
    }
}
