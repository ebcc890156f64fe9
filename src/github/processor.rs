//! The delivery worker: takes accepted deliveries from the database, oldest first,
//! turns each into operations (reading `slipway.yml` at the commit to know where it
//! deploys), links those to their GitHub commit, and marks the delivery done. A server
//! killed before a delivery was done works on it again at the next start; the links
//! of a delivery make that start nothing twice.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::model::AppConfig;
use crate::github::checkout::Checked;
use crate::github::db::{self, Delivery, Link};
use crate::github::reporter::now_millis;
use crate::github::trigger::{self, Repository, Trigger};
use crate::github::validate::{Validator, CHECK_NAME};
use crate::github::validation_db::{self, NewValidation};
use crate::github::{glob, intent, GitHubError, Shared};
use crate::ids::{EnvKey, OperationId};
use crate::pipeline::model::{NewOperation, OperationKind, OperationState, SourceSpec};
use crate::pipeline::Pipeline;

/// How far back `unlinked_operation` looks in an environment's operations: the
/// operation it looks for was queued just before the server was killed.
const RECENT_OPERATIONS: i64 = 50;

pub struct DeliveryWorker {
    pub shared: Arc<Shared>,
    pub pipeline: Pipeline,
    pub validator: Validator,
    pub wake: Arc<Notify>,
}

