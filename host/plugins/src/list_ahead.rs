//! Read-ahead of directory listings. A backup walks its tree on one thread,
//! and on a cold cache every entry it lists costs kernel work (a directory
//! search and an inode read) that leaves the second core idle: a cold
//! unchanged 100,000-file backup spent most of its time there. The engine
//! says which directories it will list next ([`ListAhead::ask`]); two
//! helper threads list them (names, stats, extended attributes) ahead of
//! the walk, and the walk takes the finished listings ([`ListAhead::take`]).
//! Bounded: helpers wait while more than a few thousand entries are ready
//! and not yet taken, so a huge tree never sits in memory.

use crate::bindings::types::Error;
use crate::local_fs::Listing;
use cap_std::fs::Dir;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

const HELPERS: usize = 2;
/// Helpers wait while this many listed entries are waiting to be taken…
const MAX_READY_ENTRIES: usize = 8192;
/// …or this many directories are listed or being listed.
const MAX_READY_DIRS: usize = 64;

/// Lists one directory beneath the granted root (the same function the walk
/// would call itself, so a taken listing is exactly what it would have got).
pub type ListFn = fn(&Dir, &[u8]) -> Result<Listing, Error>;

pub struct ListAhead {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Directories to list, in the order the walk will ask for them.
    queue: VecDeque<Vec<u8>>,
    /// The queued directories no one has started on (the walk may list one
    /// itself first: it is then dropped from here and skipped in `queue`).
    waiting: HashSet<Vec<u8>>,
    slots: HashMap<Vec<u8>, Slot>,
    ready_entries: usize,
    stop: bool,
}

enum Slot {
    Listing,
    Ready(Result<Listing, Error>),
}

impl ListAhead {
    /// Starts the helpers on copies of the root's descriptor; `None` when
    /// no thread or descriptor can be had (the walk then lists alone).
    pub fn start(root: &Dir, list: ListFn) -> Option<ListAhead> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        for _ in 0..HELPERS {
            let root = root.try_clone().ok()?;
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("kast-list-ahead".into())
                .spawn(move || shared.help(&root, list))
                .ok()?;
        }
        Some(ListAhead { shared })
    }

    /// Queues `dirs` to be listed next, before anything queued earlier (a
    /// depth-first walk lists a directory's subdirectories before its
    /// later siblings).
    pub fn ask(&self, dirs: &[Vec<u8>]) {
        let mut state = self.shared.lock();
        for dir in dirs.iter().rev() {
            if state.waiting.insert(dir.clone()) {
                state.queue.push_front(dir.clone());
            }
        }
        self.shared.changed.notify_all();
    }

    /// The listing of `path` if a helper has made it or is making it (then
    /// waits for it); `None` when the caller should list it itself.
    pub fn take(&self, path: &[u8]) -> Option<Result<Listing, Error>> {
        let mut state = self.shared.lock();
        // Not started yet: listing it here is quicker than waiting.
        state.waiting.remove(path);
        loop {
            match state.slots.get(path) {
                None => return None,
                Some(Slot::Listing) => {
                    state = self
                        .shared
                        .changed
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner());
                }
                Some(Slot::Ready(_)) => {
                    let Some(Slot::Ready(result)) = state.slots.remove(path) else {
                        unreachable!("matched just above");
                    };
                    state.ready_entries -= result.as_ref().map_or(0, |l| l.entries.len());
                    self.shared.changed.notify_all();
                    return Some(result);
                }
            }
        }
    }
}

impl Drop for ListAhead {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn help(&self, root: &Dir, list: ListFn) {
        loop {
            let path = {
                let mut state = self.lock();
                loop {
                    if state.stop {
                        return;
                    }
                    let room = state.ready_entries < MAX_READY_ENTRIES
                        && state.slots.len() < MAX_READY_DIRS;
                    if room && let Some(path) = state.queue.pop_front() {
                        if state.waiting.remove(&path) {
                            state.slots.insert(path.clone(), Slot::Listing);
                            break path;
                        }
                        continue;
                    }
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            let result = list(root, &path);
            let mut state = self.lock();
            state.ready_entries += result.as_ref().map_or(0, |l| l.entries.len());
            state.slots.insert(path, Slot::Ready(result));
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{Entry, ErrorKind};

    fn list_names(root: &Dir, path: &[u8]) -> Result<Listing, Error> {
        let rel = std::str::from_utf8(path).unwrap();
        let names = root.read_dir(rel).map_err(|e| Error {
            kind: ErrorKind::NotFound,
            message: e.to_string(),
        })?;
        let mut out: Vec<Entry> = names
            .map(|n| Entry {
                name: n.unwrap().file_name().into_encoded_bytes(),
                kind: crate::bindings::types::EntryKind::File,
                meta: crate::bindings::types::Metadata {
                    mode: 0,
                    uid: 0,
                    gid: 0,
                    mtime_ns: 0,
                    ctime_ns: 0,
                    inode: 0,
                    size: 0,
                    xattrs: Vec::new(),
                },
                symlink_target: None,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Listing {
            entries: out,
            facts: Default::default(),
        })
    }

    #[test]
    fn taken_listings_match_and_unasked_ones_are_left_to_the_caller() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dirs = Vec::new();
        for d in 0..200 {
            let name = format!("d{d:03}");
            std::fs::create_dir(tmp.path().join(&name)).unwrap();
            for f in 0..d % 7 {
                std::fs::write(tmp.path().join(&name).join(format!("f{f}")), b"").unwrap();
            }
            dirs.push(name.into_bytes());
        }
        let root = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        let ahead = ListAhead::start(&root, list_names).unwrap();
        ahead.ask(&dirs);
        // Give the helpers a head start (on a busy machine this loop could
        // otherwise take every directory before they list one).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !ahead
            .shared
            .lock()
            .slots
            .values()
            .any(|s| matches!(s, Slot::Ready(_)))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no helper listed anything"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut taken = 0;
        for dir in &dirs {
            // Every listing, from a helper or not, is the directory's own.
            let listing = match ahead.take(dir) {
                Some(result) => {
                    taken += 1;
                    result.unwrap()
                }
                None => list_names(&root, dir).unwrap(),
            };
            let names = |l: Listing| l.entries.into_iter().map(|e| e.name).collect::<Vec<_>>();
            assert_eq!(names(listing), names(list_names(&root, dir).unwrap()));
        }
        assert!(taken > 0, "the helpers listed nothing ahead");
        assert!(ahead.take(b"never-asked").is_none());
        let state = ahead.shared.lock();
        assert!(state.slots.is_empty() && state.ready_entries == 0);
    }
}
