//! The built-in sftp plugin against a real OpenSSH server on loopback: the
//! connector conformance suite as storage, source and destination, then
//! each way a connection can go wrong.

use kast_test_support::common;
use kast_test_support::servers;

use common::conformance::{self, Connectors};
use kast_engine::storage::{ObjectKind, Storage};
use kast_engine::{Destination, Source};
use kast_plugins::Host;
use servers::sshd::{self, Sshd};
use std::path::Path;
use std::sync::Arc;

fn host() -> (tempfile::TempDir, Host) {
    let cache = tempfile::tempdir().unwrap();
    let host = Host::new(Some(cache.path().to_path_buf()), None).unwrap();
    (cache, host)
}

struct Sftp {
    host: Host,
    server: Sshd,
}

impl Connectors for Sftp {
    fn storage(&self, path: &Path) -> Arc<dyn Storage> {
        self.host.new_storage(&self.server.url(path)).unwrap()
    }
    fn source(&self, path: &Path) -> Box<dyn Source> {
        Box::new(self.host.source(&self.server.url(path)).unwrap())
    }
    fn destination(&self, path: &Path) -> Box<dyn Destination> {
        Box::new(self.host.destination(&self.server.url(path)).unwrap())
    }
    fn keeps_xattrs(&self) -> bool {
        false
    }
    fn whole_second_times(&self) -> bool {
        true
    }
}

#[test]
fn sftp_plugin_conforms() {
    let (_cache, host) = host();
    let c = Sftp {
        host,
        server: Sshd::start(),
    };
    conformance::run_all(&c, 40 << 20);
}

