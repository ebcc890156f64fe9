//! Holding an environment's requests while a `deploy` hook runs: they wait (they are not
//! refused) until the hold is released, then go to whatever backends are current at that
//! moment — the new release. A request waits at most the hold's duration from its own
//! arrival, then gets a 503.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// The hold switch of one environment; shared by every routing table built for it. Two
/// holds can be on at once and are lifted separately: a `deploy` hook's, and an
/// operator's maintenance — a deploy that ends must not lift a maintenance.
#[derive(Debug)]
pub(crate) struct HoldGate {
    /// A copy of "is any hold on?", read on every request without touching the watch's lock.
    held: AtomicBool,
    state: watch::Sender<Holds>,
}

/// The holds that are on, each with the longest a request may wait under it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Holds {
    pub deploy: Option<Duration>,
    pub maintenance: Option<Duration>,
}

impl Holds {
    fn any(&self) -> bool {
        self.deploy.is_some() || self.maintenance.is_some()
    }
}

/// How a held request's wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HoldOutcome {
    Released,
    /// The hold outlasted the wait the request was allowed.
    TimedOut {
        waited: Duration,
        maintenance: bool,
    },
}

impl Default for HoldGate {
    fn default() -> Self {
        Self {
            held: AtomicBool::new(false),
            state: watch::Sender::new(Holds::default()),
        }
    }
}

impl HoldGate {
    /// Holds requests for a `deploy` hook.
    pub(crate) fn hold(&self, longest_wait: Duration) {
        self.change(|holds| holds.deploy = Some(longest_wait));
    }

    /// Lifts the `deploy` hook's hold (a maintenance stays on).
    pub(crate) fn release(&self) {
        self.change(|holds| holds.deploy = None);
    }

    /// Turns maintenance on or off.
    pub(crate) fn maintenance(&self, longest_wait: Option<Duration>) {
        self.change(|holds| holds.maintenance = longest_wait);
    }

    pub(crate) fn in_maintenance(&self) -> bool {
        self.state.borrow().maintenance.is_some()
    }

    fn change(&self, change: impl FnOnce(&mut Holds)) {
        self.state.send_modify(|holds| {
            change(holds);
            self.held.store(holds.any(), Ordering::Release);
        });
    }

    /// The hot-path check: one atomic load.
    pub(crate) fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Waits for every hold to be lifted, at most the longest wait of those on.
    pub(crate) async fn wait(&self) -> HoldOutcome {
        let mut receiver = self.state.subscribe();
        let holds = *receiver.borrow_and_update();
        let Some(longest_wait) = holds.deploy.max(holds.maintenance) else {
            return HoldOutcome::Released;
        };
        let released = tokio::time::timeout(longest_wait, receiver.wait_for(|h| !h.any()))
            .await
            .is_ok();
        // A closed channel cannot happen while `self` lives; it would count as released.
        if released {
            HoldOutcome::Released
        } else {
            let maintenance = self.in_maintenance();
            HoldOutcome::TimedOut {
                waited: longest_wait,
                maintenance,
            }
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
            HoldOutcome::TimedOut {
                waited: Duration::from_millis(50),
                maintenance: false
            }
        );
    }

    #[tokio::test]
    async fn a_deploy_ending_does_not_lift_a_maintenance() {
        let gate = HoldGate::default();
        gate.maintenance(Some(Duration::from_millis(50)));
        gate.hold(Duration::from_secs(30));
        gate.release();
        assert!(gate.is_held(), "maintenance is still on");
        assert_eq!(
            gate.wait().await,
            HoldOutcome::TimedOut {
                waited: Duration::from_millis(50),
                maintenance: true
            }
        );
        gate.maintenance(None);
        assert!(!gate.is_held());
    }

    #[tokio::test]
    async fn an_unheld_gate_does_not_wait() {
        assert_eq!(HoldGate::default().wait().await, HoldOutcome::Released);
    }
}
