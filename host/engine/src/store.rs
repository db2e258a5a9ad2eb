//! Opening and creating a store: the config, the passphrase keys, and the
//! reads every operation shares (blobs, trees, snapshot headers).

use crate::blob::{self, BlobKind};
use crate::config::{ChunkerParams, ConfigBody, ConfigFile, FORMAT_VERSION};
use crate::crypto::{Id, Keys, MasterKey, random_name};
use crate::error::{Error, Result};
use crate::index::{BlobLocation, Index};
use crate::keys::{self, KdfParams, KeyFile};
use crate::lock::{self, LockGuard};
use crate::snapshot::Snapshot;
use crate::storage::{ObjectKind, Storage, StorageError};
use crate::tree::Tree;
use std::path::PathBuf;
use std::sync::Arc;

/// Default pack size: large enough that a backend holds few objects and a
/// put is one big sequential write, small enough that a pack in flight per
/// stage keeps memory flat (see docs/store-format.md for the measurement).
pub const DEFAULT_PACK_TARGET: u32 = 16 * 1024 * 1024;

/// Choices fixed when a store is created.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// How costly the passphrase key is to guess.
    pub kdf: KdfParams,
    /// How content is cut into chunks.
    pub chunker: ChunkerParams,
    /// Packs close once their blobs reach this many bytes.
    pub pack_target: u32,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            kdf: KdfParams::default(),
            chunker: ChunkerParams::default(),
            pack_target: DEFAULT_PACK_TARGET,
        }
    }
}

/// A key as `key list` shows it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub name: String,
    pub created: i64,
    pub host: String,
    pub user: String,
    /// The key this session opened the store with.
    pub current: bool,
}

/// An open store: storage plus the keys that read it.
pub struct Store {
    storage: Arc<dyn Storage>,
    config: ConfigBody,
    master: MasterKey,
    keys: Keys,
    key_name: String,
    cache_dir: Option<PathBuf>,
}

