//! Holding an environment's requests while a `deploy` hook runs: they wait (they are not
//! refused) until the hold is released, then go to whatever backends are current at that
//! moment — the new release. A request waits at most the hold's duration from its own
//! arrival, then gets a 503.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// The hold switch of one environment; shared by every routing table built for it.
#[derive(Debug)]
pub(crate) struct HoldGate {
    /// A copy of "is `state` Some?", read on every request without touching the watch's lock.
    held: AtomicBool,
    /// `Some(longest wait)` while held.
    state: watch::Sender<Option<Duration>>,
}

/// How a held request's wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HoldOutcome {
    Released,
    /// The hold outlasted the wait the request was allowed.
    TimedOut(Duration),
}

impl Default for HoldGate {
    fn default() -> Self {
        Self {
            held: AtomicBool::new(false),
            state: watch::Sender::new(None),
        }
    }
}

impl HoldGate {
    pub(crate) fn hold(&self, longest_wait: Duration) {
        self.state.send_replace(Some(longest_wait));
        self.held.store(true, Ordering::Release);
    }

    pub(crate) fn release(&self) {
        self.held.store(false, Ordering::Release);
        self.state.send_replace(None);
    }

    /// The hot-path check: one atomic load.
    pub(crate) fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Waits for the hold to be released, at most its duration.
    pub(crate) async fn wait(&self) -> HoldOutcome {
        let mut receiver = self.state.subscribe();
        let longest_wait = match *receiver.borrow_and_update() {
            Some(longest_wait) => longest_wait,
            None => return HoldOutcome::Released,
        };
        let released = tokio::time::timeout(longest_wait, receiver.wait_for(Option::is_none))
            .await
            .map(|_| ())
            .is_ok();
        // A closed channel cannot happen while `self` lives; it would count as released.
        if released {
            HoldOutcome::Released
        } else {
            HoldOutcome::TimedOut(longest_wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_held_request_waits_for_release() {
        let gate = Arc::new(HoldGate::default());
        gate.hold(Duration::from_secs(30));
        assert!(gate.is_held());
        let waiter = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.wait().await })
        };
        tokio::task::yield_now().await;
        gate.release();
        assert_eq!(waiter.await.expect("waiter"), HoldOutcome::Released);
        assert!(!gate.is_held());
    }

    #[tokio::test]
    async fn a_held_request_gives_up_after_the_hold_duration() {
        let gate = HoldGate::default();
        gate.hold(Duration::from_millis(50));
        assert_eq!(
            gate.wait().await,
            HoldOutcome::TimedOut(Duration::from_millis(50))
        );
    }

    #[tokio::test]
    async fn an_unheld_gate_does_not_wait() {
        assert_eq!(HoldGate::default().wait().await, HoldOutcome::Released);
    }
}
