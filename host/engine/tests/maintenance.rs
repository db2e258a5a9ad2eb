//! Removing snapshots and reclaiming space never harms what remains.

use kast_test_support::common;

use common::*;
use kast_engine::activity::{self, Activity, Outcome};
use kast_engine::blob::BlobKind;
use kast_engine::check::{CheckOptions, check};
use kast_engine::index::State;
use kast_engine::maintenance::{MaintenanceOptions, maintenance, remove_snapshots};
use kast_engine::storage::ObjectKind;
use kast_engine::{BackupOptions, Error};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn now_options() -> MaintenanceOptions {
    MaintenanceOptions {
        grace: Duration::ZERO,
        ..Default::default()
    }
}

#[test]
fn rm_then_maintenance_reclaims_space_and_keeps_the_rest() {
    let t = TestStore::new();
    let a = t.dir.path().join("a");
    let b = t.dir.path().join("b");
    generate_tree(&a, 1, 30 << 20);
    generate_tree(&b, 2, 5 << 20);
    let snap_a = t.backup(&a);
    let snap_b = t.backup(&b);
    let before = t.pack_bytes();

    remove_snapshots(&t.store, &[snap_a.id]).unwrap();
    // rm alone deletes nothing but the header.
    assert_eq!(t.pack_bytes(), before);
    let report = maintenance(&t.store, &now_options()).unwrap();
    let after = t.pack_bytes();
    assert!(
        before - after >= 30 << 20,
        "freed only {} bytes: {report:?}",
        before - after
    );
    assert!(report.bytes_freed >= 30 << 20);
    assert_eq!(t.store.storage().list(ObjectKind::State).unwrap().len(), 1);

    let store = t.reopen();
    assert!(check(&store, &CheckOptions::default()).unwrap().is_clean());
    let out = t.dir.path().join("restored-b");
    let dest = kast_engine::native::local::LocalDestination::new(&out).unwrap();
    let r = kast_engine::restore(&store, &snap_b.id, b"", &dest, &Default::default()).unwrap();
    assert!(r.errors.is_empty());
    assert_same_tree(&b, &out);

    // Idempotent: a second run finds nothing to do.
    let again = maintenance(&store, &now_options()).unwrap();
    assert_eq!(
        (again.packs_deleted, again.packs_repacked, again.bytes_freed),
        (0, 0, 0)
    );
    assert!(matches!(
        remove_snapshots(&store, &[snap_a.id]),
        Err(Error::NoSuchSnapshot(_))
    ));
}

#[test]
fn half_dead_packs_are_repacked_and_everything_still_restores() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // Many small files share packs; replacing half of them leaves packs half dead.
    let mut rng = Rng(3);
    for i in 0..400 {
        std::fs::write(src.join(format!("f{i}")), rng.bytes(60_000)).unwrap();
    }
    let first = t.backup(&src);
    for i in (0..400).step_by(2) {
        std::fs::write(src.join(format!("f{i}")), rng.bytes(60_000)).unwrap();
    }
    let second = t.backup(&src);
    // Small chunks share frames (groups): half dead groups too.
    assert!(
        grouped_blobs(&t.store) >= 400,
        "{}",
        grouped_blobs(&t.store)
    );
    remove_snapshots(&t.store, &[first.id]).unwrap();
    let report = maintenance(&t.store, &now_options()).unwrap();
    assert!(report.packs_repacked >= 1, "{report:?}");
    assert!(report.blobs_dropped >= 200, "{report:?}");
    // The live members were grouped anew, without the dead ones.
    assert!(
        grouped_blobs(&t.store) >= 300,
        "{}",
        grouped_blobs(&t.store)
    );
    assert!(
        check(&t.store, &CheckOptions::default())
            .unwrap()
            .is_clean()
    );
    let out = t.dir.path().join("out");
    t.restore_to(&second.id, &out);
    assert_same_tree(&src, &out);
    // The packs now hold about one copy of the data, not two.
    assert!(
        t.pack_bytes() < 400 * 60_000 * 13 / 10,
        "{}",
        t.pack_bytes()
    );
}

/// How many data blobs share their frame with another.
fn grouped_blobs(store: &kast_engine::Store) -> usize {
    let mut frames = std::collections::HashMap::new();
    store.index().unwrap().for_each(|_, l| {
        if l.kind == BlobKind::Data {
            *frames.entry((l.pack, l.offset)).or_insert(0) += 1;
        }
    });
    frames.values().filter(|&&n| n > 1).sum()
}

