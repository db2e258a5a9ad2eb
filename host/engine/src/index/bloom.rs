//! A blocked Bloom filter over a run's ids, stored at the end of the run
//! file. A lookup asks each run's filter first: a run that does not hold
//! the id is skipped after touching one 64-byte block, instead of three or
//! so pages of its records. Without it every lookup probed every run, and
//! a walk over a store of 50 M blobs mapped most of its 2.4 GB index into
//! the process (docs/benchmarks.md, "Scale").
//!
//! Ten bits an id, seven of them set within one 512-bit block: about 1 %
//! false positives, 1.25 bytes an id. Ids are keyed hashes, so their own
//! bytes serve as the filter's hashes (bytes 8..16 pick the block, 16..24
//! the bits; bytes 0..8 are the records' search key).

/// Bytes of one block: one cache line.
pub(super) const BLOCK: usize = 64;
const BITS_PER_ID: usize = 10;
const BITS_SET: u32 = 7;

/// How many blocks a filter over `ids` ids has.
pub(super) fn blocks_for(ids: usize) -> usize {
    (ids * BITS_PER_ID).div_ceil(BLOCK * 8).max(1)
}

/// Which block and which bits of it stand for `id`.
fn position(id: &[u8; 32], blocks: usize) -> (usize, [u16; BITS_SET as usize]) {
    let h1 = u64::from_le_bytes(id[8..16].try_into().expect("8 bytes"));
    let h2 = u64::from_le_bytes(id[16..24].try_into().expect("8 bytes"));
    // Multiply-shift maps h1 evenly onto 0..blocks.
    let block = ((u128::from(h1) * blocks as u128) >> 64) as usize;
    let mut bits = [0u16; BITS_SET as usize];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = ((h2 >> (9 * i)) & 511) as u16;
    }
    (block, bits)
}

/// A filter being built, in memory.
pub(super) struct BloomBuilder {
    bytes: Vec<u8>,
}

impl BloomBuilder {
    /// An empty filter sized for `ids` ids.
    pub fn new(ids: usize) -> Self {
        BloomBuilder {
            bytes: vec![0; blocks_for(ids) * BLOCK],
        }
    }

    /// Adds `id`.
    pub fn insert(&mut self, id: &[u8; 32]) {
        let (block, bits) = position(id, self.bytes.len() / BLOCK);
        let at = block * BLOCK;
        for bit in bits {
            self.bytes[at + usize::from(bit / 8)] |= 1 << (bit % 8);
        }
    }

    /// The filter as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Whether the filter `bytes` (a whole number of blocks) may hold `id`;
/// false means it surely does not.
pub(super) fn may_contain(bytes: &[u8], id: &[u8; 32]) -> bool {
    let blocks = bytes.len() / BLOCK;
    if blocks == 0 {
        return true;
    }
    let (block, bits) = position(id, blocks);
    let at = block * BLOCK;
    bits.iter()
        .all(|bit| bytes[at + usize::from(bit / 8)] & (1 << (bit % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Id;

    #[test]
    fn every_id_added_is_found_and_few_others_are() {
        let ids: Vec<Id> = (0u32..20_000)
            .map(|n| Id::of_object(&n.to_le_bytes()))
            .collect();
        let mut builder = BloomBuilder::new(10_000);
        for id in &ids[..10_000] {
            builder.insert(&id.0);
        }
        let bytes = builder.bytes();
        assert_eq!(bytes.len(), blocks_for(10_000) * BLOCK);
        assert!(ids[..10_000].iter().all(|id| may_contain(bytes, &id.0)));
        let false_positives = ids[10_000..]
            .iter()
            .filter(|id| may_contain(bytes, &id.0))
            .count();
        // About 1 %; 3 % would mean the bits are not spread as planned.
        assert!(false_positives < 300, "{false_positives} of 10,000");
    }
}
