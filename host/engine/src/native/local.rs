//! Native connectors for a local directory: the engine's own source and
//! destination, used by tests and by the benchmark that prices the WASM
//! plugin boundary.

use crate::destination::{Destination, Existing};
use crate::source::{Source, SourceEntry};
use crate::tree::{EntryKind, Metadata};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Reads a directory tree (or a single file, presented as a directory
/// holding just that file).
pub struct LocalSource {
    root: PathBuf,
    single_file: bool,
}

impl LocalSource {
    /// Reads the tree at `root`; fails at once if `root` does not exist.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        let meta = fs::metadata(&root)?;
        Ok(Self {
            single_file: !meta.is_dir(),
            root,
        })
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        if self.single_file || rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }

    fn entry(path: &Path, name: Vec<u8>) -> io::Result<SourceEntry> {
        let meta = fs::symlink_metadata(path)?;
        let kind = EntryKind::of_mode(meta.mode());
        let symlink_target = if kind == EntryKind::Symlink {
            Some(fs::read_link(path)?.into_os_string().into_encoded_bytes())
        } else {
            None
        };
        Ok(SourceEntry {
            name,
            kind,
            meta: metadata_of(path, &meta, kind),
            symlink_target,
            mount: None,
        })
    }
}

fn metadata_of(path: &Path, meta: &fs::Metadata, kind: EntryKind) -> Metadata {
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = match xattr::list(path) {
        Ok(names) => names
            .filter_map(|n| {
                let value = xattr::get(path, &n).ok().flatten()?;
                Some((n.into_encoded_bytes(), value))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    xattrs.sort();
    Metadata {
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        inode: meta.ino(),
        size: if kind == EntryKind::File {
            meta.len()
        } else {
            0
        },
        xattrs,
        links: if kind == EntryKind::File {
            meta.nlink()
        } else {
            0
        },
        device: if kind == EntryKind::File && meta.nlink() > 1 {
            meta.dev()
        } else {
            0
        },
    }
}

impl Source for LocalSource {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self, rel: &[u8]) -> io::Result<Vec<SourceEntry>> {
        if self.single_file {
            let name = self
                .root
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_else(|| b"file".to_vec());
            return if rel.is_empty() {
                Ok(vec![Self::entry(&self.root, name)?])
            } else {
                Err(io::Error::new(io::ErrorKind::NotFound, "not a directory"))
            };
        }
        let dir = self.path(rel);
        let device = fs::metadata(&dir)?.dev();
        let mut out = Vec::new();
        for item in fs::read_dir(&dir)? {
            let item = item?;
            let name = item.file_name().into_encoded_bytes();
            // An entry that vanished between listing and stat is skipped: it
            // is no longer part of the tree.
            match Self::entry(&item.path(), name) {
                Ok(mut entry) => {
                    if entry.kind == EntryKind::Dir
                        && let Ok(sub) = fs::symlink_metadata(item.path())
                        && sub.dev() != device
                    {
                        entry.mount = Some(crate::mounts::mount_of(sub.dev()));
                    }
                    out.push(entry)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn open(&self, rel: &[u8]) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self.path(rel))?))
    }
}

/// Writes into a directory (created if missing).
pub struct LocalDestination {
    root: PathBuf,
    /// Only root can give files away; others keep their own uid/gid.
    set_owner: bool,
}

impl LocalDestination {
    /// Writes below `root` (made if missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(Self {
            root,
            // SAFETY: geteuid has no preconditions and cannot fail.
            set_owner: unsafe { libc::geteuid() } == 0,
        })
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }
}

impl Destination for LocalDestination {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create_dir(&self, rel: &[u8]) -> io::Result<()> {
        match fs::create_dir(self.path(rel)) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && self.path(rel).is_dir() => Ok(()),
            other => other,
        }
    }

    fn create_file(&self, rel: &[u8], overwrite: bool) -> io::Result<Box<dyn Write + Send>> {
        let path = self.path(rel);
        if overwrite && fs::symlink_metadata(&path).is_ok() {
            // Replaced, never written through: a symlink must not redirect
            // the write, and a file's other hard links keep their content.
            remove_any(&path)?;
        }
        let mut options = OpenOptions::new();
        options.write(true).mode(0o600).create_new(true);
        Ok(Box::new(io::BufWriter::with_capacity(
            1 << 20,
            options.open(path)?,
        )))
    }

    fn symlink(&self, rel: &[u8], target: &[u8], overwrite: bool) -> io::Result<()> {
        let path = self.path(rel);
        if overwrite && fs::symlink_metadata(&path).is_ok() {
            remove_any(&path)?;
        }
        std::os::unix::fs::symlink(OsStr::from_bytes(target), path)
    }

    fn existing(&self, rel: &[u8]) -> io::Result<Option<Vec<Existing>>> {
        let entries = match fs::read_dir(self.path(rel)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            found.push(Existing {
                name: entry.file_name().into_vec(),
                kind: EntryKind::of_mode(meta.mode()),
                size: meta.len(),
                mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            });
        }
        Ok(Some(found))
    }

    /// Files are independent, so several threads may write them.
    fn writers(&self) -> usize {
        4
    }

    fn can_hard_link(&self) -> bool {
        true
    }

    fn hard_link(&self, rel: &[u8], existing: &[u8], overwrite: bool) -> io::Result<()> {
        let path = self.path(rel);
        if overwrite && fs::symlink_metadata(&path).is_ok() {
            remove_any(&path)?;
        }
        fs::hard_link(self.path(existing), path)
    }

    fn set_metadata(&self, rel: &[u8], kind: EntryKind, meta: &Metadata) -> io::Result<()> {
        let path = self.path(rel);
        if self.set_owner {
            std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid))?;
        }
        for (name, value) in &meta.xattrs {
            // Best effort: the target filesystem may not take every namespace.
            let _ = xattr::set(&path, OsStr::from_bytes(name), value);
        }
        if kind != EntryKind::Symlink {
            fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode & 0o7777))?;
        }
        let mtime = filetime::FileTime::from_unix_time(
            meta.mtime_ns.div_euclid(1_000_000_000),
            meta.mtime_ns.rem_euclid(1_000_000_000) as u32,
        );
        filetime::set_symlink_file_times(&path, mtime, mtime)
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}
