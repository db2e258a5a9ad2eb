//! Where a restore writes. The engine creates directories before their
//! contents and sets a directory's metadata after its contents, so a
//! destination needs no lookahead.

use crate::tree::{EntryKind, Metadata};
use std::io::{self, Write};

/// A target tree. Paths are relative, `/`-separated; the engine validates
/// every name it passes, so no path holds `..` or an empty component.
pub trait Destination: Send + Sync {
    /// Human-readable location, for messages.
    fn location(&self) -> String;
    /// Creates a directory; an existing one is fine.
    fn create_dir(&self, path: &[u8]) -> io::Result<()>;
    /// Opens a file for writing its content from the start. Without
    /// `overwrite`, an existing file is an `AlreadyExists` error.
    fn create_file(&self, path: &[u8], overwrite: bool) -> io::Result<Box<dyn Write + Send>>;
    /// Makes a symlink to `target` (never followed). Without `overwrite`, an existing entry is
    /// an `AlreadyExists` error.
    fn symlink(&self, path: &[u8], target: &[u8], overwrite: bool) -> io::Result<()>;
    /// Applies mode, owner (where permitted), extended attributes and times.
    /// `Unsupported` means some of it could not be held (a time outside
    /// what the filesystem keeps): the engine counts it and goes on.
    fn set_metadata(&self, path: &[u8], kind: EntryKind, meta: &Metadata) -> io::Result<()>;
    /// How many files it takes at once, each written from a thread of its
    /// own: above one, a restore writes small files side by side (making
    /// files is bound by system calls or round trips, not by kast).
    fn writers(&self) -> usize {
        1
    }
    /// The entries of the folder at `path` (empty if there is none), so a
    /// restore can decide about what is in its way before writing; `None`
    /// when this destination cannot tell.
    fn existing(&self, _path: &[u8]) -> io::Result<Option<Vec<Existing>>> {
        Ok(None)
    }
    /// Whether [`Self::hard_link`] works here; where it does not, the engine
    /// writes each link as a copy of its own and says how many.
    fn can_hard_link(&self) -> bool {
        false
    }
    /// Makes `path` one more name of the file already restored at
    /// `existing`. With `overwrite`, an entry at `path` is replaced.
    fn hard_link(&self, _path: &[u8], _existing: &[u8], _overwrite: bool) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this destination cannot make hard links",
        ))
    }
}

/// An entry already at a destination, as much as deciding whether to
/// replace it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// The entry's name inside its folder.
    pub name: Vec<u8>,
    /// What it is: only `--overwrite always` puts a file where a folder is.
    pub kind: EntryKind,
    /// Its length, for `--overwrite if-changed`.
    pub size: u64,
    /// Its modification time, for `--overwrite if-changed` and `if-newer`.
    pub mtime_ns: i64,
}
