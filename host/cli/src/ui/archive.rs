//! A folder of a snapshot as a tar stream, for the browser's "download
//! folder" (and `curl … | tar x`). Written as it is read: one chunk of one
//! file in memory at a time, never the folder or a whole file.
//!
//! GNU tar format (long names and link targets, sizes past 8 GiB) with PAX
//! records for what GNU headers cannot say: nanosecond times and extended
//! attributes (`SCHILY.xattr.*`, which `tar --xattrs` restores). Names are
//! written as the bytes they were backed up as. Devices and sockets are left
//! out (a snapshot keeps no device numbers); so are entries that could not be
//! read at backup time beyond what was kept.

use kast_engine::browse;
use kast_engine::index::Index;
use kast_engine::tree::{Content, Metadata, Node};
use kast_engine::{Error, Store};
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use tar::{Builder, EntryType, Header};

/// What goes into the archive: one folder's entries, each under `top/`.
pub struct Folder<'a> {
    /// The entries' folder name in the archive.
    pub top: &'a [u8],
    pub meta: Metadata,
    pub nodes: Vec<Node>,
}

/// Writes `folder` and everything under it to `out` as a tar archive.
pub fn write_tar(
    store: &Store,
    index: &Index,
    folder: Folder,
    out: impl Write,
) -> Result<(), io::Error> {
    let mut tar = Builder::new(out);
    append_entry(&mut tar, folder.top, &folder.meta, EntryType::Directory)?;
    // Depth-first with an explicit stack: a hostile or just deep tree
    // cannot exhaust the thread's stack.
    // Children are popped from the end: reversed, they come out by name.
    let mut nodes = folder.nodes;
    nodes.reverse();
    let mut pending: Vec<(Vec<u8>, Vec<Node>)> = vec![(folder.top.to_vec(), nodes)];
    // The first path written of each file with several links: the others
    // become hard-link entries to it, as tar itself writes them.
    let mut links = kast_engine::tree::LinkGroups::default();
    while let Some((parent, nodes)) = pending.last_mut() {
        let Some(node) = nodes.pop() else {
            pending.pop();
            continue;
        };
        let path = [parent.as_slice(), b"/", &node.name].concat();
        match &node.content {
            Content::Dir { tree } => {
                append_entry(&mut tar, &path, &node.meta, EntryType::Directory)?;
                let mut children = store.read_tree(index, tree).map_err(io_error)?.nodes;
                children.reverse();
                pending.push((path, children));
            }
            Content::File { chunks } => {
                if let Some(first) = links.earlier_name(&path, &node.meta, chunks) {
                    let mut header = header(&node.meta, EntryType::Link);
                    header.set_size(0);
                    tar.append_link(&mut header, as_path(&path), as_path(first))?;
                    continue;
                }
                let mut header = header(&node.meta, EntryType::Regular);
                extensions(&mut tar, &node.meta)?;
                header.set_size(node.meta.size);
                let content = browse::open_file(store, index, &node).map_err(io_error)?;
                tar.append_data(&mut header, as_path(&path), content)?;
            }
            Content::Symlink { target } => {
                let mut header = header(&node.meta, EntryType::Symlink);
                extensions(&mut tar, &node.meta)?;
                tar.append_link(&mut header, as_path(&path), as_path(target))?;
            }
            Content::Special if node.meta.mode & libc::S_IFMT == libc::S_IFIFO => {
                append_entry(&mut tar, &path, &node.meta, EntryType::Fifo)?;
            }
            Content::Special => {}
        }
    }
    tar.into_inner()?.flush()
}

/// An entry without content: a folder or a FIFO.
fn append_entry(
    tar: &mut Builder<impl Write>,
    path: &[u8],
    meta: &Metadata,
    kind: EntryType,
) -> io::Result<()> {
    let mut header = header(meta, kind);
    extensions(tar, meta)?;
    header.set_size(0);
    tar.append_data(&mut header, as_path(path), io::empty())
}

fn header(meta: &Metadata, kind: EntryType) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(meta.mode & 0o7777);
    header.set_uid(meta.uid.into());
    header.set_gid(meta.gid.into());
    header.set_mtime(meta.mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
    header
}

/// The PAX record that precedes an entry: its exact times and extended
/// attributes (names that are not UTF-8 cannot be written as PAX keys).
fn extensions(tar: &mut Builder<impl Write>, meta: &Metadata) -> io::Result<()> {
    let mtime = pax_time(meta.mtime_ns);
    let ctime = pax_time(meta.ctime_ns);
    let xattrs: Vec<(String, &[u8])> = meta
        .xattrs
        .iter()
        .filter_map(|(name, value)| {
            let name = std::str::from_utf8(name).ok()?;
            Some((format!("SCHILY.xattr.{name}"), value.as_slice()))
        })
        .collect();
    let records = [("mtime", mtime.as_bytes()), ("ctime", ctime.as_bytes())]
        .into_iter()
        .chain(xattrs.iter().map(|(k, v)| (k.as_str(), *v)));
    tar.append_pax_extensions(records)
}

/// Seconds with nine decimals, as PAX writes times.
fn pax_time(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let abs = ns.unsigned_abs();
    format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
}

fn as_path(bytes: &[u8]) -> &std::path::Path {
    std::path::Path::new(OsStr::from_bytes(bytes))
}

fn io_error(e: Error) -> io::Error {
    io::Error::other(e.to_string())
}
