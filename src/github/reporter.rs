//! The pipeline's `Reporter` for GitHub: when an operation linked to a GitHub commit
//! changes, it works out what GitHub has not been told yet (commit status, check run,
//! deployment and their statuses) and puts those requests in the outbox, in the same
//! transaction that records how far the reporting got. Operations with no link (a CLI
//! deploy of a folder) post nothing.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::SqlitePool;
use tokio::sync::{Mutex, Notify};

use crate::github::db::{self, Link, NewEntry};
use crate::github::render;
use crate::github::trigger::DEPLOYMENT_MARKER;
use crate::github::GitHubError;
use crate::ids::{EnvKey, OperationId};
use crate::pipeline::log::Masker;
use crate::pipeline::model::{Operation, OperationKind, OperationState, StepRecord, StepStatus};
use crate::pipeline::traits::{Reporter, Store, Traffic};

/// Reporting phases, as stored in `github_operations.reported_phase`.
const QUEUED: i64 = 1;
const RUNNING: i64 = 2;
const FINISHED: i64 = 3;

#[derive(Clone)]
pub struct GitHubReporter {
    pub(crate) pool: SqlitePool,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) traffic: Arc<dyn Traffic>,
    pub(crate) public_url: String,
    /// Wakes the outbox worker.
    pub(crate) outbox: Arc<Notify>,
    /// One report at a time: two changes of one operation must not both post "queued".
    pub(crate) lock: Arc<Mutex<()>>,
}

#[async_trait]
impl Reporter for GitHubReporter {
    async fn operation_changed(&self, operation: OperationId) {
        if let Err(error) = self.report(operation).await {
            tracing::error!(%operation, %error, "could not queue the GitHub report of an operation");
        }
    }
}

impl GitHubReporter {
    pub async fn report(&self, id: OperationId) -> Result<(), GitHubError> {
        let _one_at_a_time = self.lock.lock().await;
        let Some(link) = db::link(&self.pool, id.0).await? else {
            return Ok(());
        };
        let store_error =
            |e: crate::pipeline::traits::EffectError| GitHubError::Database(e.to_string());
        let Some(op) = self.store.operation(id).await.map_err(store_error)? else {
            return Ok(());
        };
        let steps = self.store.steps(id).await.map_err(store_error)?;
        let mut entries = Vec::new();
        let mut phase = link.reported_phase;
        let ended = steps
            .iter()
            .filter(|s| s.status != StepStatus::Running)
            .count() as i64;
        let mut reported_steps = link.reported_steps;
        let page = Page::new(self, &link, &op);

        if phase < QUEUED && op.state.is_final() && op.started_at.is_none() {
            // Final before GitHub heard of it, without having run (a push superseded as
            // it arrived, in a storm): its final commit status says all there is. No
            // deployment was made and no check ran, and a storm of them must not cost
            // GitHub five requests each.
            let summary = op.message.clone().unwrap_or_else(|| op.state.to_string());
            entries.push(page.status(render::status_state(op.state), &summary));
            phase = FINISHED;
            reported_steps = ended;
        }
        if phase < QUEUED {
            entries.push(page.status("pending", &format!("{} queued", op.kind)));
            entries.push(page.create_deployment());
            phase = QUEUED;
        }
        if phase < RUNNING && op.started_at.is_some() {
            entries.push(page.create_check_run(json!({ "status": "in_progress", "started_at": render::timestamp(op.started_at.unwrap_or(op.created_at)) })));
            entries.push(page.status("pending", &format!("{} running", op.kind)));
            entries.push(page.deployment_status("in_progress", &format!("{} running", op.kind)));
            phase = RUNNING;
        }
        if phase == RUNNING && !op.state.is_final() && ended > reported_steps {
            let output = json!({ "title": format!("{} running", op.kind), "summary": render::steps_table(&steps) });
            entries
                .push(page.update_check_run(json!({ "status": "in_progress", "output": output })));
            reported_steps = ended;
        }
        if op.state.is_final() && phase < FINISHED {
            let summary = op.message.clone().unwrap_or_else(|| op.state.to_string());
            entries.push(page.status(render::status_state(op.state), &summary));
            let (completed, more_annotations) =
                self.completed_check_run(&op, &steps, &summary).await?;
            entries.push(if phase >= RUNNING {
                page.update_check_run(completed)
            } else {
                page.create_check_run(completed)
            });
            // GitHub takes 50 annotations per request and appends those of each update.
            entries.extend(
                more_annotations
                    .into_iter()
                    .map(|b| page.update_check_run(b)),
            );
            entries.push(page.deployment_status(render::deployment_state(op.state), &summary));
            if op.state == OperationState::Succeeded {
                entries.extend(self.replaced_deployment(&op).await?);
            }
            phase = FINISHED;
            reported_steps = ended;
        }
        if entries.is_empty() {
            return Ok(());
        }
        db::enqueue(
            &self.pool,
            Some((link.operation_id, phase, reported_steps)),
            &entries,
            now_millis(),
        )
        .await?;
        self.outbox.notify_one();
        Ok(())
    }

