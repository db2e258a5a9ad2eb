//! Two backups into one store at once lose nothing.

use kast_test_support::common;

use common::*;
use kast_engine::check::{CheckOptions, check};

#[test]
fn two_concurrent_backups_both_restore() {
    let t = TestStore::new();
    let a = t.dir.path().join("a");
    let b = t.dir.path().join("b");
    generate_tree(&a, 21, 24 << 20);
    generate_tree(&b, 22, 24 << 20);
    // Shared content too: both back up the same file at the same time.
    write_random_file(&a.join("shared.bin"), 8 << 20, 99);
    std::fs::copy(a.join("shared.bin"), b.join("shared.bin")).unwrap();

    let cache = t.dir.path().join("cache");
    let (sa, sb) = std::thread::scope(|s| {
        let ha = s.spawn(|| {
            backup_dir(
                &open_store(&t.store_path(), Some(cache.clone())).unwrap(),
                &a,
            )
        });
        let hb = s.spawn(|| {
            backup_dir(
                &open_store(&t.store_path(), Some(t.dir.path().join("cache-2"))).unwrap(),
                &b,
            )
        });
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let store = t.reopen();
    assert!(check(&store, &CheckOptions::default()).unwrap().is_clean());
    for (snap, src) in [(sa, &a), (sb, &b)] {
        let out = t.dir.path().join(format!("out-{}", snap.id.short()));
        let dest = kast_engine::native::local::LocalDestination::new(&out).unwrap();
        let r = kast_engine::restore(&store, &snap.id, b"", &dest, &Default::default()).unwrap();
        assert!(r.errors.is_empty());
        assert_same_tree(src, &out);
    }
}
