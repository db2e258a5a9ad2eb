//! Backup: walk a source, cut and identify its content, store what the
//! store lacks, and seal a snapshot naming the new root tree.
//!
//! The walk runs on the calling thread (list, stat, read, chunk, hash,
//! dedup: all cheap per byte); blobs the store lacks go through a bounded
//! pipeline of worker threads (compress + seal), a packer and uploaders.
//! Every queue is bounded, so memory stays flat however large the source.

use crate::blob::{self, BlobKind};
use crate::browse;
use crate::chunker::Chunker;
use crate::crypto::{Id, Keys};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::lock::LockGuard;
use crate::pack::{FinishedPack, PackBuilder, PackEntry};
use crate::pool::BufferPool;
use crate::progress::{Progress, Silent};
use crate::snapshot::{Snapshot, Summary};
use crate::source::{Source, join};
use crate::state::State;
use crate::storage::{ObjectKind, Storage};
use crate::store::Store;
use crate::tree::{self, Content, EntryKind, Node, Tree};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Decides whether a path (relative to the source root) is left out; the
/// flag says whether it is a directory.
pub type Exclude = Arc<dyn Fn(&[u8], bool) -> bool + Send + Sync>;

/// How to run a backup.
#[derive(Clone)]
pub struct BackupOptions {
    pub tags: Vec<String>,
    /// Recorded source location; defaults to the source's own.
    pub source_name: Option<String>,
    pub host: Option<String>,
    pub user: Option<String>,
    /// Use the latest snapshot of the same source and host to skip reading
    /// unchanged files.
    pub use_parent: bool,
    pub exclude: Option<Exclude>,
    /// Worker threads for compression and sealing; 0 means one per core.
    pub threads: usize,
    pub progress: Arc<dyn Progress>,
    /// Set to stop the backup; what was stored so far is kept and indexed.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            tags: Vec::new(),
            source_name: None,
            host: None,
            user: None,
            use_parent: true,
            exclude: None,
            threads: 0,
            progress: Arc::new(Silent),
            cancel: None,
        }
    }
}

/// What a finished backup produced.
#[derive(Clone, Debug)]
pub struct BackupOutcome {
    pub id: Id,
    pub snapshot: Snapshot,
    /// Entries that could not be read (also recorded in the snapshot).
    pub warnings: Vec<String>,
}

struct Job {
    id: Id,
    kind: BlobKind,
    data: Vec<u8>,
}

struct Sealed {
    id: Id,
    kind: BlobKind,
    raw_length: u32,
    bytes: Vec<u8>,
}

/// Buffers recycled along the pipeline: chunks go from the walker to the
/// workers and back, sealed blobs from the workers to the packer and back,
/// pack buffers from the packer to the uploaders and back.
#[derive(Clone)]
struct Pools {
    chunks: BufferPool,
    sealed: BufferPool,
    packs: BufferPool,
}

/// The first error any pipeline thread met; the others stop when their
/// channels close.
#[derive(Default)]
struct FirstError(Mutex<Option<Error>>);

impl FirstError {
    fn set(&self, e: Error) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }
    fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Backs up `source` into `store`.
