//! Reading a store without changing it: list and pick snapshots, resolve a
//! path inside one, read a file, and diff two snapshots.

use crate::blob::BlobKind;
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::header_cache::HeaderCache;
use crate::index::Index;
use crate::snapshot::Snapshot;
use crate::source::join;
use crate::storage::ObjectKind;
use crate::store::Store;
use crate::tree::{Content, Node, Tree};
use std::io::Write;

/// Every readable snapshot, oldest first, and the ones that could not be read.
#[derive(Debug, Default)]
pub struct SnapshotList {
    /// Readable snapshots with their ids.
    pub snapshots: Vec<(Id, Snapshot)>,
    /// Snapshot objects that failed to open (name, why): listed, not hidden.
    pub damaged: Vec<(String, Error)>,
}

/// Reads every snapshot header, each fetched once per machine: kept
/// sealed in the local cache, and checked against its name on every use.
pub fn snapshots(store: &Store) -> Result<SnapshotList> {
    list_snapshots(store, true)
}

/// [`snapshots`], every header fetched from the store itself: for
/// `check`, which vouches for what the store holds, not for this machine.
pub fn snapshots_in_store(store: &Store) -> Result<SnapshotList> {
    list_snapshots(store, false)
}

fn list_snapshots(store: &Store, use_kept: bool) -> Result<SnapshotList> {
    store.require_full("read snapshot headers")?;
    let mut list = SnapshotList::default();
    let mut kept = store
        .cache_dir()
        .filter(|_| use_kept)
        .map(|d| HeaderCache::load(d.join("headers")));
    let mut listed = std::collections::HashSet::new();
    for object in store.storage().list(ObjectKind::Snapshot)? {
        let read = Id::from_hex(&object.name)
            .ok_or_else(|| Error::corrupt(format!("snapshot {}", object.name), "bad name"))
            .and_then(|id| {
                listed.insert(id);
                read_header(store, kept.as_mut(), &id).map(|s| (id, s))
            });
        match read {
            Ok(pair) => list.snapshots.push(pair),
            Err(e) => list.damaged.push((object.name, e)),
        }
    }
    if let Some(kept) = &mut kept {
        kept.keep_only(&listed);
        // Only slower next time if it cannot be written.
        let _ = kept.save();
    }
    list.snapshots
        .sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
    Ok(list)
}

/// One header, from this machine's kept copy when it has one that opens,
/// else from the store (and kept).
fn read_header(store: &Store, kept: Option<&mut HeaderCache>, id: &Id) -> Result<Snapshot> {
    let Some(kept) = kept else {
        return store.read_snapshot(id);
    };
    if let Some(sealed) = kept.get(id) {
        match Snapshot::open(store.keys(), id, sealed) {
            Ok(snapshot) => return Ok(snapshot),
            Err(_) => kept.remove(id),
        }
    }
    let sealed = store.storage().get(ObjectKind::Snapshot, &id.to_hex())?;
    let snapshot = Snapshot::open(store.keys(), id, &sealed)?;
    kept.insert(*id, sealed);
    Ok(snapshot)
}

/// Which snapshots a command means.
#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    /// Every tag listed must be on the snapshot.
    pub tags: Vec<String>,
    /// Only snapshots of this source location.
    pub source: Option<String>,
    /// Only snapshots taken on this host.
    pub host: Option<String>,
    /// Taken strictly before this time (ns since the epoch).
    pub before_ns: Option<i64>,
    /// Taken at or after this time.
    pub after_ns: Option<i64>,
}

impl SnapshotFilter {
    /// Whether `s` passes every condition set.
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.tags.iter().all(|t| s.tags.contains(t))
            && self.source.as_ref().is_none_or(|src| *src == s.source)
            && self.host.as_ref().is_none_or(|h| *h == s.host)
            && self.before_ns.is_none_or(|t| s.time_ns < t)
            && self.after_ns.is_none_or(|t| s.time_ns >= t)
    }
}

/// The newest snapshot of `source` taken on `host`: a backup's parent.
/// Only a full key's snapshots count: this is the parent a full key's
/// backup trusts, and a put-only key's header only claims its source.
pub fn latest_of(store: &Store, source: &str, host: &str) -> Result<Option<(Id, Snapshot)>> {
    let filter = SnapshotFilter {
        source: Some(source.to_string()),
        host: Some(host.to_string()),
        ..Default::default()
    };
    Ok(snapshots(store)?
        .snapshots
        .into_iter()
        .rev()
        .find(|(_, s)| filter.matches(s) && s.writer.is_none()))
}

