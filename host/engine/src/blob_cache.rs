//! Blobs kept after they are read, within a byte budget. A reader that
//! comes back to the same bytes in small pieces (a mounted snapshot read
//! in the kernel's 128 KiB requests, a file manager's thumbnails) would
//! otherwise fetch, decrypt and decompress one chunk many times over; and
//! a small file grouped with up to 511 others would open its whole group
//! each time. So both the chunks and the last groups opened are kept, the
//! least recently used going first. Any number of threads share one cache;
//! none holds its lock while it reads or decrypts.

use crate::blob::{Frame, open_frame};
use crate::crypto::{Id, Sealing};
use crate::error::{Error, Result};
use crate::index::{BlobLocation, Index};
use crate::store::Store;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Opened groups kept besides the blobs: a folder of small files is read
/// in name order, which visits a few groups at a time.
const GROUPS_KEPT: usize = 8;

/// Where a group frame sits: every member shares it.
type FrameKey = (Id, u32, Sealing);

/// A bounded, shared cache of opened data blobs.
pub struct BlobCache {
    budget: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    blobs: HashMap<Id, (Arc<[u8]>, u64)>,
    /// Blobs by when they were last used, oldest first.
    order: BTreeMap<u64, Id>,
    clock: u64,
    held: usize,
    groups: VecDeque<(FrameKey, Arc<Frame>)>,
}

impl BlobCache {
    /// A cache that keeps at most `budget` bytes of blobs (plus up to
    /// eight opened groups of at most 1 MiB each).
    pub fn new(budget: usize) -> Self {
        BlobCache {
            budget,
            state: Mutex::new(State::default()),
        }
    }

    /// Bytes of blobs held now.
    pub fn held(&self) -> usize {
        self.lock().held
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The data blob `id`, from the cache or read, opened and verified.
    pub fn data(&self, store: &Store, index: &Index, id: &Id) -> Result<Arc<[u8]>> {
        if let Some(blob) = self.lock().touch(id) {
            return Ok(blob);
        }
        let location = index
            .lookup(id)
            .filter(|l| l.kind == crate::blob::BlobKind::Data)
            .ok_or_else(|| {
                Error::corrupt(format!("blob {}", id.short()), "missing from the index")
            })?;
        let blob: Arc<[u8]> = self.read(store, id, &location)?.into();
        self.lock().insert(*id, blob.clone(), self.budget);
        Ok(blob)
    }

    fn read(&self, store: &Store, id: &Id, location: &BlobLocation) -> Result<Vec<u8>> {
        let key = (location.pack, location.offset, location.sealing);
        let kept = {
            let state = self.lock();
            state
                .groups
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, f)| f.clone())
        };
        if let Some(frame) = kept {
            return frame.take(store.keys(), location.kind, id);
        }
        let sealed = store.read_sealed(location)?;
        let frame = open_frame(
            store.keys(),
            location.sealing,
            location.kind,
            id,
            location.raw_length,
            &sealed,
        )?;
        if !frame.is_group() {
            return frame.into_blob(store.keys(), location.kind, id);
        }
        let frame = Arc::new(frame);
        let blob = frame.take(store.keys(), location.kind, id);
        let mut state = self.lock();
        if !state.groups.iter().any(|(k, _)| *k == key) {
            if state.groups.len() == GROUPS_KEPT {
                state.groups.pop_front();
            }
            state.groups.push_back((key, frame));
        }
        blob
    }
}

impl State {
    fn touch(&mut self, id: &Id) -> Option<Arc<[u8]>> {
        self.clock += 1;
        let clock = self.clock;
        let (blob, used) = self.blobs.get_mut(id)?;
        self.order.remove(used);
        *used = clock;
        self.order.insert(clock, *id);
        Some(blob.clone())
    }

    fn insert(&mut self, id: Id, blob: Arc<[u8]>, budget: usize) {
        if blob.len() > budget || self.blobs.contains_key(&id) {
            return;
        }
        while self.held + blob.len() > budget {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((gone, _)) = self.blobs.remove(&oldest) {
                self.held -= gone.len();
            }
        }
        self.clock += 1;
        self.held += blob.len();
        self.order.insert(self.clock, id);
        self.blobs.insert(id, (blob, self.clock));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id([n; 32])
    }

    #[test]
    fn the_least_recently_used_blob_goes_first_and_the_budget_holds() {
        let mut state = State::default();
        state.insert(id(1), vec![1; 40].into(), 100);
        state.insert(id(2), vec![2; 40].into(), 100);
        assert!(state.touch(&id(1)).is_some());
        state.insert(id(3), vec![3; 40].into(), 100);
        assert!(
            state.touch(&id(2)).is_none(),
            "2 was the least recently used"
        );
        assert!(state.touch(&id(1)).is_some());
        assert!(state.touch(&id(3)).is_some());
        assert_eq!(state.held, 80);
        state.insert(id(4), vec![4; 101].into(), 100);
        assert!(state.touch(&id(4)).is_none(), "larger than the budget");
        assert_eq!(state.held, 80);
        assert_eq!(state.order.len(), state.blobs.len());
    }
}
