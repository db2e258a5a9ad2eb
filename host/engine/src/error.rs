//! The engine's typed errors: callers (the CLI, the plugin host) match on the
//! variant to choose an exit code or a message, so every failure a user can
//! cause or meet has its own variant with the object it concerns.

use crate::storage::StorageError;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location holds no store config: a mistyped location, or a store
    /// not yet made with `create` (the location is carried).
    #[error("no store found at {0}")]
    NoStore(String),
    /// `create` refuses to overwrite a store, which would lose its keys.
    #[error("a store already exists at {0}")]
    StoreExists(String),
    /// No key of the store unwraps with the passphrase given; told apart
    /// from damage so the CLI can ask again instead of alarming.
    #[error("wrong passphrase: none of this store's keys opens with it")]
    WrongPassphrase,
    #[error("this store uses format version {0}, which this kast does not know; upgrade kast")]
    /// A newer kast made the store; reading it with this one could misread it.
    UnsupportedVersion(u32),
    #[error("{what} is damaged: {why}")]
    /// An object failed its authentication or decoding: the store was
    /// changed outside kast, or a storage returned other bytes.
    Corrupt {
        /// The object, named as `check` reports it.
        what: String,
        /// What was wrong with it.
        why: String,
    },
    #[error(transparent)]
    /// The storage backend failed (unreachable, refused, not found).
    Storage(#[from] StorageError),
    #[error("source: {path}: {source}")]
    /// Reading the source failed at one entry; kept apart from storage
    /// failures because a backup records it and goes on.
    Source {
        /// The entry's path in the source.
        path: String,
        /// What the source reported.
        #[source]
        source: std::io::Error,
    },
    #[error("destination: {path}: {source}")]
    /// Writing a restored entry failed.
    Destination {
        /// The entry's path in the destination.
        path: String,
        /// What the destination reported.
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{location} already holds {count} of the entries being restored ({first}{more}); nothing was written",
        more = if *count > 5 { ", …" } else { "" }
    )]
    /// A restore found entries already at its target and was told not to
    /// touch them; checked before writing anything.
    Conflicts {
        /// The destination, as given.
        location: String,
        /// How many entries collide.
        count: u64,
        /// The first few colliding paths, to show.
        first: String,
    },
    #[error(
        "'latest' of which? The snapshots are of more than one source ({0}): pick one with --source LOCATION (or --host NAME), or name a snapshot by its id"
    )]
    /// `latest` was asked of a store holding several sources' snapshots;
    /// carries the sources found.
    AmbiguousLatest(String),
    #[error("no snapshot matches '{0}'")]
    /// No snapshot id starts with the prefix given.
    NoSuchSnapshot(String),
    #[error("'{0}' matches more than one snapshot; give more characters of the id")]
    /// The id prefix given names more than one snapshot.
    AmbiguousSnapshot(String),
    #[error("no path '{path}' in snapshot {snapshot}")]
    /// The path asked for is not in the snapshot.
    NoSuchPath {
        /// The snapshot's short id.
        snapshot: String,
        /// The path as given.
        path: String,
    },
    #[error("the store is locked: {0}")]
    /// Another process holds a lock that excludes this operation; carries
    /// who holds it, so the user can tell a stale lock from a live one.
    Locked(String),
    #[error("invalid argument: {0}")]
    /// A caller's input the engine cannot act on (a bad pattern, option).
    InvalidArgument(String),
    #[error("local cache at {path}: {source}")]
    /// The local cache could not be read or written; the store itself is
    /// untouched.
    Cache {
        /// The cache file.
        path: String,
        /// What the filesystem reported.
        #[source]
        source: std::io::Error,
    },
    /// The store was opened with a put-only key, which adds backups and
    /// does nothing else (docs/store-format.md, "Put-only keys").
    #[error(
        "this key is put-only: it can add backups, not {0}; use a full key (one made by `kast create` or `kast key add`)"
    )]
    PutOnly(String),
    /// The user asked to stop (Ctrl-C); what was written is consistent.
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
