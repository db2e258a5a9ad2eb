//! A run: one sorted, fixed-width file of index records, memory-mapped so a
//! lookup touches a page or two and the process never loads the index whole.
//!
//! Layout (little-endian): `KASTRUN4`, state count u32, pack count u32,
//! record count u64, the 32-byte names of the states it covers, the pack
//! table (72 bytes a pack: its name, the put-only session that sealed it or
//! zeros, a flags byte (bit 0: trusted for deduplication, bit 1: sealed by
//! a session), 7 bytes of zeros), then the records sorted by blob id: id
//! (32), pack-table number u32, offset u32, sealed length u32, and the
//! plaintext length u32 with the blob kind in its top two bits (a blob is
//! far below 1 GiB), then a Bloom filter over the records' ids (see
//! [`super::bloom`]; its size follows from the record count), then the
//! fence: the search key (an id's first 8 bytes, big-endian) of every
//! 64th record, u64 each.
//!
//! A lookup in a large run reads the one block of 64 records the fence
//! points to with `pread`, never through the mapping: mapped pages a
//! lookup touches stay the process's memory (the kernel maps 16 pages
//! around each fault), so random lookups over a 2.4 GB index made most
//! of it resident. Small runs, and scans, use the mapping. A pack
//! listed by a trusted and an untrusted state has
//! two table entries, so trust stays with the records of the state that
//! gave it. Runs are a local cache: one in an older layout fails to open
//! and is rebuilt from the store's states.

use super::bloom::{self, BloomBuilder};
use crate::blob::BlobKind;
use crate::crypto::{Id, Sealing};
use crate::error::{Error, Result};
use memmap2::{Mmap, UncheckedAdvice};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"KASTRUN4";
/// Bytes of one pack-table entry.
const PACK_SLOT: usize = 72;
const HEADER: usize = 24;
const RECORD: usize = 48;
const KIND_SHIFT: u32 = 30;
/// Records per fence entry: one block read per lookup (3 KiB).
const FENCE_EVERY: usize = 64;
/// Runs whose files are larger than this are searched with `pread` (every
/// file-backed run in unit tests, so both ways are tested).
const PREAD_ABOVE: usize = if cfg!(test) { 0 } else { 32 << 20 };
const LENGTH_MASK: u32 = (1 << KIND_SHIFT) - 1;
/// Blobs are shorter than this (the length shares its word with the kind).
pub const MAX_BLOB: usize = 1 << KIND_SHIFT;

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding the blob.
    pub pack: Id,
    /// Where its sealed bytes start in the pack.
    pub offset: u32,
    /// Sealed length: what to read.
    pub length: u32,
    /// Length once opened and decompressed: what it holds.
    pub raw_length: u32,
    /// Data, tree or activity: checked on read, so one cannot pass for another.
    pub kind: BlobKind,
    /// How its pack was sealed: which key opens it.
    pub sealing: Sealing,
    /// Whether a backup may reuse it (docs/store-format.md, "Deduplication,
    /// and why it trusts only its own"); reads take any.
    pub trusted: bool,
}

/// One record to write into a run.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub id: Id,
    pub location: BlobLocation,
}

/// The records of a run being made, kept as the run stores them (48
/// bytes each, the pack as a number in its table) rather than as
/// [`Record`]s of 120: the run a backup of 200k small files adds at its
/// end was that backup's peak memory.
#[derive(Default)]
pub struct Records {
    numbers: std::collections::HashMap<PackSlot, u32>,
    packs: Vec<PackSlot>,
    encoded: Vec<[u8; RECORD]>,
}

impl Records {
    /// Room for `n` records.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            encoded: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    /// Adds one record, numbering its pack on first sight.
    pub fn push(&mut self, record: &Record) {
        let slot = PackSlot::of(&record.location);
        let packs = &mut self.packs;
        let number = *self.numbers.entry(slot).or_insert_with(|| {
            packs.push(slot);
            packs.len() as u32 - 1
        });
        self.encoded
            .push(encode_record(&record.id, number, &record.location));
    }
}

