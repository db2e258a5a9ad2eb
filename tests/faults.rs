//! The fault campaign, with the real binary: what a backup tool must
//! survive before anyone trusts it.
//!
//! - Corruption of every object kind (config, pack, state, snapshot header,
//!   tree blob, file blob), each flipped, truncated, deleted and swapped:
//!   `check` names it (exit 3) with what it affects, the snapshots that do
//!   not depend on it restore byte-exact, nothing panics.
//! - `kill -9` of a backup at seeded random moments: the next backup
//!   succeeds and reuses what was written, `check` passes, maintenance
//!   removes the orphans.
//! - Two and four backups into one store at once, with maintenance started
//!   in the middle: every finished snapshot restores.
//! - Bad input: a store path that is a file, a read-only store, a full
//!   disk, unreadable source files, files that change or vanish while they
//!   are backed up: a clear error or warning, and nothing already stored
//!   is lost.
//!
//! `KAST_HEAVY_TESTS=1` kills at 20 moments instead of 4.

use kast_test_support::common;
use kast_test_support::user;

use common::{assert_same_tree, generate_tree, write_random_file};
use kast_engine::Store;
use kast_engine::crypto::Id;
use kast_engine::index::BlobLocation;
use kast_engine::storage::LocalStorage;
use kast_engine::tree::Content;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use user::{User, stderr};

fn heavy() -> bool {
    std::env::var_os("KAST_HEAVY_TESTS").is_some()
}

/// The files directly in `dir`, recursively under fan-out folders.
fn objects(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(objects(&path));
        } else {
            out.insert(path);
        }
    }
    out
}

fn added(before: &BTreeSet<PathBuf>, after: &BTreeSet<PathBuf>) -> PathBuf {
    let new: Vec<_> = after.difference(before).collect();
    assert_eq!(new.len(), 1, "expected one new object: {new:?}");
    new[0].clone()
}

fn short(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap()[..8].to_string()
}

/// A source of its own: a folder of small files and one 3 MiB file, no
/// byte shared with another seed's.
fn source(root: &Path, seed: u64) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..10 {
        write_random_file(
            &root.join(format!("sub/f{i}")),
            30_000 + i * 3_000,
            seed * 100 + i,
        );
    }
    write_random_file(&root.join("only.bin"), 3 << 20, seed * 100 + 99);
}

/// Where one snapshot's own objects are, and two of its blobs.
struct Own {
    src: PathBuf,
    id: String,
    pack: PathBuf,
    state: PathBuf,
    header: PathBuf,
    tree: BlobLocation,
    file_blob: BlobLocation,
}

/// A store with three snapshots, A, B and C, that share no data.
struct Fixture {
    user: User,
    snapshots: Vec<Own>,
}

