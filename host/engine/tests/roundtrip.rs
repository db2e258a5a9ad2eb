//! Restores of parts of a snapshot, the in-memory connectors, and browsing.
//! The whole-tree round trip is in the conformance suite (conformance.rs).

use kast_test_support::common;

use common::*;
use kast_engine::browse::{self, ChangeKind};
use kast_engine::native::memory::{MemoryDestination, MemoryEntry, MemoryTree};
use kast_engine::tree::{EntryKind, Metadata};
use kast_engine::{BackupOptions, RestoreOptions};
use std::io::Read;

#[test]
fn a_path_inside_a_snapshot_restores_alone() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 2, 0);
    let id = t.backup(&src).id;
    let out = t.dir.path().join("only-many");
    let dest = kast_engine::native::local::LocalDestination::new(&out).unwrap();
    kast_engine::restore(&t.store, &id, b"many", &dest, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src.join("many"), &out);

    let one = t.dir.path().join("one-file");
    let dest = kast_engine::native::local::LocalDestination::new(&one).unwrap();
    kast_engine::restore(
        &t.store,
        &id,
        b"/deep/level0/level1",
        &dest,
        &RestoreOptions::default(),
    )
    .unwrap();
    assert!(one.join("level2/level3").is_dir());
    let file = t.dir.path().join("file");
    let dest = kast_engine::native::local::LocalDestination::new(&file).unwrap();
    kast_engine::restore(
        &t.store,
        &id,
        "héllo wörld ✓.txt".as_bytes(),
        &dest,
        &RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(file.join("héllo wörld ✓.txt")).unwrap(),
        "unicode name\n".repeat(100).as_bytes()
    );

    let err = kast_engine::restore(&t.store, &id, b"no/such", &dest, &RestoreOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, kast_engine::Error::NoSuchPath { .. }),
        "{err}"
    );
}

#[test]
fn memory_source_and_destination_round_trip() {
    let mut tree = MemoryTree::default();
    let mut rng = Rng(9);
    let meta = |mode: u32, size: u64, t: i64| Metadata {
        mode,
        uid: 1000,
        gid: 1000,
        mtime_ns: t,
        size,
        xattrs: vec![(b"user.note".to_vec(), b"kept".to_vec())],
        ..Default::default()
    };
    tree.entries.insert(
        b"dir".to_vec(),
        MemoryEntry {
            kind: EntryKind::Dir,
            meta: meta(0o40750, 0, 5),
            data: vec![],
        },
    );
    for i in 0..20u64 {
        let data = rng.bytes((i * 7919) as usize % 3_000_000);
        tree.entries.insert(
            format!("dir/file{i}").into_bytes(),
            MemoryEntry {
                kind: EntryKind::File,
                meta: meta(0o100644, data.len() as u64, i as i64 * 1_000_000_007),
                data,
            },
        );
    }
    tree.entries.insert(
        b"link".to_vec(),
        MemoryEntry {
            kind: EntryKind::Symlink,
            meta: meta(0o120777, 0, 9),
            data: b"dir/file1".to_vec(),
        },
    );
    let t = TestStore::new();
    let outcome = kast_engine::backup(&t.store, &tree, &BackupOptions::default()).unwrap();
    let dest = MemoryDestination::new();
    kast_engine::restore(
        &t.store,
        &outcome.id,
        b"",
        &dest,
        &RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(dest.tree(), tree);
}

#[test]
fn browse_lists_reads_and_diffs() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 3, 0);
    let first = t.backup(&src);
    std::fs::write(src.join("many/f0001.bin"), b"changed").unwrap();
    std::fs::remove_file(src.join("many/f0002.bin")).unwrap();
    std::fs::write(src.join("new.txt"), b"new file").unwrap();
    let second = t.backup(&src);

    let index = t.store.index().unwrap();
    let listing = browse::list(&t.store, &index, (&second.id, &second.snapshot), b"many").unwrap();
    // 300 generated files and a hard link, less the one removed.
    assert_eq!(listing.len(), 300);
    let node =
        match browse::resolve_path(&t.store, &index, (&second.id, &second.snapshot), b"new.txt")
            .unwrap()
        {
            browse::Resolved::Node(n) => n,
            other => panic!("{other:?}"),
        };
    let mut out = Vec::new();
    browse::cat(&t.store, &index, &node, &mut out).unwrap();
    assert_eq!(out, b"new file");
    // A recorded size the content does not match is damage, either way.
    for (size, why) in [(9, "ends 1 bytes before"), (7, "runs past")] {
        let mut damaged = node.clone();
        damaged.meta.size = size;
        let err = browse::cat(&t.store, &index, &damaged, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(err, kast_engine::Error::Corrupt { .. }) && err.to_string().contains(why),
            "{err}"
        );
        let mut file = browse::open_file(&t.store, &index, &damaged).unwrap();
        assert!(file.read_to_end(&mut Vec::new()).is_err());
    }

    let changes = browse::diff(
        &t.store,
        &index,
        &first.snapshot.root,
        &second.snapshot.root,
    )
    .unwrap();
    let by_path = |p: &str| {
        changes
            .iter()
            .find(|c| c.path == p.as_bytes())
            .map(|c| c.kind)
    };
    assert_eq!(by_path("new.txt"), Some(ChangeKind::Added));
    assert_eq!(by_path("many/f0002.bin"), Some(ChangeKind::Removed));
    assert_eq!(by_path("many/f0001.bin"), Some(ChangeKind::Modified));
    // Only those three entries and their parent directory's metadata changed.
    assert!(
        changes
            .iter()
            .all(|c| ["new.txt", "many/f0001.bin", "many/f0002.bin", "many"]
                .contains(&c.path_lossy().as_str())),
        "{changes:?}"
    );

    let found = browse::find(&t.store, &first.id.to_hex()[..6], &Default::default()).unwrap();
    assert_eq!(found.0, first.id);
    let latest = browse::find(&t.store, "latest", &Default::default()).unwrap();
    assert_eq!(latest.0, second.id);
    assert!(matches!(
        browse::find(&t.store, "ffffffffffff", &Default::default()),
        Err(kast_engine::Error::NoSuchSnapshot(_))
    ));
}

