//! Read-ahead for backups of many small files. When a directory is listed,
//! a helper thread asks the kernel to start reading its small files at
//! once (`posix_fadvise(WILLNEED)`), so the backup, which reads them one
//! after another, finds them in memory instead of waiting on the disk for
//! each: a cold 100,000-file backup spent most of its time in such waits.
//! Only a hint: nothing is read into this process, and a full queue drops
//! the request.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, sync_channel};

/// Files larger than this are read in large pieces anyway.
const SMALL_FILE: u64 = 1 << 20;

pub struct Prefetcher {
    queue: SyncSender<(cap_std::fs::Dir, Vec<PathBuf>)>,
}

impl Prefetcher {
    /// Starts the helper thread; it ends when the prefetcher is dropped.
    pub fn start() -> Option<Prefetcher> {
        let (queue, requests) = sync_channel::<(cap_std::fs::Dir, Vec<PathBuf>)>(8);
        std::thread::Builder::new()
            .name("kast-prefetch".into())
            .spawn(move || {
                for (dir, names) in requests {
                    for name in names {
                        // Never waits: a file swapped for a FIFO since it
                        // was listed would otherwise block this thread.
                        if let Ok(file) = crate::local_fs::open_no_wait(&dir, &name) {
                            // SAFETY: a plain syscall on a descriptor we own.
                            unsafe {
                                libc::posix_fadvise(
                                    file.as_raw_fd(),
                                    0,
                                    0,
                                    libc::POSIX_FADV_WILLNEED,
                                );
                            }
                        }
                    }
                }
            })
            .ok()?;
        Some(Prefetcher { queue })
    }

    /// Asks for the files of `dir` listed with their sizes to be read ahead.
    pub fn ask(&self, dir: &cap_std::fs::Dir, files: impl Iterator<Item = (PathBuf, u64)>) {
        let names: Vec<PathBuf> = files
            .filter(|(_, size)| (1..=SMALL_FILE).contains(size))
            .map(|(name, _)| name)
            .collect();
        if names.len() > 1
            && let Ok(dir) = dir.try_clone()
        {
            let _ = self.queue.try_send((dir, names));
        }
    }
}
