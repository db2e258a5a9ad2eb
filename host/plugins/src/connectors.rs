//! Plugin instances behind the engine's traits, so the engine never knows
//! it is talking to WebAssembly. Each adapter owns one instance; calls are
//! serialised on it (a wasm instance runs one call at a time).

use crate::bindings::types;
use crate::contract::{Handle, PIECE};
use crate::error::{ErrorKind, PluginError};
use crate::instance::{Instance, InstanceConfig};
use kast_engine::destination::Existing;
use kast_engine::storage::{ObjectInfo, ObjectKind, Storage, StorageError};
use kast_engine::tree::{EntryKind, Metadata};
use kast_engine::{Destination, Source};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;

use crate::fetch_ahead::FetchAhead;
use crate::source_reader::{PluginReader, Shared, lock};

/// Whether the plugin's location reaches across the network, where calls
/// wait on round trips that more instances can overlap.
fn reaches_network(config: &InstanceConfig) -> bool {
    !config.grants.tcp.is_empty() || config.grants.http.is_some()
}

fn wit_kind(kind: ObjectKind) -> types::ObjectKind {
    match kind {
        ObjectKind::Config => types::ObjectKind::Config,
        ObjectKind::Key => types::ObjectKind::Key,
        ObjectKind::Pack => types::ObjectKind::Pack,
        ObjectKind::State => types::ObjectKind::State,
        ObjectKind::Snapshot => types::ObjectKind::Snapshot,
        ObjectKind::Lock => types::ObjectKind::Lock,
    }
}

fn entry_kind(kind: types::EntryKind) -> EntryKind {
    match kind {
        types::EntryKind::File => EntryKind::File,
        types::EntryKind::Dir => EntryKind::Dir,
        types::EntryKind::Symlink => EntryKind::Symlink,
        types::EntryKind::Special => EntryKind::Special,
    }
}

pub(crate) fn wit_entry_kind(kind: EntryKind) -> types::EntryKind {
    match kind {
        EntryKind::File => types::EntryKind::File,
        EntryKind::Dir => types::EntryKind::Dir,
        EntryKind::Symlink => types::EntryKind::Symlink,
        EntryKind::Special => types::EntryKind::Special,
    }
}

fn metadata(m: types::Metadata) -> Metadata {
    Metadata {
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime_ns: m.mtime_ns,
        ctime_ns: m.ctime_ns,
        inode: m.inode,
        size: m.size,
        xattrs: m.xattrs,
        // The 0.1 contract carries neither; the `fs` scheme's host fills
        // them in (`PluginSource::list`).
        links: 0,
        device: 0,
    }
}

fn wit_metadata(m: &Metadata) -> types::Metadata {
    types::Metadata {
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime_ns: m.mtime_ns,
        ctime_ns: m.ctime_ns,
        inode: m.inode,
        size: m.size,
        xattrs: m.xattrs.clone(),
    }
}

/// Instances one storage may run side by side: restore and check read
/// blobs from several threads, and a wasm instance runs one call at a time.
/// Restoring 1 GiB from the Garage bench (`bench/s3.sh`): 4 instances
/// 5.19 s, 6 instances 4.29 s (restic 4.56 s), 8 instances 4.15 s but 300
/// MiB instead of 228 (each reader's instance holds its last read).
const STORAGE_INSTANCES: usize = 6;

/// A storage plugin as the engine's [`Storage`]: a few instances of the same
/// location, each call taken by whichever is free.
pub struct PluginStorage {
    config: Arc<InstanceConfig>,
    slots: Vec<Mutex<Option<Instance>>>,
    next: AtomicUsize,
    /// Set once an instance failed to open: the server takes no more
    /// connections, so calls wait for the open ones.
    full: AtomicBool,
    location: String,
}

impl PluginStorage {
    /// Opens the first instance now (so a bad location fails here), the
    /// others when calls overlap.
    pub(crate) fn new(config: Arc<InstanceConfig>, location: String) -> Result<Self, PluginError> {
        let first = config.open()?;
        let mut slots = vec![Mutex::new(Some(first))];
        slots.extend((1..STORAGE_INSTANCES).map(|_| Mutex::new(None)));
        Ok(Self {
            config,
            slots,
            next: AtomicUsize::new(0),
            full: AtomicBool::new(false),
            location,
        })
    }

