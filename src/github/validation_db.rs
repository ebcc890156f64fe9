//! The `github_validations` table (`migrations/0004_github_validations.sql`): one row
//! per `slipway/validate` check run, which belongs to no operation. It keeps the check
//! run's id once GitHub created it, and says which validations are not finished (a
//! server killed during a validation's build runs it again at its next start).

use sqlx::{Row, SqlitePool};

use crate::github::db::{insert_entries, NewEntry};
use crate::github::GitHubError;

type Result<T> = std::result::Result<T, GitHubError>;

fn db(error: sqlx::Error) -> GitHubError {
    GitHubError::Database(error.to_string())
}

/// A pull request's head commit to validate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validation {
    pub id: i64,
    pub delivery_id: String,
    pub repository: String,
    pub head_sha: String,
    pub installation_id: Option<i64>,
    /// The pull request's number: its preview environment's build variables are the
    /// build's. `None` when a re-run names a check run Slipway has no record of.
    pub pull_request: Option<u64>,
    pub from_fork: bool,
    pub check_run_id: Option<i64>,
    pub finished: bool,
}

/// What a new validation is about.
pub struct NewValidation<'a> {
    pub delivery_id: &'a str,
    pub repository: &'a str,
    pub head_sha: &'a str,
    pub installation_id: Option<i64>,
    pub pull_request: Option<u64>,
    pub from_fork: bool,
}

const COLUMNS: &str = "id, delivery_id, repository, head_sha, installation_id, pull_request, from_fork, check_run_id, finished_at";

fn validation_of(row: sqlx::sqlite::SqliteRow) -> Validation {
    let pull_request: Option<i64> = row.get(5);
    let finished_at: Option<i64> = row.get(8);
    Validation {
        id: row.get(0),
        delivery_id: row.get(1),
        repository: row.get(2),
        head_sha: row.get(3),
        installation_id: row.get(4),
        pull_request: pull_request.and_then(|n| u64::try_from(n).ok()),
        from_fork: row.get::<i64, _>(6) != 0,
        check_run_id: row.get(7),
        finished: finished_at.is_some(),
    }
}

/// Records a validation and queues the creation of its check run (`create`, given the
/// validation's id), in one transaction. A delivery worked on twice gets back the
/// validation it recorded for this commit, and nothing is queued again.
pub async fn insert(
    pool: &SqlitePool,
    new: &NewValidation<'_>,
    create: impl FnOnce(i64) -> NewEntry,
    now: i64,
) -> Result<Validation> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let inserted = sqlx::query(
        "INSERT OR IGNORE INTO github_validations (delivery_id, repository, head_sha, installation_id, pull_request, from_fork, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new.delivery_id)
    .bind(new.repository)
    .bind(new.head_sha)
    .bind(new.installation_id)
    .bind(new.pull_request.and_then(|n| i64::try_from(n).ok()))
    .bind(i64::from(new.from_fork))
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM github_validations WHERE delivery_id = ? AND head_sha = ?"
    ))
    .bind(new.delivery_id)
    .bind(new.head_sha)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let validation = validation_of(row);
    if inserted.rows_affected() == 1 {
        insert_entries(&mut tx, &[create(validation.id)], now).await?;
    }
    tx.commit().await.map_err(db)?;
    Ok(validation)
}

/// The validation whose check run GitHub gave this id (a re-run names it).
pub async fn by_check_run(
    pool: &SqlitePool,
    repository: &str,
    check_run_id: i64,
) -> Result<Option<Validation>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM github_validations WHERE repository = ? COLLATE NOCASE AND check_run_id = ?"
    ))
    .bind(repository)
    .bind(check_run_id)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(row.map(validation_of))
}

pub async fn get(pool: &SqlitePool, id: i64) -> Result<Option<Validation>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM github_validations WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(row.map(validation_of))
}

pub async fn check_run_id(pool: &SqlitePool, id: i64) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT check_run_id FROM github_validations WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Validations a previous run of the server did not finish, oldest first; not those of
/// deliveries still to be worked on, which validate again when they are.
pub async fn unfinished(pool: &SqlitePool) -> Result<Vec<Validation>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM github_validations WHERE finished_at IS NULL
         AND delivery_id NOT IN (SELECT id FROM github_deliveries WHERE processed_at IS NULL)
         ORDER BY id"
    ))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(validation_of).collect())
}

/// Queues requests about a validation's check run; with `finish`, also marks the
/// validation finished, in the same transaction: a crash leaves both or neither.
pub async fn enqueue(
    pool: &SqlitePool,
    id: i64,
    entries: &[NewEntry],
    finish: bool,
    now: i64,
) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    insert_entries(&mut tx, entries, now).await?;
    if finish {
        sqlx::query("UPDATE github_validations SET finished_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}
