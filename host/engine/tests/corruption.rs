//! Damage is detected, named, and contained: a bad passphrase, a missing
//! store, and flipped or truncated objects of every kind give clear errors,
//! `check` names what they affect, and snapshots that do not use them still
//! restore.

use kast_test_support::common;

use common::*;
use kast_engine::check::{CheckOptions, CheckReport, check};
use kast_engine::storage::{LocalStorage, ObjectKind, Storage};
use kast_engine::{Error, Store};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

fn packs(t: &TestStore) -> HashSet<String> {
    t.store
        .storage()
        .list(ObjectKind::Pack)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect()
}

fn object_path(store: &Path, kind: ObjectKind, name: &str) -> std::path::PathBuf {
    match kind {
        ObjectKind::Config => store.join("config"),
        ObjectKind::Pack => store.join("packs").join(&name[..2]).join(name),
        _ => store.join(kind.dir_name()).join(name),
    }
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn full_check(store: &Store) -> CheckReport {
    check(store, &CheckOptions::default()).unwrap()
}

/// Two snapshots sharing no data: `a` first, then `b`, with the packs each added.
fn two_sources(
    t: &TestStore,
) -> (
    kast_engine::BackupOutcome,
    kast_engine::BackupOutcome,
    HashSet<String>,
) {
    let a = t.dir.path().join("a");
    let b = t.dir.path().join("b");
    generate_tree(&a, 100, 3 << 20);
    std::fs::create_dir(&b).unwrap();
    write_random_file(&b.join("only-in-b.bin"), 4 << 20, 200);
    let first = t.backup(&a);
    let before = packs(t);
    let second = t.backup(&b);
    let b_packs = packs(t).difference(&before).cloned().collect();
    (first, second, b_packs)
}

#[test]
fn wrong_passphrase_and_missing_store_are_clear_errors() {
    let t = TestStore::new();
    let storage = Arc::new(LocalStorage::new(t.store_path()));
    let err = Store::open(storage, b"not the passphrase", None)
        .err()
        .unwrap();
    assert!(matches!(err, Error::WrongPassphrase), "{err}");
    assert!(err.to_string().contains("wrong passphrase"));

    let nowhere = t.dir.path().join("nowhere");
    let err = open_store(&nowhere, None).err().unwrap();
    assert!(matches!(err, Error::NoStore(_)), "{err}");
    assert!(!nowhere.exists(), "opening must not create a store");

    let err = Store::create(
        Arc::new(LocalStorage::new(t.store_path())),
        PASS,
        &create_options(),
        None,
    )
    .err()
    .unwrap();
    assert!(matches!(err, Error::StoreExists(_)), "{err}");
}

#[test]
fn a_second_passphrase_opens_and_can_be_removed() {
    let t = TestStore::new();
    let name = t
        .store
        .add_key(
            b"second",
            kast_engine::keys::KdfParams::insecure_for_tests(),
            kast_engine::keys::Capability::Full,
        )
        .unwrap();
    let storage = Arc::new(LocalStorage::new(t.store_path()));
    let via_second = Store::open(storage.clone(), b"second", None).unwrap();
    assert_eq!(via_second.config().store_id, t.store.config().store_id);
    assert_eq!(t.store.list_keys().unwrap().len(), 2);
    // The key in use cannot be removed; another can.
    assert!(via_second.remove_key(&name).is_err());
    t.store.remove_key(&name).unwrap();
    assert!(matches!(
        Store::open(storage.clone(), b"second", None),
        Err(Error::WrongPassphrase)
    ));
    // Opened with the master key itself, a session still cannot remove the
    // last passphrase.
    let by_key = Store::open_with_local_key(storage, t.store.local_key(), None).unwrap();
    let last = by_key.list_keys().unwrap().remove(0).name;
    let err = by_key.remove_key(&last).unwrap_err();
    assert!(err.to_string().contains("last passphrase"), "{err}");
}

#[test]
fn damaged_config_is_refused() {
    for damage in ["flip", "truncate", "edit"] {
        let t = TestStore::new();
        let path = t.store_path().join("config");
        match damage {
            "flip" => flip(&path, 20),
            "truncate" => {
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            }
            _ => {
                // A valid JSON edit (smaller chunks) must fail the MAC.
                let text = std::fs::read_to_string(&path)
                    .unwrap()
                    .replace("\"min_size\": 524288", "\"min_size\": 65536");
                std::fs::write(&path, text).unwrap();
            }
        }
        let err = open_store(&t.store_path(), None).err().unwrap();
        assert!(matches!(err, Error::Corrupt { .. }), "{damage}: {err}");
        assert!(err.to_string().contains("config"), "{damage}: {err}");
    }
}

#[test]
fn a_flipped_byte_in_a_pack_is_named_with_the_paths_it_affects() {
    let t = TestStore::new();
    let (a, b, b_packs) = two_sources(&t);
    assert!(full_check(&t.store).is_clean());
    // Flip a byte inside a data blob of one of b's packs.
    let index = t.store.index().unwrap();
    let mut target = None;
    index.for_each(|_, l| {
        if b_packs.contains(&l.pack.to_hex()) && l.kind == kast_engine::blob::BlobKind::Data {
            target.get_or_insert(l);
        }
    });
    let l = target.unwrap();
    flip(
        &object_path(&t.store_path(), ObjectKind::Pack, &l.pack.to_hex()),
        l.offset as usize + 100,
    );

    let report = full_check(&t.store);
    assert!(!report.is_clean());
    let damage = report
        .damage
        .iter()
        .find(|d| d.object == format!("pack {}", l.pack.short()))
        .expect("pack named");
    let affected = format!("snapshot {}: only-in-b.bin", b.id.short());
    assert!(damage.affects.contains(&affected), "{damage:?}");
    assert!(
        damage.affects.iter().all(|x| !x.contains(&a.id.short())),
        "a is not affected: {damage:?}"
    );

    // The untouched snapshot still restores byte-exact; the damaged one says so.
    let out = t.dir.path().join("restored-a");
    let restored = t.restore_to(&a.id, &out);
    assert!(restored.errors.is_empty());
    assert_same_tree(&t.dir.path().join("a"), &out);
    let out_b = t.dir.path().join("restored-b");
    let restored_b = t.restore_to(&b.id, &out_b);
    assert_eq!(restored_b.errors.len(), 1, "{:?}", restored_b.errors);
    assert_eq!(restored_b.errors[0].0, "only-in-b.bin");

    // --fast does not read pack data, so it cannot see a flipped byte.
    let fast = check(
        &t.store,
        &CheckOptions {
            fast: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(fast.is_clean());
}

#[test]
fn a_truncated_or_deleted_pack_is_found_even_by_a_fast_check() {
    for damage in ["truncate", "delete"] {
        let t = TestStore::new();
        let (a, b, b_packs) = two_sources(&t);
        let name = b_packs.iter().next().unwrap();
        let path = object_path(&t.store_path(), ObjectKind::Pack, name);
        if damage == "truncate" {
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        for fast in [true, false] {
            let report = check(
                &t.store,
                &CheckOptions {
                    fast,
                    ..Default::default()
                },
            )
            .unwrap();
            // The pack, or the blobs in it, are named with what they affect.
            let affects: Vec<&String> = report
                .damage
                .iter()
                .filter(|d| d.object.contains(&name[..8]))
                .flat_map(|d| &d.affects)
                .collect();
            assert!(
                affects.iter().any(|x| x.contains(&b.id.short())),
                "{damage} fast={fast}: {:?}",
                report.damage
            );
            assert!(affects.iter().all(|x| !x.contains(&a.id.short())));
        }
        let out = t.dir.path().join("restored-a");
        assert!(t.restore_to(&a.id, &out).errors.is_empty());
        assert_same_tree(&t.dir.path().join("a"), &out);
    }
}

#[test]
fn a_damaged_snapshot_header_leaves_the_others_whole() {
    let t = TestStore::new();
    let (a, b, _) = two_sources(&t);
    flip(
        &object_path(&t.store_path(), ObjectKind::Snapshot, &b.id.to_hex()),
        30,
    );
    let report = full_check(&t.store);
    let d = report
        .damage
        .iter()
        .find(|d| d.object == format!("snapshot {}", &b.id.to_hex()[..8]))
        .expect("named");
    assert!(d.problem.contains("does not match"), "{d:?}");
    let listed = kast_engine::browse::snapshots(&t.store).unwrap();
    assert_eq!(listed.snapshots.len(), 1);
    assert_eq!(listed.damaged.len(), 1);
    let out = t.dir.path().join("restored-a");
    t.restore_to(&a.id, &out);
    assert_same_tree(&t.dir.path().join("a"), &out);
    assert!(
        kast_engine::restore(
            &t.store,
            &b.id,
            b"",
            &kast_engine::native::memory::MemoryDestination::new(),
            &Default::default()
        )
        .is_err()
    );
}

#[test]
fn a_damaged_state_is_named_and_backups_go_on() {
    let t = TestStore::new();
    two_sources(&t);
    let states = t.store.storage().list(ObjectKind::State).unwrap();
    let victim = &states[0].name;
    flip(&object_path(&t.store_path(), ObjectKind::State, victim), 40);
    let store = open_store(&t.store_path(), None).unwrap();
    let report = full_check(&store);
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.object == format!("state {}", &victim[..8])),
        "{:?}",
        report.damage
    );
    // A new backup still works: what the damaged state listed is stored anew.
    let again = backup_dir(&store, &t.dir.path().join("a"));
    let out = t.dir.path().join("restored");
    let dest = kast_engine::native::local::LocalDestination::new(&out).unwrap();
    let r = kast_engine::restore(&store, &again.id, b"", &dest, &Default::default()).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_same_tree(&t.dir.path().join("a"), &out);
}

#[test]
fn a_damaged_tree_blob_is_named_with_its_directory() {
    let t = TestStore::new();
    let (a, b, _) = two_sources(&t);
    // Find the tree blob of a's "many" directory and flip a byte in it.
    let index = t.store.index().unwrap();
    let root = t.store.read_tree(&index, &a.snapshot.root).unwrap();
    let many = match &root.find(b"many").unwrap().content {
        kast_engine::tree::Content::Dir { tree } => *tree,
        _ => unreachable!(),
    };
    let l = index.lookup(&many).unwrap();
    flip(
        &object_path(&t.store_path(), ObjectKind::Pack, &l.pack.to_hex()),
        l.offset as usize + 40,
    );
    let report = full_check(&t.store);
    let d = report
        .damage
        .iter()
        .find(|d| {
            d.affects
                .iter()
                .any(|x| x == &format!("snapshot {}: many", a.id.short()))
        })
        .unwrap_or_else(|| panic!("{:?}", report.damage));
    assert!(
        d.object.starts_with("pack ") || d.object.starts_with("tree "),
        "{d:?}"
    );
    let out = t.dir.path().join("restored-b");
    assert!(t.restore_to(&b.id, &out).errors.is_empty());
}

#[test]
fn every_single_bit_flip_in_a_small_store_is_detected() {
    // A small store: one file, few objects. Flip each byte of each pack,
    // state and snapshot in turn; check must notice every one.
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"tiny content").unwrap();
    t.backup(&src);
    for kind in [ObjectKind::Pack, ObjectKind::State, ObjectKind::Snapshot] {
        for object in t.store.storage().list(kind).unwrap() {
            let path = object_path(&t.store_path(), kind, &object.name);
            let step = (object.size as usize / 97).max(1);
            for offset in (0..object.size as usize).step_by(step) {
                flip(&path, offset);
                let report = full_check(&t.store);
                assert!(!report.is_clean(), "{kind} byte {offset} flipped unnoticed");
                flip(&path, offset);
            }
        }
    }
    assert!(full_check(&t.store).is_clean());
}

/// Small files sit side by side in a pack, several to a frame (a group,
/// compressed together), and a restore reads them together: a flipped byte
/// spoils the files of its frame alone, and says which.
#[test]
fn a_damaged_frame_read_together_with_others_spoils_only_its_files() {
    let t = TestStore::new();
    let src = t.dir.path().join("small");
    std::fs::create_dir(&src).unwrap();
    for i in 0..40u64 {
        write_random_file(&src.join(format!("f{i:02}")), 20_000 + i * 1000, 300 + i);
    }
    let outcome = t.backup(&src);
    let index = t.store.index().unwrap();
    let mut data = Vec::new();
    index.for_each(|_, l| {
        if l.kind == kast_engine::blob::BlobKind::Data {
            data.push(l);
        }
    });
    data.sort_by_key(|l| (l.pack.to_hex(), l.offset));
    let victim = data[data.len() / 2];
    flip(
        &object_path(&t.store_path(), ObjectKind::Pack, &victim.pack.to_hex()),
        victim.offset as usize + 10,
    );
    let in_frame = data
        .iter()
        .filter(|l| (l.pack, l.offset) == (victim.pack, victim.offset))
        .count();
    assert!(in_frame < 40, "every file landed in one frame");
    let out = t.dir.path().join("out");
    let restored = t.restore_to(&outcome.id, &out);
    assert_eq!(restored.errors.len(), in_frame, "{:?}", restored.errors);
    let spoiled: Vec<&String> = restored.errors.iter().map(|(path, _)| path).collect();
    for i in 0..40u64 {
        let name = format!("f{i:02}");
        if !spoiled.contains(&&name) {
            assert_eq!(
                std::fs::read(out.join(&name)).unwrap(),
                std::fs::read(src.join(&name)).unwrap(),
                "{name}"
            );
        }
    }
}

#[test]
fn a_sampled_check_reads_that_share_of_packs_and_over_runs_finds_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let options = kast_engine::CreateOptions {
        pack_target: 1 << 20,
        ..create_options()
    };
    let store = Store::create(Arc::new(LocalStorage::new(&path)), PASS, &options, None).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write_random_file(&src.join("big"), 12 << 20, 5);
    backup_dir(&store, &src);
    let total = store.storage().list(ObjectKind::Pack).unwrap().len() as u64;
    assert!(total >= 4, "{total} packs");
    let full = check(&store, &CheckOptions::default()).unwrap();
    assert_eq!(full.packs_read, total, "{full:?}");
    let sampled = CheckOptions {
        pack_share: 0.25,
        ..Default::default()
    };
    let report = check(&store, &sampled).unwrap();
    assert!(report.is_clean());
    assert_eq!(report.packs_read, total.div_ceil(4), "{report:?}");
    // Packs differ in size (a large chunk may end one), so compare with
    // what a full check reads rather than with the pack target.
    assert!(report.bytes < full.bytes, "{report:?} vs {full:?}");
    // A flipped byte is found by some run: the packs read differ each time.
    damage_largest_pack(&path);
    // (Missing it 40 times in a row: 0.75^40, about 1 in 100,000.)
    assert!(
        (0..40).any(|_| !check(&store, &sampled).unwrap().is_clean()),
        "40 sampled checks never read the damaged pack"
    );
}

