//! The built-in s3 plugin against a real 3-node Garage cluster on loopback:
//! the storage conformance checks, listings past one page, reads through
//! another node, and the errors a user meets.

use kast_test_support::common;
use kast_test_support::servers;

use common::conformance::{self, Connectors};
use kast_engine::native::local::LocalDestination;
use kast_engine::storage::{ObjectKind, Storage};
use kast_engine::{BackupOptions, Destination, RestoreOptions, Source};
use kast_plugins::Host;
use servers::garage::Garage;
use servers::tls_proxy::TlsProxy;
use std::io::{Read, Write};
use std::net::TcpListener;
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
    // A bucket is not a directory tree: the source and destination roles
    // have their own test below.
    fn source(&self, _: &Path) -> Box<dyn Source> {
        unreachable!()
    }
    fn destination(&self, _: &Path) -> Box<dyn Destination> {
        unreachable!()
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
    // A valid key without access to the bucket.
    let (outsider, secret) = garage.create_key("outsider");
    let e = error(format!(
        "s3+http://127.0.0.1:{}/kast/x?region=garage&access_key_id={outsider}&secret_access_key={secret}",
        garage.s3_ports[0]
    ));
    assert!(
        e.contains("403") && e.contains("check access_key_id"),
        "{e}"
    );
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

#[test]
fn https_trusts_the_given_ca_and_refuses_any_other() {
    let (_cache, host) = host();
    let garage = Garage::start();
    let proxy = TlsProxy::start(garage.s3_ports[0]);
    let https = garage.url_at(&format!("s3://127.0.0.1:{}", proxy.port), "tls");
    let with_ca = format!("{https}&ca={}", proxy.ca().display());
    let store = host.new_storage(&with_ca).unwrap();
    store
        .put(ObjectKind::Pack, &"ab".repeat(32), b"over tls")
        .unwrap();
    assert_eq!(
        store.get(ObjectKind::Pack, &"ab".repeat(32)).unwrap(),
        b"over tls"
    );
    // The same object, read over plain HTTP straight from a node.
    let plain = host.storage(&garage.url(1, "tls")).unwrap();
    assert_eq!(plain.list(ObjectKind::Pack).unwrap().len(), 1);

    // The public roots do not vouch for a private CA, nor another CA for
    // this server.
    let other = tempfile::tempdir().unwrap();
    servers::test_certificates(other.path());
    for url in [
        https.clone(),
        format!("{https}&ca={}", other.path().join("ca.pem").display()),
    ] {
        let e = match host.storage(&url) {
            Ok(s) => s.list(ObjectKind::Pack).unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("TLS") && e.contains("ca=PATH"), "{e}");
    }
    let e = host
        .storage(&format!("{https}&ca={}", garage.path("secret").display()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no PEM certificate"), "{e}");
}

/// A server that answers every request with a redirect to `target`, and
/// a second one that counts the connections it gets.
#[test]
fn a_redirect_to_another_authority_is_not_followed() {
    let (_cache, host) = host();
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = elsewhere.local_addr().unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let redirector = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = redirector.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in redirector.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{target}/kast/x\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let url = format!("s3+http://127.0.0.1:{port}/kast/x?access_key_id=k&secret_access_key=s");
    let e = match host.storage(&url) {
        Ok(s) => s.list(ObjectKind::Snapshot).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("redirect"), "{e}");
    assert!(
        elsewhere.accept().is_err(),
        "the redirect's target was contacted"
    );
}

/// A tree restored into a bucket, then backed up from it through another
/// node and restored to disk: every file's bytes, time (to the
/// nanosecond) and S3 metadata come back; a large file goes up in parts;
/// unchanged objects are not read again; nothing is overwritten unasked.
#[test]
fn a_bucket_as_destination_and_source_keeps_files_times_and_metadata() {
    let (_cache, host) = host();
    let garage = Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    common::ftp_tree(&src);
    common::write_random_file(&src.join("a/big.bin"), 12 << 20, 5);
    let tagged = xattr::set(src.join("empty"), "user.s3.colour", b"blue").is_ok();
    let store = common::create_store(&dir.path().join("store"), None);
    let first = common::backup_dir(&store, &src);

    let into = format!("{}&part_size_mib=5", garage.url(0, "tree"));
    let bucket = host.destination(&into).unwrap();
    let restored =
        kast_engine::restore(&store, &first.id, b"", &bucket, &RestoreOptions::default()).unwrap();
    let errors: Vec<&str> = restored.errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(errors, ["link"], "only the symlink has no place in S3");
    assert!(
        garage
            .requests()
            .iter()
            .any(|r| r.contains("big.bin?") && r.contains("partNumber=3")),
        "the 12 MiB file went up in parts"
    );

    let from = host.source(&garage.url(1, "tree")).unwrap();
    let second = kast_engine::backup(&store, &from, &BackupOptions::default()).unwrap();
    assert!(second.warnings.is_empty(), "{:?}", second.warnings);
    let out = dir.path().join("out");
    let local = LocalDestination::new(&out).unwrap();
    kast_engine::restore(&store, &second.id, b"", &local, &RestoreOptions::default()).unwrap();
    assert_eq!(common::s3_view(&src), common::s3_view(&out));
    if tagged {
        assert_eq!(
            xattr::get(out.join("empty"), "user.s3.colour")
                .unwrap()
                .as_deref(),
            Some(&b"blue"[..])
        );
    }
    let third = kast_engine::backup(&store, &from, &BackupOptions::default()).unwrap();
    assert_eq!(third.snapshot.summary.files_read, 0);

    let e = kast_engine::restore(&store, &first.id, b"", &bucket, &RestoreOptions::default())
        .unwrap_err();
    // Everything is there already: refused before anything is written.
    assert!(e.to_string().contains("already holds "), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
}

/// Packs larger than a part go up as multipart uploads and read back
/// whole and by range across the parts' seams.
#[test]
fn large_objects_go_up_in_parts() {
    let (_cache, host) = host();
    let garage = Garage::start();
    let url = format!("{}&part_size_mib=5", garage.url(0, "parts"));
    let store = host.new_storage(&url).unwrap();
    let data: Vec<u8> = (0..(12u32 << 20)).map(|i| (i % 251) as u8).collect();
    let name = "cd".repeat(32);
    store.put(ObjectKind::Pack, &name, &data).unwrap();
    // Three parts, each with its Content-MD5 signed.
    let seen = garage.requests();
    let parts: Vec<_> = seen.iter().filter(|r| r.contains("partNumber=")).collect();
    assert_eq!(parts.len(), 3, "{seen:#?}");
    assert!(
        parts
            .iter()
            .all(|r| r.contains("SignedHeaders=content-md5%3Bhost"))
    );
    let other = host.storage(&garage.url(2, "parts")).unwrap();
    assert_eq!(other.get(ObjectKind::Pack, &name).unwrap(), data);
    let seam = 5 << 20;
    assert_eq!(
        other
            .get_range(ObjectKind::Pack, &name, seam - 10, 20)
            .unwrap(),
        &data[seam as usize - 10..seam as usize + 10]
    );
    assert_eq!(other.list(ObjectKind::Pack).unwrap()[0].size, 12 << 20);
}

/// A proxy in front of a node that cuts every connection carrying part 2
/// of a multipart upload: the put fails after its retries, and the upload
/// is aborted, so no parts stay behind.
#[test]
fn a_failed_part_aborts_the_upload() {
    let (_cache, host) = host();
    let garage = Garage::start();
    let node = garage.s3_ports[0];
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in proxy.incoming() {
            let Ok(mut client) = client else { break };
            std::thread::spawn(move || {
                let mut head = vec![0u8; 8192];
                let n = client.read(&mut head).unwrap_or(0);
                if String::from_utf8_lossy(&head[..n]).contains("partNumber=2&") {
                    return; // dropped: the connection resets
                }
                let mut server = std::net::TcpStream::connect(("127.0.0.1", node)).unwrap();
                server.write_all(&head[..n]).unwrap();
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut s2, &mut c2));
                let _ = std::io::copy(&mut client, &mut server);
            });
        }
    });
    let url = format!(
        "{}&part_size_mib=5",
        garage.url_at(&format!("s3+http://127.0.0.1:{port}"), "abort")
    );
    let store = host.new_storage(&url).unwrap();
    let data = vec![7u8; 11 << 20];
    let e = store
        .put(ObjectKind::Pack, &"ef".repeat(32), &data)
        .unwrap_err()
        .to_string();
    assert!(e.contains("gave up after retries"), "{e}");
    let seen = garage.requests();
    assert!(
        seen.iter()
            .any(|r| r.contains("DELETE /kast/abort/") && r.contains("uploadId=")),
        "no abort: {seen:#?}"
    );
    assert!(store.list(ObjectKind::Pack).unwrap().is_empty());
}
