//! Progress reporting: the engine counts, the caller draws (a progress bar,
//! JSON lines, nothing). Every method has a no-op default.

/// Receives counts as long operations advance; called from worker threads.
pub trait Progress: Send + Sync {
    /// Bytes of content processed (read on backup, written on restore,
    /// verified on check).
    fn bytes(&self, _n: u64) {}
    /// Entries finished (files, dirs, packs…).
    fn items(&self, _n: u64) {}
    /// Something went wrong but the operation goes on.
    fn warning(&self, _message: &str) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}
