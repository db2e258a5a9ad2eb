//! Removing snapshots and reclaiming space.
//!
//! `rm` deletes snapshot headers only: other snapshots never depend on them.
//! Maintenance, under the exclusive lock, finds the blobs no snapshot
//! reaches, deletes packs that hold nothing live, repacks packs that are
//! mostly dead, and replaces all states by merged ones. Packs no state
//! lists (left by interrupted backups) are deleted only once they have been
//! seen unlisted for a grace period, so nothing a running backup just wrote
//! can go.

use crate::blob::BlobKind;
use crate::browse;
use crate::crypto::{Id, Sealing};
use crate::error::{Error, Result};
use crate::index::{BlobLocation, Index};
use crate::pack::PackEntry;
use crate::pipeline::{self, Written};
use crate::storage::ObjectKind;
use crate::store::Store;
use crate::tree::Content;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Deletes snapshot headers. Unknown ids are an error before anything goes.
pub fn remove_snapshots(store: &Store, ids: &[Id]) -> Result<()> {
    store.require_full("remove snapshots")?;
    let present: HashSet<String> = store
        .storage()
        .list(ObjectKind::Snapshot)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    if let Some(missing) = ids.iter().find(|id| !present.contains(&id.to_hex())) {
        return Err(Error::NoSuchSnapshot(missing.to_hex()));
    }
    for id in ids {
        store.storage().delete(ObjectKind::Snapshot, &id.to_hex())?;
    }
    Ok(())
}

/// Packs and the blobs each holds, as a state lists them.
type Packs = Vec<(Id, Vec<PackEntry>)>;

/// How maintenance runs.
#[derive(Clone, Debug)]
pub struct MaintenanceOptions {
    /// How long a pack no state lists must stay unlisted before it is deleted.
    pub grace: Duration,
    /// Packs whose live bytes are below this fraction are repacked.
    pub repack_below: f64,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3600),
            repack_below: 0.75,
        }
    }
}

/// What maintenance did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Packs removed because nothing they held was still used.
    pub packs_deleted: u64,
    /// Packs partly used, whose live blobs were copied out before removal.
    pub packs_repacked: u64,
    /// Packs written by that copying.
    pub packs_written: u64,
    /// Blobs no snapshot reached any more.
    pub blobs_dropped: u64,
    /// Bytes of storage given back (deleted packs less written ones).
    pub bytes_freed: u64,
    /// Index states before compaction.
    pub states_before: u64,
    /// Index states after: fewer states make every open faster.
    pub states_after: u64,
    /// Unlisted packs seen for the first time (deleted after the grace period).
    pub orphans_marked: u64,
    /// Unlisted packs deleted, their grace period over.
    pub orphans_deleted: u64,
}

#[derive(Default)]
struct PackUse {
    /// Every blob the pack holds, once each.
    all: Vec<PackEntry>,
    live: Vec<(Id, BlobLocation)>,
    live_bytes: u64,
    dead_bytes: u64,
    dead_blobs: u64,
}

