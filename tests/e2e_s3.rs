//! End to end over S3, with the real `kast` binary and a real 3-node
//! Garage cluster on loopback: a store created through one node and read
//! through another, a node killed in the middle of a backup, a wrong key,
//! HTTPS through a TLS proxy with a private CA, a bucket backed up.

use kast_test_support::common;
use kast_test_support::servers;
use kast_test_support::user;

use common::{assert_same_tree, generate_tree};
use servers::garage::Garage;
use servers::tls_proxy::TlsProxy;
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

#[test]
fn a_store_over_https_trusts_only_its_private_ca() {
    let garage = Garage::start();
    let proxy = TlsProxy::start(garage.s3_ports[0]);
    let https = garage.url_at(&format!("s3://127.0.0.1:{}", proxy.port), "tls-store");
    let mut u = User::new();
    u.location = format!("{https}&ca={}", proxy.ca().display());
    let src = u.path("src");
    generate_tree(&src, 43, 6 << 20);
    u.create();
    u.ok(&["backup", src.to_str().unwrap()]);
    let out = u.path("out");
    u.ok(&["restore", "latest", "--to", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);

    // The public roots do not vouch for the proxy: refused, and said why.
    u.location = https;
    let refused = u.kast(&["ls"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("TLS"), "{}", stderr(&refused));
}

#[test]
fn a_bucket_is_backed_up_as_a_tree_and_restored_into_another() {
    let garage = Garage::start();
    let u = User::new();
    let src = u.path("src");
    common::ftp_tree(&src);
    u.create();
    u.ok(&["backup", src.to_str().unwrap()]);
    // Into the bucket (the symlink has no place there: reported, exit 1),
    // then the bucket as a source, then back to disk.
    let bucket = garage.url(0, "tree");
    let out = u.kast(&["restore", "latest", "--to", &bucket]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("link: plugin s3: symlink: S3 has no symlinks"),
        "{}",
        stderr(&out)
    );
    let from_bucket = garage.url(1, "tree");
    u.ok(&["backup", &from_bucket]);
    let back = u.path("back");
    let to = back.to_str().unwrap();
    u.ok(&["restore", "latest", "--source", &from_bucket, "--to", to]);
    assert_eq!(common::s3_view(&src), common::s3_view(&back));
}
