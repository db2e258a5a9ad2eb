//! Where a store's objects live. The engine sees storage as a flat set of
//! named, opaque, immutable blobs per [`ObjectKind`]; it never asks a backend
//! to understand what it keeps, so any connector (a local directory, SFTP, S3,
//! a WASM plugin) can serve a store.

mod local;
mod memory;

pub use local::LocalStorage;
pub use memory::MemoryStorage;

use std::fmt;

/// The kinds of object a store holds; each is a separate namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// The single plaintext object describing the store (`config`).
    Config,
    /// A master key wrapped by one passphrase.
    Key,
    /// Encrypted blobs plus an encrypted footer listing them.
    Pack,
    /// An index delta: the blobs and packs one backup added.
    State,
    /// An encrypted snapshot header.
    Snapshot,
    /// A lock: who holds the store and how.
    Lock,
}

impl ObjectKind {
    /// Every kind, in the order `check` and listings visit them.
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::Config,
        ObjectKind::Key,
        ObjectKind::Pack,
        ObjectKind::State,
        ObjectKind::Snapshot,
        ObjectKind::Lock,
    ];

    /// The directory (or key prefix) a backend files the kind under.
    pub fn dir_name(self) -> &'static str {
        match self {
            ObjectKind::Config => "config",
            ObjectKind::Key => "keys",
            ObjectKind::Pack => "packs",
            ObjectKind::State => "states",
            ObjectKind::Snapshot => "snapshots",
            ObjectKind::Lock => "locks",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ObjectKind::Config => "config",
            ObjectKind::Key => "key",
            ObjectKind::Pack => "pack",
            ObjectKind::State => "state",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Lock => "lock",
        };
        f.write_str(name)
    }
}

/// One object as a listing reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name.
    pub name: String,
    /// Its size in bytes, for `info` and maintenance without reading it.
    pub size: u64,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{kind} {name} not found")]
    /// The object is not there; the engine tells this apart from a failure
    /// (a missing lock or cache entry is normal).
    NotFound {
        /// What kind of object was asked for.
        kind: ObjectKind,
        /// Its name.
        name: String,
    },
    #[error("storage {op} of {kind} {name}: {source}")]
    /// A native backend's system call failed.
    Io {
        /// The operation: `put`, `get`, `list`, `delete`.
        op: &'static str,
        /// The kind of object it concerned.
        kind: ObjectKind,
        /// The object's name.
        name: String,
        /// What the system reported.
        #[source]
        source: std::io::Error,
    },
    /// Any other failure of the backend (a connector's typed error inside).
    #[error("{0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// The contract every store backend fulfils.
///
/// Names are lowercase hex (or the fixed `config`), safe as file names and
/// object keys. `put` must be atomic (a reader sees the whole object or none)
/// and durable when it returns: the engine writes a state or snapshot only
/// after the packs it names were put.
pub trait Storage: Send + Sync {
    /// Human-readable location, for messages.
    fn location(&self) -> String;
    /// Stores `data` under `name`, atomically and durably; the engine never puts a name twice
    /// with other bytes.
    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<(), StorageError>;
    /// Stores the `size` bytes `body` reads, as [`Storage::put`] does:
    /// packs come this way, from a temporary file or from their frames in
    /// memory, so a backend that sends an object piece by piece never
    /// holds all of it. The default reads it whole and puts.
    fn put_from(
        &self,
        kind: ObjectKind,
        name: &str,
        size: u64,
        body: &mut dyn std::io::Read,
    ) -> Result<(), StorageError> {
        let mut joined = Vec::with_capacity(size as usize);
        body.read_to_end(&mut joined)
            .map_err(|source| StorageError::Io {
                op: "put",
                kind,
                name: name.to_string(),
                source,
            })?;
        if joined.len() as u64 != size {
            return Err(StorageError::Io {
                op: "put",
                kind,
                name: name.to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{} bytes to put, {size} announced", joined.len()),
                ),
            });
        }
        self.put(kind, name, &joined)
    }
    /// The whole object, or `NotFound`.
    fn get(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, StorageError>;
    /// `length` bytes from `offset`; fewer only if the object is shorter.
    fn get_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, StorageError>;
    /// Every object of `kind`, in no particular order.
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StorageError>;
    /// Deleting a missing object is not an error.
    fn delete(&self, kind: ObjectKind, name: &str) -> Result<(), StorageError>;
    /// How many calls are worth running at once: 1 for a local disk, more
    /// for a network store where each call waits on round trips. Backups
    /// run this many puts at once; restores and
    /// checks at least this many reads.
    fn parallel_requests(&self) -> usize {
        1
    }
}

impl<T: Storage + ?Sized> Storage for std::sync::Arc<T> {
    fn location(&self) -> String {
        (**self).location()
    }
    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<(), StorageError> {
        (**self).put(kind, name, data)
    }
    fn put_from(
        &self,
        kind: ObjectKind,
        name: &str,
        size: u64,
        body: &mut dyn std::io::Read,
    ) -> Result<(), StorageError> {
        (**self).put_from(kind, name, size, body)
    }
    fn get(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, StorageError> {
        (**self).get(kind, name)
    }
    fn get_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, StorageError> {
        (**self).get_range(kind, name, offset, length)
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StorageError> {
        (**self).list(kind)
    }
    fn delete(&self, kind: ObjectKind, name: &str) -> Result<(), StorageError> {
        (**self).delete(kind, name)
    }
    fn parallel_requests(&self) -> usize {
        (**self).parallel_requests()
    }
}

/// True when `name` is safe to use as a file name or object key.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}
