//! GitHub in the loop: webhook deliveries in (verified, persisted, worked on from the
//! database), operations started from them, and their outcomes posted back as commit
//! statuses, check runs and deployment statuses through a persistent outbox.
//!
//! **Invariant:** only this module knows GitHub's API and payloads; the pipeline sees a
//! `Reporter` and `NewOperation`s. No secret (webhook secret, token, app key,
//! configuration values) reaches a log, an error or a check run.

pub mod api;
pub mod auth;
pub mod capture;
pub mod checkout;
pub mod db;
pub mod delivery;
pub mod glob;
pub mod intent;
pub mod jwt;
pub mod outbox;
pub mod processor;
pub mod render;
pub mod reporter;
pub mod signature;
pub mod sources;
pub mod trigger;
pub mod validate;
pub mod validation_db;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::github::api::Api;
use crate::github::auth::Credentials;
use crate::github::checkout::Checkout;
use crate::github::reporter::GitHubReporter;
use crate::pipeline::traits::{Store, Traffic};
use crate::pipeline::Pipeline;

/// GitHub's limit on a webhook payload.
pub const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("{0}")]
    Config(String),
    #[error("database: {0}")]
    Database(String),
    #[error("{0}")]
    Git(String),
    #[error("the payload is not what its event should carry: {0}")]
    Payload(String),
    #[error("GitHub: {0}")]
    Api(#[from] api::SendError),
}

/// The GitHub flags of `slipway serve`. `Debug` shows no secret.
#[derive(Clone, Default)]
pub struct GitHubOptions {
    pub webhook_secret: Option<String>,
    pub token: Option<String>,
    pub app_id: Option<String>,
    pub private_key: Option<PathBuf>,
    pub api_url: String,
    pub git_url: String,
    /// `owner/name` globs of the repositories that may deploy; empty: all.
    pub repos: Vec<String>,
    /// For the links posted to GitHub.
    pub public_url: String,
}

impl fmt::Debug for GitHubOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |o: bool| if o { "****" } else { "none" };
        f.debug_struct("GitHubOptions")
            .field("webhook_secret", &set(self.webhook_secret.is_some()))
            .field("token", &set(self.token.is_some()))
            .field("app_id", &self.app_id)
            .field("private_key", &self.private_key)
            .field("api_url", &self.api_url)
            .field("git_url", &self.git_url)
            .field("repos", &self.repos)
            .finish()
    }
}

impl GitHubOptions {
    /// GitHub is in the loop when a webhook secret or an app is configured. A token alone
    /// is only used to fetch git repositories (it is often set for other reasons).
    pub fn enabled(&self) -> bool {
        self.webhook_secret.is_some() || self.app_id.is_some() || self.private_key.is_some()
    }
}

/// What the workers, the reporter and the webhook handler share.
pub struct Shared {
    pub options: GitHubOptions,
    pub pool: SqlitePool,
    pub api: Api,
    pub credentials: Arc<Credentials>,
    pub checkout: Checkout,
    pub reporter: GitHubReporter,
    pub outbox_wake: Arc<Notify>,
    pub deliveries_wake: Arc<Notify>,
    webhook_secret: Vec<u8>,
}

impl Shared {
    pub fn repository_url(&self, full_name: &str) -> String {
        format!(
            "{}/{full_name}.git",
            self.options.git_url.trim_end_matches('/')
        )
    }

    /// The token git fetches a repository with.
    pub async fn git_token(
        &self,
        installation: Option<i64>,
    ) -> Result<Option<String>, GitHubError> {
        match &*self.credentials {
            Credentials::Token(token) => Ok(Some(token.clone())),
            Credentials::App { .. } => {
                Ok(Some(self.credentials.token(&self.api, installation).await?))
            }
        }
    }
}

/// The GitHub integration of a server. Cheap to clone.
#[derive(Clone)]
pub struct GitHub {
    pub shared: Arc<Shared>,
}

