//! The store's snapshots, read once and kept. A snapshot object never
//! changes (it is named by its content), so a refresh lists the names and
//! reads only new ones: a page of a store with 10k snapshots costs one
//! listing, not 10k reads.

use kast_engine::Store;
use kast_engine::crypto::Id;
use kast_engine::snapshot::Snapshot;
use kast_engine::storage::ObjectKind;
use kast_engine::tree::Node;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Snapshots oldest first, and how many could not be read.
#[derive(Default)]
pub struct Snapshots {
    pub all: Vec<(Id, Snapshot)>,
    pub damaged: usize,
}

#[derive(Default)]
pub struct Catalog {
    known: Mutex<Arc<Snapshots>>,
}

impl Catalog {
    /// The snapshots the store holds now.
    pub fn snapshots(&self, store: &Store) -> kast_engine::Result<Arc<Snapshots>> {
        let names = store.storage().list(ObjectKind::Snapshot)?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let had: HashMap<&Id, &Snapshot> = known.all.iter().map(|(id, s)| (id, s)).collect();
        let mut next = Snapshots::default();
        for object in names {
            let Some(id) = Id::from_hex(&object.name) else {
                next.damaged += 1;
                continue;
            };
            match had.get(&id) {
                Some(s) => next.all.push((id, (*s).clone())),
                None => match store.read_snapshot(&id) {
                    Ok(s) => next.all.push((id, s)),
                    Err(_) => next.damaged += 1,
                },
            }
        }
        next.all
            .sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
        *known = Arc::new(next);
        Ok(known.clone())
    }

    /// The snapshot `text` names: `latest`, or a unique id prefix.
    pub fn find(&self, store: &Store, text: &str) -> Result<(Id, Snapshot), String> {
        let list = self.snapshots(store).map_err(|e| e.to_string())?;
        if text == "latest" {
            return list
                .all
                .last()
                .cloned()
                .ok_or("the store has no snapshot".into());
        }
        let prefix = text.to_ascii_lowercase();
        let mut found = list
            .all
            .iter()
            .filter(|(id, _)| id.to_hex().starts_with(&prefix));
        match (found.next(), found.next()) {
            (Some(one), None) if !prefix.is_empty() => Ok(one.clone()),
            (Some(_), Some(_)) => Err(format!("{text} names more than one snapshot")),
            _ => Err(format!("no snapshot {text}")),
        }
    }
}

/// Folders kept after listing them.
const KEPT_LISTINGS: usize = 4;

/// A folder's entries, keyed by the snapshot's root and the folder's path.
type Listing = ((Id, Vec<u8>), Arc<Vec<Node>>);

/// Recently listed folders, by snapshot root and path: a folder of 100k
/// entries is read once for all its pages (a snapshot's trees never change).
#[derive(Default)]
pub struct Listings {
    recent: Mutex<VecDeque<Listing>>,
}

impl Listings {
    /// The folder's entries, kept or read now with `read`.
    pub fn get_or_read(
        &self,
        root: &Id,
        path: &[u8],
        read: impl FnOnce() -> kast_engine::Result<Vec<Node>>,
    ) -> kast_engine::Result<Arc<Vec<Node>>> {
        let key = (*root, path.to_vec());
        let lock = || self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, nodes)) = lock().iter().find(|(k, _)| *k == key) {
            return Ok(nodes.clone());
        }
        let nodes = Arc::new(read()?);
        let mut recent = lock();
        recent.push_front((key, nodes.clone()));
        recent.truncate(KEPT_LISTINGS);
        Ok(nodes)
    }
}
