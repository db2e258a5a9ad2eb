//! The FUSE side of `kast mount`: inode numbers, attributes, listings,
//! links and reads, answered from the store and never written. The
//! virtual folders come from [`Layout`]; below a snapshot's root, every
//! answer is what `kast restore` would have written: the same names,
//! bytes, modes, owners, nanosecond times, symlinks, xattrs, and hard
//! links as one inode with its link count.
//!
//! Memory: inode numbers are given out as entries are met and kept for the
//! life of the mount (the kernel may ask for any of them again); trees
//! and file chunks sit in bounded caches.

use super::layout::{Child, Layout};
use crate::ui::catalog::Catalog;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyXattr, Request,
};
use kast_engine::Store;
use kast_engine::blob_cache::BlobCache;
use kast_engine::browse::SnapshotFilter;
use kast_engine::crypto::Id;
use kast_engine::index::Index;
use kast_engine::snapshot::Snapshot;
use kast_engine::source::join;
use kast_engine::tree::{Content, EntryKind, Metadata, Node, Tree, content_digest};
use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the kernel may trust a virtual folder: new snapshots show
/// within about this.
const VIRTUAL_TTL: Duration = Duration::from_secs(1);
/// A snapshot never changes: its entries may be trusted for long.
const SNAPSHOT_TTL: Duration = Duration::from_secs(3600);
/// How often the snapshot list is read again, at most.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Directory trees kept decoded (a tree of 100k entries is some MiB).
const TREES_KEPT: usize = 64;

/// The snapshots the mount shows now, and the index that reads them.
struct View {
    layout: Layout,
    snapshots: HashMap<Id, Snapshot>,
    index: Arc<Index>,
    refreshed: Instant,
}

/// What an inode number stands for.
enum Inode {
    /// A folder of the layout (the root, `ids`, a source's folder…).
    Virtual { path: Vec<u8> },
    /// A snapshot's root, at one of the places the layout shows it.
    Root {
        snapshot: Id,
        tree: Id,
        time_ns: i64,
    },
    /// An entry below a snapshot's root (`view` is that root's inode:
    /// hard links are counted within it).
    /// The entry is `tree.nodes[at]`: the tree is held once for all its
    /// entries' inodes, not copied per entry.
    Entry {
        view: u64,
        tree: Arc<Tree>,
        at: usize,
        nlink: u32,
    },
}