pub fn backup(
    store: &Store,
    source: &dyn Source,
    options: &BackupOptions,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let time_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let host = options.host.clone().unwrap_or_else(crate::host_name);
    let source_name = options
        .source_name
        .clone()
        .unwrap_or_else(|| source.location());
    let mut lock = store.lock(false, "backup")?;
    let mut index = store.index()?;
    let parent_root = if options.use_parent {
        browse::latest_of(store, &source_name, &host)?.map(|(_, snap)| snap.root)
    } else {
        None
    };
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };

    let errors = FirstError::default();
    let pools = Pools {
        chunks: BufferPool::new(threads * 3 + 2),
        sealed: BufferPool::new(threads * 3 + 2),
        packs: BufferPool::new(2),
    };
    let uploaded = Mutex::new(Vec::new());
    let walked = std::thread::scope(|s| {
        let (job_tx, job_rx) = bounded::<Job>(threads * 2);
        let (sealed_tx, sealed_rx) = bounded::<Sealed>(threads * 2);
        // A rendezvous: a finished pack waits for a free uploader, so at most
        // one pack fills while the uploaders each hold one.
        let (pack_tx, pack_rx) = bounded::<FinishedPack>(0);
        for _ in 0..threads {
            let (rx, tx, keys, errors, pools) = (
                job_rx.clone(),
                sealed_tx.clone(),
                store.keys(),
                &errors,
                &pools,
            );
            s.spawn(move || seal_worker(keys, rx, tx, errors, pools));
        }
        drop((job_rx, sealed_tx));
        let target = store.config().pack_target as usize;
        let (keys, errors_ref, pools_ref) = (store.keys(), &errors, &pools);
        s.spawn(move || packer(keys, target, sealed_rx, pack_tx, errors_ref, pools_ref));
        let uploaders: Vec<_> = (0..store.storage().parallel_puts().clamp(1, 16))
            .map(|_| {
                let (rx, storage, errors, uploaded, pools) =
                    (pack_rx.clone(), store.storage(), &errors, &uploaded, &pools);
                s.spawn(move || uploader(&**storage, rx, errors, uploaded, pools))
            })
            .collect();
        drop(pack_rx);

        let chunker = Chunker::new(store.config().chunker, store.keys().chunker_seed());
        let mut walker = Walker {
            store,
            index: &index,
            source,
            chunker: &chunker,
            jobs: job_tx,
            pools: pools.clone(),
            session: HashSet::new(),
            summary: Summary::default(),
            warnings: Vec::new(),
            options,
            lock: &mut lock,
        };
        let root = walker.root(parent_root);
        let Walker {
            summary,
            warnings,
            jobs,
            ..
        } = walker;
        drop(jobs);
        for u in uploaders {
            let _ = u.join();
        }
        root.map(|r| (r, summary, warnings))
    });
    let packs = uploaded.into_inner().unwrap_or_else(|p| p.into_inner());

    // Index whatever packs made it, even when the backup failed or was
    // interrupted: the next backup then reuses them instead of storing again.
    let mut summary_added = (0u64, 0u64);
    if !packs.is_empty() {
        for (_, entries) in &packs {
            summary_added.0 += entries.len() as u64;
            summary_added.1 += entries.iter().map(|e| u64::from(e.length)).sum::<u64>();
        }
        let state = State { packs };
        let sealed = state.seal(store.keys())?;
        let name = Id::of_object(&sealed);
        store
            .storage()
            .put(ObjectKind::State, &name.to_hex(), &sealed)?;
        index.add_state(name, &state)?;
    }
    if let Some(e) = errors.take() {
        return Err(e);
    }
    let (root, mut summary, warnings) = walked?;
    summary.blobs_added = summary_added.0;
    summary.bytes_added = summary_added.1;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let snapshot = Snapshot {
        time_ns,
        host,
        user: options.user.clone().unwrap_or_else(crate::user_name),
        source: source_name,
        tags: options.tags.clone(),
        root,
        summary,
    };
    let sealed = snapshot.seal(store.keys())?;
    let id = Id::of_object(&sealed);
    store
        .storage()
        .put(ObjectKind::Snapshot, &id.to_hex(), &sealed)?;
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings,
    })
}

fn seal_worker(
    keys: &Keys,
    jobs: Receiver<Job>,
    out: Sender<Sealed>,
    errors: &FirstError,
    pools: &Pools,
) {
    let mut scratch = Vec::new();
    for job in jobs {
        let mut bytes = pools.sealed.take();
        if let Err(e) =
            blob::seal_into(keys, job.kind, &job.id, &job.data, &mut scratch, &mut bytes)
        {
            return errors.set(e);
        }
        let sealed = Sealed {
            id: job.id,
            kind: job.kind,
            raw_length: job.data.len() as u32,
            bytes,
        };
        pools.chunks.give(job.data);
        if out.send(sealed).is_err() {
            return;
        }
    }
}

