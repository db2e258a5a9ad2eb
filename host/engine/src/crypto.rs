//! Keys and sealing. One random 256-bit master key per store; every purpose
//! gets its own subkey derived from it with BLAKE3's key derivation, so a
//! blob id can never be confused with a MAC or a ciphertext key.

use crate::error::{Error, Result};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use std::fmt;

/// Bytes a sealed object adds to its plaintext: the nonce and the tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A 32-byte identifier: a blob's keyed hash, or an object's plain hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// The full 64 hex digits, as storage names objects.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses a full 64-digit id.
    pub fn from_hex(text: &str) -> Option<Id> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Id(out))
    }

    /// The unkeyed BLAKE3 hash that names packs, states and snapshots: anyone
    /// holding the bytes can verify the name, no key needed.
    pub fn of_object(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// The first 8 hex digits, as shown to people.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The store's master key material, as unwrapped from a key object.
#[derive(Clone)]
pub struct MasterKey(pub(crate) [u8; 32]);

impl MasterKey {
    /// A fresh random key for a new store.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The key as 64 hex digits, for a local key file the user opted into.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads a key written by [`MasterKey::to_hex`]; surrounding whitespace is ignored.
    pub fn from_hex(text: &str) -> Option<MasterKey> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(MasterKey(bytes))
    }
}

/// What a domain separation label seals: keeps one kind of object from
/// being accepted as another even under the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Domain {
    /// A chunk, tree or activity record inside a pack.
    Blob = b'B',
    /// A pack's footer (its table of blobs).
    PackFooter = b'F',
    /// An index state.
    State = b'S',
    /// A snapshot header.
    Snapshot = b'N',
    /// A lock object.
    Lock = b'L',
    /// A master key wrapped under a passphrase.
    KeyWrap = b'K',
}

/// The subkeys derived from a master key.
#[derive(Clone)]
pub struct Keys {
    id_key: [u8; 32],
    mac_key: [u8; 32],
    cipher: XChaCha20Poly1305,
    chunker_seed: u64,
}

impl Keys {
    /// Derives every subkey from the master key, each under its own label, so one leaking does
    /// not give away the others.
    pub fn derive(master: &MasterKey) -> Self {
        let id_key = blake3::derive_key("kast 2026-11 blob id", &master.0);
        let mac_key = blake3::derive_key("kast 2026-11 config mac", &master.0);
        let seal_key = blake3::derive_key("kast 2026-11 seal", &master.0);
        let seed = blake3::derive_key("kast 2026-11 chunker seed", &master.0);
        let mut seed_bytes = [0u8; 8];
        seed_bytes.copy_from_slice(&seed[..8]);
        Self {
            id_key,
            mac_key,
            cipher: XChaCha20Poly1305::new((&seal_key).into()),
            chunker_seed: u64::from_le_bytes(seed_bytes),
        }
    }

    /// The content id of a blob: equal content, equal id, in this store only.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// Authenticates the plaintext config.
    pub fn config_mac(&self, bytes: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.mac_key, bytes).as_bytes()
    }

    /// Seeds the chunker's gear table so cut points do not reveal content
    /// to someone who can see blob sizes but holds no key.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// Appends `nonce ‖ ciphertext ‖ tag` of `plaintext` to `out`.
    pub fn seal_into(
        &self,
        domain: Domain,
        context: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        out.reserve(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let aad = associated_data(domain, context);
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut out[start..])
            .map_err(|_| Error::corrupt("sealing", "plaintext too long to seal"))?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Encrypts and authenticates `plaintext` under `domain`, binding `context`
    /// (a blob's kind and id), so a sealed blob cannot pass for another.
    pub fn seal(&self, domain: Domain, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.seal_into(domain, context, plaintext, &mut out)?;
        Ok(out)
    }

    /// Verifies and decrypts; `what` names the object in the error.
    pub fn open(
        &self,
        domain: Domain,
        context: &[u8],
        sealed: &[u8],
        what: &str,
    ) -> Result<Vec<u8>> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(Error::corrupt(what, "too short to be sealed"));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plaintext = ciphertext.to_vec();
        let aad = associated_data(domain, context);
        self.cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                &aad,
                &mut plaintext,
                Tag::from_slice(tag),
            )
            .map_err(|_| Error::corrupt(what, "authentication failed (modified or not ours)"))?;
        Ok(plaintext)
    }
}

fn associated_data(domain: Domain, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(5 + context.len());
    aad.extend_from_slice(b"kast");
    aad.push(domain as u8);
    aad.extend_from_slice(context);
    aad
}

/// Fills `buf` from the operating system's random source.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::corrupt("random source", e.to_string()))
}

/// A random lowercase-hex name of `bytes` random bytes.
pub fn random_name(bytes: usize) -> Result<String> {
    let mut raw = vec![0u8; bytes];
    fill_random(&mut raw)?;
    Ok(hex::encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::derive(&MasterKey([7; 32]))
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(data: Vec<u8>, context: Vec<u8>) {
            let k = keys();
            let sealed = k.seal(Domain::Blob, &context, &data).unwrap();
            prop_assert_eq!(sealed.len(), data.len() + SEAL_OVERHEAD);
            prop_assert_eq!(k.open(Domain::Blob, &context, &sealed, "x").unwrap(), data);
        }

        #[test]
        fn any_flipped_bit_is_detected(data in proptest::collection::vec(any::<u8>(), 1..200), pos: usize, bit in 0u8..8) {
            let k = keys();
            let mut sealed = k.seal(Domain::State, b"", &data).unwrap();
            let i = pos % sealed.len();
            sealed[i] ^= 1 << bit;
            prop_assert!(k.open(Domain::State, b"", &sealed, "x").is_err());
        }
    }

    #[test]
    fn domain_and_context_are_bound() {
        let k = keys();
        let sealed = k.seal(Domain::Blob, b"a", b"hello").unwrap();
        assert!(k.open(Domain::State, b"a", &sealed, "x").is_err());
        assert!(k.open(Domain::Blob, b"b", &sealed, "x").is_err());
        let other = Keys::derive(&MasterKey([8; 32]));
        assert!(other.open(Domain::Blob, b"a", &sealed, "x").is_err());
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = Keys::derive(&MasterKey([1; 32]));
        let b = Keys::derive(&MasterKey([2; 32]));
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x").0, *blake3::hash(b"x").as_bytes());
    }
}
