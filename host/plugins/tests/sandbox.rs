//! Hostile plugins, built from source with the others (plugins/testing),
//! are stopped or refused with a clear error, and the host goes on.

use kast_test_support::common;

use common::{Rng, assert_same_tree, generate_tree};
use kast_engine::storage::{MemoryStorage, ObjectKind, Storage, StorageError};
use kast_engine::{BackupOptions, CreateOptions, RestoreOptions, Store};
use kast_plugins::{Host, Limits, PluginError};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOSTILE: &str = concat!(env!("KAST_PLUGIN_WASM_DIR"), "/kast_plugin_hostile.wasm");
const IMPOSTOR: &str = concat!(env!("KAST_PLUGIN_WASM_DIR"), "/kast_plugin_impostor.wasm");
const STALLING: &str = concat!(env!("KAST_PLUGIN_WASM_DIR"), "/kast_plugin_stalling.wasm");
const LIAR: &str = concat!(env!("KAST_PLUGIN_WASM_DIR"), "/kast_plugin_liar.wasm");

fn host_with_hostile(dir: &std::path::Path, limits: Limits) -> Host {
    let mut host = Host::new(Some(dir.join("cache")), Some(dir.join("plugins"))).unwrap();
    host.registry()
        .install(std::path::Path::new(HOSTILE), false)
        .unwrap();
    host.set_limits(limits);
    host
}

fn plugin_error(e: &StorageError) -> &PluginError {
    match e {
        StorageError::Backend(inner) => {
            inner.downcast_ref::<PluginError>().expect("a plugin error")
        }
        other => panic!("not a plugin error: {other:?}"),
    }
}

fn jail(dir: &std::path::Path) -> std::path::PathBuf {
    let jail = dir.join("jail");
    std::fs::create_dir_all(&jail).unwrap();
    jail
}

#[test]
fn install_validates_components() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(None, Some(dir.path().join("plugins"))).unwrap();
    let (listed, replaced) = host
        .registry()
        .install(std::path::Path::new(HOSTILE), false)
        .unwrap();
    assert!(replaced.is_empty());
    assert_eq!(listed.info.name, "hostile");
    assert_eq!(listed.info.schemes, ["hostile", "dav"]);
    // What it says of itself cannot drive a terminal.
    assert_eq!(
        listed.info.description,
        "misbehaves on purpose (tests only)\\u{1b}[2J\\u{1b}[31m"
    );
    let names: Vec<String> = host
        .registry()
        .list()
        .unwrap()
        .into_iter()
        .map(|l| l.info.name)
        .collect();
    assert_eq!(names, ["fs", "ftp", "http", "s3", "sftp", "hostile"]);

    let bad = |bytes: &[u8], expected: &str| {
        let path = dir.path().join("bad.wasm");
        std::fs::write(&path, bytes).unwrap();
        let err = host.registry().install(&path, false).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    };
    bad(b"\0asm\x01\0\0\0", "not a WebAssembly component");
    bad(b"hello, not wasm at all", "not a WebAssembly component");
    // A valid component that exports none of our worlds.
    bad(b"\0asm\x0d\0\x01\0", "exports none of kast's worlds");

    host.registry().remove("hostile").unwrap();
    assert!(
        host.registry()
            .list()
            .unwrap()
            .iter()
            .all(|l| l.info.name != "hostile")
    );
    assert!(
        host.registry().remove("fs").is_err(),
        "built-in plugins cannot be removed"
    );
}

#[test]
fn files_outside_the_grant_are_out_of_reach() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), Limits::default());
    let jail = jail(dir.path());
    let outside = dir.path().join("outside");
    let url = format!(
        "hostile://{}?do=escape&target={}",
        jail.display(),
        outside.display()
    );
    let storage = host.storage(&url).unwrap();
    let err = storage.put(ObjectKind::Lock, "abcd", b"x").unwrap_err();
    let plugin = plugin_error(&err);
    assert!(
        matches!(
            plugin,
            PluginError::Failed {
                operation: "put",
                ..
            }
        ),
        "{plugin}"
    );
    assert!(
        plugin.to_string().contains("plugin hostile: put"),
        "{plugin}"
    );
    assert!(!outside.exists());
    assert!(!dir.path().join("escaped").exists());
}

