//! Packfiles: many sealed blobs in one storage object, so a backend sees a
//! few large opaque files instead of one file per chunk.
//!
//! Layout: random padding, the sealed frames (see [`crate::blob`]) back to
//! back, the sealed footer (which lists every blob, and the frame it is
//! in), then the footer's length as 4 plaintext bytes.
//! The pack is named by the BLAKE3 hash of all its bytes.

use crate::blob::BlobKind;
use crate::codec::{Reader, Writer};
use crate::crypto::{Domain, Id, Keys, Sealing, fill_random};
use crate::error::{Error, Result};
use crate::spill::Body;

const FOOTER_VERSION: u8 = 1;
/// Padding is uniformly 0..=MAX_PADDING bytes, so a small pack's size does
/// not give away the size of the one file in it.
const MAX_PADDING: usize = 4095;
/// The most a footer may take: a pack closes before its footer would
/// need more, so a pack of tiny blobs stays a pack of bounded table.
const FOOTER_MAX: usize = 1 << 20;
/// The most a footer takes per blob (id, kind, three varints)…
const FOOTER_ENTRY_MAX: usize = 32 + 1 + 3 * 5;
/// …and in all besides (version, count, sealing, its length).
const FOOTER_FIXED_MAX: usize = 256;

/// Where one blob sits inside a pack, as the footer records it: the frame
/// that holds it (the members of a group share one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// The blob's id.
    pub id: Id,
    /// What the blob holds.
    pub kind: BlobKind,
    /// Where its frame starts in the pack.
    pub offset: u32,
    /// The frame's sealed length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

/// A pack being filled. Its frames go to a [`Body`] (a temporary file
/// when there is one) as they come, hashed on the way, so the pack's name
/// is known when it closes without a second pass.
pub struct PackBuilder {
    body: Body,
    len: usize,
    hasher: blake3::Hasher,
    entries: Vec<PackEntry>,
}

/// A closed pack, ready to put.
pub struct FinishedPack {
    /// BLAKE3 of its bytes.
    pub name: Id,
    /// Its bytes.
    pub body: Body,
    /// How many.
    pub size: u64,
    /// The blobs in it, as its footer lists them.
    pub entries: Vec<PackEntry>,
}

#[cfg(test)]
impl FinishedPack {
    /// The pack's bytes in one buffer.
    pub fn joined(self) -> Vec<u8> {
        use std::io::Read;
        let mut bytes = Vec::new();
        let mut drop_part = |_| {};
        self.body
            .reader(&mut drop_part)
            .and_then(|mut r| r.read_to_end(&mut bytes))
            .expect("a pack body reads back");
        bytes
    }
}

impl PackBuilder {
    /// An empty pack: its random padding only.
    pub fn new() -> Result<Self> {
        let mut pad_len = [0u8; 2];
        fill_random(&mut pad_len)?;
        let mut padding = vec![0; u16::from_le_bytes(pad_len) as usize % (MAX_PADDING + 1)];
        fill_random(&mut padding)?;
        let mut builder = Self {
            body: Body::new(),
            len: 0,
            hasher: blake3::Hasher::new(),
            entries: Vec::new(),
        };
        builder.push(padding);
        Ok(builder)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a sealed frame of `len` bytes holding `members` blobs still
    /// fits in `target`; an empty pack takes any frame, so one larger than
    /// the target gets a pack.
    pub fn has_room(&self, len: usize, members: usize, target: usize) -> bool {
        let footer = FOOTER_FIXED_MAX + (self.entries.len() + members) * FOOTER_ENTRY_MAX;
        self.entries.is_empty() || (self.len + len <= target && footer <= FOOTER_MAX)
    }

    /// Appends one sealed frame and lists each blob in it (id, kind,
    /// plaintext length) at the frame's offset and length. The frame's
    /// buffer comes back when the body did not keep it.
    pub fn add(&mut self, members: &[(Id, BlobKind, u32)], sealed: Vec<u8>) -> Option<Vec<u8>> {
        let offset = self.len as u32;
        for &(id, kind, raw_length) in members {
            self.entries.push(PackEntry {
                id,
                kind,
                offset,
                length: sealed.len() as u32,
                raw_length,
            });
        }
        self.push(sealed)
    }

    /// Bytes held in memory (see [`Body::in_memory`]).
    pub fn in_memory(&self) -> u64 {
        self.body.in_memory()
    }

    fn push(&mut self, part: Vec<u8>) -> Option<Vec<u8>> {
        self.hasher.update(&part);
        self.len += part.len();
        self.body.push(part)
    }

    pub fn finish(mut self, keys: &Keys) -> Result<FinishedPack> {
        let mut footer = keys.seal(Domain::PackFooter, b"", &encode_footer(&self.entries))?;
        let footer_len = footer.len() as u32;
        footer.extend_from_slice(&footer_len.to_le_bytes());
        self.push(footer);
        // The entries are kept until the run's last state is put: without
        // the slack of their growth, 200k small files hold 10 MiB, not 18.
        self.entries.shrink_to_fit();
        Ok(FinishedPack {
            name: Id(*self.hasher.finalize().as_bytes()),
            body: self.body,
            size: self.len as u64,
            entries: self.entries,
        })
    }
}

pub fn encode_footer(entries: &[PackEntry]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(FOOTER_VERSION);
    w.varint(entries.len() as u64);
    for e in entries {
        w.fixed(&e.id.0);
        w.u8(e.kind as u8);
        w.varint(e.offset.into());
        w.varint(e.length.into());
        w.varint(e.raw_length.into());
    }
    w.into_bytes()
}

pub fn decode_footer(bytes: &[u8], what: &str) -> Result<Vec<PackEntry>> {
    let mut r = Reader::new(bytes, what);
    if r.u8()? != FOOTER_VERSION {
        return Err(Error::corrupt(what, "unknown footer version"));
    }
    let count = r.len(36)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let id = Id(r.array()?);
        let kind =
            BlobKind::from_u8(r.u8()?).ok_or_else(|| Error::corrupt(what, "unknown blob kind"))?;
        let mut small = || -> Result<u32> {
            u32::try_from(r.varint()?).map_err(|_| Error::corrupt(what, "offset out of range"))
        };
        let offset = small()?;
        let length = small()?;
        let raw_length = small()?;
        entries.push(PackEntry {
            id,
            kind,
            offset,
            length,
            raw_length,
        });
    }
    r.finish()?;
    Ok(entries)
}