#[test]
fn unlisted_packs_wait_out_the_grace_period() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 4, 0);
    let snap = t.backup(&src);
    // A pack no state lists, as an interrupted backup on another machine
    // (or one still running) leaves it.
    let stray = kast_engine::crypto::Id::of_object(b"stray").to_hex();
    t.store
        .storage()
        .put(ObjectKind::Pack, &stray, b"stray")
        .unwrap();
    let first = maintenance(&t.store, &MaintenanceOptions::default()).unwrap();
    assert_eq!((first.orphans_marked, first.orphans_deleted), (1, 0));
    assert!(t.store.storage().get(ObjectKind::Pack, &stray).is_ok());
    let second = maintenance(&t.store, &now_options()).unwrap();
    assert_eq!(second.orphans_deleted, 1);
    assert!(t.store.storage().get(ObjectKind::Pack, &stray).is_err());
    assert!(
        check(&t.store, &CheckOptions::default())
            .unwrap()
            .is_clean()
    );
    let out = t.dir.path().join("out");
    t.restore_to(&snap.id, &out);
    assert_same_tree(&src, &out);
}

#[test]
fn maintenance_waits_for_running_backups() {
    let t = TestStore::new();
    let held = t.store.lock(false, "backup").unwrap();
    let err = maintenance(&t.store, &now_options()).unwrap_err();
    assert!(matches!(err, Error::Locked(_)), "{err}");
    assert!(
        err.to_string().contains("shared lock held by backup"),
        "{err}"
    );
    drop(held);
    maintenance(&t.store, &now_options()).unwrap();
    // And a backup cannot start while maintenance holds the store.
    let held = t.store.lock(true, "maintenance").unwrap();
    let src = t.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let source = kast_engine::native::local::LocalSource::new(&src).unwrap();
    let err = kast_engine::backup(&t.store, &source, &BackupOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Locked(_)), "{err}");
    drop(held);
    assert!(
        t.store.storage().list(ObjectKind::Lock).unwrap().is_empty(),
        "locks are released"
    );
}

#[test]
fn an_interrupted_backup_keeps_what_it_stored_for_the_next_one() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..8 {
        write_random_file(&src.join(format!("f{i}")), 8 << 20, i);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    struct CancelAfter(Arc<AtomicBool>, std::sync::atomic::AtomicU64);
    impl kast_engine::Progress for CancelAfter {
        fn bytes(&self, n: u64) {
            let seen = self.1.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            if seen > 40 << 20 {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    let options = BackupOptions {
        cancel: Some(cancel.clone()),
        progress: Arc::new(CancelAfter(cancel.clone(), Default::default())),
        ..Default::default()
    };
    let source = kast_engine::native::local::LocalSource::new(&src).unwrap();
    let err = kast_engine::backup(&t.store, &source, &options).unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert!(
        t.store
            .storage()
            .list(ObjectKind::Snapshot)
            .unwrap()
            .is_empty()
    );
    let stored_before = t.pack_bytes();
    assert!(
        stored_before > 16 << 20,
        "packs written before the interrupt are kept"
    );

    let done = t.backup(&src);
    assert!(
        done.snapshot.summary.bytes_added < (64 << 20) - stored_before + (2 << 20),
        "{:?}",
        done.snapshot.summary
    );
    assert!(
        check(&t.store, &CheckOptions::default())
            .unwrap()
            .is_clean()
    );
    let out = t.dir.path().join("out");
    t.restore_to(&done.id, &out);
    assert_same_tree(&src, &out);
}

/// A job run's record, as the activity log keeps it.
fn run_record(job: &str, at: i64, outcome: Outcome) -> Activity {
    Activity {
        job: job.into(),
        sources: vec!["fs:///home/me".into()],
        host: "laptop".into(),
        started_ns: at,
        duration_ms: 1200,
        outcome,
        reason: Some("source vanished".into()).filter(|_| outcome == Outcome::Failure),
        snapshots: Vec::new(),
        bytes_read: 10,
        bytes_added: 5,
        files_new: 1,
        files_changed: 2,
        files_unchanged: 3,
        errors: 0,
        error_samples: Vec::new(),
        removed: Vec::new(),
        check: None,
    }
}

#[test]
fn the_activity_log_outlives_snapshot_removal_and_maintenance() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 3, 1 << 20);
    let snap = t.backup(&src);
    let later = run_record("home", 2_000, Outcome::Failure);
    let earlier = run_record("home", 1_000, Outcome::Success);
    activity::record(&t.store, &later).unwrap();
    activity::record(&t.store, &earlier).unwrap();
    assert_eq!(
        activity::history(&t.store).unwrap().runs,
        vec![earlier.clone(), later.clone()]
    );
    // No snapshot reaches the records; removing every snapshot and
    // reclaiming space keeps them, and check verifies them.
    remove_snapshots(&t.store, &[snap.id]).unwrap();
    maintenance(&t.store, &now_options()).unwrap();
    let store = t.reopen();
    assert_eq!(
        activity::history(&store).unwrap().runs,
        vec![earlier, later.clone()]
    );
    assert!(check(&store, &CheckOptions::default()).unwrap().is_clean());
    // A flipped byte in one record: check names the pack, and the
    // history still holds the other record, the damaged one set apart.
    let mut holding = Vec::new();
    store.index().unwrap().for_each(|_, l| {
        if l.kind == BlobKind::Activity {
            holding.push((l.pack, l.offset));
        }
    });
    assert_eq!(holding.len(), 2);
    let (pack, offset) = holding[0];
    let hex = pack.to_hex();
    let file = t.store_path().join("packs").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[offset as usize + 30] ^= 0x10;
    std::fs::write(&file, bytes).unwrap();
    let store = t.reopen();
    let history = activity::history(&store).unwrap();
    assert_eq!((history.runs.len(), history.unreadable.len()), (1, 1));
    let report = check(&store, &CheckOptions::default()).unwrap();
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.object.contains(&pack.short())),
        "{report:?}"
    );
}

