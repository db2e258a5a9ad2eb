//! Finding entries by name across many snapshots. Snapshots of one source
//! share most of their trees (a tree's id is its content's hash), so each
//! distinct tree is read once: what it holds that matches is remembered by
//! tree id, and every later snapshot that holds the same folder reuses it.
//! What is remembered is only the matches and the way down to them, so
//! memory grows with the results and the number of distinct trees, not
//! with the size of the snapshots.

use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::tree::{Content, Node};
use std::collections::HashMap;
use std::rc::Rc;

/// What kind of entry a match is, as `ls` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoundKind {
    /// A regular file.
    File,
    /// A folder (what is below it is searched too).
    Dir,
    /// A symbolic link, never followed.
    Symlink,
    /// A device, FIFO or socket.
    Special,
}

impl FoundKind {
    fn of(node: &Node) -> Self {
        match node.content {
            Content::File { .. } => FoundKind::File,
            Content::Dir { .. } => FoundKind::Dir,
            Content::Symlink { .. } => FoundKind::Symlink,
            Content::Special => FoundKind::Special,
        }
    }

    /// The name used in text and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            FoundKind::File => "file",
            FoundKind::Dir => "dir",
            FoundKind::Symlink => "symlink",
            FoundKind::Special => "special",
        }
    }
}

/// One matching entry: where it is and what a listing shows of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its path from the snapshot's root, `/`-separated, raw bytes.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: FoundKind,
    /// Its size in bytes, as recorded.
    pub size: u64,
    /// Its modification time, in nanoseconds since the epoch.
    pub mtime_ns: i64,
}

/// What a search cost, so a test (or a curious user) can see that shared
/// trees were read once, and what it could not read.
#[derive(Debug, Default)]
pub struct FindStats {
    /// Snapshots searched.
    pub snapshots: u64,
    /// Tree blobs read and decoded: each distinct tree once.
    pub trees_read: u64,
    /// Matches reported, over all snapshots.
    pub matches: u64,
    /// Trees that could not be read (damaged or missing), with why: what
    /// is below them is missing from the results; the rest is searched.
    pub unreadable: Vec<(Id, Error)>,
}

/// A tree's part in the results, in name order: an entry that matches, or
/// a folder below which something does.
enum Item {
    Match {
        name: Vec<u8>,
        kind: FoundKind,
        size: u64,
        mtime_ns: i64,
    },
    Below {
        name: Vec<u8>,
        tree: Rc<Vec<Item>>,
    },
}

/// The trees seen so far: `None` when nothing in or below a tree matches.
type Seen = HashMap<Id, Option<Rc<Vec<Item>>>>;

/// Calls `found` for every entry whose name passes `matches`, in every
/// snapshot of `snapshots` (in the order given; within one, in path
/// order). Each distinct tree is read once, whatever the number of
/// snapshots that hold it; one that cannot be read is listed in the
/// stats and the search goes on. Errors are `found`'s own.
pub fn find(
    store: &Store,
    index: &Index,
    snapshots: &[(Id, Snapshot)],
    matches: &dyn Fn(&[u8]) -> bool,
    found: &mut dyn FnMut(&Id, &Snapshot, &Found) -> Result<()>,
) -> Result<FindStats> {
    let mut seen = Seen::new();
    let mut stats = FindStats::default();
    for (id, snapshot) in snapshots {
        stats.snapshots += 1;
        let root = search(store, index, &snapshot.root, matches, &mut seen, &mut stats)?;
        if let Some(items) = root {
            let mut report = |f: &Found| {
                stats.matches += 1;
                found(id, snapshot, f)
            };
            expand(&items, &mut report)?;
        }
    }
    Ok(stats)
}

/// A tree being searched: its entries still to look at, and the items
/// found among those already seen.
struct Pending {
    id: Id,
    nodes: std::vec::IntoIter<Node>,
    items: Vec<Item>,
    /// The folder entry waiting on the child tree searched right now.
    waiting: Option<Vec<u8>>,
}

/// The items of tree `root` (reading every tree below it not seen yet),
/// without recursion, so a hostile or very deep tree cannot overflow the
/// stack.
fn search(
    store: &Store,
    index: &Index,
    root: &Id,
    matches: &dyn Fn(&[u8]) -> bool,
    seen: &mut Seen,
    stats: &mut FindStats,
) -> Result<Option<Rc<Vec<Item>>>> {
    if let Some(known) = seen.get(root) {
        return Ok(known.clone());
    }
    // A tree that cannot be read is searched as an empty one, and named.
    let open = |id: &Id, stats: &mut FindStats| -> Pending {
        stats.trees_read += 1;
        let nodes = store.read_tree(index, id).map_or_else(
            |e| {
                stats.unreadable.push((*id, e));
                Vec::new()
            },
            |tree| tree.nodes,
        );
        Pending {
            id: *id,
            nodes: nodes.into_iter(),
            items: Vec::new(),
            waiting: None,
        }
    };
    let mut stack = vec![open(root, stats)];
    // What the tree on top of the stack finished with, for its parent.
    let mut done: Option<Option<Rc<Vec<Item>>>> = None;
    while let Some(top) = stack.last_mut() {
        if let Some(result) = done.take() {
            let name = top.waiting.take().expect("a child was searched");
            if let Some(tree) = result {
                top.items.push(Item::Below { name, tree });
            }
        }
        let Some(node) = top.nodes.next() else {
            let finished = stack.pop().expect("not empty");
            let result = (!finished.items.is_empty()).then(|| Rc::new(finished.items));
            seen.insert(finished.id, result.clone());
            done = Some(result);
            continue;
        };
        if matches(&node.name) {
            top.items.push(Item::Match {
                name: node.name.clone(),
                kind: FoundKind::of(&node),
                size: node.meta.size,
                mtime_ns: node.meta.mtime_ns,
            });
        }
        if let Content::Dir { tree } = node.content {
            match seen.get(&tree) {
                Some(Some(items)) => top.items.push(Item::Below {
                    name: node.name,
                    tree: items.clone(),
                }),
                Some(None) => {}
                None => {
                    top.waiting = Some(node.name);
                    let child = open(&tree, stats);
                    stack.push(child);
                }
            }
        }
    }
    Ok(done.flatten())
}

/// Reports every match in `items` (a snapshot's root), in path order;
/// without recursion, as [`search`].
fn expand(items: &Rc<Vec<Item>>, report: &mut dyn FnMut(&Found) -> Result<()>) -> Result<()> {
    let mut path = Vec::new();
    // Per folder: its items, the next to report, its path's length.
    let mut stack = vec![(items.clone(), 0usize, 0usize)];
    while let Some((items, next, base)) = stack.last_mut() {
        let Some(item) = items.get(*next) else {
            stack.pop();
            continue;
        };
        *next += 1;
        path.truncate(*base);
        if *base > 0 {
            path.push(b'/');
        }
        match item {
            Item::Match {
                name,
                kind,
                size,
                mtime_ns,
            } => {
                path.extend_from_slice(name);
                report(&Found {
                    path: path.clone(),
                    kind: *kind,
                    size: *size,
                    mtime_ns: *mtime_ns,
                })?;
            }
            Item::Below { name, tree } => {
                path.extend_from_slice(name);
                let tree = tree.clone();
                stack.push((tree, 0, path.len()));
            }
        }
    }
    Ok(())
}
