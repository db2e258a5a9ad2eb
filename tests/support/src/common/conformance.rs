//! The connector conformance suite: what every storage, source and
//! destination must pass, native or WASM. A test file provides a
//! [`Connectors`] and calls each `check_*` function.

use super::*;
use kast_engine::check::{CheckOptions, check};
use kast_engine::storage::{ObjectKind, Storage, StorageError};
use kast_engine::{BackupOptions, Destination, RestoreOptions, Source, Store};
use std::path::Path;
use std::sync::Arc;

/// Opens connectors for local paths (a directory, or a file for a source).
pub trait Connectors {
    /// A storage keeping its objects under `path`.
    fn storage(&self, path: &Path) -> Arc<dyn Storage>;
    /// A source reading the tree (or file) at `path`.
    fn source(&self, path: &Path) -> Box<dyn Source>;
    /// A destination writing below `path`.
    fn destination(&self, path: &Path) -> Box<dyn Destination>;
    /// Whether extended attributes survive a round trip (SFTP has none).
    fn keeps_xattrs(&self) -> bool {
        true
    }
    /// Whether file times are whole seconds (SFTP version 3).
    fn whole_second_times(&self) -> bool {
        false
    }
    /// Whether modes, owners, folder times and symlinks survive (WebDAV
    /// keeps only folders, file bytes and file times to the second).
    fn keeps_unix_metadata(&self) -> bool {
        true
    }
    /// Whether a source tells hard links (the `fs` plugin does; a tar
    /// archive read through the 0.1 contract cannot).
    fn keeps_hard_links(&self) -> bool {
        true
    }
    /// Whether names that are not UTF-8 survive (WebDAV servers' URLs are).
    fn keeps_byte_names(&self) -> bool {
        true
    }
}

fn assert_same(c: &dyn Connectors, expected: &Path, actual: &Path) {
    if !c.keeps_unix_metadata() {
        assert_same_files(expected, actual);
    } else if c.whole_second_times() {
        assert_same_tree_to_the_second(expected, actual);
    } else if !c.keeps_hard_links() {
        assert_same_tree_but_links(expected, actual);
    } else {
        assert_same_tree(expected, actual);
    }
}

fn create(c: &dyn Connectors, dir: &Path) -> Store {
    Store::create(
        c.storage(&dir.join("store")),
        PASS,
        &create_options(),
        Some(dir.join("cache")),
    )
    .unwrap()
}

fn backup(c: &dyn Connectors, store: &Store, src: &Path) -> kast_engine::BackupOutcome {
    kast_engine::backup(store, &*c.source(src), &BackupOptions::default()).unwrap()
}

fn restore(
    c: &dyn Connectors,
    store: &Store,
    id: &kast_engine::crypto::Id,
    out: &Path,
) -> kast_engine::RestoreOutcome {
    kast_engine::restore(
        store,
        id,
        b"",
        &*c.destination(out),
        &RestoreOptions::default(),
    )
    .unwrap()
}

/// Storage semantics: put/get/range/list/delete, not-found, bad names.
pub fn check_storage_semantics(c: &dyn Connectors) {
    let dir = tempfile::tempdir().unwrap();
    let s = c.storage(&dir.path().join("store"));
    let name = "ab".repeat(32);
    assert!(matches!(
        s.get(ObjectKind::Pack, &name),
        Err(StorageError::NotFound { .. })
    ));
    s.put(ObjectKind::Pack, &name, b"0123456789").unwrap();
    s.put(ObjectKind::State, &name, b"state").unwrap();
    s.put(ObjectKind::Config, "config", b"{}").unwrap();
    assert_eq!(s.get(ObjectKind::Pack, &name).unwrap(), b"0123456789");
    assert_eq!(s.get_range(ObjectKind::Pack, &name, 3, 4).unwrap(), b"3456");
    assert_eq!(s.get_range(ObjectKind::Pack, &name, 8, 100).unwrap(), b"89");
    let listed = s.list(ObjectKind::Pack).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].size),
        (name.as_str(), 10)
    );
    assert_eq!(s.list(ObjectKind::Config).unwrap().len(), 1);
    assert!(s.list(ObjectKind::Snapshot).unwrap().is_empty());
    s.delete(ObjectKind::Pack, &name).unwrap();
    s.delete(ObjectKind::Pack, &name).unwrap();
    assert!(s.list(ObjectKind::Pack).unwrap().is_empty());
    assert_eq!(s.get(ObjectKind::State, &name).unwrap(), b"state");
    for bad in ["../escape", "a/b", "", "UPPER"] {
        assert!(
            s.put(ObjectKind::Lock, bad, b"x").is_err(),
            "name {bad:?} accepted"
        );
    }
}

