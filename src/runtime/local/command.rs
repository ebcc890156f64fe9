//! Runs one command to its end, as the leader of its own process group: with a timeout
//! (SIGTERM to the group, SIGKILL after a grace), its output streamed into an operation
//! log, and nothing of it left behind — whatever it forked is killed when it exits, in
//! its group or out of it (`sweep.rs`), and the log says what was.

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
use crate::runtime::human;
use crate::runtime::local::output::{read_lines, write_batches};
use crate::runtime::local::process::{outcome, signal_group};
use crate::runtime::local::sweep::{self, Leftover, RUN_VARIABLE};

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
    /// The runtime's scope (`sweep::scope_of` its data directory), part of the tag that
    /// finds what the command leaves behind.
    pub scope: &'a str,
}

/// Kills the group and whatever carries the run's tag if the future running a command
/// is dropped halfway (an operation cancelled): a hook must not outlive the operation
/// that ran it.
struct GroupGuard {
    pgid: i32,
    tag: String,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            sweep::kill_run(self.pgid, &self.tag);
        }
    }
}

/// How a command's run ended, beyond its outcome: what the log should tell.
struct Ending {
    outcome: CommandOutcome,
    /// The timeout passed and the command was still there `kill_grace` after SIGTERM.
    needed_sigkill: bool,
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
    let tag = sweep::new_tag(execution.scope);
    let mut child = Command::new(program)
        .args(args)
        .current_dir(execution.cwd)
        .env_clear()
        .envs(&execution.env)
        .env(RUN_VARIABLE, &tag)
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
    let mut guard = GroupGuard {
        pgid,
        tag: tag.clone(),
        armed: true,
    };
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
        // Whatever the command left running (a daemon it forked, in its group or not)
        // goes with it.
        let sweep_tag = tag.clone();
        let left = tokio::task::spawn_blocking(move || sweep::kill_run(pgid, &sweep_tag))
            .await
            .unwrap_or_default();
        let drained = tokio::time::timeout(OUTPUT_DRAIN, async {
            while readers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            readers.shutdown().await;
        }
        (ended, left)
    };
    let write = async move {
        match execution.output {
            Some((log, _)) => write_batches(receiver, log.clone()).await,
            None => drop(receiver),
        }
    };
    let ((ended, left), ()) = tokio::join!(supervise, write);
    guard.armed = false;
    let ended = ended?;
    if let (Some((log, label)), Some(before)) = (execution.output, dropped_before) {
        report(log, label, &execution, &ended, &left).await;
        log.report_dropped(label, before).await;
    }
    Ok(ended.outcome)
}

/// Tells the log what the user cannot see otherwise: how a timed-out command was
/// stopped, and what it had left running that was killed.
async fn report(
    log: &OperationLog,
    label: &str,
    execution: &Execution<'_>,
    ended: &Ending,
    left: &[Leftover],
) {
    if ended.outcome == CommandOutcome::TimedOut {
        let timeout = human::duration(execution.timeout);
        let line = if ended.needed_sigkill {
            format!(
                "[{label}] timed out after {timeout}; ignored SIGTERM for {}: killed with SIGKILL",
                human::duration(execution.kill_grace)
            )
        } else {
            format!("[{label}] timed out after {timeout}: stopped with SIGTERM")
        };
        log.line(line).await;
    }
    if !left.is_empty() {
        log.line(format!(
            "[{label}] killed {} process(es) it left running: {}; a hook's processes end with it (run a long-lived process as a service)",
            left.len(),
            sweep::describe(left)
        ))
        .await;
    }
}

async fn wait(
    child: &mut Child,
    pgid: i32,
    timeout: Duration,
    kill_grace: Duration,
) -> io::Result<Ending> {
    if let Ok(status) = tokio::time::timeout(timeout, child.wait()).await {
        return Ok(Ending {
            outcome: outcome(status?),
            needed_sigkill: false,
        });
    }
    signal_group(pgid, Signal::SIGTERM);
    let needed_sigkill = tokio::time::timeout(kill_grace, child.wait())
        .await
        .is_err();
    if needed_sigkill {
        signal_group(pgid, Signal::SIGKILL);
        child.wait().await?;
    }
    Ok(Ending {
        outcome: CommandOutcome::TimedOut,
        needed_sigkill,
    })
}
