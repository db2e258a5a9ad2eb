//! Check: prove snapshots whole, from their headers down to every byte of
//! every blob they reach, and name what any damage affects.
//!
//! Packs are read once each, sequentially and on all cores; trees are walked
//! to find the packs needed and, only if damage was found, walked again to
//! name each snapshot and path that reaches a damaged object.

use crate::blob;
use crate::crypto::{Id, Sealing};
use crate::error::{Error, Result};
use crate::index::{BlobLocation, Index};
use crate::pack;
use crate::progress::{Progress, Silent};
use crate::source::join;
use crate::storage::ObjectKind;
use crate::store::Store;
use crate::tree::Content;
use crate::{browse, lock};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// What to check.
#[derive(Clone)]
pub struct CheckOptions {
    /// Structure and index only: trees are read, pack data is not.
    pub fast: bool,
    /// The share of packs (0–1] whose every byte is read when not `fast`,
    /// picked at random on each run (the rest are checked as `fast` does):
    /// a scheduled check that covers the store over many runs.
    pub pack_share: f64,
    /// Snapshots to check; empty means all.
    pub snapshots: Vec<Id>,
    /// Worker threads verifying packs; 0 means one per core.
    pub threads: usize,
    /// Where counts are reported, for progress bars.
    pub progress: Arc<dyn Progress>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            fast: false,
            pack_share: 1.0,
            snapshots: Vec::new(),
            threads: 0,
            progress: Arc::new(Silent),
        }
    }
}

/// One damaged object and everything that depends on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The object: "pack 1a2b3c4d", "tree 5e6f…", "snapshot …", "state …".
    pub object: String,
    /// What is wrong with it, in words.
    pub problem: String,
    /// "snapshot 9abc0def: path/inside" for each affected entry.
    pub affects: Vec<String>,
}

/// The result of a check.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Snapshots walked.
    pub snapshots: u64,
    /// Distinct trees decoded.
    pub trees: u64,
    /// Packs listed by the index.
    pub packs: u64,
    /// Packs whose every byte was read (all of them unless fast or sampled).
    pub packs_read: u64,
    /// Blobs verified (decrypted and hashed against their id).
    pub blobs: u64,
    /// Bytes of packs read.
    pub bytes: u64,
    /// Packs on storage that no state lists (left by an interrupted backup;
    /// maintenance removes them). Not damage.
    pub orphan_packs: u64,
    /// Every damaged object found, with what it affects.
    pub damage: Vec<Damage>,
}

