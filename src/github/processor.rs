//! The delivery worker: takes accepted deliveries from the database, oldest first,
//! turns each into operations (reading `slipway.yml` at the commit to know where it
//! deploys), links those to their GitHub commit, and marks the delivery done. A server
//! killed before a delivery was done works on it again at the next start; the links
//! of a delivery make that start nothing twice.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::github::checkout::Checked;
use crate::github::db::{self, Delivery, Link, NewEntry};
use crate::github::reporter::now_millis;
use crate::github::trigger::{self, Repository, Trigger};
use crate::github::{glob, intent, render, GitHubError, Shared};
use crate::ids::{EnvKey, OperationId};
use crate::pipeline::model::{NewOperation, OperationKind, SourceSpec};
use crate::pipeline::Pipeline;

pub struct DeliveryWorker {
    pub shared: Arc<Shared>,
    pub pipeline: Pipeline,
    pub wake: Arc<Notify>,
}

impl DeliveryWorker {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let notified = self.wake.notified();
            match db::pending_deliveries(&self.shared.pool, 20).await {
                Ok(deliveries) if !deliveries.is_empty() => {
                    for delivery in deliveries {
                        if shutdown.is_cancelled() {
                            return;
                        }
                        self.process(&delivery).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "cannot read the GitHub deliveries; retrying")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = notified => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            }
        }
    }

    async fn process(&self, delivery: &Delivery) {
        let outcome = match self.handle(delivery).await {
            Ok(outcome) => outcome,
            Err(error) => format!("failed: {error}"),
        };
        tracing::info!(delivery = %delivery.id, event = %delivery.event, "GitHub delivery: {outcome}");
        if let Err(error) =
            db::finish_delivery(&self.shared.pool, &delivery.id, &outcome, now_millis()).await
        {
            tracing::error!(delivery = %delivery.id, %error, "could not mark a delivery done; it will be looked at again");
        }
    }

    async fn handle(&self, delivery: &Delivery) -> Result<String, GitHubError> {
        let payload: Value = serde_json::from_str(&delivery.payload)
            .map_err(|e| GitHubError::Payload(e.to_string()))?;
        let trigger = trigger::read(&delivery.event, &payload).map_err(GitHubError::Payload)?;
        if let Some(repo) = repository(&trigger) {
            if !glob::any_matches_repository(&self.shared.options.repos, &repo.full_name) {
                return Ok(format!(
                    "ignored: {} is not in --github-repos",
                    repo.full_name
                ));
            }
        }
        match trigger {
            Trigger::Ping => Ok("ping".into()),
            Trigger::Ignored(why) => Ok(format!("ignored: {why}")),
            Trigger::Deleted { reference, .. } => {
                Ok(format!("{reference} was deleted: nothing to deploy"))
            }
            Trigger::PullRequestClosed { repo, number } => {
                self.tear_down_preview(delivery, &repo, number).await
            }
            Trigger::BranchPush {
                ref repo, ref sha, ..
            }
            | Trigger::Deployment {
                ref repo, ref sha, ..
            } => {
                let checked = self.checkout(repo, sha).await?;
                self.deploy(delivery, &trigger, repo, checked).await
            }
            Trigger::Tag {
                ref repo,
                ref tag,
                ref sha,
            } => {
                let checked = self.checkout(repo, sha.as_deref().unwrap_or(tag)).await?;
                self.deploy(delivery, &trigger, repo, checked).await
            }
            Trigger::PullRequest {
                ref repo,
                ref head_sha,
                from_fork,
                ..
            } => {
                let checked = self.checkout(repo, head_sha).await?;
                self.validate(repo, &checked, from_fork).await?;
                self.deploy(delivery, &trigger, repo, checked).await
            }
            Trigger::Rerun {
                repo,
                check_run_id,
                name,
                head_sha,
            } => {
                if name == "slipway/validate" {
                    let checked = self.checkout(&repo, &head_sha).await?;
                    self.validate(&repo, &checked, false).await?;
                    return Ok(format!("validated {head_sha} again"));
                }
                self.again(delivery, &repo, check_run_id, &head_sha, None)
                    .await
            }
            Trigger::Rollback {
                repo,
                check_run_id,
                head_sha,
                ..
            } => {
                self.again(
                    delivery,
                    &repo,
                    check_run_id,
                    &head_sha,
                    Some(OperationKind::Rollback),
                )
                .await
            }
        }
    }

    /// A closed pull request: its preview environments (`pr-<number>` of every app the
    /// repository deployed there) are torn down. A delivery worked on twice tears down
    /// twice, which is harmless.
    async fn tear_down_preview(
        &self,
        delivery: &Delivery,
        repo: &Repository,
        number: u64,
    ) -> Result<String, GitHubError> {
        let env = crate::github::intent::preview_environment(number);
        let apps = db::apps_deployed_to(&self.shared.pool, &repo.full_name, &env).await?;
        if apps.is_empty() {
            return Ok(format!(
                "pull request {number} closed: it had no preview environment"
            ));
        }
        let mut started = Vec::new();
        for app in apps {
            let new = NewOperation {
                env: EnvKey::new(app.as_str(), env.as_str()),
                kind: OperationKind::Teardown,
                source: None,
                commit: None,
                args: Value::Null,
                initiator: format!("github delivery {}", delivery.id),
            };
            let op = self
                .pipeline
                .submit(new)
                .await
                .map_err(|e| GitHubError::Database(e.to_string()))?;
            started.push(format!("{} of {app}/{env}", op.id));
        }
        Ok(format!(
            "pull request {number} closed: tearing down {}",
            started.join(", ")
        ))
    }

    async fn checkout(&self, repo: &Repository, reference: &str) -> Result<Checked, GitHubError> {
        let token = self.shared.git_token(repo.installation).await?;
        let url = self.shared.repository_url(&repo.full_name);
        self.shared
            .checkout
            .read(
                &url,
                reference,
                token.as_deref(),
                &crate::config::sanitize_app_name(repo.name()),
            )
            .await
    }

    /// Deploys a commit to the environments its configuration names for this trigger.
    async fn deploy(
        &self,
        delivery: &Delivery,
        trigger: &Trigger,
        repo: &Repository,
        checked: Checked,
    ) -> Result<String, GitHubError> {
        let config = match checked.config {
            Ok(config) => config,
            Err(errors) => {
                self.post_validation(repo, &checked.sha, Err(&errors), false)
                    .await?;
                return Ok(format!(
                    "the configuration at {} is not valid: {} error(s)",
                    checked.sha,
                    errors.0.len()
                ));
            }
        };
        let targets = intent::targets(trigger, &config);
        if targets.deploy.is_empty() {
            let withheld = if targets.withheld_from_fork.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} withheld from a fork)",
                    targets.withheld_from_fork.join(", ")
                )
            };
            return Ok(format!(
                "no environment of {} deploys this{withheld}",
                config.app
            ));
        }
        let done = db::links_of_delivery(&self.shared.pool, &delivery.id).await?;
        let url = self.shared.repository_url(&repo.full_name);
        let mut started = Vec::new();
        for env in targets.deploy {
            if done
                .iter()
                .any(|l| l.app == config.app.as_str() && l.env == env)
            {
                continue;
            }
            let new = NewOperation {
                env: EnvKey::new(config.app.as_str(), env.as_str()),
                kind: OperationKind::Deploy,
                source: Some(SourceSpec::Git {
                    url: url.clone(),
                    reference: checked.sha.clone(),
                }),
                commit: Some(checked.sha.clone()),
                args: Value::Null,
                initiator: format!("github delivery {}", delivery.id),
            };
            let op = self.submit(new, delivery, repo, &checked.sha).await?;
            started.push(format!("{} of {}/{env}", op, config.app));
        }
        Ok(format!("started operation {}", started.join(", ")))
    }

    /// Runs the operation a check run reported again (`kind: None`), or rolls its
    /// environment back.
    async fn again(
        &self,
        delivery: &Delivery,
        repo: &Repository,
        check_run_id: i64,
        head_sha: &str,
        kind: Option<OperationKind>,
    ) -> Result<String, GitHubError> {
        let Some(link) =
            db::link_by_check_run(&self.shared.pool, &repo.full_name, check_run_id).await?
        else {
            return Ok(format!(
                "ignored: check run {check_run_id} is not one Slipway knows"
            ));
        };
        let old = self
            .pipeline
            .fx
            .store
            .operation(OperationId(link.operation_id))
            .await
            .map_err(|e| GitHubError::Database(e.to_string()))?;
        let Some(old) = old else {
            return Ok(format!("ignored: operation {} is gone", link.operation_id));
        };
        if !db::links_of_delivery(&self.shared.pool, &delivery.id)
            .await?
            .is_empty()
        {
            return Ok("already started".into());
        }
        let new = match kind {
            Some(kind) => NewOperation {
                env: old.env.clone(),
                kind,
                source: None,
                commit: None,
                args: Value::Null,
                initiator: format!("github delivery {}", delivery.id),
            },
            None => NewOperation {
                initiator: format!("github delivery {}", delivery.id),
                ..NewOperation {
                    env: old.env.clone(),
                    kind: old.kind,
                    source: old.source.clone(),
                    commit: old.commit.clone(),
                    args: old.args.clone(),
                    initiator: String::new(),
                }
            },
        };
        let op = self.submit(new, delivery, repo, head_sha).await?;
        Ok(format!(
            "started operation {op} ({}) of {}",
            op_kind(kind, old.kind),
            old.env
        ))
    }

    async fn submit(
        &self,
        new: NewOperation,
        delivery: &Delivery,
        repo: &Repository,
        sha: &str,
    ) -> Result<OperationId, GitHubError> {
        let env = new.env.clone();
        let op = self
            .pipeline
            .submit(new)
            .await
            .map_err(|e| GitHubError::Database(e.to_string()))?;
        let link = Link {
            operation_id: op.id.0,
            app: env.app.to_string(),
            env: env.env.to_string(),
            repository: repo.full_name.clone(),
            head_sha: sha.to_owned(),
            installation_id: repo.installation,
            delivery_id: Some(delivery.id.clone()),
            check_run_id: None,
            deployment_id: None,
            reported_phase: 0,
            reported_steps: 0,
        };
        db::insert_link(&self.shared.pool, &link).await?;
        // The pipeline told the reporter before the link existed: tell it again.
        self.shared.reporter.report(op.id).await?;
        Ok(op.id)
    }

    /// The `slipway/validate` check run of a pull request's head commit.
    async fn validate(
        &self,
        repo: &Repository,
        checked: &Checked,
        from_fork: bool,
    ) -> Result<(), GitHubError> {
        match &checked.config {
            Ok(_) => {
                self.post_validation(repo, &checked.sha, Ok(()), from_fork)
                    .await
            }
            Err(errors) => {
                self.post_validation(repo, &checked.sha, Err(errors), from_fork)
                    .await
            }
        }
    }

    async fn post_validation(
        &self,
        repo: &Repository,
        sha: &str,
        result: Result<(), &crate::config::ConfigErrors>,
        from_fork: bool,
    ) -> Result<(), GitHubError> {
        let fork_note = if from_fork {
            "\n\nThis pull request comes from a fork: it gets the configuration check only; no build or hook runs with the app's variables."
        } else {
            ""
        };
        let (conclusion, title, summary, annotations) = match result {
            Ok(()) => (
                "success",
                "slipway.yml is valid".to_owned(),
                format!("The configuration is valid.{fork_note}"),
                Vec::new(),
            ),
            Err(errors) => {
                let annotations: Vec<Value> = errors
                    .0
                    .iter()
                    .take(render::MAX_ANNOTATIONS)
                    .map(|e| render::annotation(&e.file, e.line, e.column, &e.message))
                    .collect();
                let listed: Vec<String> = errors
                    .0
                    .iter()
                    .map(|e| format!("- `{}:{}:{}`: {}", e.file, e.line, e.column, e.message))
                    .collect();
                let summary = format!(
                    "{} problem(s) in the configuration:\n\n{}{fork_note}",
                    errors.0.len(),
                    listed.join("\n")
                );
                (
                    "failure",
                    "slipway.yml is not valid".to_owned(),
                    render::truncate_chars(&summary, render::MAX_OUTPUT_CHARS),
                    annotations,
                )
            }
        };
        let mut output = json!({ "title": title, "summary": summary });
        if !annotations.is_empty() {
            output["annotations"] = Value::Array(annotations);
        }
        let body = json!({
            "name": "slipway/validate",
            "head_sha": sha,
            "status": "completed",
            "conclusion": conclusion,
            "completed_at": render::timestamp(now_millis()),
            "output": output,
        });
        let entry = NewEntry {
            operation_id: None,
            installation_id: repo.installation,
            method: "POST",
            path: format!("/repos/{}/check-runs", repo.full_name),
            body,
            store_as: None,
        };
        db::enqueue(&self.shared.pool, None, &[entry], now_millis()).await?;
        self.shared.outbox_wake.notify_one();
        Ok(())
    }
}

fn op_kind(kind: Option<OperationKind>, old: OperationKind) -> OperationKind {
    kind.unwrap_or(old)
}

fn repository(trigger: &Trigger) -> Option<&Repository> {
    match trigger {
        Trigger::BranchPush { repo, .. }
        | Trigger::Tag { repo, .. }
        | Trigger::Deleted { repo, .. }
        | Trigger::PullRequest { repo, .. }
        | Trigger::PullRequestClosed { repo, .. }
        | Trigger::Rerun { repo, .. }
        | Trigger::Rollback { repo, .. }
        | Trigger::Deployment { repo, .. } => Some(repo),
        Trigger::Ping | Trigger::Ignored(_) => None,
    }
}
