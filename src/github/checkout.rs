//! Reading a repository's configuration at a commit, before any operation exists: the
//! delivery worker needs `environments` of the commit being deployed to know where it
//! goes. One bare cache per repository URL under `<data>/github/git/`; the token goes to
//! git through its environment, never on a command line.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::config::model::AppConfig;
use crate::config::{self, ConfigErrors};
use crate::github::GitHubError;

pub struct Checkout {
    pub dir: PathBuf,
}

/// A commit and what its configuration says (or what is wrong with it, with paths
/// relative to the repository's root).
pub struct Checked {
    pub sha: String,
    pub config: Result<AppConfig, ConfigErrors>,
}

impl Checkout {
    pub async fn read(
        &self,
        url: &str,
        reference: &str,
        token: Option<&str>,
        default_app: &str,
    ) -> Result<Checked, GitHubError> {
        let cache = self.dir.join(format!(
            "{}.git",
            &hex::encode(Sha256::digest(url.as_bytes()))[..16]
        ));
        if !cache.join("HEAD").exists() {
            tokio::fs::create_dir_all(&cache)
                .await
                .map_err(|e| GitHubError::Git(format!("cannot create {}: {e}", cache.display())))?;
            git(&cache, &["init", "--bare", "--quiet"], token).await?;
        }
        git(
            &cache,
            &[
                "fetch",
                "--quiet",
                "--force",
                url,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
                // A pull request from a fork has its head only here on GitHub.
                "+refs/pull/*/head:refs/remotes/pull/*",
            ],
            token,
        )
        .await?;
        let tag = format!("refs/tags/{reference}^{{commit}}");
        let plain = format!("{reference}^{{commit}}");
        let sha = match git(&cache, &["rev-parse", "--verify", "--quiet", &plain], token).await {
            Ok(out) => out,
            Err(_) => git(&cache, &["rev-parse", "--verify", "--quiet", &tag], token).await?,
        };
        let sha = String::from_utf8_lossy(&sha).trim().to_owned();
        let archive = git(&cache, &["archive", "--format=tar", &sha], token).await?;
        let default_app = default_app.to_owned();
        let tree = self
            .dir
            .join(format!("tree-{sha}-{}", rand::random::<u32>()));
        let config = tokio::task::spawn_blocking(
            move || -> Result<Result<AppConfig, ConfigErrors>, GitHubError> {
                let unpacked = std::fs::create_dir_all(&tree)
                    .and_then(|()| tar::Archive::new(archive.as_slice()).unpack(&tree));
                let config = unpacked
                    .map_err(|e| GitHubError::Git(format!("cannot extract the commit: {e}")))
                    .map(|()| {
                        config::load_dir(&tree, &default_app)
                            .map_err(|errors| relative(errors, &tree))
                    });
                // The tree was only needed to read the configuration.
                let _ = std::fs::remove_dir_all(&tree);
                config
            },
        )
        .await
        .map_err(|e| GitHubError::Git(e.to_string()))??;
        Ok(Checked { sha, config })
    }
}

/// Config errors name files inside the temporary tree; GitHub wants repository paths.
fn relative(errors: ConfigErrors, root: &Path) -> ConfigErrors {
    let prefix = format!("{}/", root.display());
    ConfigErrors(
        errors
            .0
            .into_iter()
            .map(|mut e| {
                e.file = e.file.strip_prefix(&prefix).unwrap_or(&e.file).to_owned();
                e
            })
            .collect(),
    )
}

async fn git(dir: &Path, args: &[&str], token: Option<&str>) -> Result<Vec<u8>, GitHubError> {
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
        .map_err(|e| GitHubError::Git(format!("cannot run git: {e}; is git installed?")))?;
    if !output.status.success() {
        let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if let Some(token) = token {
            stderr = stderr.replace(token, "****");
        }
        return Err(GitHubError::Git(format!(
            "git {} failed: {stderr}",
            args.first().copied().unwrap_or_default()
        )));
    }
    Ok(output.stdout)
}