impl<'a> FromIterator<&'a Record> for Records {
    fn from_iter<I: IntoIterator<Item = &'a Record>>(iter: I) -> Self {
        let mut records = Records::default();
        iter.into_iter().for_each(|r| records.push(r));
        records
    }
}

enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// An opened run.
pub struct Run {
    bytes: Bytes,
    states: usize,
    packs: usize,
    records: usize,
    /// The file backing it, if any.
    pub path: Option<PathBuf>,
    /// The open file, for a run large enough to be searched with `pread`.
    file: Option<File>,
}

/// Records a scan reads between two releases (3 MiB).
pub(super) const SCAN_RELEASE: usize = 65_536;

impl Run {
    /// Encodes a run from records (sorted here) into any writer.
    fn write_to<W: Write + ?Sized>(
        out: &mut W,
        states: &[Id],
        records: &mut Records,
    ) -> std::io::Result<()> {
        let encoded = &mut records.encoded;
        encoded.sort_unstable_by(|a, b| a[..32].cmp(&b[..32]));
        Self::write_header(out, states, &records.packs, encoded.len() as u64)?;
        let mut filter = BloomBuilder::new(encoded.len());
        for r in encoded.iter() {
            out.write_all(r)?;
            filter.insert(r[..32].try_into().expect("32 bytes"));
        }
        out.write_all(filter.bytes())?;
        for r in encoded.iter().step_by(FENCE_EVERY) {
            let id = Id(r[..32].try_into().expect("32 bytes"));
            out.write_all(&search_key(&id).to_le_bytes())?;
        }
        Ok(())
    }

    fn write_header<W: Write + ?Sized>(
        out: &mut W,
        states: &[Id],
        packs: &[PackSlot],
        count: u64,
    ) -> std::io::Result<()> {
        out.write_all(MAGIC)?;
        out.write_all(&(states.len() as u32).to_le_bytes())?;
        out.write_all(&(packs.len() as u32).to_le_bytes())?;
        out.write_all(&count.to_le_bytes())?;
        for s in states {
            out.write_all(&s.0)?;
        }
        for p in packs {
            out.write_all(&p.encode())?;
        }
        Ok(())
    }

    /// A run held in memory (no cache directory).
    pub fn in_memory(states: &[Id], mut records: Records) -> Result<Run> {
        let mut buf =
            Vec::with_capacity(HEADER + 32 * states.len() + RECORD * records.encoded.len());
        Self::write_to(&mut buf, states, &mut records).expect("writing to memory cannot fail");
        Run::parse(Bytes::Owned(buf), None, None)
    }

    /// Writes a run file atomically into `dir` and maps it.
    pub fn create(dir: &Path, states: &[Id], mut records: Records) -> Result<Run> {
        let path = dir.join(run_file_name(states));
        write_run(&path, |out| Self::write_to(out, states, &mut records))
    }