#[test]
fn kept_headers_never_hide_damage_from_check_nor_keep_removed_snapshots() {
    let t = TestStore::new();
    let (a, b, _) = two_sources(&t);
    // Listing keeps both headers on this machine.
    assert_eq!(
        kast_engine::browse::snapshots(&t.store)
            .unwrap()
            .snapshots
            .len(),
        2
    );
    let kept = t
        .dir
        .path()
        .join("cache")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("headers");
    assert!(kept.is_file(), "the headers are kept in the cache");
    flip(
        &object_path(&t.store_path(), ObjectKind::Snapshot, &b.id.to_hex()),
        30,
    );
    // Check reads the store's own header, not the kept copy.
    let report = full_check(&t.store);
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.object == format!("snapshot {}", &b.id.to_hex()[..8])),
        "{:?}",
        report.damage
    );
    // A removed snapshot is gone from the listing at once.
    kast_engine::maintenance::remove_snapshots(&t.store, &[b.id]).unwrap();
    let listed = kast_engine::browse::snapshots(&t.store).unwrap();
    assert_eq!(
        listed
            .snapshots
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        [a.id]
    );
    // A damaged cache file is read as empty: the headers come from the store.
    std::fs::write(&kept, b"KASTHDR1 garbage").unwrap();
    let listed = kast_engine::browse::snapshots(&t.store).unwrap();
    assert_eq!(listed.snapshots.len(), 1);
    assert!(listed.damaged.is_empty());
}
