//! The blobs maintenance must keep, held compactly: the first 12 bytes of
//! each id, sorted, plus a bit each saying whether a copy was already
//! placed, and where each range of leading bits starts (ids are keyed
//! hashes, evenly spread), so a lookup reads one or two cache lines instead
//! of bisecting hundreds of megabytes. About 12.5 bytes a blob where a
//! `HashSet<Id>` takes about 40 (at 50 M blobs: 625 MB against 2 GB).
//!
//! Twelve bytes are 96 bits of a keyed hash: two ids of one store share
//! them with a chance of about n²/2⁹⁷, under 10⁻¹³ at 100 M blobs. Even
//! then nothing reachable is lost unless the stranger is met first and the
//! blob's only copy sits in a pack maintenance removes.

use crate::blob::BlobKind;
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::store::Store;
use crate::tree::Content;
use std::collections::HashSet;

type Key = [u8; 12];

/// Keys gathered before the first sort and deduplication.
const FIRST_BATCH: usize = 1 << 20;

fn key(id: &Id) -> Key {
    id.0[..12].try_into().expect("12 of 32 bytes")
}

/// The bucket of `key`: its leading `bits` bits.
fn bucket(key: &Key, bits: u32) -> usize {
    let lead = u32::from_be_bytes(key[..4].try_into().expect("4 of 12 bytes"));
    (u64::from(lead) >> (32 - bits)) as usize
}

/// Every blob a snapshot reaches, and the activity log's blobs.
pub(super) struct Reachable {
    /// Sorted and without repeats once gathered.
    keys: Vec<Key>,
    /// One bit per key: a copy of that blob was placed.
    placed: Vec<u64>,
    /// Where the keys whose leading `bucket_bits` bits are `b` start:
    /// `starts[b]..starts[b + 1]`.
    starts: Vec<u32>,
    bucket_bits: u32,
}

impl Reachable {
    /// Walks every tree from `roots`. A tree that cannot be read stops
    /// maintenance: what lies below it is unknown, so nothing may be
    /// deleted.
    pub fn gather(store: &Store, index: &Index, roots: impl Iterator<Item = Id>) -> Result<Self> {
        let mut found = Gathering {
            keys: Vec::with_capacity(FIRST_BATCH),
        };
        let mut trees: HashSet<Id> = HashSet::new();
        let mut pending: Vec<Id> = roots.collect();
        while let Some(id) = pending.pop() {
            if !trees.insert(id) {
                continue;
            }
            found.add(&id);
            let tree = store.read_tree(index, &id).map_err(|e| {
                Error::corrupt(
                    format!("tree {}", id.short()),
                    format!("{e}; maintenance stops so that nothing below it is lost (run check)"),
                )
            })?;
            for node in tree.nodes {
                match node.content {
                    Content::Dir { tree } => pending.push(tree),
                    Content::File { chunks } => chunks.iter().for_each(|c| found.add(c)),
                    _ => {}
                }
            }
        }
        // The activity log is history of its own, reached by no snapshot.
        index.for_each(|id, l| {
            if l.kind == BlobKind::Activity {
                found.add(&id);
            }
        });
        found.sort();
        Ok(Reachable::new(found.keys))
    }

    /// From sorted keys without repeats.
    fn new(mut keys: Vec<Key>) -> Self {
        keys.shrink_to_fit();
        // About 8 keys a bucket.
        let bucket_bits = (keys.len() / 8).max(1).ilog2().min(30);
        let mut starts = vec![0u32; (1 << bucket_bits) + 1];
        for k in &keys {
            starts[bucket(k, bucket_bits) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        Reachable {
            placed: vec![0; keys.len().div_ceil(64)],
            keys,
            starts,
            bucket_bits,
        }
    }

    /// Whether this copy of `id` is the one to keep: true for the first
    /// copy met of a reachable blob, false for any other.
    pub fn take(&mut self, id: &Id) -> bool {
        let key = key(id);
        let b = bucket(&key, self.bucket_bits);
        let (start, end) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        let Ok(i) = self.keys[start..end].binary_search(&key) else {
            return false;
        };
        let i = start + i;
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let first = self.placed[word] & bit == 0;
        self.placed[word] |= bit;
        first
    }
}

/// Keys as the walk meets them, repeats included until the next sort.
struct Gathering {
    keys: Vec<Key>,
}

impl Gathering {
    fn add(&mut self, id: &Id) {
        if self.keys.len() == self.keys.capacity() {
            self.sort();
            // Room for as many again as half of what is kept, so a walk
            // that meets mostly new blobs sorts O(log n) times and one
            // meeting repeats does not grow at all.
            let room = (self.keys.len() / 2).max(FIRST_BATCH);
            if self.keys.capacity() - self.keys.len() < room {
                self.keys.reserve_exact(room);
            }
        }
        self.keys.push(key(id));
    }

    fn sort(&mut self) {
        self.keys.sort_unstable();
        self.keys.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> Id {
        Id::of_object(&n.to_le_bytes())
    }

    #[test]
    fn the_first_copy_is_taken_once_and_strangers_never() {
        let mut gathering = Gathering {
            keys: Vec::with_capacity(4),
        };
        // More than the capacity, with repeats: sorted on the way.
        for n in (0..3000).chain(0..3000) {
            gathering.add(&id(n));
        }
        gathering.sort();
        assert_eq!(gathering.keys.len(), 3000);
        let mut r = Reachable::new(gathering.keys);
        for n in 0..3000 {
            assert!(r.take(&id(n)), "{n}");
            assert!(!r.take(&id(n)), "{n} again");
        }
        for n in 3000..4000 {
            assert!(!r.take(&id(n)));
        }
        let mut none = Reachable::new(Vec::new());
        assert!(!none.take(&id(1)));
    }
}
