//! Removing snapshots and reclaiming space.
//!
//! `rm` deletes snapshot headers only: other snapshots never depend on them.
//! Maintenance, under the exclusive lock, finds the blobs no snapshot
//! reaches, deletes packs that hold nothing live, repacks packs that are
//! mostly dead, and writes again the states that list what it dropped
//! (merging small states on the way). Packs no state lists (left by
//! interrupted backups) are deleted only once they have been seen unlisted
//! for a grace period, so nothing a running backup just wrote can go.
//!
//! Its memory does not grow with the store's entries: the reachable set is
//! 12 bytes a blob ([`reachable`]), the states are read one at a time
//! ([`listing`]), and only packs and states are held whole in maps.
//! Data put-only keys wrote is adopted first ([`put_only`]).

mod listing;
mod put_only;
mod reachable;

use crate::blob::{FrameCache, may_be_grouped};
use crate::browse;
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::index::{Index, PackEntry};
use crate::pipeline::{self, StateWriter, Written};
use crate::storage::ObjectKind;
use crate::store::{ScratchDir, Store};
use listing::{Listing, States};
use reachable::Reachable;
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

/// What becomes of a pack.
enum Fate {
    /// Kept as it is; its dead blobs stay listed until it falls below the
    /// threshold and is repacked.
    Keep,
    /// Nothing in it is used any more.
    Delete,
    /// Mostly dead: its live blobs are copied out, then it is deleted. One
    /// flag an entry, in the order [`States::for_each_pack`] gives them.
    Repack(Vec<bool>),
}

/// Runs maintenance under the exclusive lock.
pub fn maintenance(store: &Store, options: &MaintenanceOptions) -> Result<MaintenanceReport> {
    store.require_full("run maintenance")?;
    let _lock = store.lock(true, "maintenance")?;
    let mut report = MaintenanceReport::default();
    let (index, scratch) = store.fresh_index()?;
    if let Some(d) = index.damaged.first() {
        return Err(Error::corrupt(
            format!("state {}", d.name),
            format!(
                "{}; maintenance would drop the blobs it lists, so it stops (run check)",
                d.error
            ),
        ));
    }
    let states = States::read(store, scratch.as_ref().map(ScratchDir::path))?;
    report.states_before = states.infos.len() as u64;
    // A full key's states count whole, put-only keys' for what is adopted.
    let mut listings: Vec<Listing> = (0..states.infos.len())
        .filter(|i| states.infos[*i].trusted)
        .map(|state| Listing { state, only: None })
        .collect();
    listings.extend(put_only::adopt(store, &states, &mut report)?);
    let list = browse::snapshots(store)?;
    if let Some((name, e)) = list.damaged.first() {
        return Err(Error::corrupt(
            format!("snapshot {name}"),
            format!("{e}; remove it with rm before maintenance"),
        ));
    }
    let mut reachable =
        Reachable::gather(store, &index, list.snapshots.iter().map(|(_, s)| s.root))?;
    let mut fates: HashMap<Id, Fate> = HashMap::new();
    states.for_each_pack(
        store,
        &listings,
        |_| true,
        |pack, _, entries| {
            fates.insert(pack, decide(&entries, &mut reachable, options, &mut report));
            Ok(())
        },
    )?;
    drop(reachable);
    let stored: HashMap<String, u64> = store
        .storage()
        .list(ObjectKind::Pack)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();

    // The full states written again: those listing a pack dropped or one
    // another state lists too, and the small ones, merged.
    let dropped: HashSet<Id> = fates
        .iter()
        .filter(|(_, fate)| !matches!(fate, Fate::Keep))
        .map(|(pack, _)| *pack)
        .collect();
    let twice = states.listed_twice(&listings);
    let small = |i: usize| states.infos[i].blobs < pipeline::STATE_PART / 2;
    let touched = |i: usize| {
        let info = &states.infos[i];
        info.trusted
            && info
                .packs
                .iter()
                .any(|p| dropped.contains(p) || twice.contains(p))
    };
    let full: Vec<usize> = (0..states.infos.len())
        .filter(|i| states.infos[*i].trusted)
        .collect();
    let nothing_to_do = dropped.is_empty()
        && report.packs_adopted == 0
        && !full.iter().any(|i| touched(*i))
        && full.iter().filter(|i| small(**i)).count() <= 1;
    if nothing_to_do {
        report.states_after = report.states_before;
    } else {
        let rewrite: Vec<bool> = (0..states.infos.len())
            .map(|i| states.infos[i].trusted && (touched(i) || small(i)))
            .collect();
        let written = write_repacked(store, &states, &listings, &fates)?;
        let (put_only_written, put_only_gone) =
            put_only::rewrite_states(store, &states, &dropped, &written.states)?;

        // New states first, then old states, then packs: a crash at any
        // point leaves every live blob listed by some state.
        let mut writer = StateWriter::new(store.keys(), &**store.storage());
        let mut new_states: HashSet<String> = HashSet::new();
        let mut superseded: Vec<String> = Vec::new();
        // Adopted packs (the only listings of put-only states) are listed
        // in maintenance's states too.
        let is_put_only = |i: usize| !states.infos[i].trusted;
        states.for_each_pack(
            store,
            &listings,
            |i| rewrite[i] || is_put_only(i),
            |pack, sealing, entries| {
                if let Some(Fate::Keep) = fates.get(&pack)
                    && let Some((name, _)) = writer.add(sealing, pack, entries)?
                {
                    new_states.insert(name.to_hex());
                }
                Ok(())
            },
        )?;
        // The repacked copies' states are merged in too.
        for (name, state) in written.states {
            superseded.push(name.to_hex());
            report.packs_written += state.packs.len() as u64;
            for (pack, entries) in state.packs {
                if let Some((name, _)) = writer.add(state.sealing, pack, entries)? {
                    new_states.insert(name.to_hex());
                }
            }
        }
        new_states.extend(writer.finish()?.into_iter().map(|(n, _)| n.to_hex()));
        superseded.extend(
            (0..states.infos.len())
                .filter(|i| rewrite[*i])
                .map(|i| states.infos[i].name.to_hex()),
        );
        superseded.extend(put_only_gone.iter().cloned());
        let kept_as_they_are = states.infos.len() - rewrite.iter().filter(|r| **r).count();
        report.states_after =
            (new_states.len() + kept_as_they_are + put_only_written - put_only_gone.len()) as u64;
        for name in superseded.iter().filter(|n| !new_states.contains(*n)) {
            store.storage().delete(ObjectKind::State, name)?;
        }
        let mut freed = 0u64;
        for (pack, fate) in &fates {
            match fate {
                Fate::Keep => continue,
                Fate::Delete => report.packs_deleted += 1,
                Fate::Repack(_) => report.packs_repacked += 1,
            }
            freed += stored.get(&pack.to_hex()).copied().unwrap_or(0);
            store.storage().delete(ObjectKind::Pack, &pack.to_hex())?;
        }
        report.bytes_freed = freed.saturating_sub(written.pack_bytes);
    }

    sweep_orphans(store, &states.all_packs(), &stored, options, &mut report)?;
    Ok(report)
}