/// A plugin cannot take an installed plugin's scheme or name by being
/// installed after it (nor by sorting first): refused, naming the plugin
/// in the way, unless replaced on purpose.
#[test]
fn an_installed_plugins_scheme_and_name_are_not_taken_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), Limits::default());
    let registry = host.registry();
    let impostor = std::path::Path::new(IMPOSTOR);
    let err = registry.install(impostor, false).unwrap_err().to_string();
    assert!(
        err.contains("the scheme hostile:// is taken by the installed plugin hostile 0.0.1"),
        "{err}"
    );
    assert!(err.contains("--replace"), "{err}");
    assert_eq!(registry.for_scheme("hostile").unwrap().info.name, "hostile");
    let names = |registry: &kast_plugins::Registry| -> Vec<String> {
        registry
            .list()
            .unwrap()
            .into_iter()
            .map(|l| l.info.name)
            .collect()
    };
    assert!(!names(registry).contains(&"aaa-impostor".to_string()));
    // The same name again is refused too (an update is a --replace).
    let err = registry
        .install(std::path::Path::new(HOSTILE), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("its name is taken by the installed plugin hostile"),
        "{err}"
    );
    // On purpose: the plugin in the way goes, and says so.
    let (listed, replaced) = registry.install(impostor, true).unwrap();
    assert_eq!(listed.info.name, "aaa-impostor");
    assert_eq!(replaced, ["hostile"]);
    assert_eq!(
        registry.for_scheme("hostile").unwrap().info.name,
        "aaa-impostor"
    );
    assert!(!names(registry).contains(&"hostile".to_string()));
}

/// Schemes are RFC 3986 schemes, and none of the web's or file's own.
#[test]
fn a_scheme_must_be_a_url_scheme_of_a_service() {
    use kast_plugins::registry::scheme_problem;
    for good in ["hostile", "dav+https", "s3", "my.thing-2"] {
        assert_eq!(scheme_problem(good), None, "{good}");
    }
    for bad in [
        "",
        "a/b",
        "Upper",
        "2fa",
        "a b",
        "sch\u{1b}[2J",
        "https",
        "http",
        "file",
    ] {
        assert!(scheme_problem(bad).is_some(), "{bad:?}");
    }
}

/// A plugin's error message reaches the user escaped and cut: a 100 MiB
/// message that starts by clearing the screen becomes a short plain line.
#[test]
fn a_plugins_message_cannot_drive_the_terminal_or_flood() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), Limits::default());
    let url = format!("hostile://{}?do=shout", jail(dir.path()).display());
    let err = host
        .storage(&url)
        .unwrap()
        .put(ObjectKind::Lock, "abcd", b"x")
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains('\x1b') && !err.contains('\r'),
        "{}",
        &err[..100]
    );
    assert!(
        err.contains("\\u{1b}[2J\\rwarning: forged"),
        "{}",
        &err[..100]
    );
    assert!(err.len() < 5000, "{}", err.len());
    let said = format!("(cut: the plugin said {} bytes)", 20 + (100 << 20));
    assert!(err.ends_with(&said), "{}", &err[err.len() - 80..]);
}

/// A plugin's stdout and stderr go nowhere, unless the user asks for the
/// plugin log: then each line, prefixed and escaped, and no more than its
/// budget however much the plugin prints.
#[test]
fn what_a_plugin_prints_reaches_the_log_escaped_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = host_with_hostile(dir.path(), Limits::default());
    let url = format!("hostile://{}?do=chatter", jail(dir.path()).display());
    // Without a log: the call works and nothing is written anywhere.
    host.storage(&url)
        .unwrap()
        .put(ObjectKind::Lock, "abcd", b"x")
        .unwrap();
    let path = dir.path().join("plugin.log");
    host.set_plugin_log(kast_plugins::plugin_log::PluginLog::open(&path).unwrap());
    let storage = host.storage(&url).unwrap();
    storage.put(ObjectKind::Lock, "abce", b"x").unwrap();
    drop(storage);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines()
            .any(|l| l == "hostile stdout: hello from inside\\u{1b}[2J"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(!text.contains('\x1b'));
    assert!(text.contains(&format!("hostile stderr: {}\n", "z".repeat(999))));
    assert!(text.len() as u64 <= kast_plugins::plugin_log::BUDGET);
    assert!(text.ends_with("later output is dropped\n"));
}

/// wasi:http is there for every plugin, but only a location's own endpoint
/// (s3://) is granted: anything else is refused before a connection.
#[test]
fn http_requests_outside_the_grant_are_denied() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), Limits::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap();
    let storage = host
        .storage(&format!(
            "hostile://{}?do=http&target={target}",
            dir.path().display()
        ))
        .unwrap();
    let e = plugin_error(&storage.put(ObjectKind::Lock, "abcd", b"x").unwrap_err()).to_string();
    assert!(e.contains("HttpRequestDenied"), "{e}");
    assert!(listener.accept().is_err(), "the listener saw a connection");
}

