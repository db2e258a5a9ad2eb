//! Opening and creating a store: the config, the passphrase keys, and the
//! reads every operation shares (blobs, trees, snapshot headers).

use crate::blob::{self, BlobKind};
use crate::compression::Compression;
use crate::config::{ChunkerParams, ConfigBody, ConfigFile, FORMAT_VERSION};
use crate::crypto::{Id, Keys, MasterKey, PutOnlyBundle, random_name};
use crate::error::{Error, Result};
use crate::index::{BlobLocation, Index};
use crate::keys::{self, Capability, KdfParams, KeyFile, KeyOwner, LocalKey, Unwrapped};
use crate::lock::{self, LockGuard};
use crate::snapshot::Snapshot;
use crate::storage::{ObjectKind, Storage, StorageError};
use crate::tree::Tree;
use std::path::{Path, PathBuf};
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
    /// What every writer compresses with (fixed for the store's life: a
    /// put-only key is bound to the config as made).
    pub compression: Compression,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            kdf: KdfParams::default(),
            chunker: ChunkerParams::default(),
            pack_target: DEFAULT_PACK_TARGET,
            compression: Compression::default(),
        }
    }
}

/// A key as `key list` shows it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// The key object's name.
    pub name: String,
    /// When it was added (seconds since the epoch).
    pub created: i64,
    /// The machine that added it.
    pub host: String,
    /// The user who added it.
    pub user: String,
    /// What it can do.
    pub capability: Capability,
    /// The key this session opened the store with.
    pub current: bool,
}

