//! Restore: write a snapshot (or a path inside it) to a destination,
//! byte-exact, with metadata.
//!
//! A planner thread walks the trees and queues chunk reads on worker
//! threads (read, open, decompress, verify); the calling thread writes the
//! results in order. Chunks that lie close together in one pack (as a
//! first backup writes them) are read with one request. The plan channel is
//! bounded, so at most a few dozen chunks are in memory whatever the
//! snapshot's size.

mod writer;

use crate::browse;
use crate::conflicts::{self, Decision, Overwrite};
use crate::crypto::Id;
use crate::destination::Destination;
use crate::error::{Error, Result};
use crate::index::{BlobLocation, Index};
use crate::progress::{Progress, Silent};
use crate::source::join;
use crate::store::Store;
use crate::tree::{Content, LinkGroups, Metadata, Node, Tree};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::sync::Arc;

/// How to restore.
#[derive(Clone)]
pub struct RestoreOptions {
    /// What to do with entries already at the destination.
    pub overwrite: Overwrite,
    /// Chunk readers; 0 chooses (one per core, more for a network store).
    pub threads: usize,
    /// Where counts are reported, for progress bars.
    pub progress: Arc<dyn Progress>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            overwrite: Overwrite::Refuse,
            threads: 0,
            progress: Arc::new(Silent),
        }
    }
}

/// What a restore did.
#[derive(Clone, Debug, Default)]
pub struct RestoreOutcome {
    /// Files written.
    pub files: u64,
    /// Directories made.
    pub dirs: u64,
    /// Symlinks made.
    pub symlinks: u64,
    /// Files restored as one more name of a file already restored.
    pub hard_links: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Paths that could not be restored whole, and why. Special files
    /// (fifos, devices) are listed here too: they are not recreated.
    pub errors: Vec<(String, String)>,
    /// What the destination could not hold exactly, one line per kind.
    pub losses: Vec<Loss>,
    /// Entries left as the destination had them (`--overwrite` said so).
    pub skipped: u64,
    /// The first of them.
    pub first_skipped: Option<String>,
}

/// Something the destination could not hold as the snapshot has it,
/// counted once per kind so a restore of a million files warns once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loss {
    /// What could not be held.
    pub kind: LossKind,
    /// How many entries it happened to.
    pub count: u64,
    /// The first entry it happened to, and what was said of it.
    pub example: String,
    /// What to tell the user, in one line.
    pub message: String,
}

/// The kinds of [`Loss`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Hard links restored as separate copies (the destination cannot link).
    HardLinks,
    /// Metadata the destination could not keep (a time out of its range).
    Metadata,
}

impl LossKind {
    /// The name scripts see in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::HardLinks => "hard_links",
            LossKind::Metadata => "metadata",
        }
    }
}

impl RestoreOutcome {
    fn skip(&mut self, path: &[u8]) {
        self.skipped += 1;
        if self.first_skipped.is_none() {
            self.first_skipped = Some(String::from_utf8_lossy(path).into_owned());
        }
    }

    /// Adds what another writer of the same restore did.
    fn merge(&mut self, other: RestoreOutcome) {
        self.files += other.files;
        self.dirs += other.dirs;
        self.symlinks += other.symlinks;
        self.hard_links += other.hard_links;
        self.bytes += other.bytes;
        self.errors.extend(other.errors);
        self.skipped += other.skipped;
        if self.first_skipped.is_none() {
            self.first_skipped = other.first_skipped;
        }
        for loss in other.losses {
            match self.losses.iter_mut().find(|l| l.kind == loss.kind) {
                Some(mine) => mine.count += loss.count,
                None => self.losses.push(loss),
            }
        }
    }

    fn lost(&mut self, kind: LossKind, path: &[u8], message: impl Into<String>) {
        match self.losses.iter_mut().find(|l| l.kind == kind) {
            Some(loss) => loss.count += 1,
            None => self.losses.push(Loss {
                kind,
                count: 1,
                example: String::from_utf8_lossy(path).into_owned(),
                message: message.into(),
            }),
        }
    }
}

