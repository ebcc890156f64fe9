//! An instance's log file, kept to a bounded size: past `INSTANCE_LOG_BYTES` the file is
//! renamed to `<file>.1` (replacing the one before) and a new file started, so an
//! instance that floods its output costs at most twice the limit on disk.
//!
//! Two instances of one service index (the old and the new release during a switch)
//! write the same file, each through its own masker. The size is read from the file,
//! not counted, so both see the same size; the rotation is done under an exclusive
//! `flock` of the current file and only by a writer that still has that file open,
//! and a writer whose file was rotated away by the other reopens the path.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The most an instance's log file holds before it is rotated.
pub const INSTANCE_LOG_BYTES: u64 = 10 * 1024 * 1024;

/// The size is looked at again after this much was written: a `stat` per line would
/// cost more than the write.
const CHECK_EVERY: u64 = 64 * 1024;

pub(crate) struct RotatingFile {
    path: PathBuf,
    limit: u64,
    file: BufWriter<File>,
    /// Device and inode of the open file, to tell whether the path still names it.
    identity: (u64, u64),
    since_check: u64,
}

impl RotatingFile {
    /// Opens `path` for appending; rotates it once it holds `limit` bytes.
    pub(crate) fn open(path: &Path, limit: u64) -> io::Result<RotatingFile> {
        let (file, identity) = open_append(path)?;
        Ok(RotatingFile {
            path: path.to_owned(),
            limit,
            file: BufWriter::with_capacity(64 * 1024, file),
            identity,
            // Look at the size at the first write: the file may be full already.
            since_check: CHECK_EVERY,
        })
    }

    /// Writes `bytes` (one line, or a piece of a long one), rotating first if the file
    /// is full. Buffered: call `flush` when no more input is waiting.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.since_check >= CHECK_EVERY.min(self.limit) {
            self.since_check = 0;
            self.file.flush()?;
            self.rotate_if_full()?;
        }
        self.file.write_all(bytes)?;
        self.since_check += bytes.len() as u64;
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    fn rotate_if_full(&mut self) -> io::Result<()> {
        if !self.path_names_our_file() {
            return self.reopen();
        }
        if self.file.get_ref().metadata()?.len() < self.limit {
            return Ok(());
        }
        let locked = Flock::lock(self.file.get_ref().try_clone()?, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io::Error::from(errno))?;
        // The other writer may have rotated while this one waited for the lock.
        if self.path_names_our_file() {
            fs::rename(&self.path, rotated(&self.path))?;
            let (mut fresh, _) = open_append(&self.path)?;
            writeln!(
                fresh,
                "==> log rotated at {}: earlier output is in {}",
                size(self.limit),
                rotated(&self.path)
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            )?;
        }
        drop(locked);
        self.reopen()
    }

    fn path_names_our_file(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity)
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let (file, identity) = open_append(&self.path)?;
        self.file = BufWriter::with_capacity(64 * 1024, file);
        self.identity = identity;
        Ok(())
    }
}

/// `10 MiB`, `256 KiB`.
fn size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MiB", bytes / 1024 / 1024)
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

/// `web.1.log` → `web.1.log.1`.
pub(crate) fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

fn open_append(path: &Path) -> io::Result<(File, (u64, u64))> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let metadata = file.metadata()?;
    Ok((file, (metadata.dev(), metadata.ino())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_is_rotated_once_and_two_writers_share_the_rotation() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("web.1.log");
        let limit = 4 * CHECK_EVERY;
        let mut old = RotatingFile::open(&path, limit).expect("open");
        let mut new = RotatingFile::open(&path, limit).expect("open");
        let line = [b'a'; 1023]
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<u8>>();
        // Twelve times the limit, interleaved as two instances would write it.
        for round in 0..12 * limit / 1024 {
            let writer = if round % 2 == 0 { &mut old } else { &mut new };
            writer.write(&line).expect("write");
            writer.flush().expect("flush");
        }
        let size = |p: &Path| fs::metadata(p).expect("a file").len();
        let slack = 2 * CHECK_EVERY + 1024;
        assert!(size(&path) <= limit + slack, "{}", size(&path));
        assert!(
            size(&rotated(&path)) <= limit + slack,
            "{}",
            size(&rotated(&path))
        );
        assert!(!rotated(&rotated(&path)).exists());
        let current = fs::read_to_string(&path).expect("the log");
        assert!(
            current.starts_with("==> log rotated at 256 KiB: earlier output is in web.1.log.1\n"),
            "{}",
            &current[..80]
        );
        // Nothing but whole lines: the two writers never interleaved inside a line.
        assert!(
            current.lines().skip(1).all(|l| l.len() == 1023),
            "a line was torn"
        );
    }
}
