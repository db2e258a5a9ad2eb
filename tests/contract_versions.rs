//! Connectors built against an older contract keep working: the fixtures
//! in tests/fixtures/ were built once, each against the contract version
//! its folder names, and are never rebuilt.

use kast_test_support::common;

use kast_test_support::user;

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

#[test]
fn the_built_in_plugins_speak_the_newest_contract() {
    let u = User::new();
    let listed = u.json(&["plugin", "list"]);
    for name in ["fs", "sftp", "ftp", "s3"] {
        let plugin = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is built in: {listed}"));
        assert_eq!(plugin["contract"], "0.2.0", "{plugin}");
    }
}

/// The SDK is a crate that can be published as it is (its contract inside
/// it), and the binary writes out the very same files for plugin authors.
#[test]
fn the_sdk_packages_and_comes_out_of_the_binary() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = repo.join("target/sdk-package");
    let out = std::process::Command::new(env!("CARGO"))
        .args(["package", "--allow-dirty", "--manifest-path"])
        .arg(repo.join("sdk/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo package of the SDK failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packaged = target.join("package/kast-sdk-0.2.0");
    let written = tempfile::tempdir().unwrap();
    let dir = written.path().join("kast-sdk");
    let u = User::new();
    let said = u.ok(&["plugin", "sdk", dir.to_str().unwrap()]);
    assert!(said.contains("kast:connector@0.2.0"), "{said}");
    // Every source file of the packaged crate, so a file the SDK gains is
    // never left out of what `plugin sdk` writes.
    let sources = std::fs::read_dir(packaged.join("src"))
        .unwrap()
        .map(|e| format!("src/{}", e.unwrap().file_name().to_str().unwrap()));
    let files: Vec<String> = sources
        .chain(["wit/connector.wit".into(), "README.md".into()])
        .collect();
    assert!(files.len() > 5, "{files:?}");
    for file in &files {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(packaged.join(file)).unwrap(),
            "{file}"
        );
    }
    assert_eq!(
        std::fs::read(dir.join("wit/connector.wit")).unwrap(),
        std::fs::read(repo.join("wit/0.2.0/connector.wit")).unwrap()
    );
    // Never over what is there.
    let again = u.kast(&["plugin", "sdk", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        user::stderr(&again).contains("already exists"),
        "{}",
        user::stderr(&again)
    );
}
