//! Frames: what a pack holds back to back. A frame is one blob, compressed
//! when that saves space and sealed bound to its kind and id, so a blob
//! moved or swapped inside a pack fails to open; or a group of small data
//! chunks compressed together (files of a few KiB compress two to three
//! times better with their neighbours), whose sealed member table names
//! each by its id, and each member is checked against its whole id when
//! taken out. The index points each member at its group's frame.

use crate::codec::{Reader, Writer};
use crate::compression::{self, Compression, Compressor};
use crate::crypto::{Domain, Id, Keys, SEAL_OVERHEAD, Sealing};
use crate::error::{Error, Result};

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// An encoded directory (see [`crate::tree`]).
    Tree = 1,
    /// One job run's record (see [`crate::activity`]): kept by maintenance
    /// though no snapshot reaches it.
    Activity = 2,
}

impl BlobKind {
    /// Decodes the kind byte of an index record; `None` for a kind this version does not know.
    pub(crate) fn from_u8(v: u8) -> Option<BlobKind> {
        match v {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            2 => Some(BlobKind::Activity),
            _ => None,
        }
    }
}

/// A frame holding one blob, sealed with that blob's kind and id.
const SINGLE_CODECS: [u8; 3] = [compression::RAW, compression::LZ4, compression::ZSTD];
/// A frame holding several small data chunks, compressed together.
const GROUP: u8 = 3;
/// Data chunks shorter than this may share a frame (a group); longer ones
/// gain little from their neighbours and are read alone.
pub const GROUP_MEMBER_MAX: usize = 64 * 1024;
/// A group's members add up to at most this: the most one small file's
/// read decompresses.
pub const GROUP_MAX: usize = 2 << 20;
/// Bytes of a member's id a group names it by; the content is then hashed
/// against the whole id.
const PREFIX: usize = 8;

/// Whether a blob of this kind and plaintext length may sit in a group
/// (and so must be opened, not copied, to be moved).
pub fn may_be_grouped(kind: BlobKind, raw_length: u32) -> bool {
    kind == BlobKind::Data && (raw_length as usize) < GROUP_MEMBER_MAX
}

fn context(kind: BlobKind, id: &Id) -> [u8; 33] {
    let mut ctx = [0u8; 33];
    ctx[0] = kind as u8;
    ctx[1..].copy_from_slice(&id.0);
    ctx
}

/// A group's context: no kind byte has this value, so a group never opens
/// as a single blob nor the reverse. What binds a member to its frame is
/// the member table inside, and then its content hash.
const GROUP_CONTEXT: [u8; 33] = [0xff; 33];

/// A worker's sealing state: its compressor and a scratch buffer, kept
/// between blobs so a worker neither allocates nor zeroes buffers per blob.
/// A blob is compressed straight into its frame and sealed where it lies.
pub struct Sealer {
    compressor: Compressor,
    /// A group's members, joined to be compressed as one.
    joined: Vec<u8>,
}

impl Sealer {
    /// A sealer that compresses with `codec`.
    pub fn new(codec: Compression) -> Self {
        Sealer {
            compressor: Compressor::new(codec),
            joined: Vec::new(),
        }
    }

    /// Compresses one blob if that makes it smaller, then seals it into
    /// `out`, bound to its kind and id.
    pub fn seal_into(
        &mut self,
        keys: &Keys,
        kind: BlobKind,
        id: &Id,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let compressor = &mut self.compressor;
        out.reserve(plaintext.len() + 5 + SEAL_OVERHEAD);
        keys.seal_appended(Domain::Blob, &context(kind, id), out, |body| {
            let at = body.len();
            body.extend_from_slice(&[0; 5]);
            match compressor.compress(plaintext, body)? {
                Some(codec) => {
                    body[at] = codec;
                    body[at + 1..at + 5].copy_from_slice(&(plaintext.len() as u32).to_le_bytes());
                }
                None => {
                    body.truncate(at + 1);
                    body[at] = compression::RAW;
                    body.extend_from_slice(plaintext);
                }
            }
            Ok(())
        })
    }