fn packer(
    keys: &Keys,
    target: usize,
    blobs: Receiver<Sealed>,
    out: Sender<FinishedPack>,
    errors: &FirstError,
    pools: &Pools,
) {
    let mut current: Option<PackBuilder> = None;
    let close = |builder: PackBuilder| -> bool {
        match builder.finish(keys) {
            Ok(pack) => out.send(pack).is_ok(),
            Err(e) => {
                errors.set(e);
                false
            }
        }
    };
    for blob in blobs {
        if current
            .as_ref()
            .is_some_and(|b| !b.has_room(blob.bytes.len(), target))
            && !close(current.take().expect("checked"))
        {
            return;
        }
        let builder = match current.as_mut() {
            Some(b) => b,
            None => match PackBuilder::with_buffer(target, pools.packs.take()) {
                Ok(b) => current.insert(b),
                Err(e) => return errors.set(e),
            },
        };
        builder.add(blob.id, blob.kind, blob.raw_length, &blob.bytes);
        pools.sealed.give(blob.bytes);
    }
    if let Some(builder) = current.filter(|b| !b.is_empty()) {
        close(builder);
    }
}

fn uploader(
    storage: &dyn Storage,
    packs: Receiver<FinishedPack>,
    errors: &FirstError,
    uploaded: &Mutex<Vec<(Id, Vec<PackEntry>)>>,
    pools: &Pools,
) {
    for pack in packs {
        if let Err(e) = storage.put(ObjectKind::Pack, &pack.name.to_hex(), &pack.bytes) {
            return errors.set(e.into());
        }
        pools.packs.give(pack.bytes);
        uploaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((pack.name, pack.entries));
    }
}

/// The walk over the source, on the calling thread.
struct Walker<'a> {
    store: &'a Store,
    index: &'a Index,
    source: &'a dyn Source,
    chunker: &'a Chunker,
    jobs: Sender<Job>,
    pools: Pools,
    /// Blobs this backup already queued: a chunk seen twice is stored once.
    session: HashSet<Id>,
    summary: Summary,
    warnings: Vec<String>,
    options: &'a BackupOptions,
    lock: &'a mut LockGuard,
}

