//! The values the pipeline works with: operations, their states and steps, releases,
//! artifacts and instances. Plain data; no IO.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{EnvKey, OperationId, ReleaseNumber, ServiceName};

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Deploy,
    Redeploy,
    Restart,
    Configure,
    Scale,
    Rollback,
    /// Stops every instance and takes the environment off the router (a closed pull
    /// request's preview). Its history stays.
    Teardown,
}

/// Where an operation stands. `Queued` and `Running` are the only states that change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    Queued,
    Running,
    Succeeded,
    Failed,
    RolledBack,
    RollbackFailed,
    Cancelled,
    Superseded,
}

impl OperationState {
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
    pub fn is_success(self) -> bool {
        self == Self::Succeeded
    }
}

/// One step of an operation, in pipeline order. Each is recorded as it starts and ends,
/// so a restarted server knows how far an operation got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Resolve,
    Build,
    BeforeRelease,
    StopOld,
    StartInstances,
    DeployHook,
    Switch,
    Drain,
    PostDeploy,
    Watch,
    Confirm,
    AfterHooks,
    Rollback,
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Succeeded,
    /// Failed, but the operation goes on (a `deploy` or `post_deploy` hook failure).
    Warning,
    Failed,
    Skipped,
}

macro_rules! snake_case_text {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let value = serde_json::to_value(self).map_err(|_| fmt::Error)?;
                f.write_str(value.as_str().ok_or(fmt::Error)?)
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                serde_json::from_value(serde_json::Value::String(text.to_owned()))
                    .map_err(|_| format!("unknown {} `{text}`", stringify!($ty)))
            }
        }
    )*};
}
snake_case_text!(OperationKind, OperationState, Step, StepStatus);

/// The build output of one source: a directory snapshot (local runtime) or an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Artifact {
    Directory { path: String },
    Image { reference: String, digest: String },
}

/// What an operation deploys from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceSpec {
    /// A folder uploaded by the CLI, unpacked at `path` on the server.
    Upload {
        path: String,
        commit: Option<String>,
        content_hash: String,
    },
    /// A git repository and a ref (branch, tag or sha).
    Git { url: String, reference: String },
    /// An image reference: `registry/name:tag` or `name@sha256:...`.
    Image { reference: String },
}

/// Services and their scale, pinned by a release.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Scale {
    pub services: BTreeMap<ServiceName, ServiceScale>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceScale {
    pub instances: u32,
    pub size_mb: u32,
    /// Set by a `scale` operation: later deploys keep it instead of the config's value.
    #[serde(default)]
    pub pinned: bool,
}

/// A release: an artifact + configuration + scale, numbered per environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub env: EnvKey,
    pub number: ReleaseNumber,
    pub commit: Option<String>,
    pub artifact: Artifact,
    /// sha256 of the configuration variables, so a release pins its configuration.
    pub config_hash: String,
    /// The runtime variables of this release (secrets: never logged).
    pub variables: BTreeMap<String, String>,
    pub scale: Scale,
    pub operation: OperationId,
    pub created_at: i64,
}

/// Who or what started an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initiator(pub String);

/// A row of the operations table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: OperationId,
    pub env: EnvKey,
    pub kind: OperationKind,
    pub state: OperationState,
    /// The last step recorded (started or ended).
    pub step: Option<Step>,
    pub source: Option<SourceSpec>,
    pub commit: Option<String>,
    /// Extra arguments: `{"to": 3}` for a rollback, `{"services": ...}` for a scale.
    pub args: serde_json::Value,
    pub release_before: Option<ReleaseNumber>,
    pub release_after: Option<ReleaseNumber>,
    pub initiator: String,
    pub message: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// What is needed to create an operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewOperation {
    pub env: EnvKey,
    pub kind: OperationKind,
    pub source: Option<SourceSpec>,
    pub commit: Option<String>,
    pub args: serde_json::Value,
    pub initiator: String,
}

/// One recorded step of an operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: Step,
    pub status: StepStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub message: Option<String>,
}

/// One line of an operation's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub text: String,
}

/// A running instance as the database knows it, so it can be re-adopted or stopped
/// after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// `<app>-<env>-<service>-v<release>-<index>`: unique while it runs.
    pub id: String,
    pub env: EnvKey,
    pub service: ServiceName,
    pub release: ReleaseNumber,
    pub index: u32,
    /// Process id (= process group id) for the local runtime; container id for docker.
    pub handle: String,
    /// Where the router reaches it, for http services.
    pub address: Option<String>,
    pub started_at: i64,
}

/// A configuration variable of an environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    pub key: String,
    pub value: String,
    /// A build variable: given to the build hook, and part of the artifact's key.
    pub build: bool,
}
