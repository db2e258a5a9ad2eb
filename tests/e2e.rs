//! End-to-end tests of the real `kast` binary, as a user runs it: a fresh
//! HOME, a passphrase in the environment, and only the command line.

use kast_test_support::common;

use kast_test_support::user;

use common::{assert_same_tree, generate_tree};
use serde_json::Value;
use std::process::Command;
use user::{User, stderr};

#[test]
fn the_whole_life_of_a_store() {
    let u = User::new();
    let src = u.path("src");
    generate_tree(&src, 3, 5 << 20);
    // Only in the first snapshot: its space comes back after rm + maintenance.
    // Large enough to fill whole packs, whatever order the packer sees chunks
    // in (a pack still three-quarters live is kept as it is, by design).
    common::write_random_file(&src.join("only-first.bin"), 48 << 20, 42);
    u.create();
    let first = u.json(&["backup", "--tag", "daily", src.to_str().unwrap()]);
    let first_id = first["snapshots"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        first["snapshots"][0]["files"], 316,
        "311 generated files and 5 hard links"
    );

    // ls, cat
    let listing = u.ok(&["ls", &format!("{}:many", &first_id[..8])]);
    assert_eq!(
        listing.lines().count(),
        302,
        "a header, 300 files and one hard link"
    );
    assert!(listing.starts_with("permissions  uid  gid"), "{listing}");
    let cat = u.kast(&["cat", &format!("{first_id}:héllo wörld ✓.txt")]);
    assert_eq!(
        cat.stdout,
        std::fs::read(src.join("héllo wörld ✓.txt")).unwrap()
    );

    // change, second backup, diff
    std::fs::write(src.join("many/f0001.bin"), b"changed").unwrap();
    std::fs::write(src.join("new.txt"), b"new").unwrap();
    std::fs::remove_file(src.join("only-first.bin")).unwrap();
    let second = u.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(second["snapshots"][0]["files_new_or_changed"], 2);
    assert_eq!(second["snapshots"][0]["files_new"], 1);
    assert_eq!(second["snapshots"][0]["files_changed"], 1);
    let diff = u.json(&["diff", &first_id, "latest"]);
    let changes: Vec<(String, String)> = diff
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        changes.contains(&("new.txt".into(), "added".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("many/f0001.bin".into(), "modified".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("only-first.bin".into(), "removed".into())),
        "{changes:?}"
    );
    // A mode changed alone: a metadata change that names the field, and the
    // text's totals say what the marks mean.
    let exe = src.join("new.txt");
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);
    let diff = u.json(&["diff", "latest~1", "latest"]);
    let entry = diff
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "new.txt")
        .unwrap();
    assert_eq!(entry["change"], "metadata", "{diff}");
    assert_eq!(entry["metadata"], serde_json::json!(["mode"]), "{diff}");
    let text = u.ok(&["diff", "latest~1", "latest"]);
    assert!(text.contains("U new.txt  [mode]"), "{text}");
    assert!(
        text.contains(
            "0 added (+), 0 removed (-), 0 modified (M: content), 1 with metadata changes only"
        ),
        "{text}"
    );

    // restore and compare bytes and metadata
    let out = u.path("restored");
    u.ok(&["restore", "latest", "--to", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
    // a path inside a snapshot, to a URL
    let part = u.path("part");
    u.ok(&[
        "restore",
        &format!("{first_id}:many"),
        "--to",
        &format!("fs://{}", part.display()),
    ]);
    assert_eq!(std::fs::read_dir(&part).unwrap().count(), 301);

    // rm + maintenance + check
    u.ok(&["rm", &first_id]);
    assert_eq!(u.snapshot_ids().len(), 2);
    let m = u.json(&["maintenance", "--grace-seconds", "0"]);
    assert!(m["bytes_freed"].as_u64().unwrap() >= 24 << 20, "{m}");
    assert_eq!(m["states_after"], 1, "{m}");
    let check = u.json(&["check"]);
    assert_eq!(check["clean"], true);
    let info = u.json(&["info"]);
    assert_eq!(info["snapshots"], 2);
    // check and maintenance built their index in a scratch folder of the
    // cache, and took it away.
    let cache = u
        .path(".cache/kast")
        .join(info["store_id"].as_str().unwrap());
    assert!(cache.join("index").is_dir(), "{}", cache.display());
    let left: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("scratch-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn clear_errors_and_exit_codes() {
    let u = User::new();
    // missing store
    let out = u.kast(&["ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no store at"), "{}", stderr(&out));
    assert!(stderr(&out).contains("kast create"));
    assert!(!u.store.exists(), "looking for a store must not create one");

    u.create();
    let src = u.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"from the snapshot").unwrap();
    std::fs::write(src.join("b"), b"not in the way").unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);

    // wrong passphrase
    let out = u.kast_with(&["ls"], "not it");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong passphrase for store"),
        "{}",
        stderr(&out)
    );

    // unknown snapshot
    let out = u.kast(&["ls", "ffffffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no snapshot matches 'ffffffff'"),
        "{}",
        stderr(&out)
    );

    // usage
    assert_eq!(u.kast(&["restore", "latest"]).status.code(), Some(2));

    // A restore with a file in its way writes nothing, names it and says
    // how to choose; `--overwrite never` restores the rest around it, and
    // `--force` replaces it.
    let out_dir = u.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("a"), b"precious").unwrap();
    let to = out_dir.to_str().unwrap();
    let out = u.kast(&["restore", "latest", "--to", to]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("already holds 1 of the entries being restored (a)"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert!(
        err.contains("--overwrite never|if-newer|if-changed|always"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 1);
    assert_eq!(std::fs::read(out_dir.join("a")).unwrap(), b"precious");
    let kept = u.json(&["restore", "latest", "--to", to, "--overwrite", "never"]);
    assert_eq!(kept["skipped"], 1, "{kept}");
    assert_eq!(kept["first_skipped"], "a", "{kept}");
    assert_eq!(std::fs::read(out_dir.join("a")).unwrap(), b"precious");
    let text = u.kast(&["restore", "latest", "--to", to, "--overwrite", "never"]);
    assert!(
        stderr(&text).contains("left 2 entries as"),
        "{}",
        stderr(&text)
    );
    u.ok(&["restore", "latest", "--to", to, "--force"]);
    assert_eq!(
        std::fs::read(out_dir.join("a")).unwrap(),
        b"from the snapshot"
    );
    let help = u.kast(&["restore", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("the same as --overwrite always"));

    // A path that is not there names the snapshot looked in.
    let listed = u.json(&["ls"]);
    let id = listed[0]["id"].as_str().unwrap();
    let out = u.kast(&["cat", "latest:nope.txt"]);
    assert!(
        stderr(&out).contains(&format!("no path 'nope.txt' in snapshot {}", &id[..8])),
        "{}",
        stderr(&out)
    );
    // Once a second folder is backed up, `latest` alone is refused and the
    // sources are named; --source picks one, `latest~1` the one before.
    let other = u.path("other");
    std::fs::create_dir(&other).unwrap();
    u.ok(&["backup", other.to_str().unwrap()]);
    let out = u.kast(&["cat", "latest:a"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("'latest' of which?"), "{err}");
    assert!(err.contains(&format!("fs://{}", src.display())), "{err}");
    assert!(err.contains(&format!("fs://{}", other.display())), "{err}");
    let shown = u.ok(&["cat", "latest:a", "--source", src.to_str().unwrap()]);
    assert_eq!(shown, "from the snapshot");
    u.ok(&["backup", src.to_str().unwrap()]);
    let before = u.json(&["info", "latest~1", "--source", src.to_str().unwrap()]);
    assert_eq!(before["id"], id, "{before}");
}

#[test]
fn check_exits_3_on_damage() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    generate_tree(&src, 4, 1 << 20);
    u.ok(&["backup", src.to_str().unwrap()]);
    let packs = u.store.join("packs");
    let fan = std::fs::read_dir(&packs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pack = std::fs::read_dir(&fan)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    let out = u.kast(&["check"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("damaged: pack"));
}

#[test]
fn retention_dry_run_matches_the_real_run() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..5 {
        std::fs::write(src.join("f"), format!("version {i}")).unwrap();
        u.ok(&["backup", src.to_str().unwrap()]);
    }
    let dry = u.json(&["rm", "--keep-last", "2", "--dry-run"]);
    assert_eq!(dry["removed"].as_array().unwrap().len(), 3);
    assert_eq!(u.snapshot_ids().len(), 5, "a dry run removes nothing");
    let real = u.json(&["rm", "--keep-last", "2"]);
    assert_eq!(real["removed"], dry["removed"]);
    let left = u.snapshot_ids();
    let kept: Vec<String> = dry["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    let mut a = left.clone();
    a.sort();
    let mut b = kept.clone();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn keys_locations_and_plugins() {
    let u = User::new();
    u.create();
    let added = u.path("second");
    std::fs::write(&added, "another passphrase\n").unwrap();
    u.ok(&[
        "key",
        "add",
        "--new-passphrase-file",
        added.to_str().unwrap(),
    ]);
    let keys = u.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert_eq!(
        u.kast_with(&["ls"], "another passphrase").status.code(),
        Some(0)
    );

    u.ok(&[
        "location",
        "add",
        "mine",
        &format!("fs://{}", u.store.display()),
    ]);
    let out = Command::new(kast_test_support::user::kast_binary())
        .args(["--store", "@mine", "--json", "info"])
        .env("HOME", u.home.path())
        .env("KAST_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let plugins = u.json(&["plugin", "list"]);
    assert_eq!(plugins[0]["name"], "fs");
    assert_eq!(plugins[0]["builtin"], true);
    assert_eq!(plugins[1]["name"], "ftp");
    assert_eq!(plugins[2]["name"], "http");
    assert_eq!(plugins[3]["name"], "s3");
    assert_eq!(plugins[4]["name"], "sftp");
    let bogus = u.path("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x01\0\0\0").unwrap();
    let out = u.kast(&["plugin", "install", bogus.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a WebAssembly component"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sync_to_a_store_with_another_passphrase_then_restore_from_it() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    generate_tree(&src, 5, 2 << 20);
    u.ok(&["backup", src.to_str().unwrap()]);
    let other = User::with_store(u.path("other-store"));
    other.kast_with(
        &["create", "--kdf-memory-mib", "8", "--kdf-iterations", "1"],
        "different",
    );
    let out = Command::new(kast_test_support::user::kast_binary())
        .args([
            "--store",
            u.store.to_str().unwrap(),
            "--json",
            "sync",
            "--to",
            other.store.to_str().unwrap(),
        ])
        .env("HOME", u.home.path())
        .env("KAST_PASSPHRASE", "correct horse")
        .env("KAST_TO_PASSPHRASE", "different")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let synced: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(synced["copied"].as_array().unwrap().len(), 1);
    let restored = u.path("from-other");
    let out = other.kast_with(
        &["restore", "latest", "--to", restored.to_str().unwrap()],
        "different",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &restored);
}

#[test]
fn a_local_key_file_replaces_the_passphrase_on_this_machine() {
    let u = User::new();
    u.create();
    let saved = u.json(&["key", "save-local"]);
    let path = std::path::PathBuf::from(saved["saved"].as_str().unwrap());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // No passphrase at all, and a wrong one is not even asked for.
    let run = |passphrase: Option<&str>| {
        let mut c = Command::new(kast_test_support::user::kast_binary());
        c.args(["--store", u.store.to_str().unwrap(), "ls"])
            .env_clear()
            .env("HOME", u.home.path());
        if let Some(p) = passphrase {
            c.env("KAST_PASSPHRASE", p);
        }
        c.output().unwrap()
    };
    assert!(run(None).status.success(), "{}", stderr(&run(None)));
    u.ok(&["key", "forget-local"]);
    let out = run(None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no passphrase"), "{}", stderr(&out));
    // A key file that belongs to another store is refused with a clear error.
    std::fs::write(&path, "00".repeat(32)).unwrap();
    let out = run(Some("correct horse"));
    assert!(stderr(&out).contains("does not open"), "{}", stderr(&out));
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    // `kast cat … | head -c 10`: the reader leaves long before the end.
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), vec![b'x'; 4 << 20]).unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);
    let mut child = u.spawn_piped(&["cat", "latest:big"]);
    let mut first = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {err}",
        out.status
    );
}

#[test]
fn excludes_leave_paths_out() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir_all(src.join("cache/deep")).unwrap();
    std::fs::write(src.join("keep.txt"), b"k").unwrap();
    std::fs::write(src.join("drop.tmp"), b"d").unwrap();
    std::fs::write(src.join("cache/deep/x"), b"x").unwrap();
    let patterns = u.path("excludes");
    std::fs::write(&patterns, "# comments are fine\ncache/\n").unwrap();
    u.ok(&[
        "backup",
        "--exclude",
        "*.tmp",
        "--exclude-file",
        patterns.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    let names: Vec<String> = u
        .json(&["ls", "latest"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["keep.txt"]);
}

#[test]
fn ctrl_c_stops_a_backup_cleanly_and_the_next_one_reuses_its_work() {
    stops_cleanly_on("INT");
}

/// An interrupt that nothing checks any more (here `cat` blocked on a full
/// pipe) cannot stop the command: it completes, says so, and exits 0.
#[test]
fn an_interrupt_too_late_to_stop_anything_is_said() {
    use std::io::Read;
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir(&src).unwrap();
    common::write_random_file(&src.join("big"), 8 << 20, 3);
    u.ok(&["backup", src.to_str().unwrap()]);
    let mut child = u.spawn_piped(&["cat", "latest:big"]);
    // Its output fills the pipe and it waits; then the interrupt.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    user::interrupt(&child);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(rest.len() + 1, 8 << 20);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("too late to stop anything: the command completed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sigterm_stops_a_backup_as_ctrl_c_does() {
    stops_cleanly_on("TERM");
}

/// A backup of one large file and a few more, stopped by `signal` once its
/// first pack is stored: it ends within seconds (inside a file, not after
/// it), stores no snapshot, and the next backup reuses what it stored.
fn stops_cleanly_on(signal: &str) {
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir(&src).unwrap();
    common::write_random_file(&src.join("a-large"), 256 << 20, 9);
    for i in 0..2 {
        common::write_random_file(&src.join(format!("f{i}")), 64 << 20, i);
    }
    let child = Command::new(kast_test_support::user::kast_binary())
        .args([
            "--store",
            u.store.to_str().unwrap(),
            "backup",
            src.to_str().unwrap(),
        ])
        .env("HOME", u.home.path())
        .env("KAST_PASSPHRASE", "correct horse")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first pack is on disk, well before the end.
    let packs = u.store.join("packs");
    let started = std::time::Instant::now();
    while std::fs::read_dir(&packs).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no pack appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    user::send_signal(&child, signal);
    let asked = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    // Far less than the rest of the 256 MiB file would take to read.
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "took {:?} to stop",
        asked.elapsed()
    );
    // 130, as a shell reports a command Ctrl-C ended: not a failure.
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(u.snapshot_ids().is_empty());

    let done = u.json(&["backup", src.to_str().unwrap()]);
    let added = done["snapshots"][0]["bytes_added"].as_u64().unwrap();
    assert!(
        added < 384 << 20,
        "the interrupted run's packs were not reused: {added}"
    );
    assert_eq!(u.json(&["check"])["clean"], true);
    let out_dir = u.path("out");
    u.ok(&["restore", "latest", "--to", out_dir.to_str().unwrap()]);
    assert_same_tree(&src, &out_dir);
}

#[test]
fn the_default_store_is_created_on_first_backup() {
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("docs");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("note"), b"remember").unwrap();
    let run = |args: &[&str]| {
        Command::new(kast_test_support::user::kast_binary())
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("KAST_PASSPHRASE", "pw")
            .output()
            .unwrap()
    };
    let out = run(&["backup", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("created a new store at"),
        "{}",
        stderr(&out)
    );
    // As borg and restic do: the one thing a new user must not lose.
    assert!(
        stderr(&out).contains("a lost passphrase means lost backups"),
        "{}",
        stderr(&out)
    );
    assert!(home.path().join(".local/share/kast/store/config").exists());
    let out = run(&["-s", home.path().join("second").to_str().unwrap(), "create"]);
    assert!(
        stderr(&out).contains("a lost passphrase means lost backups"),
        "{}",
        stderr(&out)
    );
    let out = run(&["cat", "latest:note"]);
    assert_eq!(out.stdout, b"remember");
}

/// Times before 1970 and past 2038, to the first and last nanosecond an
/// i64 holds, and hard links, restore exactly where the filesystem holds
/// them (tmpfs holds every one); where it does not (ext4 before 1901), the
/// restore warns once with a count, and the rest is exact.
#[test]
fn awkward_times_and_hard_links_restore_exactly_or_are_reported() {
    let u = User::new();
    u.create();
    // tmpfs keeps every i64 time; a fresh one, so the test does not depend
    // on what the machine mounts.
    let wide = u.path("wide");
    let _tmpfs = user::Tmpfs::mount(&wide, 64);
    let src = wide.join("src");
    let asked = common::awkward_times_tree(&src);
    std::fs::hard_link(src.join("day-before-1970"), src.join("old-dir/link")).unwrap();
    // The link changed the folder's time: set it back to before 1970.
    let old = filetime::FileTime::from_unix_time(-1_000_000, 1);
    filetime::set_file_mtime(src.join("old-dir"), old).unwrap();
    for (name, ns) in &asked {
        let meta = std::fs::metadata(src.join(name)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            *ns,
            "{name}"
        );
    }
    u.ok(&["backup", src.to_str().unwrap()]);
    let listed = u.json(&["ls", "latest"]);
    let recorded: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "first-ns-of-i64")
        .map(|e| e["mtime_ns"].as_i64().unwrap())
        .collect();
    assert_eq!(recorded, [i64::MIN + 1_000_000_000]);

    let exact = wide.join("out");
    let out = u.kast(&[
        "--json",
        "restore",
        "latest",
        "--to",
        exact.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["hard_links"], 1, "{doc}");
    assert_eq!(doc["losses"], serde_json::json!([]), "{doc}");
    assert_same_tree(&src, &exact);

    // ext4 (the home folder here) holds 1901 to 2446: the two times before
    // 1901 cannot be held, and are the only ones said to be lost.
    let narrow = u.path("narrow");
    let out = u.kast(&[
        "--json",
        "restore",
        "latest",
        "--to",
        narrow.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let held = |ns: i64| {
        let probe = u.path("probe");
        std::fs::write(&probe, b"").unwrap();
        let t = filetime::FileTime::from_unix_time(
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000) as u32,
        );
        filetime::set_file_mtime(&probe, t).unwrap();
        filetime::FileTime::from_last_modification_time(&std::fs::metadata(&probe).unwrap()) == t
    };
    let not_held = asked.iter().filter(|(_, ns)| !held(*ns)).count() as u64
        + u64::from(!held(-1_000_000_000_000_000 + 1));
    let lost = doc["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["count"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(lost, not_held, "{doc}");
    if not_held > 0 {
        assert!(
            stderr(&out).contains("not kept exactly"),
            "{}",
            stderr(&out)
        );
    }
    let back = std::fs::metadata(narrow.join("day-before-1970")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        back.mtime() * 1_000_000_000 + back.mtime_nsec(),
        -86_400_000_000_000 + 5
    );
    assert_eq!(
        back.ino(),
        std::fs::metadata(narrow.join("old-dir/link"))
            .unwrap()
            .ino()
    );
}

/// `ls --json` says everything `ls` shows, in fields a script need not
/// parse: a symlink's target, the mode in octal and as `ls -l` writes it,
/// numeric owners, entries by name; snapshots oldest first,
/// with the account name even when `USER` is unset.
#[test]
fn ls_json_is_complete() {
    use std::os::unix::fs::PermissionsExt;
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("b-setuid"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        src.join("b-setuid"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::write(src.join("a-private"), b"secret").unwrap();
    std::fs::set_permissions(
        src.join("a-private"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("../elsewhere/x", src.join("c-link")).unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);
    u.ok(&["backup", src.to_str().unwrap()]);

    let entries = u.json(&["ls", "latest"]);
    let names: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-private", "b-setuid", "c-link", "dir"]);
    let private = &entries[0];
    assert_eq!(private["mode"], "0640", "{private}");
    assert_eq!(private["permissions"], "-rw-r-----", "{private}");
    assert_eq!(private["uid"], 0, "{private}");
    assert_eq!(private["size"], 6, "{private}");
    assert!(private["target"].is_null(), "{private}");
    assert_eq!(entries[1]["mode"], "4755");
    assert_eq!(entries[1]["permissions"], "-rwsr-xr-x");
    assert_eq!(entries[2]["kind"], "symlink");
    assert_eq!(entries[2]["target"], "../elsewhere/x");
    assert!(entries[2]["permissions"].as_str().unwrap().starts_with('l'));
    assert_eq!(
        entries[3]["permissions"].as_str().unwrap().chars().next(),
        Some('d')
    );

    let snapshots = u.json(&["ls"]);
    let times: Vec<i64> = snapshots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["time_ns"].as_i64().unwrap())
        .collect();
    assert!(times[0] < times[1], "oldest first: {snapshots}");
    let account = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let account = String::from_utf8(account.stdout).unwrap();
    assert_eq!(snapshots[0]["user"], account.trim(), "{snapshots}");
    // cat on a link says where it points.
    let out = u.kast(&["cat", "latest:c-link"]);
    assert!(
        stderr(&out).contains("c-link is a symlink to ../elsewhere/x, not a file"),
        "{}",
        stderr(&out)
    );
    // Text: a header over columns.
    let text = u.ok(&["ls"]);
    assert!(text.starts_with("id "), "{text}");
    assert!(text.lines().next().unwrap().contains("source"), "{text}");
}

/// The test-only plugins, built beside the built-in ones.
fn testing_plugin(name: &str) -> std::path::PathBuf {
    std::path::Path::new(kast_plugins::BUILT_PLUGINS_DIR).join(format!("kast_plugin_{name}.wasm"))
}

#[test]
fn nothing_a_plugin_or_a_file_name_says_reaches_the_terminal_raw() {
    let u = User::new();
    let hostile = testing_plugin("hostile");
    u.ok(&["plugin", "install", hostile.to_str().unwrap()]);
    let raw = |text: &str| text.contains('\x1b') || text.contains('\r');
    for args in [&["plugin", "list"][..], &["plugin", "info", "hostile"]] {
        let out = u.ok(args);
        assert!(!raw(&out), "{args:?}: {out:?}");
        assert!(out.contains("(tests only)\\u{1b}[2J"), "{out}");
    }
    // The limits shown are the ones in force.
    let info = u.ok(&["--plugin-timeout", "7", "plugin", "info", "hostile"]);
    assert!(
        info.contains("limits       512 MiB of memory (also the most one call hands the host); 7 s per call; 65536 host objects; 16 sockets"),
        "{info}"
    );
    // A source whose names clear the screen and forge a line.
    u.create();
    let jail = u.path("jail");
    std::fs::create_dir_all(&jail).unwrap();
    let out = u.kast(&["backup", &format!("hostile://{}", jail.display())]);
    let said = stderr(&out);
    assert!(!raw(&said), "{said:?}");
    let snapshot = u.snapshot_ids().pop().expect("a snapshot, partial or not");
    let listing = u.ok(&["ls", &snapshot]);
    assert!(!raw(&listing), "{listing:?}");
    assert!(
        listing.contains("evil\\u{1b}[2J\\rwarning: forged.txt"),
        "{listing}"
    );
    let json = u.json(&["ls", &snapshot]);
    assert!(
        json.to_string()
            .contains("evil\\u001b[2J\\rwarning: forged.txt")
    );
}

#[test]
fn packs_a_plugin_cannot_be_handed_are_refused_up_front() {
    let u = User::new();
    let fast_kdf = ["--kdf-memory-mib", "8", "--kdf-iterations", "1"];
    let out = u.kast(&[&["create", "--pack-size-mib", "512"][..], &fast_kdf].concat());
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(
        said.contains("packs of 512 MiB cannot be handed to a storage plugin limited to 512 MiB")
            && said.contains("--pack-size-mib 120")
            && said.contains("--plugin-memory-mib 2080"),
        "{said}"
    );
    assert!(!u.store.exists(), "nothing was created");
    // With the memory it names, the store is made; opening it later under
    // the default limit is refused up front, before any work.
    let create = [
        "--plugin-memory-mib",
        "2080",
        "create",
        "--pack-size-mib",
        "512",
    ];
    u.ok(&[&create[..], &fast_kdf].concat());
    let src = u.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let out = u.kast(&["backup", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("packs of 512 MiB"),
        "{}",
        stderr(&out)
    );
}

/// The codec is chosen at `create`, shown by `info`, and every one
/// restores exactly; on text, zstd (the default) makes the smallest store,
/// small files compressed together.
#[test]
fn compression_is_chosen_at_create_and_every_codec_restores_exactly() {
    let root = User::new();
    let src = root.path("src");
    generate_tree(&src, 7, 2 << 20);
    // Small text files alike in vocabulary, unlike in content: what
    // compressing files together gains on.
    std::fs::create_dir_all(src.join("notes")).unwrap();
    for i in 0..400 {
        let words = [
            "backup", "store", "restore", "snapshot", "chunk", "pack", "key",
        ];
        let text: String = (0..300)
            .map(|j| {
                words[(i * 7 + j * j) % words.len()].to_string()
                    + if j % 9 == 0 { "\n" } else { " " }
            })
            .collect();
        std::fs::write(src.join(format!("notes/{i:03}.txt")), text).unwrap();
    }
    let fast_kdf = ["--kdf-memory-mib", "8", "--kdf-iterations", "1"];
    let mut sizes = Vec::new();
    for codec in ["none", "lz4", "zstd:1", "zstd"] {
        let u = User::with_store(root.path(&format!("store-{codec}")));
        let mut create = vec!["create"];
        if codec != "zstd" {
            create.extend(["--compression", codec]);
        }
        u.ok(&[&create[..], &fast_kdf].concat());
        let info = u.json(&["info"]);
        let shown = if codec == "zstd" { "zstd:3" } else { codec };
        assert_eq!(info["compression"], shown, "{info}");
        assert_eq!(info["format"], 2);
        u.ok(&["backup", src.to_str().unwrap()]);
        let out = root.path(&format!("out-{codec}"));
        u.ok(&["restore", "latest", "--to", out.to_str().unwrap()]);
        assert_same_tree(&src, &out);
        let notes = u.kast(&["cat", "latest:notes/123.txt"]);
        assert_eq!(
            notes.stdout,
            std::fs::read(src.join("notes/123.txt")).unwrap()
        );
        assert_eq!(u.json(&["check"])["clean"], true, "{codec}");
        sizes.push(u.json(&["info"])["stored_bytes"].as_u64().unwrap());
    }
    assert!(
        sizes[0] > sizes[1] && sizes[1] > sizes[2] && sizes[1] > sizes[3],
        "store sizes none, lz4, zstd:1, zstd:3: {sizes:?}"
    );
    let out = root.kast(&[&["create", "--compression", "gzip"][..], &fast_kdf].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("zstd:LEVEL (1 to 19), lz4 or none"),
        "{}",
        stderr(&out)
    );
    assert!(!root.store.exists(), "nothing was created");
}

/// Heavy cases run with `KAST_HEAVY_TESTS=1`.
fn heavy() -> bool {
    std::env::var_os("KAST_HEAVY_TESTS").is_some()
}

#[test]
fn a_directory_of_a_million_entries_goes_through_the_fs_plugin() {
    if !heavy() {
        return;
    }
    let u = User::new();
    u.create();
    let src = u.path("src");
    let big = src.join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..1_000_000 {
        std::fs::File::create(big.join(format!("f{i:07}"))).unwrap();
    }
    let out = u.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(out["snapshots"][0]["files"], 1_000_000, "{out}");
    let restored = u.path("restored");
    u.ok(&["restore", "latest", "--to", restored.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_dir(restored.join("big")).unwrap().count(),
        1_000_000
    );
}

#[test]
fn packs_of_512_mib_go_through_with_the_memory_they_need() {
    if !heavy() {
        return;
    }
    let u = User::new();
    let memory = ["--plugin-memory-mib", "2080"];
    let create = [
        "create",
        "--pack-size-mib",
        "512",
        "--kdf-memory-mib",
        "8",
        "--kdf-iterations",
        "1",
    ];
    u.ok(&[&memory[..], &create].concat());
    let src = u.path("src");
    generate_tree(&src, 3, 700 << 20);
    u.ok(&[&memory[..], &["backup", src.to_str().unwrap()]].concat());
    let restored = u.path("restored");
    u.ok(&[
        &memory[..],
        &["restore", "latest", "--to", restored.to_str().unwrap()],
    ]
    .concat());
    assert_same_tree(&src, &restored);
    u.ok(&[&memory[..], &["check"]].concat());
}

#[test]
fn find_names_every_snapshot_and_path_that_cat_then_reads() {
    use std::os::unix::ffi::OsStrExt;
    let u = User::new();
    u.create();
    let src = u.path("src");
    for (path, content) in [
        ("docs/report.txt", "r1"),
        ("docs/Report-2024.TXT", "r2"),
        ("src/main.rs", "fn main() {}"),
        ("src/lib/mod.rs", "mod x;"),
    ] {
        std::fs::create_dir_all(src.join(path).parent().unwrap()).unwrap();
        std::fs::write(src.join(path), content).unwrap();
    }
    std::fs::write(
        src.join(std::ffi::OsStr::from_bytes(b"docs/caf\xe9.rs")),
        "latin-1",
    )
    .unwrap();
    let s = src.to_str().unwrap();
    u.ok(&["backup", s]);
    std::fs::write(src.join("src/new.rs"), "new").unwrap();
    u.ok(&["backup", s]);
    let ids: Vec<String> = u
        .json(&["ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();

    // Every match, in every snapshot, oldest first, with what cat reads.
    let found = u.json(&["find", "*.rs"]);
    let found = found.as_array().unwrap();
    let listed: Vec<(usize, &str)> = found
        .iter()
        .map(|f| {
            let snapshot = ids
                .iter()
                .position(|id| f["snapshot"] == id.as_str())
                .unwrap();
            (snapshot, f["path"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        listed,
        [
            (0, "docs/caf\u{fffd}.rs"),
            (0, "src/lib/mod.rs"),
            (0, "src/main.rs"),
            (1, "docs/caf\u{fffd}.rs"),
            (1, "src/lib/mod.rs"),
            (1, "src/main.rs"),
            (1, "src/new.rs"),
        ]
    );
    for f in found
        .iter()
        .filter(|f| !f["path"].as_str().unwrap().contains('\u{fffd}'))
    {
        assert_eq!(f["kind"], "file");
        let spec = format!(
            "{}:{}",
            &f["snapshot"].as_str().unwrap()[..12],
            f["path"].as_str().unwrap()
        );
        let content = u.ok(&["cat", &spec]);
        assert_eq!(content.len() as u64, f["size"].as_u64().unwrap(), "{f}");
        assert!(f["mtime_ns"].as_i64().unwrap() > 0);
    }

    // With a `/`, the whole path: `*` stays in a folder, `**` crosses.
    let paths = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["find", "--path-only"];
        all.extend_from_slice(args);
        u.json(&all)
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(paths(&["src/*.rs"]), ["src/main.rs", "src/new.rs"]);
    assert_eq!(
        paths(&["/src/**/*.rs"]),
        ["src/lib/mod.rs", "src/main.rs", "src/new.rs"]
    );
    assert_eq!(
        paths(&["-i", "report*.txt"]),
        ["docs/Report-2024.TXT", "docs/report.txt"]
    );
    assert_eq!(paths(&["report*.txt"]), ["docs/report.txt"]);
    assert_eq!(paths(&["lib"]), ["src/lib"]);
    assert_eq!(
        paths(&["new.rs", "--before", "2000-01-01"]),
        Vec::<String>::new()
    );
    assert_eq!(paths(&["nothing-matches"]), Vec::<String>::new());
    assert_eq!(u.json(&["find", "nothing-matches"]), serde_json::json!([]));

    // Text: time, size, then SNAPSHOT:PATH as cat takes it; folders end in `/`.
    let text = u.ok(&["find", "lib"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].ends_with(&format!("{}:src/lib/", &ids[1][..8])),
        "{text}"
    );

    let out = u.kast(&["find", "[unclosed"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("bad pattern"), "{}", stderr(&out));
}