    /// Seals small data chunks together as one frame, compressed as one
    /// (so the codec sees across files); each is found again by its id.
    pub fn seal_group_into(
        &mut self,
        keys: &Keys,
        members: &[(Id, &[u8])],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let mut table = Writer::new();
        table.u8(GROUP);
        table.varint(members.len() as u64);
        self.joined.clear();
        for (id, data) in members {
            table.fixed(&id.0[..PREFIX]);
            table.varint(data.len() as u64);
            self.joined.extend_from_slice(data);
        }
        let (compressor, joined) = (&mut self.compressor, &self.joined);
        keys.seal_appended(Domain::Blob, &GROUP_CONTEXT, out, |body| {
            body.extend_from_slice(&table.into_bytes());
            let codec_at = body.len();
            body.push(compression::RAW);
            match compressor.compress(joined, body)? {
                Some(codec) => body[codec_at] = codec,
                None => body.extend_from_slice(joined),
            }
            Ok(())
        })
    }
}

/// An opened frame: one blob, or a group of small chunks.
pub struct Frame {
    plain: Vec<u8>,
    members: Vec<Member>,
}

struct Member {
    prefix: [u8; PREFIX],
    kind: BlobKind,
    start: usize,
    len: usize,
}

impl Frame {
    /// Whether it holds more than one blob (and so is worth keeping while
    /// its neighbours are read).
    pub fn is_group(&self) -> bool {
        self.members.len() > 1
    }

    /// Copies out the blob `id`, checked against its id.
    pub fn take(&self, keys: &Keys, kind: BlobKind, id: &Id) -> Result<Vec<u8>> {
        self.find(keys, kind, id)
            .map(|m| self.plain[m.start..][..m.len].to_vec())
    }

    /// Like [`Frame::take`], without copying when the frame is the blob.
    pub fn into_blob(self, keys: &Keys, kind: BlobKind, id: &Id) -> Result<Vec<u8>> {
        let member = self.find(keys, kind, id)?;
        if member.start == 0 && member.len == self.plain.len() {
            Ok(self.plain)
        } else {
            Ok(self.plain[member.start..][..member.len].to_vec())
        }
    }

    fn find(&self, keys: &Keys, kind: BlobKind, id: &Id) -> Result<&Member> {
        let what = || format!("blob {}", id.short());
        let mut named = false;
        for m in &self.members {
            if m.prefix == id.0[..PREFIX] && m.kind == kind {
                named = true;
                if keys.blob_id(&self.plain[m.start..][..m.len]) == *id {
                    return Ok(m);
                }
            }
        }
        Err(Error::corrupt(
            what(),
            if named {
                "content does not match its id"
            } else {
                "not in the frame its index points to"
            },
        ))
    }
}

/// Opens the frame that holds blob `id` (of `raw_length` bytes, as the
/// index says). A frame that could be this blob alone is tried as that
/// first; a small data chunk may instead sit in a group.
pub fn open_frame(
    keys: &Keys,
    sealing: Sealing,
    kind: BlobKind,
    id: &Id,
    raw_length: u32,
    sealed: &[u8],
) -> Result<Frame> {
    let what = format!("blob {}", id.short());
    let raw = raw_length as usize;
    let may_be_group = may_be_grouped(kind, raw_length);
    let mut first_error = None;
    // A blob sealed alone is at most one byte plus sealing longer than it.
    if sealed.len() <= raw + 1 + SEAL_OVERHEAD || !may_be_group {
        match keys.open(sealing, Domain::Blob, &context(kind, id), sealed, &what) {
            Ok(body) => return single(body, kind, id, raw, &what),
            Err(e) if !may_be_group => return Err(e),
            Err(e) => first_error = Some(e),
        }
    }
    match keys.open(sealing, Domain::Blob, &GROUP_CONTEXT, sealed, &what) {
        Ok(body) => group(&body, &what),
        Err(e) => Err(first_error.unwrap_or(e)),
    }
}

