//! Put-only keys (docs/store-format.md, "Put-only keys"): a put-only key
//! adds backups that a full key restores exactly, reads nothing, and can
//! spoil no other key's backups.

use kast_test_support::common;

use common::*;
use kast_engine::check::{CheckOptions, check};
use kast_engine::crypto::Sealing;
use kast_engine::index::State;
use kast_engine::keys::{Capability, KdfParams};
use kast_engine::native::local::LocalDestination;
use kast_engine::storage::{LocalStorage, ObjectKind};
use kast_engine::{BackupOptions, Error, RestoreOptions, Store};
use std::sync::Arc;

const PUT_ONLY: &[u8] = b"only adds";

fn put_only_store(t: &TestStore) -> Store {
    t.store
        .add_key(
            PUT_ONLY,
            KdfParams::insecure_for_tests(),
            Capability::PutOnly,
        )
        .unwrap();
    let storage = Arc::new(LocalStorage::new(t.store_path()));
    Store::open(storage, PUT_ONLY, Some(t.dir.path().join("put-only-cache"))).unwrap()
}

fn is_put_only_error<T: std::fmt::Debug>(result: kast_engine::Result<T>) -> bool {
    matches!(result, Err(Error::PutOnly(_)))
}

#[test]
fn a_full_key_restores_exactly_what_a_put_only_key_backed_up() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 5, 3 << 20);
    let put_only = put_only_store(&t);
    assert!(put_only.is_put_only());
    let made = backup_dir(&put_only, &src);

    let full = t.reopen();
    let header = full.read_snapshot(&made.id).unwrap();
    assert_eq!(header.root, made.snapshot.root);
    let out = t.dir.path().join("out");
    let dest = LocalDestination::new(&out).unwrap();
    kast_engine::restore(&full, &made.id, b"", &dest, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &out);
    let report = check(&full, &CheckOptions::default()).unwrap();
    assert!(report.is_clean(), "{:?}", report.damage);
    assert!(report.packs > 0);
}

#[test]
fn a_put_only_key_is_refused_every_read_and_delete() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 6, 1 << 20);
    let by_full = t.backup(&src);
    let put_only = put_only_store(&t);
    let own = backup_dir(&put_only, &src);
    let out = t.dir.path().join("out");
    let dest = LocalDestination::new(&out).unwrap();
    for snapshot in [by_full.id, own.id] {
        assert!(is_put_only_error(put_only.read_snapshot(&snapshot)));
        assert!(is_put_only_error(kast_engine::restore(
            &put_only,
            &snapshot,
            b"",
            &dest,
            &RestoreOptions::default()
        )));
        assert!(is_put_only_error(
            kast_engine::maintenance::remove_snapshots(&put_only, &[snapshot])
        ));
    }
    assert!(is_put_only_error(kast_engine::browse::snapshots(&put_only)));
    let index = put_only.index().unwrap();
    assert!(is_put_only_error(kast_engine::browse::diff(
        &put_only,
        &index,
        &by_full.id,
        &own.id
    )));
    assert!(is_put_only_error(check(
        &put_only,
        &CheckOptions::default()
    )));
    assert!(is_put_only_error(kast_engine::maintenance::maintenance(
        &put_only,
        &Default::default()
    )));
    assert!(is_put_only_error(put_only.add_key(
        b"another",
        KdfParams::insecure_for_tests(),
        Capability::Full
    )));
    let name = t.store.list_keys().unwrap()[0].name.clone();
    assert!(is_put_only_error(put_only.remove_key(&name)));
    // Nothing was removed, nothing written out.
    assert_eq!(t.reopen().list_keys().unwrap().len(), 2);
    assert!(!out.join("a").exists() && std::fs::read_dir(&out).unwrap().next().is_none());
    let full = t.reopen();
    assert_eq!(
        kast_engine::browse::snapshots(&full)
            .unwrap()
            .snapshots
            .len(),
        2
    );
}