impl Store {
    /// Creates a store on empty storage. `cache_root` holds local caches
    /// (one folder per store id); `None` keeps them in memory.
    pub fn create(
        storage: Arc<dyn Storage>,
        passphrase: &[u8],
        options: &CreateOptions,
        cache_root: Option<PathBuf>,
    ) -> Result<Store> {
        options.chunker.validate()?;
        if options.pack_target < 1024 * 1024 || options.pack_target > 1024 * 1024 * 1024 {
            return Err(Error::InvalidArgument(
                "pack target must be 1 MiB to 1 GiB".into(),
            ));
        }
        match storage.get(ObjectKind::Config, "config") {
            Ok(_) => return Err(Error::StoreExists(storage.location())),
            Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let master = MasterKey::generate()?;
        let keys = Keys::derive(&master);
        let body = ConfigBody {
            version: FORMAT_VERSION,
            store_id: random_name(16)?,
            chunker: options.chunker,
            pack_target: options.pack_target,
            created: now_secs_i64(),
        };
        // The key goes first: a config without a key would be a store nobody
        // can open, while a key without a config is not a store at all.
        let key_name = random_name(16)?;
        let key = keys::wrap(
            &master,
            passphrase,
            options.kdf,
            &body.store_id,
            &crate::host_name(),
            &crate::user_name(),
            body.created,
        )?;
        storage.put(
            ObjectKind::Key,
            &key_name,
            &serde_json::to_vec_pretty(&key).expect("key serializes"),
        )?;
        storage.put(
            ObjectKind::Config,
            "config",
            &ConfigFile::seal(body.clone(), &keys)?,
        )?;
        Ok(Store {
            cache_dir: cache_root.map(|r| r.join(&body.store_id)),
            storage,
            config: body,
            master,
            keys,
            key_name,
        })
    }

    /// Opens a store with any of its passphrases.
    pub fn open(
        storage: Arc<dyn Storage>,
        passphrase: &[u8],
        cache_root: Option<PathBuf>,
    ) -> Result<Store> {
        let config = read_config(&*storage)?;
        let mut first_damage = None;
        for object in storage.list(ObjectKind::Key)? {
            let parsed = storage
                .get(ObjectKind::Key, &object.name)
                .map_err(Error::from)
                .and_then(|bytes| {
                    serde_json::from_slice::<KeyFile>(&bytes)
                        .map_err(|e| Error::corrupt(format!("key {}", object.name), e.to_string()))
                })
                .and_then(|key| {
                    keys::unwrap(&key, passphrase, &config.body.store_id, &object.name)
                });
            match parsed {
                Ok(Some(master)) => {
                    let keys = Keys::derive(&master);
                    config.verify(&keys)?;
                    return Ok(Store {
                        cache_dir: cache_root.map(|r| r.join(&config.body.store_id)),
                        storage,
                        config: config.body,
                        master,
                        keys,
                        key_name: object.name,
                    });
                }
                Ok(None) => {}
                Err(e) => first_damage = first_damage.or(Some(e)),
            }
        }
        // A damaged key may have been the one for this passphrase: say so.
        Err(first_damage.unwrap_or(Error::WrongPassphrase))
    }

    /// The store id, read from the config without opening the store: it
    /// names the local caches and a local key file.
    pub fn peek_id(storage: &dyn Storage) -> Result<String> {
        Ok(read_config(storage)?.body.store_id)
    }

    /// Opens the store with its master key directly (a local key file the
    /// user opted into), skipping the passphrase and its Argon2id cost. A
    /// key that is not this store's fails the config MAC.
    pub fn open_with_master_key(
        storage: Arc<dyn Storage>,
        master: MasterKey,
        cache_root: Option<PathBuf>,
    ) -> Result<Store> {
        let config = read_config(&*storage)?;
        let keys = Keys::derive(&master);
        config.verify(&keys)?;
        Ok(Store {
            cache_dir: cache_root.map(|r| r.join(&config.body.store_id)),
            storage,
            config: config.body,
            master,
            keys,
            key_name: String::new(),
        })
    }

    /// The master key, to save in a local key file on the user's request.
    pub fn master_key(&self) -> &MasterKey {
        &self.master
    }

    /// The backend, for callers that list or copy objects.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Threads for work that reads the store (`asked`, or 0 for automatic):
    /// one per core, or more when the storage is worth more requests at
    /// once (a network store's reads wait on round trips, not the CPU).
    pub fn reader_threads(&self, asked: usize) -> usize {
        match asked {
            0 => std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(self.storage.parallel_requests().min(16)),
            n => n,
        }
    }

    /// The store's fixed settings, as its config says.
    pub fn config(&self) -> &ConfigBody {
        &self.config
    }

    /// The subkeys, for sealing and opening objects.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Where the store is, for messages.
    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// This store's local cache folder, if caching on disk.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache_dir.as_deref()
    }

    /// Loads the index, through the local cache when there is one.
    pub fn index(&self) -> Result<Index> {
        let dir = self.cache_dir.as_ref().map(|d| d.join("index"));
        Index::load(&*self.storage, &self.keys, dir.as_deref())
    }

    /// Adds a passphrase; returns the new key's name.
    pub fn add_key(&self, passphrase: &[u8], kdf: KdfParams) -> Result<String> {
        let name = random_name(16)?;
        let key = keys::wrap(
            &self.master,
            passphrase,
            kdf,
            &self.config.store_id,
            &crate::host_name(),
            &crate::user_name(),
            now_secs_i64(),
        )?;
        self.storage.put(
            ObjectKind::Key,
            &name,
            &serde_json::to_vec_pretty(&key).expect("key serializes"),
        )?;
        Ok(name)
    }