fn single(body: Vec<u8>, kind: BlobKind, id: &Id, raw: usize, what: &str) -> Result<Frame> {
    let plain = match body.first() {
        Some(&compression::RAW) => {
            let mut body = body;
            body.remove(0);
            body
        }
        Some(codec) if SINGLE_CODECS.contains(codec) && body.len() >= 5 => {
            let stated = u32::from_le_bytes([body[1], body[2], body[3], body[4]]) as usize;
            if stated != raw {
                return Err(Error::corrupt(what, "its length differs from the index's"));
            }
            compression::decompress(*codec, &body[5..], raw, what)?
        }
        _ => return Err(Error::corrupt(what, "unknown blob encoding")),
    };
    let mut prefix = [0u8; PREFIX];
    prefix.copy_from_slice(&id.0[..PREFIX]);
    Ok(Frame {
        members: vec![Member {
            prefix,
            kind,
            start: 0,
            len: plain.len(),
        }],
        plain,
    })
}

fn group(body: &[u8], what: &str) -> Result<Frame> {
    let mut r = Reader::new(body, what);
    if r.u8()? != GROUP {
        return Err(Error::corrupt(what, "unknown blob encoding"));
    }
    let count = r.len(PREFIX + 1)?;
    let mut members = Vec::with_capacity(count);
    let mut total = 0usize;
    for _ in 0..count {
        let prefix = r.array()?;
        let len = usize::try_from(r.varint()?).unwrap_or(usize::MAX);
        if len >= GROUP_MEMBER_MAX || total + len > GROUP_MAX {
            return Err(Error::corrupt(what, "a group larger than groups are"));
        }
        members.push(Member {
            prefix,
            kind: BlobKind::Data,
            start: total,
            len,
        });
        total += len;
    }
    let codec = r.u8()?;
    let plain = compression::decompress(codec, r.rest(), total, what)?;
    Ok(Frame { plain, members })
}

/// Opens, decompresses and verifies that the content hashes to `id`.
pub fn open(
    keys: &Keys,
    sealing: Sealing,
    kind: BlobKind,
    id: &Id,
    raw_length: u32,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    open_frame(keys, sealing, kind, id, raw_length, sealed)?.into_blob(keys, kind, id)
}

/// The last group opened, so that members of one group read in a row
/// (they sit at one offset, and reads go in offset order) open it once.
#[derive(Default)]
pub struct FrameCache {
    last: Option<((Id, u32, Sealing), Frame)>,
}