    /// Merges runs into one without loading them: a k-way merge of sorted records.
    pub fn merge(dir: Option<&Path>, runs: &[Run]) -> Result<Run> {
        let mut states: Vec<Id> = runs.iter().flat_map(|r| r.states()).collect();
        states.sort_unstable();
        let mut packs: Vec<PackSlot> = runs
            .iter()
            .flat_map(|r| (0..r.packs).map(|i| r.pack(i)))
            .collect();
        packs.sort_unstable();
        packs.dedup();
        let total: usize = runs.iter().map(|r| r.records).sum();
        let write = |out: &mut dyn Write| -> std::io::Result<()> {
            Self::write_header(out, &states, &packs, total as u64)?;
            let mut heap = std::collections::BinaryHeap::new();
            for (i, run) in runs.iter().enumerate() {
                if run.records > 0 {
                    heap.push(std::cmp::Reverse((run.id(0), i, 0usize)));
                }
            }
            // Each run's pack numbers, renumbered into the merged pack table once.
            let renumber: Vec<Vec<u32>> = runs
                .iter()
                .map(|r| {
                    (0..r.packs)
                        .map(|n| packs.binary_search(&r.pack(n)).expect("pack listed") as u32)
                        .collect()
                })
                .collect();
            let mut written = 0usize;
            let mut filter = BloomBuilder::new(total);
            let mut fence = Vec::with_capacity(total.div_ceil(FENCE_EVERY));
            while let Some(std::cmp::Reverse((id, i, pos))) = heap.pop() {
                filter.insert(&id.0);
                if written.is_multiple_of(FENCE_EVERY) {
                    fence.push(search_key(&id));
                }
                written += 1;
                if written.is_multiple_of(SCAN_RELEASE) {
                    // The inputs are read in order: what lies behind is done.
                    for run in runs {
                        run.release(0..run.records);
                    }
                }
                // Copy the record as it is, with its pack renumbered.
                let run = &runs[i];
                let offset = run.record_offset(pos);
                let mut record: [u8; RECORD] = run.bytes[offset..offset + RECORD]
                    .try_into()
                    .expect("record");
                let old = u32::from_le_bytes(record[32..36].try_into().expect("4"));
                let n = renumber[i].get(old as usize).copied().unwrap_or(u32::MAX);
                record[32..36].copy_from_slice(&n.to_le_bytes());
                out.write_all(&record)?;
                if pos + 1 < runs[i].records {
                    heap.push(std::cmp::Reverse((runs[i].id(pos + 1), i, pos + 1)));
                }
            }
            out.write_all(filter.bytes())?;
            for key in fence {
                out.write_all(&key.to_le_bytes())?;
            }
            Ok(())
        };
        match dir {
            Some(dir) => {
                let path = dir.join(run_file_name(&states));
                write_run(&path, |out| write(out))
            }
            None => {
                let mut buf = Vec::new();
                write(&mut buf).expect("writing to memory cannot fail");
                Run::parse(Bytes::Owned(buf), None, None)
            }
        }
    }

    /// Maps a run file; a malformed file is an error (the caller rebuilds it).
    pub fn open(path: &Path) -> Result<Run> {
        let file = File::open(path).map_err(|e| cache_error(path, e))?;
        // SAFETY: run files are written once under a temporary name and renamed
        // into place; kast never modifies one afterwards, it only unlinks it,
        // which leaves existing mappings valid.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| cache_error(path, e))?;
        Run::parse(Bytes::Mapped(map), Some(path.to_path_buf()), Some(file))
    }