impl Inode {
    /// The tree entry an `Entry` inode stands for.
    fn node(&self) -> Option<&Node> {
        match self {
            Inode::Entry { tree, at, .. } => tree.nodes.get(*at),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Inodes {
    table: HashMap<u64, Arc<Inode>>,
    by_path: HashMap<Vec<u8>, u64>,
    /// (folder inode, position in its tree) → inode.
    by_entry: HashMap<(u64, usize), u64>,
    by_link: HashMap<(u64, u64, u64), u64>,
    next: u64,
}

/// For each hard-linked file of one snapshot (by device and inode): the
/// digest of the content its first name has, and how many names share
/// that content, as a restore links them (`LinkGroups`).
type LinkCounts = HashMap<(u64, u64), ([u8; 32], u32)>;

/// Takes one listed entry (inode, the position after it, kind, name);
/// true when the reply is full.
type AddEntry<'a> = dyn FnMut(u64, u64, FileType, &[u8]) -> bool + 'a;

/// A file opened for reading: where each chunk starts.
struct OpenFile {
    chunks: Vec<Id>,
    starts: Vec<u64>,
    size: u64,
}

/// The mounted store.
pub struct SnapshotFs {
    store: Store,
    filter: SnapshotFilter,
    catalog: Catalog,
    view: RwLock<View>,
    inodes: Mutex<Inodes>,
    trees: Mutex<VecDeque<(Id, Arc<Tree>)>>,
    links: Mutex<HashMap<u64, Arc<LinkCounts>>>,
    blobs: BlobCache,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_handle: AtomicU64,
    owner: (u32, u32),
    started: SystemTime,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SnapshotFs {
    /// Reads the snapshot list and the index, so that a store that cannot
    /// be read fails before anything is mounted.
    pub fn new(store: Store, filter: SnapshotFilter, cache_bytes: usize) -> anyhow::Result<Self> {
        let catalog = Catalog::default();
        let list = catalog.snapshots(&store)?;
        let index = Arc::new(store.index()?);
        let shown: Vec<(Id, Snapshot)> = list
            .all
            .iter()
            .filter(|(_, s)| filter.matches(s))
            .cloned()
            .collect();
        let view = View {
            layout: Layout::build(&shown),
            snapshots: shown.into_iter().collect(),
            index,
            refreshed: Instant::now(),
        };
        let mut inodes = Inodes {
            next: 2,
            ..Default::default()
        };
        inodes
            .table
            .insert(1, Arc::new(Inode::Virtual { path: Vec::new() }));
        inodes.by_path.insert(Vec::new(), 1);
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let owner = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(SnapshotFs {
            store,
            filter,
            catalog,
            view: RwLock::new(view),
            inodes: Mutex::new(inodes),
            trees: Mutex::new(VecDeque::new()),
            links: Mutex::new(HashMap::new()),
            blobs: BlobCache::new(cache_bytes),
            files: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            owner,
            started: SystemTime::now(),
        })
    }

    /// How many snapshots the mount shows now.
    pub fn snapshot_count(&self) -> usize {
        self.view().snapshots.len()
    }

    fn view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the snapshot list again when it is older than a second, and
    /// the index when new snapshots came (their trees are in new states).
    fn refresh(&self) {
        if self.view().refreshed.elapsed() < REFRESH_EVERY {
            return;
        }
        let mut view = self.view.write().unwrap_or_else(|e| e.into_inner());
        if view.refreshed.elapsed() < REFRESH_EVERY {
            return;
        }
        view.refreshed = Instant::now();
        let list = match self.catalog.snapshots(&self.store) {
            Ok(list) => list,
            Err(e) => {
                eprintln!("kast mount: cannot list the snapshots again: {e}");
                return;
            }
        };
        let shown: Vec<(Id, Snapshot)> = list
            .all
            .iter()
            .filter(|(_, s)| self.filter.matches(s))
            .cloned()
            .collect();
        let same = shown.len() == view.snapshots.len()
            && shown.iter().all(|(id, _)| view.snapshots.contains_key(id));
        if same {
            return;
        }
        let grew = shown.iter().any(|(id, _)| !view.snapshots.contains_key(id));
        if grew {
            match self.store.index() {
                Ok(index) => view.index = Arc::new(index),
                Err(e) => {
                    eprintln!("kast mount: cannot read the index again: {e}");
                    return;
                }
            }
        }
        view.layout = Layout::build(&shown);
        view.snapshots = shown.into_iter().collect();
    }

    fn inode(&self, ino: INodeNo) -> Option<Arc<Inode>> {
        lock(&self.inodes).table.get(&ino.0).cloned()
    }

    /// The inode of a virtual path, or of a snapshot root shown there.
    fn path_ino(&self, path: Vec<u8>, child: Child) -> u64 {
        let mut inodes = lock(&self.inodes);
        if let Some(&ino) = inodes.by_path.get(&path) {
            // A snapshot removed and another shown at the same place
            // (latest/NAME) is another inode.
            let same = match (child, inodes.table.get(&ino).map(|i| &**i)) {
                (Child::Snapshot(id), Some(Inode::Root { snapshot, .. })) => *snapshot == id,
                (Child::Dir(_), Some(Inode::Virtual { .. })) => true,
                _ => false,
            };
            if same {
                return ino;
            }
        }
        let inode = match child {
            Child::Dir(_) => Inode::Virtual { path: path.clone() },
            Child::Snapshot(id) => {
                let view = self.view();
                let s = view.snapshots.get(&id);
                Inode::Root {
                    snapshot: id,
                    tree: s.map(|s| s.root).unwrap_or(Id([0; 32])),
                    time_ns: s.map(|s| s.time_ns).unwrap_or(0),
                }
            }
        };
        let ino = inodes.next;
        inodes.next += 1;
        inodes.table.insert(ino, Arc::new(inode));
        inodes.by_path.insert(path, ino);
        ino
    }

    /// The inode of entry `at` of folder `parent` (whose tree is `tree`),
    /// under snapshot root `view`; the names of a hard-linked file share one.
    fn entry_ino(&self, parent: u64, view: u64, tree: &Arc<Tree>, at: usize) -> Result<u64, Errno> {
        let key = (parent, at);
        let node = &tree.nodes[at];
        if let Some(&ino) = lock(&self.inodes).by_entry.get(&key) {
            return Ok(ino);
        }
        let mut nlink = 1;
        let mut link = None;
        if let (Some((device, inode)), Content::File { chunks }) =
            (node.meta.link_key(), &node.content)
        {
            let counts = self.link_counts(view)?;
            if let Some((first, names)) = counts.get(&(device, inode))
                && *first == content_digest(chunks)
            {
                nlink = *names;
                link = Some((view, device, inode));
            }
        }
        let mut inodes = lock(&self.inodes);
        if let Some(&ino) = inodes.by_entry.get(&key) {
            return Ok(ino);
        }
        if let Some(link) = link
            && let Some(&ino) = inodes.by_link.get(&link)
        {
            inodes.by_entry.insert(key, ino);
            return Ok(ino);
        }
        let ino = inodes.next;
        inodes.next += 1;
        inodes.table.insert(
            ino,
            Arc::new(Inode::Entry {
                view,
                tree: tree.clone(),
                at,
                nlink,
            }),
        );
        inodes.by_entry.insert(key, ino);
        if let Some(link) = link {
            inodes.by_link.insert(link, ino);
        }
        Ok(ino)
    }

    /// The hard-link groups of the snapshot under root inode `view`,
    /// walked once (depth first, in name order, as a restore walks).
    fn link_counts(&self, view: u64) -> Result<Arc<LinkCounts>, Errno> {
        if let Some(counts) = lock(&self.links).get(&view) {
            return Ok(counts.clone());
        }
        let tree = match self.inode(INodeNo(view)).as_deref() {
            Some(Inode::Root { tree, .. }) => *tree,
            _ => return Err(Errno::EIO),
        };
        let index = self.view().index.clone();
        let read = |id: &Id| {
            self.store
                .read_tree(&index, id)
                .map_err(|e| self.failed("a folder", &e))
        };
        let mut counts = LinkCounts::new();
        // Each folder's entries in name order, a folder's own entries
        // before its next sibling: the order a restore meets names in.
        let mut stack = vec![(read(&tree)?, 0)];
        while let Some((tree, at)) = stack.last_mut() {
            let Some(node) = tree.nodes.get(*at) else {
                stack.pop();
                continue;
            };
            *at += 1;
            match &node.content {
                Content::Dir { tree } => {
                    let below = *tree;
                    stack.push((read(&below)?, 0));
                }
                Content::File { chunks } => {
                    if let Some(key) = node.meta.link_key() {
                        let d = content_digest(chunks);
                        let entry = counts.entry(key).or_insert((d, 0));
                        if entry.0 == d {
                            entry.1 += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        let counts = Arc::new(counts);
        lock(&self.links).insert(view, counts.clone());
        Ok(counts)
    }

    /// A decoded tree, through a small cache.
    fn tree(&self, id: &Id) -> Result<Arc<Tree>, Errno> {
        {
            let mut trees = lock(&self.trees);
            if let Some(at) = trees.iter().position(|(t, _)| t == id) {
                let kept = trees.remove(at).expect("found");
                let tree = kept.1.clone();
                trees.push_back(kept);
                return Ok(tree);
            }
        }
        let index = self.view().index.clone();
        let tree = Arc::new(
            self.store
                .read_tree(&index, id)
                .map_err(|e| self.failed("a folder", &e))?,
        );
        let mut trees = lock(&self.trees);
        if trees.len() == TREES_KEPT {
            trees.pop_front();
        }
        trees.push_back((*id, tree.clone()));
        Ok(tree)
    }

    /// The tree a folder inode lists, with the snapshot root it is under.
    fn folder(&self, ino: u64, inode: &Inode) -> Result<(Arc<Tree>, u64), Errno> {
        match inode {
            Inode::Root { tree, .. } => Ok((self.tree(tree)?, ino)),
            Inode::Entry { view, tree, at, .. } => match &tree.nodes[*at].content {
                Content::Dir { tree } => Ok((self.tree(tree)?, *view)),
                _ => Err(Errno::ENOTDIR),
            },
            Inode::Virtual { .. } => Err(Errno::EISDIR),
        }
    }

    /// Says why a read failed (the kernel only passes on EIO).
    fn failed(&self, what: &str, e: &kast_engine::Error) -> Errno {
        eprintln!("kast mount: cannot read {what}: {e}");
        Errno::EIO
    }

    fn attr(&self, ino: u64, inode: &Inode) -> Result<(FileAttr, Duration), Errno> {
        let (uid, gid) = self.owner;
        let virtual_folder = |time: SystemTime, nlink: u32| FileAttr {
            ino: INodeNo(ino),
            size: 4096,
            blocks: 8,
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind: FileType::Directory,
            perm: 0o755,
            nlink,
            uid,
            gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        Ok(match inode {
            Inode::Virtual { .. } => (virtual_folder(self.started, 2), VIRTUAL_TTL),
            Inode::Root { tree, time_ns, .. } => {
                let subdirs = count_dirs(&self.tree(tree)?);
                (
                    virtual_folder(system_time(*time_ns), 2 + subdirs),
                    VIRTUAL_TTL,
                )
            }
            Inode::Entry {
                tree: folder,
                at,
                nlink,
                ..
            } => {
                let node = &folder.nodes[*at];
                let nlink = match &node.content {
                    Content::Dir { tree } => 2 + count_dirs(&self.tree(tree)?),
                    _ => *nlink,
                };
                (entry_attr(ino, node, nlink), SNAPSHOT_TTL)
            }
        })
    }

    /// Opens a file: where each chunk starts, from the index's lengths.
    fn open_file(&self, node: &Node) -> Result<OpenFile, Errno> {
        let Content::File { chunks } = &node.content else {
            return Err(Errno::EISDIR);
        };
        let index = self.view().index.clone();
        let mut starts = Vec::with_capacity(chunks.len() + 1);
        let mut at = 0u64;
        for id in chunks {
            starts.push(at);
            let Some(location) = index.lookup(id) else {
                eprintln!(
                    "kast mount: cannot read {}: chunk {} is missing from the index",
                    node.name_lossy(),
                    id.short()
                );
                return Err(Errno::EIO);
            };
            at += u64::from(location.raw_length);
        }
        starts.push(at);
        if at != node.meta.size {
            eprintln!(
                "kast mount: cannot read {}: its chunks hold {at} bytes, its size says {}",
                node.name_lossy(),
                node.meta.size
            );
            return Err(Errno::EIO);
        }
        Ok(OpenFile {
            chunks: chunks.clone(),
            starts,
            size: at,
        })
    }

    /// Up to `size` bytes of an open file from `offset`.
    fn read_file(&self, file: &OpenFile, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let end = file.size.min(offset.saturating_add(u64::from(size)));
        if offset >= end {
            return Ok(Vec::new());
        }
        let index = self.view().index.clone();
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut chunk = file.starts.partition_point(|&s| s <= offset) - 1;
        let mut at = offset;
        while at < end {
            let id = &file.chunks[chunk];
            let (start, stop) = (file.starts[chunk], file.starts[chunk + 1]);
            let blob = self
                .blobs
                .data(&self.store, &index, id)
                .map_err(|e| self.failed(&format!("chunk {}", id.short()), &e))?;
            if blob.len() as u64 != stop - start {
                eprintln!(
                    "kast mount: chunk {} holds {} bytes, the index says {}",
                    id.short(),
                    blob.len(),
                    stop - start
                );
                return Err(Errno::EIO);
            }
            let from = (at - start) as usize;
            let to = (end.min(stop) - start) as usize;
            out.extend_from_slice(&blob[from..to]);
            at = start + to as u64;
            chunk += 1;
        }
        Ok(out)
    }

    /// Hands the entries of a folder inode to `add`, from position
    /// `from` (0 is `.`, 1 is `..`, then the folder's entries in order)
    /// until `add` says the reply is full. Only what is handed out gets an
    /// inode: a listing of 100k entries in 4 KiB replies stays linear.
    fn list(
        &self,
        ino: u64,
        inode: &Inode,
        from: u64,
        add: &mut AddEntry<'_>,
    ) -> Result<(), Errno> {
        let dots: [(u64, &[u8]); 2] = [(ino, b"."), (1, b"..")];
        for (at, (dot, name)) in dots.into_iter().enumerate().skip(from as usize) {
            if add(dot, at as u64 + 1, FileType::Directory, name) {
                return Ok(());
            }
        }
        let skip = from.saturating_sub(2) as usize;
        match inode {
            Inode::Virtual { path } => {
                self.refresh();
                let entries: Vec<(Vec<u8>, Child)> = {
                    let view = self.view();
                    let Some(Child::Dir(dir)) = view.layout.resolve(path) else {
                        return Err(Errno::ENOENT);
                    };
                    view.layout
                        .entries(dir)
                        .skip(skip)
                        .map(|(name, child)| (name.to_vec(), child))
                        .collect()
                };
                for (at, (name, child)) in entries.into_iter().enumerate() {
                    let child_ino = self.path_ino(join(path, &name), child);
                    if add(
                        child_ino,
                        (skip + at) as u64 + 3,
                        FileType::Directory,
                        &name,
                    ) {
                        break;
                    }
                }
            }
            _ => {
                let (tree, view) = self.folder(ino, inode)?;
                for (at, node) in tree.nodes.iter().enumerate().skip(skip) {
                    if !shown(node) {
                        continue;
                    }
                    let child = self.entry_ino(ino, view, &tree, at)?;
                    let kind = file_type(&node.meta, &node.content);
                    if add(child, at as u64 + 3, kind, &node.name) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn lookup_child(&self, parent: u64, name: &[u8]) -> Result<u64, Errno> {
        let inode = self.inode(INodeNo(parent)).ok_or(Errno::ENOENT)?;
        match &*inode {
            Inode::Virtual { path } => {
                self.refresh();
                let child_path = join(path, name);
                let child = self
                    .view()
                    .layout
                    .resolve(&child_path)
                    .ok_or(Errno::ENOENT)?;
                Ok(self.path_ino(child_path, child))
            }
            _ => {
                let (tree, view) = self.folder(parent, &inode)?;
                let at = tree
                    .nodes
                    .binary_search_by(|n| n.name.as_slice().cmp(name))
                    .map_err(|_| Errno::ENOENT)?;
                if !shown(&tree.nodes[at]) {
                    return Err(Errno::ENOENT);
                }
                self.entry_ino(parent, view, &tree, at)
            }
        }
    }

    /// An inode that must be an entry of a snapshot (not a folder above).
    fn entry(&self, ino: INodeNo) -> Result<Arc<Inode>, Errno> {
        match self.inode(ino) {
            Some(inode) if inode.node().is_some() => Ok(inode),
            Some(_) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }
}

impl Filesystem for SnapshotFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self
            .lookup_child(parent.0, name.as_bytes())
            .and_then(|ino| {
                let inode = self.inode(INodeNo(ino)).ok_or(Errno::ENOENT)?;
                self.attr(ino, &inode)
            });
        match found {
            Ok((attr, ttl)) => reply.entry(&ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self
            .inode(ino)
            .ok_or(Errno::ENOENT)
            .and_then(|inode| self.attr(ino.0, &inode))
        {
            Ok((attr, ttl)) => reply.attr(&ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.entry(ino) {
            Ok(inode) => match inode.node().map(|n| &n.content) {
                Some(Content::Symlink { target }) => reply.data(target),
                _ => reply.error(Errno::EINVAL),
            },
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let opened = self.entry(ino).and_then(|inode| match inode.node() {
            Some(node) => self.open_file(node),
            None => Err(Errno::EISDIR),
        });
        match opened {
            Ok(file) => {
                let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
                lock(&self.files).insert(handle, Arc::new(file));
                // The content never changes: the kernel may keep its pages.
                reply.opened(FileHandle(handle), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = lock(&self.files).get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        match self.read_file(&file, offset, size) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        lock(&self.files).remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(inode) = self.inode(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let listed = self.list(ino.0, &inode, offset, &mut |child, next, kind, name| {
            reply.add(INodeNo(child), next, kind, OsStr::from_bytes(name))
        });
        if let Err(e) = listed {
            return reply.error(e);
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let Some(inode) = self.inode(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let xattrs = inode
            .node()
            .map(|n| n.meta.xattrs.as_slice())
            .unwrap_or(&[]);
        match xattrs.iter().find(|(n, _)| n == name.as_bytes()) {
            None => reply.error(Errno::NO_XATTR),
            Some((_, value)) => sized(reply, size, value),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let Some(inode) = self.inode(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let names: Vec<u8> = inode
            .node()
            .iter()
            .flat_map(|n| &n.meta.xattrs)
            .flat_map(|(n, _)| n.iter().copied().chain([0]))
            .collect();
        sized(reply, size, &names)
    }
}

/// Whether an entry is shown: everything a restore writes. A fifo,
/// socket or device is not (restore does not make them either), so the
/// mount never hands out a device node from a backup.
fn shown(node: &Node) -> bool {
    !matches!(node.content, Content::Special)
}

/// An xattr answer: its size when asked with 0, else the bytes if they fit.
fn sized(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

fn count_dirs(tree: &Arc<Tree>) -> u32 {
    tree.nodes
        .iter()
        .filter(|n| matches!(n.content, Content::Dir { .. }))
        .count() as u32
}

/// A time in nanoseconds since the epoch, before 1970 too.
fn system_time(ns: i64) -> SystemTime {
    let magnitude = Duration::new(
        ns.unsigned_abs() / 1_000_000_000,
        (ns.unsigned_abs() % 1_000_000_000) as u32,
    );
    let time = if ns >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    time.unwrap_or(UNIX_EPOCH)
}

fn file_type(meta: &Metadata, content: &Content) -> FileType {
    match content.kind() {
        EntryKind::File => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Special => match meta.mode & libc::S_IFMT {
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFSOCK => FileType::Socket,
            _ => FileType::NamedPipe,
        },
    }
}

fn entry_attr(ino: u64, node: &Node, nlink: u32) -> FileAttr {
    let meta = &node.meta;
    let mtime = system_time(meta.mtime_ns);
    let size = match &node.content {
        Content::File { .. } => meta.size,
        Content::Symlink { target } => target.len() as u64,
        Content::Dir { .. } => 4096,
        Content::Special => 0,
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        // A restore sets both times to the recorded mtime.
        atime: mtime,
        mtime,
        ctime: system_time(meta.ctime_ns),
        crtime: mtime,
        kind: file_type(meta, &node.content),
        perm: (meta.mode & 0o7777) as u16,
        nlink,
        uid: meta.uid,
        gid: meta.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}
