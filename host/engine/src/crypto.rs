//! Keys and sealing. One random 256-bit master key per store; every purpose
//! gets its own subkey derived from it with BLAKE3's key derivation, so a
//! blob id can never be confused with a MAC or a ciphertext key.

use crate::error::{Error, Result};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};

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

/// Which key sealed an object: the store's seal subkey (a full key wrote
/// it) or one put-only session's key, named by the session's public value
/// (see docs/store-format.md, "Put-only keys").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sealing {
    /// The seal subkey every full key derives.
    Store,
    /// A put-only session: its X25519 public value `E`.
    Session([u8; 32]),
}

/// An XChaCha20-Poly1305 key with kast's framing: `nonce ‖ ciphertext ‖ tag`
/// and associated data naming the object's role.
#[derive(Clone)]
struct Cipher(XChaCha20Poly1305);

impl Cipher {
    fn new(key: &[u8; 32]) -> Self {
        Cipher(XChaCha20Poly1305::new(key.into()))
    }

    fn seal_into(
        &self,
        domain: Domain,
        context: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.reserve(plaintext.len() + SEAL_OVERHEAD);
        self.seal_appended(domain, context, out, |out| {
            out.extend_from_slice(plaintext);
            Ok(())
        })
    }

    /// Seals in place what `fill` appends to `out`.
    fn seal_appended(
        &self,
        domain: Domain,
        context: &[u8],
        out: &mut Vec<u8>,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        out.extend_from_slice(&nonce);
        let start = out.len();
        fill(out)?;
        let aad = associated_data(domain, context);
        let tag = self
            .0
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut out[start..])
            .map_err(|_| Error::corrupt("sealing", "plaintext too long to seal"))?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    fn open(&self, domain: Domain, context: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(Error::corrupt(what, "too short to be sealed"));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plaintext = ciphertext.to_vec();
        let aad = associated_data(domain, context);
        self.0
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

/// What only a full key holds: everything that reads.
struct FullKeys {
    master: [u8; 32],
    mac_key: [u8; 32],
    seal: Cipher,
    read_secret: StaticSecret,
    /// Session keys derived so far, by session: a restore of a put-only
    /// backup opens thousands of blobs of one session.
    sessions: Mutex<HashMap<[u8; 32], Cipher>>,
}

/// What a put-only key holds besides what every key has.
struct PutOnlyKeys {
    /// Its key object's name (16 bytes): the prefix of the states it writes.
    name: [u8; 16],
    /// Authenticates its snapshot headers as its own.
    writer_key: [u8; 32],
    /// Seals and opens its own states.
    states: Cipher,
    config_digest: [u8; 32],
}

/// The keys a session works with: derived from the master key (a full key)
/// or unwrapped from a put-only key's bundle.
#[derive(Clone)]
pub struct Keys {
    id_key: [u8; 32],
    chunker_seed: u64,
    /// Seals what this client writes: the seal subkey, or its session's key.
    writer: Cipher,
    writing: Sealing,
    lock: Cipher,
    /// Whether this store's locks are sealed with the lock key (it has
    /// put-only keys), so a put-only client can read them.
    locks_readable_by_put_only: bool,
    full: Option<Arc<FullKeys>>,
    put_only: Option<Arc<PutOnlyKeys>>,
}

impl Keys {
    /// Derives every subkey from the master key, each under its own label,
    /// so one leaking does not give away the others.
    pub fn derive(master: &MasterKey) -> Self {
        let id_key = blake3::derive_key("kast 2026-11 blob id", &master.0);
        let mac_key = blake3::derive_key("kast 2026-11 config mac", &master.0);
        let seal = Cipher::new(&blake3::derive_key("kast 2026-11 seal", &master.0));
        let seed = blake3::derive_key("kast 2026-11 chunker seed", &master.0);
        let read_secret = StaticSecret::from(blake3::derive_key("kast 2026-12 read", &master.0));
        let lock = Cipher::new(&blake3::derive_key("kast 2026-12 lock", &master.0));
        Self {
            id_key,
            chunker_seed: seed_of(&seed),
            writer: seal.clone(),
            writing: Sealing::Store,
            lock,
            locks_readable_by_put_only: false,
            full: Some(Arc::new(FullKeys {
                master: master.0,
                mac_key,
                seal,
                read_secret,
                sessions: Mutex::new(HashMap::new()),
            })),
            put_only: None,
        }
    }

    /// A put-only key's session: a fresh X25519 secret whose public value
    /// names the session; everything written is sealed to the store's read
    /// key through it.
    pub fn put_only(bundle: &PutOnlyBundle, key_name: &str) -> Result<Self> {
        let mut name = [0u8; 16];
        hex::decode_to_slice(key_name, &mut name)
            .map_err(|_| Error::corrupt(format!("key {key_name}"), "name is not 32 hex digits"))?;
        let mut secret = [0u8; 32];
        fill_random(&mut secret)?;
        let secret = StaticSecret::from(secret);
        let session = X25519Public::from(&secret).to_bytes();
        let shared = secret.diffie_hellman(&X25519Public::from(bundle.read_public));
        let key = session_key(shared.as_bytes(), &session, &bundle.read_public)
            .ok_or_else(|| Error::corrupt(format!("key {key_name}"), "bad store read key"))?;
        Ok(Self {
            id_key: bundle.id_key,
            chunker_seed: bundle.chunker_seed,
            writer: Cipher::new(&key),
            writing: Sealing::Session(session),
            lock: Cipher::new(&bundle.lock_key),
            locks_readable_by_put_only: true,
            full: None,
            put_only: Some(Arc::new(PutOnlyKeys {
                name,
                writer_key: bundle.writer_key,
                states: Cipher::new(&bundle.writer_key),
                config_digest: bundle.config_digest,
            })),
        })
    }

    /// What a new put-only key named `key_name` holds, for a store whose
    /// config object is `config` (its bytes as stored).
    pub fn put_only_bundle(&self, key_name: &str, config: &[u8]) -> Result<PutOnlyBundle> {
        let full = self.full("make a put-only key")?;
        Ok(PutOnlyBundle {
            id_key: self.id_key,
            chunker_seed: self.chunker_seed,
            lock_key: blake3::derive_key("kast 2026-12 lock", &full.master),
            writer_key: writer_key(&full.master, &key_name_bytes(key_name)?),
            read_public: X25519Public::from(&full.read_secret).to_bytes(),
            config_digest: *blake3::hash(config).as_bytes(),
        })
    }

    fn full(&self, what: &str) -> Result<&FullKeys> {
        self.full
            .as_deref()
            .ok_or_else(|| Error::PutOnly(what.to_string()))
    }

    /// Whether these keys can only add backups.
    pub fn is_put_only(&self) -> bool {
        self.full.is_none()
    }

    /// How what this client writes is sealed.
    pub fn sealing(&self) -> Sealing {
        self.writing
    }

    /// Seals this store's locks with the lock key from now on: set when
    /// the store has put-only keys, which must see an exclusive lock.
    pub fn seal_locks_for_put_only(&mut self) {
        self.locks_readable_by_put_only = true;
    }

    /// The content id of a blob: equal content, equal id, in this store only.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// Authenticates the plaintext config; a put-only key cannot (it
    /// checks the config against its digest instead).
    pub fn config_mac(&self, bytes: &[u8]) -> Result<[u8; 32]> {
        Ok(*blake3::keyed_hash(&self.full("check the config's MAC")?.mac_key, bytes).as_bytes())
    }

    /// For a put-only key, whether `config` (as stored) is the one its key
    /// was made for; `None` for a full key, which checks the MAC.
    pub fn config_matches(&self, config: &[u8]) -> Option<bool> {
        let put_only = self.put_only.as_deref()?;
        Some(*blake3::hash(config).as_bytes() == put_only.config_digest)
    }

    /// Seeds the chunker's gear table so cut points do not reveal content
    /// to someone who can see blob sizes but holds no key.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// Appends `nonce ‖ ciphertext ‖ tag` of `plaintext` to `out`, sealed
    /// the way this client writes ([`Keys::sealing`]).
    pub fn seal_into(
        &self,
        domain: Domain,
        context: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.writer.seal_into(domain, context, plaintext, out)
    }

    /// Like [`Keys::seal_into`], for a plaintext that `fill` appends to
    /// `out` and is sealed where it lies: a blob is compressed straight
    /// into its frame instead of into a scratch buffer copied after.
    pub fn seal_appended(
        &self,
        domain: Domain,
        context: &[u8],
        out: &mut Vec<u8>,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.writer.seal_appended(domain, context, out, fill)
    }

    /// Encrypts and authenticates `plaintext` under `domain`, binding `context`
    /// (a blob's kind and id), so a sealed blob cannot pass for another.
    pub fn seal(&self, domain: Domain, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.seal_into(domain, context, plaintext, &mut out)?;
        Ok(out)
    }

    /// Verifies and decrypts an object sealed as `sealing` says; `what`
    /// names the object in the error. Only a full key reads.
    pub fn open(
        &self,
        sealing: Sealing,
        domain: Domain,
        context: &[u8],
        sealed: &[u8],
        what: &str,
    ) -> Result<Vec<u8>> {
        let full = self.full("read what the store holds")?;
        match sealing {
            Sealing::Store => full.seal.open(domain, context, sealed, what),
            Sealing::Session(session) => {
                let mut sessions = full.sessions.lock().unwrap_or_else(|p| p.into_inner());
                let cipher = match sessions.get(&session) {
                    Some(cipher) => cipher.clone(),
                    None => {
                        let shared = full
                            .read_secret
                            .diffie_hellman(&X25519Public::from(session));
                        let public = X25519Public::from(&full.read_secret).to_bytes();
                        let key = session_key(shared.as_bytes(), &session, &public)
                            .ok_or_else(|| Error::corrupt(what, "sealed to a bad session key"))?;
                        let cipher = Cipher::new(&key);
                        sessions.insert(session, cipher.clone());
                        cipher
                    }
                };
                drop(sessions);
                cipher.open(domain, context, sealed, what)
            }
        }
    }

    /// Seals an index state: with the seal subkey for a full key; for a
    /// put-only key, with its writer key, behind its key name.
    pub fn seal_state(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        match (&self.full, &self.put_only) {
            (Some(full), _) => {
                let mut out = Vec::new();
                full.seal
                    .seal_into(Domain::State, b"", plaintext, &mut out)?;
                Ok(out)
            }
            (None, Some(put_only)) => {
                let mut out = put_only.name.to_vec();
                put_only
                    .states
                    .seal_into(Domain::State, b"", plaintext, &mut out)?;
                Ok(out)
            }
            (None, None) => unreachable!("keys are full or put-only"),
        }
    }

    /// Seals a snapshot header: as every object for a full key; for a
    /// put-only key as `name ‖ session ‖ sealed ‖ MAC`, the MAC (keyed
    /// with its writer key, which only it and full keys hold) proving
    /// which key wrote it, so a header cannot pass for another key's.
    pub fn seal_snapshot(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let Some(put_only) = &self.put_only else {
            return self.seal(Domain::Snapshot, b"", plaintext);
        };
        let Sealing::Session(session) = self.writing else {
            unreachable!("a put-only key writes in a session")
        };
        let mut out = put_only.name.to_vec();
        out.extend_from_slice(&session);
        self.writer
            .seal_into(Domain::Snapshot, b"", plaintext, &mut out)?;
        let mac = blake3::keyed_hash(&put_only.writer_key, &out);
        out.extend_from_slice(mac.as_bytes());
        Ok(out)
    }

    /// Opens a snapshot header, and says which put-only key wrote it
    /// (`None`: a full key). Only a full key reads.
    pub fn open_snapshot(&self, sealed: &[u8], what: &str) -> Result<(Vec<u8>, Option<[u8; 16]>)> {
        let full = self.full("read snapshot headers")?;
        let store_error = match full.seal.open(Domain::Snapshot, b"", sealed, what) {
            Ok(plain) => return Ok((plain, None)),
            Err(e) => e,
        };
        if sealed.len() < 16 + 32 + 32 + SEAL_OVERHEAD {
            return Err(store_error);
        }
        let name: [u8; 16] = sealed[..16].try_into().expect("16 bytes");
        let (body, mac) = sealed.split_at(sealed.len() - 32);
        let expected = blake3::keyed_hash(&writer_key(&full.master, &name), body);
        // blake3's Hash compares in constant time.
        if expected != blake3::Hash::from_bytes(mac.try_into().expect("32 bytes")) {
            return Err(store_error);
        }
        let session: [u8; 32] = body[16..48].try_into().expect("32 bytes");
        let plain = self.open(
            Sealing::Session(session),
            Domain::Snapshot,
            b"",
            &body[48..],
            what,
        )?;
        Ok((plain, Some(name)))
    }

    /// Seals a state as the put-only key named `author` would: what
    /// maintenance (a full key) does when it rewrites that key's state
    /// without the packs it dropped.
    pub fn seal_state_as(&self, author: &[u8; 16], plaintext: &[u8]) -> Result<Vec<u8>> {
        let full = self.full("write a put-only key's state")?;
        let mut out = author.to_vec();
        Cipher::new(&writer_key(&full.master, author)).seal_into(
            Domain::State,
            b"",
            plaintext,
            &mut out,
        )?;
        Ok(out)
    }

    /// Opens an index state, or `None` for a state this key cannot read
    /// and need not (another put-only key's, for a put-only key).
    pub fn open_state(&self, sealed: &[u8], what: &str) -> Result<Option<OpenedBytes>> {
        if let Some(put_only) = &self.put_only {
            if sealed.len() < 16 || sealed[..16] != put_only.name {
                return Ok(None);
            }
            return put_only
                .states
                .open(Domain::State, b"", &sealed[16..], what)
                .map(|plain| {
                    Some(OpenedBytes {
                        plain,
                        trusted: true,
                        author: Some(put_only.name),
                    })
                });
        }
        let full = self.full("read states")?;
        match full.seal.open(Domain::State, b"", sealed, what) {
            Ok(plain) => Ok(Some(OpenedBytes {
                plain,
                trusted: true,
                author: None,
            })),
            Err(store_error) => {
                let Some(name) = sealed.get(..16) else {
                    return Err(store_error);
                };
                let name: [u8; 16] = name.try_into().expect("16 bytes");
                Cipher::new(&writer_key(&full.master, &name))
                    .open(Domain::State, b"", &sealed[16..], what)
                    .map(|plain| {
                        Some(OpenedBytes {
                            plain,
                            trusted: false,
                            author: Some(name),
                        })
                    })
                    .map_err(|_| store_error)
            }
        }
    }

    /// Whether a state starting with `prefix` (its first 16 bytes) may be
    /// one this key reads: any for a full key, its own for a put-only key.
    pub fn may_read_state(&self, prefix: &[u8]) -> bool {
        match &self.put_only {
            Some(put_only) => prefix == put_only.name,
            None => true,
        }
    }

    /// Seals a lock: readable by put-only keys where the store has some.
    pub fn seal_lock(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let cipher = match &self.full {
            Some(full) if !self.locks_readable_by_put_only => &full.seal,
            _ => &self.lock,
        };
        let mut out = Vec::new();
        cipher.seal_into(Domain::Lock, b"", plaintext, &mut out)?;
        Ok(out)
    }

    /// Opens a lock, whichever way it was sealed.
    pub fn open_lock(&self, sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        if let Some(full) = &self.full
            && let Ok(plain) = full.seal.open(Domain::Lock, b"", sealed, what)
        {
            return Ok(plain);
        }
        self.lock.open(Domain::Lock, b"", sealed, what)
    }
}

/// A state's plaintext and what this client makes of it.
#[derive(Debug, PartialEq, Eq)]
pub struct OpenedBytes {
    /// The decrypted state.
    pub plain: Vec<u8>,
    /// Whether this client reuses its blobs in backups: a full key trusts
    /// full keys' states, a put-only key its own.
    pub trusted: bool,
    /// The put-only key that wrote it (its name's 16 bytes); `None` for a
    /// full key's.
    pub author: Option<[u8; 16]>,
}

/// What a put-only key object wraps (docs/store-format.md, "What each key
/// holds"): enough to add backups, nothing that reads them.
#[derive(Clone, PartialEq, Eq)]
pub struct PutOnlyBundle {
    id_key: [u8; 32],
    chunker_seed: u64,
    lock_key: [u8; 32],
    writer_key: [u8; 32],
    read_public: [u8; 32],
    config_digest: [u8; 32],
}

impl PutOnlyBundle {
    /// The encoded length.
    pub const LEN: usize = 32 + 8 + 32 + 32 + 32 + 32;

    /// The bytes a put-only key object wraps.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.id_key);
        out.extend_from_slice(&self.chunker_seed.to_le_bytes());
        out.extend_from_slice(&self.lock_key);
        out.extend_from_slice(&self.writer_key);
        out.extend_from_slice(&self.read_public);
        out.extend_from_slice(&self.config_digest);
        out
    }

    /// Reads [`PutOnlyBundle::to_bytes`]; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let take = |at: usize| -> [u8; 32] { bytes[at..at + 32].try_into().expect("32 bytes") };
        Some(Self {
            id_key: take(0),
            chunker_seed: u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes")),
            lock_key: take(40),
            writer_key: take(72),
            read_public: take(104),
            config_digest: take(136),
        })
    }
}

