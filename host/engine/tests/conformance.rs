//! The connector conformance suite against the engine's native local
//! connectors (the plugins run the same suite in host/plugins/tests).

use kast_test_support::common;

use common::conformance::{self, Connectors};
use kast_engine::native::local::{LocalDestination, LocalSource};
use kast_engine::storage::{LocalStorage, Storage};
use kast_engine::{Destination, Source};
use std::path::Path;
use std::sync::Arc;

struct Native;

impl Connectors for Native {
    fn storage(&self, path: &Path) -> Arc<dyn Storage> {
        Arc::new(LocalStorage::new(path))
    }
    fn source(&self, path: &Path) -> Box<dyn Source> {
        Box::new(LocalSource::new(path).unwrap())
    }
    fn destination(&self, path: &Path) -> Box<dyn Destination> {
        Box::new(LocalDestination::new(path).unwrap())
    }
}

/// Bytes in the big file of the round trip; KAST_HEAVY_TESTS=1 makes it 3 GiB.
fn big_size() -> u64 {
    if std::env::var_os("KAST_HEAVY_TESTS").is_some() {
        3 << 30
    } else {
        200 << 20
    }
}

#[test]
fn native_connectors_conform() {
    conformance::run_all(&Native, big_size());
}
