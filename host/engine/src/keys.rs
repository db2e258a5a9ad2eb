//! Passphrase keys: the master key wrapped under an Argon2id key derived from
//! a passphrase. Each passphrase is its own `key` object, so adding or
//! removing one never rewrites another object and any of them opens the store.

use crate::crypto::{MasterKey, PutOnlyBundle, fill_random};
use crate::error::{Error, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

/// Argon2id cost parameters, stored with each key so they can be raised later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory cost in KiB: what makes guessing expensive on GPUs.
    pub memory_kib: u32,
    /// Passes over that memory.
    pub iterations: u32,
    /// Parallel lanes.
    pub lanes: u32,
}

impl Default for KdfParams {
    /// At least as strong as Kloset's (t=4, m=256 MiB); two lanes use both
    /// cores (measured 0.50 s here instead of 0.97 s on one lane).
    fn default() -> Self {
        Self {
            memory_kib: 256 * 1024,
            iterations: 4,
            lanes: 2,
        }
    }
}

/// The most memory a key may ask Argon2id for: 4× the default. Key
/// objects are plaintext on the storage, so these bounds are all that stop
/// a hostile storage from making every client allocate or compute without end.
pub const MAX_KDF_MEMORY_KIB: u32 = 1024 * 1024;
/// The most iterations a key may ask for: with the most memory, about 10×
/// the default's time.
pub const MAX_KDF_ITERATIONS: u32 = 10;
/// The most lanes: more buys no speed on the machines kast runs on.
pub const MAX_KDF_LANES: u32 = 16;

impl KdfParams {
    /// Checks the parameters are within what `kast create` accepts; the
    /// same bounds apply to every key read from a storage.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(1..=MAX_KDF_LANES).contains(&self.lanes) {
            return Err(format!(
                "Argon2id lanes {} are outside 1..={MAX_KDF_LANES}",
                self.lanes
            ));
        }
        if !(1..=MAX_KDF_ITERATIONS).contains(&self.iterations) {
            return Err(format!(
                "Argon2id iterations {} are outside 1..={MAX_KDF_ITERATIONS}",
                self.iterations
            ));
        }
        let least = 64.max(8 * self.lanes);
        if !(least..=MAX_KDF_MEMORY_KIB).contains(&self.memory_kib) {
            return Err(format!(
                "Argon2id memory {} KiB is outside {least}..={MAX_KDF_MEMORY_KIB} KiB",
                self.memory_kib
            ));
        }
        Ok(())
    }

    /// Weak parameters for tests only: a store created with them is
    /// trivially brute-forced.
    pub fn insecure_for_tests() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            lanes: 1,
        }
    }
}

/// What a key can do (docs/store-format.md, "Put-only keys").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Opens the master key: reads, writes, deletes.
    #[default]
    Full,
    /// Adds backups and nothing else.
    PutOnly,
}

impl Capability {
    fn is_full(&self) -> bool {
        *self == Capability::Full
    }
}

/// A key object as stored (JSON, plaintext apart from the wrapped key).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key-file format version: 1 for a full key, 2 for a put-only key (so
    /// a kast that predates them refuses it instead of misreading it).
    pub version: u32,
    /// The KDF's name (`argon2id`), so another can be added later.
    pub algorithm: String,
    /// Its cost, as used when the key was wrapped.
    pub kdf: KdfParams,
    /// Hex of a 16-byte random salt.
    pub salt: String,
    /// Hex of `nonce ‖ XChaCha20-Poly1305(secret) ‖ tag`: the master key,
    /// or a put-only key's bundle.
    pub wrapped: String,
    /// When the key was added (seconds since the epoch), shown by `key list`.
    pub created: i64,
    /// The machine that added it, so a user can tell keys apart.
    pub host: String,
    /// The user who added it.
    pub user: String,
    /// What the key can do; absent (full) in every key made before
    /// put-only keys, which stay byte for byte as they were.
    #[serde(default, skip_serializing_if = "Capability::is_full")]
    pub capability: Capability,
}

