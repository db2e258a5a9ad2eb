//! The index: which pack holds each blob. It is the union of the store's
//! states, kept in a local cache as memory-mapped sorted runs (one per state,
//! merged once there are too many), so opening it costs a directory listing
//! and a lookup touches a page or two, however large the store.

mod bloom;
mod run;
mod state;

pub use crate::pack::PackEntry;
pub use run::BlobLocation;
pub(crate) use run::{MAX_BLOB, Record, Records};
pub use state::{OpenedState, State};

use crate::crypto::{Id, Keys};
use crate::error::{Error, Result};
use crate::storage::{ObjectKind, Storage};
use run::Run;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// More runs than this are merged, the two smallest at a time, whatever
/// their sizes. Below it only runs of one size class merge (see
/// [`Index::compact`]), which leaves small runs at about one per class.
const MAX_RUNS: usize = 24;

/// A run's size class: runs of one class merge. Powers of two, so a
/// record is rewritten at most once per class it climbs.
fn size_class(run: &Run) -> u32 {
    run.record_count().max(1).ilog2()
}

/// A state that could not be read while loading the index.
#[derive(Debug)]
pub struct DamagedState {
    /// The state's object name.
    pub name: String,
    /// Why it could not be read.
    pub error: Error,
}

/// The merged index of a store.
pub struct Index {
    runs: Vec<Run>,
    dir: Option<PathBuf>,
    /// States that could not be read; their blobs are unknown to this index.
    pub damaged: Vec<DamagedState>,
}

impl Index {
    /// An index of nothing, in memory: for writing blobs that must be
    /// written even though the store already has them (a repack).
    pub(crate) fn empty() -> Index {
        Index {
            runs: Vec::new(),
            dir: None,
            damaged: Vec::new(),
        }
    }

    /// Brings the cache in `dir` (or memory, when `None`) in line with the
    /// store's states: runs for states that are gone are dropped, missing
    /// states are read and added.
    pub fn load(storage: &dyn Storage, keys: &Keys, dir: Option<&Path>) -> Result<Index> {
        let names = storage.list(ObjectKind::State)?;
        let current: HashSet<Id> = names.iter().filter_map(|o| Id::from_hex(&o.name)).collect();
        let mut runs = Vec::new();
        let mut covered = HashSet::new();
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::Cache {
                path: dir.display().to_string(),
                source: e,
            })?;
            for path in run_files(dir)? {
                let keep = Run::open(&path).ok().filter(|run| {
                    let states = run.states();
                    states
                        .iter()
                        .all(|s| current.contains(s) && !covered.contains(s))
                });
                match keep {
                    Some(run) => {
                        covered.extend(run.states());
                        runs.push(run);
                    }
                    None => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        let mut index = Index {
            runs,
            dir: dir.map(Path::to_path_buf),
            damaged: Vec::new(),
        };
        for name in current.iter().filter(|s| !covered.contains(*s)) {
            let loaded = read_state(storage, keys, name);
            match loaded {
                Ok(Some(opened)) => index.add_state(*name, &opened.state, opened.trusted)?,
                // Another put-only key's: covered by an empty run, so it is
                // not fetched again.
                Ok(None) => index.add_state(*name, &State::default(), false)?,
                Err(error) => index.damaged.push(DamagedState {
                    name: name.to_hex(),
                    error,
                }),
            }
        }
        index.compact()?;
        Ok(index)
    }

    /// Adds a state just written (or just read) as a run of its own;
    /// `trusted` says whether backups may reuse its blobs.
    pub fn add_state(&mut self, name: Id, state: &State, trusted: bool) -> Result<()> {
        let records = state_records(state, trusted);
        let run = match &self.dir {
            Some(dir) => Run::create(dir, &[name], records)?,
            None => Run::in_memory(&[name], records)?,
        };
        self.runs.push(run);
        Ok(())
    }

    /// The two smallest runs merge while they are of one size class, as a
    /// binary counter carries (or while there are too many): a record is
    /// rewritten about log₂ times in all, and a small backup merges its run
    /// with runs of its own size only. Merging the two smallest whenever
    /// more than eight were left made every one-file backup of a 50 M-blob
    /// store, whose runs were eight of 5 M records, rewrite one of them:
    /// 0.6 to 1.1 s each.
    fn compact(&mut self) -> Result<()> {
        loop {
            self.runs
                .sort_by_key(|run| std::cmp::Reverse(run.record_count()));
            let [.., larger, smaller] = &self.runs[..] else {
                return Ok(());
            };
            if size_class(larger) != size_class(smaller) && self.runs.len() <= MAX_RUNS {
                return Ok(());
            }
            let smallest = self.runs.split_off(self.runs.len() - 2);
            let merged = Run::merge(self.dir.as_deref(), &smallest)?;
            for old in smallest {
                if let Some(path) = &old.path
                    && Some(path) != merged.path.as_ref()
                {
                    let _ = std::fs::remove_file(path);
                }
            }
            self.runs.push(merged);
        }
    }

    /// Where blob `id` is, if any state knows it: a trusted record when
    /// there is one (another state may list it wrongly; reading checks).
    pub fn lookup(&self, id: &Id) -> Option<BlobLocation> {
        let mut untrusted = None;
        for run in self.runs.iter().rev() {
            for location in run.locations_of(id) {
                if location.trusted {
                    return Some(location);
                }
                untrusted.get_or_insert(location);
            }
        }
        untrusted
    }

    /// Whether a backup may reuse the stored blob instead of storing it:
    /// only through a record this client trusts.
    pub fn reusable(&self, id: &Id) -> bool {
        self.runs
            .iter()
            .any(|run| run.locations_of(id).iter().any(|l| l.trusted))
    }

    /// Every record, run by run (a blob stored twice appears twice). The
    /// pages read are released as the scan goes, so a scan of a large
    /// index does not become the process's memory.
    pub fn for_each(&self, mut f: impl FnMut(Id, BlobLocation)) {
        for run in &self.runs {
            for i in 0..run.record_count() {
                f(run.id(i), run.location(i));
                if (i + 1) % run::SCAN_RELEASE == 0 {
                    run.release(i + 1 - run::SCAN_RELEASE..i + 1);
                }
            }
            run.release(0..run.record_count());
        }
    }

    /// Number of records (duplicates included).
    pub fn len(&self) -> usize {
        self.runs.iter().map(Run::record_count).sum()
    }

    /// True for a store with no blobs yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many runs back the index (for diagnostics and tests).
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }
}

