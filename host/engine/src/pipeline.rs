//! The store's one writer of packs and states, shared by backup, sync and
//! maintenance: blobs the store lacks go through bounded channels to seal
//! workers (compress + encrypt; blobs copied already sealed pass through),
//! a packer and uploaders; when the caller is done, the packs that made it are
//! indexed in one new state, even if the caller failed, so the next run
//! reuses them. Along the way, checkpoint states list the packs uploaded so
//! far (after 16 packs, then each time as many again as all before), so a
//! run killed outright loses at most about half of what it wrote, in a few
//! states however long the run. Every queue is bounded and buffers are
//! recycled, so memory stays flat however much is written.

use crate::blob::{BlobKind, GROUP_MAX, GROUP_MEMBER_MAX, Sealer};
use crate::crypto::{Id, Keys, Sealing};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::State;
use crate::pack::{FinishedPack, PackBuilder, PackEntry};
use crate::pool::BufferPool;
use crate::storage::{ObjectKind, Storage};
use crate::store::Store;
use crossbeam_channel::{Receiver, Sender, bounded};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Condvar, Mutex};

struct Job {
    id: Id,
    kind: BlobKind,
    data: Vec<u8>,
    /// `Some(raw length)` when `data` is already sealed (a blob copied
    /// between packs by maintenance).
    sealed: Option<u32>,
}

/// One sealed frame and the blobs in it (id, kind, plaintext length).
struct Sealed {
    members: Vec<(Id, BlobKind, u32)>,
    bytes: Vec<u8>,
}

/// Buffers recycled along the pipeline: chunks go from the walker to the
/// workers and back, sealed frames from the workers through the packer to
/// the uploaders (which send a pack frame by frame) and back.
#[derive(Clone)]
struct Pools {
    chunks: BufferPool,
    sealed: BufferPool,
}

/// Packs uploaded before the first checkpoint state.
const FIRST_CHECKPOINT: usize = 16;

/// Packs uploaded and not yet in a state, and the checkpoint states
/// written so far.
#[derive(Default)]
struct Uploaded {
    pending: Vec<(Id, Vec<PackEntry>)>,
    /// Bytes of every pack uploaded, headers included.
    pack_bytes: u64,
    /// Packs already in checkpoint states.
    checkpointed: usize,
    checkpoints: Vec<(Id, State)>,
}

impl Uploaded {
    /// The packs due for a checkpoint state, if one is due.
    fn due(&mut self) -> Option<Vec<(Id, Vec<PackEntry>)>> {
        let due = self.pending.len() >= FIRST_CHECKPOINT.max(self.checkpointed);
        due.then(|| {
            self.checkpointed += self.pending.len();
            std::mem::take(&mut self.pending)
        })
    }
}

/// Seals and stores one state; returns its name.
fn put_state(store_keys: &Keys, storage: &dyn Storage, state: &State) -> Result<Id> {
    let sealed = state.seal(store_keys)?;
    let name = Id::of_object(&sealed);
    storage.put(ObjectKind::State, &name.to_hex(), &sealed)?;
    Ok(name)
}

/// At most this many blobs per state, so no state grows without bound.
pub(crate) const STATE_PART: usize = 500_000;

/// Stores states listing `packs`, a new one every [`STATE_PART`] blobs;
/// returns them with their names.
pub(crate) fn put_states(
    store_keys: &Keys,
    storage: &dyn Storage,
    sealing: Sealing,
    packs: Vec<(Id, Vec<PackEntry>)>,
) -> Result<Vec<(Id, State)>> {
    let mut writer = StateWriter::new(store_keys, storage);
    let mut states = Vec::new();
    for (pack, entries) in packs {
        states.extend(writer.add(sealing, pack, entries)?);
    }
    states.extend(writer.finish()?);
    Ok(states)
}

/// Writes states as packs are handed to it, one part per sealing (a state
/// says how all its packs were sealed), each stored once it lists
/// [`STATE_PART`] blobs: a caller listing millions of blobs holds at most
/// one part of each sealing.
pub(crate) struct StateWriter<'a> {
    keys: &'a Keys,
    storage: &'a dyn Storage,
    parts: BTreeMap<Sealing, (State, usize)>,
}