/// Who a new key is for, as `key list` shows it.
pub struct KeyOwner<'a> {
    /// The machine adding it.
    pub host: &'a str,
    /// The user adding it.
    pub user: &'a str,
    /// When (seconds since the epoch).
    pub created: i64,
}

/// What a passphrase opened.
pub enum Unwrapped {
    /// A full key's master key.
    Full(MasterKey),
    /// A put-only key's bundle.
    PutOnly(PutOnlyBundle),
}

/// A key kept in a local file (`kast key save-local`): what opens the
/// store without a passphrase. Anyone who can read the file holds the key.
#[derive(Clone)]
pub enum LocalKey {
    /// A full key: the master key.
    Full(MasterKey),
    /// A put-only key: its name and bundle.
    PutOnly {
        /// The key object's name.
        name: String,
        /// What it unwrapped to.
        bundle: PutOnlyBundle,
    },
}

impl LocalKey {
    /// The file's text: 64 hex digits for a full key (the format from
    /// before put-only keys), `put-only NAME HEX` for a put-only key.
    pub fn to_text(&self) -> String {
        match self {
            LocalKey::Full(master) => master.to_hex(),
            LocalKey::PutOnly { name, bundle } => {
                format!("put-only {name} {}", hex::encode(bundle.to_bytes()))
            }
        }
    }

    /// Reads [`LocalKey::to_text`]; `None` for anything else.
    pub fn from_text(text: &str) -> Option<LocalKey> {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            [hex] => MasterKey::from_hex(hex).map(LocalKey::Full),
            ["put-only", name, bundle] => {
                let valid_name = name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit());
                let bundle = PutOnlyBundle::from_bytes(&hex::decode(bundle).ok()?)?;
                valid_name.then(|| LocalKey::PutOnly {
                    name: name.to_string(),
                    bundle,
                })
            }
            _ => None,
        }
    }
}

/// Wraps `master` under `passphrase` with fresh salt.
pub fn wrap(
    master: &MasterKey,
    passphrase: &[u8],
    kdf: KdfParams,
    store_id: &str,
    owner: &KeyOwner,
) -> Result<KeyFile> {
    seal(
        &master.0,
        passphrase,
        kdf,
        store_id.as_bytes(),
        Capability::Full,
        owner,
    )
}

/// Wraps a put-only key's bundle under `passphrase`; the key's name is
/// bound in, so the object cannot be moved to another name.
pub fn wrap_put_only(
    bundle: &PutOnlyBundle,
    passphrase: &[u8],
    kdf: KdfParams,
    store_id: &str,
    key_name: &str,
    owner: &KeyOwner,
) -> Result<KeyFile> {
    let aad = put_only_aad(store_id, key_name);
    seal(
        &bundle.to_bytes(),
        passphrase,
        kdf,
        &aad,
        Capability::PutOnly,
        owner,
    )
}

fn put_only_aad(store_id: &str, key_name: &str) -> Vec<u8> {
    format!("{store_id}:put-only:{key_name}").into_bytes()
}

fn seal(
    secret: &[u8],
    passphrase: &[u8],
    kdf: KdfParams,
    aad: &[u8],
    capability: Capability,
    owner: &KeyOwner,
) -> Result<KeyFile> {
    kdf.check().map_err(Error::InvalidArgument)?;
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let kek = derive(passphrase, &salt, kdf)?;
    let mut nonce = [0u8; 24];
    fill_random(&mut nonce)?;
    let cipher = XChaCha20Poly1305::new((&kek).into());
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret, aad })
        .map_err(|_| Error::corrupt("key", "cannot wrap the key"))?;
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&sealed);
    Ok(KeyFile {
        version: if capability.is_full() { 1 } else { 2 },
        algorithm: "argon2id".into(),
        kdf,
        salt: hex::encode(salt),
        wrapped: hex::encode(wrapped),
        created: owner.created,
        host: owner.host.into(),
        user: owner.user.into(),
        capability,
    })
}