/// A generated tree round-trips with bytes and metadata.
pub fn check_round_trip(c: &dyn Connectors, big: u64) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    generate_tree(&src, 7, big);
    fit_tree(c, &src);
    std::fs::write(src.join("with-xattr"), b"x").unwrap();
    let has_xattrs =
        xattr::set(src.join("with-xattr"), "user.kast", b"kept").is_ok() && c.keeps_xattrs();
    let store = create(c, dir.path());
    let outcome = backup(c, &store, &src);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let count = |symlinks: bool| {
        let kinds = snapshot_of_dir(&src).into_values();
        kinds
            .filter(|seen| matches!(seen, Seen::Symlink { .. }) == symlinks)
            .filter(|seen| !matches!(seen, Seen::Dir { .. }))
            .count() as u64
    };
    assert_eq!(outcome.snapshot.summary.files, count(false));
    let out = dir.path().join("out");
    let restored = restore(c, &store, &outcome.id, &out);
    assert!(restored.errors.is_empty(), "{:?}", restored.errors);
    assert_eq!(restored.bytes, outcome.snapshot.summary.logical_bytes);
    assert_eq!(outcome.snapshot.summary.symlinks, count(true));
    assert_same(c, &src, &out);
    if has_xattrs {
        assert_eq!(
            xattr::get(out.join("with-xattr"), "user.kast")
                .unwrap()
                .as_deref(),
            Some(&b"kept"[..])
        );
    }
    // The store is the same store natively.
    let native = open_store(&dir.path().join("store"), None).unwrap();
    let native_out = dir.path().join("native-out");
    let dest = kast_engine::native::local::LocalDestination::new(&native_out).unwrap();
    kast_engine::restore(&native, &outcome.id, b"", &dest, &RestoreOptions::default()).unwrap();
    assert_same(c, &src, &native_out);
}

/// Takes out of a generated tree what the connector's system cannot hold:
/// symlinks, names that are not UTF-8.
fn fit_tree(c: &dyn Connectors, root: &Path) {
    for (path, seen) in snapshot_of_dir(root) {
        let symlink = matches!(seen, Seen::Symlink { .. });
        if (symlink && !c.keeps_unix_metadata())
            || (std::str::from_utf8(&path).is_err() && !c.keeps_byte_names())
        {
            std::fs::remove_file(root.join(std::ffi::OsStr::from_bytes(&path))).unwrap();
        }
    }
}

/// A second backup adds nothing and reads no unchanged file.
pub fn check_dedup(c: &dyn Connectors) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    generate_tree(&src, 8, 8 << 20);
    fit_tree(c, &src);
    let store = create(c, dir.path());
    let first = backup(c, &store, &src);
    let second = backup(c, &store, &src);
    assert_eq!(second.snapshot.summary.blobs_added, 0);
    assert_eq!(second.snapshot.summary.files_read, 0);
    assert_eq!(second.snapshot.root, first.snapshot.root);
}

/// A flipped byte in a pack is found through the storage.
pub fn check_damage_found(c: &dyn Connectors) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    generate_tree(&src, 9, 2 << 20);
    let store = create(c, dir.path());
    // The storage is what is checked; the source does not matter.
    backup_dir(&store, &src);
    assert!(check(&store, &CheckOptions::default()).unwrap().is_clean());
    let pack = store.storage().list(ObjectKind::Pack).unwrap().remove(0);
    let mut bytes = store.storage().get(ObjectKind::Pack, &pack.name).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    store
        .storage()
        .put(ObjectKind::Pack, &pack.name, &bytes)
        .unwrap();
    let report = check(&store, &CheckOptions::default()).unwrap();
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.object.contains(&pack.name[..8])),
        "{:?}",
        report.damage
    );
}

