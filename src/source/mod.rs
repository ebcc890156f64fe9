//! Where deploys come from: a folder uploaded by the CLI, or a git repository at a ref.
//! Implements the pipeline's `Sources` trait for them, and reads the configuration of a
//! source or of a directory artifact.

mod git;
pub mod image;
pub mod upload;

use std::path::PathBuf;

use async_trait::async_trait;

use crate::config::model::AppConfig;
use crate::config::{self, ConfigErrors};
use crate::ids::AppName;
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::{Artifact, SourceSpec};
use crate::pipeline::traits::{EffectError, EffectResult, FetchedSource, Sources};

/// Sources on this machine's disk, under `<data>/sources`.
pub struct LocalSources {
    data_dir: PathBuf,
    /// Sent to git servers as HTTP basic auth (a GitHub token); never logged.
    git_token: Option<String>,
    /// The only git server the token is sent to (`--github-git-url`): a deploy names any
    /// URL, and the token must not go to whichever host it names.
    token_url: String,
}

impl LocalSources {
    pub fn new(data_dir: PathBuf, git_token: Option<String>, token_url: &str) -> Self {
        Self {
            data_dir,
            git_token,
            token_url: token_url.trim_end_matches('/').to_ascii_lowercase(),
        }
    }

    /// The token, for a URL on the git server it belongs to.
    fn token_for(&self, url: &str) -> Option<&str> {
        let on_server = url
            .get(..self.token_url.len() + 1)
            .is_some_and(|prefix| prefix.to_ascii_lowercase() == format!("{}/", self.token_url));
        self.git_token.as_deref().filter(|_| on_server)
    }
}

#[async_trait]
impl Sources for LocalSources {
    async fn fetch(&self, spec: &SourceSpec, log: &OperationLog) -> EffectResult<FetchedSource> {
        match spec {
            SourceSpec::Upload {
                path,
                commit,
                content_hash,
            } => {
                let dir = PathBuf::from(path);
                if !dir.is_dir() {
                    return Err(EffectError::Failed(format!(
                        "the uploaded source {path} is gone; deploy the folder again"
                    )));
                }
                log.line(format!(
                    "    uploaded folder, content {}",
                    &content_hash[..12.min(content_hash.len())]
                ))
                .await;
                Ok(FetchedSource {
                    dir,
                    commit: commit.clone(),
                    content_id: content_hash.clone(),
                })
            }
            SourceSpec::Git { url, reference } => {
                git::fetch(&self.data_dir, url, reference, self.token_for(url), log).await
            }
            SourceSpec::Image { reference } => Err(EffectError::Failed(format!(
                "`{reference}` is an image: image deploys need `--runtime docker`"
            ))),
        }
    }

    async fn config_of_source(
        &self,
        source: &FetchedSource,
        app: &AppName,
    ) -> Result<AppConfig, ConfigErrors> {
        load_dir_blocking(source.dir.clone(), app.to_string()).await
    }

    async fn config_of_artifact(
        &self,
        artifact: &Artifact,
        app: &AppName,
    ) -> Result<AppConfig, ConfigErrors> {
        match artifact {
            Artifact::Directory { path } => {
                load_dir_blocking(PathBuf::from(path), app.to_string()).await
            }
            Artifact::Image { reference, .. } => Err(config::ConfigError {
                file: reference.clone(),
                line: 1,
                column: 1,
                message: "reading the configuration of an image needs `--runtime docker`"
                    .to_owned(),
            }
            .into()),
        }
    }
}

async fn load_dir_blocking(dir: PathBuf, app: String) -> Result<AppConfig, ConfigErrors> {
    let shown = dir.display().to_string();
    tokio::task::spawn_blocking(move || config::load_dir(&dir, &app))
        .await
        .unwrap_or_else(|_| {
            Err(config::ConfigError {
                file: shown,
                line: 1,
                column: 1,
                message: "reading the configuration panicked".into(),
            }
            .into())
        })
}

/// Fetches a git ref into `<data>/sources/git-<sha>`, authenticating with `token` (a
/// GitHub installation token): what the GitHub integration uses when each repository
/// has its own token.
/// Fetches a git ref without an operation (to read a commit's configuration before any
/// operation exists): see `git::checkout`.
pub async fn checkout_git(
    caches: &std::path::Path,
    sources: &std::path::Path,
    url: &str,
    reference: &str,
    token: Option<&str>,
) -> EffectResult<FetchedSource> {
    git::checkout(caches, sources, url, reference, token).await
}

pub async fn fetch_git(
    data_dir: &std::path::Path,
    url: &str,
    reference: &str,
    token: Option<&str>,
    log: &OperationLog,
) -> EffectResult<FetchedSource> {
    git::fetch(data_dir, url, reference, token, log).await
}
