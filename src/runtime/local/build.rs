//! A build on this machine: copy the source into a fresh build directory, run the build
//! hook there, then rename the directory into `artifacts/` and mark it finished. A build
//! that fails or is killed halfway leaves no artifact that could be reused.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::pipeline::log::OperationLog;
use crate::pipeline::model::Artifact;
use crate::pipeline::traits::{BuildSpec, EffectError, EffectResult};
use crate::runtime::local::command::{execute, Execution, HOOK_KILL_GRACE};
use crate::runtime::local::layout::{Layout, ARTIFACT_MARKER};
use crate::runtime::local::process::{environment, failure};

/// The finished artifact of `key`, if its marker says it is complete.
pub(crate) fn finished(layout: &Layout, key: &str) -> EffectResult<Option<Artifact>> {
    let dir = layout.artifact_dir(key)?;
    Ok(dir
        .join(ARTIFACT_MARKER)
        .is_file()
        .then(|| directory_artifact(&dir)))
}

pub(crate) fn directory_artifact(dir: &Path) -> Artifact {
    Artifact::Directory {
        path: dir.to_string_lossy().into_owned(),
    }
}

/// Builds `spec` (the caller holds the build lock of its key).
pub(crate) async fn build(
    layout: &Layout,
    spec: &BuildSpec,
    log: &OperationLog,
) -> EffectResult<Artifact> {
    if let Some(artifact) = finished(layout, &spec.artifact_key)? {
        log.line(format!(
            "build {} exists already: reusing it",
            spec.artifact_key
        ))
        .await;
        return Ok(artifact);
    }
    let build_dir = layout.new_build_dir(&spec.artifact_key)?;
    let cache_dir = layout.cache_dir(&spec.env)?;
    let result = build_in(&build_dir, &cache_dir, layout.scope(), spec, log).await;
    let result = match result {
        Ok(()) => finish(layout, &build_dir, spec).await,
        Err(error) => Err(error),
    };
    if result.is_err() {
        let _ = blocking(move || remove_dir_if_present(&build_dir)).await;
    }
    result
}

/// Copies the source and runs the hook in `build_dir`.
async fn build_in(
    build_dir: &Path,
    cache_dir: &Path,
    scope: &str,
    spec: &BuildSpec,
    log: &OperationLog,
) -> EffectResult<()> {
    let (source, target, cache) = (
        spec.source_dir.clone(),
        build_dir.to_owned(),
        cache_dir.to_owned(),
    );
    blocking(move || {
        fs::create_dir_all(&cache)?;
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        copy_tree(&source, &target, true)
    })
    .await
    .map_err(|error| {
        EffectError::Failed(format!(
            "could not copy the source into the build directory: {error}"
        ))
    })?;

    let Some(commands) = &spec.hook else {
        log.line("no build hook: the artifact is the source as it is")
            .await;
        return Ok(());
    };
    let mut build_vars = BTreeMap::new();
    build_vars.insert(
        "SLIPWAY_APP_DIR".to_owned(),
        build_dir.to_string_lossy().into_owned(),
    );
    build_vars.insert(
        "SLIPWAY_CACHE_DIR".to_owned(),
        cache_dir.to_string_lossy().into_owned(),
    );
    build_vars.insert("TMPDIR".to_owned(), "/tmp".to_owned());
    for command in commands {
        let mut env = command.env.clone();
        env.extend(build_vars.clone());
        let cwd = match &command.cwd {
            Some(relative) => build_dir.join(relative),
            None => build_dir.to_owned(),
        };
        let outcome = execute(Execution {
            argv: &command.argv,
            cwd: &cwd,
            env: environment(&env),
            timeout: command.timeout,
            kill_grace: HOOK_KILL_GRACE,
            output: Some((log, &command.label)),
            scope,
        })
        .await
        .map_err(|error| EffectError::Failed(format!("could not start the build hook: {error}")))?;
        if !outcome.success() {
            return Err(EffectError::Failed(failure(
                "build hook",
                &outcome,
                command.timeout,
            )));
        }
    }
    Ok(())
}

/// Moves the finished build into `artifacts/` and writes its marker, last.
async fn finish(layout: &Layout, build_dir: &Path, spec: &BuildSpec) -> EffectResult<Artifact> {
    let artifact_dir = layout.artifact_dir(&spec.artifact_key)?;
    let (from, to) = (build_dir.to_owned(), artifact_dir.clone());
    let marker = format!("commit: {}\n", spec.commit.as_deref().unwrap_or("-"));
    blocking(move || {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        // A directory without a marker is a build that was interrupted after its rename.
        remove_dir_if_present(&to)?;
        fs::rename(&from, &to)?;
        fs::write(to.join(ARTIFACT_MARKER), marker)
    })
    .await
    .map_err(|error| EffectError::Failed(format!("could not store the artifact: {error}")))?;
    Ok(directory_artifact(&artifact_dir))
}

/// Removes an artifact: its marker first, so a half-removed directory is never reused.
pub(crate) async fn prune(layout: &Layout, dir: PathBuf) -> EffectResult<()> {
    if !layout.holds_artifact(&dir) {
        return Err(EffectError::Failed(format!(
            "{} is not an artifact of this runtime",
            dir.display()
        )));
    }
    let shown = dir.display().to_string();
    blocking(move || {
        match fs::remove_file(dir.join(ARTIFACT_MARKER)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        remove_dir_if_present(&dir)
    })
    .await
    .map_err(|error| EffectError::Failed(format!("could not remove the artifact {shown}: {error}")))
}

fn remove_dir_if_present(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Copies a directory tree: files keep their permission bits (so scripts stay
/// executable), symlinks stay symlinks, and at the top `.git` and `.slipway` (the data
/// directory of `slipway up`) are left out. Sockets and devices are not source: skipped.
fn copy_tree(from: &Path, to: &Path, top: bool) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if top && (name == ".git" || name == ".slipway") {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source)?, &target)?;
        } else if kind.is_dir() {
            copy_tree(&source, &target, false)?;
        } else if kind.is_file() {
            fs::copy(&source, &target)?;
        }
    }
    // Last, so that a read-only source directory can still be filled.
    fs::set_permissions(to, fs::metadata(from)?.permissions())
}

async fn blocking<T, F>(work: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}
