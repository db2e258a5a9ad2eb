//! The built-in fs plugins pass the connector conformance suite that the
//! native connectors pass (tests/support/src/common/conformance.rs).

use kast_test_support::common;

use common::conformance::{self, Connectors};
use kast_engine::storage::Storage;
use kast_engine::{Destination, Source};
use kast_plugins::Host;
use std::path::Path;
use std::sync::Arc;

struct Wasm(Host);

fn url(path: &Path) -> String {
    format!("fs://{}", path.display())
}

impl Connectors for Wasm {
    fn storage(&self, path: &Path) -> Arc<dyn Storage> {
        self.0.new_storage(&url(path)).unwrap()
    }
    fn source(&self, path: &Path) -> Box<dyn Source> {
        Box::new(self.0.source(&url(path)).unwrap())
    }
    fn destination(&self, path: &Path) -> Box<dyn Destination> {
        Box::new(self.0.destination(&url(path)).unwrap())
    }
}

#[test]
fn fs_plugins_conform() {
    let cache = tempfile::tempdir().unwrap();
    let host = Host::new(Some(cache.path().to_path_buf()), None).unwrap();
    conformance::run_all(&Wasm(host), 40 << 20);
}

/// A FIFO where a file is asked for (swapped in after a listing, say) is
/// refused at once: opening it to read would wait for a writer for ever,
/// inside a host call no deadline could end.
#[test]
fn a_fifo_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    let (done, answer) = std::sync::mpsc::channel();
    let path = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let host = Host::new(None, None).unwrap();
        let source = host.source(&url(&path)).unwrap();
        let opened = source.open(b"fifo").map(|_| ());
        let _ = done.send(opened.map_err(|e| e.to_string()));
    });
    let opened = answer
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("opening a FIFO must not wait");
    let err = opened.expect_err("a FIFO is not read");
    assert!(err.contains("not a regular file"), "{err}");
}