impl Fixture {
    fn new() -> Fixture {
        let user = User::new();
        user.create();
        let mut own = Vec::new();
        for seed in 1..=3u64 {
            let src = user.path(&format!("src{seed}"));
            source(&src, seed);
            let (packs, states, headers) = (
                objects(&user.store.join("packs")),
                objects(&user.store.join("states")),
                objects(&user.store.join("snapshots")),
            );
            user.ok(&["backup", src.to_str().unwrap()]);
            let header = added(&headers, &objects(&user.store.join("snapshots")));
            own.push(Own {
                id: header.file_name().unwrap().to_str().unwrap().to_string(),
                pack: added(&packs, &objects(&user.store.join("packs"))),
                state: added(&states, &objects(&user.store.join("states"))),
                header,
                src,
                tree: BlobLocation {
                    pack: Id([0; 32]),
                    offset: 0,
                    length: 0,
                    raw_length: 0,
                    kind: kast_engine::blob::BlobKind::Tree,
                    sealing: kast_engine::crypto::Sealing::Store,
                    trusted: true,
                },
                file_blob: BlobLocation {
                    pack: Id([0; 32]),
                    offset: 0,
                    length: 0,
                    raw_length: 0,
                    kind: kast_engine::blob::BlobKind::Data,
                    sealing: kast_engine::crypto::Sealing::Store,
                    trusted: true,
                },
            });
        }
        // Where each snapshot's `sub` tree and first chunk of `only.bin` are.
        let store = Store::open(
            Arc::new(LocalStorage::new(&user.store)),
            b"correct horse",
            None,
        )
        .unwrap();
        let index = store.index().unwrap();
        for s in &mut own {
            let header = store.read_snapshot(&Id::from_hex(&s.id).unwrap()).unwrap();
            let root = store.read_tree(&index, &header.root).unwrap();
            let Content::Dir { tree } = root.find(b"sub").unwrap().content else {
                panic!("sub is a folder")
            };
            s.tree = index.lookup(&tree).unwrap();
            let Content::File { chunks } = &root.find(b"only.bin").unwrap().content else {
                panic!("only.bin is a file")
            };
            s.file_blob = index.lookup(&chunks[0]).unwrap();
        }
        Fixture {
            user,
            snapshots: own,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Harm {
    Flip,
    Truncate,
    Delete,
    Swap,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Config,
    Pack,
    State,
    Header,
    TreeBlob,
    FileBlob,
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, len: usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..len]).unwrap();
}

fn swap_files(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    std::fs::write(a, y).unwrap();
    std::fs::write(b, x).unwrap();
}

/// Replaces the bytes of `at` in its pack (under `store`) by `with`.
fn splice(store: &Path, at: &BlobLocation, with: &[u8]) {
    let path = pack_path(store, &at.pack);
    let mut bytes = std::fs::read(&path).unwrap();
    let range = at.offset as usize..(at.offset + at.length) as usize;
    bytes.splice(range, with.iter().copied());
    std::fs::write(path, bytes).unwrap();
}

fn pack_path(store: &Path, pack: &Id) -> PathBuf {
    let hex = pack.to_hex();
    store.join("packs").join(&hex[..2]).join(hex)
}

fn blob_bytes(store: &Path, at: &BlobLocation) -> Vec<u8> {
    let bytes = std::fs::read(pack_path(store, &at.pack)).unwrap();
    bytes[at.offset as usize..(at.offset + at.length) as usize].to_vec()
}

/// Moves a path of the pristine store into the damaged copy.
fn moved(path: &Path, from: &Path, to: &Path) -> PathBuf {
    to.join(path.strip_prefix(from).unwrap())
}

/// Does `harm` to B's object of `kind` (and C's, for a swap) in `store`.
fn harm(fixture: &Fixture, store: &Path, kind: Kind, harm: Harm) {
    let pristine = &fixture.user.store;
    let (b, c) = (&fixture.snapshots[1], &fixture.snapshots[2]);
    let file = |p: &Path| moved(p, pristine, store);
    let whole = |path: PathBuf, other: PathBuf| match harm {
        Harm::Flip => {
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            flip(&path, len / 2)
        }
        Harm::Truncate => {
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            truncate(&path, len / 2)
        }
        Harm::Delete => std::fs::remove_file(&path).unwrap(),
        Harm::Swap => swap_files(&path, &other),
    };
    match kind {
        Kind::Config => {
            let path = store.join("config");
            let text = std::fs::read_to_string(&path).unwrap();
            match harm {
                // A digit of the MAC: parses, fails verification.
                Harm::Flip => flip(&path, text.find("\"mac\"").unwrap() + 12),
                Harm::Truncate => truncate(&path, text.len() / 2),
                Harm::Delete => std::fs::remove_file(&path).unwrap(),
                Harm::Swap => unreachable!("a store has one config"),
            }
        }
        Kind::Pack => whole(file(&b.pack), file(&c.pack)),
        Kind::State => whole(file(&b.state), file(&c.state)),
        Kind::Header => whole(file(&b.header), file(&c.header)),
        Kind::TreeBlob | Kind::FileBlob => {
            let pick = |s: &Own| {
                if kind == Kind::TreeBlob {
                    s.tree
                } else {
                    s.file_blob
                }
            };
            let (at, other) = (pick(b), pick(c));
            let path = pack_path(store, &at.pack);
            match harm {
                Harm::Flip => flip(&path, (at.offset + at.length / 2) as usize),
                Harm::Truncate => truncate(&path, (at.offset + at.length / 2) as usize),
                Harm::Delete => splice(store, &at, &[]),
                Harm::Swap => {
                    // C's blob in B's place and B's in C's (other packs).
                    let (mine, theirs) = (blob_bytes(store, &at), blob_bytes(store, &other));
                    splice(store, &at, &theirs);
                    splice(store, &other, &mine);
                }
            }
        }
    }
}

/// What `check` must name, in a damage entry's object or what it affects.
fn expected(fixture: &Fixture, kind: Kind, harm: Harm) -> Vec<String> {
    let b = &fixture.snapshots[1];
    let b8 = &b.id[..8];
    match (kind, harm) {
        (Kind::Config, _) => vec!["config".into()],
        (Kind::Pack, _) => vec![format!("pack {}", short(&b.pack)), format!("snapshot {b8}")],
        // A deleted state leaves no object to name: what it listed is missing.
        (Kind::State, Harm::Delete) => vec![format!("snapshot {b8}")],
        (Kind::State, _) => vec![format!("state {}", short(&b.state))],
        (Kind::Header, _) => vec![format!("snapshot {b8}")],
        (Kind::TreeBlob, Harm::Flip) => vec![format!("snapshot {b8}: sub")],
        (Kind::FileBlob, Harm::Flip) => vec![format!("snapshot {b8}: only.bin")],
        // Cut short, cut out or replaced by one of another length, the blob
        // moves the ones after it (the root tree among them): the pack and
        // the snapshot are named.
        (_, _) => vec![format!("pack {}", short(&b.pack)), format!("snapshot {b8}")],
    }
}

fn check_json(user: &User) -> (Option<i32>, Value, String) {
    let out = user.kast(&["--json", "check"]);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, err)
}