fn seed_of(derived: &[u8; 32]) -> u64 {
    u64::from_le_bytes(derived[..8].try_into().expect("8 bytes"))
}

fn key_name_bytes(name: &str) -> Result<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(name, &mut out)
        .map_err(|_| Error::InvalidArgument(format!("key name {name} is not 32 hex digits")))?;
    Ok(out)
}

/// The key a put-only key seals its states with; a full key derives it
/// from the key's name.
fn writer_key(master: &[u8; 32], name: &[u8; 16]) -> [u8; 32] {
    let mut material = master.to_vec();
    material.extend_from_slice(name);
    blake3::derive_key("kast 2026-12 put-only writer", &material)
}

/// A session's key from the X25519 shared secret; `None` when the shared
/// secret is all zeros (a low-order point: no secret at all).
fn session_key(shared: &[u8; 32], session: &[u8; 32], read_public: &[u8; 32]) -> Option<[u8; 32]> {
    if shared.iter().all(|&b| b == 0) {
        return None;
    }
    let mut material = shared.to_vec();
    material.extend_from_slice(session);
    material.extend_from_slice(read_public);
    Some(blake3::derive_key(
        "kast 2026-12 put-only session",
        &material,
    ))
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
            prop_assert_eq!(k.open(Sealing::Store, Domain::Blob, &context, &sealed, "x").unwrap(), data);
        }

        #[test]
        fn any_flipped_bit_is_detected(data in proptest::collection::vec(any::<u8>(), 1..200), pos: usize, bit in 0u8..8) {
            let k = keys();
            let mut sealed = k.seal(Domain::State, b"", &data).unwrap();
            let i = pos % sealed.len();
            sealed[i] ^= 1 << bit;
            prop_assert!(k.open(Sealing::Store, Domain::State, b"", &sealed, "x").is_err());
        }
    }

    #[test]
    fn domain_and_context_are_bound() {
        let k = keys();
        let sealed = k.seal(Domain::Blob, b"a", b"hello").unwrap();
        assert!(
            k.open(Sealing::Store, Domain::State, b"a", &sealed, "x")
                .is_err()
        );
        assert!(
            k.open(Sealing::Store, Domain::Blob, b"b", &sealed, "x")
                .is_err()
        );
        let other = Keys::derive(&MasterKey([8; 32]));
        assert!(
            other
                .open(Sealing::Store, Domain::Blob, b"a", &sealed, "x")
                .is_err()
        );
    }

    fn put_only_of(full: &Keys, name: &str) -> Keys {
        let bundle = full.put_only_bundle(name, b"config bytes").unwrap();
        let bundle = PutOnlyBundle::from_bytes(&bundle.to_bytes()).unwrap();
        Keys::put_only(&bundle, name).unwrap()
    }

    #[test]
    fn what_a_put_only_key_seals_only_a_full_key_opens() {
        let full = keys();
        let put_only = put_only_of(&full, &"ab".repeat(16));
        assert!(put_only.is_put_only());
        assert_eq!(put_only.blob_id(b"x"), full.blob_id(b"x"));
        assert_eq!(put_only.chunker_seed(), full.chunker_seed());
        let Sealing::Session(session) = put_only.sealing() else {
            panic!("a put-only key writes in a session")
        };
        let sealed = put_only.seal(Domain::Blob, b"c", b"secret").unwrap();
        let opened = full.open(Sealing::Session(session), Domain::Blob, b"c", &sealed, "x");
        assert_eq!(opened.unwrap(), b"secret");
        assert!(
            full.open(Sealing::Store, Domain::Blob, b"c", &sealed, "x")
                .is_err()
        );
        let refused = put_only.open(Sealing::Session(session), Domain::Blob, b"c", &sealed, "x");
        assert!(matches!(refused, Err(Error::PutOnly(_))));
        // Another session of the same key cannot open it either way.
        let again = put_only_of(&full, &"ab".repeat(16));
        assert_ne!(again.sealing(), put_only.sealing());
        assert!(matches!(again.config_mac(b"c"), Err(Error::PutOnly(_))));
        assert_eq!(put_only.config_matches(b"config bytes"), Some(true));
        assert_eq!(put_only.config_matches(b"config bytez"), Some(false));
        assert_eq!(full.config_matches(b"config bytes"), None);
    }

    #[test]
    fn states_are_trusted_by_their_writer_and_full_keys_only_of_their_own() {
        let full = keys();
        let a = put_only_of(&full, &"aa".repeat(16));
        let b = put_only_of(&full, &"bb".repeat(16));
        let by_a = a.seal_state(b"state of a").unwrap();
        let opened = |plain: &[u8], trusted, author| {
            Some(OpenedBytes {
                plain: plain.to_vec(),
                trusted,
                author,
            })
        };
        let a_name = Some([0xaa; 16]);
        assert_eq!(
            a.open_state(&by_a, "s").unwrap(),
            opened(b"state of a", true, a_name)
        );
        assert_eq!(b.open_state(&by_a, "s").unwrap(), None);
        assert_eq!(
            full.open_state(&by_a, "s").unwrap(),
            opened(b"state of a", false, a_name)
        );
        // Rewritten by a full key as a's, a's still trusts it.
        let again = full.seal_state_as(&[0xaa; 16], b"rewritten").unwrap();
        assert_eq!(
            a.open_state(&again, "s").unwrap(),
            opened(b"rewritten", true, a_name)
        );
        let by_full = full.seal_state(b"full").unwrap();
        assert_eq!(
            full.open_state(&by_full, "s").unwrap(),
            opened(b"full", true, None)
        );
        assert_eq!(a.open_state(&by_full, "s").unwrap(), None);
        // A put-only key cannot pass its state off as a full key's, nor as
        // another put-only key's.
        let mut forged = by_a.clone();
        forged[..16].copy_from_slice(&[0xbb; 16]);
        assert!(full.open_state(&forged, "s").is_err());
        assert!(full.open_state(&by_a[16..], "s").is_err());
    }

    #[test]
    fn locks_are_readable_by_put_only_keys_once_the_store_has_them() {
        let mut full = keys();
        let put_only = put_only_of(&full, &"cd".repeat(16));
        let before = full.seal_lock(b"lock").unwrap();
        assert!(put_only.open_lock(&before, "l").is_err());
        assert_eq!(full.open_lock(&before, "l").unwrap(), b"lock");
        full.seal_locks_for_put_only();
        let after = full.seal_lock(b"lock").unwrap();
        assert_eq!(put_only.open_lock(&after, "l").unwrap(), b"lock");
        assert_eq!(full.open_lock(&after, "l").unwrap(), b"lock");
        let theirs = put_only.seal_lock(b"theirs").unwrap();
        assert_eq!(full.open_lock(&theirs, "l").unwrap(), b"theirs");
    }

    #[test]
    fn a_low_order_session_is_refused() {
        let full = keys();
        let sealed = full.seal(Domain::Blob, b"", b"x").unwrap();
        let refused = full.open(Sealing::Session([0; 32]), Domain::Blob, b"", &sealed, "x");
        assert!(matches!(refused, Err(Error::Corrupt { .. })));
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
