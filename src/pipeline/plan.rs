//! Plans as values: the variables, commands and instances that a step will run, built
//! from the config and the release without doing anything. The executor hands these to
//! the runtime; tests assert on them directly.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::config::model::{AppConfig, HealthCheck, Hook, ServiceConfig};
use crate::ids::{EnvKey, OperationId, ReleaseNumber, ServiceName};
use crate::pipeline::model::{Artifact, OperationKind, Scale, ServiceScale, Variable};
use crate::pipeline::traits::{CommandSpec, Exposure, InstanceSpec};

/// What every process and hook of a release is told about where it runs.
#[derive(Clone, Debug)]
pub struct ReleaseContext<'a> {
    pub env: &'a EnvKey,
    pub release: ReleaseNumber,
    pub commit: Option<&'a str>,
    pub operation: OperationId,
    pub kind: OperationKind,
    pub config: &'a AppConfig,
    pub scale: &'a Scale,
    /// The release's runtime configuration variables.
    pub variables: &'a BTreeMap<String, String>,
}

impl ReleaseContext<'_> {
    /// The variables of a process of `service` (or of an ephemeral hook instance when
    /// `None`): the configuration variables, then the `SLIPWAY_*` ones, which win.
    pub fn env_for(&self, service: Option<&ServiceName>) -> BTreeMap<String, String> {
        let mut env = self.variables.clone();
        let service = service.or_else(|| main_service(self.config));
        let size = service
            .and_then(|name| self.scale.services.get(name).map(|s| s.size_mb))
            .or_else(|| {
                service
                    .and_then(|name| self.config.services.get(name))
                    .map(|s| s.size_mb)
            })
            .unwrap_or(crate::config::model::DEFAULT_SIZE_MB);
        env.insert("SLIPWAY_APP".into(), self.env.app.to_string());
        env.insert("SLIPWAY_ENVIRONMENT".into(), self.env.env.to_string());
        env.insert(
            "SLIPWAY_SERVICE".into(),
            service.map(|s| s.to_string()).unwrap_or_default(),
        );
        env.insert("SLIPWAY_RELEASE".into(), self.release.to_string());
        env.insert(
            "SLIPWAY_COMMIT".into(),
            self.commit.unwrap_or_default().to_owned(),
        );
        env.insert("SLIPWAY_OPERATION".into(), self.kind.to_string());
        env.insert("SLIPWAY_OPERATION_ID".into(), self.operation.to_string());
        env.insert("SLIPWAY_CONTAINER_SIZE".into(), size.to_string());
        env
    }

    /// The commands of a release-level hook (`before_release`, `deploy`, `after_*`...).
    pub fn hook(&self, label: &str, hook: &Hook) -> Vec<CommandSpec> {
        CommandSpec::from_hook(label, hook, &self.env_for(None))
    }

    /// Every instance of the release, service by service, in index order.
    pub fn instances(&self, artifact: &Artifact) -> Vec<InstanceSpec> {
        self.config
            .services
            .iter()
            .flat_map(|(name, service)| {
                let count = self
                    .scale
                    .services
                    .get(name)
                    .map_or(service.instances, |s| s.instances);
                (1..=count).map(move |index| self.instance(artifact, name, service, index))
            })
            .collect()
    }

    pub fn instance(
        &self,
        artifact: &Artifact,
        name: &ServiceName,
        service: &ServiceConfig,
        index: u32,
    ) -> InstanceSpec {
        let env_vars = self.env_for(Some(name));
        let pre_start = self
            .config
            .hooks
            .pre_start
            .as_ref()
            .map(|hook| CommandSpec::from_hook("pre_start", hook, &env_vars));
        InstanceSpec {
            env: self.env.clone(),
            operation: self.operation,
            service: name.clone(),
            release: self.release,
            index,
            artifact: artifact.clone(),
            command: service.command.clone(),
            pre_start,
            size_mb: self
                .scale
                .services
                .get(name)
                .map_or(service.size_mb, |s| s.size_mb),
            env_vars,
            http: service.http.is_some(),
            stop_timeout: service.stop_timeout,
        }
    }
}

