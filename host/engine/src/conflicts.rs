//! What a restore does with entries already at its destination.
//!
//! By default a restore refuses to replace anything, and decides so before
//! it writes a byte: [`find`] walks the snapshot only where the destination
//! already has folders of the same names, so a restore into an empty or new
//! folder looks at one listing. The other modes decide per entry while the
//! restore runs ([`decide`]), from one listing of each destination folder.

use crate::browse::Resolved;
use crate::destination::{Destination, Existing};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::source::join;
use crate::store::Store;
use crate::tree::{Content, EntryKind, Node, Tree};
use std::collections::HashMap;

/// What to do with an entry the destination already has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Write nothing if any entry is in the way; say which.
    #[default]
    Refuse,
    /// Keep what is there; restore only what is missing.
    Never,
    /// Replace an entry only if the snapshot's is newer (modification time).
    IfNewer,
    /// Replace an entry unless it has the snapshot's kind, size and
    /// modification time to the nanosecond.
    IfChanged,
    /// Replace every entry in the way (a folder in the way of a file too).
    Always,
}

impl Overwrite {
    /// Whether this mode looks at each destination folder as it restores.
    pub(crate) fn looks(self) -> bool {
        matches!(
            self,
            Overwrite::Never | Overwrite::IfNewer | Overwrite::IfChanged
        )
    }
}

/// One destination folder's entries, by name.
pub(crate) type Listing = HashMap<Vec<u8>, Existing>;

/// Lists `dir` of the destination by name; `None` when it cannot tell.
pub(crate) fn listing(dest: &dyn Destination, dir: &[u8]) -> Result<Option<Listing>> {
    let entries = dest.existing(dir).map_err(|e| Error::Destination {
        path: String::from_utf8_lossy(dir).into_owned(),
        source: e,
    })?;
    Ok(entries.map(|entries| entries.into_iter().map(|e| (e.name.clone(), e)).collect()))
}

/// What the restore does with one entry of the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Write it; `replace` when something is there to replace.
    Write { replace: bool },
    /// Leave what is there.
    Skip,
}

/// Decides for `node` given what the destination has at its name, under a
/// mode that looks ([`Overwrite::looks`]) or [`Overwrite::Always`]. A folder
/// in the way of a file or link is replaced only by `Always`: the other
/// modes never delete a folder.
pub(crate) fn decide(mode: Overwrite, node: &Node, there: Option<&Existing>) -> Decision {
    let Some(there) = there else {
        return Decision::Write {
            replace: mode == Overwrite::Always,
        };
    };
    let kind = node.content.kind();
    if kind == EntryKind::Dir && there.kind == EntryKind::Dir {
        return Decision::Write { replace: false };
    }
    let replace = match mode {
        Overwrite::Always => true,
        _ if there.kind == EntryKind::Dir => false,
        Overwrite::Refuse | Overwrite::Never => false,
        Overwrite::IfNewer => as_held(node.meta.mtime_ns, there.mtime_ns) > there.mtime_ns,
        Overwrite::IfChanged => {
            there.kind != kind
                || as_held(node.meta.mtime_ns, there.mtime_ns) != there.mtime_ns
                || (kind == EntryKind::File && there.size != node.meta.size)
        }
    };
    if replace {
        Decision::Write { replace: true }
    } else {
        Decision::Skip
    }
}

/// The snapshot's time `ns` as a destination that holds whole seconds
/// would keep it (SFTP, FTP), when `there` looks like such a time: else a
/// restore there would find every file changed.
fn as_held(ns: i64, there: i64) -> i64 {
    match there.rem_euclid(1_000_000_000) {
        0 => ns.div_euclid(1_000_000_000) * 1_000_000_000,
        _ => ns,
    }
}

/// Entries of a snapshot that the destination already has, found before a
/// restore that refuses to replace them writes anything.
#[derive(Debug, Default)]
pub struct Conflicts {
    pub count: u64,
    /// The first few, as paths under the destination.
    pub first: Vec<String>,
}

/// How many conflicts [`Conflicts::first`] keeps.
const SHOWN: usize = 5;

