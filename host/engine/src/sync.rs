//! Copying snapshots from one store to another, storing only the blobs the
//! target lacks. The stores may have different keys: blob ids are keyed per
//! store, so every tree is rewritten with the target's ids (chunks are
//! re-hashed, and read only when the target's id is not yet known). When
//! both stores share a master key the ids carry over and known chunks are
//! not read at all.
//!
//! A journal in the target's local cache remembers which source snapshots
//! were copied, so running sync again copies only what is new.

use crate::blob::BlobKind;
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::pipeline::{self, BlobSink};
use crate::progress::Progress;
use crate::snapshot::Snapshot;
use crate::storage::ObjectKind;
use crate::store::Store;
use crate::tree::{Content, Tree};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What a sync did.
#[derive(Clone, Debug, Default)]
pub struct SyncOutcome {
    /// (source snapshot, its copy in the target)
    pub copied: Vec<(Id, Id)>,
    /// Source snapshots the target already had from an earlier sync.
    pub skipped: Vec<Id>,
    /// Blobs the target did not have.
    pub blobs_added: u64,
    /// Sealed bytes those blobs take in the target.
    pub bytes_added: u64,
}

/// Copies `snapshots` (all when empty) from `from` into `to`.
pub fn sync(
    from: &Store,
    to: &Store,
    snapshots: &[Id],
    progress: Arc<dyn Progress>,
) -> Result<SyncOutcome> {
    from.require_full("copy snapshots out of this store")?;
    let _source_lock = from.lock(false, "sync (reading)")?;
    let _target_lock = to.lock(false, "sync (writing)")?;
    let source_index = from.index()?;
    let mut target_index = to.index()?;
    let mut list = crate::browse::snapshots(from)?.snapshots;
    if !snapshots.is_empty() {
        list.retain(|(id, _)| snapshots.contains(id));
    }
    let journal_path = to
        .cache_dir()
        .map(|d| d.join(format!("synced-from-{}.json", from.config().store_id)));
    let mut journal: BTreeMap<String, String> = journal_path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let present: std::collections::HashSet<String> = to
        .storage()
        .list(ObjectKind::Snapshot)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    let same_ids = from.keys().blob_id(b"kast id probe") == to.keys().blob_id(b"kast id probe");

    let mut outcome = SyncOutcome::default();
    for (id, snap) in list {
        if journal
            .get(&id.to_hex())
            .is_some_and(|t| present.contains(t))
        {
            outcome.skipped.push(id);
            continue;
        }
        let (root, written) = pipeline::write_blobs(to, &mut target_index, 0, |sink| {
            let mut copier = Copier {
                from,
                source_index: &source_index,
                to_keys: to.keys(),
                sink,
                same_ids,
                trees: HashMap::new(),
                chunks: HashMap::new(),
                progress: &*progress,
            };
            copier.tree(&snap.root)
        })?;
        outcome.blobs_added += written.blobs;
        outcome.bytes_added += written.bytes;
        let copy = Snapshot { root, ..snap };
        let sealed = copy.seal(to.keys())?;
        let new_id = Id::of_object(&sealed);
        to.storage()
            .put(ObjectKind::Snapshot, &new_id.to_hex(), &sealed)?;
        journal.insert(id.to_hex(), new_id.to_hex());
        if let Some(path) = &journal_path {
            let write = || -> std::io::Result<()> {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(
                    path,
                    serde_json::to_vec_pretty(&journal).expect("serializes"),
                )
            };
            write().map_err(|e| Error::Cache {
                path: path.display().to_string(),
                source: e,
            })?;
        }
        outcome.copied.push((id, new_id));
    }
    Ok(outcome)
}

/// Rewrites trees from the source's ids to the target's.
struct Copier<'a, 's> {
    from: &'a Store,
    source_index: &'a Index,
    to_keys: &'a crate::crypto::Keys,
    sink: &'a mut BlobSink<'s>,
    same_ids: bool,
    /// Source tree id → target tree id (a subtree shared by snapshots is
    /// rewritten once).
    trees: HashMap<Id, Id>,
    /// Source chunk id → target chunk id, for this run.
    chunks: HashMap<Id, Id>,
    progress: &'a dyn Progress,
}

impl Copier<'_, '_> {
    fn tree(&mut self, id: &Id) -> Result<Id> {
        if let Some(done) = self.trees.get(id) {
            return Ok(*done);
        }
        let mut tree: Tree = self.from.read_tree(self.source_index, id)?;
        for node in &mut tree.nodes {
            match &mut node.content {
                Content::Dir { tree } => *tree = self.tree(tree)?,
                Content::File { chunks } => {
                    for chunk in chunks.iter_mut() {
                        *chunk = self.chunk(chunk)?;
                    }
                }
                Content::Symlink { .. } | Content::Special => {}
            }
        }
        let encoded = tree.encode();
        let new_id = self.to_keys.blob_id(&encoded);
        self.sink.store(new_id, BlobKind::Tree, encoded)?;
        self.trees.insert(*id, new_id);
        Ok(new_id)
    }

    fn chunk(&mut self, id: &Id) -> Result<Id> {
        if self.same_ids && self.sink.known(id) {
            return Ok(*id);
        }
        if let Some(done) = self.chunks.get(id) {
            return Ok(*done);
        }
        let data = self
            .from
            .read_indexed(self.source_index, id, BlobKind::Data)?;
        self.progress.bytes(data.len() as u64);
        let new_id = self.to_keys.blob_id(&data);
        self.sink.store(new_id, BlobKind::Data, data)?;
        self.chunks.insert(*id, new_id);
        Ok(new_id)
    }
}
