//! What a command leaves behind, wherever it went. Signalling a command's process group
//! reaches what it forked (`cmd &`, `nohup cmd &`), but not a daemon that left the group
//! (`setsid`, a double fork, `daemon(3)`). Every command therefore runs with a tag in its
//! environment, `SLIPWAY_RUN=<scope>.<random>`, which every descendant inherits whatever
//! group or session it moves to; after the command, the processes that carry the tag are
//! found in `/proc` and killed. `<scope>` names the data directory, so that after a crash
//! the reaper can find the leftovers of this server's runs, and only those.
//!
//! A process escapes only by dropping the variable from its environment before it
//! execs (`env -i`, or an explicit `unset` followed by `exec`).

use std::fs;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use crate::runtime::local::process::signal_group;

/// The variable that tags a command's processes.
pub(crate) const RUN_VARIABLE: &str = "SLIPWAY_RUN";

/// At most this many looks for tagged processes after the first, this far apart.
const SWEEPS: usize = 20;
const SWEEP_PAUSE: Duration = Duration::from_millis(5);

/// A process found carrying a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Leftover {
    pub pid: i32,
    /// Its command name, from `/proc/<pid>/comm`.
    pub name: String,
}

/// The scope of a data directory: the same directory always gives the same scope.
pub(crate) fn scope_of(data_dir: &Path) -> String {
    let digest = Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    hex::encode(&digest[..6])
}

/// A fresh tag for one run of a command.
pub(crate) fn new_tag(scope: &str) -> String {
    let run: u64 = rand::random();
    format!("{scope}.{run:016x}")
}

/// Kills the process group `pgid` and every process tagged `tag`, looking again until
/// two looks a moment apart find none (a process caught in the middle of an `exec`
/// cannot be read, and one that was forking when it was killed may leave a child), or
/// `SWEEPS` looks were made. Returns every process it found: what the command had left
/// running.
pub(crate) fn kill_run(pgid: i32, tag: &str) -> Vec<Leftover> {
    let wanted = Match::Exact(tag);
    // The group's members count too: one caught in the middle of an `exec` has no
    // readable environment, but its group is known, and the group kill is about to end it.
    let mut found = tagged(&wanted, Some(pgid));
    signal_group(pgid, Signal::SIGKILL);
    kill_all(&found);
    let mut quiet = 0;
    for _ in 0..SWEEPS {
        std::thread::sleep(SWEEP_PAUSE);
        let again = tagged(&wanted, None);
        if again.is_empty() {
            quiet += 1;
            if quiet == 2 {
                break;
            }
            continue;
        }
        quiet = 0;
        kill_all(&again);
        for leftover in again {
            if !found.iter().any(|f| f.pid == leftover.pid) {
                found.push(leftover);
            }
        }
    }
    found
}

/// Kills every process of any run of `scope` (a server that was killed left them);
/// returns them.
pub(crate) fn kill_scope(scope: &str) -> Vec<Leftover> {
    let prefix = format!("{scope}.");
    let found = tagged(&Match::Prefix(&prefix), None);
    kill_all(&found);
    found
}

/// `1234 (sleep), 1240 (python3)`.
pub(crate) fn describe(leftovers: &[Leftover]) -> String {
    leftovers
        .iter()
        .map(|l| format!("{} ({})", l.pid, l.name))
        .collect::<Vec<_>>()
        .join(", ")
}

enum Match<'a> {
    Exact(&'a str),
    Prefix(&'a str),
}

impl Match<'_> {
    fn accepts(&self, value: &[u8]) -> bool {
        match self {
            Match::Exact(tag) => value == tag.as_bytes(),
            Match::Prefix(prefix) => value.starts_with(prefix.as_bytes()),
        }
    }
}

fn kill_all(leftovers: &[Leftover]) {
    for leftover in leftovers {
        // Gone already is fine; anything else (not ours) is not worth more than a trace.
        let _ = kill(Pid::from_raw(leftover.pid), Signal::SIGKILL);
    }
}

