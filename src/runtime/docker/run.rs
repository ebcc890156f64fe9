//! One command of a hook in an ephemeral container of the release's image: its output
//! streamed into the operation log, a timeout (SIGTERM, then SIGKILL after a grace),
//! and the container removed afterwards, whatever happened.

use std::time::Duration;

use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, StartContainerOptions,
};
use bollard::Docker;

use crate::pipeline::log::OperationLog;
use crate::pipeline::traits::{CommandOutcome, CommandSpec, EffectError, EffectResult};
use crate::runtime::docker::engine::{self, failed, RemoveOnDrop};
use crate::runtime::docker::spec;

/// Hooks get this long to exit after SIGTERM before SIGKILL, as in the local runtime.
pub const HOOK_KILL_GRACE: Duration = Duration::from_secs(5);

/// How long the output of an ended command may still take to arrive.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Runs `spec` in a new container of `image`; `Err` only when it could not be run.
pub async fn run(
    docker: &Docker,
    image: &str,
    spec: &CommandSpec,
    log: &OperationLog,
) -> EffectResult<CommandOutcome> {
    let working_dir = working_dir(docker, image, spec).await?;
    let body = spec::hook_container(spec, image, working_dir);
    let name = format!(
        "slipway-{}-{}-{:08x}",
        spec.env.get("SLIPWAY_APP").map_or("app", String::as_str),
        spec.label
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        rand::random::<u32>()
    );
    let options = CreateContainerOptions {
        name: Some(name),
        ..CreateContainerOptions::default()
    };
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| {
            failed(
                &format!("could not create a container for {}", spec.label),
                &e,
            )
        })?;
    let container = RemoveOnDrop {
        docker: docker.clone(),
        id: created.id.clone(),
    };
    docker
        .start_container(&created.id, None::<StartContainerOptions>)
        .await
        .map_err(|e| failed(&format!("could not start {}", spec.label), &e))?;
    let dropped_before = log.dropped_bytes();
    let output = tokio::spawn(engine::forward_output(
        docker.clone(),
        created.id.clone(),
        spec.label.clone(),
        log.clone(),
    ));

    let outcome =
        match tokio::time::timeout(spec.timeout, engine::wait_exit(docker, &created.id)).await {
            Ok(Some(code)) => CommandOutcome::Exited(i32::try_from(code).unwrap_or(-1)),
            Ok(None) => {
                return Err(EffectError::Failed(format!(
                    "the container of {} disappeared",
                    spec.label
                )))
            }
            Err(_) => {
                terminate(docker, &created.id).await;
                CommandOutcome::TimedOut
            }
        };
    if tokio::time::timeout(OUTPUT_DRAIN, output).await.is_err() {
        tracing::warn!(container = %created.id, "the output of a hook did not end with it");
    }
    container.remove().await;
    if outcome == CommandOutcome::TimedOut {
        log.line(format!(
            "[{}] timed out after {}: stopped",
            spec.label,
            crate::runtime::human::duration(spec.timeout)
        ))
        .await;
    }
    log.report_dropped(&spec.label, dropped_before).await;
    Ok(outcome)
}

/// SIGTERM, then SIGKILL after `HOOK_KILL_GRACE`.
async fn terminate(docker: &Docker, id: &str) {
    let signal = |name: &str| KillContainerOptions {
        signal: name.to_owned(),
    };
    let _ = docker.kill_container(id, Some(signal("SIGTERM"))).await;
    if tokio::time::timeout(HOOK_KILL_GRACE, engine::wait_exit(docker, id))
        .await
        .is_err()
    {
        let _ = docker.kill_container(id, Some(signal("SIGKILL"))).await;
        let _ = tokio::time::timeout(HOOK_KILL_GRACE, engine::wait_exit(docker, id)).await;
    }
}

/// A relative `cwd` is relative to the image's working directory.
async fn working_dir(
    docker: &Docker,
    image: &str,
    spec: &CommandSpec,
) -> EffectResult<Option<String>> {
    let Some(cwd) = &spec.cwd else {
        return Ok(None);
    };
    if cwd.is_absolute() {
        return Ok(Some(cwd.to_string_lossy().into_owned()));
    }
    let inspected = docker
        .inspect_image(image)
        .await
        .map_err(|e| failed(&format!("could not look at the image {image}"), &e))?;
    let base = inspected
        .config
        .and_then(|c| c.working_dir)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    Ok(Some(
        std::path::Path::new(&base)
            .join(cwd)
            .to_string_lossy()
            .into_owned(),
    ))
}