impl<'a> StateWriter<'a> {
    pub(crate) fn new(keys: &'a Keys, storage: &'a dyn Storage) -> Self {
        StateWriter {
            keys,
            storage,
            parts: BTreeMap::new(),
        }
    }

    /// Lists `pack`; returns the state it completed, if it completed one.
    pub(crate) fn add(
        &mut self,
        sealing: Sealing,
        pack: Id,
        entries: Vec<PackEntry>,
    ) -> Result<Option<(Id, State)>> {
        let (part, count) = self.parts.entry(sealing).or_insert_with(|| {
            let state = State {
                packs: Vec::new(),
                sealing,
            };
            (state, 0)
        });
        *count += entries.len();
        part.packs.push((pack, entries));
        if *count < STATE_PART {
            return Ok(None);
        }
        let (state, _) = self.parts.remove(&sealing).expect("just filled");
        Ok(Some((put_state(self.keys, self.storage, &state)?, state)))
    }

    /// Stores the parts not yet full.
    pub(crate) fn finish(self) -> Result<Vec<(Id, State)>> {
        let mut states = Vec::new();
        for (_, (state, _)) in self.parts {
            states.push((put_state(self.keys, self.storage, &state)?, state));
        }
        Ok(states)
    }
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

/// Bytes of finished packs held in memory and not yet sent. A pack
/// usually waits in a temporary file and counts nothing here (see
/// [`crate::spill`]); when it cannot, an uploader hands each frame back as
/// it is read, and the packer waits for room before adding a frame, so a
/// run holds about one pack per uploader plus a quarter of one, however
/// much faster it seals than the storage takes.
struct Unsent {
    bytes: Mutex<u64>,
    sent: Condvar,
    limit: u64,
}

impl Unsent {
    fn new(target: usize, uploaders: usize) -> Self {
        let target = target as u64;
        Self {
            bytes: Mutex::new(0),
            sent: Condvar::new(),
            limit: target * uploaders as u64 + target / 4,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `filling` more bytes fit beside what is unsent (at
    /// once when nothing is: a frame larger than the room still goes).
    fn wait_for_room(&self, filling: u64) {
        let mut unsent = self.lock();
        while *unsent > 0 && *unsent + filling > self.limit {
            unsent = self.sent.wait(unsent).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn add(&self, bytes: u64) {
        *self.lock() += bytes;
    }

    fn sent(&self, bytes: u64) {
        let mut unsent = self.lock();
        *unsent = unsent.saturating_sub(bytes);
        self.sent.notify_all();
    }
}

/// Packs put at once, at most. A storage plugin may hold a pack while it
/// sends it (the S3 connector does, for its one PUT), and on the Garage
/// bench 7 uploaders were no faster than 3 (17.0 against 17.1 s for
/// 1 GiB) but held 323 MiB instead of 184. Reads take all the storage's
/// parallel requests.
const MAX_UPLOADERS: usize = 3;

/// Where a caller puts blobs; it stores only what neither the store nor
/// this run has already.
pub struct BlobSink<'a> {
    index: &'a Index,
    jobs: Sender<Vec<Job>>,
    pools: Pools,
    /// Blobs queued in this run: a chunk seen twice is stored once.
    session: HashSet<Id>,
    /// Blobs gathered for the next hand-over, and their bytes.
    batch: Vec<Job>,
    batch_bytes: usize,
}

/// Blobs travel between pipeline threads in batches of up to this many
/// bytes or blobs: one hand-over per small file would cost more in thread
/// wake-ups than sealing it (a 100k-file backup spent most of its system
/// time in futex and sched_yield).
/// A batch's small data chunks are sealed as one group, so these also
/// bound a group (see [`crate::blob::GROUP_MAX`]).
const BATCH_BYTES: usize = 1 << 20;
const BATCH_BLOBS: usize = 512;

impl BlobSink<'_> {
    /// The store's index as it was when the run started.
    pub fn index(&self) -> &Index {
        self.index
    }

    /// Whether the store has the blob, or this run queued it.
    pub fn known(&self, id: &Id) -> bool {
        self.session.contains(id) || self.index.reusable(id)
    }

    /// An empty buffer for a chunk (recycled when possible).
    pub fn buffer(&self) -> Vec<u8> {
        self.pools.chunks.take()
    }

    /// Hands a buffer back for reuse.
    pub fn recycle(&self, buf: Vec<u8>) {
        self.pools.chunks.give(buf);
    }

    /// Queues a blob unless it is known; its buffer is recycled either way.
    pub fn store(&mut self, id: Id, kind: BlobKind, data: Vec<u8>) -> Result<()> {
        if data.len() >= crate::index::MAX_BLOB {
            // A folder of millions of entries in one directory; the index
            // keeps blob lengths below 1 GiB.
            return Err(Error::InvalidArgument(format!(
                "a {:?} blob of {} bytes is beyond what a store holds (1 GiB)",
                kind,
                data.len()
            )));
        }
        if self.known(&id) {
            self.recycle(data);
            return Ok(());
        }
        self.queue(Job {
            id,
            kind,
            data,
            sealed: None,
        })
    }

    /// Queues a blob that is already sealed (copied out of another pack of
    /// this store) unless it is known.
    pub(crate) fn store_sealed(
        &mut self,
        id: Id,
        kind: BlobKind,
        raw_length: u32,
        sealed: Vec<u8>,
    ) -> Result<()> {
        if self.known(&id) {
            return Ok(());
        }
        self.queue(Job {
            id,
            kind,
            data: sealed,
            sealed: Some(raw_length),
        })
    }

    fn queue(&mut self, job: Job) -> Result<()> {
        self.session.insert(job.id);
        self.batch_bytes += job.data.len();
        self.batch.push(job);
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_BLOBS {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Sends the gathered blobs to the seal workers.
    fn hand_over(&mut self) -> Result<()> {
        self.batch_bytes = 0;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_BLOBS));
        self.jobs.send(batch).map_err(|_| Error::Interrupted)
    }
}

impl Drop for BlobSink<'_> {
    /// The last, partial batch goes when the caller is done.
    fn drop(&mut self) {
        let _ = self.hand_over();
    }
}

/// What a run stored.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub blobs: u64,
    /// Sealed bytes in packs.
    pub bytes: u64,
    /// Bytes of the packs, headers included.
    pub pack_bytes: u64,
    /// The states that list what was written, with their names.
    pub states: Vec<(Id, State)>,
}

/// Runs `fill` with a sink into `store`, then indexes what was written.
/// `threads` seal workers run (0: one per core). A pipeline failure wins
/// over `fill`'s own error, since it is the cause.
pub fn write_blobs<R>(
    store: &Store,
    index: &mut Index,
    threads: usize,
    fill: impl FnOnce(&mut BlobSink<'_>) -> Result<R>,
) -> Result<(R, Written)> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let errors = FirstError::default();
    let pools = Pools {
        chunks: BufferPool::new(threads + 1),
        sealed: BufferPool::new(threads + 1),
    };
    let uploaded = Mutex::new(Uploaded::default());
    let uploaders = store.storage().parallel_requests().clamp(1, MAX_UPLOADERS);
    let unsent = Unsent::new(store.config().pack_target as usize, uploaders);
    let filled = std::thread::scope(|s| {
        let (job_tx, job_rx) = bounded::<Vec<Job>>(threads);
        let (sealed_tx, sealed_rx) = bounded::<Vec<Sealed>>(threads);
        // A rendezvous: a finished pack waits for a free uploader, so at most
        // one pack fills while the uploaders each hold one.
        let (pack_tx, pack_rx) = bounded::<FinishedPack>(0);
        let config = store.config();
        let (codec, groups) = (config.compression(), config.groups());
        for _ in 0..threads {
            let (rx, tx, keys, errors, pools) = (
                job_rx.clone(),
                sealed_tx.clone(),
                store.keys(),
                &errors,
                &pools,
            );
            let sealer = Sealer::new(codec);
            s.spawn(move || seal_worker(keys, (sealer, groups), rx, tx, errors, pools));
        }
        drop((job_rx, sealed_tx));
        let target = store.config().pack_target as usize;
        let (keys, errors_ref, unsent_ref, pools_ref) = (store.keys(), &errors, &unsent, &pools);
        s.spawn(move || {
            packer(
                keys,
                target,
                sealed_rx,
                pack_tx,
                errors_ref,
                (unsent_ref, pools_ref),
            )
        });
        let uploaders: Vec<_> = (0..uploaders)
            .map(|_| {
                let (rx, keys, storage, errors, uploaded, pools) = (
                    pack_rx.clone(),
                    store.keys(),
                    store.storage(),
                    &errors,
                    &uploaded,
                    &pools,
                );
                let unsent = &unsent;
                s.spawn(move || uploader(keys, &**storage, rx, errors, uploaded, (pools, unsent)))
            })
            .collect();
        drop(pack_rx);
        let mut sink = BlobSink {
            index: &*index,
            jobs: job_tx,
            pools: pools.clone(),
            session: HashSet::new(),
            batch: Vec::with_capacity(BATCH_BLOBS),
            batch_bytes: 0,
        };
        let filled = fill(&mut sink);
        drop(sink);
        for u in uploaders {
            let _ = u.join();
        }
        filled
    });
    let uploaded = uploaded.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut written = Written {
        pack_bytes: uploaded.pack_bytes,
        ..Written::default()
    };
    written.states = uploaded.checkpoints;
    written.states.extend(put_states(
        store.keys(),
        &**store.storage(),
        store.keys().sealing(),
        uploaded.pending,
    )?);
    for (name, state) in &written.states {
        for (_, entries) in &state.packs {
            written.blobs += entries.len() as u64;
            // A group's members share one frame.
            written.bytes += entries
                .chunk_by(|a, b| a.offset == b.offset)
                .map(|frame| u64::from(frame[0].length))
                .sum::<u64>();
        }
        index.add_state(*name, state, true)?;
    }
    if let Some(e) = errors.take() {
        return Err(e);
    }
    Ok((filled?, written))
}

/// Seals each batch: blobs already sealed pass through, small data chunks
/// (when the store groups them) become one group frame, every other blob a
/// frame of its own.
fn seal_worker(
    keys: &Keys,
    (mut sealer, groups): (Sealer, bool),
    jobs: Receiver<Vec<Job>>,
    out: Sender<Vec<Sealed>>,
    errors: &FirstError,
    pools: &Pools,
) {
    for batch in jobs {
        let mut sealed = Vec::with_capacity(batch.len());
        let (small, alone): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|job| {
            groups
                && job.sealed.is_none()
                && job.kind == BlobKind::Data
                && job.data.len() < GROUP_MEMBER_MAX
        });
        let mut alone = alone;
        if small.len() < 2 {
            alone.extend(small);
        } else if let Err(e) = seal_groups(keys, &mut sealer, small, &mut sealed, pools) {
            return errors.set(e);
        }
        for job in alone {
            if let Some(raw_length) = job.sealed {
                sealed.push(Sealed {
                    members: vec![(job.id, job.kind, raw_length)],
                    bytes: job.data,
                });
                continue;
            }
            let mut bytes = pools.sealed.take();
            if let Err(e) = sealer.seal_into(keys, job.kind, &job.id, &job.data, &mut bytes) {
                return errors.set(e);
            }
            sealed.push(Sealed {
                members: vec![(job.id, job.kind, job.data.len() as u32)],
                bytes: fitted(bytes),
            });
            pools.chunks.give(job.data);
        }
        if out.send(sealed).is_err() {
            return;
        }
    }
}

/// A sealed frame trimmed to its length. Sealing reserves room for the
/// input (up to a 2 MiB group); the frame then waits between threads, and
/// in its pack when the pack stays in memory. Heaptrack put 30 of a
/// 100k-file backup's 53 MiB peak in such frames before packs were
/// spilled; with packs spilled, trimming only there measured 1.5-3 MiB
/// more (frames in flight keep their slack). Shrinking in place costs
/// no copy.
fn fitted(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.capacity() - bytes.len() > SPARE_KEPT {
        bytes.shrink_to_fit();
    }
    bytes
}

/// Spare room a frame may keep: less is not worth a reallocation.
const SPARE_KEPT: usize = 16 << 10;

/// Seals small data chunks as group frames of at most [`GROUP_MAX`] bytes.
fn seal_groups(
    keys: &Keys,
    sealer: &mut Sealer,
    small: Vec<Job>,
    sealed: &mut Vec<Sealed>,
    pools: &Pools,
) -> Result<()> {
    let mut start = 0;
    while start < small.len() {
        let mut end = start;
        let mut total = 0;
        while end < small.len() && total + small[end].data.len() <= GROUP_MAX {
            total += small[end].data.len();
            end += 1;
        }
        let group = &small[start..end.max(start + 1)];
        let members: Vec<(Id, &[u8])> = group.iter().map(|j| (j.id, &j.data[..])).collect();
        let mut bytes = pools.sealed.take();
        sealer.seal_group_into(keys, &members, &mut bytes)?;
        sealed.push(Sealed {
            members: group
                .iter()
                .map(|j| (j.id, j.kind, j.data.len() as u32))
                .collect(),
            bytes: fitted(bytes),
        });
        start += group.len();
    }
    for job in small {
        pools.chunks.give(job.data);
    }
    Ok(())
}

fn packer(
    keys: &Keys,
    target: usize,
    batches: Receiver<Vec<Sealed>>,
    out: Sender<FinishedPack>,
    errors: &FirstError,
    (unsent, pools): (&Unsent, &Pools),
) {
    let mut current: Option<PackBuilder> = None;
    let close = |builder: PackBuilder| -> bool {
        match builder.finish(keys) {
            Ok(pack) => {
                unsent.add(pack.body.in_memory());
                out.send(pack).is_ok()
            }
            Err(e) => {
                errors.set(e);
                false
            }
        }
    };
    for frame in batches.into_iter().flatten() {
        if current
            .as_ref()
            .is_some_and(|b| !b.has_room(frame.bytes.len(), frame.members.len(), target))
            && !close(current.take().expect("checked"))
        {
            return;
        }
        let filling = current.as_ref().map_or(0, PackBuilder::in_memory) + frame.bytes.len() as u64;
        unsent.wait_for_room(filling);
        let builder = match current.as_mut() {
            Some(b) => b,
            None => match PackBuilder::new() {
                Ok(b) => current.insert(b),
                Err(e) => return errors.set(e),
            },
        };
        if let Some(spilled) = builder.add(&frame.members, frame.bytes) {
            pools.sealed.give(spilled);
        }
    }
    if let Some(builder) = current.filter(|b| !b.is_empty()) {
        close(builder);
    }
}

fn uploader(
    keys: &Keys,
    storage: &dyn Storage,
    packs: Receiver<FinishedPack>,
    errors: &FirstError,
    uploaded: &Mutex<Uploaded>,
    (pools, unsent): (&Pools, &Unsent),
) {
    let lock = || uploaded.lock().unwrap_or_else(|p| p.into_inner());
    for pack in packs {
        let (size, name) = (pack.size, pack.name.to_hex());
        // What the packer counted as unsent; given back as frames are
        // read, and the rest (a spilled pack's stage) once the put ends.
        let mut held = pack.body.in_memory();
        let sent = &mut |frame: Vec<u8>| {
            held = held.saturating_sub(frame.len() as u64);
            unsent.sent(frame.len() as u64);
            pools.sealed.give(frame);
        };
        let put = pack
            .body
            .reader(sent)
            .map_err(|source| crate::storage::StorageError::Io {
                op: "put",
                kind: ObjectKind::Pack,
                name: name.clone(),
                source,
            })
            .and_then(|mut body| storage.put_from(ObjectKind::Pack, &name, size, &mut body));
        unsent.sent(held);
        if let Err(e) = put {
            return errors.set(e.into());
        }
        let due = {
            let mut uploaded = lock();
            uploaded.pack_bytes += size;
            uploaded.pending.push((pack.name, pack.entries));
            uploaded.due()
        };
        if let Some(packs) = due {
            let state = State {
                packs,
                sealing: keys.sealing(),
            };
            match put_state(keys, storage, &state) {
                Ok(name) => lock().checkpoints.push((name, state)),
                Err(e) => {
                    // Listed again in the final state instead.
                    lock().pending.extend(state.packs);
                    return errors.set(e);
                }
            }
        }
    }
}