/// Finds every entry of `target` the destination already has, except
/// folders (restoring into an existing folder is fine). `None` when the
/// destination cannot say what it holds.
pub(crate) fn find(
    store: &Store,
    index: &Index,
    target: &Resolved,
    dest: &dyn Destination,
) -> Result<Option<Conflicts>> {
    let mut walk = Walk {
        store,
        index,
        dest,
        found: Conflicts::default(),
    };
    let known = match target {
        Resolved::Root(tree) => walk.dir(b"", tree)?,
        Resolved::Node(node) => match &node.content {
            Content::Dir { tree } => walk.dir(b"", &store.read_tree(index, tree)?)?,
            _ => walk.nodes(b"", std::slice::from_ref(node))?,
        },
    };
    Ok(known.then_some(walk.found))
}

struct Walk<'a> {
    store: &'a Store,
    index: &'a Index,
    dest: &'a dyn Destination,
    found: Conflicts,
}

impl Walk<'_> {
    /// Returns false when the destination cannot list.
    fn dir(&mut self, path: &[u8], tree: &Tree) -> Result<bool> {
        self.nodes(path, &tree.nodes)
    }

    fn nodes(&mut self, path: &[u8], nodes: &[Node]) -> Result<bool> {
        let Some(there) = listing(self.dest, path)? else {
            return Ok(false);
        };
        if there.is_empty() {
            return Ok(true);
        }
        for node in nodes {
            let Some(existing) = there.get(&node.name) else {
                continue;
            };
            let child = join(path, &node.name);
            match (&node.content, existing.kind) {
                (Content::Dir { tree }, EntryKind::Dir) => {
                    let subtree = self.store.read_tree(self.index, tree)?;
                    self.dir(&child, &subtree)?;
                }
                _ => {
                    self.found.count += 1;
                    if self.found.first.len() < SHOWN {
                        self.found
                            .first
                            .push(String::from_utf8_lossy(&child).into_owned());
                    }
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Metadata;

    fn file(size: u64, mtime_ns: i64) -> Node {
        Node {
            name: b"f".to_vec(),
            content: Content::File { chunks: Vec::new() },
            meta: Metadata {
                size,
                mtime_ns,
                ..Metadata::default()
            },
            error: None,
        }
    }

    fn there(kind: EntryKind, size: u64, mtime_ns: i64) -> Existing {
        Existing {
            name: b"f".to_vec(),
            kind,
            size,
            mtime_ns,
        }
    }

    #[test]
    fn each_mode_decides_as_documented() {
        use Decision::{Skip, Write};
        let same = there(EntryKind::File, 10, 5);
        let older = there(EntryKind::File, 10, 4);
        let newer = there(EntryKind::File, 10, 6);
        let resized = there(EntryKind::File, 11, 5);
        let folder = there(EntryKind::Dir, 0, 1);
        let node = file(10, 5);
        let write = Write { replace: true };
        let cases = [
            (Overwrite::Never, &same, Skip),
            (Overwrite::Never, &older, Skip),
            (Overwrite::IfNewer, &older, write),
            (Overwrite::IfNewer, &same, Skip),
            (Overwrite::IfNewer, &newer, Skip),
            (Overwrite::IfChanged, &same, Skip),
            (Overwrite::IfChanged, &newer, write),
            (Overwrite::IfChanged, &resized, write),
            (Overwrite::IfChanged, &folder, Skip),
            (Overwrite::IfNewer, &folder, Skip),
            (Overwrite::Always, &same, write),
            (Overwrite::Always, &folder, write),
        ];
        for (mode, existing, want) in cases {
            assert_eq!(decide(mode, &node, Some(existing)), want, "{mode:?}");
        }
        for mode in [Overwrite::Never, Overwrite::IfChanged] {
            assert_eq!(
                decide(mode, &node, None),
                Write { replace: false },
                "{mode:?}"
            );
        }
        assert_eq!(
            decide(Overwrite::Always, &node, None),
            Write { replace: true }
        );
    }
}