    /// Runs `f` on a free instance: an open one if any is idle, else a new
    /// one in an empty slot, else waits for one.
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Instance) -> Result<R, PluginError>,
    ) -> Result<R, PluginError> {
        let mut chosen = None;
        let may_open = !self.full.load(Ordering::Relaxed);
        for want_open in [true, false].into_iter().filter(|&open| open || may_open) {
            for slot in &self.slots {
                if let Ok(guard) = slot.try_lock()
                    && guard.is_some() == want_open
                {
                    chosen = Some(guard);
                    break;
                }
            }
            if chosen.is_some() {
                break;
            }
        }
        let mut guard = match chosen {
            Some(g) => g,
            None if !may_open => self.an_open_one().ok_or_else(|| PluginError::Runtime {
                what: "a storage call",
                source: "no connection to the storage is open".into(),
            })?,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
                self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
            }
        };
        if guard.is_none() {
            match self.config.open() {
                Ok(instance) => *guard = Some(instance),
                Err(e) => {
                    // A server that takes fewer connections than kast would
                    // open (vsftpd's `max_per_ip`): the calls share the
                    // instances already open, and no more are tried.
                    drop(guard);
                    self.full.store(true, Ordering::Relaxed);
                    guard = self.an_open_one().ok_or(e)?;
                }
            }
        }
        f(guard.as_mut().expect("opened above"))
    }

    /// The first open instance, waiting for it to be free.
    fn an_open_one(&self) -> Option<MutexGuard<'_, Option<Instance>>> {
        self.slots
            .iter()
            .map(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()))
            .find(|guard| guard.is_some())
    }

    fn map(kind: ObjectKind, name: &str) -> impl Fn(PluginError) -> StorageError + '_ {
        move |e| match e {
            PluginError::Failed {
                kind: ErrorKind::NotFound,
                ..
            } => StorageError::NotFound {
                kind,
                name: name.to_string(),
            },
            other => StorageError::Backend(Box::new(other)),
        }
    }
}

impl Storage for PluginStorage {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<(), StorageError> {
        self.with(|i| i.put(wit_kind(kind), name, data))
            .map_err(Self::map(kind, name))
    }

    fn put_from(
        &self,
        kind: ObjectKind,
        name: &str,
        size: u64,
        body: &mut dyn std::io::Read,
    ) -> Result<(), StorageError> {
        self.with(|i| i.put_from(wit_kind(kind), name, size, body))
            .map_err(Self::map(kind, name))
    }