/// Opens a storage at `url`; the error as the user would read it.
fn open_error(host: &Host, url: &str) -> String {
    match host.storage(url) {
        Ok(storage) => match storage.list(ObjectKind::Snapshot) {
            Ok(_) => panic!("{url} opened"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

fn with(url: &str, options: &str) -> String {
    format!("{url}?{options}")
}

#[test]
fn credentials_and_host_keys_are_checked() {
    let (_cache, host) = host();
    let server = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let bare = server.bare_url(dir.path());
    let known = format!("known_hosts={}", server.path("known_hosts").display());

    // The RSA key, passphrase-protected, with and without its passphrase.
    let pass = dir.path().join("pass");
    std::fs::write(&pass, format!("{}\n", sshd::RSA_PASSPHRASE)).unwrap();
    let rsa = format!("identity={}&{known}", server.path("id_rsa").display());
    let ok = host
        .new_storage(&with(
            &bare,
            &format!("{rsa}&identity_passphrase_file={}", pass.display()),
        ))
        .unwrap();
    ok.put(ObjectKind::Lock, "aa", b"rsa works").unwrap();
    let e = open_error(&host, &with(&bare, &rsa));
    assert!(e.contains("passphrase"), "{e}");

    // A password, from a file.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{}\n", sshd::PASSWORD)).unwrap();
    let by_password = host
        .storage(&with(
            &bare,
            &format!("password_file={}&{known}", pw.display()),
        ))
        .unwrap();
    assert_eq!(
        by_password.get(ObjectKind::Lock, "aa").unwrap(),
        b"rsa works"
    );
    let e = open_error(&host, &with(&bare, &format!("password=wrong&{known}")));
    assert!(
        e.contains("refused to log in") && e.contains("password"),
        "{e}"
    );

    // A key the server does not know.
    let stranger = format!("identity={}&{known}", server.path("id_stranger").display());
    let e = open_error(&host, &with(&bare, &stranger));
    assert!(e.contains("refused to log in"), "{e}");

    // Host keys: unknown, changed, pinned right and wrong.
    let id = format!("identity={}", server.path("id_ed25519").display());
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let e = open_error(
        &host,
        &with(&bare, &format!("{id}&known_hosts={}", empty.display())),
    );
    assert!(e.contains("unknown host") && e.contains("SHA256:"), "{e}");
    let impostor = dir.path().join("impostor_known_hosts");
    let stranger_pub = std::fs::read_to_string(server.path("id_stranger.pub")).unwrap();
    std::fs::write(
        &impostor,
        format!("[127.0.0.1]:{} {stranger_pub}", server.port),
    )
    .unwrap();
    let e = open_error(
        &host,
        &with(&bare, &format!("{id}&known_hosts={}", impostor.display())),
    );
    assert!(e.contains("HOST KEY CHANGED"), "{e}");
    let fingerprint = String::from_utf8(
        std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(server.path("host_ed25519.pub"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_string();
    let pinned = host
        .storage(&with(&bare, &format!("{id}&fingerprint={fingerprint}")))
        .unwrap();
    assert_eq!(pinned.get(ObjectKind::Lock, "aa").unwrap(), b"rsa works");
    let e = open_error(
        &host,
        &with(
            &bare,
            &format!("{id}&fingerprint=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
    );
    assert!(e.contains("not the pinned"), "{e}");
}

#[test]
fn server_failures_are_clear_errors() {
    let (_cache, host) = host();
    let dir = tempfile::tempdir().unwrap();

    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = open_error(
        &host,
        &format!("sftp://u@127.0.0.1:{port}/x?insecure_accept_any_host_key=true"),
    );
    assert!(e.contains("cannot connect") && e.contains("refused"), "{e}");

    // A full disk: small/ is a 4 MiB filesystem on the server.
    let server = Sshd::start();
    let small = host
        .new_storage(&server.url(&server.path("small/store")))
        .unwrap();
    let big = vec![7u8; 6 << 20];
    let e = small
        .put(ObjectKind::Pack, &"cd".repeat(32), &big)
        .unwrap_err();
    assert!(e.to_string().contains("no space"), "{e}");
    assert!(
        small.list(ObjectKind::Pack).unwrap().is_empty(),
        "no partial object"
    );
    small
        .put(ObjectKind::Lock, "ab", b"still writable")
        .unwrap();

    // A read-only server: writes are refused as such.
    let read_only = Sshd::start_with(&["Subsystem sftp internal-sftp -R"]);
    let ro = host.storage(&read_only.url(dir.path())).unwrap();
    let e = ro.put(ObjectKind::Lock, "ab", b"x").unwrap_err();
    assert!(
        e.to_string().to_lowercase().contains("permission denied"),
        "{e}"
    );
}

/// Every cipher and host key type kast speaks, each with the server
/// re-keying every 256 KiB (OpenSSH re-keys every GiB with chacha20, so a
/// large backup always re-keys).
#[test]
fn every_cipher_and_host_key_type_with_constant_rekeying() {
    let (_cache, host) = host();
    let dir = tempfile::tempdir().unwrap();
    let object = common::Rng(5).bytes(3 << 20);
    for (cipher, host_key) in [
        ("chacha20-poly1305@openssh.com", "ssh-ed25519"),
        ("aes256-gcm@openssh.com", "rsa-sha2-512"),
        ("aes128-gcm@openssh.com", "rsa-sha2-256"),
    ] {
        let server = Sshd::start_with(&[
            &format!("Ciphers {cipher}"),
            &format!("HostKeyAlgorithms {host_key}"),
            "RekeyLimit 256K",
        ]);
        let store = dir.path().join(cipher);
        let storage = host.new_storage(&server.url(&store)).unwrap();
        let name = "ef".repeat(32);
        storage.put(ObjectKind::Pack, &name, &object).unwrap();
        assert!(
            storage.get(ObjectKind::Pack, &name).unwrap() == object,
            "{cipher} with {host_key}"
        );
        assert_eq!(
            storage
                .get_range(ObjectKind::Pack, &name, 1 << 20, 5)
                .unwrap(),
            &object[1 << 20..(1 << 20) + 5]
        );
    }
}

/// A server that stops answering is an error after `timeout=`, not a hang.
#[test]
fn a_hung_server_times_out() {
    let (_cache, host) = host();
    let server = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = host
        .new_storage(&format!("{}&timeout=2", server.url(dir.path())))
        .unwrap();
    storage.put(ObjectKind::Lock, "ab", b"before").unwrap();
    server.freeze(true);
    let started = std::time::Instant::now();
    let e = storage.get(ObjectKind::Lock, "ab").unwrap_err();
    server.freeze(false);
    assert!(e.to_string().contains("stopped answering"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
