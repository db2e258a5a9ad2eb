//! What one instance may use, and the accounting that enforces it. The
//! wasm side is bounded by wasmtime (linear memory through [`Limiter`], a
//! call's running time through epoch interruption); the host side by the
//! caps below, since what a plugin makes the host hold (HTTP fields,
//! sockets, streams) lives outside its linear memory and would otherwise
//! escape its memory limit.

use std::time::Duration;

/// Host objects (WASI streams, pollables, sockets, HTTP fields and
/// requests…) one instance may hold at once. The built-in plugins hold
/// a few dozen at most; wasmtime's own default is a million.
pub const MAX_HOST_OBJECTS: usize = 4096;

/// Open TCP sockets one instance may hold at once: FTP needs two (control
/// and data), SFTP one.
pub const MAX_SOCKETS: usize = 16;

/// Bytes one set of HTTP header fields may hold (names and values): an S3
/// request's headers take under 2 KiB.
pub const MAX_HTTP_FIELD_BYTES: usize = 16 << 10;

/// The most the host side of one instance can hold through host objects:
/// what the caps above allow at worst, for the documentation and `plugin
/// info`.
pub const HOST_SIDE_BYTES: usize = MAX_HOST_OBJECTS * MAX_HTTP_FIELD_BYTES;

/// Resource limits of every instance.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Wall time one call may take, running or waiting, before it is
    /// stopped.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            call_timeout: Duration::from_secs(300),
        }
    }
}

impl Limits {
    /// The largest object a storage plugin can be handed in one call: the
    /// call's data is copied into the plugin's memory, and a plugin (or its
    /// language's runtime) may well copy it once more; a quarter of the
    /// memory leaves room for both and for the plugin itself.
    pub fn largest_object(&self) -> usize {
        self.memory_bytes / 4
    }

    /// The limits in words, for `kast plugin info`.
    pub fn describe(&self) -> String {
        format!(
            "{} MiB of memory; {} s per call; at most {MAX_HOST_OBJECTS} host objects \
             ({} MiB), {MAX_SOCKETS} sockets",
            self.memory_bytes >> 20,
            self.call_timeout.as_secs(),
            HOST_SIDE_BYTES >> 20,
        )
    }
}

/// Linear-memory accounting that remembers a refusal, so the error can say
/// why, and the most the instance has been granted.
pub(crate) struct Limiter {
    pub(crate) memory_bytes: usize,
    pub(crate) refused: bool,
    pub(crate) granted: usize,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            refused: false,
            granted: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.refused = true;
            return Ok(false);
        }
        self.granted = self.granted.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
