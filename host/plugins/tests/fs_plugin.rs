//! The built-in fs plugins pass the connector conformance suite that the
//! native connectors pass (host/engine/tests/common/conformance.rs).

#[path = "../../engine/tests/common/mod.rs"]
mod common;

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