/// An open store: storage plus the keys that read it.
pub struct Store {
    storage: Arc<dyn Storage>,
    config: ConfigBody,
    /// `None` when opened with a put-only key.
    master: Option<MasterKey>,
    /// What a put-only key unwrapped to (for `key save-local`).
    put_only_bundle: Option<PutOnlyBundle>,
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
            compression: Some(options.compression),
        };
        // The key goes first: a config without a key would be a store nobody
        // can open, while a key without a config is not a store at all.
        let key_name = random_name(16)?;
        let key = keys::wrap(
            &master,
            passphrase,
            options.kdf,
            &body.store_id,
            &KeyOwner {
                host: &crate::host_name(),
                user: &crate::user_name(),
                created: body.created,
            },
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
            master: Some(master),
            put_only_bundle: None,
            keys,
            key_name,
        })
    }

    /// Opens a store with any of its passphrases: a full key's or a
    /// put-only key's.
    pub fn open(
        storage: Arc<dyn Storage>,
        passphrase: &[u8],
        cache_root: Option<PathBuf>,
    ) -> Result<Store> {
        let config_bytes = read_config_bytes(&*storage)?;
        let config = ConfigFile::parse(&config_bytes)?;
        let mut first_damage = None;
        let mut put_only_keys = false;
        let mut opened = None;
        for object in storage.list(ObjectKind::Key)? {
            let key = storage
                .get(ObjectKind::Key, &object.name)
                .map_err(Error::from)
                .and_then(|bytes| {
                    serde_json::from_slice::<KeyFile>(&bytes)
                        .map_err(|e| Error::corrupt(format!("key {}", object.name), e.to_string()))
                });
            if let Ok(key) = &key {
                put_only_keys |= key.capability == Capability::PutOnly;
            }
            if opened.is_some() {
                continue;
            }
            let unwrapped = key.and_then(|key| {
                keys::unwrap(&key, passphrase, &config.body.store_id, &object.name)
            });
            match unwrapped {
                Ok(Some(secret)) => opened = Some((secret, object.name)),
                Ok(None) => {}
                Err(e) => first_damage = first_damage.or(Some(e)),
            }
        }
        // A damaged key may have been the one for this passphrase: say so.
        let Some((secret, key_name)) = opened else {
            return Err(first_damage.unwrap_or(Error::WrongPassphrase));
        };
        let key = match secret {
            Unwrapped::Full(master) => LocalKey::Full(master),
            Unwrapped::PutOnly(bundle) => LocalKey::PutOnly {
                name: key_name.clone(),
                bundle,
            },
        };
        let mut store = Store::with_key(storage, &config_bytes, config, key, cache_root)?;
        store.key_name = key_name;
        if put_only_keys {
            store.keys.seal_locks_for_put_only();
        }
        Ok(store)
    }

    /// The store id, read from the config without opening the store: it
    /// names the local caches and a local key file.
    pub fn peek_id(storage: &dyn Storage) -> Result<String> {
        Ok(ConfigFile::parse(&read_config_bytes(storage)?)?
            .body
            .store_id)
    }

    /// Opens the store with a key kept in a local file (the user opted
    /// into it), skipping the passphrase and its Argon2id cost. A key that
    /// is not this store's fails the config's MAC (or digest).
    pub fn open_with_local_key(
        storage: Arc<dyn Storage>,
        key: LocalKey,
        cache_root: Option<PathBuf>,
    ) -> Result<Store> {
        let config_bytes = read_config_bytes(&*storage)?;
        let config = ConfigFile::parse(&config_bytes)?;
        let mut store = Store::with_key(storage, &config_bytes, config, key, cache_root)?;
        let put_only_keys = store
            .list_keys()?
            .iter()
            .any(|k| k.capability == Capability::PutOnly);
        if put_only_keys {
            store.keys.seal_locks_for_put_only();
        }
        Ok(store)
    }

    fn with_key(
        storage: Arc<dyn Storage>,
        config_bytes: &[u8],
        config: ConfigFile,
        key: LocalKey,
        cache_root: Option<PathBuf>,
    ) -> Result<Store> {
        let store_cache = cache_root.map(|r| r.join(&config.body.store_id));
        let (master, put_only_bundle, keys, key_name, cache_dir) = match key {
            LocalKey::Full(master) => {
                let keys = Keys::derive(&master);
                config.verify(&keys)?;
                (Some(master), None, keys, String::new(), store_cache)
            }
            LocalKey::PutOnly { name, bundle } => {
                let keys = Keys::put_only(&bundle, &name)?;
                if keys.config_matches(config_bytes) != Some(true) {
                    return Err(Error::corrupt(
                        "config",
                        "it is not the config this put-only key was made for",
                    ));
                }
                config.body.chunker.validate()?;
                // Its own index: what a put-only key trusts is not what a
                // full key on the same machine trusts.
                let cache = store_cache.map(|d| d.join(format!("put-only-{name}")));
                (None, Some(bundle), keys, name, cache)
            }
        };
        Ok(Store {
            cache_dir,
            storage,
            config: config.body,
            master,
            put_only_bundle,
            keys,
            key_name,
        })
    }

    /// The key this session holds, to save in a local key file on the
    /// user's request.
    pub fn local_key(&self) -> LocalKey {
        match &self.master {
            Some(master) => LocalKey::Full(master.clone()),
            None => LocalKey::PutOnly {
                name: self.key_name.clone(),
                bundle: self
                    .put_only_bundle
                    .clone()
                    .expect("a put-only store keeps its bundle"),
            },
        }
    }

    /// The name of the put-only key this session writes as, `None` for a
    /// full key: what a snapshot header says of its writer.
    pub fn put_only_writer(&self) -> Option<String> {
        self.is_put_only().then(|| self.key_name.clone())
    }

    /// Whether this session can only add backups.
    pub fn is_put_only(&self) -> bool {
        self.master.is_none()
    }

    /// Fails with [`Error::PutOnly`] for a put-only session: what every
    /// operation that reads or deletes calls first, so it refuses before
    /// doing any work.
    pub fn require_full(&self, what: &str) -> Result<()> {
        if self.is_put_only() {
            return Err(Error::PutOnly(what.to_string()));
        }
        Ok(())
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

    /// Builds the index afresh from the store's states, not from the local
    /// cache (check and maintenance vouch for the store itself), in a
    /// scratch folder of the cache when there is one: memory-mapped runs,
    /// not gigabytes of memory for a store of tens of millions of blobs.
    /// The folder goes when the returned guard drops.
    pub(crate) fn fresh_index(&self) -> Result<(Index, Option<ScratchDir>)> {
        let scratch = match &self.cache_dir {
            Some(dir) => Some(ScratchDir::new(dir)?),
            None => None,
        };
        let index = Index::load(
            &*self.storage,
            &self.keys,
            scratch.as_ref().map(ScratchDir::path),
        )?;
        Ok((index, scratch))
    }

    /// Adds a passphrase that opens the store as a full key, or (with
    /// [`Capability::PutOnly`]) as a key that can only add backups;
    /// returns the new key's name. Only a full key adds keys.
    pub fn add_key(
        &self,
        passphrase: &[u8],
        kdf: KdfParams,
        capability: Capability,
    ) -> Result<String> {
        let Some(master) = &self.master else {
            return Err(Error::PutOnly("add keys".into()));
        };
        let name = random_name(16)?;
        let owner = KeyOwner {
            host: &crate::host_name(),
            user: &crate::user_name(),
            created: now_secs_i64(),
        };
        let key = match capability {
            Capability::Full => keys::wrap(master, passphrase, kdf, &self.config.store_id, &owner)?,
            Capability::PutOnly => {
                let config = read_config_bytes(&*self.storage)?;
                let bundle = self.keys.put_only_bundle(&name, &config)?;
                keys::wrap_put_only(
                    &bundle,
                    passphrase,
                    kdf,
                    &self.config.store_id,
                    &name,
                    &owner,
                )?
            }
        };
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
                capability: key.capability,
            });
        }
        Ok(out)
    }

    /// Removes a passphrase. The key in use cannot be removed (open the
    /// store with another passphrase first), so a store never loses its last.
    pub fn remove_key(&self, name: &str) -> Result<()> {
        self.require_full("remove keys")?;
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
        self.require_full("remove locks")?;
        lock::break_locks(&*self.storage, &self.keys, all)
    }

    /// Reads, opens and verifies one blob.
    pub fn read_blob(&self, id: &Id, location: &BlobLocation) -> Result<Vec<u8>> {
        let sealed = self.read_sealed(location)?;
        blob::open(
            &self.keys,
            location.sealing,
            location.kind,
            id,
            location.raw_length,
            &sealed,
        )
    }

    /// The sealed bytes `location` names, all of them or an error.
    pub(crate) fn read_sealed(&self, location: &BlobLocation) -> Result<Vec<u8>> {
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
        Ok(sealed)
    }

    /// Reads blobs that lie close together in one pack, in any order,
    /// with one ranged read, then opens and verifies each: a network store
    /// pays per request, not per byte. Members of one group (they share an
    /// offset) open it once. If the shared read fails, each blob is read
    /// alone, so each gets its own answer.
    pub fn read_blobs_together(&self, blobs: &[(Id, BlobLocation)]) -> Vec<Result<Vec<u8>>> {
        let (Some((_, first)), Some(start), Some(end)) = (
            blobs.first(),
            blobs.iter().map(|(_, l)| u64::from(l.offset)).min(),
            blobs
                .iter()
                .map(|(_, l)| u64::from(l.offset) + u64::from(l.length))
                .max(),
        ) else {
            return Vec::new();
        };
        let together = blobs.len() > 1 && blobs.iter().all(|(_, l)| l.pack == first.pack);
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
        let mut frames = blob::FrameCache::default();
        blobs
            .iter()
            .map(|(id, l)| {
                let from = (u64::from(l.offset) - start) as usize;
                match sealed.get(from..from + l.length as usize) {
                    Some(bytes) => frames.open(
                        &self.keys,
                        (&l.pack, l.offset),
                        (l.sealing, l.kind, l.raw_length),
                        id,
                        bytes,
                    ),
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
    /// A put-only key reads only the trees of its own latest backups, from
    /// the copy it keeps on this machine (see [`Store::remember_own_tree`]).
    pub fn read_tree(&self, index: &Index, id: &Id) -> Result<Tree> {
        let what = format!("tree {}", id.short());
        if self.is_put_only() {
            let path = self
                .own_trees_dir()
                .map(|dir| dir.join(id.to_hex()))
                .ok_or_else(|| Error::PutOnly("read trees".into()))?;
            let bytes = std::fs::read(&path).map_err(|_| Error::PutOnly("read trees".into()))?;
            if self.keys.blob_id(&bytes) != *id {
                return Err(Error::corrupt(
                    &what,
                    "the local copy does not match its id",
                ));
            }
            return Tree::decode(&bytes, &what);
        }
        let bytes = self.read_indexed(index, id, BlobKind::Tree)?;
        Tree::decode(&bytes, &what)
    }

    /// Keeps a tree a put-only key wrote on this machine, so its next
    /// backup of the same source can skip unchanged files as a full key's
    /// does. It holds what this machine's own disk says (names, sizes,
    /// times, chunk ids), and only for its latest backup of each source
    /// ([`Store::forget_older_own_trees`]).
    pub(crate) fn remember_own_tree(&self, id: &Id, encoded: &[u8]) -> Result<()> {
        let Some(dir) = self.own_trees_dir() else {
            return Ok(());
        };
        let path = dir.join(id.to_hex());
        if path.exists() {
            return Ok(());
        }
        let cache_error = |source| Error::Cache {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(cache_error)?;
        let temporary = dir.join(format!(".{}-{}", id.to_hex(), std::process::id()));
        std::fs::write(&temporary, encoded)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(cache_error)
    }

    /// Removes the kept trees no latest own backup of a source reaches.
    pub(crate) fn forget_older_own_trees(&self) -> Result<()> {
        let Some(dir) = self.own_trees_dir() else {
            return Ok(());
        };
        let mut latest: std::collections::HashMap<(String, String), Id> = Default::default();
        for (_, snapshot) in self.own_snapshots()? {
            latest.insert((snapshot.source, snapshot.host), snapshot.root);
        }
        let mut keep = std::collections::HashSet::new();
        let mut pending: Vec<Id> = latest.into_values().collect();
        while let Some(id) = pending.pop() {
            if !keep.insert(id.to_hex()) {
                continue;
            }
            // A tree missing here is not fatal: the next backup reads more.
            let Ok(tree) = self.read_tree(&Index::empty(), &id) else {
                continue;
            };
            for node in tree.nodes {
                if let crate::tree::Content::Dir { tree } = node.content {
                    pending.push(tree);
                }
            }
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            if !keep.contains(entry.file_name().to_string_lossy().as_ref()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn own_trees_dir(&self) -> Option<PathBuf> {
        if !self.is_put_only() {
            return None;
        }
        Some(self.cache_dir.as_ref()?.join("own-trees"))
    }

    /// Notes a snapshot a put-only key made in its local cache: the one
    /// list of its own backups it can show, since it cannot read headers.
    pub(crate) fn record_own_snapshot(&self, id: &Id, snapshot: &Snapshot) -> Result<()> {
        use std::io::Write;
        let Some(path) = self.own_snapshots_path() else {
            return Ok(());
        };
        let cache_error = |source| Error::Cache {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(cache_error)?;
        }
        let line = format!("{} {}\n", id.to_hex(), hex::encode(snapshot.encode()));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .map_err(cache_error)
    }

    /// The snapshots this put-only key made from this machine, oldest
    /// first, as it noted them (see `record_own_snapshot`); the ones no
    /// longer in the store are left out.
    pub fn own_snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let Some(path) = self.own_snapshots_path() else {
            return Ok(Vec::new());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Cache {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let present: std::collections::HashSet<String> = self
            .storage
            .list(ObjectKind::Snapshot)?
            .into_iter()
            .map(|o| o.name)
            .collect();
        let mut out = Vec::new();
        for line in text.lines() {
            let parsed = line.split_once(' ').and_then(|(id, header)| {
                let id = Id::from_hex(id)?;
                let header = hex::decode(header).ok()?;
                let mut snapshot = Snapshot::decode(&header, "local snapshot record").ok()?;
                snapshot.writer = self.put_only_writer();
                Some((id, snapshot))
            });
            // A torn last line (a crash while appending) is skipped.
            if let Some((id, snapshot)) = parsed
                && present.contains(&id.to_hex())
            {
                out.push((id, snapshot));
            }
        }
        out.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    fn own_snapshots_path(&self) -> Option<PathBuf> {
        Some(self.cache_dir.as_ref()?.join("own-snapshots"))
    }

    /// Reads one snapshot header.
    pub fn read_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let sealed = self.storage.get(ObjectKind::Snapshot, &id.to_hex())?;
        Snapshot::open(&self.keys, id, &sealed)
    }
}

/// The config object as stored: parsed and verified once a key is known.
fn read_config_bytes(storage: &dyn Storage) -> Result<Vec<u8>> {
    match storage.get(ObjectKind::Config, "config") {
        Ok(bytes) => Ok(bytes),
        Err(StorageError::NotFound { .. }) => Err(Error::NoStore(storage.location())),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn now_secs_i64() -> i64 {
    crate::lock::now_secs() as i64
}

/// A folder of the local cache for one run's temporary files, removed
/// when dropped; one left by a run that was killed is removed by the next
/// run a day later.
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(cache_dir: &Path) -> Result<ScratchDir> {
        if let Ok(entries) = std::fs::read_dir(cache_dir) {
            for entry in entries.flatten() {
                let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
                    t.elapsed()
                        .is_ok_and(|age| age > std::time::Duration::from_secs(86_400))
                });
                if old && entry.file_name().to_string_lossy().starts_with("scratch-") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let path = cache_dir.join(format!("scratch-{}", random_name(8)?));
        std::fs::create_dir_all(&path).map_err(|e| Error::Cache {
            path: path.display().to_string(),
            source: e,
        })?;
        Ok(ScratchDir(path))
    }

    /// The folder itself.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Domain;
    use crate::native::memory::{MemoryDestination, MemoryEntry, MemoryTree};
    use crate::storage::MemoryStorage;
    use crate::tree::{EntryKind, Metadata};
    use std::collections::HashMap;

    /// A plain file holding `data`.
    fn file(data: Vec<u8>) -> MemoryEntry {
        MemoryEntry {
            kind: EntryKind::File,
            meta: Metadata {
                mode: 0o100644,
                size: data.len() as u64,
                ..Default::default()
            },
            data,
        }
    }

    fn small_text_files(count: usize) -> MemoryTree {
        let mut tree = MemoryTree::default();
        for i in 0..count {
            let data = format!("line {i} of a small text file\n").repeat(20 + i);
            tree.entries
                .insert(format!("f{i:03}").into_bytes(), file(data.into_bytes()));
        }
        tree
    }

    /// A store an older kast made (format 1: LZ4 only, one blob a frame)
    /// is written as that kast wrote it, so it can still read it; and one
    /// of format 2 groups small files.
    #[test]
    fn a_format_one_store_is_written_in_format_one() {
        let options = CreateOptions {
            kdf: KdfParams::insecure_for_tests(),
            ..Default::default()
        };
        for format in [1, 2] {
            let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
            let made = Store::create(storage.clone(), b"pw", &options, None).unwrap();
            if format == 1 {
                let mut body = made.config().clone();
                body.version = 1;
                body.compression = None;
                let config = ConfigFile::seal(body, made.keys()).unwrap();
                storage.put(ObjectKind::Config, "config", &config).unwrap();
            }
            let store = Store::open(storage, b"pw", None).unwrap();
            assert_eq!(store.config().version, format);
            let tree = small_text_files(60);
            let outcome = crate::backup(&store, &tree, &Default::default()).unwrap();
            let dest = MemoryDestination::new();
            crate::restore(&store, &outcome.id, b"", &dest, &Default::default()).unwrap();
            assert_eq!(dest.tree(), tree);

            let mut frames: HashMap<(Id, u32), Vec<(Id, BlobLocation)>> = HashMap::new();
            store.index().unwrap().for_each(|id, l| {
                frames.entry((l.pack, l.offset)).or_default().push((id, l));
            });
            let grouped = frames.values().filter(|f| f.len() > 1).count();
            if format == 2 {
                assert!(grouped > 0, "format 2 grouped nothing");
                continue;
            }
            assert_eq!(grouped, 0, "format 1 got groups");
            for (id, l) in frames.values().flatten() {
                let sealed = store
                    .storage()
                    .get_range(
                        ObjectKind::Pack,
                        &l.pack.to_hex(),
                        l.offset.into(),
                        l.length.into(),
                    )
                    .unwrap();
                let mut context = [l.kind as u8; 33];
                context[1..].copy_from_slice(&id.0);
                let body = store
                    .keys()
                    .open(l.sealing, Domain::Blob, &context, &sealed, "blob")
                    .unwrap();
                assert!(body[0] <= 1, "format 1 frame encoded as {}", body[0]);
            }
        }
    }

    /// Ranged reads a storage was asked for.
    struct CountingStorage {
        inner: MemoryStorage,
        ranges: std::sync::atomic::AtomicUsize,
    }

    impl Storage for CountingStorage {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<(), StorageError> {
            self.inner.put(kind, name, data)
        }
        fn get(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, StorageError> {
            self.inner.get(kind, name)
        }
        fn get_range(
            &self,
            kind: ObjectKind,
            name: &str,
            offset: u64,
            length: u64,
        ) -> Result<Vec<u8>, StorageError> {
            self.ranges
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.get_range(kind, name, offset, length)
        }
        fn list(&self, kind: ObjectKind) -> Result<Vec<crate::storage::ObjectInfo>, StorageError> {
            self.inner.list(kind)
        }
        fn delete(&self, kind: ObjectKind, name: &str) -> Result<(), StorageError> {
            self.inner.delete(kind, name)
        }
    }

    /// Workers seal a file's chunks side by side, so they reach their pack
    /// out of order; a read of chunks close together must still be one
    /// request, whatever their order.
    #[test]
    fn chunks_close_together_are_one_read_in_any_order() {
        let options = CreateOptions {
            kdf: KdfParams::insecure_for_tests(),
            ..Default::default()
        };
        let counting = Arc::new(CountingStorage {
            inner: MemoryStorage::new(),
            ranges: Default::default(),
        });
        let storage: Arc<dyn Storage> = counting.clone();
        let store = Store::create(storage, b"pw", &options, None).unwrap();
        let mut data = vec![0u8; 6 << 20];
        crate::crypto::fill_random(&mut data).unwrap();
        let mut tree = MemoryTree::default();
        tree.entries.insert(b"big".to_vec(), file(data));
        crate::backup(&store, &tree, &Default::default()).unwrap();
        let mut chunks = Vec::new();
        store.index().unwrap().for_each(|id, l| {
            if l.kind == BlobKind::Data {
                chunks.push((id, l));
            }
        });
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        chunks.sort_by_key(|(_, l)| std::cmp::Reverse(l.offset));
        let before = counting.ranges.load(std::sync::atomic::Ordering::Relaxed);
        let read = store.read_blobs_together(&chunks);
        let after = counting.ranges.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(after - before, 1, "one ranged read for all the chunks");
        for ((_, l), data) in chunks.iter().zip(read) {
            assert_eq!(data.unwrap().len(), l.raw_length as usize);
        }
    }
}
