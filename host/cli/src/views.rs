//! The JSON shapes of what kast shows. `--json` prints them and the web
//! UI's API serves them, so a script sees one set of field names wherever
//! it reads them (docs/cli.md lists them).

use crate::spec::format_time;
use kast_engine::Store;
use kast_engine::browse::{Change, ChangeKind};
use kast_engine::crypto::Id;
use kast_engine::snapshot::Snapshot;
use kast_engine::storage::ObjectKind;
use kast_engine::tree::{Content, Node};
use kast_plugins::Listed;
use serde_json::{Value, json};

/// Text from a snapshot, a plugin or a server as a terminal gets it:
/// control characters escaped (`\u{1b}`), so a file name or a message
/// cannot clear the screen or forge a line; invalid UTF-8 as U+FFFD.
pub fn shown(text: &[u8]) -> String {
    kast_plugins::plugin_log::escaped(text)
}

/// One snapshot in a list (`kast ls`).
pub fn snapshot(id: &Id, s: &Snapshot) -> Value {
    json!({
        "id": id.to_hex(), "time": format_time(s.time_ns), "time_ns": s.time_ns, "host": s.host,
        "user": s.user, "source": s.source, "tags": s.tags, "job": s.job, "files": s.summary.files,
        "logical_bytes": s.summary.logical_bytes, "errors": s.summary.errors, "writer": s.writer,
    })
}

/// One snapshot in full (`kast info SNAPSHOT`).
pub fn snapshot_detail(id: &Id, snap: &Snapshot) -> Value {
    let s = &snap.summary;
    json!({
        "id": id.to_hex(), "time": format_time(snap.time_ns), "host": snap.host, "user": snap.user,
        "source": snap.source, "tags": snap.tags, "job": snap.job, "root": snap.root.to_hex(),
        "writer": snap.writer,
        "files": s.files, "dirs": s.dirs, "symlinks": s.symlinks, "errors": s.errors,
        "logical_bytes": s.logical_bytes, "files_read": s.files_read, "files_unchanged": s.files_unchanged,
        "bytes_read": s.bytes_read, "bytes_added": s.bytes_added, "duration_ms": s.duration_ms,
    })
}

/// The kind of a tree entry, as the JSON names it.
pub fn kind_name(node: &Node) -> &'static str {
    match node.content {
        Content::File { .. } => "file",
        Content::Dir { .. } => "dir",
        Content::Symlink { .. } => "symlink",
        Content::Special => "special",
    }
}

/// One entry of a snapshot's directory (`kast ls SNAPSHOT:PATH`): what
/// `ls -l` shows, in fields a script need not parse further.
pub fn node(n: &Node) -> Value {
    let target = match &n.content {
        Content::Symlink { target } => Some(String::from_utf8_lossy(target).into_owned()),
        _ => None,
    };
    json!({
        "name": n.name_lossy(), "kind": kind_name(n),
        "mode": format!("{:04o}", n.meta.mode & 0o7777), "permissions": permissions(n),
        "uid": n.meta.uid, "gid": n.meta.gid,
        "size": n.meta.size, "mtime": format_time(n.meta.mtime_ns), "mtime_ns": n.meta.mtime_ns,
        "target": target, "error": n.error,
    })
}

/// One match of `kast find`.
pub fn found(snapshot: &Id, f: &kast_engine::find::Found) -> Value {
    json!({
        "snapshot": snapshot.to_hex(), "path": String::from_utf8_lossy(&f.path),
        "kind": f.kind.as_str(), "size": f.size, "mtime": format_time(f.mtime_ns),
        "mtime_ns": f.mtime_ns,
    })
}

