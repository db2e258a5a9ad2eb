//! Where a restore writes. The engine creates directories before their
//! contents and sets a directory's metadata after its contents, so a
//! destination needs no lookahead.

use crate::tree::{EntryKind, Metadata};
use std::io::{self, Write};

/// A target tree. Paths are relative, `/`-separated; the engine validates
/// every name it passes, so no path holds `..` or an empty component.
pub trait Destination: Send + Sync {
    fn location(&self) -> String;
    /// Creates a directory; an existing one is fine.
    fn create_dir(&self, path: &[u8]) -> io::Result<()>;
    /// Opens a file for writing its content from the start. Without
    /// `overwrite`, an existing file is an `AlreadyExists` error.
    fn create_file(&self, path: &[u8], overwrite: bool) -> io::Result<Box<dyn Write + Send>>;
    fn symlink(&self, path: &[u8], target: &[u8], overwrite: bool) -> io::Result<()>;
    /// Applies mode, owner (where permitted), extended attributes and times.
    fn set_metadata(&self, path: &[u8], kind: EntryKind, meta: &Metadata) -> io::Result<()>;
}