impl CheckReport {
    /// True when no damage was found; orphan packs do not count.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}

#[derive(Default)]
struct Findings {
    /// object → (problem, affected entries)
    objects: BTreeMap<String, (String, BTreeSet<String>)>,
    /// blob → the object to blame when a path reaches it
    bad_blobs: HashMap<Id, String>,
}

impl Findings {
    fn object(&mut self, object: String, problem: String) {
        self.objects
            .entry(object)
            .or_insert((problem, BTreeSet::new()));
    }
    fn affects(&mut self, object: &str, what: String) {
        if let Some((_, set)) = self.objects.get_mut(object) {
            set.insert(what);
        }
    }
    fn bad_blob(&mut self, id: Id, object: String, problem: String) {
        self.object(object.clone(), problem);
        self.bad_blobs.entry(id).or_insert(object);
    }
}

/// What check keeps of a pack while it decides what to read.
#[derive(Clone, Copy, Default)]
struct PackSummary {
    /// Where the last blob the index lists in it ends.
    end: u64,
    /// How many blobs the index lists in it.
    blobs: u64,
}

/// Blobs whose locations one batch of pack reads gathers (about 60 MB).
const VERIFY_BATCH_BLOBS: u64 = 500_000;

/// Checks the store.
pub fn check(store: &Store, options: &CheckOptions) -> Result<CheckReport> {
    store.require_full("check the store (that reads it)")?;
    let mut report = CheckReport::default();
    let mut findings = Findings::default();

    check_keys_and_locks(store, &mut findings)?;
    // The index is rebuilt from the states, not taken from the local cache:
    // check vouches for the store itself.
    let (index, _scratch) = store.fresh_index()?;
    for damaged in &index.damaged {
        findings.object(
            format!("state {}", short(&damaged.name)),
            format!(
                "{} (blobs it lists are unknown until it is repaired)",
                damaged.error
            ),
        );
    }
    let list = browse::snapshots_in_store(store)?;
    for (name, e) in &list.damaged {
        let object = format!("snapshot {}", short(name));
        findings.object(object.clone(), e.to_string());
        findings.affects(&object, object.clone());
    }
    let chosen: Vec<(Id, crate::snapshot::Snapshot)> = if options.snapshots.is_empty() {
        list.snapshots
    } else {
        list.snapshots
            .into_iter()
            .filter(|(id, _)| options.snapshots.contains(id))
            .collect()
    };
    report.snapshots = chosen.len() as u64;

    // Walk 1: read every tree once, collect the packs the data lives in.
    let mut needed_packs: HashSet<Id> = HashSet::new();
    let mut seen_trees: HashSet<Id> = HashSet::new();
    let mut pending: Vec<Id> = chosen.iter().map(|(_, s)| s.root).collect();
    while let Some(tree_id) = pending.pop() {
        if !seen_trees.insert(tree_id) {
            continue;
        }
        report.trees += 1;
        if let Some(l) = index.lookup(&tree_id) {
            needed_packs.insert(l.pack);
        }
        let tree = match store.read_tree(&index, &tree_id) {
            Ok(t) => t,
            Err(e) => {
                let object = blob_object(&index, &tree_id, "tree");
                findings.bad_blob(tree_id, object, e.to_string());
                continue;
            }
        };
        for node in &tree.nodes {
            match &node.content {
                Content::Dir { tree } => pending.push(*tree),
                Content::File { chunks } => {
                    for c in chunks {
                        match index.lookup(c) {
                            Some(l) => {
                                needed_packs.insert(l.pack);
                            }
                            None => findings.bad_blob(
                                *c,
                                format!("blob {}", c.short()),
                                "missing: no state lists it".into(),
                            ),
                        }
                    }
                }
                _ => {}
            }
        }
    }

    // Packs: existence and size always, every byte unless fast.
    let stored: HashMap<Id, u64> = store
        .storage()
        .list(ObjectKind::Pack)?
        .into_iter()
        .filter_map(|o| Id::from_hex(&o.name).map(|id| (id, o.size)))
        .collect();
    // One summary a pack, not its blobs: a store of 50 M blobs is checked
    // in bounded memory.
    let wanted = |l: &BlobLocation| options.snapshots.is_empty() || needed_packs.contains(&l.pack);
    let mut packs: HashMap<Id, PackSummary> = HashMap::new();
    index.for_each(|_, l| {
        if wanted(&l) {
            let summary = packs.entry(l.pack).or_default();
            summary.end = summary.end.max(u64::from(l.offset) + u64::from(l.length));
            summary.blobs += 1;
        }
    });
    if options.snapshots.is_empty() {
        report.orphan_packs = stored.keys().filter(|p| !packs.contains_key(*p)).count() as u64;
    }
    // Missing packs (`None`) and truncated ones (their size).
    let mut unsound: HashMap<Id, Option<u64>> = HashMap::new();
    let mut to_read = Vec::new();
    for (pack_id, summary) in &packs {
        match stored.get(pack_id) {
            None => {
                unsound.insert(*pack_id, None);
                continue;
            }
            Some(&size) if size < summary.end + 4 => {
                unsound.insert(*pack_id, Some(size));
            }
            Some(_) => {}
        }
        if !options.fast {
            to_read.push(*pack_id);
        }
    }
    if !unsound.is_empty() {
        index.for_each(|id, l| {
            let object = || format!("pack {}", l.pack.short());
            match unsound.get(&l.pack) {
                Some(None) if wanted(&l) => {
                    findings.bad_blob(id, object(), "missing from storage".into())
                }
                Some(Some(size))
                    if wanted(&l) && u64::from(l.offset) + u64::from(l.length) > *size =>
                {
                    findings.bad_blob(id, object(), format!("truncated to {size} bytes"))
                }
                _ => {}
            }
        });
    }
    report.packs = packs.len() as u64;
    if options.pack_share < 1.0 {
        to_read = sample(to_read, options.pack_share)?;
    }
    report.packs_read = to_read.len() as u64;
    // Packs are read a batch at a time, the blobs of each batch gathered
    // in one scan of the index.
    let mut batch: Vec<Id> = Vec::new();
    let mut batch_blobs = 0;
    for (n, pack_id) in to_read.iter().enumerate() {
        batch.push(*pack_id);
        batch_blobs += packs[pack_id].blobs;
        if batch_blobs >= VERIFY_BATCH_BLOBS || n + 1 == to_read.len() {
            let members: HashSet<Id> = batch.iter().copied().collect();
            let mut by_pack: HashMap<Id, Vec<(Id, BlobLocation)>> = HashMap::new();
            index.for_each(|id, l| {
                if members.contains(&l.pack) {
                    by_pack.entry(l.pack).or_default().push((id, l));
                }
            });
            verify_packs(store, &batch, &by_pack, options, &mut findings, &mut report);
            batch.clear();
            batch_blobs = 0;
        }
    }

    // Walk 2, only when something is damaged: name what it affects.
    if !findings.bad_blobs.is_empty() {
        let mut memo: HashMap<Id, bool> = HashMap::new();
        for (snap_id, snap) in &chosen {
            let label = format!("snapshot {}", snap_id.short());
            name_affected(
                store,
                &index,
                &snap.root,
                b"",
                &label,
                &mut findings,
                &mut memo,
            );
        }
    }

    report.damage = findings
        .objects
        .into_iter()
        .map(|(object, (problem, affects))| Damage {
            object,
            problem,
            affects: affects.into_iter().collect(),
        })
        .collect();
    Ok(report)
}

fn short(name: &str) -> &str {
    &name[..name.len().min(8)]
}

fn blob_object(index: &Index, id: &Id, kind: &str) -> String {
    match index.lookup(id) {
        Some(l) => format!("{kind} {} in pack {}", id.short(), l.pack.short()),
        None => format!("{kind} {}", id.short()),
    }
}

fn check_keys_and_locks(store: &Store, findings: &mut Findings) -> Result<()> {
    for object in store.storage().list(ObjectKind::Key)? {
        let ok = store
            .storage()
            .get(ObjectKind::Key, &object.name)
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::keys::KeyFile>(&b).ok())
            .is_some();
        if !ok {
            findings.object(
                format!("key {}", short(&object.name)),
                "unreadable: the passphrase it wraps no longer opens the store".into(),
            );
        }
    }
    for (name, info) in lock::list(&**store.storage(), store.keys())? {
        if let Err(e) = info {
            findings.object(
                format!("lock {}", short(&name)),
                format!("{e} (remove it with unlock)"),
            );
        }
    }
    Ok(())
}

