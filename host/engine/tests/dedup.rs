//! Deduplication: what the store already holds is never stored again.

use kast_test_support::common;

use common::*;
use kast_engine::BackupOptions;
use kast_engine::native::local::LocalSource;

#[test]
fn second_backup_of_the_same_tree_adds_no_pack_data() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 11, 20 << 20);
    let first = t.backup(&src);
    let packs_after_first = t.pack_bytes();
    assert!(first.snapshot.summary.bytes_added > 20 << 20);

    let second = t.backup(&src);
    assert_eq!(second.snapshot.summary.blobs_added, 0);
    assert_eq!(t.pack_bytes(), packs_after_first);
    // Unchanged files are not even read again.
    assert_eq!(second.snapshot.summary.files_read, 0);
    assert_eq!(
        second.snapshot.summary.files_unchanged,
        second.snapshot.summary.files
    );
    assert_eq!(second.snapshot.root, first.snapshot.root);

    // Without the parent hint every file is read, and still nothing is added.
    let src_handle = LocalSource::new(&src).unwrap();
    let options = BackupOptions {
        use_parent: false,
        ..Default::default()
    };
    let third = kast_engine::backup(&t.store, &src_handle, &options).unwrap();
    assert_eq!(
        third.snapshot.summary.files_read,
        third.snapshot.summary.files
    );
    assert_eq!(third.snapshot.summary.blobs_added, 0);
    assert_eq!(t.pack_bytes(), packs_after_first);
}

#[test]
fn one_byte_inserted_in_a_64_mib_file_stores_at_most_3_new_chunks() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut data = Rng(5).bytes(64 << 20);
    std::fs::write(src.join("big"), &data).unwrap();
    t.backup(&src);
    data.insert(32 << 20, 0x42);
    std::fs::write(src.join("big"), &data).unwrap();
    let second = t.backup(&src);
    // New data chunks plus the one new tree blob for the root directory.
    let new_chunks = second.snapshot.summary.blobs_added - 1;
    assert!(new_chunks <= 3, "{new_chunks} new chunks");
    assert!(new_chunks >= 1);
}

#[test]
fn identical_files_are_stored_once() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    std::fs::create_dir_all(src.join("copy")).unwrap();
    write_random_file(&src.join("a"), 10 << 20, 77);
    std::fs::copy(src.join("a"), src.join("b")).unwrap();
    std::fs::copy(src.join("a"), src.join("copy/c")).unwrap();
    let outcome = t.backup(&src);
    let stored = t.pack_bytes();
    assert!(
        stored < (10 << 20) + (1 << 20),
        "stored {stored} bytes for 30 MiB of one 10 MiB file"
    );
    assert_eq!(outcome.snapshot.summary.logical_bytes, 30 << 20);
}

#[test]
fn a_changed_file_is_read_again_even_with_the_same_size() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"version one").unwrap();
    t.backup(&src);
    std::fs::write(src.join("f"), b"version two").unwrap();
    let second = t.backup(&src);
    assert_eq!(second.snapshot.summary.files_read, 1);
    let out = t.dir.path().join("out");
    t.restore_to(&second.id, &out);
    assert_eq!(std::fs::read(out.join("f")).unwrap(), b"version two");
}
