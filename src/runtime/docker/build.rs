//! Artifacts as images: `slipway/<app>:<artifact key>` says an artifact exists. A build
//! sends the source folder as the build context and builds its Dockerfile, streaming the
//! engine's output into the operation log; an image deploy (a source that names a
//! pinned image) only tags the pulled image, so the exact bytes that were tested run.

use std::collections::HashMap;
use std::path::Path;

use bollard::query_parameters::{
    BuildImageOptions, ListImagesOptions, RemoveImageOptions, TagImageOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::pipeline::log::OperationLog;
use crate::pipeline::model::Artifact;
use crate::pipeline::traits::{BuildSpec, EffectError, EffectResult};
use crate::runtime::docker::engine::{self, failed};
use crate::runtime::docker::spec::{self, LABEL_APP, LABEL_ARTIFACT, LABEL_COMMIT};

/// In a source folder: the pinned image (`name@sha256:...`) the deploy runs, written by
/// the image-aware sources instead of a Dockerfile.
pub const IMAGE_MARKER: &str = ".slipway-image";

/// The artifact of `key`, when its image exists.
pub async fn existing(docker: &Docker, key: &str) -> EffectResult<Option<Artifact>> {
    let filters = HashMap::from([("reference".to_owned(), vec![format!("slipway/*:{key}")])]);
    let options = ListImagesOptions {
        filters: Some(filters),
        ..ListImagesOptions::default()
    };
    let images = docker
        .list_images(Some(options))
        .await
        .map_err(|e| failed("could not list images", &e))?;
    let Some(image) = images.first() else {
        return Ok(None);
    };
    let tag = image
        .repo_tags
        .iter()
        .find(|t| t.ends_with(&format!(":{key}")))
        .cloned()
        .unwrap_or_default();
    // A listing filtered by reference shows only the matching names: the digests the
    // image was pulled as are in its full record.
    let full = docker
        .inspect_image(&image.id)
        .await
        .map_err(|e| failed(&format!("could not look at the image {tag}"), &e))?;
    let labels = full.config.and_then(|c| c.labels).unwrap_or_default();
    let digests = full.repo_digests.unwrap_or_default();
    Ok(Some(artifact_of(&image.id, &labels, &digests, &tag, key)))
}

/// An image Slipway built is named by its tag and identified by its id; a pulled one is
/// named by the pinned reference it was pulled as.
fn artifact_of(
    id: &str,
    labels: &HashMap<String, String>,
    repo_digests: &[String],
    tag: &str,
    key: &str,
) -> Artifact {
    match repo_digests.first() {
        Some(pinned) if labels.get(LABEL_ARTIFACT).map(String::as_str) != Some(key) => {
            let digest = pinned.rsplit_once('@').map_or(id, |(_, d)| d).to_owned();
            Artifact::Image {
                reference: pinned.clone(),
                digest,
            }
        }
        _ => Artifact::Image {
            reference: tag.to_owned(),
            digest: id.to_owned(),
        },
    }
}

/// Builds the source's Dockerfile, or tags the pinned image an image deploy names.
pub async fn build(
    docker: &Docker,
    spec: &BuildSpec,
    log: &OperationLog,
) -> EffectResult<Artifact> {
    let tag = spec::artifact_tag(&spec.env.app, &spec.artifact_key);
    let marker = spec.source_dir.join(IMAGE_MARKER);
    if marker.is_file() {
        let pinned = std::fs::read_to_string(&marker).map_err(|e| {
            EffectError::Failed(format!("could not read {}: {e}", marker.display()))
        })?;
        return tag_pulled(docker, pinned.trim(), &tag, log).await;
    }
    let dockerfile = spec
        .dockerfile
        .clone()
        .unwrap_or_else(|| "Dockerfile".to_owned());
    if !spec.source_dir.join(&dockerfile).is_file() {
        return Err(EffectError::Failed(format!(
            "there is no {dockerfile} in the app: the docker runtime builds the app's Dockerfile (or `build.dockerfile`); add one, or deploy an image with `image:` or `--image`"
        )));
    }
    if spec.hook.is_some() {
        log.line("    build.hook is not run by the docker runtime: the Dockerfile is the build")
            .await;
    }
    let context = build_context(&spec.source_dir).await?;
    let mut labels = HashMap::from([
        (LABEL_APP.to_owned(), spec.env.app.to_string()),
        (LABEL_ARTIFACT.to_owned(), spec.artifact_key.clone()),
    ]);
    if let Some(commit) = &spec.commit {
        labels.insert(LABEL_COMMIT.to_owned(), commit.clone());
    }
    labels.extend(config_labels(&spec.source_dir));
    let options = BuildImageOptions {
        dockerfile,
        t: Some(tag.clone()),
        rm: true,
        forcerm: true,
        labels: Some(labels),
        ..BuildImageOptions::default()
    };
    log.line(format!("    docker build -t {tag}")).await;
    let mut output = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = output.next().await {
        let info = item.map_err(|e| failed("the image build failed", &e))?;
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            return Err(EffectError::Failed(format!(
                "the image build failed: {}",
                message.trim()
            )));
        }
        if let Some(text) = info.stream {
            let lines: Vec<String> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("[build] {}", l.trim_end()))
                .collect();
            log.output(lines).await;
        }
    }
    let image = docker
        .inspect_image(&tag)
        .await
        .map_err(|e| failed("the build left no image", &e))?;
    let id = image.id.unwrap_or_default();
    if let Some(commit) = &spec.commit {
        // `slipway/<app>:<commit>` too, for people looking for the build of a commit.
        let options = TagImageOptions {
            repo: Some(spec::image_repository(&spec.env.app)),
            tag: Some(commit.clone()),
        };
        let _ = docker.tag_image(&tag, Some(options)).await;
    }
    log.line(format!("    built {tag} ({})", short(&id))).await;
    Ok(Artifact::Image {
        reference: tag,
        digest: id,
    })
}