#[test]
fn only_the_granted_address_can_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), Limits::default());
    let granted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let granted_addr = granted.local_addr().unwrap();
    let other_addr = other.local_addr().unwrap();

    let attempt = |target: std::net::SocketAddr| {
        let url = format!("hostile://{granted_addr}/?do=connect&target={target}");
        let storage = host.storage(&url).unwrap();
        storage.put(ObjectKind::Lock, "abcd", b"x").unwrap_err()
    };
    let refused = plugin_error(&attempt(other_addr)).to_string();
    assert!(
        refused.contains("plugin hostile: put: connect"),
        "the connection must be refused: {refused}"
    );
    assert!(
        other.accept().is_err(),
        "the ungranted listener saw a connection"
    );
    // The granted address is reachable: the connect succeeds and the put
    // only fails later, writing a file it has no grant for.
    let allowed = attempt(granted_addr).to_string();
    assert!(!allowed.contains("connect"), "{allowed}");
    assert!(
        granted.accept().is_ok(),
        "the granted listener saw the connection"
    );
}

#[test]
fn endless_allocation_is_stopped_and_the_plugin_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    };
    let host = host_with_hostile(dir.path(), limits);
    let jail = jail(dir.path());
    let storage = host
        .storage(&format!("hostile://{}?do=alloc", jail.display()))
        .unwrap();
    let err = storage.put(ObjectKind::Lock, "abcd", b"x").unwrap_err();
    assert!(
        matches!(
            plugin_error(&err),
            PluginError::OutOfMemory { limit_mib: 64, .. }
        ),
        "{err}"
    );
    // A fresh instance serves the next call.
    assert!(storage.list(ObjectKind::Lock).unwrap().is_empty());
}

#[test]
fn an_endless_loop_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        call_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let host = host_with_hostile(dir.path(), limits);
    let jail = jail(dir.path());
    let storage = assert_stopped_waiting(&host, &format!("hostile://{}?do=spin", jail.display()));
    assert!(storage.list(ObjectKind::Lock).unwrap().is_empty());
}

#[test]
fn a_crash_mid_backup_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), Limits::default());
    let jail = jail(dir.path());
    let options = CreateOptions {
        kdf: kast_engine::keys::KdfParams::insecure_for_tests(),
        pack_target: 1 << 20,
        ..Default::default()
    };
    let crashing = host
        .storage(&format!(
            "hostile://{}?do=trap-on-pack&after=3",
            jail.display()
        ))
        .unwrap();
    let store = Store::create(crashing, b"pw", &options, None).unwrap();
    let small = dir.path().join("small");
    generate_tree(&small, 1, 0);
    std::fs::remove_dir_all(small.join("many")).unwrap();
    let first = kast_engine::backup(
        &store,
        &kast_engine::native::local::LocalSource::new(&small).unwrap(),
        &BackupOptions::default(),
    )
    .unwrap();

    let big = dir.path().join("big");
    std::fs::create_dir(&big).unwrap();
    std::fs::write(big.join("data"), Rng(5).bytes(6 << 20)).unwrap();
    let err = kast_engine::backup(
        &store,
        &kast_engine::native::local::LocalSource::new(&big).unwrap(),
        &BackupOptions::default(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("plugin hostile: put crashed"), "{message}");
    // The cause, not the first line of a backtrace: the trap, then the
    // plugin's own panic message.
    assert!(
        message.contains("wasm `unreachable` instruction executed; it said: "),
        "{message}"
    );
    assert!(
        message.contains("hostile plugin crashes mid-write"),
        "{message}"
    );

    let healthy = host
        .storage(&format!("hostile://{}", jail.display()))
        .unwrap();
    let store = Store::open(healthy, b"pw", None).unwrap();
    let report = kast_engine::check::check(&store, &Default::default()).unwrap();
    assert!(report.is_clean(), "{:?}", report.damage);
    let out = dir.path().join("restored");
    let dest = kast_engine::native::local::LocalDestination::new(&out).unwrap();
    kast_engine::restore(&store, &first.id, b"", &dest, &RestoreOptions::default()).unwrap();
    assert_same_tree(&small, &out);
}

