//! The GitHub tables (`migrations/0002_github.sql`): deliveries, the links between
//! operations and GitHub commits, and the outbox. Every write is committed before the
//! call returns.

use serde_json::Value;
use sqlx::{Row, SqlitePool};

use crate::github::GitHubError;

type Result<T> = std::result::Result<T, GitHubError>;

fn db(error: sqlx::Error) -> GitHubError {
    GitHubError::Database(error.to_string())
}

/// A delivery as stored when it was accepted.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub event: String,
    pub payload: String,
}

/// What storing a delivery found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// New: stored, to be worked on.
    New,
    /// Its `X-GitHub-Delivery` was seen before (GitHub's redeliveries keep it).
    SameId,
    /// The same event with the same body was stored before as delivery `.0`.
    SameBody(String),
}

/// A delivery as accepted, to be stored.
pub struct NewDelivery<'a> {
    pub id: &'a str,
    pub event: &'a str,
    pub summary: (Option<String>, Option<String>, Option<String>, Option<i64>),
    pub payload: &'a str,
    /// Hex sha256 of the raw body the signature covered.
    pub body_sha256: &'a str,
    pub now: i64,
}

/// Stores an accepted delivery unless its id, or the same event with the same body,
/// was seen before. One statement, so two copies arriving at once store one row.
pub async fn insert_delivery(pool: &SqlitePool, new: NewDelivery<'_>) -> Result<Stored> {
    let (action, repository, head_sha, installation) = new.summary;
    let done = sqlx::query(
        "INSERT OR IGNORE INTO github_deliveries (id, event, action, repository, head_sha, installation_id, payload, received_at, body_sha256)
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?
         WHERE NOT EXISTS (SELECT 1 FROM github_deliveries WHERE event = ? AND body_sha256 = ?)",
    )
    .bind(new.id)
    .bind(new.event)
    .bind(action)
    .bind(repository)
    .bind(head_sha)
    .bind(installation)
    .bind(new.payload)
    .bind(new.now)
    .bind(new.body_sha256)
    .bind(new.event)
    .bind(new.body_sha256)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 1 {
        return Ok(Stored::New);
    }
    let same_id = sqlx::query("SELECT 1 FROM github_deliveries WHERE id = ?")
        .bind(new.id)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    if same_id.is_some() {
        return Ok(Stored::SameId);
    }
    let first: Option<String> = sqlx::query_scalar(
        "SELECT id FROM github_deliveries WHERE event = ? AND body_sha256 = ? ORDER BY received_at LIMIT 1",
    )
    .bind(new.event)
    .bind(new.body_sha256)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(Stored::SameBody(first.unwrap_or_default()))
}

/// Deliveries not worked on yet, oldest first.
pub async fn pending_deliveries(pool: &SqlitePool, limit: i64) -> Result<Vec<Delivery>> {
    let rows = sqlx::query("SELECT id, event, payload FROM github_deliveries WHERE processed_at IS NULL ORDER BY received_at, rowid LIMIT ?")
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|r| Delivery {
            id: r.get(0),
            event: r.get(1),
            payload: r.get(2),
        })
        .collect())
}

/// The newest push to `reference` of `repository` not worked on yet.
pub async fn newest_waiting_push(
    pool: &SqlitePool,
    repository: &str,
    reference: &str,
) -> Result<Option<Delivery>> {
    // Walks the repository's deliveries from the newest (its index), so it stops early.
    let row = sqlx::query(
        "SELECT id, event, payload FROM github_deliveries \
         WHERE repository = ? AND processed_at IS NULL AND event = 'push' \
           AND json_extract(payload, '$.ref') = ? \
         ORDER BY received_at DESC, rowid DESC LIMIT 1",
    )
    .bind(repository)
    .bind(reference)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(row.map(|r| Delivery {
        id: r.get(0),
        event: r.get(1),
        payload: r.get(2),
    }))
}

