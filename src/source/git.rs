//! Fetching a git ref into a folder: one bare cache repository per URL under
//! `<data>/git/`, and one extracted tree per commit under `<data>/sources/git-<sha>/`.
//! A token is passed to git through its environment, never on a command line or in a log.

use std::path::Path;
use std::process::Stdio;

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::pipeline::log::OperationLog;
use crate::pipeline::traits::{EffectError, EffectResult, FetchedSource};

pub async fn fetch(
    data_dir: &Path,
    url: &str,
    reference: &str,
    token: Option<&str>,
    log: &OperationLog,
) -> EffectResult<FetchedSource> {
    log.line(format!("    git fetch {url}")).await;
    checkout(
        &data_dir.join("git"),
        &data_dir.join("sources"),
        url,
        reference,
        token,
    )
    .await
}

/// Fetches `url` into a bare cache under `caches` and extracts the commit `reference`
/// names into `sources/git-<sha>` (once: an existing tree is reused). Callers that may
/// fetch at the same moment keep their own `caches`, so git's ref locks never collide.
pub async fn checkout(
    caches: &Path,
    sources: &Path,
    url: &str,
    reference: &str,
    token: Option<&str>,
) -> EffectResult<FetchedSource> {
    let cache = caches.join(format!(
        "{}.git",
        &hex::encode(Sha256::digest(url.as_bytes()))[..16]
    ));
    if !cache.join("HEAD").exists() {
        tokio::fs::create_dir_all(&cache)
            .await
            .map_err(|e| failed(format!("cannot create {}: {e}", cache.display())))?;
        git(&cache, &["init", "--bare", "--quiet"], token).await?;
    }
    git(
        &cache,
        &[
            "fetch",
            "--quiet",
            "--force",
            "--prune",
            // The URL comes from a request: never let it be read as an option.
            "--",
            url,
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*",
            // A pull request from a fork has its head only here on GitHub.
            "+refs/pull/*/head:refs/remotes/pull/*",
        ],
        token,
    )
    .await?;
    let sha = resolve(&cache, reference, token).await?;
    let dir = sources.join(format!("git-{sha}"));
    if !dir.is_dir() {
        let archive = git(&cache, &["archive", "--format=tar", &sha], token).await?;
        let staging = sources.join(format!(".git-{sha}-{}", rand::random::<u32>()));
        let target = dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&staging)?;
            tar::Archive::new(archive.as_slice()).unpack(&staging)?;
            match std::fs::rename(&staging, &target) {
                // Another fetch of the same commit got there first: same content.
                Err(_) if target.is_dir() => std::fs::remove_dir_all(&staging),
                other => other,
            }
        })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(format!("cannot extract commit {sha}: {e}")))?;
    }
    Ok(FetchedSource {
        dir,
        commit: Some(sha.clone()),
        content_id: format!("git-{sha}"),
    })
}

/// The commit a branch, tag, full ref or sha names.
async fn resolve(cache: &Path, reference: &str, token: Option<&str>) -> EffectResult<String> {
    let short = reference.strip_prefix("refs/heads/").unwrap_or(reference);
    let candidates = [
        format!("refs/remotes/origin/{short}"),
        format!(
            "refs/tags/{}",
            reference.strip_prefix("refs/tags/").unwrap_or(reference)
        ),
        reference.to_owned(),
    ];
    for candidate in candidates {
        let spec = format!("{candidate}^{{commit}}");
        if let Ok(out) = git(cache, &["rev-parse", "--verify", "--quiet", &spec], token).await {
            let sha = String::from_utf8_lossy(&out).trim().to_owned();
            if !sha.is_empty() {
                return Ok(sha);
            }
        }
    }
    Err(failed(format!(
        "`{reference}` is not a branch, tag or commit of the repository"
    )))
}

/// Runs git in `dir` and returns its stdout, or an error with its stderr.
async fn git(dir: &Path, args: &[&str], token: Option<&str>) -> EffectResult<Vec<u8>> {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command.env("GIT_TERMINAL_PROMPT", "0");
    if let Some(token) = token {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {basic}"),
            );
    }
    let output = command
        .output()
        .await
        .map_err(|e| failed(format!("cannot run git: {e}; is git installed?")))?;
    if !output.status.success() {
        let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if let Some(token) = token {
            stderr = stderr.replace(token, "****");
        }
        return Err(failed(format!(
            "git {} failed: {stderr}",
            args.first().copied().unwrap_or_default()
        )));
    }
    Ok(output.stdout)
}

fn failed(message: String) -> EffectError {
    EffectError::Failed(message)
}
