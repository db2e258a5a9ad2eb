//! Removing snapshots and reclaiming space.
//!
//! `rm` deletes snapshot headers only: other snapshots never depend on them.
//! Maintenance, under the exclusive lock, finds the blobs no snapshot
//! reaches, deletes packs that hold nothing live, repacks packs that are
//! mostly dead, and replaces all states by merged ones. Packs no state
//! lists (left by interrupted backups) are deleted only once they have been
//! seen unlisted for a grace period, so nothing a running backup just wrote
//! can go.
//!
//! Data that put-only keys wrote is adopted: each of their packs no full
//! key's state lists yet is read whole, every blob checked against its id,
//! and then listed in maintenance's own states, so full keys reuse it. The
//! put-only key's own state stays (its writer keeps deduplicating against
//! it), rewritten without the packs maintenance drops. A put-only state
//! whose packs fail the check is left as it is and reported.

use crate::blob::{BlobKind, FrameCache, may_be_grouped};
use crate::browse;
use crate::crypto::{Id, Sealing};
use crate::error::{Error, Result};
use crate::index::{BlobLocation, Index, OpenedState, State};
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
    /// Packs put-only keys wrote, checked and now listed in full keys'
    /// states.
    pub packs_adopted: u64,
    /// Put-only keys' states left out because what they list did not
    /// check out, each with why (`check` says the same).
    pub rejected: Vec<String>,
}

#[derive(Default)]
struct PackUse {
    /// How the pack was sealed.
    sealing: Option<Sealing>,
    /// Every blob the pack holds, once each.
    all: Vec<PackEntry>,
    /// Which of `all` are live (a byte, not a location, each: the
    /// locations are made only for the packs repacked).
    live: Vec<bool>,
    live_blobs: u64,
    live_bytes: u64,
    dead_bytes: u64,
    dead_blobs: u64,
}

