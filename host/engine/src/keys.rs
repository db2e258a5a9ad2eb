//! Passphrase keys: the master key wrapped under an Argon2id key derived from
//! a passphrase. Each passphrase is its own `key` object, so adding or
//! removing one never rewrites another object and any of them opens the store.

use crate::crypto::{MasterKey, fill_random};
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

/// A key object as stored (JSON, plaintext apart from the wrapped key).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key-file format version.
    pub version: u32,
    /// The KDF's name (`argon2id`), so another can be added later.
    pub algorithm: String,
    /// Its cost, as used when the key was wrapped.
    pub kdf: KdfParams,
    /// Hex of a 16-byte random salt.
    pub salt: String,
    /// Hex of `nonce ‖ XChaCha20-Poly1305(master key) ‖ tag`.
    pub wrapped: String,
    /// When the key was added (seconds since the epoch), shown by `key list`.
    pub created: i64,
    /// The machine that added it, so a user can tell keys apart.
    pub host: String,
    /// The user who added it.
    pub user: String,
}

/// Wraps `master` under `passphrase` with fresh salt.
pub fn wrap(
    master: &MasterKey,
    passphrase: &[u8],
    kdf: KdfParams,
    store_id: &str,
    host: &str,
    user: &str,
    created: i64,
) -> Result<KeyFile> {
    kdf.check().map_err(Error::InvalidArgument)?;
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let kek = derive(passphrase, &salt, kdf)?;
    let mut nonce = [0u8; 24];
    fill_random(&mut nonce)?;
    let cipher = XChaCha20Poly1305::new((&kek).into());
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &master.0,
                aad: store_id.as_bytes(),
            },
        )
        .map_err(|_| Error::corrupt("key", "cannot wrap the master key"))?;
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&sealed);
    Ok(KeyFile {
        version: 1,
        algorithm: "argon2id".into(),
        kdf,
        salt: hex::encode(salt),
        wrapped: hex::encode(wrapped),
        created,
        host: host.into(),
        user: user.into(),
    })
}

/// Unwraps the master key; `Ok(None)` when the passphrase is not this key's.
pub fn unwrap(
    key: &KeyFile,
    passphrase: &[u8],
    store_id: &str,
    name: &str,
) -> Result<Option<MasterKey>> {
    let what = format!("key {name}");
    if key.version != 1 || key.algorithm != "argon2id" {
        return Err(Error::corrupt(what, "unknown key format"));
    }
    let salt = hex::decode(&key.salt).map_err(|_| Error::corrupt(&what, "salt is not hex"))?;
    let wrapped =
        hex::decode(&key.wrapped).map_err(|_| Error::corrupt(&what, "wrapped key is not hex"))?;
    if wrapped.len() != 24 + 32 + 16 {
        return Err(Error::corrupt(what, "wrapped key has the wrong length"));
    }
    key.kdf.check().map_err(|why| Error::corrupt(&what, why))?;
    let kek = derive(passphrase, &salt, key.kdf)?;
    let cipher = XChaCha20Poly1305::new((&kek).into());
    let opened = cipher.decrypt(
        XNonce::from_slice(&wrapped[..24]),
        Payload {
            msg: &wrapped[24..],
            aad: store_id.as_bytes(),
        },
    );
    Ok(opened.ok().map(|bytes| {
        let mut master = [0u8; 32];
        master.copy_from_slice(&bytes);
        MasterKey(master)
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

    #[test]
    fn right_passphrase_unwraps_wrong_does_not() {
        let master = MasterKey([9; 32]);
        let key = wrap(
            &master,
            b"secret",
            KdfParams::insecure_for_tests(),
            "s1",
            "h",
            "u",
            0,
        )
        .unwrap();
        let back = unwrap(&key, b"secret", "s1", "k").unwrap().unwrap();
        assert_eq!(back.0, master.0);
        assert!(unwrap(&key, b"wrong", "s1", "k").unwrap().is_none());
        // A key moved to another store does not open it.
        assert!(unwrap(&key, b"secret", "s2", "k").unwrap().is_none());
    }

    #[test]
    fn a_key_asking_for_too_much_work_is_refused_before_any_is_done() {
        let master = MasterKey([9; 32]);
        let key = wrap(
            &master,
            b"pw",
            KdfParams::insecure_for_tests(),
            "s",
            "h",
            "u",
            0,
        )
        .unwrap();
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
            assert!(wrap(&master, b"pw", hostile.kdf, "s", "h", "u", 0).is_err());
        }
        assert!(KdfParams::default().check().is_ok());
    }
}
