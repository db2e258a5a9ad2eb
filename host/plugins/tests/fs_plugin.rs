//! The built-in fs plugins pass what the native connectors pass: a round
//! trip keeps bytes and metadata (odd names, modes, times, symlinks), a
//! second backup adds nothing, damage is found, and a store written through
//! the plugin is the same store natively.

#[path = "../../engine/tests/common/mod.rs"]
mod common;

use common::*;
use kast_engine::check::{CheckOptions, check};
use kast_engine::storage::ObjectKind;
use kast_engine::{BackupOptions, RestoreOptions, Store};
use kast_plugins::Host;

struct Setup {
    dir: tempfile::TempDir,
    host: Host,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Some(dir.path().join("cache")), None).unwrap();
        Setup { dir, host }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self, name: &str) -> String {
        format!("fs://{}", self.path(name).display())
    }

    fn create(&self) -> Store {
        let storage = self.host.storage(&self.url("store")).unwrap();
        Store::create(storage, PASS, &create_options(), Some(self.path("cache"))).unwrap()
    }

    fn backup(&self, store: &Store, source: &str) -> kast_engine::BackupOutcome {
        let source = self.host.source(source).unwrap();
        kast_engine::backup(store, &source, &BackupOptions::default()).unwrap()
    }

    fn restore(
        &self,
        store: &Store,
        id: &kast_engine::crypto::Id,
        target: &str,
    ) -> kast_engine::RestoreOutcome {
        let dest = self.host.destination(target).unwrap();
        kast_engine::restore(store, id, b"", &dest, &RestoreOptions::default()).unwrap()
    }
}

#[test]
fn round_trip_through_the_plugins_keeps_bytes_and_metadata() {
    let s = Setup::new();
    let src = s.path("src");
    generate_tree(&src, 7, 40 << 20);
    std::fs::write(src.join("with-xattr"), b"x").unwrap();
    let _ = xattr::set(src.join("with-xattr"), "user.kast", b"kept");
    let store = s.create();
    let outcome = s.backup(&store, src.to_str().unwrap());
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    assert_eq!(outcome.snapshot.summary.files, 311);
    let restored = s.restore(&store, &outcome.id, &s.url("out"));
    assert!(restored.errors.is_empty(), "{:?}", restored.errors);
    assert_same_tree(&src, &s.path("out"));
    if xattr::get(src.join("with-xattr"), "user.kast")
        .ok()
        .flatten()
        .is_some()
    {
        assert_eq!(
            xattr::get(s.path("out/with-xattr"), "user.kast")
                .unwrap()
                .as_deref(),
            Some(&b"kept"[..])
        );
    }

    // The same store opens natively, and its snapshot restores natively.
    let native = open_store(&s.path("store"), None).unwrap();
    let out = s.path("native-out");
    let dest = kast_engine::local::LocalDestination::new(&out).unwrap();
    kast_engine::restore(&native, &outcome.id, b"", &dest, &RestoreOptions::default()).unwrap();
    assert_same_tree(&src, &out);
}

#[test]
fn a_second_backup_through_the_plugins_adds_nothing() {
    let s = Setup::new();
    let src = s.path("src");
    generate_tree(&src, 8, 8 << 20);
    let store = s.create();
    let first = s.backup(&store, src.to_str().unwrap());
    let second = s.backup(&store, src.to_str().unwrap());
    assert_eq!(second.snapshot.summary.blobs_added, 0);
    assert_eq!(
        second.snapshot.summary.files_read, 0,
        "unchanged files are not read again"
    );
    assert_eq!(second.snapshot.root, first.snapshot.root);
}

#[test]
fn damage_is_found_through_the_plugin() {
    let s = Setup::new();
    let src = s.path("src");
    generate_tree(&src, 9, 2 << 20);
    let store = s.create();
    let outcome = s.backup(&store, src.to_str().unwrap());
    assert!(check(&store, &CheckOptions::default()).unwrap().is_clean());
    let pack = store.storage().list(ObjectKind::Pack).unwrap().remove(0);
    let path = s.path("store/packs").join(&pack.name[..2]).join(&pack.name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let report = check(&store, &CheckOptions::default()).unwrap();
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.object.contains(&pack.name[..8])),
        "{:?}",
        report.damage
    );
    let _ = outcome;
}

#[test]
fn a_single_file_location_backs_up_just_that_file() {
    let s = Setup::new();
    let file = s.path("lonely.txt");
    std::fs::write(&file, b"just me").unwrap();
    std::fs::write(s.path("sibling.txt"), b"not me").unwrap();
    let store = s.create();
    let outcome = s.backup(&store, file.to_str().unwrap());
    assert_eq!(outcome.snapshot.summary.files, 1);
    s.restore(&store, &outcome.id, &s.url("out"));
    assert_eq!(std::fs::read(s.path("out/lonely.txt")).unwrap(), b"just me");
    assert!(!s.path("out/sibling.txt").exists());
}

#[test]
fn restoring_never_overwrites_without_asking() {
    let s = Setup::new();
    let src = s.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"from the snapshot").unwrap();
    let store = s.create();
    let outcome = s.backup(&store, src.to_str().unwrap());
    std::fs::create_dir(s.path("out")).unwrap();
    std::fs::write(s.path("out/a"), b"precious").unwrap();
    let dest = s.host.destination(&s.url("out")).unwrap();
    let err = kast_engine::restore(&store, &outcome.id, b"", &dest, &RestoreOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("exist"), "{err}");
    assert_eq!(std::fs::read(s.path("out/a")).unwrap(), b"precious");
}
