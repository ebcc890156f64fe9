//! Runs one command to its end, as the leader of its own process group: with a timeout
//! (SIGTERM to the group, SIGKILL after a grace), its output streamed into an operation
//! log, and nothing of it left behind — whatever it forked is killed when it exits.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::pipeline::log::OperationLog;
use crate::pipeline::traits::CommandOutcome;
use crate::runtime::local::output::{read_lines, write_batches};
use crate::runtime::local::process::{outcome, signal_group};

/// How long output is still read after the command exited and its group was killed. A
/// process that left the group (`setsid`) may hold the pipe open forever; its output
/// is not worth hanging the pipeline for.
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);

/// Hooks get this long to exit after SIGTERM before SIGKILL.
pub(crate) const HOOK_KILL_GRACE: Duration = Duration::from_secs(5);

/// One command to run to its end.
pub(crate) struct Execution<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    /// The whole environment: nothing else is inherited.
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL when the timeout passes.
    pub kill_grace: Duration,
    /// Where output goes, each line prefixed with `[<label>] `; `None` discards it.
    pub output: Option<(&'a OperationLog, &'a str)>,
}

/// Kills the group if the future running a command is dropped halfway (an operation
/// cancelled): a hook must not outlive the operation that ran it.
struct GroupGuard {
    pgid: i32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

/// Runs the command; `Err` only when it could not be started.
pub(crate) async fn execute(execution: Execution<'_>) -> io::Result<CommandOutcome> {
    let Some((program, args)) = execution.argv.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the command is empty",
        ));
    };
    let (stdout, stderr) = match execution.output {
        Some(_) => (Stdio::piped(), Stdio::piped()),
        None => (Stdio::null(), Stdio::null()),
    };
    let mut child = Command::new(program)
        .args(args)
        .current_dir(execution.cwd)
        .env_clear()
        .envs(&execution.env)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let pgid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .ok_or_else(|| io::Error::other("the command ended before its process id was read"))?;
    let mut guard = GroupGuard { pgid, armed: true };
    let dropped_before = execution.output.map(|(log, _)| log.dropped_bytes());

    let (sender, receiver) = mpsc::channel::<String>(256);
    let mut readers = JoinSet::new();
    if let Some((log, label)) = execution.output {
        let prefix = format!("[{label}] ");
        if let Some(stream) = child.stdout.take() {
            readers.spawn(read_lines(
                stream,
                prefix.clone(),
                sender.clone(),
                log.clone(),
            ));
        }
        if let Some(stream) = child.stderr.take() {
            readers.spawn(read_lines(stream, prefix, sender.clone(), log.clone()));
        }
    }
    drop(sender);

    let supervise = async {
        let ended = wait(&mut child, pgid, execution.timeout, execution.kill_grace).await;
        // Whatever the command left in its group (a daemon it forked) goes with it.
        signal_group(pgid, Signal::SIGKILL);
        let drained = tokio::time::timeout(OUTPUT_DRAIN, async {
            while readers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            readers.shutdown().await;
        }
        ended
    };
    let write = async move {
        match execution.output {
            Some((log, _)) => write_batches(receiver, log.clone()).await,
            None => drop(receiver),
        }
    };
    let (ended, ()) = tokio::join!(supervise, write);
    guard.armed = false;
    if let (Some((log, label)), Some(before)) = (execution.output, dropped_before) {
        log.report_dropped(label, before).await;
    }
    ended
}

async fn wait(
    child: &mut Child,
    pgid: i32,
    timeout: Duration,
    kill_grace: Duration,
) -> io::Result<CommandOutcome> {
    if let Ok(status) = tokio::time::timeout(timeout, child.wait()).await {
        return Ok(outcome(status?));
    }
    signal_group(pgid, Signal::SIGTERM);
    if tokio::time::timeout(kill_grace, child.wait())
        .await
        .is_err()
    {
        signal_group(pgid, Signal::SIGKILL);
        child.wait().await?;
    }
    Ok(CommandOutcome::TimedOut)
}
