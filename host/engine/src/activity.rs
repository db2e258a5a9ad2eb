//! The activity log: one small record per job run (success, partial,
//! failure, with figures), kept in the store itself as an encrypted blob of
//! its own kind. Every machine that opens the store reads the same history,
//! the storage sees one more small pack, and no connector needs to know a
//! new kind of object. Maintenance keeps these blobs though no snapshot
//! reaches them; `check` verifies them as any blob (and a damaged one is
//! left out of the history, named, not fatal to it).

use crate::blob::BlobKind;
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::pipeline;
use crate::store::Store;
use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Everything asked for was done.
    Success,
    /// Done, but some entries could not be read (see `errors`).
    Partial,
    /// Not done: see `reason`.
    Failure,
}

/// One job run. Field names are those of `kast report --json` and of the
/// JSON a job's webhook receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// The job's name (`kast backup` run by hand records none).
    pub job: String,
    /// The locations the job backs up, as snapshots name their sources.
    pub sources: Vec<String>,
    /// The machine the job ran on, so one store's report can tell hosts apart.
    pub host: String,
    /// Nanoseconds since the Unix epoch.
    pub started_ns: i64,
    /// Wall-clock length of the run, for spotting jobs that slow down.
    pub duration_ms: u64,
    /// Whether the run succeeded; what a webhook or a monitor alerts on.
    pub outcome: Outcome,
    /// Why a run failed, or what went wrong besides.
    #[serde(default)]
    pub reason: Option<String>,
    /// The snapshots the run made (hex ids).
    #[serde(default)]
    pub snapshots: Vec<String>,
    /// Bytes read from the sources.
    pub bytes_read: u64,
    /// Bytes the run added to the store after dedup and compression: what it cost.
    pub bytes_added: u64,
    /// Files no earlier snapshot had.
    pub files_new: u64,
    /// Files read again because they changed.
    pub files_changed: u64,
    /// Files taken from the parent snapshot without reading.
    pub files_unchanged: u64,
    /// Entries that could not be read.
    pub errors: u64,
    /// The first few per-file errors, for the report.
    #[serde(default)]
    pub error_samples: Vec<String>,
    /// Snapshots the job's retention removed (hex ids).
    #[serde(default)]
    pub removed: Vec<String>,
    /// What the job's check found, when it ran one.
    #[serde(default)]
    pub check: Option<CheckResult>,
}

/// A job's check, as its run record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// `full`, `fast`, or the share of packs read in full (`5%`).
    pub kind: String,
    /// No damage found.
    pub clean: bool,
    /// Snapshots walked.
    pub snapshots: u64,
    /// Packs the check covered (listed and, for some, read).
    pub packs: u64,
    /// Packs whose every byte was read.
    pub packs_read: u64,
    /// Bytes read and verified.
    pub bytes: u64,
    /// Damaged objects, and the first of them with its problem.
    pub damaged: u64,
    /// The first damaged object and its problem, for the report's one line.
    #[serde(default)]
    pub first_damage: Option<String>,
}

/// Stores `activity` in the store (a pack and a state of its own); returns
/// the record's id. Takes the shared lock, as a backup does.
pub fn record(store: &Store, activity: &Activity) -> Result<Id> {
    let bytes = serde_json::to_vec(activity)
        .map_err(|e| Error::InvalidArgument(format!("activity record: {e}")))?;
    let id = store.keys().blob_id(&bytes);
    let _lock = store.lock(false, "activity")?;
    let mut index = store.index()?;
    pipeline::write_blobs(store, &mut index, 1, |sink| {
        sink.store(id, BlobKind::Activity, bytes)
    })?;
    Ok(id)
}

/// What the activity log holds.
#[derive(Debug, Default)]
pub struct History {
    /// Every readable run, oldest first.
    pub runs: Vec<Activity>,
    /// Records that could not be read, with why (`check` names their packs).
    pub unreadable: Vec<(Id, Error)>,
}

/// Every run recorded in the store. A damaged record is listed apart, not
/// an error: the rest of the history still reports.
pub fn history(store: &Store) -> Result<History> {
    let index = store.index()?;
    let mut ids = Vec::new();
    index.for_each(|id, l| {
        if l.kind == BlobKind::Activity {
            ids.push(id);
        }
    });
    ids.sort();
    ids.dedup();
    let mut history = History::default();
    for id in ids {
        let read = store
            .read_indexed(&index, &id, BlobKind::Activity)
            .and_then(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| {
                    Error::corrupt(format!("activity record {}", id.short()), e.to_string())
                })
            });
        match read {
            Ok(activity) => history.runs.push(activity),
            Err(e) => history.unreadable.push((id, e)),
        }
    }
    history.runs.sort_by_key(|a: &Activity| a.started_ns);
    Ok(history)
}