    /// Every key object, with who added it and when (never the key itself).
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for object in self.storage.list(ObjectKind::Key)? {
            let bytes = self.storage.get(ObjectKind::Key, &object.name)?;
            let key: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt(format!("key {}", object.name), e.to_string()))?;
            out.push(KeyInfo {
                current: object.name == self.key_name,
                name: object.name,
                created: key.created,
                host: key.host,
                user: key.user,
            });
        }
        Ok(out)
    }

    /// Removes a passphrase. The key in use cannot be removed (open the
    /// store with another passphrase first), so a store never loses its last.
    pub fn remove_key(&self, name: &str) -> Result<()> {
        if name == self.key_name {
            return Err(Error::InvalidArgument(
                "cannot remove the key this session opened the store with; open with another passphrase".into(),
            ));
        }
        let keys = self.storage.list(ObjectKind::Key)?;
        if !keys.iter().any(|k| k.name == name) {
            return Err(Error::InvalidArgument(format!("no key named {name}")));
        }
        if keys.len() == 1 {
            return Err(Error::InvalidArgument(
                "cannot remove the store's last passphrase".into(),
            ));
        }
        self.storage.delete(ObjectKind::Key, name)?;
        Ok(())
    }

    /// Takes a shared (backup) or exclusive (maintenance) lock.
    pub fn lock(&self, exclusive: bool, purpose: &str) -> Result<LockGuard> {
        LockGuard::acquire(self.storage.clone(), &self.keys, exclusive, purpose)
    }

    /// Removes stale locks, or every lock with `all`.
    pub fn break_locks(&self, all: bool) -> Result<usize> {
        lock::break_locks(&*self.storage, &self.keys, all)
    }

    /// Reads, opens and verifies one blob.
    pub fn read_blob(&self, id: &Id, location: &BlobLocation) -> Result<Vec<u8>> {
        let sealed = self.storage.get_range(
            ObjectKind::Pack,
            &location.pack.to_hex(),
            location.offset.into(),
            location.length.into(),
        )?;
        if sealed.len() != location.length as usize {
            return Err(Error::corrupt(
                format!("pack {}", location.pack.short()),
                "truncated",
            ));
        }
        blob::open(&self.keys, location.kind, id, &sealed)
    }

    /// Reads blobs that lie close together in one pack (sorted by offset)
    /// with one ranged read, then opens and verifies each: a network store
    /// pays per request, not per byte. If the shared read fails, each blob
    /// is read alone, so each gets its own answer.
    pub fn read_blobs_together(&self, blobs: &[(Id, BlobLocation)]) -> Vec<Result<Vec<u8>>> {
        let (Some((_, first)), Some(end)) = (
            blobs.first(),
            blobs
                .iter()
                .map(|(_, l)| u64::from(l.offset) + u64::from(l.length))
                .max(),
        ) else {
            return Vec::new();
        };
        let start = u64::from(first.offset);
        let together = blobs.len() > 1
            && blobs
                .iter()
                .all(|(_, l)| l.pack == first.pack && u64::from(l.offset) >= start);
        let shared = together
            .then(|| {
                self.storage
                    .get_range(ObjectKind::Pack, &first.pack.to_hex(), start, end - start)
                    .ok()
            })
            .flatten();
        let Some(sealed) = shared else {
            return blobs.iter().map(|(id, l)| self.read_blob(id, l)).collect();
        };
        blobs
            .iter()
            .map(|(id, l)| {
                let from = (u64::from(l.offset) - start) as usize;
                match sealed.get(from..from + l.length as usize) {
                    Some(bytes) => blob::open(&self.keys, l.kind, id, bytes),
                    None => Err(Error::corrupt(
                        format!("pack {}", l.pack.short()),
                        "truncated",
                    )),
                }
            })
            .collect()
    }

    /// Reads a blob the index must know.
    pub fn read_indexed(&self, index: &Index, id: &Id, kind: BlobKind) -> Result<Vec<u8>> {
        let location = index.lookup(id).filter(|l| l.kind == kind).ok_or_else(|| {
            Error::corrupt(format!("blob {}", id.short()), "missing from the index")
        })?;
        self.read_blob(id, &location)
    }

    /// Reads and decodes the directory tree `id`, through the local cache.
    pub fn read_tree(&self, index: &Index, id: &Id) -> Result<Tree> {
        let bytes = self.read_indexed(index, id, BlobKind::Tree)?;
        Tree::decode(&bytes, &format!("tree {}", id.short()))
    }

    /// Reads one snapshot header.
    pub fn read_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let sealed = self.storage.get(ObjectKind::Snapshot, &id.to_hex())?;
        Snapshot::open(&self.keys, id, &sealed)
    }
}

/// The config object, parsed but not yet verified (that needs the key).
fn read_config(storage: &dyn Storage) -> Result<ConfigFile> {
    match storage.get(ObjectKind::Config, "config") {
        Ok(bytes) => ConfigFile::parse(&bytes),
        Err(StorageError::NotFound { .. }) => Err(Error::NoStore(storage.location())),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn now_secs_i64() -> i64 {
    crate::lock::now_secs() as i64
}
