//! A run: one sorted, fixed-width file of index records, memory-mapped so a
//! lookup touches a page or two and the process never loads the index whole.
//!
//! Layout (little-endian): `KASTRUN3`, state count u32, pack count u32,
//! record count u64, the 32-byte names of the states it covers, the pack
//! table (72 bytes a pack: its name, the put-only session that sealed it or
//! zeros, a flags byte (bit 0: trusted for deduplication, bit 1: sealed by
//! a session), 7 bytes of zeros), then the records sorted by blob id: id
//! (32), pack-table number u32, offset u32, sealed length u32, and the
//! plaintext length u32 with the blob kind in its top two bits (a blob is
//! far below 1 GiB). A pack listed by a trusted and an untrusted state has
//! two table entries, so trust stays with the records of the state that
//! gave it. Runs are a local cache: one in an older layout fails to open
//! and is rebuilt from the store's states.

use crate::blob::BlobKind;
use crate::crypto::{Id, Sealing};
use crate::error::{Error, Result};
use memmap2::{Mmap, UncheckedAdvice};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"KASTRUN3";
/// Bytes of one pack-table entry.
const PACK_SLOT: usize = 72;
const HEADER: usize = 24;
const RECORD: usize = 48;
const KIND_SHIFT: u32 = 30;
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
}

/// Records a scan reads between two releases (3 MiB).
pub(super) const SCAN_RELEASE: usize = 65_536;

impl Run {
    /// Encodes a run from records (sorted here) into any writer.
    fn write_to<W: Write + ?Sized>(
        out: &mut W,
        states: &[Id],
        records: &mut [Record],
    ) -> std::io::Result<()> {
        records.sort_unstable_by_key(|r| r.id);
        let mut numbers: std::collections::HashMap<PackSlot, u32> =
            std::collections::HashMap::new();
        let mut packs = Vec::new();
        for r in records.iter() {
            numbers.entry(PackSlot::of(&r.location)).or_insert_with(|| {
                packs.push(PackSlot::of(&r.location));
                packs.len() as u32 - 1
            });
        }
        Self::write_header(out, states, &packs, records.len() as u64)?;
        for r in records.iter() {
            write_record(out, &r.id, numbers[&PackSlot::of(&r.location)], &r.location)?;
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
    pub fn in_memory(states: &[Id], mut records: Vec<Record>) -> Result<Run> {
        let mut buf = Vec::with_capacity(HEADER + 32 * states.len() + RECORD * records.len());
        Self::write_to(&mut buf, states, &mut records).expect("writing to memory cannot fail");
        Run::parse(Bytes::Owned(buf), None)
    }

    /// Writes a run file atomically into `dir` and maps it.
    pub fn create(dir: &Path, states: &[Id], mut records: Vec<Record>) -> Result<Run> {
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
            while let Some(std::cmp::Reverse((_, i, pos))) = heap.pop() {
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
                Run::parse(Bytes::Owned(buf), None)
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
        Run::parse(Bytes::Mapped(map), Some(path.to_path_buf()))
    }

    fn parse(bytes: Bytes, path: Option<PathBuf>) -> Result<Run> {
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
            .and_then(|t| t.checked_add(HEADER));
        if expected != Some(bytes.len()) {
            return Err(bad());
        }
        let run = Run {
            bytes,
            states,
            packs,
            records,
            path,
        };
        Ok(run)
    }

    /// Unmaps the pages of records `range` from this process. They stay in
    /// the page cache (reading them again costs a minor fault), but no
    /// longer count as the process's memory: a scan over a run of 50
    /// million records would otherwise make 2.4 GB of it resident.
    /// (Random lookups are left alone: releasing behind them costs a page
    /// fault per lookup and bounded little; docs/benchmarks.md, "Scale".)
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

    fn record_offset(&self, i: usize) -> usize {
        HEADER + 32 * self.states + PACK_SLOT * self.packs + RECORD * i
    }

    pub fn id(&self, i: usize) -> Id {
        self.id_at(self.record_offset(i))
    }

    fn u32_at(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.bytes[offset..offset + 4].try_into().expect("4"))
    }

    pub fn location(&self, i: usize) -> BlobLocation {
        let o = self.record_offset(i) + 32;
        let raw = self.u32_at(o + 12);
        let pack = self.pack(self.u32_at(o) as usize);
        BlobLocation {
            pack: pack.id,
            sealing: pack.sealing,
            trusted: pack.trusted,
            offset: self.u32_at(o + 4),
            length: self.u32_at(o + 8),
            raw_length: raw & LENGTH_MASK,
            // Two bits hold every kind this build writes; an unknown value
            // can only come from a damaged cache file, read as data (which
            // then fails to open, as any damage does).
            kind: BlobKind::from_u8((raw >> KIND_SHIFT) as u8).unwrap_or(BlobKind::Data),
        }
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
        if self.records == 0 {
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

fn write_record<W: Write + ?Sized>(
    out: &mut W,
    id: &Id,
    pack: u32,
    l: &BlobLocation,
) -> std::io::Result<()> {
    let mut rec = [0u8; RECORD];
    rec[..32].copy_from_slice(&id.0);
    rec[32..36].copy_from_slice(&pack.to_le_bytes());
    rec[36..40].copy_from_slice(&l.offset.to_le_bytes());
    rec[40..44].copy_from_slice(&l.length.to_le_bytes());
    let kind = (l.kind as u32) << KIND_SHIFT;
    rec[44..48].copy_from_slice(&((l.raw_length & LENGTH_MASK) | kind).to_le_bytes());
    out.write_all(&rec)
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
        Ok(map)
    })();
    match result {
        Ok(map) => Run::parse(Bytes::Mapped(map), Some(path.to_path_buf())),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(cache_error(path, e))
        }
    }
}
