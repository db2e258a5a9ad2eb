//! `find` across many snapshots: the same answers as walking every
//! snapshot, with each distinct tree read once.

use kast_test_support::common;

use common::*;
use kast_engine::crypto::Id;
use kast_engine::find::{FindStats, Found, FoundKind};
use kast_engine::snapshot::Snapshot;
use kast_engine::tree::Content;
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

/// A project tree: `copies/a/shared` and `copies/b/shared` hold the same
/// files at two paths; `docs/N` folders are left alone between backups.
fn make_tree(root: &Path) {
    for (dir, files) in [
        ("docs/0", 5),
        ("docs/1", 5),
        ("docs/2/deep/er", 3),
        ("copies/a/shared", 4),
        ("copies/b/shared", 4),
        ("src", 6),
    ] {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..files {
            let ext = if i % 2 == 0 { "txt" } else { "rs" };
            std::fs::write(dir.join(format!("f{i}.{ext}")), format!("{i}")).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("report.txt.d")).unwrap();
    std::os::unix::fs::symlink("docs", root.join("link.txt")).unwrap();
}

/// Every tree id reachable from `root`, walked plainly.
fn trees_below(t: &TestStore, index: &kast_engine::index::Index, root: &Id, out: &mut HashSet<Id>) {
    if !out.insert(*root) {
        return;
    }
    for node in t.store.read_tree(index, root).unwrap().nodes {
        if let Content::Dir { tree } = node.content {
            trees_below(t, index, &tree, out);
        }
    }
}

/// What a plain walk of every snapshot finds: (snapshot, path, kind).
fn walk_all(
    t: &TestStore,
    index: &kast_engine::index::Index,
    snapshots: &[(Id, Snapshot)],
    matches: &dyn Fn(&[u8]) -> bool,
) -> Vec<(Id, Vec<u8>, FoundKind)> {
    fn walk(
        t: &TestStore,
        index: &kast_engine::index::Index,
        tree: &Id,
        prefix: &[u8],
        matches: &dyn Fn(&[u8]) -> bool,
        out: &mut Vec<(Vec<u8>, FoundKind)>,
    ) {
        for node in t.store.read_tree(index, tree).unwrap().nodes {
            let mut path = prefix.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&node.name);
            let kind = match node.content {
                Content::File { .. } => FoundKind::File,
                Content::Dir { .. } => FoundKind::Dir,
                Content::Symlink { .. } => FoundKind::Symlink,
                Content::Special => FoundKind::Special,
            };
            if matches(&node.name) {
                out.push((path.clone(), kind));
            }
            if let Content::Dir { tree } = node.content {
                walk(t, index, &tree, &path, matches, out);
            }
        }
    }
    let mut all = Vec::new();
    for (id, s) in snapshots {
        let mut found = Vec::new();
        walk(t, index, &s.root, b"", matches, &mut found);
        all.extend(found.into_iter().map(|(p, k)| (*id, p, k)));
    }
    all
}

fn find(
    t: &TestStore,
    index: &kast_engine::index::Index,
    snapshots: &[(Id, Snapshot)],
    matches: &dyn Fn(&[u8]) -> bool,
) -> (Vec<(Id, Vec<u8>, FoundKind)>, FindStats) {
    let mut found = Vec::new();
    let stats = kast_engine::find::find(
        &t.store,
        index,
        snapshots,
        matches,
        &mut |id, _, f: &Found| {
            found.push((*id, f.path.clone(), f.kind));
            Ok(())
        },
    )
    .unwrap();
    (found, stats)
}