/// Tags the pulled `pinned` image as the artifact; pulls it first if it went missing.
async fn tag_pulled(
    docker: &Docker,
    pinned: &str,
    tag: &str,
    log: &OperationLog,
) -> EffectResult<Artifact> {
    engine::ensure_image(docker, pinned, Some(log)).await?;
    let (repo, key) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
    let options = TagImageOptions {
        repo: Some(repo.to_owned()),
        tag: Some(key.to_owned()),
    };
    docker
        .tag_image(pinned, Some(options))
        .await
        .map_err(|e| failed(&format!("could not tag {pinned}"), &e))?;
    let digest = pinned
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_default();
    log.line(format!("    no build: the release runs {pinned}"))
        .await;
    Ok(Artifact::Image {
        reference: pinned.to_owned(),
        digest,
    })
}

/// Removes an artifact's image; refused by the engine while a container uses it.
pub async fn prune(docker: &Docker, reference: &str) -> EffectResult<()> {
    let image = match docker.inspect_image(reference).await {
        Ok(image) => image,
        Err(error) if engine::is_not_found(&error) => return Ok(()),
        Err(error) => return Err(failed(&format!("could not look at {reference}"), &error)),
    };
    let id = image.id.unwrap_or_else(|| reference.to_owned());
    // `force` removes every tag of the image; the engine still refuses if a running
    // container uses it, which is what must never be pruned.
    let options = RemoveImageOptions {
        force: true,
        ..RemoveImageOptions::default()
    };
    match docker.remove_image(&id, Some(options), None).await {
        Ok(_) => Ok(()),
        Err(error) if engine::is_not_found(&error) => Ok(()),
        Err(error) => Err(failed(
            &format!("could not remove the image {reference}"),
            &error,
        )),
    }
}

/// The app's config files, as labels of the image, so that the image alone says how to
/// run it (a redeploy or rollback reads them back).
fn config_labels(dir: &Path) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    if let Some(text) = read("slipway.yml").or_else(|| read(".slipway.yml")) {
        labels.insert(spec::LABEL_CONFIG.to_owned(), text);
    }
    if let Some(text) = read("Procfile") {
        labels.insert(spec::LABEL_PROCFILE.to_owned(), text);
    }
    if let Some(text) = read(".aptible.yml") {
        labels.insert(spec::LABEL_APTIBLE.to_owned(), text);
    }
    labels
}

/// The source folder as a tar, without `.git` and Slipway's own data folder.
async fn build_context(dir: &Path) -> EffectResult<Vec<u8>> {
    let dir = dir.to_owned();
    let shown = dir.display().to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut archive = tar::Builder::new(Vec::new());
        archive.follow_symlinks(false);
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name == ".git" || name == ".slipway" {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                archive.append_dir_all(&name, &path)?;
            } else {
                archive.append_path_with_name(&path, &name)?;
            }
        }
        archive.into_inner()
    })
    .await
    .map_err(|e| EffectError::Failed(format!("packing the build context failed: {e}")))?
    .map_err(|e| EffectError::Failed(format!("could not pack {shown} as the build context: {e}")))
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..12.min(hex.len())]
}
