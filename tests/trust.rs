//! What a storage or a user can hand kast that must get a clear answer:
//! key objects that ask for endless work, a store id that would name a
//! file elsewhere, a storage that hides the newest snapshot, secrets in a
//! location, malformed locations, mounted pseudo filesystems. Through the
//! real binary, on a local store whose plaintext objects the test edits as
//! a hostile server would.

use kast_test_support::user;

use std::time::{Duration, Instant};
use user::{User, stderr};

fn fails_clearly(out: &std::process::Output, needle: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// The one key object of a store.
fn key_file(u: &User) -> std::path::PathBuf {
    let keys: Vec<_> = std::fs::read_dir(u.store.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), 1);
    keys.into_iter().next().unwrap()
}

#[test]
fn a_key_object_that_asks_for_endless_work_is_refused_by_name() {
    let u = User::new();
    u.create();
    let key = key_file(&u);
    let name = key.file_name().unwrap().to_str().unwrap().to_string();
    let honest = std::fs::read_to_string(&key).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&honest).unwrap();
    for (field, value) in [
        ("memory_kib", 4u64 << 20),
        ("iterations", 100_000),
        ("lanes", 1 << 24),
    ] {
        let mut hostile = json.clone();
        hostile["kdf"][field] = value.into();
        std::fs::write(&key, serde_json::to_vec(&hostile).unwrap()).unwrap();
        let started = Instant::now();
        let err = fails_clearly(&u.kast(&["ls"]), &format!("key {name}"));
        assert!(err.contains("Argon2id"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "it did the work"
        );
    }
    json["kdf"]["iterations"] = 1.into();
    std::fs::write(&key, serde_json::to_vec(&json).unwrap()).unwrap();
    u.ok(&["ls"]);
}

#[test]
fn a_store_id_that_is_a_path_opens_no_file() {
    let u = User::new();
    u.create();
    let planted = u.path("planted");
    std::fs::create_dir_all(planted.join("keys")).unwrap();
    let config = u.store.join("config");
    let honest = std::fs::read_to_string(&config).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&honest).unwrap();
    for id in [planted.join("x").display().to_string(), "../../..".into()] {
        json["store_id"] = id.into();
        std::fs::write(&config, serde_json::to_vec(&json).unwrap()).unwrap();
        fails_clearly(&u.kast(&["ls"]), "store id");
    }
}

#[test]
fn a_snapshot_gone_without_rm_is_warned_about_and_restore_names_its_pick() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"first").unwrap();
    let first = u.json(&["backup", src.to_str().unwrap()])["snapshots"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(src.join("f"), b"second").unwrap();
    let second = u.json(&["backup", src.to_str().unwrap()])["snapshots"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The storage hides the newest snapshot.
    let hidden = u.store.join("snapshots").join(&second);
    let kept = u.path("hidden-snapshot");
    std::fs::rename(&hidden, &kept).unwrap();
    let out = u.path("out");
    let restored = u.kast(&["restore", "latest", "--to", out.to_str().unwrap()]);
    let said = stderr(&restored);
    assert!(restored.status.success(), "{said}");
    assert!(
        said.contains(&second[..8]) && said.contains("gone"),
        "{said}"
    );
    assert!(
        said.contains(&format!("restoring snapshot {}", &first[..8])),
        "{said}"
    );
    assert_eq!(std::fs::read(out.join("f")).unwrap(), b"first");
    let listed = u.kast(&["ls"]);
    assert!(stderr(&listed).contains(&second[..8]), "ls warns too");
    // Back, then removed with kast rm: no warning.
    std::fs::rename(&kept, &hidden).unwrap();
    u.ok(&["rm", &second]);
    let listed = u.kast(&["ls"]);
    assert!(!stderr(&listed).contains("gone"), "{}", stderr(&listed));
}

#[test]
fn secrets_in_a_location_are_never_printed_or_recorded() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let location = format!("fs://{}?password=hunter2&token=tok3n", src.display());
    let out = u.kast(&["backup", &location]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    for text in [printed, u.ok(&["--json", "ls"]), u.ok(&["ls"])] {
        assert!(
            !text.contains("hunter2") && !text.contains("tok3n"),
            "{text}"
        );
        assert!(text.contains("password=***"), "{text}");
    }
    // The same source with another password: the same source, so the
    // second backup finds its parent and reads nothing again.
    let again = format!("fs://{}?password=other&token=t", src.display());
    let second = u.json(&["backup", &again]);
    assert_eq!(second["snapshots"][0]["files_unchanged"], 1, "{second}");
    // A failing connection's error names the host, not the password.
    let mut remote = User::new();
    remote.location = "sftp://me:hunter2@127.0.0.1:1/x".into();
    let err = stderr(&remote.kast(&["ls"]));
    assert!(
        !err.contains("hunter2") && err.contains("127.0.0.1"),
        "{err}"
    );
    let err = stderr(&u.kast(&["location", "add", "nas", "ftp://me:hunter2@h:x/p"]));
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn malformed_locations_are_errors_not_panics() {
    let mut u = User::new();
    for bad in [
        "sftp://127.0.0.1:1/%aé",
        "sftp://[::1/x",
        "ftp://h:99999/x",
        "%%%://x",
        "s3://é/%",
    ] {
        u.location = bad.into();
        let out = u.kast(&["ls"]);
        assert!(
            !stderr(&out).contains("panicked"),
            "{bad}: {}",
            stderr(&out)
        );
        assert_ne!(out.status.code(), Some(101), "{bad}");
    }
    // `fs://` alone names no folder: an error, not a backup of `/`.
    let u = User::new();
    u.create();
    let started = Instant::now();
    fails_clearly(&u.kast(&["backup", "fs://"]), "a path is missing");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn pseudo_filesystems_are_left_out_and_one_file_system_stays_home() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir_all(src.join("proc")).unwrap();
    std::fs::create_dir_all(src.join("other")).unwrap();
    std::fs::write(src.join("kept"), b"kept").unwrap();
    // A mount namespace of its own: a proc and a tmpfs under the source.
    let script = format!(
        "mount -t proc proc {0}/proc && mount -t tmpfs tmpfs {0}/other && \
         echo inside > {0}/other/file && exec \"$@\"",
        src.display()
    );
    let run = |args: &[&str]| u.kast_under(&["unshare", "-m", "sh", "-c", &script, "sh"], args);
    let out = run(&["--json", "backup", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped = &doc["snapshots"][0]["skipped_mounts"];
    assert_eq!(skipped[0]["path"], "proc", "{doc}");
    assert_eq!(skipped[0]["fs_type"], "proc", "{doc}");
    assert_eq!(skipped.as_array().unwrap().len(), 1, "{doc}");
    let said = stderr(&run(&["backup", src.to_str().unwrap()]));
    assert!(said.contains("proc (proc)"), "{said}");
    let listed = u.ok(&["ls", "latest:other"]);
    assert!(listed.contains("file"), "{listed}");
    assert_eq!(u.ok(&["ls", "latest:proc"]).trim(), "");

    let out = run(&[
        "--json",
        "backup",
        "--one-file-system",
        src.to_str().unwrap(),
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = doc["snapshots"][0]["skipped_mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["other", "proc"], "{doc}");
    assert_eq!(u.ok(&["ls", "latest:other"]).trim(), "");
    assert!(u.ok(&["ls", "latest"]).contains("kept"));
}
