//! The engine's typed errors: callers (the CLI, the plugin host) match on the
//! variant to choose an exit code or a message, so every failure a user can
//! cause or meet has its own variant with the object it concerns.

use crate::storage::StorageError;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no store found at {0}")]
    NoStore(String),
    #[error("a store already exists at {0}")]
    StoreExists(String),
    #[error("wrong passphrase: none of this store's keys opens with it")]
    WrongPassphrase,
    #[error("this store uses format version {0}, which this kast does not know; upgrade kast")]
    UnsupportedVersion(u32),
    #[error("{what} is damaged: {why}")]
    Corrupt { what: String, why: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("source: {path}: {source}")]
    Source {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("destination: {path}: {source}")]
    Destination {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{location} already holds {count} of the entries being restored ({first}{more}); nothing was written",
        more = if *count > 5 { ", …" } else { "" }
    )]
    Conflicts {
        location: String,
        count: u64,
        first: String,
    },
    #[error(
        "'latest' of which? The snapshots are of more than one source ({0}): pick one with --source LOCATION (or --host NAME), or name a snapshot by its id"
    )]
    AmbiguousLatest(String),
    #[error("no snapshot matches '{0}'")]
    NoSuchSnapshot(String),
    #[error("'{0}' matches more than one snapshot; give more characters of the id")]
    AmbiguousSnapshot(String),
    #[error("no path '{path}' in snapshot {snapshot}")]
    NoSuchPath { snapshot: String, path: String },
    #[error("the store is locked: {0}")]
    Locked(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("local cache at {path}: {source}")]
    Cache {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the operation was interrupted")]
    Interrupted,
}

impl Error {
    /// Shorthand for damage found while decoding or verifying an object.
    pub fn corrupt(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            why: why.into(),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
