//! Reading a repository's configuration at a commit, before any operation exists: the
//! delivery worker needs `environments` of the commit being deployed to know where it
//! goes. The fetch is the pipeline's (`source::checkout_git`), with bare caches of its own
//! under `<data>/github/git/`; the token goes to git through its environment, never on a
//! command line.

use std::path::{Path, PathBuf};

use crate::config::model::AppConfig;
use crate::config::{self, ConfigErrors};
use crate::github::GitHubError;

pub struct Checkout {
    /// The bare caches of this module's fetches (apart from the pipeline's, so that git's
    /// ref locks of two fetches at once never collide).
    pub dir: PathBuf,
    /// Where commits are extracted: `<data>/sources`, shared with the pipeline, so the
    /// deploy that follows finds the commit already there.
    pub sources: PathBuf,
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
        let fetched = crate::source::checkout_git(&self.dir, &self.sources, url, reference, token)
            .await
            .map_err(|e| GitHubError::Git(e.to_string()))?;
        let sha = fetched
            .commit
            .clone()
            .unwrap_or_else(|| reference.to_owned());
        let default_app = default_app.to_owned();
        let tree = fetched.dir;
        let config = tokio::task::spawn_blocking(move || {
            config::load_dir(&tree, &default_app).map_err(|errors| relative(errors, &tree))
        })
        .await
        .map_err(|e| GitHubError::Git(e.to_string()))?;
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
