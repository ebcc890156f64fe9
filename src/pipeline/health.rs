//! Waiting for a new instance to become healthy. Checks come every 25 ms for the first
//! five seconds — most apps are up by then, and one local check costs well under a
//! millisecond — then back off to the configured interval, so a deploy never waits more
//! than a few milliseconds past the moment its instances are ready.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::model::HealthCheck;
use crate::pipeline::model::{Artifact, InstanceRecord};
use crate::pipeline::traits::Runtime;

/// The pause between checks while an instance is young.
pub const FIRST_POLL: Duration = Duration::from_millis(25);
/// How long checks stay that frequent before backing off to the interval.
pub const FAST_POLLING: Duration = Duration::from_secs(5);

/// The interval and deadline of a check.
pub fn timing(check: &HealthCheck) -> (Duration, Duration) {
    match check {
        HealthCheck::Http(http) => (http.interval, http.deadline),
        HealthCheck::Tcp {
            interval, deadline, ..
        }
        | HealthCheck::Command {
            interval, deadline, ..
        } => (*interval, *deadline),
        // An uptime check passes once the instance has lived that long; give it a little
        // more than that to be seen doing so.
        HealthCheck::Uptime(uptime) => {
            (Duration::from_millis(250), *uptime + Duration::from_secs(5))
        }
    }
}

/// Waits until `instance` passes `check`, or fails: when the deadline passes, or at once
/// when the instance exits. The error says why, with the last check's answer.
pub async fn wait_healthy(
    runtime: &dyn Runtime,
    instance: &InstanceRecord,
    check: &HealthCheck,
    artifact: &Artifact,
) -> Result<Duration, String> {
    let (interval, deadline) = timing(check);
    let started = Instant::now();
    let mut pause = FIRST_POLL.min(interval);
    let mut last_error = String::from("not checked yet");
    loop {
        if !runtime.is_running(instance).await {
            let why = runtime.exit_report(instance).await;
            return Err(format!(
                "exited before it became healthy (last check: {last_error}){}",
                details(why)
            ));
        }
        match runtime.check(instance, check, artifact).await {
            Ok(()) => return Ok(started.elapsed()),
            Err(error) => last_error = error,
        }
        let elapsed = started.elapsed();
        if elapsed >= deadline {
            return Err(format!(
                "did not become healthy within {} (last check: {last_error})",
                crate::pipeline::format_duration(deadline)
            ));
        }
        tokio::time::sleep(pause.min(deadline - elapsed)).await;
        if started.elapsed() >= FAST_POLLING {
            pause = (pause * 2).min(interval);
        }
    }
}

/// `: <report>` when the runtime could say more about an instance that exited.
pub fn details(report: Option<String>) -> String {
    report.map_or_else(String::new, |report| format!(": {report}"))
}