#[test]
fn find_reads_each_distinct_tree_once_and_agrees_with_a_full_walk() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    make_tree(&src);
    // 30 snapshots, each after one file in `src` or `docs/2/deep/er`
    // changed: most folders are the same tree in all of them.
    for round in 0..30 {
        let dir = if round % 3 == 0 {
            "docs/2/deep/er"
        } else {
            "src"
        };
        std::fs::write(
            src.join(dir).join(format!("new{round}.txt")),
            format!("{round}"),
        )
        .unwrap();
        t.backup(&src);
    }
    let snapshots = kast_engine::browse::snapshots(&t.store).unwrap().snapshots;
    assert_eq!(snapshots.len(), 30);
    let index = t.store.index().unwrap();
    let mut distinct = HashSet::new();
    for (_, s) in &snapshots {
        trees_below(&t, &index, &s.root, &mut distinct);
    }
    // Far fewer distinct trees than 30 walks would read.
    let walked_per_snapshot = {
        let mut one = HashSet::new();
        trees_below(&t, &index, &snapshots[0].1.root, &mut one);
        one.len()
    };
    assert!(distinct.len() < walked_per_snapshot * 30 / 3);

    for (what, matches) in [
        (
            "*.txt",
            &(|n: &[u8]| n.ends_with(b".txt")) as &dyn Fn(&[u8]) -> bool,
        ),
        ("shared", &|n: &[u8]| n == b"shared"),
        ("nothing", &|_: &[u8]| false),
        ("everything", &|_: &[u8]| true),
    ] {
        let (found, stats) = find(&t, &index, &snapshots, matches);
        assert_eq!(
            stats.trees_read,
            distinct.len() as u64,
            "{what}: each distinct tree is read exactly once"
        );
        assert_eq!(stats.snapshots, 30);
        assert_eq!(stats.matches, found.len() as u64);
        let expected = walk_all(&t, &index, &snapshots, matches);
        assert_eq!(
            found, expected,
            "{what}: the same matches, in the same order"
        );
    }

    // A folder name at two paths is found at both, in every snapshot.
    let (found, _) = find(&t, &index, &snapshots, &|n| n == b"shared");
    let paths: BTreeSet<_> = found.iter().map(|(_, p, _)| p.clone()).collect();
    assert_eq!(
        paths,
        BTreeSet::from([b"copies/a/shared".to_vec(), b"copies/b/shared".to_vec()])
    );
    assert_eq!(found.len(), 60);
    assert!(found.iter().all(|(_, _, k)| *k == FoundKind::Dir));

    // Kinds and sizes are the entries' own.
    let (found, _) = find(&t, &index, &snapshots[29..], &|n| {
        n == b"link.txt" || n == b"f0.txt"
    });
    assert!(found.contains(&(snapshots[29].0, b"link.txt".to_vec(), FoundKind::Symlink)));
    assert!(found.contains(&(snapshots[29].0, b"src/f0.txt".to_vec(), FoundKind::File)));
}

#[test]
fn new_files_appear_only_in_the_snapshots_that_hold_them() {
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    make_tree(&src);
    let first = t.backup(&src);
    std::fs::write(src.join("docs/1/later.txt"), "x").unwrap();
    let second = t.backup(&src);
    let snapshots = kast_engine::browse::snapshots(&t.store).unwrap().snapshots;
    let index = t.store.index().unwrap();
    let (found, _) = find(&t, &index, &snapshots, &|n| n == b"later.txt");
    assert_eq!(
        found,
        vec![(second.id, b"docs/1/later.txt".to_vec(), FoundKind::File)]
    );
    assert_ne!(first.id, second.id);
}

#[test]
fn a_tree_that_cannot_be_read_is_named_and_the_search_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (src, path) = (dir.path().join("src"), dir.path().join("store"));
    make_tree(&src);
    let store = create_store(&path, None);
    backup_dir(&store, &src);
    std::fs::write(src.join("docs/0/later.txt"), "x").unwrap();
    backup_dir(&store, &src);
    // The packs of the first backup (every tree of the unchanged folders)
    // are gone; the second's new trees remain.
    let packs = path.join("packs");
    let mut files: Vec<_> = walkdir(&packs);
    files.sort_by_key(|f| std::fs::metadata(f).unwrap().modified().unwrap());
    std::fs::remove_file(&files[0]).unwrap();
    let store = open_store(&path, None).unwrap();
    let snapshots = kast_engine::browse::snapshots(&store).unwrap().snapshots;
    let index = store.index().unwrap();
    let mut found = Vec::new();
    let stats = kast_engine::find::find(
        &store,
        &index,
        &snapshots,
        &|n| n.ends_with(b".txt"),
        &mut |id, _, f| {
            found.push((*id, f.path.clone()));
            Ok(())
        },
    )
    .unwrap();
    assert!(!stats.unreadable.is_empty());
    // What is readable is still found: the second backup's new file.
    assert!(
        found.iter().any(|(_, p)| p == b"docs/0/later.txt"),
        "{found:?}"
    );
    let again: HashSet<Id> = stats.unreadable.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        again.len(),
        stats.unreadable.len(),
        "each damaged tree named once"
    );
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}
