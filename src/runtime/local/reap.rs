//! After a restart: finds the process groups that run out of the runtime's artifacts or
//! builds but are not known instances — a hook that was running when the server was
//! killed, an instance started but not yet recorded — and kills them. Nothing may keep
//! running from Slipway's folders without the database knowing it.

use std::collections::BTreeSet;
use std::path::Path;

use nix::sys::signal::Signal;

use crate::runtime::local::process::signal_group;

/// The process groups with a process whose working directory is under one of `roots`.
pub(crate) fn groups_under(roots: &[&Path]) -> BTreeSet<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    let own_group = nix::unistd::getpgrp().as_raw();
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
            roots
                .iter()
                .any(|root| cwd.starts_with(root))
                .then_some(pid)?;
            process_group(pid)
        })
        .filter(|pgid| *pgid != own_group && *pgid > 1)
        .collect()
}

/// The process group of `pid`, from `/proc/<pid>/stat` (field 5, after the command name,
/// which may itself contain spaces and parentheses).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

/// Kills each group with SIGKILL: it belongs to no operation any more, so there is
/// nobody to wait for a graceful exit.
pub(crate) fn kill_groups(groups: &BTreeSet<i32>) {
    for pgid in groups {
        signal_group(*pgid, Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_process_group_even_with_odd_command_names() {
        let own = std::process::id() as i32;
        assert_eq!(process_group(own), Some(nix::unistd::getpgrp().as_raw()));
    }
}