#[test]
fn malformed_listings_are_refused_entry_by_entry() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), Limits::default());
    let jail = jail(dir.path());
    let source = host
        .source(&format!("hostile://{}", jail.display()))
        .unwrap();
    let options = CreateOptions {
        kdf: kast_engine::keys::KdfParams::insecure_for_tests(),
        ..Default::default()
    };
    let store = Store::create(Arc::new(MemoryStorage::new()), b"pw", &options, None).unwrap();
    let outcome = kast_engine::backup(&store, &source, &BackupOptions::default()).unwrap();
    assert_eq!(outcome.warnings.len(), 4, "{:?}", outcome.warnings);
    let index = store.index().unwrap();
    let root =
        kast_engine::browse::list(&store, &index, (&outcome.id, &outcome.snapshot), b"").unwrap();
    let names: Vec<String> = root.iter().map(|n| n.name_lossy()).collect();
    assert_eq!(
        names,
        [
            "dup",
            "evil\u{1b}[2J\rwarning: forged.txt",
            "flood",
            "not-a-dir",
            "ok.txt"
        ]
    );
    let flood = root.iter().find(|n| n.name == b"flood").unwrap();
    assert_eq!(
        flood.meta.size,
        3 << 20,
        "the size recorded is what was read"
    );
    let out = dir.path().join("out");
    let dest = kast_engine::native::local::LocalDestination::new(&out).unwrap();
    kast_engine::restore(&store, &outcome.id, b"", &dest, &RestoreOptions::default()).unwrap();
    let mut restored: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    restored.sort();
    assert_eq!(restored, names);
    assert!(
        kast_engine::check::check(&store, &Default::default())
            .unwrap()
            .is_clean()
    );
}

#[test]
fn a_storage_that_lists_everything_three_times_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), Limits::default());
    let jail = jail(dir.path());
    let storage = host
        .storage(&format!("hostile://{}?do=dup-list", jail.display()))
        .unwrap();
    let options = CreateOptions {
        kdf: kast_engine::keys::KdfParams::insecure_for_tests(),
        ..Default::default()
    };
    let store = Store::create(storage, b"pw", &options, None).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"one").unwrap();
    let source = kast_engine::native::local::LocalSource::new(&src).unwrap();
    let first = kast_engine::backup(&store, &source, &BackupOptions::default()).unwrap();
    std::fs::write(src.join("b"), b"two").unwrap();
    kast_engine::backup(&store, &source, &BackupOptions::default()).unwrap();

    let listed = kast_engine::browse::snapshots(&store).unwrap();
    assert_eq!(listed.snapshots.len(), 2);
    let report = kast_engine::check::check(&store, &Default::default()).unwrap();
    assert_eq!(report.snapshots, 2);
    assert!(report.is_clean(), "{:?}", report.damage);
    // A full id names exactly one snapshot.
    let found = kast_engine::browse::find(&store, &first.id.to_hex(), &Default::default());
    assert_eq!(found.unwrap().0, first.id);
}

/// How long a test waits for a call stopped at a 2-second deadline: far
/// less than what the plugin would wait (45 s or for ever).
const STOPPED_WITHIN: Duration = Duration::from_secs(20);

fn two_seconds() -> Limits {
    Limits {
        call_timeout: Duration::from_secs(2),
        ..Limits::default()
    }
}

/// Asserts `put` on `url` is stopped as a timeout well before the plugin's
/// own wait (or loop) ends, and that the next call gets a fresh instance;
/// returns the storage for more.
fn assert_stopped_waiting(host: &Host, url: &str) -> Arc<kast_plugins::PluginStorage> {
    let storage = host.storage(url).unwrap();
    let started = Instant::now();
    let err = storage.put(ObjectKind::Lock, "abcd", b"x").unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            plugin_error(&err),
            PluginError::Timeout {
                operation: "put",
                ..
            }
        ),
        "{err}"
    );
    assert!(took < STOPPED_WITHIN, "stopped only after {took:?}");
    // The stopped instance is gone; a fresh one answers.
    let again = Instant::now();
    let _ = storage.list(ObjectKind::Lock);
    assert!(again.elapsed() < STOPPED_WITHIN);
    storage
}

#[test]
fn a_plugin_that_sleeps_is_stopped_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), two_seconds());
    let jail = jail(dir.path());
    assert_stopped_waiting(&host, &format!("hostile://{}?do=sleep", jail.display()));
}

/// A TCP server that accepts every connection and never says a word.
fn silent_server() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
            if held.len() > 200 {
                break;
            }
        }
    });
    (addr, server)
}

#[test]
fn a_server_that_never_answers_cannot_hang_kast() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), two_seconds());
    let (addr, _server) = silent_server();
    // A read on a granted socket, and an HTTP response on a granted endpoint.
    for url in [
        format!("hostile://{addr}/x?do=hang-read"),
        format!("dav://{addr}/x?do=http-hang"),
    ] {
        assert_stopped_waiting(&host, &url);
    }
}

