//! The configuration an image carries, for image-only deploys and for operations that
//! reuse a release's image: the labels `slipway.config` (a `slipway.yml`),
//! `slipway.procfile` and `slipway.aptible`, or else the files `slipway.yml`,
//! `.slipway.yml`, `Procfile` and `.aptible.yml` in the image's working directory, in
//! `/app` or in `/`, read from a container that is created, never started, and removed.

use std::io::Read;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, DownloadFromContainerOptions};
use bollard::Docker;
use futures_util::StreamExt;

use crate::config::{ConfigSources, SourceText, MAX_CONFIG_BYTES, SLIPWAY_FILE_NAMES};
use crate::runtime::docker::engine::{self, RemoveOnDrop};
use crate::runtime::docker::spec::{LABEL_APTIBLE, LABEL_CONFIG, LABEL_PROCFILE, LABEL_ROLE};

/// The config files of `image` (which must be in the engine); `Ok(None)` when it has none.
pub async fn config_sources(docker: &Docker, image: &str) -> Result<Option<ConfigSources>, String> {
    let inspected = docker.inspect_image(image).await.map_err(|e| {
        format!(
            "could not look at the image {image}: {}",
            engine::describe(&e)
        )
    })?;
    let config = inspected.config.unwrap_or_default();
    let labels = config.labels.unwrap_or_default();
    let label = |key: &str| {
        labels
            .get(key)
            .map(|text| SourceText::new(format!("{image} (label {key})"), text.clone()))
    };
    let mut sources = ConfigSources {
        missing_file_name: format!("{image}:/slipway.yml"),
        ..ConfigSources::default()
    };
    sources.slipway_yml = label(LABEL_CONFIG);
    sources.procfile = label(LABEL_PROCFILE);
    sources.aptible_yml = label(LABEL_APTIBLE);
    if sources.slipway_yml.is_some() || sources.procfile.is_some() {
        return Ok(Some(sources));
    }

    let mut dirs: Vec<String> = config
        .working_dir
        .into_iter()
        .filter(|d| !d.is_empty())
        .collect();
    for dir in ["/app", "/"] {
        if !dirs
            .iter()
            .any(|d| d.trim_end_matches('/') == dir.trim_end_matches('/'))
        {
            dirs.push(dir.to_owned());
        }
    }
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        // Never started; a command is only needed because an image may have none.
        entrypoint: Some(Vec::new()),
        cmd: Some(vec!["/slipway-reads-files-only".to_owned()]),
        labels: Some([(LABEL_ROLE.to_owned(), "files".to_owned())].into()),
        ..ContainerCreateBody::default()
    };
    let created = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| format!("could not open the image {image}: {}", engine::describe(&e)))?;
    let container = RemoveOnDrop {
        docker: docker.clone(),
        id: created.id.clone(),
    };
    let found = find_in(docker, &created.id, image, &dirs).await;
    container.remove().await;
    found
}

/// The config files in the first of `dirs` that has a `slipway.yml` or a `Procfile`.
async fn find_in(
    docker: &Docker,
    id: &str,
    image: &str,
    dirs: &[String],
) -> Result<Option<ConfigSources>, String> {
    for dir in dirs {
        let read = |name: &'static str| read_named(docker, id, image, dir, name);
        let slipway = match read(SLIPWAY_FILE_NAMES[0]).await? {
            Some(found) => Some(found),
            None => read(SLIPWAY_FILE_NAMES[1]).await?,
        };
        let procfile = read("Procfile").await?;
        if slipway.is_none() && procfile.is_none() {
            continue;
        }
        return Ok(Some(ConfigSources {
            slipway_yml: slipway,
            procfile,
            aptible_yml: read(".aptible.yml").await?,
            missing_file_name: format!("{image}:{}/slipway.yml", dir.trim_end_matches('/')),
        }));
    }
    Ok(None)
}

async fn read_named(
    docker: &Docker,
    container: &str,
    image: &str,
    dir: &str,
    name: &str,
) -> Result<Option<SourceText>, String> {
    let file = format!("{}/{name}", dir.trim_end_matches('/'));
    let text = read_file(docker, container, &file).await?;
    Ok(text.map(|text| SourceText::new(format!("{image}:{file}"), text)))
}

/// One regular file of a container's filesystem, as text; `None` when it is not there.
async fn read_file(docker: &Docker, container: &str, path: &str) -> Result<Option<String>, String> {
    let options = DownloadFromContainerOptions {
        path: path.to_owned(),
    };
    let mut stream = docker.download_from_container(container, Some(options));
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => archive.extend_from_slice(&bytes),
            Err(error) if engine::is_not_found(&error) => return Ok(None),
            Err(error) => {
                return Err(format!(
                    "could not read {path} from the image: {}",
                    engine::describe(&error)
                ))
            }
        }
        // The tar of a config file is small; anything far larger is not one.
        if archive.len() > MAX_CONFIG_BYTES + 64 * 1024 {
            return Err(format!(
                "{path} in the image is larger than the 1 MiB a config may be"
            ));
        }
    }
    let mut entries = tar::Archive::new(archive.as_slice());
    let mut entries = entries
        .entries()
        .map_err(|e| format!("could not read {path} from the image: {e}"))?;
    // The archive of one file holds that file first; a directory or link is not a config.
    let Some(entry) = entries.next() else {
        return Ok(None);
    };
    let mut entry = entry.map_err(|e| format!("could not read {path} from the image: {e}"))?;
    if !entry.header().entry_type().is_file() {
        return Ok(None);
    }
    let mut text = String::new();
    entry
        .read_to_string(&mut text)
        .map_err(|_| format!("{path} in the image is not UTF-8 text"))?;
    Ok(Some(text))
}