/// The live processes whose environment has `SLIPWAY_RUN` set to a value `wanted` accepts,
/// and those of process group `group`. A zombie has no environment left, so it is never
/// found by its tag: it is dead already.
fn tagged(wanted: &Match<'_>, group: Option<i32>) -> Vec<Leftover> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id() as i32;
    let key = format!("{RUN_VARIABLE}=");
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            if group.is_some_and(|group| live_in_group(*pid, group)) {
                return true;
            }
            // Another user's processes cannot be read: they are not ours to find.
            fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ.split(|byte| *byte == 0).any(|entry| {
                    entry
                        .strip_prefix(key.as_bytes())
                        .is_some_and(|value| wanted.accepts(value))
                })
            })
        })
        .map(|pid| Leftover {
            pid,
            name: fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|name| name.trim().to_owned())
                .unwrap_or_else(|_| "?".to_owned()),
        })
        .collect()
}

/// Whether `pid` is a live (not zombie) member of process group `group`, from
/// `/proc/<pid>/stat`: `pid (comm) state ppid pgrp …`.
fn live_in_group(pid: i32, group: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = fields.split_whitespace();
    let state = fields.next();
    let pgrp = fields.nth(1).and_then(|pgrp| pgrp.parse::<i32>().ok());
    state != Some("Z") && pgrp == Some(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_stable_per_directory_and_tags_are_unique() {
        let scope = scope_of(Path::new("/data/slipway"));
        assert_eq!(scope, scope_of(Path::new("/data/slipway")));
        assert_ne!(scope, scope_of(Path::new("/data/other")));
        let (one, two) = (new_tag(&scope), new_tag(&scope));
        assert_ne!(one, two);
        assert!(one.starts_with(&format!("{scope}.")), "{one}");
    }

    #[test]
    fn a_tagged_daemon_that_left_its_group_is_found_and_killed() {
        use std::os::unix::process::CommandExt;

        let scope = scope_of(Path::new("/nonexistent/sweep-test"));
        let tag = new_tag(&scope);
        // A command that starts a daemon in a session of its own, and exits: signalling
        // the command's group does not reach the daemon.
        let mut command = std::process::Command::new("sh");
        command
            .args(["-c", "setsid sleep 1000 >/dev/null 2>&1 & echo $!"])
            .env(RUN_VARIABLE, &tag)
            .stdout(std::process::Stdio::piped())
            .process_group(0);
        let output = command.output().expect("the command runs");
        let daemon: i32 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("the daemon's pid");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // `setsid` execs `sleep` in place: wait until the pid is `sleep`.
        while tagged(&Match::Exact(&tag), None)
            .iter()
            .all(|l| l.name != "sleep")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon never showed"
            );
            std::thread::sleep(SWEEP_PAUSE);
        }
        assert!(kill_scope("someone-else").is_empty());

        // The command's group is gone; the daemon is found by its tag all the same.
        let found = kill_run(i32::MAX, &tag);
        assert_eq!(
            found,
            [Leftover {
                pid: daemon,
                name: "sleep".to_owned()
            }]
        );
        while alive(daemon) {
            assert!(std::time::Instant::now() < deadline, "the daemon survived");
            std::thread::sleep(SWEEP_PAUSE);
        }
        assert!(tagged(&Match::Exact(&tag), None).is_empty());
    }

    #[test]
    fn after_a_crash_every_run_of_the_scope_is_killed_and_no_other() {
        let scope = scope_of(Path::new("/nonexistent/sweep-crash-test"));
        let ours = std::process::Command::new("sleep")
            .arg("1000")
            .env(RUN_VARIABLE, new_tag(&scope))
            .spawn();
        let theirs = std::process::Command::new("sleep")
            .arg("1000")
            .env(RUN_VARIABLE, new_tag(&scope_of(Path::new("/elsewhere"))))
            .spawn();
        let (mut ours, mut theirs) = (ours.expect("sleep"), theirs.expect("sleep"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let prefix = format!("{scope}.");
        while tagged(&Match::Prefix(&prefix), None).is_empty() {
            assert!(std::time::Instant::now() < deadline, "the run never showed");
            std::thread::sleep(SWEEP_PAUSE);
        }
        let killed = kill_scope(&scope);
        assert_eq!(
            killed.iter().map(|l| l.pid).collect::<Vec<_>>(),
            [ours.id() as i32]
        );
        let status = ours.wait().expect("reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert_eq!(
            theirs.try_wait().expect("asked"),
            None,
            "another scope's run was killed"
        );
        let _ = theirs.kill();
        let _ = theirs.wait();
    }

    /// Alive and not a zombie (an orphan is reaped by whoever adopted it, in its time).
    fn alive(pid: i32) -> bool {
        fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next())
                != Some("Z")
        })
    }
}
