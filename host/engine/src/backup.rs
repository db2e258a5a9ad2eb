//! Backup: walk a source, cut and identify its content, store what the
//! store lacks, and seal a snapshot naming the new root tree.
//!
//! The walk runs on the calling thread (list, stat, read, chunk, hash,
//! dedup: all cheap per byte); blobs the store lacks go to the shared write
//! pipeline ([`crate::pipeline`]).

use crate::blob::BlobKind;
use crate::browse;
use crate::chunker::Chunker;
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::lock::LockGuard;
use crate::pipeline::{self, BlobSink};
use crate::progress::{Progress, Silent};
use crate::snapshot::{Snapshot, Summary};
use crate::source::{Source, UNKNOWN_SIZE, join};
use crate::storage::ObjectKind;
use crate::store::Store;
use crate::tree::{self, Content, EntryKind, Node, Tree};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A file's chunks, the bytes read, and why it stopped early, if it did.
type FileRead = (Vec<Id>, u64, Option<String>);
/// Decides whether a path (relative to the source root) is left out; the
/// flag says whether it is a directory.
pub type Exclude = Arc<dyn Fn(&[u8], bool) -> bool + Send + Sync>;

/// How to run a backup.
#[derive(Clone)]
pub struct BackupOptions {
    /// Tags recorded in the snapshot, for filtering and retention by tag.
    pub tags: Vec<String>,
    /// The job making this backup, recorded in the snapshot.
    pub job: String,
    /// Recorded source location; defaults to the source's own.
    pub source_name: Option<String>,
    /// Recorded host; defaults to this machine's name.
    pub host: Option<String>,
    /// Recorded user; defaults to the user running the backup.
    pub user: Option<String>,
    /// Use the latest snapshot of the same source and host to skip reading
    /// unchanged files.
    pub use_parent: bool,
    /// Paths to leave out, decided before anything below them is read.
    pub exclude: Option<Exclude>,
    /// Worker threads for compression and sealing; 0 means one per core.
    pub threads: usize,
    /// Where counts and the current file are reported, for progress bars.
    pub progress: Arc<dyn Progress>,
    /// Set to stop the backup; what was stored so far is kept and indexed.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Stay on the filesystem of the source's root: a directory where
    /// another one is mounted is kept, empty. Pseudo filesystems (`/proc`,
    /// `/sys`…) are left out so whatever this says.
    pub one_file_system: bool,
    /// Any file that cannot be read whole fails the backup, and no
    /// snapshot is written: for a stream (a database dump) a cut copy is
    /// worse than none, and the failure must not look like a backup.
    pub whole_or_nothing: bool,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            tags: Vec::new(),
            job: String::new(),
            source_name: None,
            host: None,
            user: None,
            use_parent: true,
            exclude: None,
            threads: 0,
            progress: Arc::new(Silent),
            cancel: None,
            one_file_system: false,
            whole_or_nothing: false,
        }
    }
}

/// What a finished backup produced.
#[derive(Clone, Debug)]
pub struct BackupOutcome {
    /// The new snapshot's id, as `restore` and `ls` take it.
    pub id: Id,
    /// The snapshot's header, with its summary counts.
    pub snapshot: Snapshot,
    /// Entries that could not be read (also recorded in the snapshot).
    pub warnings: Vec<String>,
    /// Files read that the previous snapshot of this source did not have
    /// (the rest of `files_read` were changed ones). Not stored.
    pub files_new: u64,
    /// Mount points kept as empty directories, with their filesystem's type:
    /// pseudo filesystems, and with `one_file_system` every other one.
    pub skipped_mounts: Vec<(String, String)>,
}

