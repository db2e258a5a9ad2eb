//! Helpers shared by the engine's integration tests: deterministic data,
//! generated trees on disk, stores in temporary directories, and a
//! comparison of two directory trees by bytes and metadata.

pub mod conformance;

use kast_engine::keys::KdfParams;
use kast_engine::native::local::{LocalDestination, LocalSource};
use kast_engine::storage::LocalStorage;
use kast_engine::{BackupOptions, CreateOptions, RestoreOptions, Store};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The passphrase of every store the engine tests make.
pub const PASS: &[u8] = b"correct horse battery staple";

/// SplitMix64: fast, seeded, good enough to make incompressible test data
/// (the benchmarks' datasets use it too, so both see the same bytes).
pub struct Rng(pub u64);

impl Rng {
    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }

    /// `len` bytes of the sequence.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Fills `buf` in place, for data too large to allocate twice.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// A number below `n`, for picking sizes and positions.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Writes `len` random bytes to `path` in pieces, never holding it whole.
pub fn write_random_file(path: &Path, len: u64, seed: u64) {
    use std::io::Write;
    let mut rng = Rng(seed);
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut left = len;
    while left > 0 {
        let n = left.min(1 << 20);
        f.write_all(&rng.bytes(n as usize)).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

/// A store in a temporary directory with fast (test-only) key derivation.
pub struct TestStore {
    /// Holds the store and its cache; removed on drop.
    pub dir: tempfile::TempDir,
    /// The open store.
    pub store: Store,
}

impl Default for TestStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TestStore {
    /// A new store with test-speed key derivation.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = create_store(&dir.path().join("store"), Some(dir.path().join("cache")));
        TestStore { dir, store }
    }

    /// Where the store's files are, for tests that damage them.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Opens the store again, as a second process would.
    pub fn reopen(&self) -> Store {
        open_store(&self.store_path(), Some(self.dir.path().join("cache"))).unwrap()
    }

    /// Backs up the directory `source` with default options.
    pub fn backup(&self, source: &Path) -> kast_engine::BackupOutcome {
        backup_dir(&self.store, source)
    }

    /// Restores the whole of `snapshot` into `target`.
    pub fn restore_to(
        &self,
        snapshot: &kast_engine::crypto::Id,
        target: &Path,
    ) -> kast_engine::RestoreOutcome {
        let dest = LocalDestination::new(target).unwrap();
        kast_engine::restore(
            &self.store,
            snapshot,
            b"",
            &dest,
            &RestoreOptions::default(),
        )
        .unwrap()
    }

    /// Sum of all pack sizes on storage.
    pub fn pack_bytes(&self) -> u64 {
        self.store
            .storage()
            .list(kast_engine::storage::ObjectKind::Pack)
            .unwrap()
            .iter()
            .map(|o| o.size)
            .sum()
    }
}

/// Create options with test-speed key derivation.
pub fn create_options() -> CreateOptions {
    CreateOptions {
        kdf: KdfParams::insecure_for_tests(),
        ..Default::default()
    }
}

/// Creates a store on the local disk at `path`.
pub fn create_store(path: &Path, cache: Option<PathBuf>) -> Store {
    Store::create(
        Arc::new(LocalStorage::new(path)),
        PASS,
        &create_options(),
        cache,
    )
    .unwrap()
}

/// Opens the store at `path` with [`PASS`].
pub fn open_store(path: &Path, cache: Option<PathBuf>) -> kast_engine::Result<Store> {
    Store::open(Arc::new(LocalStorage::new(path)), PASS, cache)
}

/// Backs up the directory `source` into `store` with default options.
pub fn backup_dir(store: &Store, source: &Path) -> kast_engine::BackupOutcome {
    let src = LocalSource::new(source).unwrap();
    kast_engine::backup(store, &src, &BackupOptions::default()).unwrap()
}

/// What a user compares after a restore: kind, bytes, mode, the time to
/// the nanosecond, symlink target, owner, extended attributes, and which
/// other paths are hard links to the same file.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// A regular file.
    File {
        /// Permission bits and type.
        mode: u32,
        /// Nanoseconds since the epoch.
        mtime_ns: i64,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// BLAKE3 of the content, so trees compare without holding bytes.
        hash: String,
        /// Content length.
        len: u64,
        /// Extended attributes, sorted.
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
        /// The other paths of this file's hard-link group, sorted.
        links: Vec<Vec<u8>>,
    },
    /// A directory.
    Dir {
        /// Permission bits and type.
        mode: u32,
        /// Nanoseconds since the epoch.
        mtime_ns: i64,
        /// Owner.
        uid: u32,
        /// Extended attributes, sorted.
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// A symlink (the link itself, never followed).
    Symlink {
        /// Where it points.
        target: Vec<u8>,
        /// The link's own time.
        mtime_ns: i64,
    },
}

fn nanos(meta: &fs::Metadata) -> i64 {
    meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
}

fn xattrs_of(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = xattr::list(path)
        .map(|names| {
            names
                .filter_map(|n| {
                    let value = xattr::get(path, &n).ok().flatten()?;
                    Some((n.as_bytes().to_vec(), value))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every entry below `root`, keyed by relative path.
pub fn snapshot_of_dir(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    for group in inodes.values().filter(|g| g.len() > 1) {
        for path in group {
            if let Some(Seen::File { links, .. }) = out.get_mut(path) {
                *links = group.iter().filter(|p| *p != path).cloned().collect();
                links.sort();
            }
        }
    }
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<Vec<u8>, Seen>,
    inodes: &mut BTreeMap<u64, Vec<Vec<u8>>>,
) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let meta = fs::symlink_metadata(&path).unwrap();
        let seen = if meta.file_type().is_symlink() {
            Seen::Symlink {
                target: fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
                mtime_ns: nanos(&meta),
            }
        } else if meta.is_dir() {
            walk(root, &path, out, inodes);
            Seen::Dir {
                mode: meta.permissions().mode(),
                mtime_ns: nanos(&meta),
                uid: meta.uid(),
                xattrs: xattrs_of(&path),
            }
        } else {
            let mut hasher = blake3::Hasher::new();
            hasher
                .update_reader(fs::File::open(&path).unwrap())
                .unwrap();
            if meta.nlink() > 1 {
                inodes.entry(meta.ino()).or_default().push(rel.clone());
            }
            Seen::File {
                mode: meta.permissions().mode(),
                mtime_ns: nanos(&meta),
                uid: meta.uid(),
                gid: meta.gid(),
                hash: hasher.finalize().to_hex().to_string(),
                len: meta.len(),
                xattrs: xattrs_of(&path),
                links: Vec::new(),
            }
        };
        out.insert(rel, seen);
    }
}

/// A time cut to whole seconds, as SFTP version 3 and FTP carry it.
fn whole_second(ns: i64) -> i64 {
    ns.div_euclid(1_000_000_000) * 1_000_000_000
}

/// Asserts that two trees hold the same entries, bytes and metadata, hard
/// links and times to the nanosecond included.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    compare_trees(snapshot_of_dir(expected), snapshot_of_dir(actual));
}

/// As [`assert_same_tree`], for sources that cannot tell hard links (a tar
/// archive read by a plugin): each link comes back as a copy.
pub fn assert_same_tree_but_links(expected: &Path, actual: &Path) {
    let unlinked = |root: &Path| {
        let mut map = snapshot_of_dir(root);
        for seen in map.values_mut() {
            if let Seen::File { links, .. } = seen {
                links.clear();
            }
        }
        map
    };
    compare_trees(unlinked(expected), unlinked(actual));
}

/// As [`assert_same_tree`], for connectors whose times are whole seconds
/// and that have no hard links or extended attributes (SFTP version 3).
pub fn assert_same_tree_to_the_second(expected: &Path, actual: &Path) {
    compare_trees(sftp_view(expected), sftp_view(actual));
}

/// What SFTP version 3 keeps of a tree.
fn sftp_view(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    snapshot_of_dir(root)
        .into_iter()
        .map(|(path, seen)| (path, to_the_second(seen)))
        .collect()
}

/// An entry as a connector with Unix metadata but no hard links, extended
/// attributes or sub-second times keeps it (SFTP, and FTP's files).
fn to_the_second(seen: Seen) -> Seen {
    match seen {
        Seen::File {
            mode,
            mtime_ns,
            uid,
            gid,
            hash,
            len,
            ..
        } => Seen::File {
            mode,
            mtime_ns: whole_second(mtime_ns),
            uid,
            gid,
            hash,
            len,
            xattrs: Vec::new(),
            links: Vec::new(),
        },
        Seen::Dir {
            mode,
            mtime_ns,
            uid,
            ..
        } => Seen::Dir {
            mode,
            mtime_ns: whole_second(mtime_ns),
            uid,
            xattrs: Vec::new(),
        },
        Seen::Symlink { target, mtime_ns } => Seen::Symlink {
            target,
            mtime_ns: whole_second(mtime_ns),
        },
    }
}

/// As [`assert_same_tree`], for connectors that keep only what WebDAV
/// does: folders, and each file's bytes and modification time to the second
/// (no modes, owners, folder times or links).
pub fn assert_same_files(expected: &Path, actual: &Path) {
    assert_eq!(files_view(expected), files_view(actual));
}

/// What [`assert_same_files`] compares.
fn files_view(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    snapshot_of_dir(root)
        .into_iter()
        .filter_map(|(path, seen)| match seen {
            Seen::File {
                mtime_ns,
                hash,
                len,
                ..
            } => Some((
                path,
                Seen::File {
                    mode: 0,
                    mtime_ns: whole_second(mtime_ns),
                    uid: 0,
                    gid: 0,
                    hash,
                    len,
                    xattrs: Vec::new(),
                    links: Vec::new(),
                },
            )),
            Seen::Dir { .. } => Some((
                path,
                Seen::Dir {
                    mode: 0,
                    mtime_ns: 0,
                    uid: 0,
                    xattrs: Vec::new(),
                },
            )),
            Seen::Symlink { .. } => None,
        })
        .collect()
}

fn compare_trees(a: BTreeMap<Vec<u8>, Seen>, b: BTreeMap<Vec<u8>, Seen>) {
    for (path, seen) in &a {
        match b.get(path) {
            Some(other) => assert_eq!(seen, other, "entry {}", String::from_utf8_lossy(path)),
            None => panic!("missing after restore: {}", String::from_utf8_lossy(path)),
        }
    }
    assert_eq!(a.len(), b.len(), "restore has extra entries");
}

/// A tree FTP can describe: nested folders, odd but printable names,
/// modes, sizes from empty to several MiB, and one symlink.
pub fn ftp_tree(root: &Path) {
    let mut rng = Rng(77);
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir(root.join("empty dir")).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("héllo wörld.txt"), "unicode\n".repeat(500)).unwrap();
    fs::write(root.join("a/b/c/deep.bin"), rng.bytes(3 << 20)).unwrap();
    for i in 0..40 {
        let len = rng.below(70_000) as usize;
        fs::write(root.join(format!("a/f{i:02}")), rng.bytes(len)).unwrap();
    }
    let script = root.join("a/run.sh");
    fs::write(&script, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let secret = root.join("secret");
    fs::write(&secret, b"x").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("a/run.sh", root.join("link")).unwrap();
}

/// What FTP keeps: every file's bytes, mode and time to the second, every
/// directory and its mode; links (when `links`) with their targets.
pub fn ftp_view(root: &Path, links: bool) -> BTreeMap<Vec<u8>, Seen> {
    snapshot_of_dir(root)
        .into_iter()
        .filter_map(|(path, seen)| {
            let seen = match to_the_second(seen) {
                Seen::Dir { mode, uid, .. } => Seen::Dir {
                    mode,
                    mtime_ns: 0,
                    uid,
                    xattrs: Vec::new(),
                },
                Seen::Symlink { target, .. } if links => Seen::Symlink {
                    target,
                    mtime_ns: 0,
                },
                Seen::Symlink { .. } => return None,
                file => file,
            };
            Some((path, seen))
        })
        .collect()
}

/// Copies a directory tree (a store, to damage a copy of it).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What a bucket keeps of a tree: each file's path, bytes and time (modes,
/// folders and links have no place in S3).
pub fn s3_view(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    snapshot_of_dir(root)
        .into_iter()
        .filter_map(|(path, seen)| match seen {
            Seen::File {
                mtime_ns,
                hash,
                len,
                ..
            } => Some((
                path,
                Seen::File {
                    mode: 0,
                    mtime_ns,
                    uid: 0,
                    gid: 0,
                    hash,
                    len,
                    xattrs: Vec::new(),
                    links: Vec::new(),
                },
            )),
            _ => None,
        })
        .collect()
}

/// A tree with the shapes that break backup tools: empty files and dirs,
/// deep nesting, unicode and odd byte names, symlinks (dangling too),
/// unusual permissions, a file made of repeated content, and `big` bytes of
/// incompressible data in one file.
pub fn generate_tree(root: &Path, seed: u64, big: u64) {
    use std::ffi::OsStr;
    let mut rng = Rng(seed);
    fs::create_dir_all(root).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::create_dir(root.join("empty-dir")).unwrap();
    let mut deep = root.join("deep");
    for i in 0..40 {
        deep = deep.join(format!("level{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom.txt"), b"at the bottom\n").unwrap();
    fs::write(root.join("héllo wörld ✓.txt"), "unicode name\n".repeat(100)).unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"odd\xff\xfe bytes\n name")),
        b"non-UTF-8 name",
    )
    .unwrap();
    fs::write(root.join(" leading space"), b"x").unwrap();
    std::os::unix::fs::symlink("héllo wörld ✓.txt", root.join("link-to-file")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling-link")).unwrap();
    std::os::unix::fs::symlink("deep", root.join("link-to-dir")).unwrap();
    let private = root.join("private.key");
    fs::write(&private, b"secret").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    let script = root.join("run.sh");
    fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        root.join("repeated.txt"),
        "the same line again\n".repeat(200_000),
    )
    .unwrap();
    let many = root.join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..300 {
        let len = rng.below(40_000);
        fs::write(many.join(format!("f{i:04}.bin")), rng.bytes(len as usize)).unwrap();
    }
    if big > 0 {
        write_random_file(&root.join("big.bin"), big, seed ^ 0xB16);
    }
    let ro_dir = root.join("read-only-dir");
    fs::create_dir(&ro_dir).unwrap();
    fs::write(ro_dir.join("inside"), b"in a 0555 dir").unwrap();
    fs::set_permissions(&ro_dir, fs::Permissions::from_mode(0o555)).unwrap();
    // Hard links: a group of three across folders, and a pair.
    let linked = root.join("linked");
    fs::create_dir(&linked).unwrap();
    fs::write(linked.join("one"), rng.bytes(70_000)).unwrap();
    fs::hard_link(linked.join("one"), linked.join("two")).unwrap();
    fs::hard_link(linked.join("one"), many.join("three")).unwrap();
    fs::write(linked.join("pair-a"), b"a pair").unwrap();
    fs::hard_link(linked.join("pair-a"), linked.join("pair-b")).unwrap();
    // An extended attribute where the filesystem takes one.
    let _ = xattr::set(root.join("run.sh"), "user.kast.note", b"kept");
    // Give files distinct, old mtimes so restored times are really checked,
    // and one past 2038 (in the range every connector can carry).
    let t = filetime::FileTime::from_unix_time(1_500_000_000, 123_456_789);
    filetime::set_file_mtime(root.join("empty"), t).unwrap();
    filetime::set_symlink_file_times(root.join("link-to-file"), t, t).unwrap();
    let after_2038 = filetime::FileTime::from_unix_time(4_102_444_800, 987_654_321);
    filetime::set_file_mtime(root.join("run.sh"), after_2038).unwrap();
    filetime::set_file_mtime(&linked, after_2038).unwrap();
}

/// Files whose times most tools get wrong: before 1970, past 2038 and
/// 2106, and the first and last nanosecond an `i64` holds (1677, 2262).
/// The filesystem under `root` may clamp some (ext4 holds 1901 to 2446);
/// the tree then holds what it kept. Returns the names and the times asked.
pub fn awkward_times_tree(root: &Path) -> Vec<(&'static str, i64)> {
    let times: Vec<(&'static str, i64)> = vec![
        ("day-before-1970", -86_400_000_000_000 + 5),
        ("year-1900", -2_208_988_800_000_000_000 + 999_999_999),
        ("first-ns-of-i64", i64::MIN + 1_000_000_000),
        ("after-2038", 2_200_000_000_000_000_001),
        ("after-2106", 4_400_000_000_123_456_789),
        ("last-ns-of-i64", i64::MAX - 1_000_000_000),
    ];
    fs::create_dir_all(root.join("old-dir")).unwrap();
    for (name, ns) in &times {
        fs::write(root.join(name), name.as_bytes()).unwrap();
        let t = filetime::FileTime::from_unix_time(
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000) as u32,
        );
        filetime::set_file_mtime(root.join(name), t).unwrap();
    }
    let old = filetime::FileTime::from_unix_time(-1_000_000, 1);
    filetime::set_file_mtime(root.join("old-dir"), old).unwrap();
    times
}

/// Flips one bit in the middle of the largest pack of a local store (the
/// one that holds file data); returns the pack's path.
pub fn damage_largest_pack(store: &Path) -> PathBuf {
    let pack = fs::read_dir(store.join("packs"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(&pack, bytes).unwrap();
    pack
}