/// Reads each pack whole, on all cores, and verifies its name, its footer
/// against the index, and every blob in it.
fn verify_packs(
    store: &Store,
    packs: &[Id],
    by_pack: &HashMap<Id, Vec<(Id, BlobLocation)>>,
    options: &CheckOptions,
    findings: &mut Findings,
    report: &mut CheckReport,
) {
    let threads = store.reader_threads(options.threads);
    let next = Mutex::new(packs.iter());
    let shared = Mutex::new((std::mem::take(findings), 0u64, 0u64));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let Some(pack_id) = next.lock().unwrap_or_else(|p| p.into_inner()).next()
                    else {
                        return;
                    };
                    let blobs = &by_pack[pack_id];
                    let outcome = verify_pack(store, pack_id, blobs);
                    options.progress.bytes(outcome.bytes);
                    options.progress.items(1);
                    let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                    let (f, bytes, count) = &mut *guard;
                    *bytes += outcome.bytes;
                    *count += blobs.len() as u64;
                    if let Some(problem) = outcome.pack_problem {
                        f.object(format!("pack {}", pack_id.short()), problem);
                    }
                    for (id, problem) in outcome.bad {
                        f.bad_blob(id, format!("pack {}", pack_id.short()), problem);
                    }
                }
            });
        }
    });
    let (f, bytes, blobs) = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    *findings = f;
    report.bytes += bytes;
    report.blobs += blobs;
}

struct PackOutcome {
    bytes: u64,
    pack_problem: Option<String>,
    bad: Vec<(Id, String)>,
}

