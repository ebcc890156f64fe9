//! The `slipway/validate` check run of a pull request's head commit: the configuration
//! check (annotations on the offending lines), then the build of the commit.
//!
//! Choices, where the contract is silent:
//! - **How it builds.** Through the pipeline's own build path, without an operation:
//!   the commit is fetched with the pipeline's `Sources`, and built by the runtime's
//!   `build` with a `BuildSpec` made exactly as `pipeline/prepare.rs` makes a deploy's
//!   (same artifact key, `build_env`, hook and Dockerfile). A validation is not an
//!   operation: it changes nothing, so it has no place in the activity history and does
//!   not queue behind (or hold up) an environment's deploys. Its log goes to the check
//!   run's text (the last 400 lines, masked), not to the operation logs.
//! - **Whose variables.** The build variables of the pull request's preview environment,
//!   `pr-<number>` — what its preview deploy builds with, so that deploy reuses this
//!   build (same key) instead of building the commit twice. The variables of the other
//!   environments (staging, production) never reach a pull request's code.
//! - **Forks.** A pull request from a fork gets the configuration check only, unless an
//!   environment says `trust_forks: true`; its summary says the build was skipped. A
//!   re-run of a check run Slipway has no record of is treated the same way.
//! - **Where it runs.** The fetch runs in the delivery worker (git fetches of one
//!   repository stay one at a time); the build runs in a task of the server's tracker,
//!   so a long build does not hold up other deliveries. A server stopped or killed
//!   during a build leaves the validation unfinished, and the next start runs it again.
//! - The check run is created `in_progress` and completed `success` only when the
//!   configuration is valid and the build (when it runs) succeeded.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::model::AppConfig;
use crate::config::ConfigErrors;
use crate::github::capture::CapturedLog;
use crate::github::checkout::Checked;
use crate::github::db::NewEntry;
use crate::github::intent;
use crate::github::render;
use crate::github::reporter::now_millis;
use crate::github::validation_db::{self, NewValidation, Validation};
use crate::github::{GitHubError, Shared};
use crate::ids::{EnvKey, OperationId};
use crate::pipeline::log::Masker;
use crate::pipeline::model::SourceSpec;
use crate::pipeline::plan;
use crate::pipeline::traits::{BuildSpec, CommandSpec, Effects, FetchedSource};

pub const CHECK_NAME: &str = "slipway/validate";

const FORK_NOTE: &str = "The build was skipped: this pull request comes from a fork, and no build or hook runs with the app's variables unless an environment says `trust_forks: true`.";

/// Runs validations; cheap to clone.
#[derive(Clone)]
pub struct Validator {
    pub shared: Arc<Shared>,
    pub fx: Effects,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

/// How a validation ends.
struct Verdict {
    success: bool,
    title: String,
    summary: String,
    text: Option<String>,
    annotations: Vec<Value>,
}

impl Validator {
    /// Validates a commit whose configuration was just read; returns what was done, for
    /// the delivery's outcome. Builds only for a pull request (`pull_request`) that may.
    pub async fn start(
        &self,
        new: &NewValidation<'_>,
        checked: &Checked,
    ) -> Result<String, GitHubError> {
        let validation = validation_db::insert(
            &self.shared.pool,
            new,
            |id| self.create_entry(id, new),
            now_millis(),
        )
        .await?;
        self.shared.outbox_wake.notify_one();
        if validation.finished {
            return Ok(format!("{} was validated already", new.head_sha));
        }
        self.run(validation, &checked.config).await
    }

    /// Completes a validation that cannot run (its commit cannot be read any more).
    pub async fn abandon(&self, id: i64, error: &GitHubError) -> Result<(), GitHubError> {
        self.complete(id, Verdict::failed("the commit could not be read", error))
            .await
    }

