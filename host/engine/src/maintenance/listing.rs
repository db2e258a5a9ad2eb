//! The store's states as maintenance reads them: each fetched once, kept
//! sealed in the scratch folder, and opened again in each pass that needs
//! it. A pass holds one state's entries at a time (and those of the rare
//! pack two states list), never all of them: at 50 M blobs all of them
//! are 2.4 GB.

use crate::crypto::{Id, Sealing};
use crate::error::{Error, Result};
use crate::index::{OpenedState, PackEntry, State};
use crate::storage::ObjectKind;
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What maintenance remembers of a state between passes.
pub(super) struct StateInfo {
    /// The state's object name.
    pub name: Id,
    /// A full key's state (true) or a put-only key's.
    pub trusted: bool,
    /// How its packs were sealed.
    pub sealing: Sealing,
    /// The put-only key that wrote it.
    pub author: Option<[u8; 16]>,
    /// The packs it lists, in its order.
    pub packs: Vec<Id>,
    /// How many blobs it lists.
    pub blobs: usize,
}

/// Which of a state's packs a pass counts: all of a full key's, only the
/// adopted ones of a put-only key's.
pub(super) struct Listing {
    /// The state, by its place in [`States::infos`].
    pub state: usize,
    /// `None`: every pack the state lists.
    pub only: Option<HashSet<Id>>,
}

impl Listing {
    fn counts(&self, pack: &Id) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(pack))
    }
}

/// Every state of the store, read once.
pub(super) struct States {
    /// One per state, in the order listed.
    pub infos: Vec<StateInfo>,
    /// Where the sealed states were kept (none without a cache: they are
    /// fetched again).
    spool: Option<PathBuf>,
}

impl States {
    /// Fetches and opens every state, keeping it sealed in a folder of
    /// `scratch`.
    pub fn read(store: &Store, scratch: Option<&Path>) -> Result<States> {
        let spool = scratch.map(|dir| dir.join("states"));
        if let Some(dir) = &spool {
            std::fs::create_dir_all(dir).map_err(|e| Error::Cache {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        let mut infos = Vec::new();
        for object in store.storage().list(ObjectKind::State)? {
            let what = format!("state {}", object.name);
            let name =
                Id::from_hex(&object.name).ok_or_else(|| Error::corrupt(&what, "bad name"))?;
            let sealed = store.storage().get(ObjectKind::State, &object.name)?;
            let opened = open(store, &name, &sealed)?;
            if let Some(dir) = &spool {
                let path = dir.join(name.to_hex());
                std::fs::write(&path, &sealed).map_err(|e| Error::Cache {
                    path: path.display().to_string(),
                    source: e,
                })?;
            }
            infos.push(StateInfo {
                name,
                trusted: opened.trusted,
                sealing: opened.state.sealing,
                author: opened.author,
                blobs: opened.state.packs.iter().map(|(_, e)| e.len()).sum(),
                packs: opened.state.packs.into_iter().map(|(p, _)| p).collect(),
            });
        }
        Ok(States { infos, spool })
    }

    /// State `i` opened again (checked against its name again, so a
    /// changed scratch file is an error, not a wrong answer).
    pub fn open(&self, store: &Store, i: usize) -> Result<OpenedState> {
        let name = self.infos[i].name;
        let sealed = match &self.spool {
            Some(dir) => {
                let path = dir.join(name.to_hex());
                std::fs::read(&path).map_err(|e| Error::Cache {
                    path: path.display().to_string(),
                    source: e,
                })?
            }
            None => store.storage().get(ObjectKind::State, &name.to_hex())?,
        };
        open(store, &name, &sealed)
    }

    /// Every pack any state lists, counted or not.
    pub fn all_packs(&self) -> HashSet<Id> {
        self.infos
            .iter()
            .flat_map(|s| s.packs.iter().copied())
            .collect()
    }

    /// Packs that more than one listing counts (after a crash two states
    /// may list the same pack).
    pub fn listed_twice(&self, listings: &[Listing]) -> HashSet<Id> {
        self.listed_more_than_once(listings.iter())
            .into_keys()
            .collect()
    }

    /// How many of `listings` count each pack they count more than once.
    fn listed_more_than_once<'l>(
        &self,
        listings: impl Iterator<Item = &'l Listing>,
    ) -> HashMap<Id, usize> {
        let mut counts: HashMap<Id, usize> = HashMap::new();
        for l in listings {
            for pack in self.infos[l.state].packs.iter().filter(|p| l.counts(p)) {
                *counts.entry(*pack).or_default() += 1;
            }
        }
        counts.retain(|_, n| *n > 1);
        counts
    }

    /// Calls `f` once for each pack the listings of the states `wanted`
    /// accepts count, with its sealing and every blob it holds: the
    /// entries of all those listings, sorted by offset then id, each
    /// once. The order is the same on every call, so a pass can follow
    /// what an earlier one decided entry by entry. A pack several states
    /// list comes after the last of them, so every listing of a pack a
    /// pass needs must be among the states it wants.
    pub fn for_each_pack(
        &self,
        store: &Store,
        listings: &[Listing],
        wanted: impl Fn(usize) -> bool,
        mut f: impl FnMut(Id, Sealing, Vec<PackEntry>) -> Result<()>,
    ) -> Result<()> {
        let wanted: Vec<&Listing> = listings.iter().filter(|l| wanted(l.state)).collect();
        // Listings still to come of each pack listed more than once.
        let mut remaining = self.listed_more_than_once(wanted.iter().copied());
        let mut gathering: HashMap<Id, Vec<PackEntry>> = HashMap::new();
        for l in wanted {
            let opened = self.open(store, l.state)?;
            let sealing = opened.state.sealing;
            for (pack, mut entries) in opened.state.packs {
                if !l.counts(&pack) {
                    continue;
                }
                if let Some(left) = remaining.get_mut(&pack) {
                    gathering.entry(pack).or_default().append(&mut entries);
                    *left -= 1;
                    if *left > 0 {
                        continue;
                    }
                    entries = gathering.remove(&pack).unwrap_or_default();
                }
                // Members of a group share its offset; each is told apart
                // by id.
                entries.sort_by_key(|e| (e.offset, e.id));
                entries.dedup_by_key(|e| (e.offset, e.id));
                f(pack, sealing, entries)?;
            }
        }
        Ok(())
    }
}

fn open(store: &Store, name: &Id, sealed: &[u8]) -> Result<OpenedState> {
    State::open(store.keys(), name, sealed)?.ok_or_else(|| {
        Error::corrupt(
            format!("state {}", name.to_hex()),
            "unreadable with a full key",
        )
    })
}
