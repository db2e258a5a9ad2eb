//! Data put-only keys wrote, as maintenance adopts it: each of their packs
//! no full key's state lists yet is read whole, every blob checked against
//! its id, and then listed in maintenance's own states, so full keys reuse
//! it. The put-only key's own state stays (its writer keeps deduplicating
//! against it), rewritten without the packs maintenance drops.

use super::MaintenanceReport;
use super::listing::{Listing, States};
use crate::blob::FrameCache;
use crate::crypto::{Id, Sealing};
use crate::error::{Error, Result};
use crate::index::{PackEntry, State};
use crate::storage::ObjectKind;
use crate::store::Store;
use std::collections::HashSet;

/// The packs of put-only states that no full key's state lists yet,
/// checked; those that pass, as listings maintenance counts and lists in
/// its own states. A state with any pack that fails is left out whole
/// (and reported).
pub(super) fn adopt(
    store: &Store,
    states: &States,
    report: &mut MaintenanceReport,
) -> Result<Vec<Listing>> {
    let known: HashSet<(Id, Sealing)> = states
        .infos
        .iter()
        .filter(|s| s.trusted)
        .flat_map(|s| s.packs.iter().map(|p| (*p, s.sealing)))
        .collect();
    let mut adopted = Vec::new();
    for (i, info) in states.infos.iter().enumerate().filter(|(_, s)| !s.trusted) {
        let fresh: HashSet<Id> = info
            .packs
            .iter()
            .filter(|pack| !known.contains(&(**pack, info.sealing)))
            .copied()
            .collect();
        if fresh.is_empty() {
            continue;
        }
        let opened = states.open(store, i)?;
        let checked = opened
            .state
            .packs
            .iter()
            .filter(|(pack, _)| fresh.contains(pack))
            .try_for_each(|(pack, entries)| check_pack(store, info.sealing, pack, entries));
        match checked {
            Ok(()) => {
                report.packs_adopted += fresh.len() as u64;
                adopted.push(Listing {
                    state: i,
                    only: Some(fresh),
                });
            }
            Err(e) => report
                .rejected
                .push(format!("state {}: {e}", info.name.short())),
        }
    }
    Ok(adopted)
}

/// Reads a pack a put-only key wrote and checks all the state says of it:
/// the pack's name, its footer (which must list what the state lists), and
/// every blob against its id.
fn check_pack(store: &Store, sealing: Sealing, pack: &Id, entries: &[PackEntry]) -> Result<()> {
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
/// deduplicating against its own data. `repacked` are the states that
/// list the copies. Returns how many states were written and the names of
/// those they replace.
pub(super) fn rewrite_states(
    store: &Store,
    states: &States,
    dropped: &HashSet<Id>,
    repacked: &[(Id, State)],
) -> Result<(usize, Vec<String>)> {
    let mut written = 0;
    let mut gone = Vec::new();
    for (i, info) in states.infos.iter().enumerate().filter(|(_, s)| !s.trusted) {
        let Some(author) = info.author else {
            continue;
        };
        if !info.packs.iter().any(|p| dropped.contains(p)) {
            continue;
        }
        let opened = states.open(store, i)?;
        let (lost, kept): (Vec<_>, Vec<_>) = opened
            .state
            .packs
            .into_iter()
            .partition(|(p, _)| dropped.contains(p));
        let lost_ids: HashSet<Id> = lost
            .iter()
            .flat_map(|(_, es)| es.iter().map(|e| e.id))
            .collect();
        let moved: Vec<(Id, Vec<PackEntry>)> = repacked
            .iter()
            .flat_map(|(_, state)| &state.packs)
            .map(|(pack, entries)| {
                let mine = entries.iter().filter(|e| lost_ids.contains(&e.id)).copied();
                (*pack, mine.collect::<Vec<_>>())
            })
            .filter(|(_, entries)| !entries.is_empty())
            .collect();
        for state in [
            State {
                packs: kept,
                sealing: info.sealing,
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
        gone.push(info.name.to_hex());
    }
    Ok((written, gone))
}
