//! Row mapping: the shape of each table's rows as SQLite returns them, and their
//! conversion to and from the pipeline's model types (enums as snake_case text,
//! structured values as JSON text).

use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{Fault, FaultResult};
use crate::ids::{EnvKey, OperationId, ReleaseNumber, ServiceName};
use crate::pipeline::model::{InstanceRecord, Operation, Release, StepRecord};

/// The columns of `operations`, in the order the row structs expect them.
pub(crate) const OPERATION_COLUMNS: &str =
    "id, app, env, kind, state, step, source, commit_sha, args, \
     release_before, release_after, initiator, message, created_at, started_at, finished_at";

pub(crate) const RELEASE_COLUMNS: &str =
    "app, env, number, commit_sha, artifact, config_hash, variables, scale, operation_id, created_at";

pub(crate) const INSTANCE_COLUMNS: &str =
    "id, app, env, service, release_number, instance_index, handle, address, started_at";

#[derive(sqlx::FromRow)]
pub(crate) struct OperationRow {
    id: i64,
    app: String,
    env: String,
    kind: String,
    state: String,
    step: Option<String>,
    source: Option<String>,
    commit_sha: Option<String>,
    args: String,
    release_before: Option<i64>,
    release_after: Option<i64>,
    initiator: String,
    message: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

impl OperationRow {
    pub(crate) fn into_model(self) -> FaultResult<Operation> {
        let what = format!("operation {}", self.id);
        Ok(Operation {
            id: OperationId(self.id),
            env: EnvKey::new(self.app, self.env),
            kind: parse_text(&self.kind, &what)?,
            state: parse_text(&self.state, &what)?,
            step: self
                .step
                .as_deref()
                .map(|step| parse_text(step, &what))
                .transpose()?,
            source: self
                .source
                .as_deref()
                .map(|json| from_json(json, &what, "source"))
                .transpose()?,
            commit: self.commit_sha,
            args: from_json(&self.args, &what, "args")?,
            release_before: self.release_before.map(ReleaseNumber),
            release_after: self.release_after.map(ReleaseNumber),
            initiator: self.initiator,
            message: self.message,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StepRow {
    step: String,
    status: String,
    started_at: i64,
    finished_at: Option<i64>,
    message: Option<String>,
}

impl StepRow {
    pub(crate) fn into_model(self, operation: OperationId) -> FaultResult<StepRecord> {
        let what = format!("a step of operation {operation}");
        Ok(StepRecord {
            step: parse_text(&self.step, &what)?,
            status: parse_text(&self.status, &what)?,
            started_at: self.started_at,
            finished_at: self.finished_at,
            message: self.message,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReleaseRow {
    app: String,
    env: String,
    number: i64,
    commit_sha: Option<String>,
    artifact: String,
    config_hash: String,
    variables: String,
    scale: String,
    operation_id: i64,
    created_at: i64,
}

impl ReleaseRow {
    pub(crate) fn into_model(self) -> FaultResult<Release> {
        let env = EnvKey::new(self.app, self.env);
        let what = format!("release {} of {env}", ReleaseNumber(self.number));
        // Not `from_json`: serde's message may quote the offending value, a secret here.
        let variables = serde_json::from_str(&self.variables).map_err(|_| {
            Fault::Data(format!(
                "the variables of {what} are not a JSON object of strings"
            ))
        })?;
        Ok(Release {
            number: ReleaseNumber(self.number),
            commit: self.commit_sha,
            artifact: from_json(&self.artifact, &what, "artifact")?,
            config_hash: self.config_hash,
            variables,
            scale: from_json(&self.scale, &what, "scale")?,
            operation: OperationId(self.operation_id),
            created_at: self.created_at,
            env,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InstanceRow {
    id: String,
    app: String,
    env: String,
    service: String,
    release_number: i64,
    instance_index: i64,
    handle: String,
    address: Option<String>,
    started_at: i64,
}

impl InstanceRow {
    pub(crate) fn into_model(self) -> FaultResult<InstanceRecord> {
        let index = u32::try_from(self.instance_index)
            .map_err(|_| Fault::Data(format!("instance {} has an index out of range", self.id)))?;
        Ok(InstanceRecord {
            env: EnvKey::new(self.app, self.env),
            service: ServiceName(self.service),
            release: ReleaseNumber(self.release_number),
            index,
            handle: self.handle,
            address: self.address,
            started_at: self.started_at,
            id: self.id,
        })
    }
}

/// Reads an enum stored as its snake_case name.
fn parse_text<T: FromStr<Err = String>>(text: &str, what: &str) -> FaultResult<T> {
    text.parse()
        .map_err(|why| Fault::Data(format!("{what} has {why}")))
}

fn from_json<T: DeserializeOwned>(json: &str, what: &str, column: &str) -> FaultResult<T> {
    serde_json::from_str(json)
        .map_err(|why| Fault::Data(format!("the {column} of {what} cannot be read: {why}")))
}

/// Writes a structured value as JSON text. Errors name the column, never the value.
pub(crate) fn to_json<T: Serialize>(value: &T, column: &str) -> FaultResult<String> {
    serde_json::to_string(value)
        .map_err(|_| Fault::Data(format!("the {column} cannot be written as JSON")))
}
