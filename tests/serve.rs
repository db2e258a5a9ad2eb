//! `kast serve` spoken to in raw HTTP, as an attacker holding the token
//! would: no request without the token, and (append-only) no delete or
//! overwrite of anything already stored (docs/serve.md).

use kast_test_support::common;
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
        .strip_prefix("http://")
        .and_then(|a| a.strip_suffix('/'))
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
fn with_allow_delete_clients_may_delete() {
    let served = serve(&["--allow-delete"]);
    let snapshots = names(&served, "snapshots");
    let path = format!("/v1/snapshots/{}", snapshots[0]);
    assert_eq!(request(&served, "DELETE", &path, &[AUTH], b"").0, 200);
    assert!(names(&served, "snapshots").is_empty());
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