/// Every state's packs, as (pack, how many states list it, blobs listed).
/// Every state of the store, opened, with its object name.
fn states_of(store: &kast_engine::Store) -> Vec<(String, State)> {
    let mut states = Vec::new();
    for object in store.storage().list(ObjectKind::State).unwrap() {
        let name = kast_engine::crypto::Id::from_hex(&object.name).unwrap();
        let sealed = store
            .storage()
            .get(ObjectKind::State, &object.name)
            .unwrap();
        let opened = State::open(store.keys(), &name, &sealed).unwrap().unwrap();
        states.push((object.name, opened.state));
    }
    states
}

fn listed_packs(store: &kast_engine::Store) -> std::collections::BTreeMap<String, (usize, usize)> {
    let mut packs = std::collections::BTreeMap::new();
    for (_, state) in states_of(store) {
        for (pack, entries) in state.packs {
            let slot: &mut (usize, usize) = packs.entry(pack.to_hex()).or_default();
            slot.0 += 1;
            slot.1 += entries.len();
        }
    }
    packs
}

#[test]
fn a_pack_two_states_list_in_parts_keeps_every_blob_and_is_listed_once() {
    // After a crash, or a store's states written by two runs, one pack may
    // be listed by two states, each with some of its blobs. Maintenance
    // must count the union: deciding a pack's fate from one listing would
    // delete blobs only the other lists.
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 5, 20 << 20);
    let first = t.backup(&src);
    let mut states = states_of(&t.store);
    assert_eq!(states.len(), 1);
    let (name, whole) = states.remove(0);
    let blobs: usize = whole.packs.iter().map(|(_, e)| e.len()).sum();
    // Two states: the first half of each pack's entries, and the second.
    let (mut a, mut b) = (whole.clone(), whole.clone());
    for ((_, ea), (_, eb)) in a.packs.iter_mut().zip(b.packs.iter_mut()) {
        let half = ea.len() / 2;
        ea.truncate(half);
        eb.drain(..half);
    }
    for part in [&a, &b] {
        let sealed = part.seal(t.store.keys()).unwrap();
        let id = kast_engine::crypto::Id::of_object(&sealed);
        t.store
            .storage()
            .put(ObjectKind::State, &id.to_hex(), &sealed)
            .unwrap();
    }
    t.store.storage().delete(ObjectKind::State, &name).unwrap();
    let store = t.reopen();
    assert!(
        listed_packs(&store)
            .values()
            .all(|(states, _)| *states == 2)
    );

    let report = maintenance(&store, &now_options()).unwrap();
    assert_eq!(
        (report.packs_deleted, report.blobs_dropped),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(report.states_after, 1, "{report:?}");
    let listed = listed_packs(&store);
    assert!(
        listed.values().all(|(states, _)| *states == 1),
        "{listed:?}"
    );
    assert_eq!(listed.values().map(|(_, n)| n).sum::<usize>(), blobs);
    let store = t.reopen();
    assert!(check(&store, &CheckOptions::default()).unwrap().is_clean());
    let out = t.dir.path().join("out");
    t.restore_to(&first.id, &out);
    assert_same_tree(&src, &out);
}

#[test]
fn small_states_are_merged_and_a_lone_one_is_left_as_it_is() {
    // Maintenance writes again only the states that list a dropped pack,
    // and merges the small ones (below half of a state's most blobs).
    let t = TestStore::new();
    let (a, b) = (t.dir.path().join("a"), t.dir.path().join("b"));
    generate_tree(&a, 6, 8 << 20);
    generate_tree(&b, 7, 8 << 20);
    t.backup(&a);
    let snap_b = t.backup(&b);
    let before: std::collections::BTreeSet<String> = t
        .store
        .storage()
        .list(ObjectKind::State)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(before.len(), 2);
    // Nothing dropped and two small states: they are merged into one.
    let report = maintenance(&t.store, &now_options()).unwrap();
    assert_eq!(
        (report.states_before, report.states_after),
        (2, 1),
        "{report:?}"
    );
    // One small state, nothing dropped: nothing to do, the state stays.
    let kept = t.store.storage().list(ObjectKind::State).unwrap();
    let again = maintenance(&t.store, &now_options()).unwrap();
    assert_eq!(
        (again.states_before, again.states_after),
        (1, 1),
        "{again:?}"
    );
    assert_eq!(t.store.storage().list(ObjectKind::State).unwrap(), kept);
    let out = t.dir.path().join("out");
    t.restore_to(&snap_b.id, &out);
    assert_same_tree(&b, &out);
}
