//! End to end over FTP, with the real `kast` binary and a real vsftpd on
//! loopback: a store on the server, a source on the server, a restore to
//! the server, and a server that dies in the middle of a backup.

use kast_test_support::common;
use kast_test_support::servers;
use kast_test_support::user;

use common::{assert_same_tree, ftp_tree, ftp_view, generate_tree};
use servers::vsftpd::Vsftpd;
use std::time::{Duration, Instant};
use user::{User, stderr};

/// A user whose store lives on `server`.
fn remote_user(server: &Vsftpd) -> User {
    let mut u = User::new();
    u.location = server.url(&u.store);
    u
}

#[test]
fn store_source_and_destination_on_an_ftp_server() {
    let server = Vsftpd::start();
    let u = remote_user(&server);
    let src = u.path("src");
    generate_tree(&src, 31, 6 << 20);
    u.create();

    // A local tree into the FTP store, and back, exactly.
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

    // An FTP source into a local store, restored locally and onto the
    // server (all but the link, which FTP cannot make: exit code 1 says so).
    let tree = u.path("tree");
    ftp_tree(&tree);
    let local = User::new();
    local.create();
    local.ok(&["backup", &server.url(&tree)]);
    let back = local.path("back");
    local.ok(&["restore", "latest", "--to", back.to_str().unwrap()]);
    assert_eq!(ftp_view(&tree, true), ftp_view(&back, true));
    let remote_out = u.path("restored-on-server");
    let out = local.kast(&["restore", "latest", "--to", &server.url(&remote_out)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("link"), "{}", stderr(&out));
    assert_eq!(ftp_view(&tree, false), ftp_view(&remote_out, false));
}

#[test]
fn a_server_killed_mid_backup_leaves_a_store_the_next_backup_accepts() {
    let mut server = Vsftpd::start();
    let u = remote_user(&server);
    let src = u.path("src");
    generate_tree(&src, 32, 160 << 20);
    u.create();

    let child = u.spawn(&["backup", src.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let packs = u.store.join("packs");
    while std::fs::read_dir(&packs).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "the backup never stored a pack");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("127.0.0.1"), "{}", stderr(&out));

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

/// FTP has no hard links, and servers differ on which times they can set
/// (none before 1970 on any of them): a restore onto each server writes
/// every byte, makes a linked file two files, and says so once per kind
/// with a count; the exit code stays 0, since nothing was lost but what
/// the protocol cannot hold.
#[test]
fn a_restore_to_any_ftp_server_reports_links_and_times_it_cannot_keep() {
    use servers::ftp_servers::{FtpServer, Proftpd, Pyftpdlib};
    use std::os::unix::fs::MetadataExt;
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    for (name, secs) in [("before-1970", -86_400), ("linked", 1_600_000_000)] {
        std::fs::write(src.join(name), name.as_bytes()).unwrap();
        let t = filetime::FileTime::from_unix_time(secs, 0);
        filetime::set_file_mtime(src.join(name), t).unwrap();
    }
    std::fs::hard_link(src.join("linked"), src.join("dir/linked-too")).unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);

    let servers: Vec<Box<dyn FtpServer>> = vec![
        Box::new(Vsftpd::start()),
        Box::new(Pyftpdlib::start()),
        Box::new(Proftpd::start()),
    ];
    for server in &servers {
        let name = server.name();
        let out_dir = u.path(&format!("on-{name}"));
        let out = u.kast(&["--json", "restore", "latest", "--to", &server.url(&out_dir)]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let count = |kind: &str| {
            doc["losses"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["kind"] == kind)
                .map(|l| l["count"].as_u64().unwrap())
        };
        assert_eq!(count("hard_links"), Some(1), "{name}: {doc}");
        let metadata = count("metadata").unwrap_or(0);
        assert!(
            metadata >= 1,
            "{name}: the time before 1970 is reported: {doc}"
        );
        for file in ["before-1970", "linked", "dir/linked-too"] {
            let want: &[u8] = if file == "before-1970" {
                b"before-1970"
            } else {
                b"linked"
            };
            assert_eq!(
                std::fs::read(out_dir.join(file)).unwrap(),
                want,
                "{name}: {file}"
            );
        }
        let inode = |p: &str| std::fs::metadata(out_dir.join(p)).unwrap().ino();
        assert_ne!(inode("linked"), inode("dir/linked-too"), "{name}");
        assert_eq!(
            std::fs::metadata(out_dir.join("linked")).unwrap().mtime(),
            1_600_000_000,
            "{name}: a time FTP can set is kept"
        );

        // Again onto the same folder: refused before anything is written,
        // then every file left as it is.
        let url = server.url(&out_dir);
        let again = u.kast(&["restore", "latest", "--to", &url]);
        assert_eq!(again.status.code(), Some(1), "{name}");
        assert!(
            stderr(&again).contains("already holds 3 of the entries"),
            "{name}: {}",
            stderr(&again)
        );
        let kept = u.json(&["restore", "latest", "--to", &url, "--overwrite", "never"]);
        assert_eq!(kept["skipped"], 3, "{name}: {kept}");
    }
}

/// A server that takes two connections from one address, fewer than kast
/// opens for a restore's parallel reads: the reads share the two.
#[test]
fn a_server_that_takes_two_connections_still_serves_a_whole_restore() {
    let server = Vsftpd::start_with(&["max_per_ip=2"]);
    let u = remote_user(&server);
    let src = u.path("src");
    generate_tree(&src, 23, 24 << 20);
    u.create();
    u.ok(&["backup", src.to_str().unwrap()]);
    u.ok(&["check"]);
    let out = u.path("out");
    u.ok(&["restore", "latest", "--to", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
}

/// The same limit for a backup from the server: the connections that fetch
/// small files ahead are refused past the second, and the walk reads what
/// they would have.
#[test]
fn a_server_that_takes_two_connections_is_still_a_whole_source() {
    let server = Vsftpd::start_with(&["max_per_ip=2"]);
    let u = User::new();
    let tree = u.path("tree");
    ftp_tree(&tree);
    u.create();
    u.ok(&["backup", &server.url(&tree)]);
    let back = u.path("back");
    u.ok(&["restore", "latest", "--to", back.to_str().unwrap()]);
    assert_eq!(ftp_view(&tree, true), ftp_view(&back, true));
}

/// A backup from each FTP server implementation the tests run, with the
/// small files fetched ahead on connections of their own beside the walk's:
/// every server gives back every file's bytes. (What else comes back
/// differs by server: pyftpdlib lists no modes and follows links.)
#[test]
fn every_ftp_server_is_a_whole_source() {
    use servers::ftp_servers::{FtpServer, Proftpd, Pyftpdlib};
    let u = User::new();
    u.create();
    let tree = u.path("tree");
    ftp_tree(&tree);
    let servers: Vec<Box<dyn FtpServer>> = vec![
        Box::new(Vsftpd::start()),
        Box::new(Pyftpdlib::start()),
        Box::new(Proftpd::start()),
    ];
    for server in &servers {
        let name = server.name();
        let out = u.kast(&["backup", "--tag", name, &server.url(&tree)]);
        // ProFTPD's MLSD names no symlink's target: said, and exit code 4.
        let link_untold = stderr(&out).contains("does not say where this symlink points");
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(4) && link_untold,
            "{name}: {}",
            stderr(&out)
        );
        let back = u.path(&format!("from-{name}"));
        let to = back.to_str().unwrap();
        let out = u.kast(&["restore", "latest", "--tag", name, "--to", to]);
        let link_only = stderr(&out).contains("link: was not backed up whole");
        assert!(
            out.status.success() || link_untold && link_only,
            "{name}: {}",
            stderr(&out)
        );
        let mut compared = 0;
        let mut pending = vec![tree.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    pending.push(entry.path());
                } else if kind.is_file() {
                    let got = std::fs::read(back.join(entry.path().strip_prefix(&tree).unwrap()));
                    let want = std::fs::read(entry.path()).unwrap();
                    assert!(
                        got.is_ok_and(|got| got == want),
                        "{name}: {:?}",
                        entry.path()
                    );
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 45, "{name}");
    }
}