/// Small files are written by several threads at once; a folder's time is
/// set only once every file in it is written, and hard links find the file
/// they name written. Folders of many small files, nested, read-only ones
/// among them, make any early folder time show.
#[test]
fn small_files_written_side_by_side_keep_folder_times_and_links() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    let mut rng = Rng(9);
    for d in 0..40 {
        let dir = src.join(format!("d{d}")).join(format!("inner{}", d % 3));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..60 {
            let len = rng.below(3000) as usize;
            std::fs::write(dir.join(format!("f{f}")), rng.bytes(len)).unwrap();
        }
        std::fs::hard_link(dir.join("f0"), dir.join("link-to-f0")).unwrap();
        let time = filetime::FileTime::from_unix_time(1_000_000_000 + d, 7);
        filetime::set_file_mtime(&dir, time).unwrap();
        filetime::set_file_mtime(dir.parent().unwrap(), time).unwrap();
        if d % 5 == 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
    }
    let id = t.backup(&src).id;
    let out = t.dir.path().join("out");
    let outcome = t.restore_to(&id, &out);
    assert_eq!(outcome.files, 40 * 61);
    assert_eq!(outcome.hard_links, 40);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_same_tree(&src, &out);
}

/// A source that says which files it was told of ahead and which were
/// opened, in order.
struct Recording {
    inner: kast_engine::native::local::LocalSource,
    announced: std::sync::Mutex<Vec<Vec<u8>>>,
    opened: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl kast_engine::Source for Recording {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn list(&self, path: &[u8]) -> std::io::Result<Vec<kast_engine::source::SourceEntry>> {
        self.inner.list(path)
    }
    fn open(&self, path: &[u8]) -> std::io::Result<Box<dyn Read + Send>> {
        self.opened.lock().unwrap().push(path.to_vec());
        self.inner.open(path)
    }
    fn will_read(&self, files: &[(Vec<u8>, u64)]) {
        let mut announced = self.announced.lock().unwrap();
        announced.extend(files.iter().map(|(path, _)| path.clone()));
    }
}

/// A source that reads ahead (a network plugin fetching small files) is
/// told of exactly the files the walk opens, in the order it opens them:
/// folders between files, excluded and unchanged files included.
#[test]
fn a_source_is_told_of_the_files_it_will_open_in_that_order() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    generate_tree(&src, 5, 0);
    let recording = || Recording {
        inner: kast_engine::native::local::LocalSource::new(&src).unwrap(),
        announced: Default::default(),
        opened: Default::default(),
    };
    let options = BackupOptions {
        exclude: Some(std::sync::Arc::new(|path: &[u8], _dir: bool| {
            path.ends_with(b"7.bin")
        })),
        ..Default::default()
    };
    let first = recording();
    kast_engine::backup(&t.store, &first, &options).unwrap();
    let opened = first.opened.into_inner().unwrap();
    assert!(opened.len() > 250, "{} files opened", opened.len());
    assert!(!opened.iter().any(|p| p.ends_with(b"7.bin")));
    assert_eq!(first.announced.into_inner().unwrap(), opened);

    // One file changed: only it is announced, and opened.
    std::fs::write(src.join("many/f0003.bin"), b"changed").unwrap();
    let second = recording();
    kast_engine::backup(&t.store, &second, &options).unwrap();
    let opened = second.opened.into_inner().unwrap();
    assert_eq!(opened, vec![b"many/f0003.bin".to_vec()]);
    assert_eq!(second.announced.into_inner().unwrap(), opened);
}