/// Runs maintenance under the exclusive lock.
pub fn maintenance(store: &Store, options: &MaintenanceOptions) -> Result<MaintenanceReport> {
    store.require_full("run maintenance")?;
    let _lock = store.lock(true, "maintenance")?;
    let mut report = MaintenanceReport::default();
    let (index, _scratch) = store.fresh_index()?;
    if let Some(d) = index.damaged.first() {
        return Err(Error::corrupt(
            format!("state {}", d.name),
            format!(
                "{}; maintenance would drop the blobs it lists, so it stops (run check)",
                d.error
            ),
        ));
    }
    let states = read_states(store)?;
    let (full_states, put_only_states): (Vec<_>, Vec<_>) =
        states.into_iter().partition(|(_, s)| s.trusted);
    let adopted = adopt(store, &full_states, &put_only_states, &mut report);
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
    let mut listed = |pack: Id, sealing: Sealing, e: PackEntry| {
        let u = packs.entry(pack).or_default();
        u.sealing = Some(sealing);
        u.all.push(e);
    };
    report.states_before = (full_states.len() + put_only_states.len()) as u64;
    let old_states: Vec<String> = full_states.iter().map(|(name, _)| name.to_hex()).collect();
    // The states are taken apart as they are listed, so their entries are
    // not held twice.
    for (_, opened) in full_states {
        let sealing = opened.state.sealing;
        for (pack, entries) in opened.state.packs {
            for e in entries {
                listed(pack, sealing, e);
            }
        }
    }
    for (sealing, pack, entries) in adopted {
        for e in entries {
            listed(pack, sealing, e);
        }
    }
    for u in packs.values_mut() {
        // Members of a group share its offset; each is told apart by id.
        u.all.sort_by_key(|e| (e.offset, e.id));
        u.all.dedup_by_key(|e| (e.offset, e.id));
        let shares = frame_shares(&u.all);
        u.live = Vec::with_capacity(u.all.len());
        for (e, share) in u.all.iter().zip(shares) {
            // The first copy met of a reachable blob is the live one.
            let live = reachable.remove(&e.id);
            u.live.push(live);
            if live {
                u.live_blobs += 1;
                u.live_bytes += share;
            } else {
                u.dead_bytes += share;
                u.dead_blobs += 1;
            }
        }
    }
    drop(reachable);
    let stored: HashMap<String, u64> = store
        .storage()
        .list(ObjectKind::Pack)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();

    let mut keep: Vec<(Sealing, Id, Vec<PackEntry>)> = Vec::new();
    let mut repack: Vec<(Id, Vec<(Id, BlobLocation)>)> = Vec::new();
    let mut delete: Vec<Id> = Vec::new();
    for (pack, u) in packs {
        report.blobs_dropped += u.dead_blobs;
        let total = u.live_bytes + u.dead_bytes;
        if u.live_blobs == 0 {
            delete.push(pack);
        } else if u.dead_bytes > 0 && (u.live_bytes as f64) < options.repack_below * total as f64 {
            let sealing = u.sealing.unwrap_or(Sealing::Store);
            let live = u
                .all
                .iter()
                .zip(&u.live)
                .filter(|(_, live)| **live)
                .map(|(e, _)| (e.id, location(pack, sealing, e)))
                .collect();
            repack.push((pack, live));
        } else {
            // Kept as it is; its dead blobs stay listed until it falls below
            // the threshold and is repacked.
            report.blobs_dropped -= u.dead_blobs;
            keep.push((u.sealing.unwrap_or(Sealing::Store), pack, u.all));
        }
    }
    let nothing_to_do = delete.is_empty()
        && repack.is_empty()
        && old_states.len() <= 1
        && report.packs_adopted == 0;

    if !nothing_to_do {
        // The repacked packs come with states of their own, which the
        // merged states replace like the old ones.
        let written = write_repacked(store, &repack)?;
        report.packs_repacked = repack.len() as u64;
        let mut superseded = old_states.clone();
        let repacked: Packs = written
            .states
            .iter()
            .flat_map(|(_, state)| state.packs.iter().cloned())
            .collect();
        for (name, state) in written.states {
            superseded.push(name.to_hex());
            report.packs_written += state.packs.len() as u64;
            keep.extend(state.packs.into_iter().map(|(p, e)| (state.sealing, p, e)));
        }

        // New states first, then old states, then packs: a crash at any
        // point leaves every live blob listed by some state. One set of
        // states per sealing: a state says how all its packs were sealed.
        let mut by_sealing: BTreeMap<Sealing, Packs> = BTreeMap::new();
        for (sealing, pack, entries) in keep {
            by_sealing.entry(sealing).or_default().push((pack, entries));
        }
        let mut new_states: HashSet<String> = HashSet::new();
        for (sealing, packs) in by_sealing {
            for (name, _) in pipeline::put_states(store.keys(), &**store.storage(), sealing, packs)?
            {
                new_states.insert(name.to_hex());
            }
        }
        let dropped: HashSet<Id> = delete
            .iter()
            .chain(repack.iter().map(|(p, _)| p))
            .copied()
            .collect();
        let (rewritten, gone) =
            rewrite_put_only_states(store, &put_only_states, &dropped, &repacked)?;
        report.states_after =
            (new_states.len() + put_only_states.len() + rewritten - gone.len()) as u64;
        superseded.extend(gone);
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

fn location(pack: Id, sealing: Sealing, e: &PackEntry) -> BlobLocation {
    BlobLocation {
        pack,
        offset: e.offset,
        length: e.length,
        raw_length: e.raw_length,
        kind: e.kind,
        sealing,
        trusted: true,
    }
}

/// Every state, opened, with its name. Maintenance reads them itself (the
/// index merges them) because it must know which state wrote what.
fn read_states(store: &Store) -> Result<Vec<(Id, OpenedState)>> {
    let mut out = Vec::new();
    for object in store.storage().list(ObjectKind::State)? {
        let what = format!("state {}", object.name);
        let name = Id::from_hex(&object.name).ok_or_else(|| Error::corrupt(&what, "bad name"))?;
        let sealed = store.storage().get(ObjectKind::State, &object.name)?;
        let opened = State::open(store.keys(), &name, &sealed)?
            .ok_or_else(|| Error::corrupt(&what, "unreadable with a full key"))?;
        out.push((name, opened));
    }
    Ok(out)
}

/// The packs of put-only states that no full key's state lists yet,
/// checked; those that pass, to be listed by maintenance's own states.
/// A state with any pack that fails is left out whole (and reported).
fn adopt(
    store: &Store,
    full_states: &[(Id, OpenedState)],
    put_only_states: &[(Id, OpenedState)],
    report: &mut MaintenanceReport,
) -> Vec<(Sealing, Id, Vec<PackEntry>)> {
    let known: HashSet<(Id, Sealing)> = full_states
        .iter()
        .flat_map(|(_, o)| o.state.packs.iter().map(|(p, _)| (*p, o.state.sealing)))
        .collect();
    let mut adopted = Vec::new();
    for (name, opened) in put_only_states {
        let sealing = opened.state.sealing;
        let fresh: Vec<&(Id, Vec<PackEntry>)> = opened
            .state
            .packs
            .iter()
            .filter(|(pack, _)| !known.contains(&(*pack, sealing)))
            .collect();
        let checked = fresh
            .iter()
            .try_for_each(|(pack, entries)| check_put_only_pack(store, sealing, pack, entries));
        match checked {
            Ok(()) => {
                report.packs_adopted += fresh.len() as u64;
                adopted.extend(fresh.into_iter().map(|(p, e)| (sealing, *p, e.clone())));
            }
            Err(e) => report.rejected.push(format!("state {}: {e}", name.short())),
        }
    }
    adopted
}

/// Each blob's share of the pack's bytes: its frame's length, split among
/// a group's members by their plaintext lengths. `entries` is in offset
/// order, so a group's members are side by side.
fn frame_shares(entries: &[PackEntry]) -> Vec<u64> {
    let mut shares = Vec::with_capacity(entries.len());
    for frame in entries.chunk_by(|a, b| a.offset == b.offset) {
        let length = u64::from(frame[0].length);
        let raw: u64 = frame.iter().map(|e| u64::from(e.raw_length)).sum();
        for e in frame {
            shares.push(match raw {
                0 => length / frame.len() as u64,
                raw => length * u64::from(e.raw_length) / raw,
            });
        }
    }
    shares
}

/// Reads a pack a put-only key wrote and checks all the state says of it:
/// the pack's name, its footer (which must list what the state lists), and
/// every blob against its id.
fn check_put_only_pack(
    store: &Store,
    sealing: Sealing,
    pack: &Id,
    entries: &[PackEntry],
) -> Result<()> {
    let bytes = store.storage().get(ObjectKind::Pack, &pack.to_hex())?;
    let mut footer = crate::pack::read_footer(store.keys(), sealing, pack, &bytes)?;
    let mut listed = entries.to_vec();
    footer.sort_by_key(|e| (e.offset, e.id));
    listed.sort_by_key(|e| (e.offset, e.id));
    if footer != listed {
        return Err(Error::corrupt(
            format!("pack {}", pack.short()),
            "the state lists other blobs than the pack holds",
        ));
    }
    let mut frames = FrameCache::default();
    for e in &listed {
        let sealed = &bytes[e.offset as usize..e.offset as usize + e.length as usize];
        frames.open(
            store.keys(),
            (pack, e.offset),
            (sealing, e.kind, e.raw_length),
            &e.id,
            sealed,
        )?;
    }
    Ok(())
}

/// Writes again, as their key did, the put-only states that list packs
/// maintenance drops: without them, plus a state (sealing: the store's)
/// listing where their live blobs were repacked, so the key keeps
/// deduplicating against its own data. Returns how many states were
/// written and the names of those they replace.
fn rewrite_put_only_states(
    store: &Store,
    put_only_states: &[(Id, OpenedState)],
    dropped: &HashSet<Id>,
    repacked: &Packs,
) -> Result<(usize, Vec<String>)> {
    let mut written = 0;
    let mut gone = Vec::new();
    for (name, opened) in put_only_states {
        let Some(author) = opened.author else {
            continue;
        };
        let (lost, kept): (Packs, Packs) = opened
            .state
            .packs
            .iter()
            .cloned()
            .partition(|(p, _)| dropped.contains(p));
        if lost.is_empty() {
            continue;
        }
        let lost_ids: HashSet<Id> = lost
            .iter()
            .flat_map(|(_, es)| es.iter().map(|e| e.id))
            .collect();
        let moved: Packs = repacked
            .iter()
            .map(|(pack, entries)| {
                let mine = entries.iter().filter(|e| lost_ids.contains(&e.id)).copied();
                (*pack, mine.collect::<Vec<_>>())
            })
            .filter(|(_, entries)| !entries.is_empty())
            .collect();
        for state in [
            State {
                packs: kept,
                sealing: opened.state.sealing,
            },
            State {
                packs: moved,
                sealing: Sealing::Store,
            },
        ] {
            if state.packs.is_empty() {
                continue;
            }
            let sealed = state.seal_as(store.keys(), &author)?;
            store
                .storage()
                .put(ObjectKind::State, &Id::of_object(&sealed).to_hex(), &sealed)?;
            written += 1;
        }
        gone.push(name.to_hex());
    }
    Ok((written, gone))
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
            let mut frames = FrameCache::default();
            for (id, l) in live {
                let sealed = bytes
                    .get(l.offset as usize..l.offset as usize + l.length as usize)
                    .ok_or_else(|| {
                        Error::corrupt(
                            format!("pack {}", pack.short()),
                            "shorter than its index says",
                        )
                    })?;
                if l.sealing == Sealing::Store && !may_be_grouped(l.kind, l.raw_length) {
                    // Copied as it is.
                    sink.store_sealed(*id, l.kind, l.raw_length, sealed.to_vec())?
                } else {
                    // Opened (and so checked) and sealed again: a put-only
                    // session's with the seal subkey, so the new pack is a
                    // full key's; a group's members one by one, so its dead
                    // members are left behind and its live ones grouped anew.
                    let plain = frames.open(
                        store.keys(),
                        (pack, l.offset),
                        (l.sealing, l.kind, l.raw_length),
                        id,
                        sealed,
                    )?;
                    sink.store(*id, l.kind, plain)?
                }
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