/// A file location backs up just that file.
pub fn check_single_file_source(c: &dyn Connectors) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lonely.txt");
    std::fs::write(&file, b"just me").unwrap();
    std::fs::write(dir.path().join("sibling.txt"), b"not me").unwrap();
    let store = create(c, dir.path());
    let outcome = backup(c, &store, &file);
    assert_eq!(outcome.snapshot.summary.files, 1);
    let out = dir.path().join("out");
    restore(c, &store, &outcome.id, &out);
    assert_eq!(std::fs::read(out.join("lonely.txt")).unwrap(), b"just me");
    assert!(!out.join("sibling.txt").exists());
}

/// What a restore does with entries already at the destination, in each
/// `--overwrite` mode: a refusal writes nothing at all, the other modes
/// skip or replace entry by entry and count what they skipped.
pub fn check_no_overwrite(c: &dyn Connectors) {
    use kast_engine::Overwrite;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), b"from the snapshot").unwrap();
    std::fs::write(src.join("sub/b"), b"b").unwrap();
    std::fs::write(src.join("c"), b"c").unwrap();
    let snapshot_time = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_mtime(src.join("a"), snapshot_time).unwrap();
    let store = create(c, dir.path());
    let outcome = backup(c, &store, &src);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let precious = |secs: i64| {
        std::fs::write(out.join("a"), b"precious").unwrap();
        let t = filetime::FileTime::from_unix_time(secs, 0);
        filetime::set_file_mtime(out.join("a"), t).unwrap();
    };
    let dest = c.destination(&out);
    let run = |mode: Overwrite| {
        let options = RestoreOptions {
            overwrite: mode,
            ..Default::default()
        };
        kast_engine::restore(&store, &outcome.id, b"", &*dest, &options)
    };
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };

    // Refused: nothing written, not even what is missing, and the entry in
    // the way is named.
    precious(1_700_000_000);
    let err = run(Overwrite::Refuse).unwrap_err();
    assert!(
        err.to_string().contains("already holds 1 of the entries"),
        "{err}"
    );
    assert!(err.to_string().contains("(a)"), "{err}");
    assert_eq!(names(), ["a"]);
    assert_eq!(std::fs::read(out.join("a")).unwrap(), b"precious");

    // never: the rest restored, `a` kept and counted.
    let done = run(Overwrite::Never).unwrap();
    assert_eq!((done.skipped, done.files), (1, 2));
    assert_eq!(done.first_skipped.as_deref(), Some("a"));
    assert_eq!(names(), ["a", "c", "sub"]);
    assert_eq!(std::fs::read(out.join("a")).unwrap(), b"precious");

    // if-newer: kept while it is newer than the snapshot's, replaced once older.
    let done = run(Overwrite::IfNewer).unwrap();
    assert_eq!(done.skipped, 3, "everything is there, as new or newer");
    assert_eq!(std::fs::read(out.join("a")).unwrap(), b"precious");
    precious(1_500_000_000);
    let done = run(Overwrite::IfNewer).unwrap();
    assert_eq!(std::fs::read(out.join("a")).unwrap(), b"from the snapshot");
    assert_eq!(done.skipped, 2);

    // if-changed: what is as the snapshot has it is left; a changed size or
    // time is replaced.
    let done = run(Overwrite::IfChanged).unwrap();
    assert_eq!((done.skipped, done.files), (3, 0));
    std::fs::write(out.join("c"), b"changed").unwrap();
    let done = run(Overwrite::IfChanged).unwrap();
    assert_eq!((done.skipped, done.files), (2, 1));
    assert_eq!(std::fs::read(out.join("c")).unwrap(), b"c");

    // always: replaced whatever it is.
    precious(1_700_000_000);
    let done = run(Overwrite::Always).unwrap();
    assert_eq!((done.skipped, done.files), (0, 3));
    assert_eq!(std::fs::read(out.join("a")).unwrap(), b"from the snapshot");
}

/// Runs the whole suite.
pub fn run_all(c: &dyn Connectors, big: u64) {
    check_storage_semantics(c);
    check_round_trip(c, big);
    check_dedup(c);
    check_damage_found(c);
    check_single_file_source(c);
    check_no_overwrite(c);
}