    /// The body that completes an operation's check run, and the updates that carry its
    /// annotations past the first 50.
    async fn completed_check_run(
        &self,
        op: &Operation,
        steps: &[StepRecord],
        summary: &str,
    ) -> Result<(Value, Vec<Value>), GitHubError> {
        let lines = self
            .store
            .log_lines(op.id, 0, 200_000)
            .await
            .map_err(|e| GitHubError::Database(e.to_string()))?;
        // The log was masked as it was written; mask again with today's values, in case
        // a variable was set while the operation ran.
        let variables = self.store.variables(&op.env).await.unwrap_or_default();
        let masker = Masker::new(variables.into_iter().map(|v| v.value));
        let tail: Vec<_> = lines
            .iter()
            .rev()
            .take(400)
            .rev()
            .map(|l| crate::pipeline::model::LogLine {
                text: masker.mask(&l.text),
                ..l.clone()
            })
            .collect();
        let output = json!({
            "title": render::truncate_chars(&format!("{} {}", op.kind, op.state), 255),
            "summary": render::truncate_chars(&format!("{}\n\n{}", summary, render::steps_table(steps)), render::MAX_OUTPUT_CHARS),
            "text": render::log_tail(&tail),
        });
        let (output, more_annotations) =
            render::with_annotation_batches(output, render::annotations_from_log(&lines));
        let mut body = json!({
            "status": "completed",
            "conclusion": render::conclusion(op.state),
            "completed_at": render::timestamp(op.finished_at.unwrap_or(op.created_at)),
            "output": output,
        });
        if matches!(
            op.kind,
            OperationKind::Deploy | OperationKind::Redeploy | OperationKind::Rollback
        ) {
            body["actions"] = json!([render::rollback_action()]);
        }
        Ok((body, more_annotations))
    }

    /// `inactive` for the deployment of the release this operation replaced.
    async fn replaced_deployment(&self, op: &Operation) -> Result<Vec<NewEntry>, GitHubError> {
        let Some(before) = op.release_before else {
            return Ok(Vec::new());
        };
        let release = self
            .store
            .release(&op.env, before)
            .await
            .map_err(|e| GitHubError::Database(e.to_string()))?;
        let Some(release) = release else {
            return Ok(Vec::new());
        };
        let Some(old) = db::link(&self.pool, release.operation.0).await? else {
            return Ok(Vec::new());
        };
        let Some(old_op) = self
            .store
            .operation(release.operation)
            .await
            .map_err(|e| GitHubError::Database(e.to_string()))?
        else {
            return Ok(Vec::new());
        };
        let page = Page::new(self, &old, &old_op);
        Ok(vec![page.deployment_status(
            "inactive",
            &format!(
                "replaced by {} of operation {}",
                op.release_after.map_or_else(String::new, |r| r.to_string()),
                op.id
            ),
        )])
    }
}

/// The requests about one linked operation.
struct Page<'a> {
    link: &'a Link,
    op: &'a Operation,
    context: String,
    log_url: String,
    environment_url: String,
}

impl<'a> Page<'a> {
    fn new(reporter: &GitHubReporter, link: &'a Link, op: &'a Operation) -> Self {
        let env = EnvKey::new(link.app.clone(), link.env.clone());
        Page {
            link,
            op,
            context: format!("slipway/{}", link.env),
            log_url: format!(
                "{}/api/v1/operations/{}/log",
                reporter.public_url.trim_end_matches('/'),
                op.id
            ),
            environment_url: reporter.traffic.url(&env),
        }
    }

    fn entry(
        &self,
        method: &'static str,
        path: String,
        body: Value,
        store_as: Option<&'static str>,
    ) -> NewEntry {
        NewEntry {
            operation_id: Some(self.link.operation_id),
            installation_id: self.link.installation_id,
            method,
            path,
            body,
            store_as,
            validation_id: None,
        }
    }

    fn repo(&self) -> String {
        format!("/repos/{}", self.link.repository)
    }

    fn status(&self, state: &str, description: &str) -> NewEntry {
        let body = render::commit_status(state, description, &self.log_url, &self.context);
        self.entry(
            "POST",
            format!("{}/statuses/{}", self.repo(), self.link.head_sha),
            body,
            None,
        )
    }

    fn create_check_run(&self, fields: Value) -> NewEntry {
        let mut body = json!({
            "name": self.context,
            "head_sha": self.link.head_sha,
            "details_url": self.log_url,
            "external_id": self.op.id.to_string(),
        });
        merge(&mut body, fields);
        self.entry(
            "POST",
            format!("{}/check-runs", self.repo()),
            body,
            Some("check_run_id"),
        )
    }

    fn update_check_run(&self, body: Value) -> NewEntry {
        self.entry(
            "PATCH",
            format!("{}/check-runs/:check_run_id", self.repo()),
            body,
            None,
        )
    }

    fn create_deployment(&self) -> NewEntry {
        let body = json!({
            "ref": self.link.head_sha,
            "task": "deploy",
            "environment": self.link.env,
            "description": render::truncate_chars(&format!("{} by Slipway (operation {})", self.op.kind, self.op.id), 140),
            // Slipway deploys what it was told to: no merge of the default branch, and no
            // wait for status checks (its own `slipway/<env>` status is still pending).
            "auto_merge": false,
            "required_contexts": [],
            "payload": { DEPLOYMENT_MARKER: self.op.id.0 },
            "transient_environment": self.link.env.starts_with("pr-"),
            "production_environment": self.link.env == "production",
        });
        self.entry(
            "POST",
            format!("{}/deployments", self.repo()),
            body,
            Some("deployment_id"),
        )
    }

    fn deployment_status(&self, state: &str, description: &str) -> NewEntry {
        let body =
            render::deployment_status(state, description, &self.log_url, &self.environment_url);
        self.entry(
            "POST",
            format!("{}/deployments/:deployment_id/statuses", self.repo()),
            body,
            None,
        )
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

pub fn now_millis() -> i64 {
    crate::pipeline::traits::Clock::now_millis(&crate::pipeline::traits::SystemClock)
}