    /// Checks the configuration and, when the pull request may, builds the commit.
    pub async fn run(
        &self,
        validation: Validation,
        config: &Result<AppConfig, ConfigErrors>,
    ) -> Result<String, GitHubError> {
        let config = match config {
            Ok(config) => config.clone(),
            Err(errors) => {
                self.complete(validation.id, Verdict::invalid(errors))
                    .await?;
                return Ok(format!(
                    "the configuration at {} is not valid: {} error(s)",
                    validation.head_sha,
                    errors.0.len()
                ));
            }
        };
        let Some(number) = validation.pull_request else {
            let verdict = Verdict::valid("The configuration is valid.".into());
            self.complete(validation.id, verdict).await?;
            return Ok("the configuration is valid".into());
        };
        if validation.from_fork && !intent::may_build_pull_request(&config, true) {
            let verdict = Verdict::valid(format!("The configuration is valid.\n\n{FORK_NOTE}"));
            self.complete(validation.id, verdict).await?;
            return Ok("the configuration is valid; no build for a fork".into());
        }
        if config.image.is_some()
            && config.build.hook.is_none()
            && config.build.dockerfile.is_none()
        {
            let verdict = Verdict::valid(
                "The configuration is valid. The app deploys an image: there is nothing to build."
                    .into(),
            );
            self.complete(validation.id, verdict).await?;
            return Ok("the configuration is valid; an image-based app has no build".into());
        }
        let env = EnvKey::new(config.app.as_str(), intent::preview_environment(number));
        let variables = self
            .fx
            .store
            .variables(&env)
            .await
            .map_err(|e| GitHubError::Database(e.to_string()))?;
        let captured = CapturedLog::default();
        let log = captured.log(Masker::new(variables.iter().map(|v| v.value.clone())));
        let source = SourceSpec::Git {
            url: self.shared.repository_url(&validation.repository),
            reference: validation.head_sha.clone(),
        };
        let fetched = match self.fx.sources.fetch(&source, &log).await {
            Ok(fetched) => fetched,
            Err(error) => {
                let verdict = Verdict::failed("the commit could not be fetched", &error);
                self.complete(validation.id, verdict.with_log(&captured))
                    .await?;
                return Ok(format!("the commit could not be fetched: {error}"));
            }
        };
        let spec = build_spec(&env, &config, &fetched, &variables);
        let this = self.clone();
        let id = validation.id;
        self.tasks.spawn(async move {
            let started = Instant::now();
            let built = tokio::select! {
                built = this.fx.runtime.build(&spec, &log) => built,
                // Left unfinished: the next start of the server runs it again.
                () = this.shutdown.cancelled() => return,
            };
            let took = crate::pipeline::format_duration(started.elapsed());
            let verdict = match built {
                Ok(_) => Verdict {
                    success: true,
                    title: "slipway.yml is valid and the build succeeded".into(),
                    summary: format!("The configuration is valid, and the build of `{}` succeeded in {took}, with the build variables of `{}`.", spec.commit.as_deref().unwrap_or_default(), spec.env.env),
                    text: None,
                    annotations: Vec::new(),
                },
                Err(error) => Verdict {
                    success: false,
                    title: "the build failed".into(),
                    summary: format!("The configuration is valid, but the build failed after {took}: {error}"),
                    text: None,
                    annotations: Vec::new(),
                },
            };
            if let Err(error) = this.complete(id, verdict.with_log(&captured)).await {
                tracing::error!(validation = id, %error, "could not complete a validation's check run");
            }
        });
        Ok(format!(
            "building {} for its validation",
            validation.head_sha
        ))
    }

    fn create_entry(&self, id: i64, new: &NewValidation<'_>) -> NewEntry {
        let body = json!({
            "name": CHECK_NAME,
            "head_sha": new.head_sha,
            "status": "in_progress",
            "started_at": render::timestamp(now_millis()),
            "external_id": format!("validation-{id}"),
            "output": {
                "title": "validating",
                "summary": "Checking the configuration, then building the commit.",
            },
        });
        NewEntry {
            operation_id: None,
            installation_id: new.installation_id,
            method: "POST",
            path: format!("/repos/{}/check-runs", new.repository),
            body,
            store_as: Some("check_run_id"),
            validation_id: Some(id),
        }
    }

