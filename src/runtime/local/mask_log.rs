//! Masking an instance's output. An instance writes into a pipe read by a small process of
//! its own (`slipway __mask-log FILE`, in the instance's process group), which replaces
//! configuration values with `****` and appends to the instance's log file. The server is
//! not in the path, so output still survives a server restart; the masker ends when the
//! instance and everything it forked have closed the pipe. The file is rotated at
//! `INSTANCE_LOG_BYTES` (`rotate.rs`), so no instance can fill the disk.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use tokio::process::{Child, Command};

use crate::pipeline::log::Masker;
use crate::runtime::local::rotate::{RotatingFile, INSTANCE_LOG_BYTES};

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
    match copy(io::stdin().lock(), file, &masker, INSTANCE_LOG_BYTES) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("slipway __mask-log: {error}");
            1
        }
    }
}

/// Copies `input` into `file`, masked, rotating the file at `limit` bytes. Input is
/// masked in runs of whole lines (a value to mask never spans lines, so never a run's
/// edge), which costs one pass per read instead of one per line; a line longer than
/// `MAX_LINE` is written in pieces. Writes are buffered while more input is waiting and
/// flushed as soon as none is, so a flood costs few writes and a quiet instance's last
/// line is in the file at once.
fn copy(input: impl io::Read, file: &Path, masker: &Masker, limit: u64) -> io::Result<()> {
    let mut output = RotatingFile::open(file, limit)?;
    let mut input = BufReader::with_capacity(64 * 1024, input);
    // The start of a line whose end has not been read yet.
    let mut partial: Vec<u8> = Vec::with_capacity(1024);
    let write = |output: &mut RotatingFile, bytes: &[u8]| {
        output.write(masker.mask(&String::from_utf8_lossy(bytes)).as_bytes())
    };
    loop {
        if input.buffer().is_empty() {
            // The next read may wait: what is written so far must be in the file first.
            output.flush()?;
        }
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            if !partial.is_empty() {
                write(&mut output, &partial)?;
            }
            return output.flush();
        }
        let read = buffer.len();
        match buffer.iter().rposition(|byte| *byte == b'\n') {
            Some(end) => {
                partial.extend_from_slice(&buffer[..=end]);
                input.consume(end + 1);
                write(&mut output, &partial)?;
                partial.clear();
            }
            None => {
                partial.extend_from_slice(buffer);
                input.consume(read);
                if partial.len() >= MAX_LINE {
                    write(&mut output, &partial)?;
                    partial.clear();
                }
            }
        }
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
        copy(input, &file, &masker, INSTANCE_LOG_BYTES).unwrap();
        assert_eq!(
            std::fs::read_to_string(file).unwrap(),
            "using **** for shop on 8080\nbye\n"
        );
    }

    #[test]
    fn a_flood_of_output_is_rotated_and_its_last_line_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.1.log");
        let limit = 1024 * 1024;
        // 8 MiB of `y` lines: eight times the limit.
        let flood = "y\n".repeat(4 * 1024 * 1024) + "last words\n";
        copy(flood.as_bytes(), &file, &Masker::default(), limit).unwrap();
        let (current, previous) = (
            std::fs::metadata(&file).unwrap().len(),
            std::fs::metadata(dir.path().join("web.1.log.1"))
                .unwrap()
                .len(),
        );
        assert!(current <= limit + 128 * 1024, "{current}");
        assert!(previous <= limit + 128 * 1024, "{previous}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("==> log rotated at 1 MiB: earlier output is in web.1.log.1\n"));
        assert!(
            text.ends_with("\nlast words\n"),
            "{}",
            &text[text.len() - 100..]
        );
    }
}
