//! Reading small files ahead for a backup from a plugin source other than
//! local files.
//!
//! The walk opens files one after another on one thread. Through a network
//! plugin each small file then costs round trips (open it, wait for its
//! first bytes) and the plugin's own work (an SFTP plugin decrypts its
//! transport in WebAssembly) before the walk can chunk and hash it, all in
//! turn on one connection: a backup of 257 files of 1 MiB from SFTP took
//! 2.4 s against `scp`'s 1.55 s. Here helper threads, each with an instance
//! (a connection) of its own, fetch the small files the walk announced
//! (`Source::will_read`, in the order it will open them) whole, a few MiB
//! ahead, side by side: 1.75 s.
//!
//! Large files stay with the walk, read in pieces through its own instance:
//! handing their pieces to helpers measured slower (7.1 s against 6.4 s on
//! the 1 GiB benchmark tree), the pieces waiting on one connection either
//! way. The walk's instance is never touched by the helpers; it lists, and
//! reads whatever was not fetched (not reached, not announced, or not
//! readable by a helper, so the walk meets any error itself). A location
//! that refuses more connections leaves the walk reading everything.

use crate::contract::PIECE;
use crate::instance::{Instance, InstanceConfig};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Files up to this size are fetched whole.
const SMALL: u64 = PIECE as u64;

/// Bytes fetched (or being fetched) and not yet taken by the walk.
const BUDGET: u64 = 4 << 20;

/// Helper threads, each with its own instance.
const HELPERS: usize = 2;

/// Announced files not yet fetched, at most; further announcements are
/// dropped (they are only hints).
const QUEUE: usize = 100_000;

/// The helper threads of one source; dropping it stops them.
pub(crate) struct FetchAhead {
    shared: Arc<Fetching>,
}

#[derive(Default)]
struct Fetching {
    state: Mutex<State>,
    changed: Condvar,
}

/// An announced file: its place in the order of announcements, and its path.
type Announced = (u64, Arc<[u8]>);

/// A fetched file: its bytes, and whether they are all of it (a file grown
/// past one piece since it was listed is handed on with its first piece).
pub(crate) type Fetched = (Vec<u8>, bool);

#[derive(Default)]
struct State {
    /// Announced files not handed to a helper yet, in the walk's order.
    queue: VecDeque<Announced>,
    /// Numbers the next announced file.
    next_number: u64,
    fetching: Vec<Announced>,
    ready: Vec<(Announced, Fetched)>,
    /// Bytes in `ready`, plus a piece's worth for each file being fetched.
    held: u64,
    /// The file the walk waits for: fetched even past the budget.
    wanted: Option<u64>,
    /// Helpers started and not given up (their instance may still be
    /// opening).
    helpers: usize,
    /// Helpers whose instance is open: until one is, the walk reads
    /// every file itself rather than wait for a connection.
    connected: usize,
    /// The source is gone.
    stopped: bool,
}

impl Fetching {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(state).unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Forgets the files fetched before file `number`: the walk passed
    /// them without opening them.
    fn drop_before(&mut self, number: u64) {
        let mut freed = 0;
        self.ready.retain(|((n, _), (bytes, _))| {
            let keep = *n > number;
            if !keep {
                freed += bytes.len() as u64;
            }
            keep
        });
        self.held -= freed;
    }

    /// The next file to fetch, if the budget has room for it.
    fn next_file(&mut self) -> Option<Announced> {
        let (number, _) = self.queue.front()?;
        let over = self.held > 0 && self.held + SMALL > BUDGET;
        if over && self.wanted != Some(*number) {
            return None;
        }
        self.held += SMALL;
        self.queue.pop_front()
    }
}

impl FetchAhead {
    /// Starts the helpers; each opens its instance of `config` first.
    pub(crate) fn start(config: Arc<InstanceConfig>) -> Self {
        let shared = Arc::new(Fetching::default());
        for _ in 0..HELPERS {
            // Counted before it starts: a helper that fails at once counts
            // itself out again.
            shared.lock().helpers += 1;
            let (helper, config) = (shared.clone(), config.clone());
            let started = std::thread::Builder::new()
                .name("kast-fetch-ahead".into())
                .spawn(move || fetch_until_stopped(&helper, &config));
            if started.is_err() {
                shared.lock().helpers -= 1;
            }
        }
        Self { shared }
    }

