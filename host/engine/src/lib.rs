//! # kast-engine
//!
//! The store engine of kast: everything that turns a tree of files into an
//! encrypted, deduplicated, verifiable store and back, and nothing that
//! parses a command line or runs a plugin. Data flows one way:
//!
//! ```text
//! backup:  Source → chunk (FastCDC) → id (keyed BLAKE3) → dedup (Index)
//!          → compress (zstd or LZ4; small chunks together) → seal (XChaCha20-Poly1305) → Pack → Storage
//! restore: Storage → Pack → open → decompress → verify → Destination
//! ```
//!
//! The three traits [`Storage`], [`Source`] and [`Destination`] are the only
//! doors in and out; native implementations for a local directory and for
//! memory live here, the WASM plugins implement the same traits elsewhere.
//! The store format is described byte by byte in `docs/store-format.md`.

pub mod activity;
pub mod blob;
pub mod blob_cache;
pub mod browse;
pub mod check;
pub mod chunker;
mod codec;
pub mod compression;
pub mod config;
mod conflicts;
pub mod crypto;
pub mod destination;
mod error;
pub mod find;
mod header_cache;
pub mod index;
pub mod keys;
mod lock;
pub mod maintenance;
pub mod mounts;
pub mod native;
mod pack;
mod pipeline;
mod pool;
pub mod progress;
pub mod retention;
pub mod snapshot;
pub mod source;
mod spill;
pub mod storage;
mod store;
pub mod stream;
pub mod sync;
pub mod time;
pub mod tree;

mod backup;
mod restore;

pub use backup::{BackupOptions, BackupOutcome, Exclude, backup};
pub use compression::Compression;
pub use conflicts::Overwrite;
pub use destination::Destination;
pub use error::{Error, Result};
pub use progress::Progress;
pub use restore::{Loss, LossKind, RestoreOptions, RestoreOutcome, restore};
pub use source::Source;
pub use storage::Storage;
pub use store::{CreateOptions, Store};

/// This machine's name, recorded in snapshots and locks.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The user running kast, recorded in snapshots and keys.
pub fn user_name() -> String {
    if let Some(name) = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|n| !n.is_empty())
    {
        return name;
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    account_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The account name of `uid` from the system's user database (services
/// and containers often run without `USER`).
fn account_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: a zeroed passwd is a valid out-parameter.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the sizes given; getpwuid_r writes
    // the strings into `buf`, which outlives their use below.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points to a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}