    fn get(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, StorageError> {
        let cap = self.config.limits.memory_bytes;
        self.with(|i| i.get(wit_kind(kind), name, cap))
            .map_err(Self::map(kind, name))
    }

    fn get_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, StorageError> {
        self.with(|i| i.get_range(wit_kind(kind), name, offset, length))
            .map_err(Self::map(kind, name))
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StorageError> {
        let listed = self
            .with(|i| i.list_objects(wit_kind(kind)))
            .map_err(Self::map(kind, "*"))?;
        // A listing is the plugin's word only: names the engine would not
        // write are dropped, and a name listed twice counts once.
        let mut objects: Vec<ObjectInfo> = listed
            .into_iter()
            .filter(|o| kast_engine::storage::is_valid_name(&o.name))
            .map(|o| ObjectInfo {
                name: o.name,
                size: o.size,
            })
            .collect();
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        objects.dedup_by(|a, b| a.name == b.name);
        Ok(objects)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<(), StorageError> {
        self.with(|i| i.delete(wit_kind(kind), name))
            .map_err(Self::map(kind, name))
    }

    /// A store across the network waits on round trips, so calls run on
    /// all but one instance at once (the last stays free for listings); a
    /// local directory gains nothing from it.
    fn parallel_requests(&self) -> usize {
        if reaches_network(&self.config) {
            STORAGE_INSTANCES - 1
        } else {
            1
        }
    }
}

/// A source plugin as the engine's [`Source`].
pub struct PluginSource {
    config: Arc<InstanceConfig>,
    instance: Shared,
    location: String,
    /// Started at the first files announced, unless the host reads them
    /// itself (local files).
    ahead: OnceLock<FetchAhead>,
}

impl PluginSource {
    pub(crate) fn new(config: Arc<InstanceConfig>, location: String) -> Result<Self, PluginError> {
        let instance = config.open()?;
        Ok(Self {
            config,
            instance: Arc::new(Mutex::new(instance)),
            location,
            ahead: OnceLock::new(),
        })
    }
}

impl Source for PluginSource {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn list(&self, path: &[u8]) -> io::Result<Vec<kast_engine::source::SourceEntry>> {
        let mut instance = lock(&self.instance);
        let entries = instance.list_dir(path).map_err(PluginError::into_io)?;
        // For local files the host listed the directory itself, and knows
        // what the plugin's entries cannot say: links and mount points.
        let facts = instance
            .local_fs()
            .and_then(|local| local.take_facts(path))
            .unwrap_or_default();
        drop(instance);
        // Names are checked by the engine (it skips illegal ones with a warning).
        Ok(entries
            .into_iter()
            .map(|e| {
                let mut entry = kast_engine::source::SourceEntry {
                    kind: entry_kind(e.kind),
                    meta: metadata(e.meta),
                    symlink_target: e.symlink_target,
                    mount: None,
                    name: e.name,
                };
                add_facts(&mut entry, &facts);
                entry
            })
            .collect())
    }

    /// For a plugin on local files (the `fs` scheme) the host asks the
    /// kernel to read ahead; a plugin across the network has its small
    /// files fetched ahead ([`FetchAhead`]), which hides its round trips.
    /// Any other (a plugin reading an archive it was granted) reads as it
    /// is asked: more instances would cost it memory and start-up for
    /// nothing to wait on.
    fn will_read(&self, files: &[(Vec<u8>, u64)]) {
        {
            let mut instance = lock(&self.instance);
            if instance.grants_local_files() {
                if let Some(local) = instance.local_fs() {
                    local.will_read(files);
                }
                return;
            }
        }
        if !reaches_network(&self.config) {
            return;
        }
        self.ahead
            .get_or_init(|| FetchAhead::start(self.config.clone()))
            .announce(files);
    }

    /// Likewise, the host lists a local tree's directories ahead of the walk.
    fn will_list(&self, dirs: &[Vec<u8>]) {
        if let Some(local) = lock(&self.instance).local_fs() {
            local.will_list(dirs);
        }
    }

    /// A file fetched ahead whole is not opened again; any other is opened
    /// here, so a file gone since the listing is an error of this call.
    fn open(&self, path: &[u8]) -> io::Result<Box<dyn Read + Send>> {
        let first = self.ahead.get().and_then(|ahead| ahead.take(path));
        let file = match first {
            Some(_) => None,
            None => {
                let mut instance = lock(&self.instance);
                // No file is open between files: the moment to shed a grown instance.
                instance.restart_if_grown();
                Some(instance.open_file(path).map_err(PluginError::into_io)?)
            }
        };
        Ok(Box::new(PluginReader::new(
            self.instance.clone(),
            path.to_vec(),
            file,
            first,
        )))
    }
}

/// Adds what the host knows of a local entry (a file's links and device, a
/// directory's mount) when the plugin handed on an entry of that name and kind.
fn add_facts(entry: &mut kast_engine::source::SourceEntry, facts: &crate::local_fs::Facts) {
    match entry.kind {
        EntryKind::File => {
            if let Some(&(links, device)) = facts.links.get(&entry.name) {
                entry.meta.links = links;
                entry.meta.device = device;
            }
        }
        EntryKind::Dir => {
            if let Some(&device) = facts.mounts.get(&entry.name) {
                entry.mount = Some(kast_engine::mounts::mount_of(device));
            }
        }
        _ => {}
    }
}

/// Instances one destination may write through side by side: a restore
/// of many small files is bound by making them, one call at a time per
/// instance.
const DESTINATION_INSTANCES: usize = 4;

/// A destination plugin as the engine's [`Destination`]: a few instances
/// of the same location, each thread that calls keeping to one of them, so
/// files written from several threads never wait for each other.
pub struct PluginDestination {
    config: Arc<InstanceConfig>,
    /// The first is opened with the destination, the others at their
    /// first call; one that fails to open is left out.
    slots: Vec<OnceLock<Option<Shared>>>,
    /// The slot each calling thread keeps to, given out in turn.
    threads: Mutex<HashMap<ThreadId, usize>>,
    location: String,
    /// The same location as a source, when the plugin serves one: the 0.1
    /// destination interface cannot list, so what is already there is
    /// looked at through it, opened at first need.
    look: Option<Arc<InstanceConfig>>,
    looking: OnceLock<Result<PluginSource, String>>,
}

impl PluginDestination {
    pub(crate) fn new(
        config: Arc<InstanceConfig>,
        location: String,
        look: Option<Arc<InstanceConfig>>,
    ) -> Result<Self, PluginError> {
        let first = Arc::new(Mutex::new(config.open()?));
        let mut slots = vec![OnceLock::from(Some(first))];
        slots.extend((1..DESTINATION_INSTANCES).map(|_| OnceLock::new()));
        Ok(Self {
            config,
            slots,
            threads: Mutex::default(),
            location,
            look,
            looking: OnceLock::new(),
        })
    }

    /// The first instance, always open.
    fn first(&self) -> &Shared {
        self.slots[0]
            .get()
            .and_then(Option::as_ref)
            .expect("opened by new")
    }

    /// The calling thread's instance (the first when its own cannot open).
    fn mine(&self) -> Shared {
        let slot = {
            let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            let next = threads.len() % self.slots.len();
            *threads.entry(std::thread::current().id()).or_insert(next)
        };
        self.slots[slot]
            .get_or_init(|| Some(Arc::new(Mutex::new(self.config.open().ok()?))))
            .clone()
            .unwrap_or_else(|| self.first().clone())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Instance) -> R) -> R {
        f(&mut lock(&self.mine()))
    }
}

impl Destination for PluginDestination {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create_dir(&self, path: &[u8]) -> io::Result<()> {
        self.with(|i| i.create_dir(path))
            .map_err(PluginError::into_io)
    }

    fn create_file(&self, path: &[u8], overwrite: bool) -> io::Result<Box<dyn Write + Send>> {
        let instance = self.mine();
        let file = lock(&instance)
            .create_file(path, overwrite)
            .map_err(PluginError::into_io)?;
        Ok(Box::new(PluginWriter {
            instance,
            file: Some(file),
            buf: Vec::with_capacity(PIECE),
        }))
    }

    fn symlink(&self, path: &[u8], target: &[u8], overwrite: bool) -> io::Result<()> {
        self.with(|i| i.symlink(path, target, overwrite))
            .map_err(PluginError::into_io)
    }

    /// One per instance: each makes files on its own (a restore uses at
    /// most one more than the cores).
    fn writers(&self) -> usize {
        DESTINATION_INSTANCES
    }

    fn existing(&self, path: &[u8]) -> io::Result<Option<Vec<Existing>>> {
        let Some(config) = &self.look else {
            return Ok(None);
        };
        let source = self.looking.get_or_init(|| {
            PluginSource::new(config.clone(), self.location.clone()).map_err(|e| e.to_string())
        });
        let source = source.as_ref().map_err(|e| io::Error::other(e.clone()))?;
        match source.list(path) {
            Ok(entries) => Ok(Some(
                entries
                    .into_iter()
                    .map(|e| Existing {
                        name: e.name,
                        kind: e.kind,
                        size: e.meta.size,
                        mtime_ns: e.meta.mtime_ns,
                    })
                    .collect(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(Vec::new())),
            Err(e) => Err(e),
        }
    }

    /// Local files only: the host links within the same grant (the 0.1
    /// contract has no call for it).
    fn can_hard_link(&self) -> bool {
        lock(self.first()).grants_local_files()
    }

    fn hard_link(&self, path: &[u8], existing: &[u8], overwrite: bool) -> io::Result<()> {
        self.with(|i| match i.local_fs() {
            Some(local) => local.hard_link(path, existing, overwrite),
            None => Err(io::Error::from(io::ErrorKind::Unsupported)),
        })
    }

    fn set_metadata(&self, path: &[u8], kind: EntryKind, meta: &Metadata) -> io::Result<()> {
        self.with(|i| i.set_metadata(path, wit_entry_kind(kind), &wit_metadata(meta)))
            .map_err(PluginError::into_io)
    }
}

/// A file written to a destination plugin in large pieces; `flush`
/// finishes it.
struct PluginWriter {
    instance: Shared,
    /// Until finished.
    file: Option<Handle>,
    buf: Vec<u8>,
}

impl PluginWriter {
    fn file(&self) -> io::Result<Handle> {
        self.file
            .ok_or_else(|| io::Error::other("write to a file already finished"))
    }

    /// Sends one piece of the file across the boundary.
    fn send(&self, data: &[u8]) -> io::Result<()> {
        let file = self.file()?;
        lock(&self.instance)
            .write(file, data)
            .map_err(PluginError::into_io)
    }

    fn send_buffered(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl Write for PluginWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.is_empty() && data.len() >= PIECE / 4 {
            // Large enough to cross on its own: skip the copy into the buffer.
            self.send(data)?;
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send_buffered()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffered()?;
        let file = self.file()?;
        self.file = None;
        lock(&self.instance)
            .finish_file(file)
            .map_err(PluginError::into_io)
    }
}

impl Drop for PluginWriter {
    /// A file abandoned unfinished is let go of in the plugin.
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            lock(&self.instance).release(file);
        }
    }
}