/// Parses a whole pack's bytes: checks its name and returns the footer.
/// Every entry is checked to lie inside the blob area.
pub fn read_footer(
    keys: &Keys,
    sealing: Sealing,
    name: &Id,
    bytes: &[u8],
) -> Result<Vec<PackEntry>> {
    let what = format!("pack {}", name.short());
    if Id::of_object(bytes) != *name {
        return Err(Error::corrupt(&what, "content does not match its name"));
    }
    let (footer_start, sealed) = locate_footer(bytes, &what)?;
    let entries = decode_footer(
        &keys.open(sealing, Domain::PackFooter, b"", sealed, &what)?,
        &what,
    )?;
    for e in &entries {
        if e.offset as u64 + e.length as u64 > footer_start as u64 {
            return Err(Error::corrupt(&what, "footer points past the blobs"));
        }
    }
    Ok(entries)
}

fn locate_footer<'a>(bytes: &'a [u8], what: &str) -> Result<(usize, &'a [u8])> {
    if bytes.len() < 4 {
        return Err(Error::corrupt(what, "truncated"));
    }
    let tail = bytes.len() - 4;
    let len = u32::from_le_bytes(bytes[tail..].try_into().expect("4 bytes")) as usize;
    let start = tail
        .checked_sub(len)
        .ok_or_else(|| Error::corrupt(what, "footer length exceeds the pack"))?;
    Ok((start, &bytes[start..tail]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = PackEntry> {
        (
            any::<[u8; 32]>(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(id, tree, offset, length, raw_length)| PackEntry {
                id: Id(id),
                kind: if tree { BlobKind::Tree } else { BlobKind::Data },
                offset,
                length,
                raw_length,
            })
    }

    proptest! {
        #[test]
        fn footer_round_trip(entries in proptest::collection::vec(entry(), 0..50)) {
            let bytes = encode_footer(&entries);
            prop_assert_eq!(decode_footer(&bytes, "t").unwrap(), entries);
        }

        #[test]
        fn footer_garbage_never_panics(bytes: Vec<u8>) {
            let _ = decode_footer(&bytes, "t");
        }
    }

    #[test]
    fn finished_pack_reads_back_and_detects_flips() {
        let keys = Keys::derive(&MasterKey([5; 32]));
        let mut b = PackBuilder::new().unwrap();
        b.add(&[(Id([1; 32]), BlobKind::Data, 3)], b"abcdef".to_vec());
        b.add(&[(Id([2; 32]), BlobKind::Tree, 1)], b"xyz".to_vec());
        let pack = b.finish(&keys).unwrap();
        let (name, size, listed) = (pack.name, pack.size, pack.entries.clone());
        let bytes = pack.joined();
        assert_eq!(bytes.len() as u64, size);
        let entries = read_footer(&keys, Sealing::Store, &name, &bytes).unwrap();
        assert_eq!(entries, listed);
        let e = entries[1];
        assert_eq!(&bytes[e.offset as usize..][..e.length as usize], b"xyz");
        for i in [0, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(read_footer(&keys, Sealing::Store, &name, &bad).is_err());
        }
    }

    #[test]
    fn a_pack_of_tiny_blobs_closes_before_its_footer_passes_its_bound() {
        let keys = Keys::derive(&MasterKey([5; 32]));
        let target = 16 << 20;
        let mut b = PackBuilder::new().unwrap();
        let mut n = 0u32;
        while b.has_room(100, 1, target) {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&n.to_le_bytes());
            b.add(&[(Id(id), BlobKind::Data, u32::MAX)], vec![7u8; 100]);
            n += 1;
        }
        assert!(n > 10_000, "closed after {n} blobs");
        let pack = b.finish(&keys).unwrap();
        let name = pack.name;
        let bytes = pack.joined();
        let footer_len = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
        assert!(
            footer_len as usize <= FOOTER_MAX,
            "a footer of {footer_len} bytes"
        );
        assert_eq!(
            read_footer(&keys, Sealing::Store, &name, &bytes)
                .unwrap()
                .len(),
            n as usize
        );
    }
}
