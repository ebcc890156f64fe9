//! Where the local runtime keeps its files under the data directory:
//!
//! ```text
//! artifacts/<key>/                  a finished build (complete once `.slipway-artifact` exists)
//! builds/<key>.<random>/            a build in progress, renamed into artifacts/ when done
//! cache/<app>/                      SLIPWAY_CACHE_DIR: kept between builds of the app
//! logs/<app>/<env>/<service>.<i>.log   an instance's output, appended
//! ```
//!
//! Every name that comes from outside (a key, an app, a service) is checked to be one
//! plain path component, so no configuration can make the runtime write elsewhere.

use std::path::{Path, PathBuf};

use crate::ids::{EnvKey, ServiceName};
use crate::pipeline::traits::{EffectError, EffectResult};

/// Written last into a finished artifact: a directory without it is a build that was
/// interrupted and must never be used.
pub(crate) const ARTIFACT_MARKER: &str = ".slipway-artifact";

#[derive(Clone, Debug)]
pub(crate) struct Layout {
    data_dir: PathBuf,
    /// Tags the processes of this data directory's commands (`sweep.rs`).
    scope: String,
}

impl Layout {
    pub(crate) fn new(data_dir: PathBuf) -> Self {
        // Children run in other directories, so every path handed to them is absolute.
        let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
        let scope = crate::runtime::local::sweep::scope_of(&data_dir);
        Self { data_dir, scope }
    }

    /// The scope of this data directory's command tags.
    pub(crate) fn scope(&self) -> &str {
        &self.scope
    }

    pub(crate) fn artifacts_dir(&self) -> PathBuf {
        self.data_dir.join("artifacts")
    }

    pub(crate) fn artifact_dir(&self, key: &str) -> EffectResult<PathBuf> {
        Ok(self.artifacts_dir().join(component("artifact key", key)?))
    }

    pub(crate) fn builds_dir(&self) -> PathBuf {
        self.data_dir.join("builds")
    }

    /// A fresh directory name for a build of `key`; two builds never share one.
    pub(crate) fn new_build_dir(&self, key: &str) -> EffectResult<PathBuf> {
        let suffix: u64 = rand::random();
        Ok(self
            .data_dir
            .join("builds")
            .join(format!("{}.{suffix:016x}", component("artifact key", key)?)))
    }

    pub(crate) fn cache_dir(&self, env: &EnvKey) -> EffectResult<PathBuf> {
        Ok(self
            .data_dir
            .join("cache")
            .join(component("app name", env.app.as_str())?))
    }

    pub(crate) fn instance_log(
        &self,
        env: &EnvKey,
        service: &ServiceName,
        index: u32,
    ) -> EffectResult<PathBuf> {
        Ok(self
            .data_dir
            .join("logs")
            .join(component("app name", env.app.as_str())?)
            .join(component("environment name", env.env.as_str())?)
            .join(format!(
                "{}.{index}.log",
                component("service name", service.as_str())?
            )))
    }

    /// Whether `path` lies inside the artifacts directory (prune deletes nothing else).
    pub(crate) fn holds_artifact(&self, path: &Path) -> bool {
        path.parent() == Some(self.artifacts_dir().as_path())
    }
}

/// Accepts `name` only as one ordinary path component.
fn component<'a>(what: &str, name: &'a str) -> EffectResult<&'a str> {
    let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']);
    if plain {
        Ok(name)
    } else {
        Err(EffectError::Failed(format!(
            "the {what} `{name}` cannot be used as a file name"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_names_that_leave_the_data_directory() {
        let layout = Layout::new(PathBuf::from("/data"));
        assert!(layout.artifact_dir("../etc").is_err());
        assert!(layout.artifact_dir("..").is_err());
        assert!(layout.artifact_dir("").is_err());
        assert_eq!(
            layout.artifact_dir("abc123").ok(),
            Some(PathBuf::from("/data/artifacts/abc123"))
        );
        let env = EnvKey::new("shop", "pr-42");
        assert_eq!(
            layout.instance_log(&env, &ServiceName::new("web"), 2).ok(),
            Some(PathBuf::from("/data/logs/shop/pr-42/web.2.log"))
        );
    }
}
