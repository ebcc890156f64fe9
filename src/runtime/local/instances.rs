//! Long-running instances: started detached from the server (their output goes straight
//! to a log file, and they survive a server restart to be re-adopted), reaped when they
//! exit so no zombie stays, and stopped by signalling their whole process group.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::pipeline::log::OperationLog;
use crate::pipeline::model::InstanceRecord;
use crate::pipeline::traits::{
    Clock, EffectError, EffectResult, InstanceSpec, StopOutcome, SystemClock,
};
use crate::runtime::local::command::{execute, Execution, HOOK_KILL_GRACE};
use crate::runtime::local::layout::Layout;
use crate::runtime::local::mask_log;
use crate::runtime::local::process::{
    describe, environment, failure, group_alive, outcome, parse_handle, process_alive,
    signal_group, wait_group_gone,
};

/// After SIGKILL, how long to wait for the kernel to take the group down.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often an adopted instance is looked at by someone waiting for it to end.
const ADOPTED_EXIT_POLL: Duration = Duration::from_millis(50);

/// The instances this server process spawned, by pid, with whether each has exited.
/// Instances adopted after a restart are not here: they are asked about with `kill(pid, 0)`.
#[derive(Default)]
pub(crate) struct Children {
    exits: Mutex<HashMap<i32, watch::Receiver<Option<String>>>>,
}