#[test]
fn every_kind_of_damage_is_named_and_contained() {
    let fixture = Fixture::new();
    let (a, b, c) = (
        &fixture.snapshots[0],
        &fixture.snapshots[1],
        &fixture.snapshots[2],
    );
    let kinds = [
        Kind::Config,
        Kind::Pack,
        Kind::State,
        Kind::Header,
        Kind::TreeBlob,
        Kind::FileBlob,
    ];
    let harms = [Harm::Flip, Harm::Truncate, Harm::Delete, Harm::Swap];
    for kind in kinds {
        for how in harms {
            if kind == Kind::Config && matches!(how, Harm::Swap) {
                continue; // a store has one config: nothing to swap it with
            }
            let case = format!("{kind:?} {how:?}");
            let work = tempfile::tempdir().unwrap();
            let store = work.path().join("store");
            common::copy_dir(&fixture.user.store, &store);
            harm(&fixture, &store, kind, how);
            let user = User::with_store(store.clone());
            let (code, report, err) = check_json(&user);

            if kind == Kind::Header && matches!(how, Harm::Delete) {
                // A deleted header is a deleted snapshot: nothing refers to
                // snapshots (they are independent), so this is `kast rm`.
                assert_eq!(code, Some(0), "{case}: {err}");
                assert_eq!(user.snapshot_ids().len(), 2, "{case}");
            } else {
                assert_eq!(code, Some(3), "{case}: {err}\n{report}");
                let damage = report["damage"].as_array().unwrap();
                let text = serde_json::to_string(damage).unwrap();
                for name in expected(&fixture, kind, how) {
                    assert!(text.contains(&name), "{case}: {name} not in {text}");
                }
            }
            if kind == Kind::Config {
                // Every snapshot needs the config: refused, clearly.
                let out = user.kast(&["ls"]);
                assert_eq!(out.status.code(), Some(1), "{case}");
                assert!(!stderr(&out).contains("panicked"), "{case}");
                continue;
            }
            // What does not depend on the damage restores byte-exact.
            let untouched: &[&Own] = if matches!(how, Harm::Swap) {
                &[a]
            } else {
                &[a, c]
            };
            for s in untouched {
                let out = work.path().join(format!("out-{}", &s.id[..8]));
                let restored = user.kast(&["restore", &s.id[..12], "--to", out.to_str().unwrap()]);
                assert_eq!(
                    restored.status.code(),
                    Some(0),
                    "{case}: {}",
                    stderr(&restored)
                );
                assert_same_tree(&s.src, &out);
            }
            // And the damaged one says so, without panicking.
            let out = work.path().join("out-b");
            let restored = user.kast(&["restore", &b.id[..12], "--to", out.to_str().unwrap()]);
            assert!(!stderr(&restored).contains("panicked"), "{case}");
        }
    }
}

