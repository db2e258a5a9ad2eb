//! The example connectors in other languages (`plugins/examples/`), built
//! with the one command their READMEs give, installed with `kast plugin
//! install`, and run through the conformance checks of the roles they
//! serve, then end to end through the `kast` binary.

use kast_test_support::common;
use kast_test_support::servers;
use kast_test_support::user;

use common::conformance::{self, Connectors};
use kast_engine::storage::Storage;
use kast_engine::{Destination, Source};
use kast_plugins::Host;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use user::User;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a command (its build, or its own tests) in an example's folder;
/// says what to install when the tool is missing.
fn run_in(example: &str, program: &str, args: &[&str], install: &str) {
    let dir = repo().join("plugins/examples").join(example);
    let out = Command::new(program)
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (install it: {install})"));
    assert!(
        out.status.success(),
        "{program} in {example} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `plugins/examples/python-tar`, built into `out`.
fn python_tar(out: &Path) -> PathBuf {
    let wasm = out.join("python-tar.wasm");
    run_in(
        "python-tar",
        "componentize-py",
        &[
            "-d",
            "../../../wit/0.2.0",
            "-w",
            "source",
            "componentize",
            "app",
            "-o",
            wasm.to_str().unwrap(),
        ],
        "pip install componentize-py==0.25.1",
    );
    wasm
}

/// Heavy cases run with `KAST_HEAVY_TESTS=1`.
fn heavy() -> bool {
    std::env::var_os("KAST_HEAVY_TESTS").is_some()
}

/// Installs `wasm` for `u` with the CLI; returns the plugin directory.
fn install(u: &User, wasm: &Path) -> PathBuf {
    let said = u.ok(&["plugin", "install", wasm.to_str().unwrap()]);
    assert!(said.contains("installed"), "{said}");
    u.home.path().join(".local/share/kast/plugins")
}

/// `tar` of a folder with what GNU tar can carry: pax headers (times to
/// the nanosecond) and extended attributes.
fn tar(dir: &Path, archive: &Path, compress: &[&str]) {
    let status = Command::new("tar")
        .args(["--xattrs", "--format=pax"])
        .args(compress)
        .arg("-cf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

/// The fs plugins for the store and restores; the tar plugin reads an
/// archive made of the folder it is given, compressed with `compress`.
struct TarSource {
    host: Host,
    compress: &'static [&'static str],
}

impl Connectors for TarSource {
    fn storage(&self, path: &Path) -> Arc<dyn Storage> {
        self.host
            .new_storage(&format!("fs://{}", path.display()))
            .unwrap()
    }
    fn source(&self, path: &Path) -> Box<dyn Source> {
        let archive = path.with_extension("tar");
        tar(path, &archive, self.compress);
        Box::new(
            self.host
                .source(&format!("tar://{}", archive.display()))
                .unwrap(),
        )
    }
    fn destination(&self, path: &Path) -> Box<dyn Destination> {
        Box::new(
            self.host
                .destination(&format!("fs://{}", path.display()))
                .unwrap(),
        )
    }
    /// A tar member that is a hard link is read as a file of its own.
    fn keeps_hard_links(&self) -> bool {
        false
    }
}

#[test]
fn python_tar_source_conforms() {
    let u = User::new();
    let wasm = python_tar(u.home.path());
    let plugins = install(&u, &wasm);
    for compress in [&[][..], &["-z"][..]] {
        let host = Host::new(Some(u.path("cache")), Some(plugins.clone())).unwrap();
        let c = TarSource { host, compress };
        conformance::check_round_trip(&c, 8 << 20);
        conformance::check_dedup(&c);
    }
}

/// The example's pure-Python gzip decoder agrees with zlib (run natively,
/// where CPython has zlib to compare with).
#[test]
fn python_tar_gunzip_agrees_with_zlib() {
    run_in(
        "python-tar",
        "python3",
        &["-m", "unittest", "-q", "test_gunzip"],
        "apt install python3",
    );
}

#[test]
fn python_tar_backs_up_archives_end_to_end() {
    let u = User::new();
    u.create();
    let wasm = python_tar(u.home.path());
    install(&u, &wasm);
    let src = u.path("src");
    common::generate_tree(&src, 21, 3 << 20);
    // What tar keeps and a plain tree walk would not show: a hard link.
    std::fs::hard_link(src.join("many/f0000.bin"), src.join("hard")).unwrap();
    let archive = u.path("plain.tar");
    tar(&src, &archive, &[]);
    let out = u.ok(&["backup", &format!("tar://{}", archive.display())]);
    assert!(out.contains("snapshot"), "{out}");
    let restored = u.path("restored");
    u.ok(&["restore", "latest", "--to", restored.to_str().unwrap()]);
    common::assert_same_tree_but_links(&src, &restored);
    // The same archive again: nothing new is read.
    let again = u.json(&["backup", &format!("tar://{}", archive.display())]);
    let again = &again["snapshots"][0];
    assert_eq!(again["files_new_or_changed"], 0, "{again}");
    assert_eq!(again["bytes_read"], 0, "{again}");
    // componentize-py keeps every byte a read returns (a leak): under a
    // 128 MiB cap, a 200 MiB member goes through only because kast starts
    // a grown instance afresh inside the file and reads on at the offset
    // it had reached (contract 0.2's read-at). With KAST_HEAVY_TESTS=1, a
    // 1 GiB archive of four 256 MiB members under the default 512 MiB.
    let members = u.path("members");
    std::fs::create_dir(&members).unwrap();
    let (count, size, cap) = if heavy() {
        (4, 256 << 20, None)
    } else {
        (1, 200 << 20, Some("128"))
    };
    for i in 0..count {
        common::write_random_file(&members.join(format!("m{i}")), size, 90 + i);
    }
    std::fs::write(members.join("small"), b"beside the large ones\n").unwrap();
    let archive = u.path("members.tar");
    tar(&members, &archive, &[]);
    let location = format!("tar://{}", archive.display());
    match cap {
        Some(mib) => u.ok(&["--plugin-memory-mib", mib, "backup", &location]),
        None => u.ok(&["backup", &location]),
    };
    let restored = u.path("restored-members");
    let to = restored.to_str().unwrap();
    u.ok(&["restore", "latest", "--source", &location, "--to", to]);
    common::assert_same_tree_but_links(&members, &restored);
    std::fs::remove_dir_all(&members).unwrap();
    std::fs::remove_dir_all(&restored).unwrap();
    std::fs::remove_file(&archive).unwrap();
    // A gzip archive (decoded in Python: the component has no zlib).
    let squeezed = u.path("squeezed.tar.gz");
    tar(&src, &squeezed, &["-z"]);
    let location = format!("tar://{}", squeezed.display());
    u.ok(&["backup", &location]);
    let restored = u.path("restored-gz");
    let to = restored.to_str().unwrap();
    u.ok(&["restore", "latest", "--source", &location, "--to", to]);
    common::assert_same_tree_but_links(&src, &restored);
    // A damaged or cut-short gzip archive is a clear error, not a snapshot
    // of wrong bytes.
    let mut bytes = std::fs::read(&squeezed).unwrap();
    let damaged = u.path("damaged.tar.gz");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&damaged, &bytes).unwrap();
    bytes[middle] ^= 0x20;
    let cut = u.path("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    for (archive, said) in [(&damaged, "damaged"), (&cut, "cut short")] {
        let out = u.kast(&["backup", &format!("tar://{}", archive.display())]);
        assert_eq!(out.status.code(), Some(1));
        assert!(user::stderr(&out).contains(said), "{}", user::stderr(&out));
    }
    // Other compressions are refused clearly (no bz2 or lzma either).
    let bzipped = u.path("squeezed.tar.bz2");
    tar(&src, &bzipped, &["-j"]);
    let out = u.kast(&["backup", &format!("tar://{}", bzipped.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        user::stderr(&out).contains("bzip2-compressed archive"),
        "{}",
        user::stderr(&out)
    );
    // A file that is not a tar archive is a clear error.
    let junk = u.path("junk.tar");
    std::fs::write(&junk, vec![7u8; 10_000]).unwrap();
    let out = u.kast(&["backup", &format!("tar://{}", junk.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        user::stderr(&out).contains("not a readable tar archive"),
        "{}",
        user::stderr(&out)
    );
}

/// `plugins/examples/js-webdav`, built with its README's command (after
/// `npm install`, which scripts/setup runs); once, as it builds in place.
fn js_webdav() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        run_in(
            "js-webdav",
            "npm",
            &["run", "--silent", "build"],
            "npm install in plugins/examples/js-webdav",
        )
    });
    repo().join("plugins/examples/js-webdav/js-webdav.wasm")
}

/// The fs plugins for the store and restores; the WebDAV plugin reads the
/// folder it is given through a wsgidav server sharing it (one server per
/// folder, so a second backup of it is of the same location).
struct DavSource {
    host: Host,
    servers: RefCell<Vec<servers::webdav::WebDav>>,
}

impl Connectors for DavSource {
    fn storage(&self, path: &Path) -> Arc<dyn Storage> {
        self.host
            .new_storage(&format!("fs://{}", path.display()))
            .unwrap()
    }
    fn source(&self, path: &Path) -> Box<dyn Source> {
        // A file is named in the share of its folder.
        let (root, name) = if path.is_dir() {
            (path, "")
        } else {
            let name = path.file_name().unwrap().to_str().unwrap();
            (path.parent().unwrap(), name)
        };
        let mut servers = self.servers.borrow_mut();
        if !servers.iter().any(|s| s.root == root) {
            servers.push(servers::webdav::WebDav::start(root));
        }
        let server = servers.iter().find(|s| s.root == root).unwrap();
        Box::new(self.host.source(&server.location(name)).unwrap())
    }
    fn destination(&self, path: &Path) -> Box<dyn Destination> {
        Box::new(
            self.host
                .destination(&format!("fs://{}", path.display()))
                .unwrap(),
        )
    }
    fn keeps_xattrs(&self) -> bool {
        false
    }
    fn whole_second_times(&self) -> bool {
        true
    }
    fn keeps_unix_metadata(&self) -> bool {
        false
    }
    fn keeps_byte_names(&self) -> bool {
        false
    }
}

#[test]
fn js_webdav_source_conforms() {
    let u = User::new();
    let plugins = install(&u, &js_webdav());
    let c = DavSource {
        host: Host::new(Some(u.path("cache")), Some(plugins)).unwrap(),
        servers: RefCell::default(),
    };
    conformance::check_round_trip(&c, 8 << 20);
    conformance::check_dedup(&c);
    conformance::check_single_file_source(&c);
}

#[test]
fn js_webdav_backs_up_a_webdav_share() {
    let u = User::new();
    u.create();
    install(&u, &js_webdav());
    let share = u.path("share");
    std::fs::create_dir_all(share.join("docs/deep/er")).unwrap();
    std::fs::create_dir_all(share.join("empty folder")).unwrap();
    std::fs::write(share.join("empty"), b"").unwrap();
    std::fs::write(share.join("docs/notes & 100% sure.txt"), b"odd name").unwrap();
    std::fs::write(
        share.join("docs/deep/er/héllo ✓.txt"),
        "unicode\n".repeat(50),
    )
    .unwrap();
    // Larger than one read (kast asks for 1 MiB at a time).
    common::write_random_file(&share.join("docs/big.bin"), (5 << 20) + 17, 5);
    for i in 0..40u64 {
        common::write_random_file(&share.join(format!("docs/f{i:02}")), i * 997, i);
    }
    let server = servers::webdav::WebDav::start(&share);
    let location = server.location("");
    let first = u.json(&["backup", &location]);
    assert_eq!(first["snapshots"][0]["files"], 44, "{first}");
    let restored = u.path("restored");
    u.ok(&["restore", "latest", "--to", restored.to_str().unwrap()]);
    common::assert_same_files(&share, &restored);
    // Nothing changed: nothing is read again.
    let again = u.json(&["backup", &location]);
    assert_eq!(again["snapshots"][0]["bytes_read"], 0, "{again}");
    // A subfolder as the location.
    let deep = server.location("docs/deep");
    u.ok(&["backup", &deep]);
    let names = u.ok(&["ls", "latest", "--source", &deep]);
    assert!(names.contains("er/"), "{names}");
    // A wrong password is refused clearly; nothing is stored.
    let wrong = location.replace(servers::webdav::PASSWORD, "guess");
    let out = u.kast(&["backup", &wrong]);
    assert_eq!(out.status.code(), Some(1));
    assert!(user::stderr(&out).contains("401"), "{}", user::stderr(&out));
}

/// componentize-js 0.23 fails once one instance has returned about 700 MB;
/// kast starts an installed plugin afresh once it has handed over half its
/// memory cap, inside a file too (contract 0.2's read-at), so one file
/// larger than that goes through: 1 GiB, or 2 GiB with KAST_HEAVY_TESTS=1.
#[test]
fn js_webdav_backs_up_a_file_larger_than_one_instance_can_hand_over() {
    let u = User::new();
    u.create();
    install(&u, &js_webdav());
    let share = u.path("share");
    std::fs::create_dir(&share).unwrap();
    let size: u64 = if heavy() { 2 << 30 } else { 1 << 30 };
    // Sparse: all of it to send, next to nothing on disk.
    let file = std::fs::File::create(share.join("zeros")).unwrap();
    file.set_len(size).unwrap();
    let server = servers::webdav::WebDav::start(&share);
    let out = u.json(&["backup", &server.location("")]);
    let snapshot = &out["snapshots"][0];
    assert_eq!(snapshot["bytes_read"], size, "{out}");
    assert_eq!(snapshot["warnings"].as_array().unwrap().len(), 0, "{out}");
}