/// Unwraps a key; `Ok(None)` when the passphrase is not this key's.
pub fn unwrap(
    key: &KeyFile,
    passphrase: &[u8],
    store_id: &str,
    name: &str,
) -> Result<Option<Unwrapped>> {
    let what = format!("key {name}");
    let (secret_len, aad) = match (key.version, key.capability) {
        (1, Capability::Full) => (32, store_id.as_bytes().to_vec()),
        (2, Capability::PutOnly) => (PutOnlyBundle::LEN, put_only_aad(store_id, name)),
        _ => return Err(Error::corrupt(what, "unknown key format")),
    };
    if key.algorithm != "argon2id" {
        return Err(Error::corrupt(what, "unknown key format"));
    }
    let salt = hex::decode(&key.salt).map_err(|_| Error::corrupt(&what, "salt is not hex"))?;
    let wrapped =
        hex::decode(&key.wrapped).map_err(|_| Error::corrupt(&what, "wrapped key is not hex"))?;
    if wrapped.len() != 24 + secret_len + 16 {
        return Err(Error::corrupt(what, "wrapped key has the wrong length"));
    }
    key.kdf.check().map_err(|why| Error::corrupt(&what, why))?;
    let kek = derive(passphrase, &salt, key.kdf)?;
    let cipher = XChaCha20Poly1305::new((&kek).into());
    let Ok(secret) = cipher.decrypt(
        XNonce::from_slice(&wrapped[..24]),
        Payload {
            msg: &wrapped[24..],
            aad: &aad,
        },
    ) else {
        return Ok(None);
    };
    Ok(Some(match key.capability {
        Capability::Full => {
            let mut master = [0u8; 32];
            master.copy_from_slice(&secret);
            Unwrapped::Full(MasterKey(master))
        }
        Capability::PutOnly => {
            Unwrapped::PutOnly(PutOnlyBundle::from_bytes(&secret).expect("length checked above"))
        }
    }))
}

fn derive(passphrase: &[u8], salt: &[u8], kdf: KdfParams) -> Result<[u8; 32]> {
    let params = argon2::Params::new(kdf.memory_kib, kdf.iterations, kdf.lanes, Some(32))
        .map_err(|e| Error::InvalidArgument(format!("Argon2id parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase, salt, &mut out)
        .map_err(|e| Error::InvalidArgument(format!("Argon2id: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: KeyOwner = KeyOwner {
        host: "h",
        user: "u",
        created: 0,
    };

    #[test]
    fn right_passphrase_unwraps_wrong_does_not() {
        let master = MasterKey([9; 32]);
        let key = wrap(
            &master,
            b"secret",
            KdfParams::insecure_for_tests(),
            "s1",
            &OWNER,
        )
        .unwrap();
        let Some(Unwrapped::Full(back)) = unwrap(&key, b"secret", "s1", "k").unwrap() else {
            panic!("a full key unwraps to the master key")
        };
        assert_eq!(back.0, master.0);
        assert!(unwrap(&key, b"wrong", "s1", "k").unwrap().is_none());
        // A key moved to another store does not open it.
        assert!(unwrap(&key, b"secret", "s2", "k").unwrap().is_none());
    }

    #[test]
    fn a_key_asking_for_too_much_work_is_refused_before_any_is_done() {
        let master = MasterKey([9; 32]);
        let key = wrap(&master, b"pw", KdfParams::insecure_for_tests(), "s", &OWNER).unwrap();
        for (memory_kib, iterations, lanes) in [
            (4 * 1024 * 1024, 1, 1),
            (64, 100_000, 1),
            (64, 1, 0),
            (64, 0, 1),
            (1, 1, 1),
            (u32::MAX, u32::MAX, u32::MAX),
        ] {
            let mut hostile = key.clone();
            hostile.kdf = KdfParams {
                memory_kib,
                iterations,
                lanes,
            };
            let started = std::time::Instant::now();
            let Err(err) = unwrap(&hostile, b"pw", "s", "k0") else {
                panic!("{:?} was taken", hostile.kdf);
            };
            let err = err.to_string();
            assert!(err.contains("key k0") && err.contains("Argon2id"), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
            assert!(wrap(&master, b"pw", hostile.kdf, "s", &OWNER).is_err());
        }
        assert!(KdfParams::default().check().is_ok());
    }
}
