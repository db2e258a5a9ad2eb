//! `kast mount` through a real FUSE mount: the mounted snapshot equals a
//! restore of it (bytes, modes, owners, nanosecond times, symlinks,
//! xattrs, hard links), it refuses writes, reads at any offset, shows a
//! snapshot made while mounted, and ends with 0 when unmounted or told to
//! stop. A machine without /dev/fuse skips these tests and says so.

use kast_test_support::common::{self, assert_same_tree, generate_tree};
use kast_test_support::user::{self, User};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// Why FUSE cannot be used here, if it cannot.
fn no_fuse() -> Option<&'static str> {
    if !Path::new("/dev/fuse").exists() {
        return Some("this machine has no /dev/fuse");
    }
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let fusermount = std::process::Command::new("fusermount3")
        .arg("--version")
        .output()
        .is_ok();
    if !root && !fusermount {
        return Some("not root and no fusermount3 (Debian's fuse3)");
    }
    None
}

fn is_mounted(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(dir.to_str().unwrap()))
}

/// Waits until `what` holds, or fails after 30 s naming it.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A mount running in the background; unmounted lazily if the test fails.
struct Mounted {
    child: Option<Child>,
    dir: PathBuf,
}

impl Mounted {
    fn start(u: &User, dir: &Path, extra: &[&str]) -> Mounted {
        std::fs::create_dir_all(dir).unwrap();
        let mut args = vec!["mount", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let child = u.spawn(&args);
        let m = Mounted {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        wait_for("the mount to appear", || dir.join("ids").is_dir());
        m
    }

    /// Waits for the process to end; its exit status and stderr.
    fn wait(mut self) -> (Option<i32>, String) {
        let child = self.child.take().expect("running");
        user::wait_for_exit(child, Duration::from_secs(30), "kast mount")
    }

    /// Sends the mount process a signal by name (`TERM`, `INT`).
    fn signal(&self, name: &str) {
        user::send_signal(self.child.as_ref().expect("running"), name);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .status();
        }
        if let Some(child) = &mut self.child {
            let _ = child.kill();
        }
    }
}

#[test]
fn a_mounted_snapshot_is_its_restore_and_cannot_be_written() {
    if let Some(why) = no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let u = User::new();
    let src = u.path("src");
    generate_tree(&src, 11, 3 << 20);
    common::awkward_times_tree(&src.join("times"));
    // A fifo: a restore does not make one, so the mount does not show one.
    let fifo = std::ffi::CString::new(src.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    u.create();
    u.ok(&["backup", "--tag", "daily", src.to_str().unwrap()]);
    let id = u.snapshot_ids()[0][..8].to_string();
    let restored = u.path("restored");
    // The fifo is named as not restored: exit 1, everything else written.
    let out = u.kast(&["restore", &id, "--to", restored.to_str().unwrap()]);
    assert!(
        user::stderr(&out).contains("fifo"),
        "{}",
        user::stderr(&out)
    );

    let mnt = u.path("mnt");
    let mounted = Mounted::start(&u, &mnt, &[]);
    let shown = mnt.join("ids").join(&id);
    assert_same_tree(&restored, &shown);
    assert!(!shown.join("fifo").exists());
    // Compared above; said here so a filesystem without xattrs cannot
    // make the comparison pass vacuously.
    assert_eq!(
        xattr::get(shown.join("run.sh"), "user.kast.note").unwrap(),
        Some(b"kept".to_vec())
    );
    // The same snapshot under every view.
    let source_dir = src.to_str().unwrap().trim_start_matches('/');
    let dated: Vec<_> = std::fs::read_dir(mnt.join("by-source").join(source_dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dated.len(), 1, "{dated:?}");
    assert_same_tree(&restored, &dated[0]);
    assert_same_tree(&restored, &mnt.join("latest/src"));
    assert!(mnt.join("by-tag/daily").join(source_dir).is_dir());

    // Hard links: one inode, the link count of the restore.
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    use std::os::unix::fs::MetadataExt;
    let one = meta(&shown.join("linked/one"));
    assert_eq!(one.nlink(), 3);
    assert_eq!(one.ino(), meta(&shown.join("many/three")).ino());
    assert_eq!(meta(&shown.join("linked/pair-a")).nlink(), 2);

    // Reads at any offset, across chunk boundaries.
    let want = std::fs::read(restored.join("big.bin")).unwrap();
    let mut file = std::fs::File::open(shown.join("big.bin")).unwrap();
    for offset in [0u64, 1, 1 << 20, (3 << 20) - 10, 777_777] {
        file.seek(SeekFrom::Start(offset)).unwrap();
        let mut got = vec![0; 300_000];
        let n = file.read(&mut got).unwrap();
        let end = (offset as usize + n).min(want.len());
        assert!(n > 0 || offset as usize == want.len());
        assert_eq!(&got[..n], &want[offset as usize..end], "at {offset}");
    }

    // Read-only: every way of writing fails with EROFS.
    let erofs = |r: std::io::Result<()>| {
        let e = r.expect_err("a write to the mount must fail");
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    };
    erofs(std::fs::write(shown.join("new-file"), b"x"));
    erofs(
        std::fs::OpenOptions::new()
            .append(true)
            .open(shown.join("big.bin"))
            .map(drop),
    );
    erofs(std::fs::remove_file(shown.join("empty")));
    erofs(std::fs::create_dir(shown.join("new-dir")));
    erofs(std::fs::rename(shown.join("empty"), shown.join("moved")));
    erofs(std::fs::create_dir(mnt.join("ids/new")));
    erofs(xattr::set(
        shown.join("run.sh"),
        "user.kast.note",
        b"changed",
    ));
    assert_eq!(
        std::fs::read(shown.join("big.bin")).unwrap(),
        want,
        "unchanged"
    );

    // A snapshot made while mounted shows up.
    std::fs::write(src.join("added-later.txt"), b"later").unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);
    let second = u.snapshot_ids()[1][..8].to_string();
    wait_for("the new snapshot to show", || {
        mnt.join("ids").join(&second).is_dir()
    });
    assert_eq!(
        std::fs::read(mnt.join("ids").join(&second).join("added-later.txt")).unwrap(),
        b"later"
    );
    wait_for("latest/ to follow it", || {
        mnt.join("latest/src/added-later.txt").exists()
    });

    // SIGTERM: unmounted, and the process ends with 0.
    mounted.signal("TERM");
    let dir = mounted.dir.clone();
    let (code, err) = mounted.wait();
    assert_eq!(code, Some(0), "{err}");
    assert!(!is_mounted(&dir), "still mounted after SIGTERM");
}

#[test]
fn unmounting_from_outside_ends_the_process() {
    if let Some(why) = no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let u = User::new();
    let src = u.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"a").unwrap();
    u.create();
    u.ok(&["backup", src.to_str().unwrap()]);
    let mnt = u.path("mnt");
    let mounted = Mounted::start(&u, &mnt, &[]);
    assert_eq!(std::fs::read(mnt.join("latest/src/a")).unwrap(), b"a");
    let status = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(&mnt)
        .status()
        .or_else(|_| std::process::Command::new("umount").arg(&mnt).status())
        .unwrap();
    assert!(status.success());
    let (code, err) = mounted.wait();
    assert_eq!(code, Some(0), "{err}");
    assert!(!is_mounted(&mnt));
}

#[test]
fn a_mount_names_what_it_cannot_do() {
    let u = User::new();
    u.create();
    let out = u.kast(&["mount", u.path("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        user::stderr(&out).contains("is not a folder"),
        "{}",
        user::stderr(&out)
    );
}

#[test]
fn a_store_on_an_ssh_server_mounts_through_its_plugin() {
    if let Some(why) = no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let server = kast_test_support::servers::sshd::Sshd::start();
    let mut u = User::new();
    u.location = server.url(&u.store);
    let src = u.path("src");
    generate_tree(&src, 12, 2 << 20);
    u.create();
    u.ok(&["backup", src.to_str().unwrap()]);
    assert!(
        u.store.join("config").is_file(),
        "the store is on the server"
    );
    let mnt = u.path("mnt");
    let mounted = Mounted::start(&u, &mnt, &["--cache-mib", "1"]);
    // Every byte comes through the SFTP plugin, in its sandbox; a 1 MiB
    // cache makes the big file's chunks be fetched again as it is read.
    assert_same_tree(&src, &mnt.join("latest/src"));
    mounted.signal("INT");
    let (code, err) = mounted.wait();
    assert_eq!(code, Some(0), "{err}");
}
