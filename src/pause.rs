//! Test-only pause points, so a test can SIGKILL a real `slipway serve` at an instant
//! that no hook or app behaviour can hold open: between the router's switch and its
//! commit to the database, or between accepting a webhook delivery and working on it.
//!
//! `SLIPWAY_TEST_PAUSE_AT=<point>` is read once, when the server starts. When it names a
//! point, the first task that reaches that point writes the marker file
//! `<data>/paused-at-<point>` and then waits forever (the rest of the server keeps
//! running); the test waits for the marker and kills the process. Unset — the default —
//! every `at` call returns at once and nothing else changes. A value that names no point
//! refuses to start the server, so a typo in a test cannot silently test nothing.
//!
//! **Invariant:** the pipeline core never calls this; only the store and the GitHub
//! delivery worker do, at the points named below.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The variable that arms a pause point.
pub const VARIABLE: &str = "SLIPWAY_TEST_PAUSE_AT";

/// Where a server can be made to stop for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PausePoint {
    /// The router switched to the new instances; the switch is not yet committed to the
    /// database (`Store::commit_switch`, before its transaction).
    SwitchUncommitted,
    /// The switch and the new current release have just been committed.
    SwitchCommitted,
    /// A webhook delivery is stored and answered, and not yet worked on.
    DeliveryAccepted,
    /// A delivery's operation is created and not yet linked to its GitHub commit.
    DeliveryOperationCreated,
}

impl PausePoint {
    pub const ALL: [PausePoint; 4] = [
        PausePoint::SwitchUncommitted,
        PausePoint::SwitchCommitted,
        PausePoint::DeliveryAccepted,
        PausePoint::DeliveryOperationCreated,
    ];

    /// The value of `SLIPWAY_TEST_PAUSE_AT` that arms this point.
    pub fn name(self) -> &'static str {
        match self {
            PausePoint::SwitchUncommitted => "switch-uncommitted",
            PausePoint::SwitchCommitted => "switch-committed",
            PausePoint::DeliveryAccepted => "delivery-accepted",
            PausePoint::DeliveryOperationCreated => "delivery-operation-created",
        }
    }

    /// The marker file written when a server pauses here.
    pub fn marker(self, data_dir: &Path) -> PathBuf {
        data_dir.join(format!("paused-at-{}", self.name()))
    }
}

struct Armed {
    point: PausePoint,
    marker: PathBuf,
}

static ARMED: OnceLock<Option<Armed>> = OnceLock::new();

/// Reads `SLIPWAY_TEST_PAUSE_AT` (once per process: later calls keep the first answer).
/// Returns the armed point, or why the value is not one.
pub fn arm_from_env(data_dir: &Path) -> Result<Option<PausePoint>, String> {
    let value = std::env::var(VARIABLE).ok().filter(|v| !v.is_empty());
    let Some(value) = value else {
        let _ = ARMED.get_or_init(|| None);
        return Ok(armed());
    };
    let point = PausePoint::ALL
        .into_iter()
        .find(|p| p.name() == value)
        .ok_or_else(|| {
            let known: Vec<&str> = PausePoint::ALL.iter().map(|p| p.name()).collect();
            format!(
                "{VARIABLE}={value} is not a pause point; it is a test-only setting, and the points are: {}",
                known.join(", ")
            )
        })?;
    let _ = ARMED.get_or_init(|| {
        Some(Armed {
            point,
            marker: point.marker(data_dir),
        })
    });
    Ok(armed())
}

fn armed() -> Option<PausePoint> {
    ARMED.get().and_then(|a| a.as_ref()).map(|a| a.point)
}

/// Returns at once, unless the server was started with this point armed: then it
/// writes the marker and never returns.
pub async fn at(point: PausePoint) {
    let Some(Some(armed)) = ARMED.get() else {
        return;
    };
    if armed.point != point {
        return;
    }
    tracing::warn!(
        point = point.name(),
        "{VARIABLE}: paused for good (a test-only setting)"
    );
    if let Err(error) = std::fs::write(&armed.marker, point.name()) {
        tracing::error!(%error, marker = %armed.marker.display(), "could not write the pause marker");
    }
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_has_a_distinct_name() {
        let mut names: Vec<&str> = PausePoint::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PausePoint::ALL.len());
    }

    #[tokio::test]
    async fn an_unarmed_point_returns_at_once() {
        // Nothing in the unit tests sets the variable, so the process is unarmed.
        let _ = arm_from_env(Path::new("/nonexistent"));
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            at(PausePoint::SwitchCommitted),
        )
        .await
        .expect("an unarmed pause point does not wait");
    }
}