#[test]
fn kill_9_at_random_moments_loses_nothing() {
    let u = User::new();
    u.ok(&[
        "create",
        "--kdf-memory-mib",
        "8",
        "--kdf-iterations",
        "1",
        "--pack-size-mib",
        "1",
    ]);
    let src = u.path("src");
    generate_tree(&src, 61, 8 << 20);
    // How long a backup of one new 48 MiB file takes here, to kill the
    // others at random moments within it.
    write_random_file(&src.join("new-calibration.bin"), 48 << 20, 899);
    let first = u.json(&["backup", src.to_str().unwrap()]);
    let duration = first["snapshots"][0]["duration_ms"]
        .as_u64()
        .unwrap()
        .max(100);
    let mut rng = common::Rng(0x5eed);
    let moments = if heavy() { 20 } else { 4 };
    let states = || objects(&u.store.join("states")).len();
    let snapshots = || objects(&u.store.join("snapshots")).len();
    let mut snapshots_before = snapshots();
    let mut killed_after_checkpoint = 0;
    for i in 0..moments {
        write_random_file(&src.join(format!("new-{i}.bin")), 48 << 20, 900 + i);
        let before = states();
        let mut child = u.spawn(&["backup", src.to_str().unwrap()]);
        if i % 2 == 1 {
            // Every other run is killed just after its first checkpoint;
            // the others at a random moment in their first half.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while states() == before && child.try_wait().unwrap().is_none() {
                assert!(std::time::Instant::now() < deadline, "no checkpoint");
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(Duration::from_millis(rng.below(20)));
        } else {
            std::thread::sleep(Duration::from_millis(rng.below(duration / 2)));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Killed after a state but before its snapshot: a checkpoint.
        if states() > before && snapshots() == snapshots_before {
            killed_after_checkpoint += 1;
        }
        snapshots_before = snapshots();
    }
    assert!(
        killed_after_checkpoint > 0,
        "no run was still going after a checkpoint"
    );
    // The next backup completes, and stores less than a fresh store needs
    // for the same tree: the killed runs' checkpoints are reused.
    let done = u.json(&["backup", src.to_str().unwrap()]);
    let stored = done["snapshots"][0]["bytes_added"].as_u64().unwrap();
    let fresh = User::new();
    fresh.create();
    fresh.ok(&["backup", src.join("new-calibration.bin").to_str().unwrap()]);
    let needed = fresh.json(&["backup", src.to_str().unwrap()])["snapshots"][0]["bytes_added"]
        .as_u64()
        .unwrap();
    assert!(
        stored + (16 << 20) <= needed,
        "stored {stored} of {needed}: the killed runs' work was not reused"
    );
    let (code, report, err) = check_json(&u);
    assert_eq!(code, Some(0), "{err}\n{report}");
    u.ok(&["maintenance", "--grace-seconds", "0"]);
    let (code, report, err) = check_json(&u);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["orphan_packs"], 0, "{report}");
    let out = u.path("out");
    u.ok(&["restore", "latest", "--to", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
}

#[test]
fn concurrent_backups_and_maintenance_leave_every_snapshot_whole() {
    for writers in [2usize, 4] {
        let u = User::new();
        u.create();
        let sources: Vec<PathBuf> = (0..writers)
            .map(|i| {
                let src = u.path(&format!("src{i}"));
                generate_tree(&src, 70 + i as u64, 12 << 20);
                src
            })
            .collect();
        // One snapshot to start with, and one for maintenance to drop.
        u.ok(&["backup", sources[0].to_str().unwrap()]);
        let children: Vec<_> = sources
            .iter()
            .map(|s| u.spawn(&["backup", s.to_str().unwrap()]))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // Maintenance waits for the backups' locks, or says it cannot run.
        let maintenance = u.kast(&["maintenance", "--grace-seconds", "0"]);
        assert!(
            !stderr(&maintenance).contains("panicked"),
            "{}",
            stderr(&maintenance)
        );
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
        }
        u.ok(&["maintenance", "--grace-seconds", "0"]);
        let ids = u.snapshot_ids();
        assert_eq!(ids.len(), writers + 1);
        let (code, report, err) = check_json(&u);
        assert_eq!(code, Some(0), "{err}\n{report}");
        for id in ids {
            let snapshot = u.json(&["info", &id]);
            let source = snapshot["source"].as_str().unwrap();
            let source = source.strip_prefix("fs://").unwrap_or(source).to_string();
            let out = u.path(&format!("out-{}", &id[..8]));
            u.ok(&["restore", &id, "--to", out.to_str().unwrap()]);
            assert_same_tree(Path::new(&source), &out);
        }
    }
}

/// A tmpfs of `mib` MiB mounted at `dir` for the test's life: a disk that
/// fills up.
fn fails_clearly(out: &std::process::Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_gets_a_clear_error_and_loses_nothing() {
    // A store path that is a file.
    let home = User::new();
    let file = home.path("not-a-store");
    std::fs::write(&file, b"just a file").unwrap();
    let u = User::with_store(file.clone());
    fails_clearly(&u.kast(&["ls"]), "not-a-store");
    assert_eq!(std::fs::read(&file).unwrap(), b"just a file");

    // A read-only store: reading works, a backup is refused, nothing lost.
    let u = User::new();
    u.create();
    let src = u.path("src");
    source(&src, 7);
    u.ok(&["backup", src.to_str().unwrap()]);
    let ro = |args: &[&str]| {
        let store = u.store.to_str().unwrap().to_string();
        let script = format!("mount --bind -o ro {store} {store} && exec \"$@\"");
        let mut wrapper = vec!["unshare", "-m", "sh", "-c"];
        wrapper.push(&script);
        wrapper.push("sh");
        u.kast_under(&wrapper, args)
    };
    let listed = ro(&["--json", "ls"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    fails_clearly(
        &ro(&["backup", u.path("src").to_str().unwrap()]),
        "ead-only",
    );
    u.ok(&["check"]);
    assert_eq!(u.snapshot_ids().len(), 1);

    // A full disk: the backup fails saying so; what was stored before is
    // whole, and the store works again once there is room.
    let u = User::new();
    let disk = user::Tmpfs::mount(&u.store, 12);
    u.create();
    let small = u.path("small");
    source(&small, 8);
    u.ok(&["backup", small.to_str().unwrap()]);
    let big = u.path("big");
    std::fs::create_dir(&big).unwrap();
    write_random_file(&big.join("huge.bin"), 24 << 20, 9);
    fails_clearly(&u.kast(&["backup", big.to_str().unwrap()]), "space");
    u.ok(&["check"]);
    let out = u.path("out-small");
    u.ok(&["restore", "latest", "--to", out.to_str().unwrap()]);
    assert_same_tree(&small, &out);
    std::fs::remove_file(big.join("huge.bin")).unwrap();
    write_random_file(&big.join("fits.bin"), 1 << 20, 10);
    u.ok(&["maintenance", "--grace-seconds", "0"]);
    u.ok(&["backup", big.to_str().unwrap()]);
    drop(disk);

    // Unreadable files (kast run without root's power to read anything):
    // reported, skipped, the rest backed up, exit 4.
    let u = User::new();
    u.create();
    let src = u.path("src");
    source(&src, 11);
    let secret = src.join("sub/f3");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let out = u.kast_under(
        &["setpriv", "--inh-caps=-all", "--bounding-set=-all"],
        &["backup", src.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("sub/f3"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ermission denied"),
        "{}",
        stderr(&out)
    );
    // The snapshot knows the file was there and was not read: a restore
    // says so again, and brings back everything else.
    let restored = u.path("restored");
    let out = u.kast(&["restore", "latest", "--to", restored.to_str().unwrap()]);
    fails_clearly(&out, "sub/f3: was not backed up whole");
    assert_eq!(
        std::fs::read(restored.join("only.bin")).unwrap(),
        std::fs::read(src.join("only.bin")).unwrap()
    );

    // Files that change or vanish while the backup runs: it completes
    // (with warnings for what vanished), and what it stored restores.
    let u = User::new();
    u.create();
    let src = u.path("churn");
    std::fs::create_dir(&src).unwrap();
    for i in 0..600u64 {
        write_random_file(&src.join(format!("f{i:03}")), 40_000, 2000 + i);
    }
    let child = u.spawn(&["backup", src.to_str().unwrap()]);
    for i in 0..600u64 {
        let path = src.join(format!("f{i:03}"));
        if i % 2 == 0 {
            let _ = std::fs::remove_file(&path);
        } else {
            write_random_file(&path, 50_000, 3000 + i);
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(4)),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
    u.ok(&["check"]);
    let restored = u.path("restored");
    u.ok(&["restore", "latest", "--to", restored.to_str().unwrap()]);
    // Every restored byte is one the source held at that offset at some
    // moment. The files were rewritten in place (truncated, then written a
    // few KiB at a time) while being read, so a file may be a prefix of
    // either version, or old bytes followed by new ones (a read that spans
    // the rewrite), as for any tool reading a live file; never bytes from
    // elsewhere, and kast warns that the file changed while being read.
    let versions = u.path("versions");
    std::fs::create_dir(&versions).unwrap();
    for entry in std::fs::read_dir(&restored).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let i: u64 = name[1..].parse().unwrap();
        let (old, new) = (versions.join("old"), versions.join("new"));
        write_random_file(&old, 40_000, 2000 + i);
        write_random_file(&new, 50_000, 3000 + i);
        let got = std::fs::read(entry.path()).unwrap();
        let (old, new) = (std::fs::read(old).unwrap(), std::fs::read(new).unwrap());
        let stray =
            (0..got.len()).find(|&i| old.get(i) != Some(&got[i]) && new.get(i) != Some(&got[i]));
        assert!(
            stray.is_none(),
            "{name}: byte {stray:?} the source never held there"
        );
    }
}