    fn parse(bytes: Bytes, path: Option<PathBuf>, file: Option<File>) -> Result<Run> {
        let bad = || Error::corrupt("index cache run", "malformed");
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(bad());
        }
        let states = u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize;
        let packs = u32::from_le_bytes(bytes[12..16].try_into().expect("4")) as usize;
        let records = u64::from_le_bytes(bytes[16..24].try_into().expect("8")) as usize;
        let expected = states
            .checked_mul(32)
            .and_then(|t| packs.checked_mul(PACK_SLOT).and_then(|p| p.checked_add(t)))
            .and_then(|t| records.checked_mul(RECORD).and_then(|r| r.checked_add(t)))
            .and_then(|t| t.checked_add(HEADER))
            .and_then(|t| t.checked_add(bloom::blocks_for(records) * bloom::BLOCK))
            .and_then(|t| t.checked_add(records.div_ceil(FENCE_EVERY) * 8));
        if expected != Some(bytes.len()) {
            return Err(bad());
        }
        let file = file.filter(|_| bytes.len() > PREAD_ABOVE);
        let run = Run {
            bytes,
            states,
            packs,
            records,
            path,
            file,
        };
        Ok(run)
    }

    /// Unmaps the pages of records `range` from this process. They stay in
    /// the page cache (reading them again costs a minor fault), but no
    /// longer count as the process's memory: a scan over a run of 50
    /// million records would otherwise make 2.4 GB of it resident.
    /// (Random lookups in a large run do not map pages: they `pread`.)
    pub(super) fn release(&self, range: std::ops::Range<usize>) {
        if let Bytes::Mapped(map) = &self.bytes
            && range.start < range.end
        {
            let start = self.record_offset(range.start);
            let end = self.record_offset(range.end.min(self.records));
            // SAFETY: the mapping is a read-only, shared mapping of a file
            // kast never modifies: MADV_DONTNEED only drops the pages from
            // this process, and reading them again maps the file's bytes
            // back, unchanged. A failure leaves the pages mapped: harmless.
            let _ = unsafe {
                map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }

    pub fn record_count(&self) -> usize {
        self.records
    }

    /// The states this run was built from.
    pub fn states(&self) -> Vec<Id> {
        (0..self.states)
            .map(|i| self.id_at(HEADER + 32 * i))
            .collect()
    }

    fn id_at(&self, offset: usize) -> Id {
        Id(self.bytes[offset..offset + 32].try_into().expect("32"))
    }

    /// A pack number out of range (a damaged cache file) maps to the all-zero
    /// id, which names no pack, so reading it fails instead of misreading.
    fn pack(&self, n: usize) -> PackSlot {
        if n < self.packs {
            let at = HEADER + 32 * self.states + PACK_SLOT * n;
            PackSlot::decode(&self.bytes[at..at + PACK_SLOT])
        } else {
            PackSlot {
                id: Id::default(),
                sealing: Sealing::Store,
                trusted: false,
            }
        }
    }

    /// The Bloom filter after the records.
    fn filter(&self) -> &[u8] {
        let start = self.record_offset(self.records);
        &self.bytes[start..start + bloom::blocks_for(self.records) * bloom::BLOCK]
    }

    /// Fence entry `b`: the search key of record `b * FENCE_EVERY`.
    fn fence(&self, b: usize) -> u64 {
        let at = self.record_offset(self.records) + bloom::blocks_for(self.records) * bloom::BLOCK;
        let at = at + 8 * b;
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8"))
    }

    fn record_offset(&self, i: usize) -> usize {
        HEADER + 32 * self.states + PACK_SLOT * self.packs + RECORD * i
    }

    pub fn id(&self, i: usize) -> Id {
        self.id_at(self.record_offset(i))
    }

    pub fn location(&self, i: usize) -> BlobLocation {
        let o = self.record_offset(i);
        self.decode_location(&self.bytes[o..o + RECORD])
    }

    /// A record's location, from its 48 bytes.
    fn decode_location(&self, record: &[u8]) -> BlobLocation {
        let u32_at = |o: usize| u32::from_le_bytes(record[o..o + 4].try_into().expect("4"));
        let raw = u32_at(44);
        let pack = self.pack(u32_at(32) as usize);
        BlobLocation {
            pack: pack.id,
            sealing: pack.sealing,
            trusted: pack.trusted,
            offset: u32_at(36),
            length: u32_at(40),
            raw_length: raw & LENGTH_MASK,
            // Two bits hold every kind this build writes; an unknown value
            // can only come from a damaged cache file, read as data (which
            // then fails to open, as any damage does).
            kind: BlobKind::from_u8((raw >> KIND_SHIFT) as u8).unwrap_or(BlobKind::Data),
        }
    }

    /// Where every record of `id` points (a blob stored twice, or listed
    /// by two states, has several).
    pub fn locations_of(&self, id: &Id) -> Vec<BlobLocation> {
        if let Some(file) = &self.file {
            if !bloom::may_contain(self.filter(), &id.0) {
                return Vec::new();
            }
            if let Ok(found) = self.read_locations_of(file, id) {
                return found;
            }
            // A read error of the cache file: the mapping still answers.
        }
        self.find_all(id).map(|i| self.location(i)).collect()
    }

    /// [`Run::locations_of`] through the fence and one `pread` of the
    /// blocks that may hold `id`.
    fn read_locations_of(&self, file: &File, id: &Id) -> std::io::Result<Vec<BlobLocation>> {
        use std::os::unix::fs::FileExt;
        let key = search_key(id);
        let blocks = self.records.div_ceil(FENCE_EVERY);
        // Blocks starting below the key, and those starting at or below it:
        // its records lie from the last of the first kind to the last of
        // the second.
        let below = partition_point(blocks, |b| self.fence(b) < key);
        let at_most = partition_point(blocks, |b| self.fence(b) <= key);
        let first = below.saturating_sub(1);
        let end = at_most.max(first + 1);
        let start_record = first * FENCE_EVERY;
        let end_record = (end * FENCE_EVERY).min(self.records);
        let mut buf = vec![0u8; (end_record - start_record) * RECORD];
        file.read_exact_at(&mut buf, self.record_offset(start_record) as u64)?;
        Ok(buf
            .chunks_exact(RECORD)
            .filter(|r| r[..32] == id.0)
            .map(|r| self.decode_location(r))
            .collect())
    }

    fn key(&self, i: usize) -> u64 {
        let o = self.record_offset(i);
        u64::from_be_bytes(self.bytes[o..o + 8].try_into().expect("8"))
    }

    /// Every record of `id` (a blob stored twice, or listed by two states,
    /// has adjacent records).
    pub fn find_all(&self, id: &Id) -> std::ops::Range<usize> {
        let Some(at) = self.find(id) else {
            return 0..0;
        };
        let mut start = at;
        while start > 0 && self.id(start - 1) == *id {
            start -= 1;
        }
        let mut end = at + 1;
        while end < self.records && self.id(end) == *id {
            end += 1;
        }
        start..end
    }

    /// Finds a record. Ids are keyed hashes, uniformly spread, so
    /// interpolation lands on the right page almost at once; after a few
    /// guesses it falls back to bisection to bound the worst case.
    pub fn find(&self, id: &Id) -> Option<usize> {
        if self.records == 0 || !bloom::may_contain(self.filter(), &id.0) {
            return None;
        }
        let target = u64::from_be_bytes(id.0[..8].try_into().expect("8"));
        let (mut lo, mut hi) = (0usize, self.records - 1);
        for step in 0.. {
            if lo > hi {
                return None;
            }
            let pos = if step < 6 {
                let (klo, khi) = (self.key(lo), self.key(hi));
                if target < klo || target > khi {
                    return None;
                }
                if khi == klo {
                    lo
                } else {
                    lo + ((u128::from(target - klo) * (hi - lo) as u128) / u128::from(khi - klo))
                        as usize
                }
            } else {
                lo + (hi - lo) / 2
            };
            match self.id(pos).cmp(id) {
                std::cmp::Ordering::Equal => return Some(pos),
                std::cmp::Ordering::Less => lo = pos + 1,
                std::cmp::Ordering::Greater => {
                    if pos == 0 {
                        return None;
                    }
                    hi = pos - 1;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: Id, n: u32) -> Record {
        Record {
            id,
            location: BlobLocation {
                pack: Id([(n % 7) as u8; 32]),
                offset: n,
                length: n + 1,
                raw_length: n + 2,
                kind: BlobKind::Data,
                sealing: Sealing::Store,
                trusted: !n.is_multiple_of(3),
            },
        }
    }

    /// An id whose search key is `key` and whose rest is `rest`.
    fn id_with_key(key: u64, rest: u32) -> Id {
        let mut id = Id::of_object(&rest.to_le_bytes());
        id.0[..8].copy_from_slice(&key.to_be_bytes());
        id
    }

    #[test]
    fn reads_through_the_fence_find_what_the_mapping_finds() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = Vec::new();
        let mut n = 0;
        // Spread ids, one stored three times.
        for i in 0..5_000u32 {
            let id = Id::of_object(&i.to_le_bytes());
            let copies = if i == 77 { 3 } else { 1 };
            for _ in 0..copies {
                records.push(record(id, n));
                n += 1;
            }
        }
        // 300 distinct ids sharing one search key: they span several
        // blocks, so the fence holds that key more than once; and one of
        // them stored 70 times, across a block boundary.
        let shared = u64::MAX / 3;
        for rest in 0..300u32 {
            let copies = if rest == 5 { 70 } else { 1 };
            for _ in 0..copies {
                records.push(record(id_with_key(shared, rest), n));
                n += 1;
            }
        }
        let run = Run::create(dir.path(), &[Id([1; 32])], records.iter().collect()).unwrap();
        assert!(run.file.is_some(), "searched with pread in tests");
        let mut expected: std::collections::HashMap<Id, Vec<BlobLocation>> = Default::default();
        for r in &records {
            expected.entry(r.id).or_default().push(r.location);
        }
        for (id, locations) in &expected {
            let mut found = run.locations_of(id);
            let mut mapped: Vec<BlobLocation> = run.find_all(id).map(|i| run.location(i)).collect();
            let mut want = locations.clone();
            for v in [&mut found, &mut mapped, &mut want] {
                v.sort_by_key(|l| l.offset);
            }
            assert_eq!(found, want, "{id:?}");
            assert_eq!(mapped, want, "{id:?}");
        }
        for i in 5_000..6_000u32 {
            assert!(
                run.locations_of(&Id::of_object(&i.to_le_bytes()))
                    .is_empty()
            );
        }
        assert!(run.locations_of(&id_with_key(shared, 1_000)).is_empty());
        assert!(run.locations_of(&Id([0; 32])).is_empty());
        assert!(run.locations_of(&Id([0xff; 32])).is_empty());
    }
}

/// The key records are sorted and searched by: an id's first 8 bytes.
fn search_key(id: &Id) -> u64 {
    u64::from_be_bytes(id.0[..8].try_into().expect("8"))
}

/// The first of `0..n` for which `below` is false (`below` true for a
/// prefix of `0..n`).
fn partition_point(n: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// One entry of a run's pack table: a pack as one state listed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PackSlot {
    id: Id,
    sealing: Sealing,
    trusted: bool,
}

impl PackSlot {
    fn of(location: &BlobLocation) -> Self {
        PackSlot {
            id: location.pack,
            sealing: location.sealing,
            trusted: location.trusted,
        }
    }

    fn encode(&self) -> [u8; PACK_SLOT] {
        let mut out = [0u8; PACK_SLOT];
        out[..32].copy_from_slice(&self.id.0);
        let mut flags = u8::from(self.trusted);
        if let Sealing::Session(session) = self.sealing {
            out[32..64].copy_from_slice(&session);
            flags |= 2;
        }
        out[64] = flags;
        out
    }

    fn decode(bytes: &[u8]) -> Self {
        let session: [u8; 32] = bytes[32..64].try_into().expect("32 bytes");
        PackSlot {
            id: Id(bytes[..32].try_into().expect("32 bytes")),
            sealing: if bytes[64] & 2 != 0 {
                Sealing::Session(session)
            } else {
                Sealing::Store
            },
            trusted: bytes[64] & 1 != 0,
        }
    }
}

fn encode_record(id: &Id, pack: u32, l: &BlobLocation) -> [u8; RECORD] {
    let mut rec = [0u8; RECORD];
    rec[..32].copy_from_slice(&id.0);
    rec[32..36].copy_from_slice(&pack.to_le_bytes());
    rec[36..40].copy_from_slice(&l.offset.to_le_bytes());
    rec[40..44].copy_from_slice(&l.length.to_le_bytes());
    let kind = (l.kind as u32) << KIND_SHIFT;
    rec[44..48].copy_from_slice(&((l.raw_length & LENGTH_MASK) | kind).to_le_bytes());
    rec
}

/// A run's file name says which states it covers, so equal runs share a name.
pub fn run_file_name(states: &[Id]) -> String {
    let mut sorted = states.to_vec();
    sorted.sort_unstable();
    let mut hasher = blake3::Hasher::new();
    for s in &sorted {
        hasher.update(&s.0);
    }
    format!("{}.run", &hasher.finalize().to_hex()[..32])
}

fn cache_error(path: &Path, source: std::io::Error) -> Error {
    Error::Cache {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a run file under a temporary name, maps it, then renames it into
/// place: the mapping stays valid whatever other writers do with the name
/// meanwhile (two threads of one process, such as the web UI's requests,
/// may build and compact the same runs at once).
fn write_run(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<Run> {
    static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let writer = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{writer}", std::process::id()));
    let result = (|| {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        // SAFETY: as in `Run::open`: the file is complete and never
        // modified again, only renamed and at some point unlinked.
        let map = unsafe { Mmap::map(&file) }?;
        fs::rename(&tmp, path)?;
        Ok((map, file))
    })();
    match result {
        Ok((map, file)) => Run::parse(Bytes::Mapped(map), Some(path.to_path_buf()), Some(file)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(cache_error(path, e))
        }
    }
}
