//! Sources for the docker runtime: what `LocalSources` fetches (folders, git), plus
//! images. An image deploy resolves its tag to a digest through the registry, pulls that
//! digest, and hands the pipeline a small folder holding the app's configuration (read
//! from the image, or from the git commit that named the image) and the pinned
//! reference, which the runtime's "build" then only tags. The folder is kept per digest,
//! so that later operations on the release read the same configuration back.
//!
//! The image tag of a git deploy of an app with `image:` is the git ref's name: the tag
//! `v1.2.0` that triggered it deploys `<image>:v1.2.0`; a branch `main` deploys
//! `<image>:main`. An `image:` that names a tag or digest itself is used as it is.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bollard::Docker;

use crate::config::model::AppConfig;
use crate::config::{self, ConfigError, ConfigErrors, SourceText};
use crate::ids::AppName;
use crate::pipeline::log::OperationLog;
use crate::pipeline::model::{Artifact, SourceSpec};
use crate::pipeline::traits::{EffectError, EffectResult, FetchedSource, Sources};
use crate::runtime::docker::build::IMAGE_MARKER;
use crate::runtime::docker::{engine, files, DockerRuntime};
use crate::source::image::{valid_tag, ImageError, ImageRef, RegistryResolver};
use crate::source::LocalSources;

/// Folders, git and images.
pub struct DockerSources {
    local: LocalSources,
    docker: Docker,
    resolver: RegistryResolver,
    /// `<data>/images/<digest>/`: the configuration and pinned reference of each image deployed.
    images_dir: PathBuf,
}

impl DockerSources {
    pub fn new(
        local: LocalSources,
        runtime: &DockerRuntime,
        data_dir: &Path,
    ) -> Result<DockerSources, ImageError> {
        Ok(DockerSources {
            local,
            docker: runtime.engine().clone(),
            resolver: RegistryResolver::new()?,
            images_dir: data_dir.join("images"),
        })
    }

    fn image_dir(&self, digest: &str) -> PathBuf {
        self.images_dir.join(digest.replace(':', "-"))
    }

    /// Resolves, pulls, and lays down the folder of an image deploy.
    async fn fetch_image(
        &self,
        image: ImageRef,
        config_dir: Option<&Path>,
        commit: Option<String>,
        log: &OperationLog,
    ) -> EffectResult<FetchedSource> {
        let digest = self
            .resolver
            .resolve(&image)
            .await
            .map_err(|e| EffectError::Failed(e.to_string()))?;
        let pinned = image.pinned(&digest);
        log.line(format!("    {image} is {digest}")).await;
        engine::ensure_image(&self.docker, &pinned, Some(log)).await?;
        let files: Vec<(&str, String)> = match config_dir {
            Some(dir) => ["slipway.yml", ".slipway.yml", "Procfile", ".aptible.yml"]
                .into_iter()
                .filter_map(|name| {
                    std::fs::read_to_string(dir.join(name))
                        .ok()
                        .map(|text| (name, text))
                })
                .collect(),
            None => {
                let found = files::config_sources(&self.docker, &pinned)
                    .await
                    .map_err(EffectError::Failed)?;
                let Some(found) = found else {
                    return Err(EffectError::Failed(format!(
                        "the image {pinned} carries no configuration: add a slipway.yml or Procfile to it (in its working directory, /app or /), or a `slipway.config` label"
                    )));
                };
                let text = |source: Option<SourceText>| source.map(|s| s.text);
                [
                    ("slipway.yml", text(found.slipway_yml)),
                    ("Procfile", text(found.procfile)),
                    (".aptible.yml", text(found.aptible_yml)),
                ]
                .into_iter()
                .filter_map(|(name, text)| text.map(|text| (name, text)))
                .collect()
            }
        };
        let dir = self.image_dir(&digest);
        let (target, marker) = (dir.clone(), pinned.clone());
        tokio::task::spawn_blocking(move || write_folder(&target, &files, &marker))
            .await
            .map_err(|e| EffectError::Failed(e.to_string()))?
            .map_err(|e| EffectError::Failed(format!("could not write {}: {e}", dir.display())))?;
        Ok(FetchedSource {
            dir,
            commit,
            content_id: format!("image-{digest}"),
        })
    }
}

