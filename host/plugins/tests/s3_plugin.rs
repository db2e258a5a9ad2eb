//! The built-in s3 plugin against a real 3-node Garage cluster on loopback:
//! the storage conformance checks, listings past one page, reads through
//! another node, and the errors a user meets.

#[path = "../../engine/tests/common/mod.rs"]
mod common;
#[path = "../../../tests/servers/mod.rs"]
mod servers;

use common::conformance::{self, Connectors};
use kast_engine::storage::{ObjectKind, Storage};
use kast_engine::{Destination, Source};
use kast_plugins::Host;
use servers::garage::Garage;
use std::path::Path;
use std::sync::Arc;

fn host() -> (tempfile::TempDir, Host) {
    let cache = tempfile::tempdir().unwrap();
    let host = Host::new(Some(cache.path().to_path_buf()), None).unwrap();
    (cache, host)
}

/// Storage on the cluster, one prefix per local path the suite uses.
struct S3 {
    host: Host,
    garage: Garage,
}

impl Connectors for S3 {
    fn storage(&self, path: &Path) -> Arc<dyn Storage> {
        let prefix = path.display().to_string().replace('/', "_");
        self.host.new_storage(&self.garage.url(0, &prefix)).unwrap()
    }
    fn source(&self, _: &Path) -> Box<dyn Source> {
        unreachable!("the S3 plugin serves storage")
    }
    fn destination(&self, _: &Path) -> Box<dyn Destination> {
        unreachable!("the S3 plugin serves storage")
    }
}

#[test]
fn s3_storage_conforms_on_a_three_node_cluster() {
    let (_cache, host) = host();
    let c = S3 {
        host,
        garage: Garage::start(),
    };
    conformance::check_storage_semantics(&c);
    conformance::check_damage_found(&c);

    // More than one page of listing (Garage pages at 1,000), written
    // through one node and read through another.
    let one = c.host.new_storage(&c.garage.url(0, "many")).unwrap();
    for i in 0..1100u32 {
        one.put(ObjectKind::Lock, &format!("{i:08x}"), &i.to_le_bytes())
            .unwrap();
    }
    let three = c.host.storage(&c.garage.url(2, "many")).unwrap();
    let listed = three.list(ObjectKind::Lock).unwrap();
    assert_eq!(listed.len(), 1100);
    assert_eq!(
        three
            .get(ObjectKind::Lock, &format!("{:08x}", 1099))
            .unwrap(),
        1099u32.to_le_bytes()
    );
}

#[test]
fn s3_errors_are_clear() {
    let (_cache, host) = host();
    let garage = Garage::start();
    let error = |url: String| match host.storage(&url) {
        Ok(s) => s.list(ObjectKind::Snapshot).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    let wrong = garage.path("wrong");
    std::fs::write(&wrong, "0".repeat(64)).unwrap();
    let e = error(garage.url(0, "x").replace(
        &garage.path("secret").display().to_string(),
        &wrong.display().to_string(),
    ));
    assert!(e.contains("check access_key_id"), "{e}");
    let e = error(garage.url(0, "x").replace("/kast/", "/no-such-bucket/"));
    assert!(e.contains("bucket does not exist"), "{e}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = error(
        garage
            .url(0, "x")
            .replace(&format!(":{}/", garage.s3_ports[0]), &format!(":{port}/")),
    );
    assert!(
        e.contains("cannot reach") || e.contains("request failed"),
        "{e}"
    );
}