pub async fn finish_delivery(pool: &SqlitePool, id: &str, outcome: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE github_deliveries SET processed_at = ?, outcome = ? WHERE id = ?")
        .bind(now)
        .bind(outcome)
        .bind(id)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

/// The installation that last sent a delivery about a repository.
pub async fn installation_of(pool: &SqlitePool, repository: &str) -> Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT installation_id FROM github_deliveries WHERE repository = ? COLLATE NOCASE AND installation_id IS NOT NULL
         ORDER BY received_at DESC LIMIT 1",
    )
    .bind(repository)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(row.map(|r| r.get(0)))
}

/// An operation started for a GitHub commit.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub operation_id: i64,
    pub app: String,
    pub env: String,
    pub repository: String,
    pub head_sha: String,
    pub installation_id: Option<i64>,
    pub delivery_id: Option<String>,
    pub check_run_id: Option<i64>,
    pub deployment_id: Option<i64>,
    pub reported_phase: i64,
    pub reported_steps: i64,
}

const LINK_COLUMNS: &str = "operation_id, app, env, repository, head_sha, installation_id, delivery_id, check_run_id, deployment_id, reported_phase, reported_steps";

fn link_of(row: sqlx::sqlite::SqliteRow) -> Link {
    Link {
        operation_id: row.get(0),
        app: row.get(1),
        env: row.get(2),
        repository: row.get(3),
        head_sha: row.get(4),
        installation_id: row.get(5),
        delivery_id: row.get(6),
        check_run_id: row.get(7),
        deployment_id: row.get(8),
        reported_phase: row.get(9),
        reported_steps: row.get(10),
    }
}

pub async fn insert_link(pool: &SqlitePool, link: &Link) -> Result<()> {
    sqlx::query(&format!("INSERT INTO github_operations ({LINK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, 0, 0)"))
        .bind(link.operation_id)
        .bind(&link.app)
        .bind(&link.env)
        .bind(&link.repository)
        .bind(&link.head_sha)
        .bind(link.installation_id)
        .bind(&link.delivery_id)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

pub async fn link(pool: &SqlitePool, operation_id: i64) -> Result<Option<Link>> {
    let row = sqlx::query(&format!(
        "SELECT {LINK_COLUMNS} FROM github_operations WHERE operation_id = ?"
    ))
    .bind(operation_id)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(row.map(link_of))
}

pub async fn link_by_check_run(
    pool: &SqlitePool,
    repository: &str,
    check_run_id: i64,
) -> Result<Option<Link>> {
    let row = sqlx::query(&format!(
        "SELECT {LINK_COLUMNS} FROM github_operations WHERE repository = ? COLLATE NOCASE AND check_run_id = ?"
    ))
    .bind(repository)
    .bind(check_run_id)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(row.map(link_of))
}

/// The links of one delivery (so a delivery worked on twice starts nothing twice).
pub async fn links_of_delivery(pool: &SqlitePool, delivery_id: &str) -> Result<Vec<Link>> {
    let rows = sqlx::query(&format!(
        "SELECT {LINK_COLUMNS} FROM github_operations WHERE delivery_id = ?"
    ))
    .bind(delivery_id)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(link_of).collect())
}

/// The links of every operation started for one commit of an app's environment, oldest
/// first (a tag's `push` and `create` deliveries name the same commit).
pub async fn links_of_commit(
    pool: &SqlitePool,
    app: &str,
    env: &str,
    head_sha: &str,
) -> Result<Vec<Link>> {
    let rows = sqlx::query(&format!(
        "SELECT {LINK_COLUMNS} FROM github_operations WHERE app = ? AND env = ? AND head_sha = ? ORDER BY operation_id"
    ))
    .bind(app)
    .bind(env)
    .bind(head_sha)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(link_of).collect())
}

/// The apps that a repository deployed to an environment (a pull request's preview).
pub async fn apps_deployed_to(
    pool: &SqlitePool,
    repository: &str,
    env: &str,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT DISTINCT app FROM github_operations WHERE repository = ? COLLATE NOCASE AND env = ? ORDER BY app",
    )
    .bind(repository)
    .bind(env)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Links whose reporting has not reached the end (phase 3), to catch up after a restart.
