//! Containers as values: the names, labels, commands and create bodies of instances and
//! of ephemeral hook containers, built without talking to the engine so that tests can
//! assert on them and a plan can print them.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use crate::ids::AppName;
use crate::pipeline::traits::{CommandSpec, InstanceSpec};

/// The port an http instance listens on inside its container (its `PORT`). The engine
/// publishes it on a loopback port of its choosing, which is what the router reaches.
pub const CONTAINER_PORT: u16 = 5000;

pub const LABEL_APP: &str = "slipway.app";
pub const LABEL_ENV: &str = "slipway.env";
pub const LABEL_SERVICE: &str = "slipway.service";
pub const LABEL_RELEASE: &str = "slipway.release";
pub const LABEL_INSTANCE: &str = "slipway.instance";
pub const LABEL_OPERATION: &str = "slipway.operation";
/// `instance`, `hook` or `probe`: what a container is for.
pub const LABEL_ROLE: &str = "slipway.role";
/// On images Slipway built: the artifact key the image is the build of.
pub const LABEL_ARTIFACT: &str = "slipway.artifact";
pub const LABEL_COMMIT: &str = "slipway.commit";
/// On images: the app's `slipway.yml`, `Procfile` and `.aptible.yml`, so that an image
/// carries its own configuration (users may set them in their Dockerfile too).
pub const LABEL_CONFIG: &str = "slipway.config";
pub const LABEL_PROCFILE: &str = "slipway.procfile";
pub const LABEL_APTIBLE: &str = "slipway.aptible";

/// Runs `pre_start` commands in order, then replaces itself with the instance's command,
/// so the command's process is the one the init process signals. Its arguments are the
/// command, then each `pre_start` script: nothing is spliced into the script's text.
const WRAPPER: &str = r#"main="$1"; shift
for step in "$@"; do
  sh -c "$step" || { status=$?; echo "slipway: pre_start failed with exit code $status" >&2; exit "$status"; }
done
exec sh -c "$main""#;

/// `slipway/<app>`: the repository of an app's images. Docker wants it lowercase.
pub fn image_repository(app: &AppName) -> String {
    let name: String = app
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("slipway/{}", name.trim_matches(['.', '_', '-']))
}

/// `slipway/<app>:<artifact key>`: the tag that says an artifact exists.
pub fn artifact_tag(app: &AppName, key: &str) -> String {
    format!("{}:{key}", image_repository(app))
}

/// `slipway-<app>-<env>-<service>-v<release>-<index>-op<N>`: unique while it runs, and
/// telling in `docker ps`.
pub fn container_name(spec: &InstanceSpec) -> String {
    format!("slipway-{}", spec.instance_id())
}

pub fn instance_labels(spec: &InstanceSpec) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_APP.to_owned(), spec.env.app.to_string()),
        (LABEL_ENV.to_owned(), spec.env.env.to_string()),
        (LABEL_SERVICE.to_owned(), spec.service.to_string()),
        (LABEL_RELEASE.to_owned(), spec.release.to_string()),
        (LABEL_INSTANCE.to_owned(), spec.index.to_string()),
        (LABEL_OPERATION.to_owned(), spec.operation.to_string()),
        (LABEL_ROLE.to_owned(), "instance".to_owned()),
    ])
}

/// The labels of a hook's container, from what its variables say about it.
pub fn hook_labels(spec: &CommandSpec) -> HashMap<String, String> {
    let mut labels = HashMap::from([(LABEL_ROLE.to_owned(), "hook".to_owned())]);
    for (label, var) in [
        (LABEL_APP, "SLIPWAY_APP"),
        (LABEL_ENV, "SLIPWAY_ENVIRONMENT"),
        (LABEL_RELEASE, "SLIPWAY_RELEASE"),
        (LABEL_OPERATION, "SLIPWAY_OPERATION_ID"),
    ] {
        if let Some(value) = spec.env.get(var) {
            labels.insert(label.to_owned(), value.clone());
        }
    }
    labels
}

/// `KEY=VALUE` lines, as the engine takes variables.
pub fn env_list(vars: &BTreeMap<String, String>) -> Vec<String> {
    vars.iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}

/// The argv of an instance: its command through `sh`, after its `pre_start` scripts.
pub fn instance_command(spec: &InstanceSpec) -> Vec<String> {
    let scripts: Vec<String> = spec
        .pre_start
        .iter()
        .flatten()
        .filter_map(|command| command.argv.get(2).cloned())
        .collect();
    if scripts.is_empty() {
        return vec!["sh".into(), "-c".into(), spec.command.clone()];
    }
    let mut argv = vec![
        "sh".into(),
        "-c".into(),
        WRAPPER.into(),
        "slipway-instance".into(),
        spec.command.clone(),
    ];
    argv.extend(scripts);
    argv
}

/// The variables of an instance: its spec's, plus `PORT` for http services.
pub fn instance_env(spec: &InstanceSpec) -> BTreeMap<String, String> {
    let mut vars = spec.env_vars.clone();
    if spec.http {
        vars.insert("PORT".to_owned(), CONTAINER_PORT.to_string());
    }
    vars
}

/// The container of an instance of `image`.
pub fn instance_container(spec: &InstanceSpec, image: &str) -> ContainerCreateBody {
    let port_key = format!("{CONTAINER_PORT}/tcp");
    let (exposed, bindings) = if spec.http {
        let binding = PortBinding {
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(String::new()),
        };
        (
            Some(vec![port_key.clone()]),
            Some(HashMap::from([(port_key, Some(vec![binding]))])),
        )
    } else {
        (None, None)
    };
    let memory = i64::from(spec.size_mb) * 1024 * 1024;
    ContainerCreateBody {
        image: Some(image.to_owned()),
        // The image's entrypoint would receive `sh -c ...` as arguments: a Procfile
        // command is meant to run as it is written.
        entrypoint: Some(Vec::new()),
        cmd: Some(instance_command(spec)),
        env: Some(env_list(&instance_env(spec))),
        labels: Some(instance_labels(spec)),
        exposed_ports: exposed,
        stop_signal: Some("SIGTERM".into()),
        host_config: Some(HostConfig {
            port_bindings: bindings,
            memory: (memory > 0).then_some(memory),
            // An init as PID 1 forwards SIGTERM to the command and reaps what it forks:
            // an app that does not handle signals as PID 1 still stops on SIGTERM.
            init: Some(true),
            // Instances outlive a restart of the engine, as they outlive Slipway's.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

/// The container of one command of a hook, in `image`, removed after it ran.
pub fn hook_container(
    spec: &CommandSpec,
    image: &str,
    working_dir: Option<String>,
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_owned()),
        entrypoint: Some(Vec::new()),
        cmd: Some(spec.argv.clone()),
        env: Some(env_list(&spec.env)),
        labels: Some(hook_labels(spec)),
        working_dir,
        host_config: Some(HostConfig {
            init: Some(true),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

#[cfg(test)]
mod tests;
