//! `kast mount DIR`: every snapshot as a read-only folder (FUSE), until
//! `fusermount3 -u DIR`, Ctrl-C or SIGTERM. The layout is in
//! [`layout`], the answers to the kernel in [`filesystem`].

mod filesystem;
mod layout;

use crate::cli::MountArgs;
use crate::context::Context;
use crate::spec;
use anyhow::{Context as _, Result, bail};
use fuser::{Config, MountOption};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Mounts the store at `args.dir` and serves it until it is unmounted or
/// the process is told to stop; then it is unmounted and the answer is 0.
pub fn run(ctx: &Context, args: &MountArgs, cancel: Arc<AtomicBool>) -> Result<i32> {
    if !args.dir.is_dir() {
        bail!(
            "{} is not a folder: make an empty folder to mount on",
            args.dir.display()
        );
    }
    let store = ctx.open_store()?;
    store.require_full("mount snapshots")?;
    let filter = spec::filter(ctx, &args.filter)?;
    let cache = args
        .cache_mib
        .checked_mul(1 << 20)
        .context("--cache-mib is too large")?;
    let fs = filesystem::SnapshotFs::new(store, filter, cache)?;
    let shown = fs.snapshot_count();
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::DefaultPermissions,
        MountOption::FSName("kast".into()),
        MountOption::Subtype("kast".into()),
    ];
    // Two threads: one read may wait on the store while another is served.
    config.n_threads = Some(2);
    let session = fuser::spawn_mount(fs, &args.dir, &config).with_context(|| {
        format!(
            "cannot mount on {} (FUSE needs /dev/fuse, and fusermount3 from Debian's fuse3 \
             when not run as root)",
            args.dir.display()
        )
    })?;
    ctx.note(&format!(
        "{} mounted at {} (read-only): `fusermount3 -u {}` or Ctrl-C to unmount",
        spec::count(shown as u64, "snapshot", "snapshots"),
        args.dir.display(),
        args.dir.display()
    ));
    loop {
        if session.guard.is_finished() {
            // Unmounted from outside (fusermount3 -u).
            session.join().context("serving the mount")?;
            return Ok(0);
        }
        if cancel.load(Ordering::SeqCst) {
            return match session.umount_and_join() {
                Ok(()) => Ok(0),
                Err(e) => {
                    // Busy (a shell inside it): detach it now; it goes
                    // when its last user leaves, and its reads end with us.
                    let dir = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(
                        args.dir.as_os_str(),
                    ))?;
                    // SAFETY: a NUL-terminated path that outlives the call.
                    let detached = unsafe { libc::umount2(dir.as_ptr(), libc::MNT_DETACH) } == 0
                        || std::process::Command::new("fusermount3")
                            .args(["-u", "-z", "--"])
                            .arg(&args.dir)
                            .status()
                            .is_ok_and(|s| s.success());
                    if !detached {
                        bail!("cannot unmount {}: {e}", args.dir.display());
                    }
                    ctx.warn(&format!(
                        "{} was busy ({e}): detached, it goes when the last program using it ends",
                        args.dir.display()
                    ));
                    Ok(0)
                }
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