/// Backs up `source` into `store`.
pub fn backup(
    store: &Store,
    source: &dyn Source,
    options: &BackupOptions,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let time_ns = crate::time::now_ns();
    let host = options.host.clone().unwrap_or_else(crate::host_name);
    let source_name = options
        .source_name
        .clone()
        .unwrap_or_else(|| source.location());
    let mut lock = store.lock(false, "backup")?;
    let mut index = store.index()?;
    // A put-only key reads the parent's trees from its own local copy.
    let parent_root = match (options.use_parent, store.is_put_only()) {
        (false, _) => None,
        (true, false) => browse::latest_of(store, &source_name, &host)?.map(|(_, snap)| snap.root),
        (true, true) => store
            .own_snapshots()?
            .into_iter()
            .rev()
            .find(|(_, s)| s.source == source_name && s.host == host)
            .map(|(_, snap)| snap.root),
    };
    let chunker = Chunker::new(store.config().chunker, store.keys().chunker_seed());
    let (walked, written) = pipeline::write_blobs(store, &mut index, options.threads, |sink| {
        let mut walker = Walker {
            store,
            source,
            chunker: &chunker,
            sink,
            summary: Summary::default(),
            warnings: Vec::new(),
            files_new: 0,
            skipped_mounts: Vec::new(),
            options,
            lock: &mut lock,
            read_buffer: Vec::new(),
        };
        let root = walker.root(parent_root)?;
        Ok((root, walker.into_walked()))
    })?;
    let (root, walker) = walked;
    let Walked {
        mut summary,
        warnings,
        files_new,
        skipped_mounts,
    } = walker;
    summary.blobs_added = written.blobs;
    summary.bytes_added = written.bytes;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let snapshot = Snapshot {
        time_ns,
        host,
        user: options.user.clone().unwrap_or_else(crate::user_name),
        source: source_name,
        tags: options.tags.clone(),
        job: options.job.clone(),
        root,
        summary,
        writer: store.put_only_writer(),
    };
    let sealed = snapshot.seal(store.keys())?;
    let id = Id::of_object(&sealed);
    store
        .storage()
        .put(ObjectKind::Snapshot, &id.to_hex(), &sealed)?;
    if store.is_put_only() {
        store.record_own_snapshot(&id, &snapshot)?;
        store.forget_older_own_trees()?;
    }
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings,
        files_new,
        skipped_mounts,
    })
}

/// What the walk found besides the tree.
struct Walked {
    summary: Summary,
    warnings: Vec<String>,
    files_new: u64,
    skipped_mounts: Vec<(String, String)>,
}

/// The walk over the source, on the calling thread.
struct Walker<'a, 's> {
    store: &'a Store,
    source: &'a dyn Source,
    chunker: &'a Chunker,
    sink: &'a mut BlobSink<'s>,
    summary: Summary,
    warnings: Vec<String>,
    files_new: u64,
    skipped_mounts: Vec<(String, String)>,
    options: &'a BackupOptions,
    lock: &'a mut LockGuard,
    /// The chunker's read buffer, kept from file to file.
    read_buffer: Vec<u8>,
}

impl Walker<'_, '_> {
    fn into_walked(self) -> Walked {
        Walked {
            summary: self.summary,
            warnings: self.warnings,
            files_new: self.files_new,
            skipped_mounts: self.skipped_mounts,
        }
    }

    /// Whether the walk must not enter this directory: a pseudo
    /// filesystem's mount point, or any mount point with `one_file_system`.
    fn leaves_out(&self, entry: &crate::source::SourceEntry) -> bool {
        entry
            .mount
            .as_ref()
            .is_some_and(|m| m.is_pseudo() || self.options.one_file_system)
    }

    /// [`Self::leaves_out`], and noted so the user is told.
    fn stays_out(&mut self, path: &[u8], entry: &crate::source::SourceEntry) -> bool {
        if !self.leaves_out(entry) {
            return false;
        }
        let fs_type = entry.mount.as_ref().map(|m| m.fs_type.clone());
        self.skipped_mounts.push((
            String::from_utf8_lossy(path).into_owned(),
            fs_type.unwrap_or_default(),
        ));
        true
    }