#[test]
fn keys_list_their_capability_and_a_local_put_only_key_opens_as_put_only() {
    let t = TestStore::new();
    let put_only = put_only_store(&t);
    let keys = t.store.list_keys().unwrap();
    let capabilities: Vec<Capability> = keys.iter().map(|k| k.capability).collect();
    assert!(capabilities.contains(&Capability::Full));
    assert!(capabilities.contains(&Capability::PutOnly));
    let text = put_only.local_key().to_text();
    assert!(text.starts_with("put-only "), "{text}");
    let key = kast_engine::keys::LocalKey::from_text(&text).unwrap();
    let storage = Arc::new(LocalStorage::new(t.store_path()));
    let again = Store::open_with_local_key(storage, key, None).unwrap();
    assert!(again.is_put_only());
}

#[test]
fn a_put_only_key_dedups_against_its_own_backups_only() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 7, 4 << 20);
    let by_full = t.backup(&src);
    assert!(by_full.snapshot.summary.blobs_added > 0);
    let put_only = put_only_store(&t);
    // The full key's blobs are not trusted: stored again, by this key.
    let first = backup_dir(&put_only, &src);
    assert_eq!(
        first.snapshot.summary.blobs_added,
        by_full.snapshot.summary.blobs_added
    );
    // Its own are.
    let second = backup_dir(&put_only, &src);
    assert_eq!(second.snapshot.summary.blobs_added, 0);
    // And a full key does not trust the put-only key's blobs either, but
    // still has its own.
    let full = t.reopen();
    let again = kast_engine::backup(
        &full,
        &kast_engine::native::local::LocalSource::new(&src).unwrap(),
        &BackupOptions {
            use_parent: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(again.snapshot.summary.blobs_added, 0);
}

#[test]
fn a_put_only_key_cannot_make_a_full_key_reuse_its_data() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 8, 2 << 20);
    let put_only = put_only_store(&t);
    // The attacker's move: a state of its own that claims, as plainly as
    // a full key's would, that garbage holds every blob of the tree.
    let own = backup_dir(&put_only, &src);
    let index = put_only.index().unwrap();
    let mut forged = State {
        packs: Vec::new(),
        sealing: Sealing::Store,
    };
    let mut entries = Vec::new();
    index.for_each(|id, l| {
        entries.push(kast_engine::index::PackEntry {
            id,
            kind: l.kind,
            offset: l.offset,
            length: l.length,
            raw_length: l.raw_length,
        })
    });
    let garbage = kast_engine::crypto::Id::of_object(b"garbage");
    forged.packs.push((garbage, entries));
    let sealed = forged.seal(put_only.keys()).unwrap();
    put_only
        .storage()
        .put(
            ObjectKind::State,
            &kast_engine::crypto::Id::of_object(&sealed).to_hex(),
            &sealed,
        )
        .unwrap();

    // A full key's backup stores everything itself and restores exactly.
    let full = t.reopen();
    let made = backup_dir(&full, &src);
    assert_eq!(
        made.snapshot.summary.blobs_added,
        own.snapshot.summary.blobs_added
    );
    let out = t.dir.path().join("out");
    let dest = LocalDestination::new(&out).unwrap();
    kast_engine::restore(&full, &made.id, b"", &dest, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &out);
    // Check names the lie.
    let report = check(&full, &CheckOptions::default()).unwrap();
    assert!(!report.is_clean());
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.object.contains(&garbage.short())),
        "{:?}",
        report.damage
    );
}

#[test]
fn a_put_only_key_reads_only_its_own_states() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 9, 1 << 20);
    t.backup(&src);
    let put_only = put_only_store(&t);
    // Before its first backup its index is empty: the full key's states
    // are not its own.
    assert!(put_only.index().unwrap().is_empty());
    backup_dir(&put_only, &src);
    // A second put-only key does not see the first one's blobs.
    t.store
        .add_key(
            b"second",
            KdfParams::insecure_for_tests(),
            Capability::PutOnly,
        )
        .unwrap();
    let storage = Arc::new(LocalStorage::new(t.store_path()));
    let second = Store::open(storage, b"second", None).unwrap();
    assert!(second.index().unwrap().is_empty());
    assert!(!put_only.index().unwrap().is_empty());
}

