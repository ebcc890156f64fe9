//! Process groups: every hook and instance runs as the leader of its own group, so that
//! signalling the group reaches whatever it forked. Also the minimal environment a
//! child inherits from the server, and how an exit status reads in a log.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::pipeline::traits::CommandOutcome;

/// How often a waiter looks whether a group is gone: short, so a stop returns within a
/// few milliseconds of the last process exiting.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The variables a child inherits from the server; everything else comes from its spec,
/// so the server's own settings (tokens, secrets) never leak into an app.
const INHERITED: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER"];

/// The inherited base environment, with `extra` layered on top.
pub(crate) fn environment(extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = INHERITED
        .iter()
        .filter_map(|key| {
            std::env::var(key)
                .ok()
                .map(|value| ((*key).to_owned(), value))
        })
        .collect();
    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Sends `signal` to every process of the group led by `pgid`. A group that is already
/// gone is not an error: the caller wanted it gone.
pub(crate) fn signal_group(pgid: i32, signal: Signal) {
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pgid, %signal, %error, "could not signal a process group"),
    }
}

/// Whether any process of the group still exists (a zombie leader counts until reaped).
pub(crate) fn group_alive(pgid: i32) -> bool {
    // EPERM: the processes exist but belong to someone else; they are alive all the same.
    !matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
}

/// Whether the process `pid` exists; for processes that are not our children.
pub(crate) fn process_alive(pid: i32) -> bool {
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// Waits until the group is gone or `limit` passes; says whether it is gone.
pub(crate) async fn wait_group_gone(pgid: i32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Parses the handle the local runtime stores for an instance: its pid (= its pgid).
pub(crate) fn parse_handle(handle: &str) -> Option<i32> {
    handle.parse::<i32>().ok().filter(|pid| *pid > 1)
}

pub(crate) fn outcome(status: ExitStatus) -> CommandOutcome {
    match (status.code(), status.signal()) {
        (Some(code), _) => CommandOutcome::Exited(code),
        (None, Some(signal)) => CommandOutcome::Signalled(signal),
        // Neither a code nor a signal cannot happen for a process that ended.
        (None, None) => CommandOutcome::Exited(-1),
    }
}

/// `exit code 3`, `killed by signal 9 (SIGKILL)`: how an ending reads in a message.
pub(crate) fn describe(outcome: &CommandOutcome) -> String {
    match outcome {
        CommandOutcome::Exited(code) => format!("exit code {code}"),
        CommandOutcome::Signalled(signal) => match Signal::try_from(*signal) {
            Ok(name) => format!("killed by signal {signal} ({name})"),
            Err(_) => format!("killed by signal {signal}"),
        },
        CommandOutcome::TimedOut => "timed out".to_owned(),
    }
}

/// `build hook failed: exit code 3`, `build hook timed out after 1h`: how the end of a
/// command that did not succeed reads in an error message.
pub(crate) fn failure(what: &str, outcome: &CommandOutcome, timeout: Duration) -> String {
    match outcome {
        CommandOutcome::TimedOut => format!(
            "{what} timed out after {}",
            crate::runtime::human::duration(timeout)
        ),
        ended => format!("{what} failed: {}", describe(ended)),
    }
}