/// The service the router sends an environment's traffic to: `web` when it takes HTTP,
/// else the first service that does.
pub fn routed_service(config: &AppConfig) -> Option<&ServiceName> {
    let web = ServiceName::from("web");
    if config.services.get(&web).is_some_and(|s| s.http.is_some()) {
        return config.services.get_key_value(&web).map(|(k, _)| k);
    }
    config.web_services().map(|(name, _)| name).next()
}

/// Where an environment answers besides its default host: its own entry under
/// `environments:` (a preview `pr-<n>` has none of its own; the config refuses a port or a
/// domain on `pull_requests: true`).
pub fn exposure(config: &AppConfig, env: &EnvKey) -> Exposure {
    config
        .environments
        .get(env.env.as_str())
        .map(|rule| Exposure {
            domain: rule.domain.clone(),
            port: rule.port,
        })
        .unwrap_or_default()
}

/// The service whose name and size ephemeral hook instances carry.
pub fn main_service(config: &AppConfig) -> Option<&ServiceName> {
    routed_service(config).or_else(|| config.services.keys().next())
}

/// How a new instance of `service` proves it is ready, if it has to.
pub fn health_check(service: &ServiceConfig) -> Option<HealthCheck> {
    match (&service.http, &service.health) {
        (_, Some(check)) => Some(check.clone()),
        (Some(http), None) => Some(HealthCheck::Http(http.health.clone())),
        (None, None) => None,
    }
}

/// The environment of the build hook: build variables only, plus the `SLIPWAY_*` ones
/// that make sense before a release exists.
pub fn build_env(
    env: &EnvKey,
    commit: Option<&str>,
    operation: OperationId,
    build_vars: &[Variable],
) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = build_vars
        .iter()
        .filter(|v| v.build)
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect();
    vars.insert("SLIPWAY_APP".into(), env.app.to_string());
    vars.insert("SLIPWAY_ENVIRONMENT".into(), env.env.to_string());
    vars.insert(
        "SLIPWAY_COMMIT".into(),
        commit.unwrap_or_default().to_owned(),
    );
    vars.insert(
        "SLIPWAY_OPERATION".into(),
        OperationKind::Deploy.to_string(),
    );
    vars.insert("SLIPWAY_OPERATION_ID".into(), operation.to_string());
    vars
}

/// The key of a build: the same source content and build variables give the same artifact.
pub fn artifact_key(app: &str, content_id: &str, build_vars: &[Variable]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(content_id.as_bytes());
    let mut build: Vec<&Variable> = build_vars.iter().filter(|v| v.build).collect();
    build.sort_by(|a, b| a.key.cmp(&b.key));
    for var in build {
        hasher.update([0]);
        hasher.update(var.key.as_bytes());
        hasher.update([0]);
        hasher.update(var.value.as_bytes());
    }
    format!("{app}-{}", &hex::encode(hasher.finalize())[..20])
}

/// The runtime variables a release pins.
pub fn runtime_variables(vars: &[Variable]) -> BTreeMap<String, String> {
    vars.iter()
        .filter(|v| !v.build)
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect()
}

/// A hash of the runtime variables, so that two releases with the same configuration
/// can be told apart from two with different ones without comparing secrets.
pub fn config_hash(vars: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in vars {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())[..16].to_owned()
}

/// The scale of a new release: the config's, except where a `scale` operation pinned a
/// service's instances or size on the previous release (as Aptible and Heroku keep it).
pub fn scale_for_deploy(config: &AppConfig, previous: Option<&Scale>) -> Scale {
    let services = config
        .services
        .iter()
        .map(|(name, service)| {
            let pinned = previous
                .and_then(|p| p.services.get(name))
                .filter(|s| s.pinned);
            let scale = pinned.copied().unwrap_or(ServiceScale {
                instances: service.instances,
                size_mb: service.size_mb,
                pinned: false,
            });
            (name.clone(), scale)
        })
        .collect();
    Scale { services }
}

#[cfg(test)]
pub(crate) mod tests;
