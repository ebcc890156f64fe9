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

use crate::pipeline::log::{OperationLog, MAX_LINE_BYTES};
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
/// container's output ends (it stopped) or the log task is dropped. Lines are cut at
/// `MAX_LINE_BYTES` as they come (one endless line never grows memory), and once the log
/// is capped the output is only counted.
pub async fn forward_output(docker: Docker, id: String, label: String, log: OperationLog) {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        tail: "all".to_owned(),
        ..LogsOptions::default()
    };
    let mut output = docker.logs(&id, Some(options));
    let mut splitter = LineSplitter::new(format!("[{label}] "));
    while let Some(Ok(chunk)) = output.next().await {
        let bytes = chunk.into_bytes();
        if log.is_capped() {
            log.note_dropped((bytes.len() + splitter.discard()) as u64);
            continue;
        }
        let mut lines = Vec::new();
        splitter.push(&bytes, &mut lines);
        log.output(lines).await;
    }
    if let Some(last) = splitter.finish() {
        log.output(vec![last]).await;
    }
}

/// Splits a stream of output pieces into log lines.
struct LineSplitter {
    prefix: String,
    /// The line being read, at most `MAX_LINE_BYTES` of it.
    line: Vec<u8>,
    /// Whether the line being read was longer than that.
    cut: bool,
}

impl LineSplitter {
    fn new(prefix: String) -> LineSplitter {
        LineSplitter {
            prefix,
            line: Vec::new(),
            cut: false,
        }
    }

    /// Splits `bytes`, a piece of the stream, appending the lines it ends to `lines`.
    fn push(&mut self, bytes: &[u8], lines: &mut Vec<String>) {
        for piece in bytes.split_inclusive(|byte| *byte == b'\n') {
            let (text, ends) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            let room = MAX_LINE_BYTES.saturating_sub(self.line.len());
            self.line.extend_from_slice(&text[..text.len().min(room)]);
            self.cut |= text.len() > room;
            if ends {
                lines.push(self.take());
            }
        }
    }

    /// Drops the line being read; returns how many bytes it had.
    fn discard(&mut self) -> usize {
        let dropped = self.line.len();
        self.line.clear();
        self.cut = false;
        dropped
    }

    /// The last line, if the stream ended without a newline.
    fn finish(&mut self) -> Option<String> {
        (!self.line.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let mut text = format!("{}{}", self.prefix, String::from_utf8_lossy(&self.line));
        if self.cut {
            text.push_str(" [line cut]");
        }
        self.discard();
        text
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_pieces_become_lines_and_an_endless_line_is_cut_as_it_comes() {
        let mut splitter = LineSplitter::new("[deploy] ".to_owned());
        let mut lines = Vec::new();
        splitter.push(b"one\ntw", &mut lines);
        splitter.push(b"o\r\n", &mut lines);
        for _ in 0..1000 {
            splitter.push(&[b'x'; 1024], &mut lines);
        }
        assert!(splitter.line.len() <= MAX_LINE_BYTES);
        splitter.push(b"x\nlast", &mut lines);
        assert_eq!(lines[..2], ["[deploy] one", "[deploy] two"]);
        assert!(lines[2].ends_with("x [line cut]") && lines[2].len() < MAX_LINE_BYTES + 30);
        assert_eq!(splitter.finish().as_deref(), Some("[deploy] last"));
        assert_eq!(splitter.finish(), None);
    }
}