type ChunkResult = Receiver<Result<Vec<u8>>>;

enum Step {
    Dir(Vec<u8>),
    DirDone(Vec<u8>, Metadata),
    File {
        path: Vec<u8>,
        node: Node,
        replace: bool,
    },
    /// A file whose other name was restored already: linked to it.
    HardLink {
        path: Vec<u8>,
        existing: Vec<u8>,
        size: u64,
        replace: bool,
    },
    /// A file whose other name was restored already, written again because
    /// the destination cannot link.
    LinkCopied {
        path: Vec<u8>,
        existing: Vec<u8>,
    },
    Chunk(ChunkResult),
    FileDone,
    Symlink {
        path: Vec<u8>,
        node: Node,
        replace: bool,
    },
    /// An entry in the way, left as it is.
    Skipped {
        path: Vec<u8>,
        size: u64,
    },
    Problem(Vec<u8>, String),
}

/// Chunks read together: one pack, ascending offsets.
type ReadJob = Vec<(Id, BlobLocation, Sender<Result<Vec<u8>>>)>;

/// The most one read may span: a few chunks per request, and a bounded
/// buffer per worker.
const MAX_READ: u64 = 8 << 20;
/// Bytes between two chunks worth reading through rather than asking twice.
const MAX_GAP: u64 = 256 << 10;
/// Chunks one read may serve (small files: the steps held meanwhile).
const MAX_CHUNKS_READ: usize = 256;
/// Members of one group frame one read may serve: more than a group kast
/// writes holds (512), so a group is read and opened once, yet bounded
/// against a hostile index listing a million blobs at one frame.
const MAX_GROUP_READ: usize = 1024;

/// Restores `path` (empty for everything) of `snapshot` into `destination`:
/// a directory's contents go to the destination's root, a single file or
/// symlink goes there under its own name.
pub fn restore(
    store: &Store,
    snapshot: &Id,
    path: &[u8],
    destination: &dyn Destination,
    options: &RestoreOptions,
) -> Result<RestoreOutcome> {
    store.require_full("restore")?;
    let header = store.read_snapshot(snapshot)?;
    let index = store.index()?;
    let target = browse::resolve_path(store, &index, (snapshot, &header), path)?;
    let mode = options.overwrite;
    match mode {
        Overwrite::Refuse => {
            if let Some(found) = conflicts::find(store, &index, &target, destination)?
                && found.count > 0
            {
                return Err(Error::Conflicts {
                    location: destination.location(),
                    count: found.count,
                    first: found.first.join(", "),
                });
            }
        }
        // One that cannot be listed cannot be compared with; one that fails
        // to list says why.
        Overwrite::IfNewer | Overwrite::IfChanged
            if conflicts::listing(destination, b"")?.is_none() =>
        {
            return Err(Error::InvalidArgument(format!(
                "{} cannot say what it holds, so a restore cannot compare with it: \
                 replace everything or nothing (--overwrite always or never)",
                destination.location()
            )));
        }
        _ => {}
    }
    let threads = store.reader_threads(options.threads);
    let mut outcome = RestoreOutcome::default();
    std::thread::scope(|s| {
        let (job_tx, job_rx) = bounded::<ReadJob>(threads * 2);
        for _ in 0..threads {
            let rx = job_rx.clone();
            s.spawn(move || {
                for job in rx {
                    let blobs: Vec<(Id, BlobLocation)> =
                        job.iter().map(|(id, l, _)| (*id, *l)).collect();
                    for ((_, _, reply), data) in job.iter().zip(store.read_blobs_together(&blobs)) {
                        let _ = reply.send(data);
                    }
                }
            });
        }
        drop(job_rx);
        let (step_tx, step_rx) = bounded::<Vec<Step>>(2);
        let planner_index = &index;
        s.spawn(move || {
            let mut planner = Planner {
                store,
                index: planner_index,
                steps: step_tx,
                jobs: job_tx,
                pending: Vec::new(),
                span: (0, 0),
                held: Vec::new(),
                batch: Vec::new(),
                batch_bytes: 0,
                can_link: destination.can_hard_link(),
                links: LinkGroups::default(),
                mode,
                dest: destination,
            };
            let _ = match target {
                browse::Resolved::Root(tree) => planner.dir(b"", &tree, false),
                browse::Resolved::Node(node) => match &node.content {
                    Content::Dir { tree } => match store.read_tree(planner_index, tree) {
                        Ok(tree) => planner.dir(b"", &tree, false),
                        Err(e) => planner.send(Step::Problem(node.name.clone(), e.to_string())),
                    },
                    _ => planner.nodes(b"", std::slice::from_ref(&node), false),
                },
            };
            let _ = planner.dispatch().and_then(|()| planner.flush());
        });
        writer::write_steps(step_rx, destination, options, &mut outcome)
    })?;
    Ok(outcome)
}