/// Replaces `dir` with the config files and the marker, through a staging folder, so
/// that a half-written folder is never read.
fn write_folder(dir: &Path, files: &[(&str, String)], pinned: &str) -> std::io::Result<()> {
    let parent = dir
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent folder"))?;
    std::fs::create_dir_all(parent)?;
    let staging = parent.join(format!(".staging-{:08x}", rand::random::<u32>()));
    std::fs::create_dir(&staging)?;
    for (name, text) in files {
        std::fs::write(staging.join(name), text)?;
    }
    std::fs::write(staging.join(IMAGE_MARKER), format!("{pinned}\n"))?;
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    std::fs::rename(&staging, dir)
}

/// The image a git ref deploys: `image:` with the ref's name as its tag.
fn image_for_ref(image: &str, reference: &str) -> EffectResult<ImageRef> {
    let parsed = ImageRef::parse(image).map_err(|e| EffectError::Failed(e.to_string()))?;
    if parsed.tag.is_some() || parsed.digest.is_some() {
        return Ok(parsed);
    }
    let tag = reference
        .strip_prefix("refs/tags/")
        .or_else(|| reference.strip_prefix("refs/heads/"))
        .unwrap_or(reference);
    if !valid_tag(tag) {
        return Err(EffectError::Failed(format!(
            "`{tag}` cannot be an image tag (letters, digits, `_`, `.` and `-` only): deploy a git tag, or an image with --image"
        )));
    }
    ImageRef::parse(&format!("{image}:{tag}")).map_err(|e| EffectError::Failed(e.to_string()))
}

#[async_trait]
impl Sources for DockerSources {
    async fn fetch(&self, spec: &SourceSpec, log: &OperationLog) -> EffectResult<FetchedSource> {
        match spec {
            SourceSpec::Image { reference } => {
                let image =
                    ImageRef::parse(reference).map_err(|e| EffectError::Failed(e.to_string()))?;
                self.fetch_image(image, None, None, log).await
            }
            SourceSpec::Git { reference, .. } => {
                let fetched = self.local.fetch(spec, log).await?;
                let dir = fetched.dir.clone();
                let config =
                    tokio::task::spawn_blocking(move || config::load_dir(&dir, "app")).await;
                match config {
                    Ok(Ok(AppConfig {
                        image: Some(image), ..
                    })) => {
                        let image = image_for_ref(&image, reference)?;
                        self.fetch_image(image, Some(&fetched.dir), fetched.commit.clone(), log)
                            .await
                    }
                    // No image (a Dockerfile build), or a config error the pipeline reports.
                    _ => Ok(fetched),
                }
            }
            SourceSpec::Upload { .. } => self.local.fetch(spec, log).await,
        }
    }

    async fn config_of_source(
        &self,
        source: &FetchedSource,
        app: &AppName,
    ) -> Result<AppConfig, ConfigErrors> {
        self.local.config_of_source(source, app).await
    }

    async fn config_of_artifact(
        &self,
        artifact: &Artifact,
        app: &AppName,
    ) -> Result<AppConfig, ConfigErrors> {
        let Artifact::Image { reference, digest } = artifact else {
            return self.local.config_of_artifact(artifact, app).await;
        };
        let dir = self.image_dir(digest);
        if dir.join(IMAGE_MARKER).is_file() {
            let path = dir.to_string_lossy().into_owned();
            return self
                .local
                .config_of_artifact(&Artifact::Directory { path }, app)
                .await;
        }
        let unreadable =
            |why: String| ConfigErrors::from(ConfigError::at_start(reference.clone(), why));
        engine::ensure_image(&self.docker, reference, None)
            .await
            .map_err(|e| unreadable(e.to_string()))?;
        match files::config_sources(&self.docker, reference).await.map_err(unreadable)? {
            Some(sources) => config::parse_sources(&sources, app.as_str()),
            None => Err(unreadable(
                "the image carries no configuration: add a slipway.yml or Procfile to it, or a `slipway.config` label".into(),
            )),
        }
    }
}