impl Walker<'_> {
    fn root(&mut self, parent: Option<Id>) -> Result<Id> {
        let listing = self.source.list(b"").map_err(|e| Error::Source {
            path: self.source.location(),
            source: e,
        })?;
        self.dir(b"", listing, parent)
    }

    fn known(&self, id: &Id) -> bool {
        self.session.contains(id) || self.index.contains(id)
    }

    /// Queues a blob unless the store or this session has it already.
    fn store_blob(&mut self, id: Id, kind: BlobKind, data: Vec<u8>) -> Result<()> {
        if self.known(&id) {
            self.pools.chunks.give(data);
            return Ok(());
        }
        self.session.insert(id);
        self.jobs
            .send(Job { id, kind, data })
            .map_err(|_| Error::Interrupted)
    }

    fn check_cancel(&mut self) -> Result<()> {
        if self
            .options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(Error::Interrupted);
        }
        self.lock.refresh()
    }

    fn warn(&mut self, path: &[u8], message: String) -> String {
        let text = format!("{}: {message}", String::from_utf8_lossy(path));
        self.options.progress.warning(&text);
        self.warnings.push(text);
        self.summary.errors += 1;
        message
    }

    fn dir(
        &mut self,
        path: &[u8],
        mut listing: Vec<crate::source::SourceEntry>,
        parent: Option<Id>,
    ) -> Result<Id> {
        let previous = parent.and_then(|id| self.store.read_tree(self.index, &id).ok());
        listing.sort_by(|a, b| a.name.cmp(&b.name));
        listing.dedup_by(|a, b| a.name == b.name);
        let mut nodes = Vec::with_capacity(listing.len());
        for entry in listing {
            self.check_cancel()?;
            let child = join(path, &entry.name);
            if !tree::is_valid_name(&entry.name) {
                self.warn(&child, "name is not a valid file name; skipped".into());
                continue;
            }
            if let Some(exclude) = &self.options.exclude
                && exclude(&child, entry.kind == EntryKind::Dir)
            {
                continue;
            }
            let before = previous.as_ref().and_then(|t| t.find(&entry.name));
            let mut meta = entry.meta;
            let mut error = None;
            let content = match entry.kind {
                EntryKind::Dir => {
                    self.summary.dirs += 1;
                    let parent = match before.map(|n| &n.content) {
                        Some(Content::Dir { tree }) => Some(*tree),
                        _ => None,
                    };
                    let tree = match self.source.list(&child) {
                        Ok(listing) => self.dir(&child, listing, parent)?,
                        Err(e) => {
                            error = Some(self.warn(&child, format!("cannot list directory: {e}")));
                            self.dir(&child, Vec::new(), None)?
                        }
                    };
                    Content::Dir { tree }
                }
                EntryKind::File => {
                    self.summary.files += 1;
                    let unchanged = before.and_then(|b| self.unchanged_chunks(b, &meta));
                    let chunks = match unchanged {
                        Some(chunks) => {
                            self.summary.files_unchanged += 1;
                            self.options.progress.bytes(meta.size);
                            chunks
                        }
                        None => {
                            self.summary.files_read += 1;
                            let (chunks, read, failure) = self.read_file(&child)?;
                            if let Some(msg) = failure {
                                error = Some(self.warn(&child, msg));
                            } else if read != meta.size {
                                self.options.progress.warning(&format!(
                                    "{}: changed while being read",
                                    String::from_utf8_lossy(&child)
                                ));
                            }
                            meta.size = read;
                            chunks
                        }
                    };
                    self.summary.logical_bytes += meta.size;
                    self.options.progress.items(1);
                    Content::File { chunks }
                }
                EntryKind::Symlink => {
                    self.summary.symlinks += 1;
                    Content::Symlink {
                        target: entry.symlink_target.unwrap_or_default(),
                    }
                }
                EntryKind::Special => {
                    self.summary.specials += 1;
                    Content::Special
                }
            };
            nodes.push(Node {
                name: entry.name,
                meta,
                content,
                error,
            });
        }
        let encoded = Tree { nodes }.encode();
        let id = self.store.keys().blob_id(&encoded);
        self.store_blob(id, BlobKind::Tree, encoded)?;
        Ok(id)
    }

    /// The previous snapshot's chunk list when the file is unchanged: same
    /// size, mtime, ctime and inode, read whole last time, chunks still known.
    fn unchanged_chunks(&self, before: &Node, now: &crate::tree::Metadata) -> Option<Vec<Id>> {
        let Content::File { chunks } = &before.content else {
            return None;
        };
        let m = &before.meta;
        let same = before.error.is_none()
            && m.size == now.size
            && m.mtime_ns == now.mtime_ns
            && m.ctime_ns == now.ctime_ns
            && m.inode == now.inode;
        (same && chunks.iter().all(|c| self.known(c))).then(|| chunks.clone())
    }

    /// Reads and chunks a file; a read error ends the file early and is
    /// returned as a message (the backup goes on).
    fn read_file(&mut self, path: &[u8]) -> Result<(Vec<Id>, u64, Option<String>)> {
        let reader = match self.source.open(path) {
            Ok(r) => r,
            Err(e) => return Ok((Vec::new(), 0, Some(format!("cannot open: {e}")))),
        };
        let mut chunks = Vec::new();
        let mut read = 0u64;
        let chunker = self.chunker;
        let mut stream = chunker.chunks(reader);
        loop {
            let mut data = self.pools.chunks.take();
            match stream.next_into(&mut data) {
                Ok(true) => {
                    read += data.len() as u64;
                    self.summary.bytes_read += data.len() as u64;
                    self.options.progress.bytes(data.len() as u64);
                    let id = self.store.keys().blob_id(&data);
                    chunks.push(id);
                    self.store_blob(id, BlobKind::Data, data)?;
                }
                Ok(false) => {
                    self.pools.chunks.give(data);
                    return Ok((chunks, read, None));
                }
                Err(e) => {
                    return Ok((
                        chunks,
                        read,
                        Some(format!("read failed after {read} bytes: {e}")),
                    ));
                }
            }
        }
    }
}