/// Finds one snapshot by `latest`, `latest~N` (N before it) or a unique
/// id prefix, among those the filter admits. `latest` among snapshots of
/// several sources is refused: it would be whichever source ran last.
pub fn find(store: &Store, spec: &str, filter: &SnapshotFilter) -> Result<(Id, Snapshot)> {
    find_in(snapshots(store)?.snapshots, spec, filter)
}

/// [`find`] among snapshots already listed (oldest first).
pub fn find_in(
    all: Vec<(Id, Snapshot)>,
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<(Id, Snapshot)> {
    let matching = all.into_iter().filter(|(_, s)| filter.matches(s));
    // `latest~N`: N snapshots before the latest, as git counts commits.
    let back = match spec.strip_prefix("latest") {
        Some("") => Some(0),
        Some(n) => n.strip_prefix('~').and_then(|n| n.parse::<usize>().ok()),
        None => None,
    };
    if let Some(back) = back {
        let matching: Vec<_> = matching.collect();
        // The newest of several sources would be whichever ran last: a
        // different folder from one day to the next. Refused, and named.
        // So is the newest of several writers of one source: a put-only
        // key's header only claims its source and host.
        let mut sources: Vec<(&str, &str, Option<&str>)> = matching
            .iter()
            .map(|(_, s)| (s.source.as_str(), s.host.as_str(), s.writer.as_deref()))
            .collect();
        sources.sort_unstable();
        sources.dedup();
        if sources.len() > 1 {
            return Err(Error::AmbiguousLatest(
                sources
                    .iter()
                    .map(|(source, host, writer)| match writer {
                        None => format!("{source} on {host}"),
                        Some(key) => format!("{source} on {host} by put-only key {key}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        return matching
            .into_iter()
            .nth_back(back)
            .ok_or_else(|| Error::NoSuchSnapshot(spec.to_string()));
    }
    let spec_lower = spec.to_ascii_lowercase();
    let found: Vec<_> = matching
        .filter(|(id, _)| id.to_hex().starts_with(&spec_lower))
        .collect();
    match found.len() {
        0 => Err(Error::NoSuchSnapshot(spec.to_string())),
        1 => Ok(found.into_iter().next().expect("one")),
        _ => Err(Error::AmbiguousSnapshot(spec.to_string())),
    }
}

/// What a path inside a snapshot names.
#[derive(Clone, Debug)]
pub enum Resolved {
    /// The snapshot's root directory.
    Root(Tree),
    /// Any entry below the root.
    Node(Node),
}

/// Follows `path` (`/`-separated, leading and trailing `/` ignored) from
/// the root tree of snapshot `id`.
pub fn resolve_path(
    store: &Store,
    index: &Index,
    (id, snapshot): (&Id, &Snapshot),
    path: &[u8],
) -> Result<Resolved> {
    let mut tree = store.read_tree(index, &snapshot.root)?;
    let mut parts = path
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .peekable();
    if parts.peek().is_none() {
        return Ok(Resolved::Root(tree));
    }
    let missing = || Error::NoSuchPath {
        snapshot: id.short(),
        path: String::from_utf8_lossy(path).into_owned(),
    };
    while let Some(part) = parts.next() {
        let node = tree.find(part).ok_or_else(missing)?.clone();
        if parts.peek().is_none() {
            return Ok(Resolved::Node(node));
        }
        match node.content {
            Content::Dir { tree: id } => tree = store.read_tree(index, &id)?,
            _ => return Err(missing()),
        }
    }
    Err(missing())
}

/// The entries of a directory, or the one node a non-directory path names.
pub fn list(
    store: &Store,
    index: &Index,
    snapshot: (&Id, &Snapshot),
    path: &[u8],
) -> Result<Vec<Node>> {
    match resolve_path(store, index, snapshot, path)? {
        Resolved::Root(tree) => Ok(tree.nodes),
        Resolved::Node(node) => match &node.content {
            Content::Dir { tree } => Ok(store.read_tree(index, tree)?.nodes),
            _ => Ok(vec![node]),
        },
    }
}

/// A file of a snapshot, read one chunk at a time (each checked and
/// decrypted when the previous one is used up), so no reader ever holds a
/// whole file. It yields exactly the recorded size, or an error: a tar
/// header or an HTTP length announced from the size must be met exactly.
pub struct FileReader<'a> {
    store: &'a Store,
    index: &'a Index,
    name: String,
    chunks: std::slice::Iter<'a, Id>,
    current: Vec<u8>,
    used: usize,
    left: u64,
}

/// Opens a file of a snapshot; anything else is refused with what to do.
pub fn open_file<'a>(store: &'a Store, index: &'a Index, node: &'a Node) -> Result<FileReader<'a>> {
    let chunks = match &node.content {
        Content::File { chunks } => chunks,
        Content::Symlink { target } => {
            return Err(Error::InvalidArgument(format!(
                "{} is a symlink to {}, not a file: name the file it points to",
                node.name_lossy(),
                String::from_utf8_lossy(target)
            )));
        }
        Content::Dir { .. } => {
            return Err(Error::InvalidArgument(format!(
                "{} is a directory, not a file: `kast ls` lists it",
                node.name_lossy()
            )));
        }
        Content::Special => {
            return Err(Error::InvalidArgument(format!(
                "{} is a special file (a device, fifo or socket): it has no content",
                node.name_lossy()
            )));
        }
    };
    Ok(FileReader {
        store,
        index,
        name: node.name_lossy(),
        chunks: chunks.iter(),
        current: Vec::new(),
        used: 0,
        left: node.meta.size,
    })
}

impl FileReader<'_> {
    /// The next piece of the file (a chunk, or its end cut to the recorded
    /// size); `None` at the end.
    pub fn next_piece(&mut self) -> Result<Option<&[u8]>> {
        Ok(if self.fill()? {
            Some(self.take(usize::MAX))
        } else {
            None
        })
    }

    /// Brings unread bytes in hand, reading the next chunk if needed;
    /// false at the end of the file.
    fn fill(&mut self) -> Result<bool> {
        if self.left == 0 {
            // Content past the recorded size is damage too: handed on, it
            // would overrun a tar header's size or an HTTP length.
            if self.used < self.current.len() || self.chunks.len() > 0 {
                return Err(Error::Corrupt {
                    what: self.name.clone(),
                    why: "its content runs past its recorded size".into(),
                });
            }
            return Ok(false);
        }
        while self.used == self.current.len() {
            let Some(id) = self.chunks.next() else {
                return Err(Error::Corrupt {
                    what: self.name.clone(),
                    why: format!(
                        "its content ends {} bytes before its recorded size",
                        self.left
                    ),
                });
            };
            self.current = self.store.read_indexed(self.index, id, BlobKind::Data)?;
            self.used = 0;
        }
        Ok(true)
    }

    /// Hands out up to `max` of the bytes in hand.
    fn take(&mut self, max: usize) -> &[u8] {
        let n = max
            .min(self.current.len() - self.used)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let piece = &self.current[self.used..self.used + n];
        self.used += n;
        self.left -= n as u64;
        piece
    }
}

impl std::io::Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.fill().map_err(std::io::Error::other)? {
            return Ok(0);
        }
        let piece = self.take(buf.len());
        buf[..piece.len()].copy_from_slice(piece);
        Ok(piece.len())
    }
}

/// Writes a file's content; returns the bytes written.
pub fn cat(store: &Store, index: &Index, node: &Node, out: &mut dyn Write) -> Result<u64> {
    let mut file = open_file(store, index, node)?;
    let mut written = 0;
    while let Some(piece) = file.next_piece()? {
        out.write_all(piece).map_err(|e| Error::Destination {
            path: node.name_lossy(),
            source: e,
        })?;
        written += piece.len() as u64;
    }
    Ok(written)
}

/// How an entry differs between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Only in the newer snapshot.
    Added,
    /// Only in the older snapshot.
    Removed,
    /// Content differs (or the kind of entry changed).
    Modified,
    /// Same content, other metadata (mode, owner, times, xattrs).
    Metadata,
}

