//! The state store: operations, their steps and logs, releases, instances and
//! configuration variables, kept in one SQLite database (`<data>/slipway.db`).
//!
//! `SqliteStore` implements the pipeline's `Store` trait. Every write is its own
//! committed transaction before the call returns, so a server killed at any moment
//! loses nothing that it had recorded (the pipeline saves each step before the next).
//! Later modules that keep their own tables (tokens, deliveries, ...) use `pool()`.
//!
//! **Invariant:** no error message of this module contains a variable's value.

mod activity;
mod error;
mod instances;
mod maintenance;
mod operations;
mod progress;
mod releases;
mod rows;
mod switch;
mod tokens;
mod trait_impl;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::pipeline::traits::{Clock, SystemClock};

pub use activity::{ActivityFilter, DurationHistogram, DURATION_BUCKETS};
pub use error::StoreError;
pub use tokens::{NewToken, TokenRecord};

/// The file name of the database inside the data directory.
pub const DATABASE_FILE: &str = "slipway.db";

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of a file database: SQLite runs one writer at a time anyway, and readers
/// (log followers, the dashboard) should not queue behind it; the machine is small.
const MAX_CONNECTIONS: u32 = 4;

/// The SQLite implementation of the pipeline's `Store`.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Stamps `created_at`, `started_at` and `finished_at`.
    clock: Arc<dyn Clock>,
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/slipway.db`, WAL mode, foreign keys on,
    /// busy timeout 5s, runs migrations.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = data_dir.join(DATABASE_FILE);
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(StoreError::NotADirectory {
                data_dir: data_dir.to_owned(),
                path,
            });
        }
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            data_dir: data_dir.to_owned(),
            source,
        })?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL rather than FULL: in WAL mode a committed transaction is in the WAL
            // file as soon as COMMIT returns, so it survives the process being killed
            // (SIGKILL, OOM, panic) — the failure this store must survive. FULL only adds
            // an fsync per commit, which protects the last commits against a power cut or
            // kernel crash; those kill every local instance too, and recovery reconciles
            // operations left running against the runtime anyway. An fsync per commit
            // would make each streamed log line cost a disk flush.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        Self::migrate(pool, &path).await
    }

    /// A private in-memory database (one connection), for tests.
    pub async fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let path = Path::new(":memory:");
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // One connection that never expires: an in-memory database lives only as long as
        // its connection, and a second connection would see a different database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        Self::migrate(pool, path).await
    }

    async fn migrate(pool: SqlitePool, path: &Path) -> Result<SqliteStore, StoreError> {
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.to_owned(),
                source,
            })?;
        Ok(SqliteStore {
            pool,
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses another clock for the timestamps the store sets (tests that check times).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqliteStore {
        self.clock = clock;
        self
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    /// A write transaction that takes the write lock at once. A deferred transaction
    /// that reads before it writes (next log seq, next release number) could fail with
    /// SQLITE_BUSY when two of them race, without waiting for the busy timeout; an
    /// immediate one waits its turn.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}
