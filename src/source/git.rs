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
    // A commit named by its full sha is immutable: once in the cache (an earlier fetch
    // brought it, as one fetch brings every push made since), it needs no fetch. Under a
    // storm of pushes this saves a round trip to the remote per delivery.
    if let Some(sha) = cached_commit(&cache, reference, token).await {
        return extract(&cache, sources, sha, token).await;
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
    extract(&cache, sources, sha, token).await
}

/// `reference` when it is a full sha whose commit the cache already holds.
async fn cached_commit(cache: &Path, reference: &str, token: Option<&str>) -> Option<String> {
    let full_sha = reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit());
    if !full_sha {
        return None;
    }
    let spec = format!("{reference}^{{commit}}");
    git(cache, &["cat-file", "-e", &spec], token).await.ok()?;
    Some(reference.to_ascii_lowercase())
}

/// The commit's files in `sources/git-<sha>` (extracted once; an existing tree is reused).
async fn extract(
    cache: &Path,
    sources: &Path,
    sha: String,
    token: Option<&str>,
) -> EffectResult<FetchedSource> {
    let dir = sources.join(format!("git-{sha}"));
    if !dir.is_dir() {
        let archive = git(cache, &["archive", "--format=tar", &sha], token).await?;
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A repository with two commits on `main`; returns their shas, oldest first.
    fn origin(dir: &Path) -> (String, String) {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(dir.join("VERSION"), "1\n").unwrap();
        git(dir, &["add", "."]);
        git(dir, &["commit", "--quiet", "-m", "one"]);
        let first = git(dir, &["rev-parse", "HEAD"]);
        std::fs::write(dir.join("VERSION"), "2\n").unwrap();
        git(dir, &["commit", "--quiet", "-am", "two"]);
        (first, git(dir, &["rev-parse", "HEAD"]))
    }

    #[tokio::test]
    async fn a_commit_the_cache_holds_is_not_fetched_again_and_a_branch_always_is() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("origin");
        let (first, second) = origin(&repo);
        let (caches, sources) = (root.path().join("caches"), root.path().join("sources"));
        let url = format!("file://{}", repo.display());

        // One fetch, for the newer commit, brings the older one too.
        let got = super::checkout(&caches, &sources, &url, &second, None)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(got.dir.join("VERSION")).unwrap(),
            "2\n"
        );

        // The remote is gone: a commit the cache holds is still read, by its sha.
        std::fs::rename(&repo, root.path().join("moved")).unwrap();
        let got = super::checkout(&caches, &sources, &url, &first, None)
            .await
            .unwrap();
        assert_eq!(got.commit.as_deref(), Some(first.as_str()));
        assert_eq!(
            std::fs::read_to_string(got.dir.join("VERSION")).unwrap(),
            "1\n"
        );

        // A branch can move, so it is always fetched: without the remote, that fails.
        let error = super::checkout(&caches, &sources, &url, "main", None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("git"), "{error}");
        // So does a sha the cache does not hold.
        let unknown = "0123456789abcdef0123456789abcdef01234567";
        assert!(super::checkout(&caches, &sources, &url, unknown, None)
            .await
            .is_err());
    }
}