/// `-rw-r--r--`, as `ls -l` writes it (setuid, setgid and sticky too).
pub fn permissions(n: &Node) -> String {
    let mode = n.meta.mode;
    let kind = match n.content {
        Content::Dir { .. } => 'd',
        Content::Symlink { .. } => 'l',
        Content::File { .. } => '-',
        Content::Special => match mode & libc::S_IFMT {
            libc::S_IFIFO => 'p',
            libc::S_IFCHR => 'c',
            libc::S_IFBLK => 'b',
            libc::S_IFSOCK => 's',
            _ => '?',
        },
    };
    let mut text = String::from(kind);
    for (shift, special, set, unset) in [
        (6, libc::S_ISUID, 's', 'S'),
        (3, libc::S_ISGID, 's', 'S'),
        (0, libc::S_ISVTX, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        text.push(match (mode & special != 0, exec) {
            (true, true) => set,
            (true, false) => unset,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    text
}

/// The name of a change, as the JSON names it.
pub fn change_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Modified => "modified",
        ChangeKind::Metadata => "metadata",
    }
}

/// One difference between two snapshots (`kast diff`).
pub fn change(c: &Change) -> Value {
    json!({
        "path": c.path_lossy(), "change": change_name(c.kind), "old_size": c.old_size, "new_size": c.new_size,
        "metadata": c.metadata,
    })
}

/// What a plugin may reach, in words: the grants depend on the location,
/// never on the plugin (see docs/connector-contract.md).
pub fn reach(listed: &Listed) -> String {
    listed
        .info
        .schemes
        .iter()
        .map(|s| format!("{s}://: {}", kast_plugins::sandbox::reach(s)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One plugin (`kast plugin list|info`).
pub fn plugin(listed: &Listed) -> Value {
    json!({
        "name": listed.info.name, "version": listed.info.version, "contract": listed.contract,
        "schemes": listed.info.schemes,
        "roles": listed.info.roles.iter().map(|r| r.name()).collect::<Vec<_>>(),
        "description": listed.info.description, "builtin": listed.builtin, "hash": listed.hash,
        "size": listed.size, "reach": reach(listed),
    })
}

/// The store as a whole (`kast info`): what it holds and how well it
/// dedups and compresses. Lists the packs (one storage listing).
pub fn store(
    store: &Store,
    snapshots: &[(Id, Snapshot)],
    damaged: usize,
) -> kast_engine::Result<Value> {
    let packs = store.storage().list(ObjectKind::Pack)?;
    let stored: u64 = packs.iter().map(|p| p.size).sum();
    let logical: u64 = snapshots.iter().map(|(_, s)| s.summary.logical_bytes).sum();
    let ratio = if stored > 0 {
        logical as f64 / stored as f64
    } else {
        0.0
    };
    let index = store.index()?;
    Ok(json!({
        "location": store.location(), "store_id": store.config().store_id,
        "snapshots": snapshots.len(), "damaged_snapshots": damaged,
        "packs": packs.len(), "stored_bytes": stored, "logical_bytes": logical,
        "blobs": index.len(), "dedup_ratio": ratio,
        "chunker": store.config().chunker, "pack_target": store.config().pack_target,
        "format": store.config().version,
        "compression": store.config().compression().to_string(),
    }))
}

/// A finished restore (`kast restore --json`).
pub fn restored(
    id: &Id,
    snapshot: &kast_engine::snapshot::Snapshot,
    outcome: &kast_engine::RestoreOutcome,
) -> Value {
    json!({
        "id": id.to_hex(), "time": format_time(snapshot.time_ns), "time_ns": snapshot.time_ns, "files": outcome.files, "dirs": outcome.dirs, "symlinks": outcome.symlinks,
        "hard_links": outcome.hard_links, "bytes": outcome.bytes,
        "skipped": outcome.skipped, "first_skipped": outcome.first_skipped,
        "errors": outcome.errors.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
        "losses": outcome.losses.iter().map(|l| json!({
            "kind": l.kind.name(), "count": l.count, "example": l.example, "message": l.message,
        })).collect::<Vec<_>>(),
    })
}

/// A check's findings (`kast check --json`).
pub fn check_report(report: &kast_engine::check::CheckReport) -> Value {
    json!({
        "clean": report.is_clean(), "snapshots": report.snapshots, "trees": report.trees,
        "packs": report.packs, "packs_read": report.packs_read, "blobs": report.blobs, "bytes": report.bytes, "orphan_packs": report.orphan_packs,
        "damage": report.damage.iter().map(|d| json!({"object": d.object, "problem": d.problem, "affects": d.affects})).collect::<Vec<_>>(),
    })
}
