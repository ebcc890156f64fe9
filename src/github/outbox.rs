//! The outbox worker: sends the requests the reporter queued, oldest first. A request
//! that fails for a reason that may pass (GitHub down, rate limited) is retried after a
//! back-off that honours `retry-after` and `x-ratelimit-reset`, and the ones behind it
//! wait, so statuses reach GitHub in order. The queue is a table, so a restart keeps it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::SqlitePool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::github::api::{Api, SendError};
use crate::github::auth::Credentials;
use crate::github::db::{self, Entry};
use crate::github::reporter::now_millis;
use crate::github::{validation_db, GitHubError};

/// The longest wait between two attempts, whatever the attempt count.
const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

pub struct OutboxWorker {
    pub pool: SqlitePool,
    pub api: Api,
    pub credentials: Arc<Credentials>,
    pub wake: Arc<Notify>,
    /// The first retry's wait; each further attempt doubles it.
    pub base_backoff: Duration,
}

impl OutboxWorker {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let notified = self.wake.notified();
            let wait = match self.step().await {
                Ok(Some(wait)) => wait,
                Ok(None) => Duration::from_secs(3600),
                Err(error) => {
                    tracing::error!(%error, "the GitHub outbox could not be read; retrying");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = notified => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends the next due request, if any. Returns how long to wait before the next
    /// look (zero: at once), or `None` when the outbox is empty.
    async fn step(&self) -> Result<Option<Duration>, GitHubError> {
        let Some(entry) = db::next_entry(&self.pool).await? else {
            return Ok(None);
        };
        let now = now_millis();
        if entry.next_attempt_at > now {
            return Ok(Some(Duration::from_millis(
                (entry.next_attempt_at - now) as u64,
            )));
        }
        match self.send(&entry).await {
            Ok(answer) => {
                let id = answer.get("id").and_then(Value::as_i64);
                db::mark_sent(&self.pool, &entry, id, now_millis()).await?;
            }
            Err(SendError::Retry { after, why }) => {
                let wait = after.unwrap_or_else(|| backoff(self.base_backoff, entry.attempts));
                tracing::warn!(attempt = entry.attempts + 1, retry_in = ?wait, "GitHub request not sent yet: {why}");
                db::mark_retry(
                    &self.pool,
                    entry.id,
                    now_millis() + wait.as_millis() as i64,
                    &why,
                )
                .await?;
            }
            Err(SendError::Permanent(why)) => {
                tracing::error!("GitHub refused a request, which is dropped: {why}");
                if why.contains(" 401 ") {
                    self.credentials.forget(entry.installation_id).await;
                }
                db::mark_dropped(&self.pool, entry.id, &why, now_millis()).await?;
            }
        }
        Ok(Some(Duration::ZERO))
    }

    async fn send(&self, entry: &Entry) -> Result<Value, SendError> {
        let path = self.resolve(entry).await?;
        let token = self
            .credentials
            .token(&self.api, entry.installation_id)
            .await?;
        let body: Value = serde_json::from_str(&entry.body).unwrap_or(Value::Null);
        self.api
            .send(
                &entry.method,
                &path,
                (!body.is_null()).then_some(&body),
                &token,
            )
            .await
    }

    /// Fills `:check_run_id` and `:deployment_id` with the ids GitHub gave earlier
    /// requests. When that request was dropped there is nothing to update.
    async fn resolve(&self, entry: &Entry) -> Result<String, SendError> {
        if !entry.path.contains(":check_run_id") && !entry.path.contains(":deployment_id") {
            return Ok(entry.path.clone());
        }
        let retry = |e: GitHubError| SendError::Retry {
            after: None,
            why: e.to_string(),
        };
        let link = match entry.operation_id {
            Some(op) => db::link(&self.pool, op).await.map_err(retry)?,
            None => None,
        };
        // A validation's check run belongs to no operation: its id is the validation's.
        let check_run_id = match entry.validation_id {
            Some(validation) => validation_db::check_run_id(&self.pool, validation)
                .await
                .map_err(retry)?,
            None => link.as_ref().and_then(|l| l.check_run_id),
        };
        let mut path = entry.path.clone();
        for (placeholder, id) in [
            (":check_run_id", check_run_id),
            (
                ":deployment_id",
                link.as_ref().and_then(|l| l.deployment_id),
            ),
        ] {
            if path.contains(placeholder) {
                let id = id.ok_or_else(|| {
                    SendError::Permanent(format!(
                        "{} {}: GitHub never created the {}",
                        entry.method,
                        entry.path,
                        &placeholder[1..placeholder.len() - 3].replace('_', " ")
                    ))
                })?;
                path = path.replace(placeholder, &id.to_string());
            }
        }
        Ok(path)
    }
}

/// `base`, doubled per attempt, at most `MAX_BACKOFF`.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let factor = 1u32 << attempts.clamp(0, 16) as u32;
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let base = Duration::from_millis(250);
        assert_eq!(backoff(base, 0), Duration::from_millis(250));
        assert_eq!(backoff(base, 3), Duration::from_secs(2));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}