impl FrameCache {
    /// Opens blob `id`, sealed at `offset` of `pack`, through the cache.
    pub fn open(
        &mut self,
        keys: &Keys,
        (pack, offset): (&Id, u32),
        location: (Sealing, BlobKind, u32),
        id: &Id,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let (sealing, kind, raw_length) = location;
        let key = (*pack, offset, sealing);
        if let Some((cached, frame)) = &self.last
            && *cached == key
        {
            return frame.take(keys, kind, id);
        }
        let frame = open_frame(keys, sealing, kind, id, raw_length, sealed)?;
        if frame.is_group() {
            let blob = frame.take(keys, kind, id);
            self.last = Some((key, frame));
            blob
        } else {
            frame.into_blob(keys, kind, id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::derive(&MasterKey([3; 32]))
    }

    proptest! {
        #[test]
        fn round_trip(data: Vec<u8>, repeat in 1usize..50, codec in 0usize..3) {
            let keys = keys();
            let codec = [Compression::None, Compression::Lz4, Compression::Zstd(3)][codec];
            let plaintext = data.repeat(repeat);
            let id = keys.blob_id(&plaintext);
            let raw = plaintext.len() as u32;
            let mut sealed = Vec::new();
            Sealer::new(codec).seal_into(&keys, BlobKind::Data, &id, &plaintext, &mut sealed).unwrap();
            prop_assert_eq!(open(&keys, Sealing::Store, BlobKind::Data, &id, raw, &sealed).unwrap(), plaintext);
            prop_assert!(open(&keys, Sealing::Store, BlobKind::Tree, &id, raw, &sealed).is_err());
        }

        #[test]
        fn every_member_of_a_group_comes_back_and_only_it(
            files in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 2..40),
            codec in 0usize..3,
        ) {
            let keys = keys();
            let codec = [Compression::None, Compression::Lz4, Compression::Zstd(3)][codec];
            let members: Vec<(Id, &[u8])> = files.iter().map(|f| (keys.blob_id(f), &f[..])).collect();
            let mut sealed = Vec::new();
            Sealer::new(codec).seal_group_into(&keys, &members, &mut sealed).unwrap();
            let mut cache = FrameCache::default();
            for (id, data) in &members {
                let raw = data.len() as u32;
                prop_assert_eq!(&open(&keys, Sealing::Store, BlobKind::Data, id, raw, &sealed).unwrap()[..], *data);
                let cached = cache.open(&keys, (&Id([0; 32]), 0), (Sealing::Store, BlobKind::Data, raw), id, &sealed).unwrap();
                prop_assert_eq!(&cached[..], *data);
                // A group holds data only.
                prop_assert!(open(&keys, Sealing::Store, BlobKind::Tree, id, raw, &sealed).is_err());
            }
            let stranger = keys.blob_id(b"not in the group");
            prop_assert!(open(&keys, Sealing::Store, BlobKind::Data, &stranger, 16, &sealed).is_err());
        }

        #[test]
        fn a_damaged_frame_never_opens_nor_panics(flip in any::<usize>(), raw in 0u32..100_000, cut in any::<usize>()) {
            let keys = keys();
            let files = [b"hello ".repeat(500), b"world ".repeat(300)];
            let members: Vec<(Id, &[u8])> = files.iter().map(|f| (keys.blob_id(f), &f[..])).collect();
            let mut sealed = Vec::new();
            Sealer::new(Compression::Zstd(3)).seal_group_into(&keys, &members, &mut sealed).unwrap();
            let mut bad = sealed.clone();
            bad[flip % sealed.len()] ^= 1;
            prop_assert!(open(&keys, Sealing::Store, BlobKind::Data, &members[0].0, raw, &bad).is_err());
            prop_assert!(open(&keys, Sealing::Store, BlobKind::Data, &members[0].0, raw, &sealed[..cut % sealed.len()]).is_err());
        }
    }

    #[test]
    fn compressible_data_shrinks() {
        let keys = keys();
        let plaintext = b"hello world ".repeat(10_000);
        let id = keys.blob_id(&plaintext);
        for codec in [Compression::Lz4, Compression::Zstd(3)] {
            let mut sealed = Vec::new();
            Sealer::new(codec)
                .seal_into(&keys, BlobKind::Data, &id, &plaintext, &mut sealed)
                .unwrap();
            assert!(sealed.len() < plaintext.len() / 10, "{codec}");
        }
    }

    #[test]
    fn small_files_compress_better_together() {
        let keys = keys();
        let files: Vec<Vec<u8>> = (0..200)
            .map(|i| {
                format!("fn item_{i}() -> u32 {{ {i} * 2 }} // the same shape, file {i}\n")
                    .repeat(3)
                    .into_bytes()
            })
            .collect();
        let members: Vec<(Id, &[u8])> = files.iter().map(|f| (keys.blob_id(f), &f[..])).collect();
        let mut sealer = Sealer::new(Compression::Zstd(3));
        let mut alone = 0;
        for (id, data) in &members {
            let mut out = Vec::new();
            sealer
                .seal_into(&keys, BlobKind::Data, id, data, &mut out)
                .unwrap();
            alone += out.len();
        }
        let mut together = Vec::new();
        sealer
            .seal_group_into(&keys, &members, &mut together)
            .unwrap();
        assert!(
            together.len() * 3 < alone,
            "{} together, {alone} alone",
            together.len()
        );
    }

    #[test]
    fn a_frame_claiming_more_than_its_index_says_is_refused_before_allocating() {
        let keys = keys();
        let plaintext = vec![0u8; 100_000];
        let id = keys.blob_id(&plaintext);
        let mut sealed = Vec::new();
        Sealer::new(Compression::Zstd(3))
            .seal_into(&keys, BlobKind::Data, &id, &plaintext, &mut sealed)
            .unwrap();
        let err = open(&keys, Sealing::Store, BlobKind::Data, &id, 99_999, &sealed).unwrap_err();
        assert!(err.to_string().contains("length"), "{err}");
    }
}
