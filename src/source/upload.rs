//! Folder uploads: the CLI packs a folder into a gzipped tar, the server unpacks it into
//! `<data>/sources/<content hash>/`. The content hash covers paths, exec bits and bytes
//! (not timestamps), so the same files give the same hash and the build is reused.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Folders never sent: version control, Slipway's own state.
pub const SKIPPED: &[&str] = &[".git", ".slipway"];

/// The largest upload the server accepts, unpacked.
pub const MAX_UPLOAD_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("the upload is not a valid gzipped tar: {0}")]
    Corrupt(io::Error),
    #[error("the upload has an unsafe path `{0}` (absolute or with `..`)")]
    UnsafePath(String),
    #[error("the upload is larger than {} MiB unpacked", MAX_UPLOAD_BYTES / 1024 / 1024)]
    TooLarge,
    #[error("cannot write the upload: {0}")]
    Write(io::Error),
}

/// Packs a folder into a gzipped tar, files in name order.
pub fn pack(dir: &Path) -> Result<Vec<u8>, UploadError> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    for relative in list_files(dir)? {
        let path = dir.join(&relative);
        tar.append_path_with_name(&path, &relative)
            .map_err(|source| UploadError::Read {
                path: path.display().to_string(),
                source,
            })?;
    }
    let encoder = tar.into_inner().map_err(UploadError::Write)?;
    encoder.finish().map_err(UploadError::Write)
}

/// Unpacks an upload under `sources_dir` and returns its folder and content hash. The
/// same content lands in the same folder, so a repeated upload costs nothing more.
pub fn unpack(bytes: &[u8], sources_dir: &Path) -> Result<(PathBuf, String), UploadError> {
    fs::create_dir_all(sources_dir).map_err(UploadError::Write)?;
    let staging = tempdir_in(sources_dir)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut total = 0u64;
    for entry in archive.entries().map_err(UploadError::Corrupt)? {
        let mut entry = entry.map_err(UploadError::Corrupt)?;
        let name = entry.path().map_err(UploadError::Corrupt)?.into_owned();
        if name.is_absolute()
            || name
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(UploadError::UnsafePath(name.display().to_string()));
        }
        total += entry.header().size().unwrap_or(0);
        if total > MAX_UPLOAD_BYTES {
            return Err(UploadError::TooLarge);
        }
        entry.unpack_in(&staging).map_err(UploadError::Corrupt)?;
    }
    let hash = content_hash(&staging)?;
    let target = sources_dir.join(&hash);
    if target.exists() {
        let _ = fs::remove_dir_all(&staging);
    } else {
        fs::rename(&staging, &target).map_err(UploadError::Write)?;
    }
    Ok((target, hash))
}

/// A hash of a folder's files: relative paths, exec bits, symlink targets and contents.
pub fn content_hash(dir: &Path) -> Result<String, UploadError> {
    let mut hasher = Sha256::new();
    for relative in list_files(dir)? {
        let path = dir.join(&relative);
        let read_error = |source| UploadError::Read {
            path: path.display().to_string(),
            source,
        };
        let meta = fs::symlink_metadata(&path).map_err(read_error)?;
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(read_error)?;
            hasher.update(b"link:");
            hasher.update(target.to_string_lossy().as_bytes());
        } else if meta.is_file() {
            hasher.update(if meta.permissions().mode() & 0o111 != 0 {
                b"x"
            } else {
                b"-"
            });
            let mut file = fs::File::open(&path).map_err(read_error)?;
            let mut buffer = [0u8; 64 * 1024];
            loop {
                let n = file.read(&mut buffer).map_err(read_error)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
        }
        hasher.update([0]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Files, symlinks and folders under `dir`, relative, sorted, without the skipped folders.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, UploadError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let full = dir.join(&relative);
        let entries = fs::read_dir(&full).map_err(|source| UploadError::Read {
            path: full.display().to_string(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| UploadError::Read {
                path: full.display().to_string(),
                source,
            })?;
            let name = entry.file_name();
            if relative.as_os_str().is_empty() && SKIPPED.iter().any(|s| name == *s) {
                continue;
            }
            let child = relative.join(&name);
            let kind = entry.file_type().map_err(|source| UploadError::Read {
                path: child.display().to_string(),
                source,
            })?;
            if kind.is_dir() {
                stack.push(child.clone());
            }
            out.push(child);
        }
    }
    out.sort();
    Ok(out)
}

fn tempdir_in(parent: &Path) -> Result<PathBuf, UploadError> {
    let name = format!(".upload-{}", rand::random::<u64>());
    let path = parent.join(name);
    fs::create_dir(&path).map_err(UploadError::Write)?;
    Ok(path)
}

/// Writes bytes to a file atomically (temp file + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_files_give_the_same_hash_whatever_their_timestamps() {
        let a = tempfile::tempdir().unwrap();
        fs::write(a.path().join("app.py"), "print(1)").unwrap();
        fs::create_dir(a.path().join(".git")).unwrap();
        fs::write(a.path().join(".git/HEAD"), "ignored").unwrap();
        let packed = pack(a.path()).unwrap();
        let sources = tempfile::tempdir().unwrap();
        let (dir, hash) = unpack(&packed, sources.path()).unwrap();
        assert_eq!(hash, content_hash(a.path()).unwrap());
        assert_eq!(fs::read_to_string(dir.join("app.py")).unwrap(), "print(1)");
        assert!(!dir.join(".git").exists(), ".git is never uploaded");
        let (again, hash_again) = unpack(&packed, sources.path()).unwrap();
        assert_eq!((again, hash_again), (dir, hash.clone()));
        fs::write(a.path().join("app.py"), "print(2)").unwrap();
        assert_ne!(content_hash(a.path()).unwrap(), hash);
    }
}