impl DeliveryWorker {
    pub async fn run(self, shutdown: CancellationToken) {
        self.resume_validations().await;
        loop {
            let notified = self.wake.notified();
            match db::pending_deliveries(&self.shared.pool, BATCH).await {
                Ok(deliveries) if !deliveries.is_empty() => {
                    let mut ahead = Ahead::default();
                    for delivery in &deliveries {
                        if shutdown.is_cancelled() {
                            return;
                        }
                        let newer = ahead.newer_push(&self.shared.pool, delivery).await;
                        self.process(delivery, newer.as_ref(), &mut ahead).await;
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

    /// Runs again the validations a killed server left unfinished (those of deliveries
    /// still to be worked on are run again with their delivery).
    async fn resume_validations(&self) {
        let unfinished = match validation_db::unfinished(&self.shared.pool).await {
            Ok(unfinished) => unfinished,
            Err(error) => {
                tracing::error!(%error, "cannot read the unfinished validations");
                return;
            }
        };
        for validation in unfinished {
            let id = validation.id;
            let repo = Repository {
                full_name: validation.repository.clone(),
                installation: validation.installation_id,
            };
            let outcome = match self.checkout(&repo, &validation.head_sha).await {
                Ok(checked) => self.validator.run(validation, &checked.config).await,
                Err(error) => self
                    .validator
                    .abandon(id, &error)
                    .await
                    .map(|()| error.to_string()),
            };
            match outcome {
                Ok(outcome) => tracing::info!(validation = id, "validation resumed: {outcome}"),
                Err(error) => {
                    tracing::error!(validation = id, %error, "could not resume a validation")
                }
            }
        }
    }

    /// Works on one delivery; `newer` is a later push to the same branch, waiting too.
    async fn process(&self, delivery: &Delivery, newer: Option<&Delivery>, ahead: &mut Ahead) {
        // Test-only (unarmed, it returns at once): stored and answered, not worked on.
        crate::pause::at(crate::pause::PausePoint::DeliveryAccepted).await;
        let outcome = match self.handle(delivery, newer, ahead).await {
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

    async fn handle(
        &self,
        delivery: &Delivery,
        newer: Option<&Delivery>,
        ahead: &mut Ahead,
    ) -> Result<String, GitHubError> {
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
                ref repo,
                ref sha,
                ref branch,
            } => {
                if let Some(newer) = newer {
                    let superseded = self
                        .supersede(delivery, newer, repo, branch, sha, ahead)
                        .await?;
                    if let Some(outcome) = superseded {
                        return Ok(outcome);
                    }
                }
                let checked = self.checkout(repo, sha).await?;
                self.deploy_or_report(delivery, &trigger, repo, checked)
                    .await
            }
            Trigger::Deployment {
                ref repo, ref sha, ..
            } => {
                let checked = self.checkout(repo, sha).await?;
                self.deploy_or_report(delivery, &trigger, repo, checked)
                    .await
            }
            Trigger::Tag {
                ref repo,
                ref tag,
                ref sha,
            } => {
                let checked = self.checkout(repo, sha.as_deref().unwrap_or(tag)).await?;
                self.deploy_or_report(delivery, &trigger, repo, checked)
                    .await
            }
            Trigger::PullRequest {
                ref repo,
                ref head_sha,
                number,
                from_fork,
            } => {
                let checked = self.checkout(repo, head_sha).await?;
                let new = NewValidation {
                    delivery_id: &delivery.id,
                    repository: &repo.full_name,
                    head_sha: &checked.sha,
                    installation_id: repo.installation,
                    pull_request: Some(number),
                    from_fork,
                };
                let validated = self.validator.start(&new, &checked).await?;
                let Ok(config) = checked.config else {
                    return Ok(format!("validation: {validated}"));
                };
                let deployed = self
                    .deploy(delivery, &trigger, repo, &checked.sha, config)
                    .await?;
                Ok(format!("validation: {validated}; {deployed}"))
            }
            Trigger::Rerun {
                repo,
                check_run_id,
                name,
                head_sha,
            } => {
                if name == CHECK_NAME {
                    return self
                        .validate_again(delivery, &repo, check_run_id, &head_sha)
                        .await;
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

    /// Deploys a commit whose configuration is valid; reports one that is not as a
    /// failing `slipway/validate` check run of the commit.
    async fn deploy_or_report(
        &self,
        delivery: &Delivery,
        trigger: &Trigger,
        repo: &Repository,
        checked: Checked,
    ) -> Result<String, GitHubError> {
        match checked.config {
            Ok(config) => {
                self.deploy(delivery, trigger, repo, &checked.sha, config)
                    .await
            }
            Err(_) => {
                let new = NewValidation {
                    delivery_id: &delivery.id,
                    repository: &repo.full_name,
                    head_sha: &checked.sha,
                    installation_id: repo.installation,
                    pull_request: None,
                    from_fork: false,
                };
                self.validator.start(&new, &checked).await
            }
        }
    }

    /// Deploys a commit to the environments its configuration names for this trigger.
    async fn deploy(
        &self,
        delivery: &Delivery,
        trigger: &Trigger,
        repo: &Repository,
        sha: &str,
        config: AppConfig,
    ) -> Result<String, GitHubError> {
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
        let mut skipped = Vec::new();
        for env in targets.deploy {
            if done
                .iter()
                .any(|l| l.app == config.app.as_str() && l.env == env)
            {
                continue;
            }
            let key = EnvKey::new(config.app.as_str(), env.as_str());
            if let Some(why) = self.deploying_already(&key, sha, &delivery.id).await? {
                skipped.push(why);
                continue;
            }
            let new = deploy_of(key, &url, sha, delivery);
            let op = self.submit(new, delivery, repo, sha).await?;
            started.push(format!("{} of {}/{env}", op, config.app));
        }
        let mut outcome = Vec::new();
        if !started.is_empty() {
            outcome.push(format!("started operation {}", started.join(", ")));
        }
        if !skipped.is_empty() {
            outcome.push(format!("skipped: {}", skipped.join("; ")));
        }
        Ok(outcome.join("; "))
    }

    /// A push with a newer push to the same branch waiting behind it is not checked out
    /// nor deployed: latest push wins. It is recorded as a deploy `superseded` at once in
    /// each environment the newer push deploys to (the newer commit's `slipway.yml` says
    /// where the branch goes now), so its commit still gets its final status on GitHub.
    /// `None` when the newer push cannot say (its commit or config is unreadable): this
    /// one is then worked on as usual.
    async fn supersede(
        &self,
        delivery: &Delivery,
        newer: &Delivery,
        repo: &Repository,
        branch: &str,
        sha: &str,
        ahead: &mut Ahead,
    ) -> Result<Option<String>, GitHubError> {
        let targets = match ahead.targets.get(&newer.id) {
            Some(known) => known.clone(),
            None => {
                let targets = self.targets_of_push(newer, repo, branch).await;
                ahead.targets.insert(newer.id.clone(), targets.clone());
                targets
            }
        };
        let Some((app, envs, newer_sha)) = targets else {
            return Ok(None);
        };
        let why = format!(
            "superseded by delivery {}, a newer push to {branch} ({})",
            newer.id,
            &newer_sha[..newer_sha.len().min(12)]
        );
        let done = db::links_of_delivery(&self.shared.pool, &delivery.id).await?;
        let url = self.shared.repository_url(&repo.full_name);
        let mut recorded = Vec::new();
        for env in envs {
            if done.iter().any(|l| l.app == app && l.env == env) {
                continue;
            }
            let new = deploy_of(EnvKey::new(app.as_str(), env.as_str()), &url, sha, delivery);
            let op = self.link_new(new, delivery, repo, sha, Some(&why)).await?;
            recorded.push(format!("{op} of {app}/{env}"));
        }
        Ok(Some(format!("{why}: operation {}", recorded.join(", "))))
    }

    /// The app, the environments and the commit a push deploys, read from its commit's
    /// `slipway.yml`; `None` when it cannot be read or deploys nowhere.
    async fn targets_of_push(
        &self,
        push: &Delivery,
        repo: &Repository,
        branch: &str,
    ) -> Option<(String, Vec<String>, String)> {
        let (_, _, sha) = push_of(push)?;
        let config = self.checkout(repo, &sha).await.ok()?.config.ok()?;
        let trigger = Trigger::BranchPush {
            repo: repo.clone(),
            branch: branch.to_owned(),
            sha: sha.clone(),
        };
        let targets = intent::targets(&trigger, &config);
        (!targets.deploy.is_empty()).then(|| (config.app.to_string(), targets.deploy, sha))
    }

    /// Why a deploy of `sha` to `env` would repeat one that another delivery started
    /// (a tag pushed to GitHub sends both a `push` and a `create`): that deploy is
    /// queued or running, or it succeeded and its commit is what the environment serves.
    /// A commit deployed earlier and replaced since is deployed again.
    async fn deploying_already(
        &self,
        env: &EnvKey,
        sha: &str,
        delivery: &str,
    ) -> Result<Option<String>, GitHubError> {
        let store = &self.pipeline.fx.store;
        let store_error =
            |e: crate::pipeline::traits::EffectError| GitHubError::Database(e.to_string());
        let links =
            db::links_of_commit(&self.shared.pool, env.app.as_str(), env.env.as_str(), sha).await?;
        for link in links
            .iter()
            .rev()
            .filter(|l| l.delivery_id.as_deref() != Some(delivery))
        {
            let Some(op) = store
                .operation(OperationId(link.operation_id))
                .await
                .map_err(store_error)?
            else {
                continue;
            };
            if op.kind != OperationKind::Deploy {
                continue;
            }
            let by = format!(
                "operation {} (delivery {})",
                op.id,
                link.delivery_id.as_deref().unwrap_or("none")
            );
            let serving = || async {
                store
                    .current_release(env)
                    .await
                    .map(|r| r.and_then(|r| r.commit).as_deref() == Some(sha))
            };
            match op.state {
                OperationState::Queued | OperationState::Running => {
                    return Ok(Some(format!(
                        "{sha} is already being deployed to {env} by {by}"
                    )));
                }
                OperationState::Succeeded if serving().await.map_err(store_error)? => {
                    return Ok(Some(format!(
                        "{env} already serves {sha}, deployed by {by}"
                    )));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// "Re-run" on a `slipway/validate` check run: validates the commit again, as the
    /// first validation did (a fork's gets no build; one Slipway has no record of is
    /// treated as a fork's).
    async fn validate_again(
        &self,
        delivery: &Delivery,
        repo: &Repository,
        check_run_id: i64,
        head_sha: &str,
    ) -> Result<String, GitHubError> {
        let previous =
            validation_db::by_check_run(&self.shared.pool, &repo.full_name, check_run_id).await?;
        let (pull_request, from_fork) =
            previous.map_or((None, true), |v| (v.pull_request, v.from_fork));
        let checked = self.checkout(repo, head_sha).await?;
        let new = NewValidation {
            delivery_id: &delivery.id,
            repository: &repo.full_name,
            head_sha: &checked.sha,
            installation_id: repo.installation,
            pull_request,
            from_fork,
        };
        let validated = self.validator.start(&new, &checked).await?;
        Ok(format!("validated {head_sha} again: {validated}"))
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

    /// Queues an operation for a delivery and links it to its GitHub commit. A server
    /// killed between the two left the operation unlinked: working on the delivery again
    /// links that operation instead of queueing a second one.
    async fn submit(
        &self,
        new: NewOperation,
        delivery: &Delivery,
        repo: &Repository,
        sha: &str,
    ) -> Result<OperationId, GitHubError> {
        self.link_new(new, delivery, repo, sha, None).await
    }

    /// Queues the operation (or records it superseded, with `superseded` saying why),
    /// unless a killed server had already made it, and links it to its commit.
    async fn link_new(
        &self,
        new: NewOperation,
        delivery: &Delivery,
        repo: &Repository,
        sha: &str,
        superseded: Option<&str>,
    ) -> Result<OperationId, GitHubError> {
        let env = new.env.clone();
        let op = match self.unlinked_operation(&new).await? {
            Some(op) => {
                tracing::warn!(delivery = %delivery.id, operation = %op, "linking the operation a killed server queued for this delivery");
                op
            }
            None => {
                let op = match superseded {
                    Some(why) => self.pipeline.record_superseded(new, why).await,
                    None => self.pipeline.submit(new).await,
                }
                .map_err(|e| GitHubError::Database(e.to_string()))?;
                // Test-only (unarmed, it returns at once): queued, not linked.
                crate::pause::at(crate::pause::PausePoint::DeliveryOperationCreated).await;
                op.id
            }
        };
        let link = Link {
            operation_id: op.0,
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
        self.shared.reporter.report(op).await?;
        Ok(op)
    }

    /// An operation of this delivery (same initiator, kind and environment) that has no
    /// link: one that a killed server queued and did not get to link.
    async fn unlinked_operation(
        &self,
        new: &NewOperation,
    ) -> Result<Option<OperationId>, GitHubError> {
        let recent = self
            .pipeline
            .fx
            .store
            .operations(Some(&new.env), RECENT_OPERATIONS)
            .await
            .map_err(|e| GitHubError::Database(e.to_string()))?;
        for op in recent
            .iter()
            .filter(|op| op.initiator == new.initiator && op.kind == new.kind)
        {
            if db::link(&self.shared.pool, op.id.0).await?.is_none() {
                return Ok(Some(op.id));
            }
        }
        Ok(None)
    }
}

/// The deploy of commit `sha` of the repository at `url` that `delivery` asks for.
fn deploy_of(env: EnvKey, url: &str, sha: &str, delivery: &Delivery) -> NewOperation {
    NewOperation {
        env,
        kind: OperationKind::Deploy,
        source: Some(SourceSpec::Git {
            url: url.to_owned(),
            reference: sha.to_owned(),
        }),
        commit: Some(sha.to_owned()),
        args: Value::Null,
        initiator: format!("github delivery {}", delivery.id),
    }
}

/// How many waiting deliveries are read at once.
const BATCH: i64 = 50;

/// What one batch of deliveries learns about the queue behind it.
#[derive(Default)]
struct Ahead {
    /// (repository, branch) → the newest push to it still waiting.
    newest: std::collections::HashMap<(String, String), Option<Delivery>>,
    /// A newer push's delivery id → what it deploys (`targets_of_push`).
    targets: std::collections::HashMap<String, Option<(String, Vec<String>, String)>>,
}

impl Ahead {
    /// The newest push to the same branch as `delivery` still waiting, when it is a
    /// later one: what supersedes `delivery`.
    async fn newer_push(
        &mut self,
        pool: &sqlx::SqlitePool,
        delivery: &Delivery,
    ) -> Option<Delivery> {
        let (repo, branch, _) = push_of(delivery)?;
        let key = (repo, branch);
        if !self.newest.contains_key(&key) {
            let reference = format!("refs/heads/{}", key.1);
            let newest = db::newest_waiting_push(pool, &key.0, &reference)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "cannot look for newer pushes; working on each");
                    None
                });
            self.newest.insert(key.clone(), newest);
        }
        let newest = self.newest.get(&key)?.as_ref()?;
        (newest.id != delivery.id).then(|| newest.clone())
    }
}

/// The repository, branch and commit of a branch push.
fn push_of(delivery: &Delivery) -> Option<(String, String, String)> {
    if delivery.event != "push" {
        return None;
    }
    let payload: Value = serde_json::from_str(&delivery.payload).ok()?;
    match trigger::read(&delivery.event, &payload).ok()? {
        Trigger::BranchPush { repo, branch, sha } => Some((repo.full_name, branch, sha)),
        _ => None,
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
