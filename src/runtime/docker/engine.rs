//! The engine, as the docker runtime uses it: connecting (honouring `DOCKER_HOST`),
//! errors in words, pulling an image that is missing, waiting for a container to end,
//! forwarding a container's output into an operation log, and removing containers
//! whatever happens to the task that made them.

use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    CreateImageOptions, InspectContainerOptions, LogsOptions, RemoveContainerOptions,
    WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::pipeline::log::OperationLog;
use crate::pipeline::traits::{EffectError, EffectResult};

/// Requests that do not stream get this long; builds and waits are bounded by their own
/// timeouts (the build's, the hook's).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The engine could not be reached: the server refuses to start with the docker runtime.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the Docker Engine at {host}: {why}; is it running, and does DOCKER_HOST point at it?")]
pub struct EngineUnreachable {
    pub host: String,
    pub why: String,
}

/// Connects to `DOCKER_HOST` (default: the local socket), speaks the newest API version
/// both sides know, and checks that the engine answers.
pub async fn connect() -> Result<Docker, EngineUnreachable> {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
    let unreachable = |error: BollardError| EngineUnreachable {
        host: host.clone(),
        why: describe(&error),
    };
    let docker = Docker::connect_with_defaults()
        .map_err(unreachable)?
        .with_timeout(REQUEST_TIMEOUT);
    let docker = docker.negotiate_version().await.map_err(unreachable)?;
    docker.ping().await.map_err(unreachable)?;
    Ok(docker)
}

/// What the engine said, without the wrapping.
pub fn describe(error: &BollardError) -> String {
    match error {
        BollardError::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        BollardError::DockerContainerWaitError { error, code } if error.is_empty() => {
            format!("exit code {code}")
        }
        other => other.to_string(),
    }
}

pub fn is_not_found(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub fn failed(what: &str, error: &BollardError) -> EffectError {
    EffectError::Failed(format!("{what}: {}", describe(error)))
}

/// Makes sure `reference` is in the engine, pulling it when it is a pinned reference
/// that is missing (a rollback to an image pruned since, a fresh engine).
pub async fn ensure_image(
    docker: &Docker,
    reference: &str,
    log: Option<&OperationLog>,
) -> EffectResult<()> {
    match docker.inspect_image(reference).await {
        Ok(_) => return Ok(()),
        Err(error) if !is_not_found(&error) => {
            return Err(failed(
                &format!("could not look at the image {reference}"),
                &error,
            ))
        }
        Err(_) => {}
    }
    if let Some(log) = log {
        log.line(format!("    pulling {reference}")).await;
    }
    let options = CreateImageOptions {
        from_image: Some(reference.to_owned()),
        ..CreateImageOptions::default()
    };
    let mut pull = docker.create_image(Some(options), None, None);
    while let Some(progress) = pull.next().await {
        match progress {
            Ok(info) => {
                if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
                    return Err(EffectError::Failed(format!(
                        "could not pull {reference}: {error}"
                    )));
                }
            }
            Err(error) => return Err(failed(&format!("could not pull {reference}"), &error)),
        }
    }
    Ok(())
}

/// Waits until the container is not running, and says its exit code. `None`: it could
/// not be waited for (it is gone).
pub async fn wait_exit(docker: &Docker, id: &str) -> Option<i64> {
    let options = WaitContainerOptions {
        condition: "not-running".to_owned(),
    };
    let mut wait = docker.wait_container(id, Some(options));
    match wait.next().await {
        Some(Ok(response)) => Some(response.status_code),
        Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Some(code),
        _ => docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.exit_code),
    }
}

/// Forwards the container's output, each line prefixed with `[<label>] `, until the
/// container's output ends (it stopped) or the log task is dropped.
pub async fn forward_output(docker: Docker, id: String, label: String, log: OperationLog) {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        tail: "all".to_owned(),
        ..LogsOptions::default()
    };
    let mut output = docker.logs(&id, Some(options));
    let prefix = format!("[{label}] ");
    let mut partial = Vec::<u8>::new();
    while let Some(Ok(chunk)) = output.next().await {
        partial.extend_from_slice(&chunk.into_bytes());
        let mut lines = Vec::new();
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            lines.push(format!("{prefix}{}", text.trim_end_matches('\r')));
        }
        log.lines(lines).await;
    }
    if !partial.is_empty() {
        log.line(format!("{prefix}{}", String::from_utf8_lossy(&partial)))
            .await;
    }
}

/// Removes a container (and its anonymous volumes), running or not; gone already is fine.
pub async fn remove_container(docker: &Docker, id: &str) -> Result<(), BollardError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..RemoveContainerOptions::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Err(error) if !is_not_found(&error) => Err(error),
        _ => Ok(()),
    }
}

/// Removes an ephemeral container when dropped, even when the future that ran it was
/// cancelled halfway: a hook's container must not outlive its operation.
pub struct RemoveOnDrop {
    pub docker: Docker,
    pub id: String,
}

impl RemoveOnDrop {
    /// Removes the container now, and waits for it: the normal end of its use.
    pub async fn remove(mut self) {
        let id = std::mem::take(&mut self.id);
        if let Err(error) = remove_container(&self.docker, &id).await {
            tracing::warn!(container = %id, error = %describe(&error), "could not remove an ephemeral container");
        }
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
        if id.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = remove_container(&docker, &id).await {
                    tracing::warn!(container = %id, error = %describe(&error), "could not remove an ephemeral container");
                }
            });
        }
    }
}