pub async fn unfinished_links(pool: &SqlitePool) -> Result<Vec<i64>> {
    let rows = sqlx::query(
        "SELECT operation_id FROM github_operations WHERE reported_phase < 3 ORDER BY operation_id",
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// One request to GitHub, waiting in the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEntry {
    pub operation_id: Option<i64>,
    pub installation_id: Option<i64>,
    pub method: &'static str,
    pub path: String,
    pub body: Value,
    /// `check_run_id` or `deployment_id`: where the `id` of GitHub's answer goes.
    pub store_as: Option<&'static str>,
    /// The validation (`github_validations`) whose check run this is about, if any.
    pub validation_id: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub id: i64,
    pub operation_id: Option<i64>,
    pub installation_id: Option<i64>,
    pub method: String,
    pub path: String,
    pub body: String,
    pub store_as: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub validation_id: Option<i64>,
}

/// Puts requests in the outbox and records how far an operation's reporting got, in one
/// transaction: a crash leaves both or neither.
pub async fn enqueue(
    pool: &SqlitePool,
    progress: Option<(i64, i64, i64)>,
    entries: &[NewEntry],
    now: i64,
) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    insert_entries(&mut tx, entries, now).await?;
    if let Some((operation_id, phase, steps)) = progress {
        sqlx::query("UPDATE github_operations SET reported_phase = ?, reported_steps = ? WHERE operation_id = ?")
            .bind(phase)
            .bind(steps)
            .bind(operation_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

/// Adds requests to the outbox within a transaction the caller commits.
pub(crate) async fn insert_entries(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    entries: &[NewEntry],
    now: i64,
) -> Result<()> {
    for entry in entries {
        sqlx::query(
            "INSERT INTO github_outbox (operation_id, installation_id, method, path, body, store_as, validation_id, next_attempt_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.operation_id)
        .bind(entry.installation_id)
        .bind(entry.method)
        .bind(&entry.path)
        .bind(entry.body.to_string())
        .bind(entry.store_as)
        .bind(entry.validation_id)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// The oldest request not yet sent or dropped.
pub async fn next_entry(pool: &SqlitePool) -> Result<Option<Entry>> {
    let row = sqlx::query(
        "SELECT id, operation_id, installation_id, method, path, body, store_as, attempts, next_attempt_at, validation_id
         FROM github_outbox WHERE done_at IS NULL ORDER BY id LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(row.map(|r| Entry {
        id: r.get(0),
        operation_id: r.get(1),
        installation_id: r.get(2),
        method: r.get(3),
        path: r.get(4),
        body: r.get(5),
        store_as: r.get(6),
        attempts: r.get(7),
        next_attempt_at: r.get(8),
        validation_id: r.get(9),
    }))
}

/// Marks a request sent, storing the id GitHub gave (a check run's, a deployment's).
pub async fn mark_sent(
    pool: &SqlitePool,
    entry: &Entry,
    answer_id: Option<i64>,
    now: i64,
) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    sqlx::query("UPDATE github_outbox SET done_at = ?, outcome = 'sent', attempts = attempts + 1 WHERE id = ?")
        .bind(now)
        .bind(entry.id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let column = match entry.store_as.as_deref() {
        Some("check_run_id") => Some("check_run_id"),
        Some("deployment_id") => Some("deployment_id"),
        _ => None,
    };
    if let (Some("check_run_id"), Some(id), Some(validation)) =
        (column, answer_id, entry.validation_id)
    {
        sqlx::query("UPDATE github_validations SET check_run_id = ? WHERE id = ?")
            .bind(id)
            .bind(validation)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    if let (Some(column), Some(id), Some(operation)) = (column, answer_id, entry.operation_id) {
        sqlx::query(&format!(
            "UPDATE github_operations SET {column} = ? WHERE operation_id = ?"
        ))
        .bind(id)
        .bind(operation)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

pub async fn mark_dropped(pool: &SqlitePool, id: i64, why: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE github_outbox SET done_at = ?, outcome = ?, last_error = ?, attempts = attempts + 1 WHERE id = ?")
        .bind(now)
        .bind(format!("dropped: {why}"))
        .bind(why)
        .bind(id)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

pub async fn mark_retry(pool: &SqlitePool, id: i64, next_attempt_at: i64, why: &str) -> Result<()> {
    sqlx::query("UPDATE github_outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?")
        .bind(next_attempt_at)
        .bind(why)
        .bind(id)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}
