//! `kast serve` spoken to in raw HTTP, as an attacker holding the token
//! would: no request without the token, and (append-only) no delete or
//! overwrite of anything already stored (docs/serve.md).

use kast_test_support::common;
use kast_test_support::servers;
use kast_test_support::user;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Child;
use user::User;

const TOKEN: &str = "a-token-of-more-than-sixteen-characters";

/// A store with one backup, served; killed on drop.
struct Served {
    user: User,
    child: Child,
    address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Served {
    let user = User::new();
    user.create();
    let src = user.path("src");
    common::generate_tree(&src, 31, 1 << 20);
    user.ok(&["backup", src.to_str().unwrap()]);
    let token = user.path("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        token.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut child = user.spawn_piped(&args);
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let address = first
        .trim()
        .split_once("://")
        .and_then(|(_, a)| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("kast serve printed {first:?}"))
        .to_string();
    Served {
        user,
        child,
        address,
    }
}

/// One request; the status and the body.
fn request(
    served: &Served,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(&served.address).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        served.address,
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete reply");
    let status_line = String::from_utf8_lossy(&reply[..split]).to_string();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = reply[split + 4..].to_vec();
    if status_line
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    (status, body)
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

const AUTH: (&str, &str) = (
    "Authorization",
    "Bearer a-token-of-more-than-sixteen-characters",
);

/// The names of the objects of a kind, as the server lists them.
fn names(served: &Served, kind: &str) -> Vec<String> {
    let (status, body) = request(served, "GET", &format!("/v1/{kind}/"), &[AUTH], b"");
    assert_eq!(status, 200);
    String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn without_the_token_every_request_is_refused() {
    let served = serve(&[]);
    let pack = &names(&served, "packs")[0];
    let wrong = (
        "Authorization",
        "Bearer a-token-of-more-than-sixteen-characterz",
    );
    for headers in [
        &[][..],
        &[wrong][..],
        &[("Authorization", "a-token-of-more-than-sixteen-characters")][..],
    ] {
        for (method, path) in [
            ("GET", "/v1/packs/".to_string()),
            ("GET", format!("/v1/packs/{pack}")),
            ("PUT", "/v1/snapshots/00ff".to_string()),
            ("DELETE", format!("/v1/packs/{pack}")),
        ] {
            let (status, body) = request(&served, method, &path, headers, b"x");
            assert_eq!(status, 401, "{method} {path} with {headers:?}");
            assert!(body.is_empty(), "a 401 says nothing: {body:?}");
        }
    }
    assert!(served.user.snapshot_ids().len() == 1);
}

#[test]
fn an_append_only_server_refuses_every_delete_and_overwrite() {
    let served = serve(&[]);
    let packs = names(&served, "packs");
    let snapshots = names(&served, "snapshots");
    let pack_path = format!("/v1/packs/{}", packs[0]);
    let (status, original) = request(&served, "GET", &pack_path, &[AUTH], b"");
    assert_eq!(status, 200);
    for (kind, name) in [
        ("packs", &packs[0]),
        ("snapshots", &snapshots[0]),
        ("config", &"config".to_string()),
    ] {
        let path = format!("/v1/{kind}/{name}");
        assert_eq!(
            request(&served, "DELETE", &path, &[AUTH], b"").0,
            403,
            "{path}"
        );
        assert_eq!(
            request(&served, "PUT", &path, &[AUTH], b"garbage").0,
            403,
            "{path}"
        );
    }
    // A retried put of the very bytes stored changes nothing and succeeds.
    assert_eq!(
        request(&served, "PUT", &pack_path, &[AUTH], &original).0,
        200
    );
    // A new object is welcome; a name the engine could not write is not.
    assert_eq!(
        request(&served, "PUT", "/v1/snapshots/00ff", &[AUTH], b"new").0,
        200
    );
    assert_eq!(
        request(&served, "PUT", "/v1/packs/..%2Fconfig", &[AUTH], b"x").0,
        404
    );
    assert_eq!(
        request(&served, "PUT", "/v1/elsewhere/00", &[AUTH], b"x").0,
        404
    );
    // Ranges read part of an object.
    let (status, part) = request(
        &served,
        "GET",
        &pack_path,
        &[AUTH, ("Range", "bytes=2-9")],
        b"",
    );
    assert_eq!(status, 206);
    assert_eq!(part, original[2..10]);
    // A client may remove its own lock, and no other.
    let mine = ("X-Kast-Client", "client-a");
    let theirs = ("X-Kast-Client", "client-b");
    assert_eq!(
        request(&served, "PUT", "/v1/locks/0a0a", &[AUTH, mine], b"lock").0,
        200
    );
    assert_eq!(
        request(&served, "DELETE", "/v1/locks/0a0a", &[AUTH, theirs], b"").0,
        403
    );
    assert_eq!(
        request(&served, "DELETE", "/v1/locks/0a0a", &[AUTH], b"").0,
        403
    );
    assert_eq!(
        request(&served, "DELETE", "/v1/locks/0a0a", &[AUTH, mine], b"").0,
        200
    );
    // Everything the backup stored is still there, byte for byte.
    assert_eq!(names(&served, "packs"), packs);
    assert_eq!(
        request(&served, "GET", &pack_path, &[AUTH], b"").1,
        original
    );
    std::fs::remove_file(served.user.store.join("snapshots/00ff")).unwrap();
    let checked = served.user.json(&["check"]);
    assert_eq!(checked["clean"], true, "{checked}");
}

#[test]
fn with_allow_delete_clients_may_delete_and_run_maintenance() {
    let served = serve(&["--allow-delete"]);
    let client = client_of(&served);
    let src = client.path("src");
    common::generate_tree(&src, 46, 2 << 20);
    let mine: Vec<String> = (0..2)
        .map(|_| {
            let made = client.json(&["backup", src.to_str().unwrap()]);
            made["snapshots"][0]["id"].as_str().unwrap().to_string()
        })
        .collect();
    // The other machine's backup goes in raw HTTP, one of this client's
    // by retention.
    let snapshots = names(&served, "snapshots");
    assert_eq!(snapshots.len(), 3);
    let theirs = snapshots.iter().find(|s| !mine.contains(s)).unwrap();
    let path = format!("/v1/snapshots/{theirs}");
    assert_eq!(request(&served, "DELETE", &path, &[AUTH], b"").0, 200);
    client.ok(&["rm", "--keep-last", "1"]);
    assert_eq!(names(&served, "snapshots"), [mine[1].clone()]);
    let packs_before = names(&served, "packs");
    let done = client.json(&["maintenance"]);
    assert!(done["bytes_freed"].as_u64().unwrap() > 0, "{done}");
    assert_ne!(names(&served, "packs"), packs_before);
    let checked = client.json(&["check"]);
    assert_eq!(checked["clean"], true, "{checked}");
    restores_exactly(&client, &src, "out");
}

#[test]
fn a_short_token_is_refused_before_serving() {
    let user = User::new();
    user.create();
    let token = user.path("token");
    std::fs::write(&token, "short\n").unwrap();
    let out = user.kast(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        user::stderr(&out).contains("shorter than 16"),
        "{}",
        user::stderr(&out)
    );
}

/// Restores the latest snapshot of `src` into a fresh folder and compares.
fn restores_exactly(user: &User, src: &std::path::Path, into: &str) {
    let out = user.path(into);
    user.ok(&[
        "restore",
        "latest",
        "--source",
        src.to_str().unwrap(),
        "--to",
        out.to_str().unwrap(),
    ]);
    common::assert_same_tree(src, &out);
}

/// A user on another machine whose store is the served one.
fn client_of(served: &Served) -> User {
    let mut client = User::new();
    let token = client.path("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    client.location = format!("http://{}/?token_file={}", served.address, token.display());
    client
}

#[test]
fn clients_back_up_and_restore_through_the_server_and_cannot_delete() {
    let served = serve(&[]);
    let a = client_of(&served);
    let b = client_of(&served);
    let src_a = a.path("src");
    let src_b = b.path("src");
    common::generate_tree(&src_a, 41, 3 << 20);
    common::generate_tree(&src_b, 42, 3 << 20);
    // Two clients at once.
    let mut running = a.spawn(&["backup", src_a.to_str().unwrap()]);
    b.ok(&["backup", src_b.to_str().unwrap()]);
    assert!(running.wait().unwrap().success());
    let ids = a.snapshot_ids();
    assert_eq!(ids.len(), 3, "{ids:?}");
    for (client, src) in [(&a, &src_a), (&b, &src_b)] {
        let out = client.path("out");
        let made = client.json(&["ls"]);
        let mine = made
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["source"]
                    .as_str()
                    .unwrap()
                    .ends_with(src.to_str().unwrap())
            })
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        client.ok(&["restore", &mine[..8], "--to", out.to_str().unwrap()]);
        common::assert_same_tree(src, &out);
    }
    // No client can remove a snapshot or run maintenance through it.
    let out = a.kast(&["rm", &ids[0][..8]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        user::stderr(&out).contains("append-only"),
        "{}",
        user::stderr(&out)
    );
    let out = a.kast(&["maintenance"]);
    assert!(!out.status.success());
    assert_eq!(a.snapshot_ids(), ids);
    // Every lock the backups took was removed by the client that took it.
    assert!(
        names(&served, "locks").is_empty(),
        "{:?}",
        names(&served, "locks")
    );
    let checked = a.json(&["check"]);
    assert_eq!(checked["clean"], true, "{checked}");
}

#[test]
fn a_put_only_key_backs_up_through_the_server() {
    let served = serve(&[]);
    let secret = served.user.path("put-only");
    std::fs::write(&secret, "put only please").unwrap();
    served.user.ok(&[
        "key",
        "add",
        "--put-only",
        "--new-passphrase-file",
        secret.to_str().unwrap(),
    ]);
    let laptop = client_of(&served);
    let src = laptop.path("src");
    common::generate_tree(&src, 43, 1 << 20);
    let out = laptop.kast_with(&["backup", src.to_str().unwrap()], "put only please");
    assert!(out.status.success(), "{}", user::stderr(&out));
    let refused = laptop.kast_with(&["rm", "--keep-last", "0"], "put only please");
    assert_eq!(refused.status.code(), Some(2));
    // The machine with the store restores it.
    restores_exactly(&served.user, &src, "restored");
}

#[test]
fn a_server_killed_mid_backup_leaves_a_store_the_next_backup_and_check_handle() {
    let mut served = serve(&[]);
    let client = client_of(&served);
    let src = client.path("src");
    common::generate_tree(&src, 44, 40 << 20);
    let mut running = client.spawn(&["backup", src.to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_millis(700));
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    let status = running.wait().unwrap();
    assert!(!status.success());
    // Served again, on the same port.
    let token = served.user.path("token");
    let mut child = served.user.spawn_piped(&[
        "serve",
        "--listen",
        &served.address,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    served.child = child;
    client.ok(&["backup", src.to_str().unwrap()]);
    let checked = client.json(&["check"]);
    assert_eq!(checked["clean"], true, "{checked}");
    restores_exactly(&client, &src, "out");
}

#[test]
fn over_https_a_client_trusting_the_ca_backs_up_and_one_not_trusting_it_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    servers::test_certificates(certs.path());
    let cert = certs.path().join("server.pem");
    let key = certs.path().join("server.key");
    let served = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let mut client = client_of(&served);
    let token = client.path("token");
    let https = |ca: Option<&std::path::Path>| {
        let mut url = format!("https://{}/?token_file={}", served.address, token.display());
        if let Some(ca) = ca {
            url.push_str(&format!("&ca={}", ca.display()));
        }
        url
    };
    // The test CA is not among the Mozilla roots: refused, nothing sent.
    client.location = https(None);
    let out = client.kast(&["ls"]);
    assert!(!out.status.success());
    assert!(user::stderr(&out).contains("TLS"), "{}", user::stderr(&out));
    client.location = https(Some(&certs.path().join("ca.pem")));
    let src = client.path("src");
    common::generate_tree(&src, 45, 1 << 20);
    client.ok(&["backup", src.to_str().unwrap()]);
    restores_exactly(&client, &src, "out");
    // Plain HTTP to the HTTPS port gets nowhere.
    client.location = format!("http://{}/?token_file={}", served.address, token.display());
    assert!(!client.kast(&["ls"]).status.success());
}