impl Children {
    /// Reaps `child` in a task of its own, which records how it ended; the task lives
    /// exactly as long as the child, so it needs no other owner.
    fn adopt(&self, pid: i32, mut child: Child, log_file: PathBuf, name: String) {
        let (ended, exit) = watch::channel(None);
        tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => describe(&outcome(status)),
                Err(error) => format!("lost ({error})"),
            };
            // The file tells whoever reads it why the output stops here.
            if let Ok(mut file) = OpenOptions::new().append(true).open(&log_file) {
                let _ = writeln!(file, "==> {name} ended: {how}");
            }
            ended.send_replace(Some(how));
        });
        self.lock().insert(pid, exit);
    }

    /// `Some(running)` for a child of this process, `None` for anything else.
    fn running(&self, pid: i32) -> Option<bool> {
        self.lock().get(&pid).map(|exit| exit.borrow().is_none())
    }

    /// Resolves when the child `pid` ends; `false` at once for a pid that is not a child
    /// of this process (nothing tells when it ends).
    pub(crate) async fn wait_exit(&self, pid: i32) -> bool {
        let Some(mut exit) = self.lock().get(&pid).cloned() else {
            return false;
        };
        // The sender lives until it has sent the ending: an error means it sent it.
        let _ = exit.wait_for(Option::is_some).await;
        true
    }

    /// How a child of this process ended (`exit code 1`), once it has.
    pub(crate) fn ended(&self, pid: i32) -> Option<String> {
        self.lock().get(&pid).and_then(|exit| exit.borrow().clone())
    }

    fn forget(&self, pid: i32) {
        self.lock().remove(&pid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, watch::Receiver<Option<String>>>> {
        self.exits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `pre_start`, then the instance's command, detached, with its output in its log file.
pub(crate) async fn start(
    layout: &Layout,
    children: &Children,
    output_masker: Option<&Path>,
    artifact_dir: &Path,
    spec: &InstanceSpec,
    log: &OperationLog,
) -> EffectResult<InstanceRecord> {
    let name = format!("{}.{}", spec.service, spec.index);
    let port = if spec.http { Some(free_port()?) } else { None };
    let mut vars = spec.env_vars.clone();
    if let Some(port) = port {
        vars.insert("PORT".to_owned(), port.to_string());
    }
    for command in spec.pre_start.iter().flatten() {
        let mut env = command.env.clone();
        env.extend(vars.clone());
        let cwd = command
            .cwd
            .as_ref()
            .map_or_else(|| artifact_dir.to_owned(), |c| artifact_dir.join(c));
        let ended = execute(Execution {
            argv: &command.argv,
            cwd: &cwd,
            env: environment(&env),
            timeout: command.timeout,
            kill_grace: HOOK_KILL_GRACE,
            output: Some((log, &command.label)),
            scope: layout.scope(),
        })
        .await
        .map_err(|error| {
            EffectError::Failed(format!("pre_start of {name} could not start: {error}"))
        })?;
        if !ended.success() {
            return Err(EffectError::Failed(failure(
                "pre_start",
                &ended,
                command.timeout,
            )));
        }
    }

    let log_file = layout.instance_log(&spec.env, &spec.service, spec.index)?;
    let output = open_log(
        &log_file,
        &format!("==> starting {name} of {}", spec.release),
    )
    .map_err(|error| {
        EffectError::Failed(format!("could not open the log file of {name}: {error}"))
    })?;
    let broken = |error: std::io::Error| {
        EffectError::Failed(format!("could not open the log file of {name}: {error}"))
    };
    // With a masker, the instance writes into a pipe that the masker reads; without one
    // (unit tests of this module), straight into the file.
    let (stdout, stderr, masker_input) = match output_masker {
        Some(_) => {
            drop(output);
            let (reader, writer) = std::io::pipe().map_err(broken)?;
            let errors = writer.try_clone().map_err(broken)?;
            (Stdio::from(writer), Stdio::from(errors), Some(reader))
        }
        None => {
            let errors = output.try_clone().map_err(broken)?;
            (Stdio::from(output), Stdio::from(errors), None)
        }
    };
    let mut command = Command::new("sh");
    command
        .args(["-c", &spec.command])
        .current_dir(artifact_dir)
        .env_clear()
        .envs(environment(&vars))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let child = command
        .spawn()
        .map_err(|error| EffectError::Failed(format!("could not start {name}: {error}")))?;
    // The parent's copies of the pipe's write end must go, or the masker never sees EOF.
    drop(command);
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .ok_or_else(|| EffectError::Failed(format!("{name} ended as soon as it started")))?;
    if let (Some(exe), Some(reader)) = (output_masker, masker_input) {
        let secrets = mask_log::secret_values(&vars);
        match mask_log::spawn(exe, &log_file, pid, &secrets, reader) {
            Ok(mut masker) => {
                tokio::spawn(async move {
                    let _ = masker.wait().await;
                });
            }
            Err(error) => {
                signal_group(pid, Signal::SIGKILL);
                return Err(EffectError::Failed(format!(
                    "could not start the output masker of {name}: {error}"
                )));
            }
        }
    }
    children.adopt(pid, child, log_file, name.clone());

    let address = port.map(|port| format!("127.0.0.1:{port}"));
    match &address {
        Some(address) => {
            log.line(format!("started {name} (pid {pid}) on {address}"))
                .await
        }
        None => log.line(format!("started {name} (pid {pid})")).await,
    }
    Ok(InstanceRecord {
        id: spec.instance_id(),
        env: spec.env.clone(),
        service: spec.service.clone(),
        release: spec.release,
        index: spec.index,
        handle: pid.to_string(),
        address,
        started_at: SystemClock.now_millis(),
    })
}

/// Resolves once the instance's process has ended.
pub(crate) async fn wait_exit(layout: &Layout, children: &Children, instance: &InstanceRecord) {
    let Some(pid) = parse_handle(&instance.handle) else {
        return;
    };
    if children.wait_exit(pid).await {
        return;
    }
    // Adopted after a restart: no exit to be told of, so look.
    while adopted_alive(layout, pid) {
        tokio::time::sleep(ADOPTED_EXIT_POLL).await;
    }
}

/// Whether the instance's process lives.
pub(crate) fn is_running(layout: &Layout, children: &Children, instance: &InstanceRecord) -> bool {
    let Some(pid) = parse_handle(&instance.handle) else {
        return false;
    };
    children
        .running(pid)
        .unwrap_or_else(|| adopted_alive(layout, pid))
}

/// SIGTERM to the group, SIGKILL after `grace`.
pub(crate) async fn stop(
    layout: &Layout,
    children: &Children,
    instance: &InstanceRecord,
    grace: Duration,
) -> EffectResult<StopOutcome> {
    let Some(pgid) = parse_handle(&instance.handle) else {
        return Err(EffectError::Failed(format!(
            "`{}` is not the process id of an instance",
            instance.handle
        )));
    };
    // Our own child's group may outlive its leader (processes it forked); an adopted
    // pid is only trusted while it is provably the instance.
    let alive = match children.running(pgid) {
        Some(running) => running || group_alive(pgid),
        None => adopted_alive(layout, pgid),
    };
    if !alive {
        children.forget(pgid);
        return Ok(StopOutcome::AlreadyGone);
    }
    signal_group(pgid, Signal::SIGTERM);
    let stopped = if wait_group_gone(pgid, grace).await {
        StopOutcome::Exited
    } else {
        signal_group(pgid, Signal::SIGKILL);
        if !wait_group_gone(pgid, KILL_WAIT).await {
            return Err(EffectError::Failed(format!(
                "{} did not go after SIGKILL",
                instance.id
            )));
        }
        StopOutcome::Killed
    };
    children.forget(pgid);
    Ok(stopped)
}

/// An instance started by an earlier server process: alive when its pid exists and,
/// where `/proc` tells, runs in one of our artifacts — after a reboot the pid may well
/// belong to some unrelated process, which must never be signalled.
fn adopted_alive(layout: &Layout, pid: i32) -> bool {
    if !process_alive(pid) {
        return false;
    }
    let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else {
        return true;
    };
    let artifacts =
        std::fs::canonicalize(layout.artifacts_dir()).unwrap_or_else(|_| layout.artifacts_dir());
    cwd.starts_with(artifacts)
}

fn open_log(path: &Path, header: &str) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{header}")?;
    Ok(file)
}

/// A loopback port nobody listens on now: the kernel picks one, we let it go, and the
/// instance binds it a moment later.
fn free_port() -> EffectResult<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| EffectError::Failed(format!("could not find a free port: {error}")))
}