#[test]
fn install_gives_up_on_an_info_that_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(None, Some(dir.path().join("plugins"))).unwrap();
    let started = Instant::now();
    let err = host
        .registry()
        .install(std::path::Path::new(STALLING), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("its info() did not answer within 10 s"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn host_objects_a_plugin_makes_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    };
    let host = host_with_hostile(dir.path(), limits);
    let jail = jail(dir.path());
    // 10,000 sets of 100 kB header fields, or 100,000 of 8 kB, would be
    // 1 GB or 800 MB outside its 64 MiB.
    for (mode, limit) in [
        ("fields", "a set of HTTP fields larger than 8 KiB"),
        ("objects", "held 8192 host objects"),
        ("bodies", "held 8192 host objects"),
    ] {
        let storage = host
            .storage(&format!("hostile://{}?do={mode}", jail.display()))
            .unwrap();
        let err = storage.put(ObjectKind::Lock, "abcd", b"x").unwrap_err();
        match plugin_error(&err) {
            PluginError::OverLimit { what, .. } => assert!(what.contains(limit), "{what}"),
            other => panic!("{mode}: not stopped by the limit: {other}"),
        }
        assert!(storage.list(ObjectKind::Lock).unwrap().is_empty());
    }
}

#[test]
fn sockets_a_plugin_holds_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_hostile(dir.path(), Limits::default());
    let (addr, _server) = silent_server();
    let storage = host
        .storage(&format!("hostile://{addr}/x?do=sockets"))
        .unwrap();
    let err = storage.put(ObjectKind::Lock, "abcd", b"x").unwrap_err();
    match plugin_error(&err) {
        PluginError::OverLimit { what, .. } => {
            assert!(what.contains("more than 16 sockets"), "{what}")
        }
        other => panic!("not stopped by the limit: {other}"),
    }
}

/// Contract 0.2 lets the host pick every size; a plugin that answers with
/// more than it was asked for (a page, a piece, a range, a read) is refused
/// with a clear error, and one whose listing never ends is stopped once it
/// has listed as much as its memory limit.
#[test]
fn a_plugin_that_answers_more_than_was_asked_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::new(
        Some(dir.path().join("cache")),
        Some(dir.path().join("plugins")),
    )
    .unwrap();
    host.registry()
        .install(std::path::Path::new(LIAR), false)
        .unwrap();
    host.set_limits(Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    });
    let jail = jail(dir.path());
    let storage = |lie: &str| {
        host.storage(&format!("liar://{}?do={lie}", jail.display()))
            .unwrap()
    };
    let said = |e: StorageError| plugin_error(&e).to_string();
    let listed = said(storage("pages").list(ObjectKind::Pack).unwrap_err());
    assert!(
        listed.contains("list returned a page of 4097 entries, 4096 were asked for"),
        "{listed}"
    );
    let got = said(
        storage("pieces")
            .get(ObjectKind::Config, "config")
            .unwrap_err(),
    );
    assert!(
        got.contains("get returned a piece of 1048577 bytes, 1048576 were asked for"),
        "{got}"
    );
    let range = said(
        storage("ranges")
            .get_range(ObjectKind::Pack, "ab", 0, 10)
            .unwrap_err(),
    );
    assert!(
        range.contains("get-range returned 11 bytes, 10 were asked for"),
        "{range}"
    );
    let endless = said(storage("endless").list(ObjectKind::Pack).unwrap_err());
    assert!(
        endless.contains("listed more than 64 MiB in one listing, its memory limit"),
        "{endless}"
    );
    let source = host.source(&format!("liar://{}", jail.display())).unwrap();
    use kast_engine::Source;
    let page = source.list(b"").unwrap_err().to_string();
    assert!(page.contains("a page of 4097 entries"), "{page}");
    let mut file = source.open(b"f0").unwrap();
    let read = std::io::Read::read(&mut file, &mut [0u8; 16])
        .unwrap_err()
        .to_string();
    assert!(
        read.contains("read returned 1048577 bytes, 1048576 were asked for"),
        "{read}"
    );

    // Across the network the small files announced are fetched ahead, on
    // instances of their own: the same lie is refused there too, and the
    // walk meets it itself, neither waiting on the helpers nor taking the
    // file short.
    let source = host.source("liar://127.0.0.1:9/").unwrap();
    source.will_read(&[(b"f0".to_vec(), 10), (b"f1".to_vec(), 10)]);
    for name in [&b"f0"[..], b"f1"] {
        let mut file = source.open(name).unwrap();
        let read = std::io::Read::read_to_end(&mut file, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            read.contains("read returned 1048577 bytes, 1048576 were asked for"),
            "{read}"
        );
    }
}