    /// Queues the requests that complete a validation's check run (its annotations 50
    /// per request), and marks it finished.
    async fn complete(&self, id: i64, verdict: Verdict) -> Result<(), GitHubError> {
        let Some(validation) = validation_db::get(&self.shared.pool, id).await? else {
            return Ok(());
        };
        let entries = completion_entries(&validation, verdict);
        validation_db::enqueue(&self.shared.pool, id, &entries, true, now_millis()).await?;
        self.shared.outbox_wake.notify_one();
        Ok(())
    }
}

/// The build of a validation, made as `pipeline/prepare.rs` makes a deploy's.
fn build_spec(
    env: &EnvKey,
    config: &AppConfig,
    fetched: &FetchedSource,
    variables: &[crate::pipeline::model::Variable],
) -> BuildSpec {
    let key = plan::artifact_key(env.app.as_str(), &fetched.content_id, variables);
    // No operation: SLIPWAY_OPERATION_ID is 0 in a validation's build.
    let env_vars = plan::build_env(env, fetched.commit.as_deref(), OperationId(0), variables);
    BuildSpec {
        env: env.clone(),
        source_dir: fetched.dir.clone(),
        artifact_key: key,
        commit: fetched.commit.clone(),
        hook: config
            .build
            .hook
            .as_ref()
            .map(|hook| CommandSpec::from_hook("build", hook, &env_vars)),
        dockerfile: config.build.dockerfile.clone(),
    }
}

/// The `PATCH`es that complete a validation's check run.
fn completion_entries(validation: &Validation, verdict: Verdict) -> Vec<NewEntry> {
    let mut output = json!({
        "title": render::truncate_chars(&verdict.title, 255),
        "summary": render::truncate_chars(&verdict.summary, render::MAX_OUTPUT_CHARS),
    });
    if let Some(text) = verdict.text {
        output["text"] = Value::String(text);
    }
    let (output, more) = render::with_annotation_batches(output, verdict.annotations);
    let completed = json!({
        "status": "completed",
        "conclusion": if verdict.success { "success" } else { "failure" },
        "completed_at": render::timestamp(now_millis()),
        "output": output,
    });
    std::iter::once(completed)
        .chain(more)
        .map(|body| NewEntry {
            operation_id: None,
            installation_id: validation.installation_id,
            method: "PATCH",
            path: format!("/repos/{}/check-runs/:check_run_id", validation.repository),
            body,
            store_as: None,
            validation_id: Some(validation.id),
        })
        .collect()
}

impl Verdict {
    fn valid(summary: String) -> Verdict {
        Verdict {
            success: true,
            title: "slipway.yml is valid".into(),
            summary,
            text: None,
            annotations: Vec::new(),
        }
    }

    fn invalid(errors: &ConfigErrors) -> Verdict {
        let listed: Vec<String> = errors
            .0
            .iter()
            .map(|e| format!("- `{}:{}:{}`: {}", e.file, e.line, e.column, e.message))
            .collect();
        Verdict {
            success: false,
            title: "slipway.yml is not valid".into(),
            summary: format!(
                "{} problem(s) in the configuration (nothing was built):\n\n{}",
                errors.0.len(),
                listed.join("\n")
            ),
            text: None,
            annotations: errors
                .0
                .iter()
                .take(render::MAX_ANNOTATIONS_TOTAL)
                .map(|e| render::annotation(&e.file, e.line, e.column, &e.message))
                .collect(),
        }
    }

    fn failed(what: &str, error: &dyn std::fmt::Display) -> Verdict {
        Verdict {
            success: false,
            title: what.to_owned(),
            summary: format!("The validation could not run: {what}: {error}"),
            text: None,
            annotations: Vec::new(),
        }
    }

    fn with_log(mut self, captured: &CapturedLog) -> Verdict {
        let lines = captured.lines();
        self.text = Some(render::text_tail(lines.iter().map(String::as_str)));
        self
    }
}
