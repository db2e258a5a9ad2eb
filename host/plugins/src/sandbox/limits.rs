//! What one instance may use, and the accounting that enforces it. The
//! wasm side is bounded by wasmtime (linear memory through [`Limiter`], a
//! call's running time through epoch interruption); the host side by the
//! caps below, since what a plugin makes the host hold (HTTP fields,
//! sockets, streams) lives outside its linear memory and would otherwise
//! escape its memory limit.

use std::time::Duration;

/// Host objects (WASI streams, pollables, sockets, HTTP fields and
/// requests…) an instance may hold at once, at the least; see
/// [`Limits::host_objects`]. wasmtime's own default is a million.
const MIN_HOST_OBJECTS: usize = 4096;

/// Open TCP sockets one instance may hold at once: FTP needs two (control
/// and data), SFTP one.
pub const MAX_SOCKETS: usize = 16;

/// Bytes one set of HTTP header fields may hold (names and values): an S3
/// request's headers take under 2 KiB.
pub const MAX_HTTP_FIELD_BYTES: usize = 8 << 10;

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

    /// Host objects one instance may hold at once: as many as, full of
    /// HTTP fields, take as much of the host's memory as the plugin may
    /// take of its own (65,536 at 512 MiB). Some toolchains drop their
    /// streams and pollables only when their garbage collector runs
    /// (componentize-js held 4096 after reading 24 MiB over HTTP).
    pub fn host_objects(&self) -> usize {
        (self.memory_bytes / MAX_HTTP_FIELD_BYTES).max(MIN_HOST_OBJECTS)
    }

    /// The limits in words, for `kast plugin info`: the values in force.
    pub fn describe(&self) -> String {
        format!(
            "{} MiB of memory (also the most one call hands the host); {} s per call; \
             {} host objects; {MAX_SOCKETS} sockets; HTTP fields of {} KiB",
            self.memory_bytes >> 20,
            self.call_timeout.as_secs(),
            self.host_objects(),
            MAX_HTTP_FIELD_BYTES >> 10,
        )
    }
}

/// Table elements (function references) all of an instance's tables may
/// hold together: 16 MiB of the host's memory at most.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Core instances, memories and tables one component may create: a
/// component made by any toolchain has a handful of each.
const MAX_CORE_INSTANCES: usize = 1000;
const MAX_MEMORIES: usize = 100;
const MAX_TABLES: usize = 1000;

/// Linear-memory accounting over all of an instance's memories (a
/// component may have several: the cap is on their sum), which remembers a
/// refusal, so the error can say why, and the most the instance has held.
pub(crate) struct Limiter {
    pub(crate) memory_bytes: usize,
    pub(crate) refused: bool,
    /// Bytes all memories hold now.
    held: usize,
    /// The most they have held.
    pub(crate) granted: usize,
    /// Elements all tables hold now.
    table_elements: usize,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            refused: false,
            held: 0,
            granted: 0,
            table_elements: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let held = (self.held - current.min(self.held)).saturating_add(desired);
        if held > self.memory_bytes {
            self.refused = true;
            return Ok(false);
        }
        self.held = held;
        self.granted = self.granted.max(held);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let held = (self.table_elements - current.min(self.table_elements)).saturating_add(desired);
        if held > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = held;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_memory_cap_holds_for_all_memories_together() {
        let mut limiter = Limiter::new(&Limits {
            memory_bytes: 64 << 20,
            ..Limits::default()
        });
        // Two memories of 30 MiB fit; a third does not, nor growing one.
        assert!(limiter.memory_growing(0, 30 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 30 << 20, None).unwrap());
        assert!(!limiter.memory_growing(0, 30 << 20, None).unwrap());
        assert!(limiter.refused);
        assert!(!limiter.memory_growing(30 << 20, 40 << 20, None).unwrap());
        assert!(limiter.memory_growing(30 << 20, 34 << 20, None).unwrap());
        assert_eq!(limiter.granted, 64 << 20);
        // Tables likewise, in elements.
        assert!(
            limiter
                .table_growing(0, MAX_TABLE_ELEMENTS / 2, None)
                .unwrap()
        );
        assert!(!limiter.table_growing(0, MAX_TABLE_ELEMENTS, None).unwrap());
    }
}
