//! The typed, validated model of an app's configuration. Everything downstream of
//! `config::load` works with these values and never sees YAML.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ids::{AppName, ServiceName};

pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_DEPLOY_HOLD: Duration = Duration::from_secs(30);
pub const DEFAULT_RETAIN: usize = 5;

/// A whole app configuration, from `slipway.yml`, `.slipway.yml`, a `Procfile` and/or `.aptible.yml`.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfig {
    pub app: AppName,
    /// Ordered by name so that plans and logs are deterministic.
    pub services: BTreeMap<ServiceName, ServiceConfig>,
    pub build: BuildConfig,
    /// `image:`: an image-based deploy resolves a tag of this image.
    pub image: Option<String>,
    pub hooks: Hooks,
    pub environments: BTreeMap<String, EnvironmentRule>,
    /// How many releases' artifacts to keep.
    pub retain: usize,
}

impl AppConfig {
    pub fn web_services(&self) -> impl Iterator<Item = (&ServiceName, &ServiceConfig)> {
        self.services.iter().filter(|(_, s)| s.http.is_some())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    pub command: String,
    pub instances: u32,
    /// Memory in MB, exported as `SLIPWAY_CONTAINER_SIZE`.
    pub size_mb: u32,
    pub stop_timeout: Duration,
    /// `false`: stop old instances before starting new ones.
    pub zero_downtime: bool,
    /// Present for services that take HTTP traffic (`web` from a Procfile gets one).
    pub http: Option<HttpConfig>,
    /// The health check of a non-http service.
    pub health: Option<HealthCheck>,
}

pub const DEFAULT_SIZE_MB: u32 = 512;

#[derive(Clone, Debug, PartialEq)]
pub struct HttpConfig {
    pub health: HttpHealth,
    /// After the switch, keep checking the new release this long; a failure rolls back.
    pub watch: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpHealth {
    pub path: String,
    /// Only a 200 is healthy; otherwise any HTTP response is.
    pub strict: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub deadline: Duration,
}

impl Default for HttpHealth {
    fn default() -> Self {
        Self {
            path: "/".to_owned(),
            strict: false,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(60),
        }
    }
}

/// How a new instance proves it is ready.
#[derive(Clone, Debug, PartialEq)]
pub enum HealthCheck {
    Http(HttpHealth),
    /// A TCP connect to this port on the instance succeeds.
    Tcp {
        port: u16,
        interval: Duration,
        timeout: Duration,
        deadline: Duration,
    },
    /// A command that exits 0.
    Command {
        command: String,
        interval: Duration,
        timeout: Duration,
        deadline: Duration,
    },
    /// The instance is still running after this long.
    Uptime(Duration),
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct BuildConfig {
    pub hook: Option<Hook>,
    /// Docker runtime: the Dockerfile to build, relative to the app dir.
    pub dockerfile: Option<String>,
}

/// A hook: a script for `sh`, or a list of commands run in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    pub body: HookBody,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HookBody {
    /// One script run by `sh -c`: fails only when its last command fails, unless it `set -e`s.
    Script(String),
    /// Commands run in order; the first that fails fails the hook.
    Commands(Vec<String>),
}

/// The operations that have `after_<op>_success|failure` hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookedOperation {
    Deploy,
    Restart,
    Configure,
    Scale,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Hooks {
    pub before_release: Option<Hook>,
    pub pre_start: Option<Hook>,
    pub deploy: Option<Hook>,
    pub post_deploy: Option<Hook>,
    /// How long requests are held while the `deploy` hook runs.
    pub deploy_hold: Duration,
    pub after_success: BTreeMap<HookedOperation, Hook>,
    pub after_failure: BTreeMap<HookedOperation, Hook>,
}

/// Which events deploy to an environment.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct EnvironmentRule {
    /// Branch name globs (`main`, `release/*`).
    pub branches: Vec<String>,
    /// Tag globs (`v*`).
    pub tags: Vec<String>,
    /// One environment per pull request: `pr-<number>`.
    pub pull_requests: bool,
    /// Fork pull requests may run builds and hooks with the app's variables.
    pub trust_forks: bool,
    /// A domain the router answers for, besides `<app>-<env>.localhost`.
    pub domain: Option<String>,
    /// A fixed router port for this environment, besides the shared router address.
    pub port: Option<u16>,
}