    /// The walk will open these files, in this order, after any announced
    /// before; the small ones are fetched.
    pub(crate) fn announce(&self, files: &[(Vec<u8>, u64)]) {
        let mut state = self.shared.lock();
        if state.helpers == 0 {
            return;
        }
        let room = QUEUE.saturating_sub(state.queue.len());
        let small = files.iter().filter(|(_, size)| *size <= SMALL);
        for (path, _) in small.take(room) {
            let number = state.next_number;
            state.next_number += 1;
            state.queue.push_back((number, path.as_slice().into()));
        }
        self.shared.changed.notify_all();
    }

    /// `path` if it is fetched or to be fetched (waiting for it); `None`
    /// when the walk is to read it itself.
    pub(crate) fn take(&self, path: &[u8]) -> Option<Fetched> {
        let shared = &self.shared;
        let mut state = shared.lock();
        let taken = loop {
            if let Some(at) = state.ready.iter().position(|((_, p), _)| &**p == path) {
                let ((number, _), fetched) = state.ready.swap_remove(at);
                state.held -= fetched.0.len() as u64;
                state.drop_before(number);
                break Some(fetched);
            }
            if state.fetching.iter().any(|(_, p)| &**p == path) {
                state = shared.wait(state);
                continue;
            }
            let Some(at) = state.queue.iter().position(|(_, p)| &**p == path) else {
                break None;
            };
            // Those announced before it were passed without being opened.
            let number = state.queue[at].0;
            state.drop_before(number);
            if state.connected == 0 {
                // No helper is connected (yet): not worth a wait.
                state.queue.drain(..=at);
                break None;
            }
            state.queue.drain(..at);
            state.wanted = Some(number);
            shared.changed.notify_all();
            state = shared.wait(state);
        };
        state.wanted = None;
        shared.changed.notify_all();
        taken
    }
}

impl Drop for FetchAhead {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.stopped = true;
        state.queue.clear();
        state.ready.clear();
        self.shared.changed.notify_all();
    }
}

/// A helper: the next announced file, whenever the budget has room.
fn fetch_until_stopped(shared: &Fetching, config: &Arc<InstanceConfig>) {
    let instance = config.open();
    let mut state = shared.lock();
    let Ok(mut instance) = instance else {
        // The location takes no more connections, or this one failed: the
        // walk reads what this helper would have.
        state.helpers -= 1;
        if state.helpers == 0 {
            state.queue.clear();
        }
        shared.changed.notify_all();
        return;
    };
    state.connected += 1;
    loop {
        if state.stopped {
            return;
        }
        let Some(file) = state.next_file() else {
            state = shared.wait(state);
            continue;
        };
        state.fetching.push(file.clone());
        drop(state);

        let fetched = fetch_whole(&mut instance, &file.1);

        state = shared.lock();
        state.fetching.retain(|(number, _)| *number != file.0);
        state.held -= SMALL;
        if let Some(fetched) = fetched
            && !state.stopped
        {
            state.held += fetched.0.len() as u64;
            state.ready.push((file, fetched));
        }
        shared.changed.notify_all();
    }
}

/// A file to its end or, grown past a piece since it was listed, its first
/// piece (only where the contract reads at offsets, so the walk can read on
/// from there); `None` if it cannot be read. Only an empty piece ends a
/// file, as for the walk's own reads.
fn fetch_whole(instance: &mut Instance, path: &[u8]) -> Option<Fetched> {
    instance.restart_if_grown();
    let file = instance.open_file(path).ok()?;
    let fetched = (|| {
        let bytes = instance.read_at(file, 0, PIECE as u32).ok()?;
        if bytes.is_empty() {
            return Some((bytes, true));
        }
        let more = instance
            .read_at(file, bytes.len() as u64, PIECE as u32)
            .ok()?;
        if more.is_empty() {
            return Some((bytes, true));
        }
        instance
            .version()
            .reads_at_offsets()
            .then_some((bytes, false))
    })();
    instance.close_file(file);
    fetched
}
