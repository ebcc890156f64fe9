//! Instances as containers: created with their names and labels, published on a
//! loopback port the engine picks, kept by a restart policy (so they outlive a restart
//! of Slipway or of the engine, to be re-adopted by container id), and stopped the way
//! `docker stop` does: SIGTERM to PID 1, SIGKILL after the grace.

use std::time::Duration;

use bollard::models::{
    ContainerInspectResponse, ContainerUpdateBody, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, StartContainerOptions,
};
use bollard::Docker;

use crate::pipeline::log::OperationLog;
use crate::pipeline::model::InstanceRecord;
use crate::pipeline::traits::{
    Clock, EffectError, EffectResult, InstanceSpec, StopOutcome, SystemClock,
};
use crate::runtime::docker::engine::{self, failed};
use crate::runtime::docker::spec::{self, CONTAINER_PORT};

/// After SIGKILL, how long the engine may take to report the container gone.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Creates and starts the container of `spec` from `image`.
pub async fn start(
    docker: &Docker,
    image: &str,
    spec: &InstanceSpec,
    log: &OperationLog,
) -> EffectResult<InstanceRecord> {
    let name = spec::container_name(spec);
    let shown = format!("{}.{}", spec.service, spec.index);
    // A container of this name is left over from an attempt that never got recorded
    // (the server died between create and save): it is ours to replace.
    engine::remove_container(docker, &name)
        .await
        .map_err(|e| failed(&format!("could not replace {name}"), &e))?;
    let options = CreateContainerOptions {
        name: Some(name.clone()),
        ..CreateContainerOptions::default()
    };
    let created = docker
        .create_container(Some(options), spec::instance_container(spec, image))
        .await
        .map_err(|e| failed(&format!("could not create the container of {shown}"), &e))?;
    if let Err(error) = docker
        .start_container(&created.id, None::<StartContainerOptions>)
        .await
    {
        let _ = engine::remove_container(docker, &created.id).await;
        return Err(failed(
            &format!("could not start the container of {shown}"),
            &error,
        ));
    }
    let address = if spec.http {
        let inspected = inspect(docker, &created.id)
            .await
            .map_err(|e| failed(&format!("could not look at the container of {shown}"), &e))?;
        Some(published_address(&inspected).ok_or_else(|| {
            EffectError::Failed(format!(
                "the engine published no port for {shown} (it may have exited at once)"
            ))
        })?)
    } else {
        None
    };
    let short = &created.id[..12.min(created.id.len())];
    match &address {
        Some(address) => {
            log.line(format!(
                "started {shown} (container {short}, {name}) on {address}"
            ))
            .await
        }
        None => {
            log.line(format!("started {shown} (container {short}, {name})"))
                .await
        }
    }
    Ok(InstanceRecord {
        id: spec.instance_id(),
        env: spec.env.clone(),
        service: spec.service.clone(),
        release: spec.release,
        index: spec.index,
        handle: created.id,
        address,
        started_at: SystemClock.now_millis(),
    })
}

/// `127.0.0.1:<port>`: where the engine published the instance's port.
pub fn published_address(container: &ContainerInspectResponse) -> Option<String> {
    let ports = container.network_settings.as_ref()?.ports.as_ref()?;
    let bindings = ports.get(&format!("{CONTAINER_PORT}/tcp"))?.as_ref()?;
    let binding = bindings
        .iter()
        .find(|b| b.host_ip.as_deref() == Some("127.0.0.1"))
        .or(bindings.first())?;
    let port = binding
        .host_port
        .as_deref()
        .filter(|p| !p.is_empty() && *p != "0")?;
    Some(format!("127.0.0.1:{port}"))
}

/// The container's address on its network, for checks of ports that are not published.
pub fn network_address(container: &ContainerInspectResponse) -> Option<String> {
    let networks = container.network_settings.as_ref()?.networks.as_ref()?;
    networks
        .values()
        .filter_map(|n| n.ip_address.clone())
        .find(|ip| !ip.is_empty())
}

pub async fn inspect(
    docker: &Docker,
    id: &str,
) -> Result<ContainerInspectResponse, bollard::errors::Error> {
    docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
}

/// Running, and not between two runs of a crash loop.
pub fn running(container: &ContainerInspectResponse) -> bool {
    container
        .state
        .as_ref()
        .is_some_and(|s| s.running == Some(true) && s.restarting != Some(true))
}

pub async fn is_running(docker: &Docker, instance: &InstanceRecord) -> bool {
    inspect(docker, &instance.handle)
        .await
        .is_ok_and(|c| running(&c))
}

/// SIGTERM to PID 1, SIGKILL after `grace`, then the container is removed.
pub async fn stop(
    docker: &Docker,
    instance: &InstanceRecord,
    grace: Duration,
) -> EffectResult<StopOutcome> {
    let id = &instance.handle;
    let container = match inspect(docker, id).await {
        Ok(container) => container,
        Err(error) if engine::is_not_found(&error) => return Ok(StopOutcome::AlreadyGone),
        Err(error) => {
            return Err(failed(
                &format!("could not look at {}", instance.id),
                &error,
            ))
        }
    };
    let outcome = if running(&container)
        || container
            .state
            .as_ref()
            .is_some_and(|s| s.restarting == Some(true))
    {
        // Stopped on purpose: the restart policy must not bring it back.
        let no_restart = ContainerUpdateBody {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            ..ContainerUpdateBody::default()
        };
        let _ = docker.update_container(id, no_restart).await;
        signal(docker, id, "SIGTERM").await?;
        if tokio::time::timeout(grace, engine::wait_exit(docker, id))
            .await
            .is_ok()
        {
            StopOutcome::Exited
        } else {
            signal(docker, id, "SIGKILL").await?;
            if tokio::time::timeout(KILL_WAIT, engine::wait_exit(docker, id))
                .await
                .is_err()
            {
                return Err(EffectError::Failed(format!(
                    "{} did not go after SIGKILL",
                    instance.id
                )));
            }
            StopOutcome::Killed
        }
    } else {
        StopOutcome::AlreadyGone
    };
    engine::remove_container(docker, id)
        .await
        .map_err(|e| failed(&format!("could not remove {}", instance.id), &e))?;
    Ok(outcome)
}

async fn signal(docker: &Docker, id: &str, name: &str) -> EffectResult<()> {
    match docker
        .kill_container(
            id,
            Some(KillContainerOptions {
                signal: name.to_owned(),
            }),
        )
        .await
    {
        // 409: it is not running any more, which is what the signal was for.
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Ok(()),
        Err(error) => Err(failed(&format!("could not send {name}"), &error)),
    }
}
