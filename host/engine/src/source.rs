//! What a backup reads from. The engine drives the walk (it asks for one
//! directory listing at a time, in batches, and opens files as streams), so
//! any connector that can list and read can be backed up.

use crate::tree::{EntryKind, Metadata};
use std::io::{self, Read};

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// The entry's name inside its folder (raw bytes).
    pub name: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Its metadata, as the source reports it.
    pub meta: Metadata,
    /// For symlinks: where the link points.
    pub symlink_target: Option<Vec<u8>>,
    /// For a directory on another filesystem than its parent's: which one.
    pub mount: Option<Mount>,
}

/// A directory where another filesystem is mounted, as a source reports it,
/// so a backup can stay on one filesystem or leave pseudo filesystems out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The filesystem's type as the system names it (`ext4`, `proc`), or
    /// empty when unknown.
    pub fs_type: String,
}

/// Filesystems that hold no files of the user's, only views of the running
/// system: a backup of `/` leaves them out unless they are named.
const PSEUDO_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sysfs",
    "tracefs",
];

impl Mount {
    /// True for the kernel's views of itself (`/proc`, `/sys`, `/dev`…).
    pub fn is_pseudo(&self) -> bool {
        PSEUDO_FILESYSTEMS.contains(&self.fs_type.as_str())
    }
}

/// The size a source gives a file whose length is known only once it is
/// read (a stream: standard input, a command's output). A backup records
/// what it read, and says nothing of "changed while being read".
pub const UNKNOWN_SIZE: u64 = u64::MAX;

/// A tree to back up. Paths are relative to the source's root, components
/// joined by `/`; the empty path is the root itself.
pub trait Source: Send + Sync {
    /// Where the data comes from, recorded in the snapshot.
    fn location(&self) -> String;
    /// The entries of the directory at `path`, in any order.
    fn list(&self, path: &[u8]) -> io::Result<Vec<SourceEntry>>;
    /// The content of the file at `path`.
    fn open(&self, path: &[u8]) -> io::Result<Box<dyn Read + Send>>;
    /// A hint: these files (path, size) will be opened soon, in this order.
    /// A source on a disk can start reading them now, so a backup of many
    /// small files does not wait on the disk for each.
    fn will_read(&self, _files: &[(Vec<u8>, u64)]) {}
    /// A hint: these directories will be listed soon, in this order (before
    /// any asked for earlier). A source on a disk can list them ahead, on
    /// other cores.
    fn will_list(&self, _dirs: &[Vec<u8>]) {}
}

/// `parent/name`, or `name` at the root.
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
        p.extend_from_slice(parent);
        p.push(b'/');
        p.extend_from_slice(name);
        p
    }
}
