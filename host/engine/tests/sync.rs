//! Copying snapshots between stores with different keys.

use kast_test_support::common;

use common::*;
use kast_engine::check::{CheckOptions, check};
use kast_engine::progress::Silent;
use kast_engine::sync::sync;
use std::sync::Arc;

#[test]
fn sync_copies_only_what_is_new_and_restores_from_the_target() {
    let a = TestStore::new();
    let b = TestStore::new();
    assert_ne!(a.store.config().store_id, b.store.config().store_id);
    let src = a.dir.path().join("src");
    generate_tree(&src, 31, 6 << 20);
    let first = a.backup(&src);
    std::fs::write(src.join("later.txt"), b"added later").unwrap();
    let second = a.backup(&src);

    let outcome = sync(&a.store, &b.store, &[first.id], Arc::new(Silent)).unwrap();
    assert_eq!(outcome.copied.len(), 1);
    assert!(outcome.bytes_added > 6 << 20);
    let all = sync(&a.store, &b.store, &[], Arc::new(Silent)).unwrap();
    assert_eq!(all.skipped, vec![first.id]);
    assert_eq!(all.copied.len(), 1);
    assert!(
        all.bytes_added < 1 << 20,
        "the second copy shares almost everything: {}",
        all.bytes_added
    );
    let again = sync(&a.store, &b.store, &[], Arc::new(Silent)).unwrap();
    assert!(again.copied.is_empty());

    let target = b.reopen();
    assert!(check(&target, &CheckOptions::default()).unwrap().is_clean());
    let (source, copy) = all.copied[0];
    assert_eq!(source, second.id);
    let out = b.dir.path().join("out");
    let dest = kast_engine::native::local::LocalDestination::new(&out).unwrap();
    kast_engine::restore(&target, &copy, b"", &dest, &Default::default()).unwrap();
    assert_same_tree(&src, &out);
    let header = target.read_snapshot(&copy).unwrap();
    assert_eq!(header.source, second.snapshot.source);
    assert_eq!(header.time_ns, second.snapshot.time_ns);
}
