//! Puts the files of an app together into one `AppConfig`.
//!
//! Precedence, written down because users of Heroku, Aptible and Upsun each expect
//! something:
//! - `services:` in `slipway.yml` wins over the `Procfile`, which is then not read for
//!   services at all; an empty `services: {}` counts as absent;
//! - a hook set in `slipway.yml` wins over the same hook in `.aptible.yml`;
//! - the Procfile's `release` process (Heroku's release phase) fills `before_release`
//!   only when neither of them sets it.

use std::time::Duration;

use super::error::{ConfigError, ConfigErrors};
use super::hooks::{RawAptibleHooks, RawHooks};
use super::model::{
    AppConfig, BuildConfig, HookBody, HttpConfig, HttpHealth, ServiceConfig, DEFAULT_BUILD_TIMEOUT,
    DEFAULT_HOOK_TIMEOUT, DEFAULT_RETAIN, DEFAULT_SIZE_MB, DEFAULT_STOP_TIMEOUT,
};
use super::procfile::parse_procfile;
use super::raw::{duration_or, RawConfig, RawService, ServiceFields};
use crate::ids::{AppName, ServiceName};

/// Files larger than this are refused before parsing: no real config comes close, and
/// it bounds the work a hostile pull request can make the server do.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// The text of one config file and the name its errors print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceText {
    pub file_name: String,
    pub text: String,
}

impl SourceText {
    pub fn new(file_name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            file_name: file_name.into(),
            text: text.into(),
        }
    }
}

/// The config files of one app, however they were read (a directory, a git commit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// `slipway.yml` or `.slipway.yml`.
    pub slipway_yml: Option<SourceText>,
    pub procfile: Option<SourceText>,
    pub aptible_yml: Option<SourceText>,
    /// The file a "no services" error names when none of the above exists.
    pub missing_file_name: String,
}

/// Parses every file that is there, reports the errors of all of them together, then
/// merges them into one config.
pub fn assemble(sources: &ConfigSources, default_app: &str) -> Result<AppConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let slipway = match &sources.slipway_yml {
        Some(source) => parse_yaml::<RawConfig>(source)
            .map_err(|e| errors.push(e))
            .ok(),
        None => None,
    };
    let procfile = match &sources.procfile {
        Some(source) => match check_size(source).map_err(ConfigErrors::from) {
            Ok(()) => parse_procfile(&source.text, &source.file_name)
                .map_err(|e| errors.extend(e.0))
                .ok(),
            Err(e) => {
                errors.extend(e.0);
                None
            }
        },
        None => None,
    };
    let aptible = match &sources.aptible_yml {
        Some(source) => parse_yaml::<RawAptibleHooks>(source)
            .map_err(|e| errors.push(e))
            .ok(),
        None => None,
    };
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let raw = slipway.unwrap_or_default();
    let procfile = procfile.unwrap_or_default();

    let services = match raw.services {
        Some(services) if !services.0.is_empty() => services
            .0
            .into_iter()
            .map(|(name, service)| convert_service(&name, service))
            .collect(),
        _ => procfile
            .processes
            .iter()
            .map(|(name, command)| procfile_service(name, command))
            .collect(),
    };
    let services: std::collections::BTreeMap<_, _> = services;
    if services.is_empty() {
        let file = [&sources.slipway_yml, &sources.procfile]
            .into_iter()
            .flatten()
            .map(|s| s.file_name.clone())
            .next()
            .unwrap_or_else(|| sources.missing_file_name.clone());
        return Err(ConfigError::at_start(
            file,
            "no services: add `services:` to slipway.yml (e.g. `services: { web: { command: ... } }`), or a Procfile with `web: <command>`",
        )
        .into());
    }

    let mut hooks = raw
        .hooks
        .unwrap_or_default()
        .or(aptible.map(RawHooks::from).unwrap_or_default());
    if hooks.before_release.is_none() {
        if let Some(release) = procfile.release {
            hooks.before_release = Some(super::hooks::RawHook {
                body: HookBody::Script(release),
                timeout: None,
            });
        }
    }
    let build = match raw.build {
        Some(build) => BuildConfig {
            hook: build
                .0
                .hook
                .map(|hook| hook.into_hook(DEFAULT_BUILD_TIMEOUT)),
            dockerfile: build.0.dockerfile,
        },
        None => BuildConfig::default(),
    };
    Ok(AppConfig {
        app: AppName::new(
            raw.app
                .map(|a| a.0)
                .unwrap_or_else(|| sanitize_app_name(default_app)),
        ),
        services,
        build,
        image: raw.image.map(|i| i.0),
        hooks: hooks.into_hooks(DEFAULT_HOOK_TIMEOUT),
        environments: raw
            .environments
            .map(|envs| {
                envs.0
                    .into_iter()
                    .map(|(name, env)| (name, convert_environment(env)))
                    .collect()
            })
            .unwrap_or_default(),
        retain: raw.retain.map(|r| r.0).unwrap_or(DEFAULT_RETAIN),
    })
}