/// Walks trees in order, turning them into steps and read jobs.
struct Planner<'a> {
    store: &'a Store,
    index: &'a Index,
    steps: Sender<Vec<Step>>,
    jobs: Sender<ReadJob>,
    /// Chunks gathered for the next read, not yet sent to a worker.
    pending: ReadJob,
    /// Where in their pack those chunks start and end.
    span: (u64, u64),
    /// Steps waiting for that read to be sent.
    held: Vec<Step>,
    /// Steps ready for the writer, sent together: one hand-over between
    /// threads per step cost a restore of many small files a fifth of its
    /// time in wake-ups.
    batch: Vec<Step>,
    /// Bytes the batch's chunks will bring: a batch also goes when it
    /// holds this much, so large files are not read far ahead.
    batch_bytes: u64,
    can_link: bool,
    /// The first path restored of each file with several links, and its
    /// chunks: only files the source saw links to are kept here.
    links: LinkGroups,
    mode: Overwrite,
    dest: &'a dyn Destination,
}

/// Steps handed to the writer at once…
const STEP_BATCH: usize = 64;
/// …or fewer, once their chunks come to this many bytes.
const BATCH_BYTES: u64 = 4 << 20;

/// The writer hung up (it failed); stop planning.
struct Stop;

impl Planner<'_> {
    /// Queues a step for the writer; while a read is being gathered, its
    /// steps (and those after them) wait here, so the writer never waits
    /// for a chunk no worker has been asked for.
    fn send(&mut self, step: Step) -> Result<(), Stop> {
        if self.pending.is_empty() {
            self.batch.push(step);
            self.flush_if_full()?;
        } else {
            self.held.push(step);
        }
        Ok(())
    }

    fn flush_if_full(&mut self) -> Result<(), Stop> {
        if self.batch.len() >= STEP_BATCH || self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands the ready steps to the writer.
    fn flush(&mut self) -> Result<(), Stop> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        self.steps
            .send(std::mem::take(&mut self.batch))
            .map_err(|_| Stop)
    }

    /// Sends the gathered read to a worker, then the steps that waited.
    fn dispatch(&mut self) -> Result<(), Stop> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.batch_bytes += self
            .pending
            .iter()
            .map(|(_, l, _)| u64::from(l.raw_length))
            .sum::<u64>();
        self.jobs
            .send(std::mem::take(&mut self.pending))
            .map_err(|_| Stop)?;
        self.batch.append(&mut self.held);
        self.flush_if_full()
    }

    /// Plans the read of one chunk: with the pending ones if it lies close
    /// to them in the same pack, else in a read of its own.
    fn chunk(&mut self, id: Id) -> Result<(), Stop> {
        let (reply, result) = bounded(1);
        let location = self
            .index
            .lookup(&id)
            .filter(|l| l.kind == crate::blob::BlobKind::Data);
        match location {
            None => {
                let missing =
                    Error::corrupt(format!("blob {}", id.short()), "missing from the index");
                let _ = reply.send(Err(missing));
            }
            Some(location) => {
                // Another member of the group just planned always joins
                // it, so the group is read and opened once.
                let same_frame = self.pending.last().is_some_and(|(_, last, _)| {
                    (last.pack, last.offset, last.length)
                        == (location.pack, location.offset, location.length)
                });
                let (offset, end) = (
                    u64::from(location.offset),
                    u64::from(location.offset) + u64::from(location.length),
                );
                // Chunks of one file are sealed by several workers, so
                // they sit in their pack near each other but not always in
                // order: a read joins any chunk of the same pack close to
                // the span it covers, on either side.
                let (start, stop) = self.span;
                let joins = same_frame && self.pending.len() < MAX_GROUP_READ
                    || self.pending.len() < MAX_CHUNKS_READ
                        && self.pending.first().is_some_and(|(_, first, _)| {
                            first.pack == location.pack
                                && offset <= stop + MAX_GAP
                                && end + MAX_GAP >= start
                                && end.max(stop) - offset.min(start) <= MAX_READ
                        });
                if !joins {
                    self.dispatch()?;
                }
                self.span = if self.pending.is_empty() {
                    (offset, end)
                } else {
                    (start.min(offset), stop.max(end))
                };
                self.pending.push((id, location, reply));
            }
        }
        self.send(Step::Chunk(result))
    }

    /// Plans a folder's entries; `fresh` when the destination had no folder
    /// there, so nothing below can be in the way.
    fn dir(&mut self, path: &[u8], tree: &Tree, fresh: bool) -> Result<(), Stop> {
        self.nodes(path, &tree.nodes, fresh)
    }

    fn nodes(&mut self, path: &[u8], nodes: &[Node], fresh: bool) -> Result<(), Stop> {
        // Looked at once per folder, by the modes that decide per entry.
        let listing = if self.mode.looks() && !fresh {
            match conflicts::listing(self.dest, path) {
                Ok(listing) => listing,
                Err(e) => {
                    // Unseen entries are then written only where nothing is.
                    self.send(Step::Problem(path.to_vec(), e.to_string()))?;
                    None
                }
            }
        } else {
            None
        };
        for node in nodes {
            let there = listing.as_ref().and_then(|l| l.get(&node.name));
            let fresh_below = fresh || (listing.is_some() && there.is_none());
            let child = join(path, &node.name);
            match conflicts::decide(self.mode, node, there) {
                Decision::Write { replace } => {
                    self.node(child, node.clone(), replace, fresh_below)?
                }
                Decision::Skip => {
                    let size = match node.content {
                        Content::File { .. } => node.meta.size,
                        _ => 0,
                    };
                    self.send(Step::Skipped { path: child, size })?
                }
            }
        }
        Ok(())
    }

    fn node(&mut self, path: Vec<u8>, node: Node, replace: bool, fresh: bool) -> Result<(), Stop> {
        if let Some(e) = &node.error {
            self.send(Step::Problem(
                path.clone(),
                format!("was not backed up whole: {e}"),
            ))?;
        }
        match &node.content {
            Content::Dir { tree } => {
                self.send(Step::Dir(path.clone()))?;
                match self.store.read_tree(self.index, tree) {
                    Ok(subtree) => self.dir(&path, &subtree, fresh)?,
                    Err(e) => self.send(Step::Problem(path.clone(), e.to_string()))?,
                }
                self.send(Step::DirDone(path, node.meta))
            }
            Content::File { chunks } => {
                let chunks = chunks.clone();
                if let Some(existing) = self.links.earlier_name(&path, &node.meta, &chunks) {
                    let existing = existing.to_vec();
                    if self.can_link {
                        let size = node.meta.size;
                        return self.send(Step::HardLink {
                            path,
                            existing,
                            size,
                            replace,
                        });
                    }
                    self.send(Step::LinkCopied {
                        path: path.clone(),
                        existing,
                    })?;
                }
                self.send(Step::File {
                    path,
                    node,
                    replace,
                })?;
                for id in chunks {
                    self.chunk(id)?;
                }
                self.send(Step::FileDone)
            }
            // No target to make a link to: the backup said so (node.error).
            Content::Symlink { target } if target.is_empty() => Ok(()),
            Content::Symlink { .. } => self.send(Step::Symlink {
                path,
                node,
                replace,
            }),
            Content::Special => self.send(Step::Problem(path, "special file not recreated".into())),
        }
    }
}