/// Runs maintenance under the exclusive lock.
pub fn maintenance(store: &Store, options: &MaintenanceOptions) -> Result<MaintenanceReport> {
    store.require_full("run maintenance")?;
    let _lock = store.lock(true, "maintenance")?;
    let mut report = MaintenanceReport::default();
    let index = Index::load(&**store.storage(), store.keys(), None)?;
    if let Some(d) = index.damaged.first() {
        return Err(Error::corrupt(
            format!("state {}", d.name),
            format!(
                "{}; maintenance would drop the blobs it lists, so it stops (run check)",
                d.error
            ),
        ));
    }
    let mut put_only_records = 0u64;
    index.for_each(|_, l| put_only_records += u64::from(!l.trusted));
    if put_only_records > 0 {
        return Err(Error::InvalidArgument(
            "this store holds backups made with put-only keys, which maintenance cannot yet \
             verify and adopt (docs/store-format.md); nothing was changed"
                .into(),
        ));
    }
    let list = browse::snapshots(store)?;
    if let Some((name, e)) = list.damaged.first() {
        return Err(Error::corrupt(
            format!("snapshot {name}"),
            format!("{e}; remove it with rm before maintenance"),
        ));
    }
    let mut reachable = reachable_blobs(store, &index, list.snapshots.iter().map(|(_, s)| s.root))?;
    // The activity log is history of its own, reached by no snapshot.
    index.for_each(|id, l| {
        if l.kind == BlobKind::Activity {
            reachable.insert(id);
        }
    });

    // Every pack's blobs, once each (after a crash two states may list the
    // same pack), then which are live: the first copy of each reachable blob.
    let mut packs: HashMap<Id, PackUse> = HashMap::new();
    index.for_each(|id, l| packs.entry(l.pack).or_default().all.push(entry(id, &l)));
    let mut placed: HashSet<Id> = HashSet::new();
    for (pack, u) in packs.iter_mut() {
        u.all.sort_by_key(|e| e.offset);
        u.all.dedup_by_key(|e| e.offset);
        for e in &u.all {
            if reachable.contains(&e.id) && placed.insert(e.id) {
                u.live.push((e.id, location(*pack, e)));
                u.live_bytes += u64::from(e.length);
            } else {
                u.dead_bytes += u64::from(e.length);
                u.dead_blobs += 1;
            }
        }
    }
    let stored: HashMap<String, u64> = store
        .storage()
        .list(ObjectKind::Pack)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    let old_states: Vec<String> = store
        .storage()
        .list(ObjectKind::State)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    report.states_before = old_states.len() as u64;

    let mut keep: Packs = Vec::new();
    let mut repack: Vec<(Id, Vec<(Id, BlobLocation)>)> = Vec::new();
    let mut delete: Vec<Id> = Vec::new();
    for (pack, u) in packs {
        report.blobs_dropped += u.dead_blobs;
        let total = u.live_bytes + u.dead_bytes;
        if u.live.is_empty() {
            delete.push(pack);
        } else if u.dead_bytes > 0 && (u.live_bytes as f64) < options.repack_below * total as f64 {
            repack.push((pack, u.live));
        } else {
            // Kept as it is; its dead blobs stay listed until it falls below
            // the threshold and is repacked.
            report.blobs_dropped -= u.dead_blobs;
            keep.push((pack, u.all));
        }
    }
    let nothing_to_do = delete.is_empty() && repack.is_empty() && old_states.len() <= 1;

    if !nothing_to_do {
        // The repacked packs come with states of their own, which the
        // merged states replace like the old ones.
        let written = write_repacked(store, &repack)?;
        report.packs_repacked = repack.len() as u64;
        let mut superseded = old_states.clone();
        for (name, state) in written.states {
            superseded.push(name.to_hex());
            report.packs_written += state.packs.len() as u64;
            keep.extend(state.packs);
        }

        // New states first, then old states, then packs: a crash at any
        // point leaves every live blob listed by some state.
        let new_states: HashSet<String> =
            pipeline::put_states(store.keys(), &**store.storage(), keep)?
                .into_iter()
                .map(|(name, _)| name.to_hex())
                .collect();
        report.states_after = new_states.len() as u64;
        for name in superseded.iter().filter(|n| !new_states.contains(*n)) {
            store.storage().delete(ObjectKind::State, name)?;
        }
        let mut freed = 0u64;
        for pack in delete.iter().chain(repack.iter().map(|(p, _)| p)) {
            freed += stored.get(&pack.to_hex()).copied().unwrap_or(0);
            store.storage().delete(ObjectKind::Pack, &pack.to_hex())?;
        }
        report.packs_deleted = delete.len() as u64;
        report.bytes_freed = freed.saturating_sub(written.pack_bytes);
    } else {
        report.states_after = report.states_before;
    }

    sweep_orphans(store, &index, &stored, options, &mut report)?;
    Ok(report)
}

