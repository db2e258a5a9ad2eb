//! Directories as Merkle blobs. A tree lists a directory's entries sorted by
//! name; a file entry carries its chunk ids, a directory entry the id of its
//! own tree. Changing any byte below a directory changes its id, and so the
//! snapshot's root.

use crate::codec::{Reader, Writer};
use crate::crypto::Id;
use crate::error::{Error, Result};

/// Version 1 has no link counts; version 2 adds them (and the device of a
/// file with more than one link). A tree with no such file is still written
/// as version 1, so trees of stores made before stay byte-identical and
/// keep deduplicating.
const TREE_VERSION_PLAIN: u8 = 1;
const TREE_VERSION_LINKS: u8 = 2;

/// What kind of thing an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// A regular file.
    File = 0,
    /// A directory.
    Dir = 1,
    /// A symlink.
    Symlink = 2,
    /// Fifos, sockets, devices: recorded with their metadata, no content.
    Special = 3,
}

impl EntryKind {
    /// The kind a unix `st_mode` says; the one mapping for every reader of
    /// a local disk (the engine's local source and the host's `local-fs`).
    pub fn of_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFREG => EntryKind::File,
            libc::S_IFDIR => EntryKind::Dir,
            libc::S_IFLNK => EntryKind::Symlink,
            _ => EntryKind::Special,
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            2 => EntryKind::Symlink,
            3 => EntryKind::Special,
            _ => return None,
        })
    }
}

/// Metadata kept for every entry, as a source reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Unix permission and type bits (`st_mode`).
    pub mode: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Last status change, nanoseconds since the epoch: with `mtime_ns`, catches a changed file
    /// whose mtime was put back.
    pub ctime_ns: i64,
    /// Inode number: with size and times, decides whether a file is unchanged.
    pub inode: u64,
    /// Content length for files; 0 otherwise.
    pub size: u64,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Hard links to this file (`st_nlink`), 0 when the source cannot tell.
    /// Files of one snapshot with more than one link and the same device
    /// and inode are restored as one file with several names.
    pub links: u64,
    /// The filesystem (`st_dev`) of a file with more than one link, so
    /// equal inode numbers on two filesystems are not taken for links;
    /// 0 otherwise.
    pub device: u64,
}

impl Metadata {
    /// The (device, inode) that names this file's other links, if it has any.
    pub fn link_key(&self) -> Option<(u64, u64)> {
        (self.links > 1 && self.inode != 0).then_some((self.device, self.inode))
    }
}

/// The hard-link groups met while walking a snapshot: the first path of
/// each (device, inode) and a digest of its chunk list, so a later name of
/// the same file is made a link to it (restore, tar). Holds only files the
/// source saw more than one link to, 32 bytes of content each.
#[derive(Default)]
pub struct LinkGroups {
    first: std::collections::HashMap<(u64, u64), (Vec<u8>, [u8; 32])>,
}

impl LinkGroups {
    /// For a file at `path`: the path it is another name of, or `None`
    /// when it is the first (or only) name met. Two names of one inode
    /// whose content differs (the file changed between two reads) are
    /// kept apart, each with what was read.
    pub fn earlier_name(&mut self, path: &[u8], meta: &Metadata, chunks: &[Id]) -> Option<&[u8]> {
        let key = meta.link_key()?;
        let digest = content_digest(chunks);
        let first = self
            .first
            .entry(key)
            .or_insert_with(|| (path.to_vec(), digest));
        (first.0 != path && first.1 == digest).then_some(first.0.as_slice())
    }
}

/// What names of one inode are compared by to be taken for links: the
/// same chunks in the same order (so the same bytes).
pub fn content_digest(chunks: &[Id]) -> [u8; 32] {
    let mut digest = blake3::Hasher::new();
    for id in chunks {
        digest.update(&id.0);
    }
    *digest.finalize().as_bytes()
}

/// The content half of an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A file's content as its chunks' ids, in order; empty for an empty
    /// file.
    File {
        /// The chunk ids; equal runs of bytes share them across files.
        chunks: Vec<Id>,
    },
    /// A directory: its entries live in a tree blob of their own.
    Dir {
        /// The directory's tree id, which covers everything below it.
        tree: Id,
    },
    /// A symlink, restored as a link (never followed).
    Symlink {
        /// Where the link points, as raw bytes.
        target: Vec<u8>,
    },
    /// A fifo, socket or device: nothing to store beyond the metadata.
    Special,
}

