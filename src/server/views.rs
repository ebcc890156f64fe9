//! The JSON shapes the API answers with. They are the API's own types (the pipeline's
//! model can change without changing the API), and they derive their OpenAPI schemas,
//! so the document served at `/api/v1/openapi.json` is always the shapes sent.
//!
//! **Invariant:** no view holds a variable's value except `VariableView::value`, which
//! is filled only for `?reveal=true` with an admin token.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::EnvKey;
use crate::pipeline::model::{LogLine, Operation, Release, StepRecord};

/// An app and environment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EnvView {
    pub app: String,
    pub env: String,
}

impl From<&EnvKey> for EnvView {
    fn from(env: &EnvKey) -> Self {
        EnvView {
            app: env.app.to_string(),
            env: env.env.to_string(),
        }
    }
}

/// One operation: `deploy`, `redeploy`, `restart`, `configure`, `scale` or `rollback`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OperationView {
    pub id: i64,
    pub env: EnvView,
    /// `deploy`, `redeploy`, `restart`, `configure`, `scale`, `rollback`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed`, `rolled_back`, `rollback_failed`,
    /// `cancelled`, `superseded`.
    pub state: String,
    /// The last step recorded.
    pub step: Option<String>,
    /// What a deploy deploys: `{"type": "git"|"image"|"upload", ...}`.
    #[schema(value_type = Option<Object>)]
    pub source: Option<serde_json::Value>,
    pub commit: Option<String>,
    /// Extra arguments: `{"to": 3}` for a rollback, `{"services": ...}` for a scale.
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    pub release_before: Option<i64>,
    pub release_after: Option<i64>,
    /// Who or what started it: `admin token`, `token ci via cli`, a webhook delivery.
    pub initiator: String,
    pub message: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl From<Operation> for OperationView {
    fn from(op: Operation) -> Self {
        OperationView {
            id: op.id.0,
            env: EnvView::from(&op.env),
            kind: op.kind.to_string(),
            state: op.state.to_string(),
            step: op.step.map(|s| s.to_string()),
            source: op.source.and_then(|s| serde_json::to_value(s).ok()),
            commit: op.commit,
            args: op.args,
            release_before: op.release_before.map(|n| n.0),
            release_after: op.release_after.map(|n| n.0),
            initiator: op.initiator,
            message: op.message,
            created_at: op.created_at,
            started_at: op.started_at,
            finished_at: op.finished_at,
        }
    }
}

/// One recorded step of an operation.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StepView {
    pub step: String,
    /// `running`, `succeeded`, `warning`, `failed`, `skipped`.
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub message: Option<String>,
}

impl From<StepRecord> for StepView {
    fn from(step: StepRecord) -> Self {
        StepView {
            step: step.step.to_string(),
            status: step.status.to_string(),
            started_at: step.started_at,
            finished_at: step.finished_at,
            message: step.message,
        }
    }
}

/// An operation with its steps.
#[derive(Serialize, ToSchema)]
pub struct OperationDetail {
    #[serde(flatten)]
    pub operation: OperationView,
    pub steps: Vec<StepView>,
}

/// One line of an operation's log (secrets already masked).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LogLineView {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub text: String,
}

impl From<LogLine> for LogLineView {
    fn from(line: LogLine) -> Self {
        LogLineView {
            seq: line.seq,
            at: line.at,
            text: line.text,
        }
    }
}

/// A page of an operation's log.
#[derive(Serialize, ToSchema)]
pub struct LogPage {
    pub lines: Vec<LogLineView>,
    pub state: String,
    pub finished: bool,
}

/// A release: artifact + configuration + scale. The configuration shows only its hash.
#[derive(Serialize, ToSchema)]
pub struct ReleaseView {
    pub number: i64,
    /// `v3`.
    pub name: String,
    pub commit: Option<String>,
    #[schema(value_type = Object)]
    pub artifact: serde_json::Value,
    pub config_hash: String,
    #[schema(value_type = Object)]
    pub scale: serde_json::Value,
    pub operation: i64,
    pub created_at: i64,
    pub current: bool,
}

impl ReleaseView {
    pub fn new(release: Release, current: bool) -> Self {
        ReleaseView {
            number: release.number.0,
            name: release.number.to_string(),
            commit: release.commit,
            artifact: serde_json::to_value(&release.artifact).unwrap_or_default(),
            config_hash: release.config_hash,
            scale: serde_json::to_value(&release.scale).unwrap_or_default(),
            operation: release.operation.0,
            created_at: release.created_at,
            current,
        }
    }
}

/// The releases of an environment and where it answers.
#[derive(Serialize, ToSchema)]
pub struct ReleaseList {
    pub url: String,
    pub releases: Vec<ReleaseView>,
}

/// An environment as listed by `GET /api/v1/environments`.
#[derive(Serialize, ToSchema)]
pub struct EnvironmentView {
    pub app: String,
    pub env: String,
    /// The router's URL of the environment.
    pub url: String,
    /// `v3`, or null before the first deploy.
    pub current_release: Option<String>,
}

/// An app and its environments.
#[derive(Serialize, ToSchema)]
pub struct AppView {
    pub name: String,
    pub environments: Vec<String>,
}

/// A configuration variable. `value` is present only with `?reveal=true` and an admin token.
#[derive(Serialize, ToSchema)]
pub struct VariableView {
    pub key: String,
    pub build: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct VariableList {
    pub variables: Vec<VariableView>,
}

/// What a change of variables did: counts, and the `configure` operation it started.
#[derive(Serialize, ToSchema)]
pub struct VariablesChanged {
    pub set: usize,
    pub unset: usize,
    pub operation: Option<OperationView>,
}

/// The answer to a cancel.
#[derive(Serialize, ToSchema)]
pub struct Cancelled {
    pub cancelled: i64,
}
