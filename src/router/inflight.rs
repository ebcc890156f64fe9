//! In-flight accounting per backend, so a switch can drain the old instances before they
//! are stopped: every request (and every upgraded connection) to a backend holds a guard
//! until its response body is finished or dropped, and `drain` waits for the count to reach
//! zero without polling.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How many requests a backend is serving right now.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    /// Woken whenever the count drops to zero.
    idle: Notify,
}

impl InFlight {
    /// Counts one more request until the returned guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard {
            counter: Arc::clone(self),
        }
    }

    pub(crate) fn current(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until nothing is in flight or `deadline` passes; returns what is left.
    pub(crate) async fn wait_idle(&self, deadline: Instant) -> usize {
        loop {
            // Register interest before reading the count, so a drop to zero between the
            // read and the await still wakes us.
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let left = self.current();
            if left == 0 {
                return 0;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return self.current(),
            }
        }
    }
}

/// Holds one unit of a backend's in-flight count.
#[derive(Debug)]
pub(crate) struct InFlightGuard {
    counter: Arc<InFlight>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.counter.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.counter.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wait_idle_returns_when_the_last_guard_drops() {
        let counter = Arc::new(InFlight::default());
        let guard = counter.enter();
        let waiter = {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                counter
                    .wait_idle(Instant::now() + Duration::from_secs(10))
                    .await
            })
        };
        drop(guard);
        assert_eq!(waiter.await.expect("waiter"), 0);
    }

    #[tokio::test]
    async fn wait_idle_reports_what_is_left_at_the_deadline() {
        let counter = Arc::new(InFlight::default());
        let _one = counter.enter();
        let _two = counter.enter();
        let left = counter
            .wait_idle(Instant::now() + Duration::from_millis(50))
            .await;
        assert_eq!(left, 2);
    }
}