/// Reads and opens one state; a put-only key first reads the 16 bytes that
/// say whose it is, so it never downloads another key's states.
fn read_state(storage: &dyn Storage, keys: &Keys, name: &Id) -> Result<Option<OpenedState>> {
    if keys.is_put_only() {
        let prefix = storage.get_range(ObjectKind::State, &name.to_hex(), 0, 16)?;
        if !keys.may_read_state(&prefix) {
            return Ok(None);
        }
    }
    let sealed = storage.get(ObjectKind::State, &name.to_hex())?;
    State::open(keys, name, &sealed)
}

fn state_records(state: &State, trusted: bool) -> Records {
    let count = state.packs.iter().map(|(_, entries)| entries.len()).sum();
    let mut records = Records::with_capacity(count);
    state
        .packs
        .iter()
        .flat_map(|(pack, entries)| {
            entries.iter().map(move |e| Record {
                id: e.id,
                location: BlobLocation {
                    pack: *pack,
                    offset: e.offset,
                    length: e.length,
                    raw_length: e.raw_length,
                    kind: e.kind,
                    sealing: state.sealing,
                    trusted,
                },
            })
        })
        .for_each(|r| records.push(&r));
    records
}

fn run_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Cache {
        path: dir.display().to_string(),
        source: e,
    })?;
    Ok(entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "run"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobKind;
    use crate::pack::PackEntry;

    fn state(seed: u8, n: usize) -> State {
        let entries = (0..n)
            .map(|i| PackEntry {
                id: Id(*blake3::hash(&[seed, (i % 256) as u8, (i / 256) as u8]).as_bytes()),
                kind: if i % 2 == 0 {
                    BlobKind::Data
                } else {
                    BlobKind::Tree
                },
                offset: i as u32 * 10,
                length: 10,
                raw_length: 5,
            })
            .collect();
        State {
            packs: vec![(Id([seed; 32]), entries)],
            sealing: crate::crypto::Sealing::Store,
        }
    }

    proptest::proptest! {
        #[test]
        fn a_run_returns_every_record_it_was_given(
            raw in proptest::collection::vec((proptest::prelude::any::<[u8; 32]>(), 0u8..4, proptest::prelude::any::<u32>(), 0u32..(1 << 30), 0u8..3), 0..200)
        ) {
            let records: Vec<Record> = raw.iter().map(|(id, pack, offset, raw_length, kind)| Record {
                id: Id(*id),
                location: BlobLocation {
                    pack: Id([*pack; 32]),
                    offset: *offset,
                    length: offset.wrapping_mul(3),
                    raw_length: *raw_length,
                    kind: BlobKind::from_u8(*kind).unwrap(),
                    sealing: if *pack % 2 == 0 { crate::crypto::Sealing::Store } else { crate::crypto::Sealing::Session([*pack; 32]) },
                    trusted: *pack < 2,
                },
            }).collect();
            let run = Run::in_memory(&[Id([9; 32])], records.iter().collect()).unwrap();
            proptest::prop_assert_eq!(run.states(), vec![Id([9; 32])]);
            for r in &records {
                let i = run.find(&r.id).expect("present");
                proptest::prop_assert_eq!(run.location(i), r.location);
            }
        }
    }

    #[test]
    fn threads_building_the_same_runs_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let states: Vec<State> = (0..12).map(|s| state(s, 50)).collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..20 {
                        let mut index = Index {
                            runs: vec![],
                            dir: Some(dir.path().to_path_buf()),
                            damaged: vec![],
                        };
                        for (i, s) in states.iter().enumerate() {
                            index.add_state(Id([i as u8 + 100; 32]), s, true).unwrap();
                        }
                        index.compact().unwrap();
                        assert_eq!(index.len(), 12 * 50);
                    }
                });
            }
        });
    }

    /// Small backups after a large one merge among themselves: the large
    /// run is not rewritten each time the runs outnumber the limit.
    #[test]
    fn compaction_leaves_the_large_run_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = Index {
            runs: vec![],
            dir: Some(dir.path().to_path_buf()),
            damaged: vec![],
        };
        index.add_state(Id([1; 32]), &state(0, 5000), true).unwrap();
        let large = index.runs[0].path.clone();
        for i in 0..40u8 {
            index
                .add_state(Id([i + 2; 32]), &state(i + 1, 3), true)
                .unwrap();
            index.compact().unwrap();
            assert!(index.run_count() <= MAX_RUNS);
        }
        assert_eq!(index.len(), 5000 + 40 * 3);
        assert!(
            index
                .runs
                .iter()
                .any(|run| run.path == large && run.record_count() == 5000)
        );
    }

    /// Large runs of one size, as large backups leave them, then many
    /// small backups: the small runs merge among themselves, the large
    /// ones are never rewritten, and few runs are left.
    #[test]
    fn small_backups_never_rewrite_large_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = Index {
            runs: vec![],
            dir: Some(dir.path().to_path_buf()),
            damaged: vec![],
        };
        for i in 0..8u8 {
            let run = Run::create(
                dir.path(),
                &[Id([i; 32])],
                state_records(&state(i, 3000), true),
            );
            index.runs.push(run.unwrap());
        }
        let large: Vec<_> = index.runs.iter().map(|run| run.path.clone()).collect();
        for i in 0..200u16 {
            let mut name = [0xee; 32];
            name[..2].copy_from_slice(&i.to_le_bytes());
            index
                .add_state(Id(name), &state(9 + i as u8, 2), true)
                .unwrap();
            index.compact().unwrap();
            for path in &large {
                assert!(index.runs.iter().any(|run| &run.path == path), "rewritten");
            }
        }
        assert!(index.run_count() <= 8 + 9, "{} runs", index.run_count());
        assert_eq!(index.len(), 8 * 3000 + 200 * 2);
    }

    #[test]
    fn runs_find_every_record_and_merge_losslessly() {
        let dir = tempfile::tempdir().unwrap();
        for cache in [Some(dir.path()), None] {
            let mut index = Index {
                runs: vec![],
                dir: cache.map(Path::to_path_buf),
                damaged: vec![],
            };
            let states: Vec<State> = (0..12).map(|s| state(s, 300)).collect();
            for (i, s) in states.iter().enumerate() {
                index.add_state(Id([i as u8 + 100; 32]), s, true).unwrap();
            }
            index.compact().unwrap();
            // Twelve of one size carry as a binary counter: 8 + 4.
            assert_eq!(index.run_count(), 2);
            assert_eq!(index.len(), 12 * 300);
            for s in &states {
                for e in &s.packs[0].1 {
                    let l = index.lookup(&e.id).expect("present");
                    assert_eq!(
                        (l.pack, l.offset, l.kind, l.raw_length),
                        (s.packs[0].0, e.offset, e.kind, 5)
                    );
                }
            }
            assert!(index.lookup(&Id([0xff; 32])).is_none());
            assert!(index.lookup(&Id([0; 32])).is_none());
        }
    }
}
