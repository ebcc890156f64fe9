//! Masking an instance's output. An instance writes into a pipe read by a small process of
//! its own (`slipway __mask-log FILE`, in the instance's process group), which replaces
//! configuration values with `****` and appends to the instance's log file. The server is
//! not in the path, so output still survives a server restart; the masker ends when the
//! instance and everything it forked have closed the pipe.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use tokio::process::{Child, Command};

use crate::pipeline::log::Masker;

/// The variable that carries the values to mask, as a JSON list of strings.
const VALUES_VARIABLE: &str = "SLIPWAY_MASK_VALUES";
/// Longer lines are written in pieces (each masked on its own).
const MAX_LINE: usize = 64 * 1024;

/// The values of an instance's variables that are secrets: every one but Slipway's own
/// and `PORT`.
pub(crate) fn secret_values(vars: &BTreeMap<String, String>) -> Vec<String> {
    vars.iter()
        .filter(|(key, _)| !key.starts_with("SLIPWAY_") && key.as_str() != "PORT")
        .map(|(_, value)| value.clone())
        .collect()
}

/// Starts the masker for an instance: it reads `output`, joins the process group
/// `pgid` (so stopping the instance stops it too, once the output is drained) and
/// appends to `log_file`.
pub(crate) fn spawn(
    exe: &Path,
    log_file: &Path,
    pgid: i32,
    secrets: &[String],
    output: io::PipeReader,
) -> io::Result<Child> {
    let values = serde_json::to_string(secrets).map_err(io::Error::other)?;
    Command::new(exe)
        .arg("__mask-log")
        .arg(log_file)
        .env_clear()
        .env(VALUES_VARIABLE, values)
        .stdin(Stdio::from(output))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(pgid)
        .spawn()
}

/// `slipway __mask-log FILE`: copies standard input to FILE, masked, line by line, until
/// the end of input. SIGTERM and SIGINT are blocked: the instance gets them, and its last
/// words must still reach the file; a SIGKILL of the group ends this too.
pub fn run(file: &Path) -> i32 {
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGTERM);
    blocked.add(Signal::SIGINT);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None);
    let values: Vec<String> = std::env::var(VALUES_VARIABLE)
        .ok()
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    let masker = Masker::new(values);
    match copy(io::stdin().lock(), file, &masker) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("slipway __mask-log: {error}");
            1
        }
    }
}

fn copy(input: impl io::Read, file: &Path, masker: &Masker) -> io::Result<()> {
    let mut output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    let mut input = BufReader::new(input);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let read = input
            .by_ref()
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        output.write_all(masker.mask(&text).as_bytes())?;
        output.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_each_line_and_keeps_slipway_values() {
        let vars = BTreeMap::from([
            ("API_KEY".to_owned(), "sk-live-1234".to_owned()),
            ("SLIPWAY_APP".to_owned(), "shop".to_owned()),
            ("PORT".to_owned(), "8080".to_owned()),
        ]);
        let masker = Masker::new(secret_values(&vars));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.1.log");
        let input = "using sk-live-1234 for shop on 8080\nbye\n".as_bytes();
        copy(input, &file, &masker).unwrap();
        assert_eq!(
            std::fs::read_to_string(file).unwrap(),
            "using **** for shop on 8080\nbye\n"
        );
    }
}
