//! Fetching a GitHub repository as a GitHub App: the pipeline's `Sources`, with each
//! git fetch of `{--github-git-url}/...` authenticated by the installation token of
//! that repository. Everything else goes to the wrapped sources unchanged.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::model::AppConfig;
use crate::config::ConfigErrors;
use crate::github::auth::Credentials;
use crate::github::{db, Shared};
use crate::ids::AppName;
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::{Artifact, SourceSpec};
use crate::pipeline::traits::{EffectError, EffectResult, FetchedSource, Sources};

pub struct GitHubSources {
    pub inner: Arc<dyn Sources>,
    pub shared: Arc<Shared>,
    pub data_dir: PathBuf,
}

#[async_trait]
impl Sources for GitHubSources {
    async fn fetch(&self, spec: &SourceSpec, log: &OperationLog) -> EffectResult<FetchedSource> {
        let prefix = format!("{}/", self.shared.options.git_url.trim_end_matches('/'));
        if let (SourceSpec::Git { url, reference }, Credentials::App { .. }) =
            (spec, &*self.shared.credentials)
        {
            if let Some(repository) = url
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".git"))
            {
                let installation = db::installation_of(&self.shared.pool, repository)
                    .await
                    .map_err(|e| EffectError::Store(e.to_string()))?;
                let token = self
                    .shared
                    .credentials
                    .token(&self.shared.api, installation)
                    .await
                    .map_err(|e| {
                        EffectError::Failed(format!(
                            "cannot get a GitHub installation token for {repository}: {e}"
                        ))
                    })?;
                return crate::source::fetch_git(&self.data_dir, url, reference, Some(&token), log)
                    .await;
            }
        }
        self.inner.fetch(spec, log).await
    }

    async fn config_of_source(
        &self,
        source: &FetchedSource,
        app: &AppName,
    ) -> Result<AppConfig, ConfigErrors> {
        self.inner.config_of_source(source, app).await
    }

    async fn config_of_artifact(
        &self,
        artifact: &Artifact,
        app: &AppName,
    ) -> Result<AppConfig, ConfigErrors> {
        self.inner.config_of_artifact(artifact, app).await
    }
}