fn verify_pack(store: &Store, pack_id: &Id, blobs: &[(Id, BlobLocation)]) -> PackOutcome {
    let bytes = match store.storage().get(ObjectKind::Pack, &pack_id.to_hex()) {
        Ok(b) => b,
        Err(e) => {
            return PackOutcome {
                bytes: 0,
                pack_problem: Some(e.to_string()),
                bad: blobs
                    .iter()
                    .map(|(id, _)| (*id, "pack unreadable".into()))
                    .collect(),
            };
        }
    };
    let mut pack_problem = None;
    // Every state listing the pack says how it was sealed; a state that
    // says wrong (a put-only key's made-up records) fails here and below.
    let mut sealings: Vec<Sealing> = blobs.iter().map(|(_, l)| l.sealing).collect();
    sealings.sort_unstable();
    sealings.dedup();
    let footer = sealings
        .iter()
        .map(|sealing| pack::read_footer(store.keys(), *sealing, pack_id, &bytes))
        .reduce(|first, next| first.or(next))
        .unwrap_or_else(|| Err(Error::corrupt("pack", "no blob listed")));
    match footer {
        Ok(entries) => {
            let listed: HashSet<(Id, u32)> = entries.iter().map(|e| (e.id, e.offset)).collect();
            if blobs
                .iter()
                .any(|(id, l)| !listed.contains(&(*id, l.offset)))
            {
                pack_problem = Some("footer disagrees with the index".into());
            }
        }
        Err(Error::Corrupt { why, .. }) => pack_problem = Some(why),
        Err(e) => pack_problem = Some(e.to_string()),
    }
    // Blob by blob: a flipped byte in one blob spoils that blob, not its
    // neighbours, so only the paths that reach it are reported.
    let mut bad = Vec::new();
    let mut frames = blob::FrameCache::default();
    for (id, l) in blobs {
        let start = l.offset as usize;
        let end = start + l.length as usize;
        let result = match bytes.get(start..end) {
            Some(sealed) => frames
                .open(
                    store.keys(),
                    (pack_id, l.offset),
                    (l.sealing, l.kind, l.raw_length),
                    id,
                    sealed,
                )
                .map(|_| ()),
            None => Err(Error::corrupt("blob", "beyond the end of the pack")),
        };
        if let Err(e) = result {
            let why = match e {
                Error::Corrupt { why, .. } => why,
                other => other.to_string(),
            };
            bad.push((*id, format!("blob {}: {why}", id.short())));
        }
    }
    PackOutcome {
        bytes: bytes.len() as u64,
        pack_problem,
        bad,
    }
}

/// A random `share` of `packs` (at least one), different on every run.
fn sample(packs: Vec<Id>, share: f64) -> Result<Vec<Id>> {
    let mut seed = [0u8; 32];
    crate::crypto::fill_random(&mut seed)?;
    let wanted = ((packs.len() as f64 * share).ceil() as usize).clamp(1, packs.len().max(1));
    let mut keyed: Vec<([u8; 32], Id)> = packs
        .into_iter()
        .map(|id| (*blake3::keyed_hash(&seed, &id.0).as_bytes(), id))
        .collect();
    keyed.sort_unstable();
    Ok(keyed.into_iter().take(wanted).map(|(_, id)| id).collect())
}

/// Walks a tree, recording every path that reaches a damaged blob; returns
/// whether the subtree is damaged (memoised per tree id, so clean subtrees
/// shared by many snapshots are walked once).
fn name_affected(
    store: &Store,
    index: &Index,
    tree_id: &Id,
    path: &[u8],
    label: &str,
    findings: &mut Findings,
    memo: &mut HashMap<Id, bool>,
) -> bool {
    if memo.get(tree_id) == Some(&false) {
        return false;
    }
    let display = |p: &[u8]| {
        if p.is_empty() {
            format!("{label}: /")
        } else {
            format!("{label}: {}", String::from_utf8_lossy(p))
        }
    };
    if let Some(object) = findings.bad_blobs.get(tree_id).cloned() {
        findings.affects(&object, display(path));
        memo.insert(*tree_id, true);
        return true;
    }
    let Ok(tree) = store.read_tree(index, tree_id) else {
        return true;
    };
    let mut damaged = false;
    for node in &tree.nodes {
        let child = join(path, &node.name);
        match &node.content {
            Content::Dir { tree } => {
                damaged |= name_affected(store, index, tree, &child, label, findings, memo);
            }
            Content::File { chunks } => {
                for c in chunks {
                    if let Some(object) = findings.bad_blobs.get(c).cloned() {
                        findings.affects(&object, display(&child));
                        damaged = true;
                    }
                }
            }
            _ => {}
        }
    }
    memo.insert(*tree_id, damaged);
    damaged
}
