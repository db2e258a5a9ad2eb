//! A file read from a source plugin in large pieces, in order.

use crate::contract::{Handle, PIECE};
use crate::error::PluginError;
use crate::fetch_ahead::Fetched;
use crate::instance::Instance;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, MutexGuard};

/// One instance, shared by the calls made on it.
pub(crate) type Shared = Arc<Mutex<Instance>>;

/// The instance, also after a thread panicked holding it: a call on an
/// instance in a bad state restarts it.
pub(crate) fn lock(instance: &Shared) -> MutexGuard<'_, Instance> {
    instance.lock().unwrap_or_else(|e| e.into_inner())
}

/// A source plugin's file as a [`Read`].
pub(crate) struct PluginReader {
    instance: Shared,
    path: Vec<u8>,
    /// Opened at the first piece read here rather than fetched ahead.
    file: Option<Handle>,
    /// Where the next piece starts.
    offset: u64,
    piece: Vec<u8>,
    at: usize,
    done: bool,
}

impl PluginReader {
    /// A reader of `path` that starts with `first` when the file was
    /// fetched ahead, and with `file` open when it was not.
    pub(crate) fn new(
        instance: Shared,
        path: Vec<u8>,
        file: Option<Handle>,
        first: Option<Fetched>,
    ) -> Self {
        let (piece, done) = first.unwrap_or_default();
        Self {
            instance,
            path,
            file,
            offset: piece.len() as u64,
            piece,
            at: 0,
            done,
        }
    }

    /// The next piece; empty at the end of the file.
    fn next_piece(&mut self) -> Result<Vec<u8>, PluginError> {
        let mut instance = lock(&self.instance);
        let open = match self.file {
            Some(file) if !must_reopen(&mut instance, file) => file,
            _ => {
                let file = instance.open_file(&self.path)?;
                self.file = Some(file);
                file
            }
        };
        let piece = instance.read_at(open, self.offset, PIECE as u32)?;
        self.offset += piece.len() as u64;
        Ok(piece)
    }
}

/// Where the contract reads at offsets, an instance that has grown too
/// large is restarted before a piece and the file opened again where it
/// was, so one file of any size goes through a leaky plugin; so too when
/// the instance was restarted after a failure.
fn must_reopen(instance: &mut Instance, file: Handle) -> bool {
    instance.version().reads_at_offsets() && (instance.restart_if_grown() || !instance.holds(file))
}

impl Read for PluginReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.piece.len() {
            if self.done {
                return Ok(0);
            }
            self.piece = self.next_piece().map_err(PluginError::into_io)?;
            self.at = 0;
            // Only an empty piece ends the file: a plugin that returns
            // short pieces anyway must not cut files short.
            self.done = self.piece.is_empty();
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for PluginReader {
    fn drop(&mut self) {
        if let Some(file) = self.file {
            lock(&self.instance).close_file(file);
        }
    }
}
