//! Native in-memory source and destination: a tree as a map from path to
//! entry, for tests that compare what went in with what came out.

use crate::destination::{Destination, Existing};
use crate::source::{Source, SourceEntry};
use crate::tree::{EntryKind, Metadata};
use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, Mutex};

/// One entry of a [`MemoryTree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryEntry {
    /// What the entry is.
    pub kind: EntryKind,
    /// Its metadata, as a source reports it and a restore sets it.
    pub meta: Metadata,
    /// File content, or a symlink's target.
    pub data: Vec<u8>,
}

/// Paths (relative, `/`-separated) to entries; the root is implicit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTree {
    /// Every entry by path, sorted, so listings come out in a fixed order.
    pub entries: BTreeMap<Vec<u8>, MemoryEntry>,
}

fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

fn name_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

impl Source for MemoryTree {
    fn location(&self) -> String {
        "memory:".into()
    }

    fn list(&self, path: &[u8]) -> io::Result<Vec<SourceEntry>> {
        if !path.is_empty()
            && self
                .entries
                .get(path)
                .is_none_or(|e| e.kind != EntryKind::Dir)
        {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        Ok(self
            .entries
            .iter()
            .filter(|(p, _)| parent_of(p) == path)
            .map(|(p, e)| SourceEntry {
                name: name_of(p).to_vec(),
                kind: e.kind,
                meta: e.meta.clone(),
                symlink_target: (e.kind == EntryKind::Symlink).then(|| e.data.clone()),
                mount: None,
            })
            .collect())
    }

    fn open(&self, path: &[u8]) -> io::Result<Box<dyn Read + Send>> {
        match self.entries.get(path) {
            Some(e) if e.kind == EntryKind::File => Ok(Box::new(Cursor::new(e.data.clone()))),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        }
    }
}

/// A destination that fills a [`MemoryTree`].
#[derive(Clone, Default)]
pub struct MemoryDestination {
    tree: Arc<Mutex<MemoryTree>>,
}

impl MemoryDestination {
    /// An empty destination.
    pub fn new() -> Self {
        Self::default()
    }

    /// What has been restored so far.
    pub fn tree(&self) -> MemoryTree {
        self.tree.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut MemoryTree) -> T) -> T {
        f(&mut self.tree.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct MemoryFile {
    dest: MemoryDestination,
    path: Vec<u8>,
    buf: Vec<u8>,
}

impl Write for MemoryFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        let data = self.buf.clone();
        self.dest.with(|t| {
            if let Some(e) = t.entries.get_mut(&self.path) {
                e.data = data;
            }
        });
        Ok(())
    }
}

impl Drop for MemoryFile {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl Destination for MemoryDestination {
    fn location(&self) -> String {
        "memory:".into()
    }

    fn create_dir(&self, path: &[u8]) -> io::Result<()> {
        if path.is_empty() {
            return Ok(());
        }
        self.with(|t| {
            t.entries.entry(path.to_vec()).or_insert(MemoryEntry {
                kind: EntryKind::Dir,
                meta: Metadata::default(),
                data: Vec::new(),
            });
        });
        Ok(())
    }

    fn create_file(&self, path: &[u8], overwrite: bool) -> io::Result<Box<dyn Write + Send>> {
        self.with(|t| {
            if !overwrite && t.entries.contains_key(path) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
            }
            t.entries.insert(
                path.to_vec(),
                MemoryEntry {
                    kind: EntryKind::File,
                    meta: Metadata::default(),
                    data: Vec::new(),
                },
            );
            Ok(())
        })?;
        Ok(Box::new(MemoryFile {
            dest: self.clone(),
            path: path.to_vec(),
            buf: Vec::new(),
        }))
    }

    fn symlink(&self, path: &[u8], target: &[u8], overwrite: bool) -> io::Result<()> {
        self.with(|t| {
            if !overwrite && t.entries.contains_key(path) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
            }
            t.entries.insert(
                path.to_vec(),
                MemoryEntry {
                    kind: EntryKind::Symlink,
                    meta: Metadata::default(),
                    data: target.to_vec(),
                },
            );
            Ok(())
        })
    }

    /// Files are independent, so several threads may write them.
    fn writers(&self) -> usize {
        4
    }

    fn existing(&self, path: &[u8]) -> io::Result<Option<Vec<Existing>>> {
        Ok(Some(self.with(|t| {
            t.entries
                .iter()
                .filter_map(|(p, e)| {
                    let name = match p.iter().rposition(|&b| b == b'/') {
                        Some(at) if p[..at] == *path => &p[at + 1..],
                        None if path.is_empty() => p.as_slice(),
                        _ => return None,
                    };
                    Some(Existing {
                        name: name.to_vec(),
                        kind: e.kind,
                        size: e.data.len() as u64,
                        mtime_ns: e.meta.mtime_ns,
                    })
                })
                .collect()
        })))
    }

    fn set_metadata(&self, path: &[u8], _kind: EntryKind, meta: &Metadata) -> io::Result<()> {
        self.with(|t| {
            if path.is_empty() {
                return Ok(());
            }
            match t.entries.get_mut(path) {
                Some(e) => {
                    e.meta = meta.clone();
                    Ok(())
                }
                None => Err(io::Error::new(io::ErrorKind::NotFound, "no such entry")),
            }
        })
    }
}