impl Content {
    /// The entry kind this content belongs to.
    pub fn kind(&self) -> EntryKind {
        match self {
            Content::File { .. } => EntryKind::File,
            Content::Dir { .. } => EntryKind::Dir,
            Content::Symlink { .. } => EntryKind::Symlink,
            Content::Special => EntryKind::Special,
        }
    }
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Raw name bytes: any byte but `/` and NUL, never `.` or `..`.
    pub name: Vec<u8>,
    /// Its metadata.
    pub meta: Metadata,
    /// Its content, by kind.
    pub content: Content,
    /// Why the entry could not be read in full, when it could not.
    pub error: Option<String>,
}

impl Node {
    /// The name for display; bytes that are not UTF-8 become U+FFFD.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A directory's entries, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    /// Entries, sorted by name bytes, so equal directories encode alike.
    pub nodes: Vec<Node>,
}

/// True for names a tree may hold: a restore can never escape its target.
pub fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&b| b == b'/' || b == 0)
}

impl Tree {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let with_links = self.nodes.iter().any(|n| n.meta.links > 1);
        w.u8(if with_links {
            TREE_VERSION_LINKS
        } else {
            TREE_VERSION_PLAIN
        });
        w.varint(self.nodes.len() as u64);
        for node in &self.nodes {
            w.bytes(&node.name);
            w.u8(node.content.kind() as u8);
            let m = &node.meta;
            w.varint(m.mode.into());
            w.varint(m.uid.into());
            w.varint(m.gid.into());
            w.i64(m.mtime_ns);
            w.i64(m.ctime_ns);
            w.varint(m.inode);
            if with_links {
                w.varint(m.links);
                if m.links > 1 {
                    w.varint(m.device);
                }
            }
            w.varint(m.size);
            w.varint(m.xattrs.len() as u64);
            for (k, v) in &m.xattrs {
                w.bytes(k);
                w.bytes(v);
            }
            match &node.content {
                Content::File { chunks } => {
                    w.varint(chunks.len() as u64);
                    for c in chunks {
                        w.fixed(&c.0);
                    }
                }
                Content::Dir { tree } => w.fixed(&tree.0),
                Content::Symlink { target } => w.bytes(target),
                Content::Special => {}
            }
            match &node.error {
                None => w.u8(0),
                Some(e) => {
                    w.u8(1);
                    w.str(e);
                }
            }
        }
        w.into_bytes()
    }

    /// Decodes and validates: names legal, sorted and unique.
    pub(crate) fn decode(bytes: &[u8], what: &str) -> Result<Tree> {
        let mut r = Reader::new(bytes, what);
        let with_links = match r.u8()? {
            TREE_VERSION_PLAIN => false,
            TREE_VERSION_LINKS => true,
            _ => return Err(Error::corrupt(what, "unknown tree version")),
        };
        let count = r.len(20)?;
        let mut nodes: Vec<Node> = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.bytes()?.to_vec();
            if !is_valid_name(&name) {
                return Err(Error::corrupt(what, "illegal entry name"));
            }
            if nodes.last().is_some_and(|prev| prev.name >= name) {
                return Err(Error::corrupt(what, "entries not sorted or duplicated"));
            }
            let kind = EntryKind::from_u8(r.u8()?)
                .ok_or_else(|| Error::corrupt(what, "unknown entry kind"))?;
            let small =
                |v: u64| u32::try_from(v).map_err(|_| Error::corrupt(what, "field out of range"));
            let mode = small(r.varint()?)?;
            let uid = small(r.varint()?)?;
            let gid = small(r.varint()?)?;
            let mtime_ns = r.i64()?;
            let ctime_ns = r.i64()?;
            let inode = r.varint()?;
            let (links, device) = if with_links {
                let links = r.varint()?;
                (links, if links > 1 { r.varint()? } else { 0 })
            } else {
                (0, 0)
            };
            let size = r.varint()?;
            let xattr_count = r.len(2)?;
            let mut xattrs = Vec::with_capacity(xattr_count);
            for _ in 0..xattr_count {
                let k = r.bytes()?.to_vec();
                let v = r.bytes()?.to_vec();
                xattrs.push((k, v));
            }
            let content = match kind {
                EntryKind::File => {
                    let n = r.len(32)?;
                    let mut chunks = Vec::with_capacity(n);
                    for _ in 0..n {
                        chunks.push(Id(r.array()?));
                    }
                    Content::File { chunks }
                }
                EntryKind::Dir => Content::Dir {
                    tree: Id(r.array()?),
                },
                EntryKind::Symlink => Content::Symlink {
                    target: r.bytes()?.to_vec(),
                },
                EntryKind::Special => Content::Special,
            };
            let error = match r.u8()? {
                0 => None,
                1 => Some(r.string()?),
                _ => return Err(Error::corrupt(what, "bad error flag")),
            };
            nodes.push(Node {
                name,
                meta: Metadata {
                    mode,
                    uid,
                    gid,
                    mtime_ns,
                    ctime_ns,
                    inode,
                    size,
                    xattrs,
                    links,
                    device,
                },
                content,
                error,
            });
        }
        r.finish()?;
        Ok(Tree { nodes })
    }

    /// The entry named `name`, by binary search.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn arb_name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=255, 1..20).prop_filter("legal", |n| is_valid_name(n))
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        let content = prop_oneof![
            proptest::collection::vec(any::<[u8; 32]>(), 0..5).prop_map(|c| Content::File {
                chunks: c.into_iter().map(Id).collect()
            }),
            any::<[u8; 32]>().prop_map(|t| Content::Dir { tree: Id(t) }),
            proptest::collection::vec(any::<u8>(), 1..30)
                .prop_map(|t| Content::Symlink { target: t }),
            Just(Content::Special),
        ];
        (
            arb_name(),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<i64>(),
                any::<i64>(),
                any::<u64>(),
                any::<u64>(),
                prop_oneof![Just((0, 0)), (2u64..5, any::<u64>())],
            ),
            proptest::collection::vec((arb_name(), any::<Vec<u8>>()), 0..3),
            content,
            proptest::option::of(".*"),
        )
            .prop_map(
                |(
                    name,
                    (mode, uid, gid, mtime_ns, ctime_ns, inode, size, (links, device)),
                    xattrs,
                    content,
                    error,
                )| Node {
                    name,
                    meta: Metadata {
                        mode,
                        uid,
                        gid,
                        mtime_ns,
                        ctime_ns,
                        inode,
                        size,
                        xattrs,
                        links,
                        device,
                    },
                    content,
                    error,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(mut nodes in proptest::collection::vec(arb_node(), 0..20)) {
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            nodes.dedup_by(|a, b| a.name == b.name);
            let tree = Tree { nodes };
            prop_assert_eq!(Tree::decode(&tree.encode(), "t").unwrap(), tree);
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let _ = Tree::decode(&bytes, "t");
        }
    }

    #[test]
    fn later_names_of_a_linked_file_point_at_the_first() {
        let meta = |inode, device| Metadata {
            inode,
            device,
            links: 2,
            ..Metadata::default()
        };
        let chunks = [Id([1; 32])];
        let mut groups = LinkGroups::default();
        assert_eq!(groups.earlier_name(b"a", &meta(7, 1), &chunks), None);
        assert_eq!(
            groups.earlier_name(b"b", &meta(7, 1), &chunks),
            Some(&b"a"[..])
        );
        // Another device, or content that changed between reads: no link.
        assert_eq!(groups.earlier_name(b"c", &meta(7, 2), &chunks), None);
        assert_eq!(groups.earlier_name(b"d", &meta(7, 1), &[Id([2; 32])]), None);
        // A file with one link is never grouped.
        let single = Metadata {
            inode: 7,
            device: 1,
            links: 1,
            ..Metadata::default()
        };
        assert_eq!(groups.earlier_name(b"e", &single, &chunks), None);
    }

    #[test]
    fn a_tree_without_links_is_written_as_before() {
        let node = |links| Node {
            name: b"f".to_vec(),
            meta: Metadata {
                inode: 7,
                links,
                device: 3,
                ..Metadata::default()
            },
            content: Content::Special,
            error: None,
        };
        let plain = Tree {
            nodes: vec![node(1)],
        }
        .encode();
        assert_eq!(plain[0], TREE_VERSION_PLAIN);
        // Read back, an unknown count is 0 and no device is kept.
        let back = Tree::decode(&plain, "t").unwrap();
        assert_eq!(
            (back.nodes[0].meta.links, back.nodes[0].meta.device),
            (0, 0)
        );
        let linked = Tree {
            nodes: vec![node(2)],
        };
        assert_eq!(linked.encode()[0], TREE_VERSION_LINKS);
        assert_eq!(Tree::decode(&linked.encode(), "t").unwrap(), linked);
    }

    #[test]
    fn dot_dot_and_slash_are_refused() {
        for bad in [&b".."[..], b".", b"a/b", b""] {
            let tree = Tree {
                nodes: vec![Node {
                    name: bad.to_vec(),
                    meta: Metadata::default(),
                    content: Content::Special,
                    error: None,
                }],
            };
            assert!(Tree::decode(&tree.encode(), "t").is_err(), "{bad:?}");
        }
    }
}
