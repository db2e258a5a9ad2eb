//! A small pool of byte buffers handed back and forth between pipeline
//! threads. Allocating a fresh megabyte-sized buffer per chunk makes the
//! allocator keep freed memory around per thread; reusing a bounded set of
//! buffers keeps peak memory at what is really in flight.

use crossbeam_channel::{Receiver, Sender, bounded};

/// Buffers waiting for reuse; cloning shares the pool.
#[derive(Clone)]
pub struct BufferPool {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

impl BufferPool {
    /// A pool that keeps at most `capacity` idle buffers.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = bounded(capacity);
        Self { tx, rx }
    }

    /// An empty buffer, reused when one is idle.
    pub fn take(&self) -> Vec<u8> {
        self.rx.try_recv().unwrap_or_default()
    }

    /// Returns a buffer; it is freed instead if the pool is full.
    pub fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        let _ = self.tx.try_send(buf);
    }
}
