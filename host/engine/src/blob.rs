//! One blob: compressed when that saves space, sealed, and bound to its id
//! and kind so a blob moved or swapped inside a pack fails to open.

use crate::crypto::{Domain, Id, Keys, Sealing};
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

const RAW: u8 = 0;
const LZ4: u8 = 1;

fn context(kind: BlobKind, id: &Id) -> [u8; 33] {
    let mut ctx = [0u8; 33];
    ctx[0] = kind as u8;
    ctx[1..].copy_from_slice(&id.0);
    ctx
}

/// Compresses `plaintext` with LZ4 if that makes it smaller, then seals it.
pub fn seal(keys: &Keys, kind: BlobKind, id: &Id, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    seal_into(keys, kind, id, plaintext, &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// [`seal`] into `out`, with a scratch buffer the caller keeps between
/// blobs, so a worker neither allocates nor zeroes buffers per blob.
pub fn seal_into(
    keys: &Keys,
    kind: BlobKind,
    id: &Id,
    plaintext: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let bound = 5 + lz4_flex::block::get_maximum_output_size(plaintext.len());
    if scratch.len() < bound {
        scratch.resize(bound, 0);
    }
    let compressed = lz4_flex::block::compress_into(plaintext, &mut scratch[5..])
        .map_err(|e| Error::corrupt("compression", e.to_string()))?;
    if compressed + 4 < plaintext.len() {
        scratch[0] = LZ4;
        scratch[1..5].copy_from_slice(&(plaintext.len() as u32).to_le_bytes());
        keys.seal_into(
            Domain::Blob,
            &context(kind, id),
            &scratch[..5 + compressed],
            out,
        )
    } else {
        scratch.clear();
        scratch.push(RAW);
        scratch.extend_from_slice(plaintext);
        keys.seal_into(Domain::Blob, &context(kind, id), scratch, out)
    }
}

/// Opens, decompresses and verifies that the content hashes to `id`.
pub fn open(
    keys: &Keys,
    sealing: Sealing,
    kind: BlobKind,
    id: &Id,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let what = format!("blob {}", id.short());
    let body = keys.open(sealing, Domain::Blob, &context(kind, id), sealed, &what)?;
    let plaintext = match body.first() {
        Some(&RAW) => body[1..].to_vec(),
        Some(&LZ4) if body.len() >= 5 => {
            let raw_len = u32::from_le_bytes([body[1], body[2], body[3], body[4]]) as usize;
            let mut out = vec![0u8; raw_len];
            let n = lz4_flex::block::decompress_into(&body[5..], &mut out)
                .map_err(|e| Error::corrupt(&what, format!("bad LZ4 data: {e}")))?;
            if n != raw_len {
                return Err(Error::corrupt(&what, "decompressed length differs"));
            }
            out
        }
        _ => return Err(Error::corrupt(&what, "unknown blob encoding")),
    };
    if keys.blob_id(&plaintext) != *id {
        return Err(Error::corrupt(&what, "content does not match its id"));
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(data: Vec<u8>, repeat in 1usize..50) {
            let keys = Keys::derive(&MasterKey([3; 32]));
            let plaintext = data.repeat(repeat);
            let id = keys.blob_id(&plaintext);
            let sealed = seal(&keys, BlobKind::Data, &id, &plaintext).unwrap();
            prop_assert_eq!(open(&keys, Sealing::Store, BlobKind::Data, &id, &sealed).unwrap(), plaintext);
            prop_assert!(open(&keys, Sealing::Store, BlobKind::Tree, &id, &sealed).is_err());
        }
    }

    #[test]
    fn compressible_data_shrinks() {
        let keys = Keys::derive(&MasterKey([3; 32]));
        let plaintext = b"hello world ".repeat(10_000);
        let id = keys.blob_id(&plaintext);
        let sealed = seal(&keys, BlobKind::Data, &id, &plaintext).unwrap();
        assert!(sealed.len() < plaintext.len() / 10);
    }
}