/// Parses one YAML file after checking its size.
fn parse_yaml<T: serde::de::DeserializeOwned + Default>(
    source: &SourceText,
) -> Result<T, ConfigError> {
    check_size(source)?;
    if is_empty_document(&source.text) {
        return Ok(T::default());
    }
    // Bounds the work of libyaml's scanner, then of the typed pass below before it
    // copies any value.
    super::expansion::check_flow_depth(&source.file_name, &source.text)?;
    super::expansion::check(&source.file_name, &source.text)?;
    serde_yaml::from_str::<T>(&source.text)
        .map_err(|e| ConfigError::from_yaml(&source.file_name, &e))
}

fn check_size(source: &SourceText) -> Result<(), ConfigError> {
    if source.text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::at_start(
            &source.file_name,
            format!(
                "the file is {} bytes, larger than the 1 MiB a config may be; a config this large is refused",
                source.text.len()
            ),
        ));
    }
    Ok(())
}

/// A file with only comments (or nothing) is an empty config, not an error.
fn is_empty_document(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line == "---")
}

/// A service from `slipway.yml`.
///
/// A service named `web` with neither `http` nor `health` is an http service with the
/// default health check: that is the Heroku/Procfile convention, and it saves writing
/// `http: {}` for the common case. Give `web` a `health:` check to make it non-http.
fn convert_service(name: &str, service: RawService) -> (ServiceName, ServiceConfig) {
    let fields: ServiceFields = service.0;
    let http = match fields.http {
        Some(raw) => Some(HttpConfig {
            health: raw.health.map(|h| h.into_model()).unwrap_or_default(),
            watch: duration_or(raw.watch, Duration::ZERO),
        }),
        None if name == "web" && fields.health.is_none() => Some(default_http()),
        None => None,
    };
    let config = ServiceConfig {
        command: fields.command.0,
        instances: fields.instances.map(|i| i.0).unwrap_or(1),
        size_mb: fields.size.map(|s| s.0).unwrap_or(DEFAULT_SIZE_MB),
        stop_timeout: duration_or(fields.stop_timeout, DEFAULT_STOP_TIMEOUT),
        zero_downtime: fields.zero_downtime.unwrap_or(http.is_some()),
        health: fields.health.map(|h| h.0),
        http,
    };
    (ServiceName::new(name), config)
}

/// A service from a Procfile line: defaults everywhere, `web` takes HTTP.
fn procfile_service(name: &str, command: &str) -> (ServiceName, ServiceConfig) {
    let http = (name == "web").then(default_http);
    let config = ServiceConfig {
        command: command.to_owned(),
        instances: 1,
        size_mb: DEFAULT_SIZE_MB,
        stop_timeout: DEFAULT_STOP_TIMEOUT,
        zero_downtime: http.is_some(),
        http,
        health: None,
    };
    (ServiceName::new(name), config)
}

fn default_http() -> HttpConfig {
    HttpConfig {
        health: HttpHealth::default(),
        watch: Duration::ZERO,
    }
}

fn convert_environment(
    raw: Option<super::raw::CheckedMap<super::raw::EnvironmentRule>>,
) -> super::model::EnvironmentRule {
    let Some(super::raw::CheckedMap(raw)) = raw else {
        return Default::default();
    };
    super::model::EnvironmentRule {
        branches: raw.branches.map(|g| g.0).unwrap_or_default(),
        tags: raw.tags.map(|g| g.0).unwrap_or_default(),
        pull_requests: raw.pull_requests.unwrap_or(false),
        trust_forks: raw.trust_forks.unwrap_or(false),
        domain: raw.domain.map(|d| d.0),
        port: raw.port.map(|p| p.0),
    }
}

/// The app name when `app:` is not set: the folder or repository name made into a DNS
/// label (lowercase; anything but letters, digits and '-' becomes '-').
pub fn sanitize_app_name(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut label = label.trim_matches('-').to_owned();
    label.truncate(63);
    let label = label.trim_end_matches('-').to_owned();
    if label.is_empty() {
        "app".to_owned()
    } else {
        label
    }
}
