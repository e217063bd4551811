//! [`JournalError`]: why the journal could not be opened, naming the database path.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// Why [`Journal::open`](super::Journal::open) failed. Every variant names the database path.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The parent directory could not be created.
    #[error("journal {}: cannot create directory {}: {source}", path.display(), dir.display())]
    CreateDir {
        /// Database path.
        path: PathBuf,
        /// Directory that could not be created.
        dir: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file could not be created private (mode 0600), or narrowed to that mode.
    #[error("journal {}: cannot make the file private (mode 0600): {source}", path.display())]
    Private {
        /// Database path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file exists but is not an SQLite database, or is corrupt.
    #[error(
        "journal {}: the file is not an SQLite database or is corrupt ({source}); \
         move it away or point shoal at another path",
        path.display()
    )]
    NotADatabase {
        /// Database path.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The database is SQLite but holds tables of something else than a shoal journal.
    #[error(
        "journal {}: an SQLite database that is not a shoal journal \
         (schema version {version}, {tables} table(s)); point shoal at another path",
        path.display()
    )]
    Foreign {
        /// Database path.
        path: PathBuf,
        /// `PRAGMA user_version` found.
        version: i64,
        /// Tables found.
        tables: i64,
    },
    /// The database was written by a newer shoal.
    #[error(
        "journal {}: schema version {found} is newer than version {supported} that this \
         shoal knows; upgrade shoal or point it at another path",
        path.display()
    )]
    NewerSchema {
        /// Database path.
        path: PathBuf,
        /// Version found.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// Any other SQLite error (permissions, disk full, locked for longer than the timeout).
    #[error("journal {}: {source}", path.display())]
    Sqlite {
        /// Database path.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
}

impl JournalError {
    pub(super) fn from_sqlite(path: &Path, source: rusqlite::Error) -> Self {
        let path = path.to_owned();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Self::NotADatabase { path, source }
            }
            _ => Self::Sqlite { path, source },
        }
    }
}
