//! The store's errors: `StoreError` when the database cannot be opened (said to a
//! person starting the server), and `Fault`, the failure of one query, which the
//! `Store` methods turn into `EffectError::Store` with a sentence saying what failed.

use std::fmt;
use std::path::PathBuf;

use crate::pipeline::traits::EffectError;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open {}: {} is a file, not a directory; point --data at a directory",
        path.display(), data_dir.display()
    )]
    NotADirectory { data_dir: PathBuf, path: PathBuf },
    #[error("cannot create the data directory {}: {source}; check --data", data_dir.display())]
    CreateDir {
        data_dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot open {}: {source}; check that --data is a writable directory and that the file is a Slipway database",
        path.display()
    )]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "cannot bring the database {} up to date: {source}; if a newer Slipway wrote it, run that version or use another --data",
        path.display()
    )]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// The failure of one store call, before it is given its context.
#[derive(Debug)]
pub(crate) enum Fault {
    Database(sqlx::Error),
    /// A stored value that cannot be read back (a corrupt or foreign row), or a value
    /// that cannot be written. Never holds a variable's value.
    Data(String),
    /// The row the call changes does not exist.
    Missing(String),
}

impl From<sqlx::Error> for Fault {
    fn from(error: sqlx::Error) -> Self {
        Fault::Database(error)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // sqlx's database errors carry SQLite's message ("UNIQUE constraint failed:
            // variables.key"), which names columns, never bound values.
            Fault::Database(error) => write!(f, "{error}"),
            Fault::Data(text) | Fault::Missing(text) => f.write_str(text),
        }
    }
}

impl Fault {
    /// Gives the failure its context: `cannot read operation 4: <why>`.
    pub(crate) fn context(self, what: fmt::Arguments<'_>) -> EffectError {
        EffectError::Store(format!("{what}: {self}"))
    }
}

pub(crate) type FaultResult<T> = Result<T, Fault>;
