//! End to end over SFTP, with the real `kast` binary and a real OpenSSH
//! server on loopback: a store on the server, a source on the server, a
//! restore to the server, and a server that dies in the middle of a backup.

use kast_test_support::common;
use kast_test_support::servers;
use kast_test_support::user;

use common::{assert_same_tree, assert_same_tree_to_the_second, generate_tree};
use servers::sshd::Sshd;
use std::time::{Duration, Instant};
use user::{User, stderr};

/// A user whose store lives on `server`.
fn remote_user(server: &Sshd) -> User {
    let mut u = User::new();
    u.location = server.url(&u.store);
    u
}

#[test]
fn store_source_and_destination_on_an_ssh_server() {
    let server = Sshd::start();
    let u = remote_user(&server);
    let src = u.path("src");
    generate_tree(&src, 21, 6 << 20);
    u.create();

    // A local tree into the SFTP store, and back.
    let backup = u.json(&["backup", src.to_str().unwrap()]);
    let id = backup["snapshots"][0]["id"].as_str().unwrap().to_string();
    assert!(
        u.store.join("config").is_file(),
        "the store is on the server"
    );
    u.ok(&["check"]);
    let out = u.path("out");
    u.ok(&["restore", &id, "--to", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);

    // An SFTP source into a local store; restored, then restored again to
    // the server (times are whole seconds over SFTP).
    let local = User::new();
    local.create();
    let remote_src = server.url(&src);
    let from_server = local.json(&["backup", &remote_src]);
    assert_eq!(
        from_server["snapshots"][0]["files"],
        backup["snapshots"][0]["files"]
    );
    let out = local.path("from-server");
    local.ok(&["restore", "latest", "--to", out.to_str().unwrap()]);
    assert_same_tree_to_the_second(&src, &out);
    let remote_out = u.path("restored-on-server");
    local.ok(&["restore", "latest", "--to", &server.url(&remote_out)]);
    assert_same_tree_to_the_second(&src, &remote_out);

    // An unchanged SFTP source: the second backup reads no file.
    let again = local.json(&["backup", &remote_src]);
    assert_eq!(again["snapshots"][0]["files_new_or_changed"], 0);
}

#[test]
fn bad_credentials_and_an_impostor_fail_before_anything_is_written() {
    let server = Sshd::start();
    let mut u = User::new();
    let store = u.path("store");
    let stranger = format!(
        "{}?identity={}&known_hosts={}",
        server.bare_url(&store),
        server.path("id_stranger").display(),
        server.path("known_hosts").display()
    );
    u.location = stranger;
    let out = u.kast(&["create", "--kdf-memory-mib", "8", "--kdf-iterations", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused to log in"),
        "{}",
        stderr(&out)
    );

    // The user's own known_hosts is used when none is named; it does not
    // know this server.
    let no_known_hosts = format!(
        "{}?identity={}",
        server.bare_url(&store),
        server.path("id_ed25519").display()
    );
    u.location = no_known_hosts;
    let out = u.kast(&["create"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown host") && stderr(&out).contains("ssh-keyscan"),
        "{}",
        stderr(&out)
    );
    assert!(!store.exists(), "nothing was written");
}

#[test]
fn a_server_killed_mid_backup_leaves_a_store_the_next_backup_accepts() {
    let mut server = Sshd::start();
    let u = remote_user(&server);
    let src = u.path("src");
    generate_tree(&src, 22, 160 << 20);
    u.create();

    let child = u.spawn(&["backup", src.to_str().unwrap()]);
    // Kill the server once the backup has stored its first pack.
    let deadline = Instant::now() + Duration::from_secs(60);
    let packs = u.store.join("packs");
    while std::fs::read_dir(&packs).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "the backup never stored a pack");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        // A connection in use is cut, or a new one (packs go up on several)
        // is refused.
        message.contains("closed the connection")
            || message.contains("connection to")
            || message.contains("cannot connect"),
        "{message}"
    );

    server.restart();
    assert!(
        u.snapshot_ids().is_empty(),
        "no snapshot from the dead backup"
    );
    u.ok(&["check"]);
    u.ok(&["backup", src.to_str().unwrap()]);
    u.ok(&["check"]);
    let out = u.path("out");
    u.ok(&["restore", "latest", "--to", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
}

/// SFTP version 3 carries times as u32 seconds (1970 to 2106) and has no
/// hard links: a restore onto the server writes every byte, keeps the
/// times it can, and says, once per kind and with a count, what it could
/// not keep.
#[test]
fn a_restore_to_the_server_reports_times_and_links_it_cannot_keep() {
    use std::os::unix::fs::MetadataExt;
    let server = Sshd::start();
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    let times = [
        ("before-1970", -86_400),
        ("after-2106", 4_400_000_000),
        ("plain", 1_700_000_000),
        ("linked", 1_600_000_000),
    ];
    for (name, secs) in times {
        std::fs::write(src.join(name), name.as_bytes()).unwrap();
        let t = filetime::FileTime::from_unix_time(secs, 0);
        filetime::set_file_mtime(src.join(name), t).unwrap();
    }
    std::fs::hard_link(src.join("linked"), src.join("dir/linked-too")).unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);

    let out_dir = u.path("on-server");
    let out = u.kast(&["--json", "restore", "latest", "--to", &server.url(&out_dir)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let losses = doc["losses"].as_array().unwrap();
    let count = |kind: &str| {
        losses
            .iter()
            .find(|l| l["kind"] == kind)
            .map(|l| l["count"].as_u64().unwrap())
    };
    assert_eq!(count("metadata"), Some(2), "{doc}");
    assert_eq!(count("hard_links"), Some(1), "{doc}");
    assert_eq!(doc["hard_links"], 0, "{doc}");

    // Every byte is there; the times SFTP holds are kept to the second,
    // and the linked file is two files.
    for (name, secs) in times {
        let meta = std::fs::metadata(out_dir.join(name)).unwrap();
        assert_eq!(std::fs::read(out_dir.join(name)).unwrap(), name.as_bytes());
        if name == "plain" || name == "linked" {
            assert_eq!(meta.mtime(), secs, "{name}");
        }
    }
    assert_eq!(
        std::fs::read(out_dir.join("dir/linked-too")).unwrap(),
        b"linked"
    );
    assert_ne!(
        std::fs::metadata(out_dir.join("linked")).unwrap().ino(),
        std::fs::metadata(out_dir.join("dir/linked-too"))
            .unwrap()
            .ino()
    );

    // In text: one warning per kind, with the count.
    let text = u.kast(&["restore", "latest", "--to", &server.url(&u.path("again"))]);
    assert!(text.status.success(), "{}", stderr(&text));
    let err = stderr(&text);
    assert!(
        err.contains("metadata of 2 entries not kept exactly"),
        "{err}"
    );
    assert!(
        err.contains("1 hard link written as separate copies"),
        "{err}"
    );
}

/// A backup from a server fetches small files ahead, on connections of its
/// own, while it reads large ones itself: files it skips (excluded) in the
/// middle of those fetched, sizes on either side of the limit, empty files
/// and folders between files all come back byte for byte, and the
/// excluded ones not at all.
#[test]
fn files_fetched_ahead_from_a_server_come_back_exactly_and_the_skipped_do_not() {
    let server = Sshd::start();
    let local = User::new();
    local.create();
    let src = local.path("src");
    generate_tree(&src, 41, 3 << 20);
    let mut rng = kast_test_support::common::Rng(41);
    let edge = src.join("edge");
    for (i, len) in [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 2 << 20]
        .into_iter()
        .enumerate()
    {
        std::fs::create_dir_all(edge.join(format!("d{i}"))).unwrap();
        std::fs::write(edge.join(format!("d{i}/inner")), rng.bytes(i * 1000)).unwrap();
        std::fs::write(edge.join(format!("e{i}.bin")), rng.bytes(len)).unwrap();
    }

    // `many/f01**` are 100 of its 300 files, one run of those announced.
    local.ok(&["backup", "--exclude", "f01*", &server.url(&src)]);
    local.ok(&["check"]);
    let out = local.path("out");
    local.ok(&["restore", "latest", "--to", out.to_str().unwrap()]);

    let excluded = |name: &str| name.starts_with("f01");
    let mut compared = 0;
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let back = out.join(path.strip_prefix(&src).unwrap());
            let kind = entry.file_type().unwrap();
            if excluded(&entry.file_name().to_string_lossy()) {
                assert!(!back.exists(), "{} was excluded", back.display());
            } else if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let (want, got) = (std::fs::read(&path).unwrap(), std::fs::read(&back));
                assert!(got.is_ok_and(|got| got == want), "{}", back.display());
                compared += 1;
            }
        }
    }
    assert!(compared > 200, "only {compared} files compared");
}
