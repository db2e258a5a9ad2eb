//! End to end over S3, with the real `kast` binary and a real 3-node
//! Garage cluster on loopback: a store created through one node and read
//! through another, a node killed in the middle of a backup, a wrong key.

#[path = "../host/engine/tests/common/mod.rs"]
mod common;
#[path = "servers/mod.rs"]
mod servers;
#[path = "user.rs"]
mod user;

use common::{assert_same_tree, generate_tree};
use servers::garage::Garage;
use std::time::{Duration, Instant};
use user::{User, stderr};

#[test]
fn a_store_on_a_garage_cluster_survives_a_node_lost_mid_backup() {
    let mut garage = Garage::start();
    let mut u = User::new();
    u.location = garage.url(0, "store");
    let src = u.path("src");
    generate_tree(&src, 41, 96 << 20);
    u.create();

    // Back up through node 1 while node 3 dies: the cluster keeps a
    // quorum, so the backup completes.
    let child = u.spawn(&["backup", src.to_str().unwrap()]);
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    garage.kill(2);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(300));
    garage.restart(2);

    // Read through another node: the snapshot, every byte, and check.
    let mut reader = User::with_store(u.store.clone());
    reader.location = garage.url(1, "store");
    let out = reader.path("out");
    reader.ok(&["restore", "latest", "--to", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
    reader.ok(&["check"]);
    u.ok(&["backup", src.to_str().unwrap()]);
    assert_eq!(reader.snapshot_ids().len(), 2);
}

#[test]
fn a_wrong_secret_key_is_a_clear_error_and_writes_nothing() {
    let garage = Garage::start();
    let wrong = garage.path("wrong");
    std::fs::write(&wrong, "f".repeat(64)).unwrap();
    let mut u = User::new();
    u.location = garage.url(0, "store").replace(
        &garage.path("secret").display().to_string(),
        &wrong.display().to_string(),
    );
    let out = u.kast(&["create", "--kdf-memory-mib", "8", "--kdf-iterations", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("check access_key_id"),
        "{}",
        stderr(&out)
    );
    u.location = garage.url(0, "store");
    let out = u.kast(&["ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
}