#[test]
fn full_and_put_only_keys_see_each_others_locks() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 10, 1 << 20);
    let put_only = put_only_store(&t);
    // Opened once the store has a put-only key, a full key seals its
    // locks so the put-only key sees them.
    let full = t.reopen();
    let exclusive = full.lock(true, "maintenance").unwrap();
    let refused = kast_engine::backup(
        &put_only,
        &kast_engine::native::local::LocalSource::new(&src).unwrap(),
        &BackupOptions::default(),
    );
    assert!(
        matches!(refused, Err(Error::Locked(_))),
        "{:?}",
        refused.err()
    );
    drop(exclusive);
    let shared = put_only.lock(false, "backup").unwrap();
    assert!(matches!(
        full.lock(true, "maintenance"),
        Err(Error::Locked(_))
    ));
    drop(shared);
    backup_dir(&put_only, &src);
}

#[test]
fn maintenance_adopts_what_put_only_keys_wrote_and_keeps_their_dedup() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 12, 3 << 20);
    let put_only = put_only_store(&t);
    let first = backup_dir(&put_only, &src);
    std::fs::write(src.join("changed"), vec![7u8; 300_000]).unwrap();
    let second = backup_dir(&put_only, &src);
    assert!(second.snapshot.summary.blobs_added > 0);

    let full = t.reopen();
    kast_engine::maintenance::remove_snapshots(&full, &[first.id]).unwrap();
    let options = kast_engine::maintenance::MaintenanceOptions {
        repack_below: 1.0,
        ..Default::default()
    };
    let report = kast_engine::maintenance::maintenance(&full, &options).unwrap();
    assert!(report.packs_adopted > 0, "{report:?}");
    assert!(report.rejected.is_empty(), "{report:?}");
    let checked = check(&full, &CheckOptions::default()).unwrap();
    assert!(checked.is_clean(), "{:?}", checked.damage);

    // The full key restores the put-only backup exactly and now reuses its
    // data instead of storing it again.
    let out = t.dir.path().join("out");
    let dest = LocalDestination::new(&out).unwrap();
    kast_engine::restore(&full, &second.id, b"", &dest, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &out);
    let by_full = backup_dir(&t.reopen(), &src);
    assert_eq!(by_full.snapshot.summary.blobs_added, 0);
    // The put-only key still trusts its own data (its states were kept, or
    // written again without what maintenance dropped).
    let storage = Arc::new(LocalStorage::new(t.store_path()));
    let put_only =
        Store::open(storage, PUT_ONLY, Some(t.dir.path().join("put-only-cache"))).unwrap();
    let again = backup_dir(&put_only, &src);
    assert_eq!(again.snapshot.summary.blobs_added, 0);
    // A second run has nothing left to adopt.
    let report = kast_engine::maintenance::maintenance(&t.reopen(), &options).unwrap();
    assert_eq!(report.packs_adopted, 0, "{report:?}");
    assert!(
        check(&t.reopen(), &CheckOptions::default())
            .unwrap()
            .is_clean()
    );
}

#[test]
fn maintenance_does_not_adopt_what_does_not_check_out() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 13, 1 << 20);
    let put_only = put_only_store(&t);
    let made = backup_dir(&put_only, &src);
    // A put-only state that lists the real packs with made-up blobs.
    let index = put_only.index().unwrap();
    let mut packs: std::collections::BTreeMap<kast_engine::crypto::Id, Vec<_>> = Default::default();
    index.for_each(|_, l| {
        packs
            .entry(l.pack)
            .or_default()
            .push(kast_engine::index::PackEntry {
                id: kast_engine::crypto::Id([0x5a; 32]),
                kind: l.kind,
                offset: l.offset,
                length: l.length,
                raw_length: l.raw_length,
            })
    });
    let forged = State {
        packs: packs.into_iter().collect(),
        sealing: put_only.keys().sealing(),
    };
    let sealed = forged.seal(put_only.keys()).unwrap();
    let name = kast_engine::crypto::Id::of_object(&sealed).to_hex();
    put_only
        .storage()
        .put(ObjectKind::State, &name, &sealed)
        .unwrap();

    let full = t.reopen();
    let report = kast_engine::maintenance::maintenance(&full, &Default::default()).unwrap();
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    // The real backup was adopted, and still restores exactly.
    assert!(report.packs_adopted > 0);
    let out = t.dir.path().join("out");
    let dest = LocalDestination::new(&out).unwrap();
    kast_engine::restore(&full, &made.id, b"", &dest, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &out);
    // The forged state is still there for check to name.
    assert!(full.storage().get(ObjectKind::State, &name).is_ok());
    assert!(!check(&full, &CheckOptions::default()).unwrap().is_clean());
}

