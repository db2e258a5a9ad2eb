//! Connectors built against an older contract keep working: the fixtures
//! in tests/fixtures/ were built once, each against the contract version
//! its folder names, and are never rebuilt.

#[path = "../host/engine/tests/common/mod.rs"]
mod common;

#[path = "user.rs"]
mod user;

use std::path::Path;
use user::User;

const DIR01: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/contract-0.1/dir01.wasm"
);

/// Every file under `root` (UTF-8 names only: what dir01 serves), by
/// path, with its bytes and its modification time in seconds.
fn files(root: &Path) -> Vec<(String, Vec<u8>, i64)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                use std::os::unix::fs::MetadataExt;
                let name = entry
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string();
                out.push((name, std::fs::read(entry.path()).unwrap(), meta.mtime()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_connector_built_against_0_1_serves_every_role_as_it_did() {
    let mut u = User::new();
    let installed = u.ok(&["plugin", "install", DIR01]);
    assert!(installed.contains("installed dir01 0.1.0"), "{installed}");
    let info = u.ok(&["plugin", "info", "dir01"]);
    assert!(info.contains("contract     kast:connector@0.1.0"), "{info}");
    let listed = u.json(&["plugin", "list"]);
    let dir01 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "dir01")
        .unwrap();
    assert_eq!(dir01["contract"], "0.1.0");
    // The store, the source and the destination all through the fixture.
    u.location = format!("dir01://{}", u.store.display());
    u.create();
    let src = u.path("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("a/small.txt"), b"hello, 0.1\n").unwrap();
    common::write_random_file(&src.join("a/b/big.bin"), 5 << 20, 1);
    common::write_random_file(&src.join("a/b/mid.bin"), 300 << 10, 2);
    let source = format!("dir01://{}", src.display());
    let backup = u.json(&["backup", &source]);
    assert_eq!(backup["snapshots"][0]["files"], 4, "{backup}");
    let out = u.path("out");
    let destination = format!("dir01://{}", out.display());
    u.ok(&["restore", "latest", "--to", &destination]);
    assert_eq!(files(&src), files(&out));
    u.ok(&["check"]);
    // A second backup of the same tree through it adds no data.
    let again = u.json(&["backup", &source]);
    assert_eq!(again["snapshots"][0]["files_unchanged"], 4, "{again}");
}