    fn root(&mut self, parent: Option<Id>) -> Result<Id> {
        let listing = self.source.list(b"").map_err(|e| Error::Source {
            path: self.source.location(),
            source: e,
        })?;
        self.dir(b"", listing, parent)
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
        let previous = parent.and_then(|id| self.store.read_tree(self.sink.index(), &id).ok());
        listing.sort_by(|a, b| a.name.cmp(&b.name));
        listing.dedup_by(|a, b| a.name == b.name);
        // Decided once per file: the chunks of an unchanged one are reused,
        // the others are read, and the source is told which up front.
        let unchanged: Vec<Option<Vec<Id>>> = listing
            .iter()
            .map(|e| {
                let before = previous.as_ref().and_then(|t| t.find(&e.name));
                before
                    .filter(|_| e.kind == EntryKind::File)
                    .and_then(|b| self.unchanged_chunks(b, &e.meta))
            })
            .collect();
        let excluded: Vec<bool> = listing
            .iter()
            .map(|e| {
                self.options
                    .exclude
                    .as_ref()
                    .is_some_and(|exclude| exclude(&join(path, &e.name), e.kind == EntryKind::Dir))
            })
            .collect();
        let descends: Vec<bool> = listing
            .iter()
            .zip(&excluded)
            .map(|(e, excluded)| {
                e.kind == EntryKind::Dir
                    && !excluded
                    && tree::is_valid_name(&e.name)
                    && !self.leaves_out(e)
            })
            .collect();
        let subdirs: Vec<Vec<u8>> = listing
            .iter()
            .zip(&descends)
            .filter(|(_, descends)| **descends)
            .map(|(e, _)| join(path, &e.name))
            .collect();
        if !subdirs.is_empty() {
            self.source.will_list(&subdirs);
        }
        let mut reads = read_runs(path, &listing, &unchanged, &excluded, &descends).into_iter();
        let mut next_run = reads.next();
        let mut nodes = Vec::with_capacity(listing.len());
        for (at, ((entry, unchanged), excluded)) in
            listing.into_iter().zip(unchanged).zip(excluded).enumerate()
        {
            self.check_cancel()?;
            // Each run of files is announced when the walk reaches it, so
            // the source hears of files in the order they are opened.
            if let Some((_, files)) = next_run.take_if(|(start, _)| *start == at) {
                self.source.will_read(&files);
                next_run = reads.next();
            }
            let child = join(path, &entry.name);
            if !tree::is_valid_name(&entry.name) {
                self.warn(&child, "name is not a valid file name; skipped".into());
                continue;
            }
            if excluded {
                continue;
            }
            let before = previous.as_ref().and_then(|t| t.find(&entry.name));
            let stays_out = entry.kind == EntryKind::Dir && self.stays_out(&child, &entry);
            let mut meta = entry.meta;
            let mut error = None;
            let content = match entry.kind {
                EntryKind::Dir => {
                    self.summary.dirs += 1;
                    let parent = match before.map(|n| &n.content) {
                        Some(Content::Dir { tree }) => Some(*tree),
                        _ => None,
                    };
                    let tree = if stays_out {
                        self.dir(&child, Vec::new(), None)?
                    } else {
                        match self.source.list(&child) {
                            Ok(listing) => self.dir(&child, listing, parent)?,
                            Err(e) => {
                                error =
                                    Some(self.warn(&child, format!("cannot list directory: {e}")));
                                self.dir(&child, Vec::new(), None)?
                            }
                        }
                    };
                    Content::Dir { tree }
                }
                EntryKind::File => {
                    self.summary.files += 1;
                    let chunks = match unchanged {
                        Some(chunks) => {
                            self.summary.files_unchanged += 1;
                            self.options.progress.bytes(meta.size);
                            chunks
                        }
                        None => {
                            let Some((chunks, read, failure)) = self.read_file(&child)? else {
                                // Deleted since the listing: not part of this snapshot.
                                self.summary.files -= 1;
                                self.options.progress.warning(&format!(
                                    "{}: vanished during the backup; left out",
                                    String::from_utf8_lossy(&child)
                                ));
                                continue;
                            };
                            self.summary.files_read += 1;
                            if !before.is_some_and(|b| b.content.kind() == EntryKind::File) {
                                self.files_new += 1;
                            }
                            if let Some(msg) = failure {
                                if self.options.whole_or_nothing {
                                    return Err(Error::Source {
                                        path: String::from_utf8_lossy(&child).into_owned(),
                                        source: std::io::Error::other(msg),
                                    });
                                }
                                error = Some(self.warn(&child, msg));
                            } else if read != meta.size && meta.size != UNKNOWN_SIZE {
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
                    let target = entry.symlink_target.unwrap_or_default();
                    if target.is_empty() {
                        // Some servers list a link without its target (ProFTPD's MLSD).
                        let why = "the source does not say where this symlink points".into();
                        error = Some(self.warn(&child, why));
                    }
                    Content::Symlink { target }
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
        if self.store.is_put_only() {
            self.store.remember_own_tree(&id, &encoded)?;
        }
        self.sink.store(id, BlobKind::Tree, encoded)?;
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
        (same && chunks.iter().all(|c| self.sink.known(c))).then(|| chunks.clone())
    }

    /// Reads and chunks a file; a read error ends the file early and is
    /// returned as a message (the backup goes on). `None` when the file is
    /// gone since it was listed.
    fn read_file(&mut self, path: &[u8]) -> Result<Option<FileRead>> {
        let reader = match self.source.open(path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Ok(Some((Vec::new(), 0, Some(format!("cannot open: {e}"))))),
        };
        let buffer = std::mem::take(&mut self.read_buffer);
        let mut stream = self.chunker.chunks_in(reader, buffer);
        let outcome = self.chunk_stream(&mut stream);
        self.read_buffer = stream.into_buffer();
        outcome.map(Some)
    }

    /// Stores every chunk of `stream`; a read error ends it early.
    fn chunk_stream<R: std::io::Read>(
        &mut self,
        stream: &mut crate::chunker::Chunks<'_, R>,
    ) -> Result<FileRead> {
        let mut chunks = Vec::new();
        let mut read = 0u64;
        loop {
            // Checked per chunk too: a large file must not delay a stop.
            self.check_cancel()?;
            let mut data = self.sink.buffer();
            match stream.next_into(&mut data) {
                Ok(true) => {
                    read += data.len() as u64;
                    self.summary.bytes_read += data.len() as u64;
                    self.options.progress.bytes(data.len() as u64);
                    let id = self.store.keys().blob_id(&data);
                    chunks.push(id);
                    self.sink.store(id, BlobKind::Data, data)?;
                }
                Ok(false) => {
                    self.sink.recycle(data);
                    return Ok((chunks, read, None));
                }
                Err(e) => {
                    let why = format!("read failed after {read} bytes: {e}");
                    return Ok((chunks, read, Some(why)));
                }
            }
        }
    }
}

/// Files announced together: where in the listing they start, and each
/// file's path and listed size.
type ReadRun = (usize, Vec<(Vec<u8>, u64)>);

/// The files a folder's walk will read (new or changed, not excluded, with
/// a legal name), in runs cut where the walk descends into a subfolder:
/// each run with the listing position where it starts. Announced run by
/// run, they reach the source in the order the files are opened.
fn read_runs(
    path: &[u8],
    listing: &[crate::source::SourceEntry],
    unchanged: &[Option<Vec<Id>>],
    excluded: &[bool],
    descends: &[bool],
) -> Vec<ReadRun> {
    let mut runs = Vec::new();
    let mut run = (0, Vec::new());
    for (at, entry) in listing.iter().enumerate() {
        if descends[at] {
            let done = std::mem::replace(&mut run, (at + 1, Vec::new()));
            if !done.1.is_empty() {
                runs.push(done);
            }
        } else if entry.kind == EntryKind::File
            && unchanged[at].is_none()
            && !excluded[at]
            && tree::is_valid_name(&entry.name)
        {
            run.1.push((join(path, &entry.name), entry.meta.size));
        }
    }
    if !run.1.is_empty() {
        runs.push(run);
    }
    runs
}