#[test]
fn a_put_only_key_skips_unchanged_files_with_its_own_copy_of_its_last_tree() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 14, 2 << 20);
    let put_only = put_only_store(&t);
    let first = backup_dir(&put_only, &src);
    assert!(first.snapshot.summary.bytes_read > 0);
    // Nothing changed: nothing read.
    let second = backup_dir(&put_only, &src);
    assert_eq!(second.snapshot.summary.bytes_read, 0);
    assert_eq!(
        second.snapshot.summary.files_unchanged,
        first.snapshot.summary.files
    );
    assert_eq!(second.snapshot.root, first.snapshot.root);
    // One file changed: only it is read, and the result restores exactly.
    let changed = src.join("grown");
    std::fs::write(&changed, vec![9u8; 70_000]).unwrap();
    let third = backup_dir(&put_only, &src);
    assert_eq!(third.snapshot.summary.bytes_read, 70_000);
    let full = t.reopen();
    let out = t.dir.path().join("out");
    let dest = LocalDestination::new(&out).unwrap();
    kast_engine::restore(&full, &third.id, b"", &dest, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &out);
    // Only the latest backup's trees are kept on this machine.
    let kept = t.dir.path().join("put-only-cache");
    let trees: Vec<_> = walk_files(&kept)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("own-trees"))
        .collect();
    let dirs = third.snapshot.summary.dirs as usize;
    assert!(
        !trees.is_empty() && trees.len() <= dirs + 1,
        "{} trees for {dirs} dirs",
        trees.len()
    );
}

fn walk_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_put_only_key_cannot_pass_its_snapshot_off_as_a_full_keys() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 15, 1 << 20);
    let real = t.backup(&src);
    let put_only = put_only_store(&t);
    // The attacker's header claims the same host and source, later, over
    // a tree of its own.
    let evil = t.dir.path().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(evil.join("passwd"), "root::0:0::/:/bin/sh\n").unwrap();
    let fake = kast_engine::backup(
        &put_only,
        &kast_engine::native::local::LocalSource::new(&evil).unwrap(),
        &BackupOptions {
            source_name: Some(real.snapshot.source.clone()),
            host: Some(real.snapshot.host.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let full = t.reopen();
    let listed = kast_engine::browse::snapshots(&full).unwrap().snapshots;
    let writer_of = |id| {
        listed
            .iter()
            .find(|(i, _)| *i == id)
            .unwrap()
            .1
            .writer
            .clone()
    };
    assert_eq!(writer_of(real.id), None);
    assert_eq!(writer_of(fake.id), put_only.put_only_writer());
    // `latest` of that source is refused as ambiguous, naming the key.
    let filter = kast_engine::browse::SnapshotFilter {
        source: Some(real.snapshot.source.clone()),
        host: Some(real.snapshot.host.clone()),
        ..Default::default()
    };
    match kast_engine::browse::find(&full, "latest", &filter) {
        Err(Error::AmbiguousLatest(said)) => assert!(said.contains("put-only key"), "{said}"),
        other => panic!("latest was {other:?}"),
    }
    // Retention never weighs the two against each other.
    let policy = kast_engine::retention::Policy {
        last: 1,
        ..Default::default()
    };
    assert!(
        kast_engine::retention::plan(&policy, &listed)
            .remove
            .is_empty()
    );
    // A full key's next backup takes its own snapshot as the parent.
    let again = backup_dir(&full, &src);
    assert_eq!(again.snapshot.summary.bytes_read, 0);
    // A header whose writer is swapped for another's no longer opens.
    let sealed = full
        .storage()
        .get(ObjectKind::Snapshot, &fake.id.to_hex())
        .unwrap();
    let mut swapped = sealed.clone();
    swapped[..16].copy_from_slice(&[0x11; 16]);
    let name = kast_engine::crypto::Id::of_object(&swapped);
    full.storage()
        .put(ObjectKind::Snapshot, &name.to_hex(), &swapped)
        .unwrap();
    assert!(matches!(
        full.read_snapshot(&name),
        Err(Error::Corrupt { .. })
    ));
}