/// One line of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// As the snapshot names it (names need not be UTF-8).
    pub path: Vec<u8>,
    /// How the entry differs.
    pub kind: ChangeKind,
    /// Size in the older snapshot, if the entry is a file there.
    pub old_size: Option<u64>,
    /// Size in the newer snapshot, if the entry is a file there.
    pub new_size: Option<u64>,
    /// For an entry in both: which of its metadata changed (`mode`,
    /// `owner`, `mtime`, `xattrs`, `links`).
    pub metadata: Vec<&'static str>,
}

impl Change {
    /// The path for people (names that are not UTF-8 shown with �).
    pub fn path_lossy(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// Differences from tree `a` to tree `b`. Subtrees with equal ids are equal
/// (Merkle), so unchanged parts of a snapshot cost nothing.
pub fn diff(store: &Store, index: &Index, a: &Id, b: &Id) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    diff_each(store, index, a, b, &mut |change| {
        changes.push(change);
        Ok(())
    })?;
    Ok(changes)
}

/// [`diff`], handing each change to `out` as it is found, in path order:
/// two snapshots of millions of files differ in millions of entries,
/// which a caller printing them need not hold.
pub fn diff_each(
    store: &Store,
    index: &Index,
    a: &Id,
    b: &Id,
    out: &mut dyn FnMut(Change) -> Result<()>,
) -> Result<()> {
    store.require_full("compare snapshots")?;
    diff_trees(store, index, b"", Some(a), Some(b), out)
}

fn diff_trees(
    store: &Store,
    index: &Index,
    path: &[u8],
    a: Option<&Id>,
    b: Option<&Id>,
    out: &mut dyn FnMut(Change) -> Result<()>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |id: Option<&Id>| -> Result<Vec<Node>> {
        id.map_or(Ok(Vec::new()), |id| Ok(store.read_tree(index, id)?.nodes))
    };
    let (left, right) = (load(a)?, load(b)?);
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        let order = match (left.get(i), right.get(j)) {
            (Some(l), Some(r)) => l.name.cmp(&r.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                removed_or_added(store, index, path, &left[i], ChangeKind::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                removed_or_added(store, index, path, &right[j], ChangeKind::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (l, r) = (&left[i], &right[j]);
                let child = join(path, &l.name);
                match (&l.content, &r.content) {
                    (Content::Dir { tree: ta }, Content::Dir { tree: tb }) => {
                        if !metadata_changes(l, r).is_empty() {
                            out(change(&child, ChangeKind::Metadata, l, r))?;
                        }
                        diff_trees(store, index, &child, Some(ta), Some(tb), out)?;
                    }
                    (x, y) if x == y => {
                        if !metadata_changes(l, r).is_empty() {
                            out(change(&child, ChangeKind::Metadata, l, r))?;
                        }
                    }
                    _ => out(change(&child, ChangeKind::Modified, l, r))?,
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// Which metadata differs, leaving out ctime, inode and device: they
/// change on every copy and a restore cannot carry them, so they are not
/// changes worth listing. Size is the content's business.
fn metadata_changes(l: &Node, r: &Node) -> Vec<&'static str> {
    let (a, b) = (&l.meta, &r.meta);
    [
        ("mode", a.mode != b.mode),
        ("owner", (a.uid, a.gid) != (b.uid, b.gid)),
        ("mtime", a.mtime_ns != b.mtime_ns),
        ("xattrs", a.xattrs != b.xattrs),
        ("links", a.links != b.links),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect()
}

fn change(path: &[u8], kind: ChangeKind, l: &Node, r: &Node) -> Change {
    Change {
        path: path.to_vec(),
        kind,
        old_size: Some(l.meta.size),
        new_size: Some(r.meta.size),
        metadata: metadata_changes(l, r),
    }
}

/// Lists a whole subtree as added or removed, entry by entry.
fn removed_or_added(
    store: &Store,
    index: &Index,
    parent: &[u8],
    node: &Node,
    kind: ChangeKind,
    out: &mut dyn FnMut(Change) -> Result<()>,
) -> Result<()> {
    let path = join(parent, &node.name);
    let size = Some(node.meta.size);
    out(Change {
        path: path.clone(),
        kind,
        old_size: if kind == ChangeKind::Removed {
            size
        } else {
            None
        },
        new_size: if kind == ChangeKind::Added {
            size
        } else {
            None
        },
        metadata: Vec::new(),
    })?;
    if let Content::Dir { tree } = &node.content {
        for child in store.read_tree(index, tree)?.nodes {
            removed_or_added(store, index, &path, &child, kind, out)?;
        }
    }
    Ok(())
}