impl GitHub {
    /// Builds the integration, or `None` when GitHub is not enabled. Refuses a
    /// configuration that cannot work (no webhook secret, an unreadable app key).
    pub fn new(
        options: GitHubOptions,
        data_dir: &Path,
        pool: SqlitePool,
        store: Arc<dyn Store>,
        traffic: Arc<dyn Traffic>,
    ) -> Result<Option<GitHub>, GitHubError> {
        if !options.enabled() {
            return Ok(None);
        }
        let secret = options.webhook_secret.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
            GitHubError::Config("GitHub is enabled but has no webhook secret: set --github-webhook-secret (or SLIPWAY_GITHUB_WEBHOOK_SECRET) to the secret of the webhook".into())
        })?;
        let credentials = match (&options.app_id, &options.private_key, &options.token) {
            (Some(app_id), Some(path), _) => {
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    GitHubError::Config(format!(
                        "cannot read --github-private-key {}: {e}",
                        path.display()
                    ))
                })?;
                Credentials::app(jwt::AppKey::from_pem(app_id, &pem)?)
            }
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(GitHubError::Config(
                    "a GitHub App needs both --github-app-id and --github-private-key".into(),
                ));
            }
            (None, None, Some(token)) => Credentials::Token(token.clone()),
            (None, None, None) => {
                return Err(GitHubError::Config("GitHub needs credentials to report back: --github-token (or GITHUB_TOKEN), or --github-app-id with --github-private-key".into()));
            }
        };
        let outbox_wake = Arc::new(Notify::new());
        let reporter = GitHubReporter {
            pool: pool.clone(),
            store,
            traffic,
            public_url: options.public_url.clone(),
            outbox: outbox_wake.clone(),
            lock: Arc::new(Mutex::new(())),
        };
        let shared = Shared {
            api: Api::new(&options.api_url),
            credentials: Arc::new(credentials),
            checkout: Checkout {
                dir: data_dir.join("github").join("git"),
                sources: data_dir.join("sources"),
            },
            reporter,
            outbox_wake,
            deliveries_wake: Arc::new(Notify::new()),
            webhook_secret: secret.into_bytes(),
            options,
            pool,
        };
        Ok(Some(GitHub {
            shared: Arc::new(shared),
        }))
    }

    pub fn reporter(&self) -> Arc<GitHubReporter> {
        Arc::new(self.shared.reporter.clone())
    }

    /// Whether a body carries GitHub's signature for our webhook secret.
    pub fn verify(&self, body: &[u8], signature: Option<&str>) -> bool {
        signature::verify(&self.shared.webhook_secret, body, signature)
    }

    /// Reads a request as a delivery (`delivery::read`) with this server's secret.
    pub fn read(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<delivery::Received, delivery::Refusal> {
        delivery::read(&self.shared.webhook_secret, headers, body)
    }

    /// Stores a verified delivery, unless it was seen before (by id, or by the same
    /// event and body), and wakes the delivery worker to work on it.
    pub async fn accept(
        &self,
        received: &delivery::Received,
        body: &[u8],
    ) -> Result<db::Stored, GitHubError> {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(body));
        let stored = db::insert_delivery(
            &self.shared.pool,
            db::NewDelivery {
                id: &received.id,
                event: &received.event,
                summary: trigger::summary(&received.payload),
                payload: &received.json,
                body_sha256: &digest,
                now: reporter::now_millis(),
            },
        )
        .await?;
        if stored == db::Stored::New {
            self.shared.deliveries_wake.notify_one();
        }
        Ok(stored)
    }

    /// Starts the delivery and outbox workers under the server's tracker, and catches up
    /// on reports a previous run did not finish queueing.
    pub fn spawn(&self, pipeline: Pipeline, tasks: &TaskTracker, shutdown: CancellationToken) {
        let validator = validate::Validator {
            shared: self.shared.clone(),
            fx: pipeline.fx.clone(),
            tasks: tasks.clone(),
            shutdown: shutdown.clone(),
        };
        let deliveries = processor::DeliveryWorker {
            shared: self.shared.clone(),
            pipeline,
            validator,
            wake: self.shared.deliveries_wake.clone(),
        };
        tasks.spawn(deliveries.run(shutdown.clone()));
        let outbox = outbox::OutboxWorker {
            pool: self.shared.pool.clone(),
            api: self.shared.api.clone(),
            credentials: self.shared.credentials.clone(),
            wake: self.shared.outbox_wake.clone(),
            base_backoff: Duration::from_millis(250),
        };
        tasks.spawn(outbox.run(shutdown));
        let shared = self.shared.clone();
        tasks.spawn(async move {
            match db::unfinished_links(&shared.pool).await {
                Ok(ids) => {
                    for id in ids {
                        if let Err(error) = shared.reporter.report(crate::ids::OperationId(id)).await {
                            tracing::error!(operation = id, %error, "could not catch up on a GitHub report");
                        }
                    }
                }
                Err(error) => tracing::error!(%error, "could not read unfinished GitHub reports"),
            }
        });
    }
}