fn location(pack: Id, e: &PackEntry) -> BlobLocation {
    BlobLocation {
        pack,
        offset: e.offset,
        length: e.length,
        raw_length: e.raw_length,
        kind: e.kind,
        // Maintenance runs only over full keys' states (see the check at
        // its start).
        sealing: Sealing::Store,
        trusted: true,
    }
}

fn entry(id: Id, l: &BlobLocation) -> PackEntry {
    PackEntry {
        id,
        kind: l.kind,
        offset: l.offset,
        length: l.length,
        raw_length: l.raw_length,
    }
}

/// Every blob any snapshot reaches. A tree that cannot be read stops
/// maintenance: what lies below it is unknown, so nothing may be deleted.
fn reachable_blobs(
    store: &Store,
    index: &Index,
    roots: impl Iterator<Item = Id>,
) -> Result<HashSet<Id>> {
    let mut reachable = HashSet::new();
    let mut pending: Vec<Id> = roots.collect();
    while let Some(id) = pending.pop() {
        if !reachable.insert(id) {
            continue;
        }
        let tree = store.read_tree(index, &id).map_err(|e| {
            Error::corrupt(
                format!("tree {}", id.short()),
                format!("{e}; maintenance stops so that nothing below it is lost (run check)"),
            )
        })?;
        for node in tree.nodes {
            match node.content {
                Content::Dir { tree } => pending.push(tree),
                Content::File { chunks } => reachable.extend(chunks),
                _ => {}
            }
        }
    }
    Ok(reachable)
}

/// Copies live blobs (still sealed) out of mostly-dead packs into new
/// packs, through the pipeline that writes every pack.
fn write_repacked(store: &Store, repack: &[(Id, Vec<(Id, BlobLocation)>)]) -> Result<Written> {
    if repack.is_empty() {
        return Ok(Written::default());
    }
    // Every blob here is in the store's index already: an empty index makes
    // the pipeline write them all.
    let ((), written) = pipeline::write_blobs(store, &mut Index::empty(), 1, |sink| {
        for (pack, live) in repack {
            let bytes = store.storage().get(ObjectKind::Pack, &pack.to_hex())?;
            for (id, l) in live {
                let sealed = bytes
                    .get(l.offset as usize..l.offset as usize + l.length as usize)
                    .ok_or_else(|| {
                        Error::corrupt(
                            format!("pack {}", pack.short()),
                            "shorter than its index says",
                        )
                    })?;
                sink.store_sealed(*id, l.kind, l.raw_length, sealed.to_vec())?;
            }
        }
        Ok(())
    })?;
    Ok(written)
}

/// Deletes packs no state lists once they were first seen unlisted at
/// least `grace` ago; remembers the others in the local cache.
fn sweep_orphans(
    store: &Store,
    index: &Index,
    stored: &HashMap<String, u64>,
    options: &MaintenanceOptions,
    report: &mut MaintenanceReport,
) -> Result<()> {
    let mut listed: HashSet<Id> = HashSet::new();
    index.for_each(|_, l| {
        listed.insert(l.pack);
    });
    let marks_path = store.cache_dir().map(|d| d.join("orphan-packs.json"));
    let mut marks: BTreeMap<String, u64> = marks_path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let now = crate::lock::now_secs();
    let mut next = BTreeMap::new();
    for name in stored.keys() {
        let is_orphan = Id::from_hex(name).is_none_or(|id| !listed.contains(&id));
        if !is_orphan {
            continue;
        }
        let first_seen = marks.remove(name).unwrap_or(now);
        if now.saturating_sub(first_seen) >= options.grace.as_secs() {
            store.storage().delete(ObjectKind::Pack, name)?;
            report.orphans_deleted += 1;
            report.bytes_freed += stored[name];
        } else {
            if first_seen == now {
                report.orphans_marked += 1;
            }
            next.insert(name.clone(), first_seen);
        }
    }
    if let Some(path) = marks_path {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&path, serde_json::to_vec(&next).expect("marks serialize")).map_err(
            |e| Error::Cache {
                path: path.display().to_string(),
                source: e,
            },
        )?;
    }
    Ok(())
}