/// A pack's fate from its entries (sorted by offset): each is live if it
/// is the first copy met of a reachable blob.
fn decide(
    entries: &[PackEntry],
    reachable: &mut Reachable,
    options: &MaintenanceOptions,
    report: &mut MaintenanceReport,
) -> Fate {
    let (mut live_bytes, mut dead_bytes, mut dead_blobs) = (0u64, 0u64, 0u64);
    let mut live = Vec::with_capacity(entries.len());
    for (e, share) in entries.iter().zip(frame_shares(entries)) {
        let is_live = reachable.take(&e.id);
        live.push(is_live);
        if is_live {
            live_bytes += share;
        } else {
            dead_bytes += share;
            dead_blobs += 1;
        }
    }
    let total = live_bytes + dead_bytes;
    let fate = if dead_blobs == entries.len() as u64 {
        Fate::Delete
    } else if dead_bytes > 0 && (live_bytes as f64) < options.repack_below * total as f64 {
        Fate::Repack(live)
    } else {
        Fate::Keep
    };
    if !matches!(fate, Fate::Keep) {
        report.blobs_dropped += dead_blobs;
    }
    fate
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

/// Copies live blobs (still sealed) out of mostly-dead packs into new
/// packs, through the pipeline that writes every pack.
fn write_repacked(
    store: &Store,
    states: &States,
    listings: &[Listing],
    fates: &HashMap<Id, Fate>,
) -> Result<Written> {
    let lists_one = |i: usize| {
        states.infos[i]
            .packs
            .iter()
            .any(|p| matches!(fates.get(p), Some(Fate::Repack(_))))
    };
    if !(0..states.infos.len()).any(lists_one) {
        return Ok(Written::default());
    }
    // Every blob here is in the store's index already: an empty index makes
    // the pipeline write them all.
    let ((), written) = pipeline::write_blobs(store, &mut Index::empty(), 1, |sink| {
        states.for_each_pack(store, listings, lists_one, |pack, sealing, entries| {
            let Some(Fate::Repack(live)) = fates.get(&pack) else {
                return Ok(());
            };
            let bytes = store.storage().get(ObjectKind::Pack, &pack.to_hex())?;
            let mut frames = FrameCache::default();
            for (e, _) in entries.iter().zip(live).filter(|(_, live)| **live) {
                let sealed = bytes
                    .get(e.offset as usize..e.offset as usize + e.length as usize)
                    .ok_or_else(|| {
                        Error::corrupt(
                            format!("pack {}", pack.short()),
                            "shorter than its index says",
                        )
                    })?;
                if sealing == crate::crypto::Sealing::Store && !may_be_grouped(e.kind, e.raw_length)
                {
                    // Copied as it is.
                    sink.store_sealed(e.id, e.kind, e.raw_length, sealed.to_vec())?
                } else {
                    // Opened (and so checked) and sealed again: a put-only
                    // session's with the seal subkey, so the new pack is a
                    // full key's; a group's members one by one, so its dead
                    // members are left behind and its live ones grouped anew.
                    let plain = frames.open(
                        store.keys(),
                        (&pack, e.offset),
                        (sealing, e.kind, e.raw_length),
                        &e.id,
                        sealed,
                    )?;
                    sink.store(e.id, e.kind, plain)?
                }
            }
            Ok(())
        })
    })?;
    Ok(written)
}

/// Deletes packs no state lists once they were first seen unlisted at
/// least `grace` ago; remembers the others in the local cache. `listed`
/// are the packs the states listed when maintenance began.
fn sweep_orphans(
    store: &Store,
    listed: &HashSet<Id>,
    stored: &HashMap<String, u64>,
    options: &MaintenanceOptions,
    report: &mut MaintenanceReport,
) -> Result<()> {
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
