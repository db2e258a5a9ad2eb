//! `kast ui` through the real binary: the printed login URL, sessions,
//! CSRF, path checks, the JSON API (same fields as `--json`), streamed
//! file bytes, and `--base-path`. Browser tests of the pages come with
//! the pages.

use kast_test_support::common;
use kast_test_support::user;

use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::process::Child;
use user::User;

const PASSPHRASE: &str = "correct horse";

/// A running `kast ui`, stopped on drop; its stderr kept for the test.
struct Ui {
    child: Child,
    /// The login URL it printed.
    url: String,
    /// `host:port`.
    address: String,
    /// The session cookie, once logged in.
    cookie: Option<String>,
}

impl Ui {
    fn start(u: &User, args: &[&str]) -> Ui {
        let mut all = vec!["ui"];
        all.extend_from_slice(args);
        let mut child = u.spawn_piped(&all);
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:") || url.starts_with("http://0.0.0.0:"),
            "{url}"
        );
        let address = url["http://".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_string();
        Ui {
            child,
            url,
            address,
            cookie: None,
        }
    }

    /// Sends one request; returns status, headers (lowercased names) and body.
    fn request(&self, method: &str, path: &str, extra: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
        self.send(method, path, extra, b"")
    }

    /// POSTs JSON with the session's CSRF token; returns the JSON answer.
    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let csrf = self.json(&self.prefixed("/api/session"))["csrf_token"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, _, answer) = self.send(
            "POST",
            &self.prefixed(path),
            &[
                ("x-csrf-token", &csrf),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        );
        (status, serde_json::from_slice(&answer).unwrap())
    }

    /// Where `path` is on this server (under its base path).
    fn prefixed(&self, path: &str) -> String {
        let base = self.url.split(&self.address).nth(1).unwrap();
        format!("{}{path}", base.split("/?token").next().unwrap())
    }

    /// Polls a job until it is over; returns it.
    fn finished_job(&self, id: &Value) -> Value {
        let started = std::time::Instant::now();
        loop {
            let job = self.json(&self.prefixed(&format!("/api/jobs/{id}")));
            if job["state"] != "running" {
                return job;
            }
            assert!(started.elapsed().as_secs() < 120, "{job}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.address
        );
        if let Some(cookie) = &self.cookie {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let headers = String::from_utf8_lossy(&answer[..split]).to_lowercase();
        let status = headers[9..12].parse().unwrap();
        let mut body = answer[split + 4..].to_vec();
        if headers.contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        (status, headers, body)
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let (status, _, body) = self.request("GET", path, &[]);
        (status, body)
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// Opens the login URL and keeps the session cookie it sets.
    fn log_in(&mut self) {
        let path = &self.url[self.url.find(&self.address).unwrap() + self.address.len()..];
        let (status, headers, _) = self.request("GET", path, &[]);
        assert_eq!(status, 303, "{headers}");
        assert!(
            headers.contains("httponly") && headers.contains("samesite=strict"),
            "{headers}"
        );
        let cookie = headers
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        self.cookie = Some(cookie);
    }

    fn stop(mut self) -> String {
        user::interrupt(&self.child);
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "kast ui exited with {status}: {err}");
        err
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
}

/// A store with two snapshots of a small tree (a file changed between).
fn user_with_snapshots() -> (User, std::path::PathBuf) {
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir_all(src.join("many")).unwrap();
    for i in 0..250 {
        std::fs::write(src.join(format!("many/f{i:03}")), format!("{i}")).unwrap();
    }
    std::fs::write(src.join("notes.txt"), "first\n").unwrap();
    // A name that would be markup if a page did not escape it.
    std::fs::write(src.join("<b>bold<b>.txt"), "<script>alert(1)</script>").unwrap();
    common::write_random_file(&src.join("big.bin"), 3 << 20, 7);
    // Latin-1 names, as old disks have them: not UTF-8.
    let latin1 = src.join(OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir(&latin1).unwrap();
    std::fs::write(
        latin1.join(OsStr::from_bytes(b"r\xe9sum\xe9.txt")),
        "latin-1\n",
    )
    .unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("notes.txt"), "second, longer\n").unwrap();
    std::fs::write(
        latin1.join(OsStr::from_bytes(b"r\xe9sum\xe9.txt")),
        "latin-1, again\n",
    )
    .unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);
    (u, src)
}

#[test]
fn the_api_needs_the_login_url_and_answers_as_the_cli_does() {
    let (u, src) = user_with_snapshots();
    let mut ui = Ui::start(&u, &[]);
    // Without the session, or with a wrong token: 401 and nothing else.
    for path in [
        "/api/snapshots",
        "/api/store",
        "/?token=0123",
        "/api/snapshots?token=nope",
    ] {
        let (status, body) = ui.get(path);
        assert_eq!(status, 401, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("notes"), "{path}");
    }
    ui.log_in();
    // A form's error line is there for the script to fill, hidden until then.
    let (status, page) = ui.get("/check");
    let page = String::from_utf8_lossy(&page);
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"class="bad error" role="alert" hidden"#),
        "{page}"
    );
    // The same fields and values as the CLI's --json.
    let listed = ui.json("/api/snapshots");
    assert_eq!(listed["total"], 2);
    let mut cli = u.json(&["ls"]);
    cli.as_array_mut().unwrap().reverse(); // the UI lists newest first
    assert_eq!(listed["items"], cli);
    assert_eq!(ui.json("/api/store"), u.json(&["info"]));
    // Dates filter as --after/--before do (UTC; a date is its midnight).
    for (query, expected) in [
        ("after=2000-01-01", 2),
        ("before=2000-01-01", 0),
        ("after=2200-01-01T00:00", 0),
        ("after=2000-01-01&before=2200-12-31&tag=", 2),
    ] {
        let listed = ui.json(&format!("/api/snapshots?{query}"));
        assert_eq!(listed["total"], expected, "{query}");
        let mut args = vec!["ls".to_string()];
        args.extend(
            query
                .split('&')
                .filter(|pair| !pair.ends_with('='))
                .map(|pair| format!("--{pair}")),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(u.json(&args).as_array().unwrap().len(), expected, "{query}");
    }
    let (status, body) = ui.get("/api/snapshots?after=yesterday");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("YYYY-MM-DD"));
    let (status, body) = ui.get("/api/snapshots?after=2999-01-01");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("out of range"));
    let newest = listed["items"][0]["id"].as_str().unwrap().to_string();
    let oldest = listed["items"][1]["id"].as_str().unwrap().to_string();
    assert_eq!(
        ui.json(&format!("/api/snapshots/{newest}")),
        u.json(&["info", &newest])
    );
    let diff = ui.json(&format!("/api/diff?from={oldest}&to={newest}"));
    assert_eq!(diff, u.json(&["diff", &oldest, &newest]));
    let changed: Vec<&str> = diff
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["change"] == "modified")
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        ["caf\u{FFFD}/r\u{FFFD}sum\u{FFFD}.txt", "notes.txt"]
    );
    // Search: the CLI's matches, newest snapshot first; `limit` stops it.
    let found = ui.json("/api/find?pattern=*.txt");
    let mut cli: Vec<Value> = u.json(&["find", "*.txt"]).as_array().unwrap().clone();
    cli.sort_by_key(|f| f["snapshot"] != newest.as_str());
    assert_eq!(found.as_array().unwrap(), &cli);
    assert!(cli.iter().any(|f| f["path"] == "notes.txt"), "{found}");
    let first = ui.json("/api/find?pattern=*.txt&limit=1");
    assert_eq!(first.as_array().unwrap(), &cli[..1]);
    assert_eq!(
        ui.json("/api/find?pattern=notes.txt&after=2200-01-01"),
        serde_json::json!([])
    );
    let (status, body) = ui.get("/api/find?pattern=%5Bunclosed");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("bad pattern"));
    let (status, page) = ui.get("/find?pattern=notes.txt");
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains(&format!("/snapshots/{newest}/view?path=notes.txt")),
        "{page}"
    );
    // Each source's history as a chart: a mark per snapshot per panel.
    let (status, page) = ui.get("/history");
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page);
    assert_eq!(
        page.matches(r#"<circle class="point""#).count(),
        4,
        "{page}"
    );
    assert_eq!(page.matches(r#"<rect class="bar""#).count(), 2, "{page}");
    let (_, page) = ui.get("/history?source=nowhere");
    assert!(String::from_utf8_lossy(&page).contains("Nothing backed up yet"));
    // A directory a page at a time.
    let page = ui.json(&format!(
        "/api/snapshots/{newest}/tree?path=many&offset=200&limit=100"
    ));
    assert_eq!(
        (page["total"].as_u64(), page["offset"].as_u64()),
        (Some(250), Some(200))
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 50);
    assert_eq!(page["items"][0]["name"], "f200");
    let whole = u.json(&["ls", &format!("{newest}:many")]);
    assert_eq!(page["items"][0], whole[200]);
    // A file's bytes, streamed; the older version through the older snapshot.
    let (status, bytes) = ui.get(&format!("/api/snapshots/{newest}/file?path=big.bin"));
    assert_eq!(status, 200);
    assert_eq!(bytes, std::fs::read(src.join("big.bin")).unwrap());
    let (_, old) = ui.get(&format!("/api/snapshots/{oldest}/file?path=notes.txt"));
    assert_eq!(old, b"first\n");
    let (_, headers, _) = ui.request(
        "GET",
        "/api/snapshots/latest/file?path=notes.txt&download=1",
        &[],
    );
    assert!(
        headers.contains("attachment; filename=\"notes.txt\""),
        "{headers}"
    );
    // Paths that could mean something else are refused, not resolved.
    for bad in ["../etc", "many/../notes.txt", "/etc/passwd", "./notes.txt"] {
        let (status, _) = ui.get(&format!("/api/snapshots/latest/tree?path={bad}"));
        assert_eq!(status, 400, "{bad}");
        let (status, _) = ui.get(&format!("/api/snapshots/latest/file?path={bad}"));
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = ui.get("/api/snapshots/latest/file?path=nothing-here");
    assert_eq!(status, 404);
    let (status, _) = ui.get("/api/snapshots/ffff/tree");
    assert_eq!(status, 404);
    // A state change without the session's CSRF token is refused; with it,
    // it reaches the routes (none takes a POST at /api/store).
    let (status, _, _) = ui.request("POST", "/api/store", &[]);
    assert_eq!(status, 403);
    let (status, _, _) = ui.request("POST", "/api/store", &[("x-csrf-token", "guess")]);
    assert_eq!(status, 403);
    let csrf = ui.json("/api/session")["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, _) = ui.request("POST", "/api/store", &[("x-csrf-token", &csrf)]);
    assert_eq!(status, 405);
    // The passphrase appears in no answer and no log line.
    for path in [
        "/api/store",
        "/api/snapshots",
        "/api/session",
        "/api/plugins",
    ] {
        let (_, body) = ui.get(path);
        assert!(
            !String::from_utf8_lossy(&body).contains(PASSPHRASE),
            "{path}"
        );
    }
    let log = ui.stop();
    assert!(!log.contains(PASSPHRASE), "{log}");
}

#[test]
fn a_base_path_serves_behind_a_proxy_and_a_public_address_warns() {
    let (u, _) = user_with_snapshots();
    let mut ui = Ui::start(&u, &["--base-path", "/kast/", "--listen", "0.0.0.0:0"]);
    assert!(ui.url.contains("/kast/?token="), "{}", ui.url);
    ui.log_in();
    assert_eq!(ui.json("/kast/api/snapshots")["total"], 2);
    for path in ["/kast/", "/kast"] {
        let (status, page) = ui.get(path);
        assert_eq!(status, 200, "{path}");
        let page = String::from_utf8_lossy(&page);
        // Every link stays under the prefix the proxy forwards.
        assert!(page.contains("href=\"/kast/snapshots\""), "{page}");
        assert!(!page.contains("href=\"/snapshots"), "{page}");
    }
    let (status, _) = ui.get("/api/snapshots");
    assert_eq!(status, 404);
    let log = ui.stop();
    assert!(log.contains("reachable from other machines"), "{log}");
}

#[test]
fn the_pages_show_the_store_its_snapshots_folders_and_files() {
    let (u, _) = user_with_snapshots();
    let mut ui = Ui::start(&u, &[]);
    ui.log_in();
    let page = |path: &str| {
        let (status, body) = ui.get(path);
        assert_eq!(status, 200, "{path}");
        String::from_utf8(body).unwrap()
    };
    let overview = page("/");
    assert!(
        overview.contains("Last backup of each source"),
        "{overview}"
    );
    assert!(overview.contains("complete"), "{overview}");
    let list = page("/snapshots");
    assert!(list.contains("1–2 of 2"), "{list}");
    let newest = ui.json("/api/snapshots")["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let root = page(&format!("/snapshots/{newest}/browse"));
    assert!(root.contains("many/"), "{root}");
    // Names are escaped, never markup.
    assert!(root.contains("&lt;b&gt;bold&lt;b&gt;.txt"), "{root}");
    assert!(!root.contains("<b>bold<b>"), "{root}");
    let folder = page(&format!("/snapshots/{newest}/browse?path=many&offset=200"));
    assert!(
        folder.contains("201–250 of 250") && folder.contains("f249"),
        "{folder}"
    );
    let file = page(&format!("/snapshots/{newest}/view?path=notes.txt"));
    assert!(file.contains("second, longer"), "{file}");
    let hostile = page(&format!(
        "/snapshots/{newest}/view?path=%3Cb%3Ebold%3Cb%3E.txt"
    ));
    assert!(
        hostile.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{hostile}"
    );
    // Names that are not UTF-8 are links that lead to them.
    assert!(root.contains("browse?path=caf%E9\""), "{root}");
    let folder = page(&format!("/snapshots/{newest}/browse?path=caf%E9"));
    assert!(
        folder.contains("view?path=caf%E9/r%E9sum%E9.txt"),
        "{folder}"
    );
    let file = page(&format!(
        "/snapshots/{newest}/view?path=caf%E9/r%E9sum%E9.txt"
    ));
    assert!(file.contains("latin-1, again"), "{file}");
    assert!(
        file.contains("name=\"path_encoded\" value=\"caf%E9/r%E9sum%E9.txt\""),
        "{file}"
    );
    let binary = page(&format!("/snapshots/{newest}/view?path=big.bin"));
    assert!(binary.contains("Not text"), "{binary}");
    let oldest = ui.json("/api/snapshots")["items"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let changes = page(&format!("/diff?from={oldest}&to={newest}"));
    assert!(
        changes.contains("notes.txt") && changes.contains("modified"),
        "{changes}"
    );
    assert!(
        changes.contains(&format!("/snapshots/{oldest}/view?path=notes.txt")),
        "{changes}"
    );
    assert!(
        changes.contains(&format!(
            "/snapshots/{oldest}/view?path=caf%E9/r%E9sum%E9.txt"
        )),
        "{changes}"
    );
    let plugins = page("/plugins");
    assert!(
        plugins.contains("sftp") && plugins.contains("built in"),
        "{plugins}"
    );
    let (status, _) = ui.get("/snapshots/latest/browse?path=../..");
    assert_eq!(status, 400);
    ui.stop();
}

#[test]
fn restore_and_check_run_as_jobs() {
    let (u, src) = user_with_snapshots();
    let mut ui = Ui::start(&u, &[]);
    ui.log_in();
    // A whole snapshot, then one folder, restored to local folders.
    let out = u.path("restored");
    let (status, started) = ui.post(
        "/api/restore",
        &serde_json::json!({"snapshot": "latest", "to": out.to_str().unwrap()}),
    );
    assert_eq!(status, 200, "{started}");
    let job = ui.finished_job(&started["job"]);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["bytes"], job["total_bytes"], "{job}");
    common::assert_same_tree(&src, &out);
    // The result is what `kast restore --json` prints.
    let again = u.path("again");
    let cli = u.json(&["restore", "latest", "--to", again.to_str().unwrap()]);
    assert_eq!(job["result"], cli);
    let part = u.path("part");
    let (_, started) = ui.post(
        "/api/restore",
        &serde_json::json!({"snapshot": "latest", "path": "many", "to": part.to_str().unwrap()}),
    );
    assert_eq!(ui.finished_job(&started["job"])["state"], "done");
    assert_eq!(std::fs::read(part.join("f042")).unwrap(), b"42");
    // A name that is not UTF-8, as the pages send it (percent-encoded).
    let (_, started) = ui.post(
        "/api/restore",
        &serde_json::json!({"snapshot": "latest", "path_encoded": "caf%E9", "to": part.to_str().unwrap()}),
    );
    assert_eq!(ui.finished_job(&started["job"])["state"], "done");
    assert_eq!(
        std::fs::read(part.join(OsStr::from_bytes(b"r\xe9sum\xe9.txt"))).unwrap(),
        b"latin-1, again\n"
    );
    // To a saved location, by its @name; an unknown name is a clear error.
    let saved = u.path("saved");
    u.ok(&["location", "add", "restores", saved.to_str().unwrap()]);
    let (_, started) = ui.post(
        "/api/restore",
        &serde_json::json!({"snapshot": "latest", "path": "many", "to": "@restores"}),
    );
    assert_eq!(ui.finished_job(&started["job"])["state"], "done");
    assert_eq!(std::fs::read(saved.join("f007")).unwrap(), b"7");
    let (status, said) = ui.post(
        "/api/restore",
        &serde_json::json!({"snapshot": "latest", "to": "@nowhere"}),
    );
    assert_eq!(status, 400, "{said}");
    assert!(
        said["error"]
            .as_str()
            .unwrap()
            .contains("no location named @nowhere")
    );
    // Into a folder that has the files: refused unless asked to replace.
    let (_, started) = ui.post(
        "/api/restore",
        &serde_json::json!({"snapshot": "latest", "to": out.to_str().unwrap()}),
    );
    let refused = ui.finished_job(&started["job"]);
    assert_eq!(refused["state"], "failed", "{refused}");
    // Bad requests are errors at once.
    let (status, said) = ui.post(
        "/api/restore",
        &serde_json::json!({"snapshot": "latest", "to": ""}),
    );
    assert_eq!(status, 400, "{said}");
    let (status, _) = ui.post(
        "/api/restore",
        &serde_json::json!({"snapshot": "latest", "path": "../x", "to": "/tmp/x"}),
    );
    assert_eq!(status, 400);
    // A clean store checks clean; a flipped byte in a pack is found and named.
    let (_, started) = ui.post("/api/check", &serde_json::json!({}));
    let clean = ui.finished_job(&started["job"]);
    assert_eq!(clean["result"]["clean"], true, "{clean}");
    let pack = common::damage_largest_pack(&u.store);
    let (_, started) = ui.post("/api/check", &serde_json::json!({"fast": false}));
    let damaged = ui.finished_job(&started["job"]);
    assert_eq!(damaged["result"]["clean"], false, "{damaged}");
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(
        damaged["result"]["damage"][0]["object"]
            .as_str()
            .unwrap()
            .contains(&name[..8]),
        "{damaged}"
    );
    let cli = u.kast(&["--json", "check"]);
    assert_eq!(cli.status.code(), Some(3));
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(damaged["result"], cli);
    // The job page carries what its script needs.
    let (status, page) = ui.get(&format!("/jobs/{}", started["job"]));
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("data-job-id"));
    ui.stop();
}

#[test]
fn a_folder_downloads_as_a_tar_stream_that_tar_extracts_whole() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    // Long paths (40 levels), non-UTF-8 names, links, odd modes, old times.
    common::generate_tree(&src, 5, 6 << 20);
    xattr::set(src.join("run.sh"), "user.origin", b"kast test").unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);
    let mut ui = Ui::start(&u, &[]);
    ui.log_in();
    let short = &u.snapshot_ids()[0][..8];
    let extract = |path: &str, into: &std::path::Path| {
        let (status, headers, archive) = ui.request(
            "GET",
            &format!("/api/snapshots/latest/tar?path={path}"),
            &[],
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&archive));
        assert!(headers.contains("application/x-tar"), "{headers}");
        std::fs::create_dir_all(into).unwrap();
        let mut tar = std::process::Command::new("tar")
            .args([
                "-x",
                "-p",
                "--xattrs",
                "--xattrs-include=user.*",
                "-f",
                "-",
                "-C",
            ])
            .arg(into)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        tar.stdin.take().unwrap().write_all(&archive).unwrap();
        assert!(tar.wait().unwrap().success());
        headers
    };
    // The whole snapshot comes under one folder named after it.
    let out = u.path("whole");
    let headers = extract("", &out);
    assert!(
        headers.contains(&format!("filename=\"kast-{short}.tar\"")),
        "{headers}"
    );
    common::assert_same_tree(&src, &out.join(format!("kast-{short}")));
    assert_eq!(
        xattr::get(out.join(format!("kast-{short}/run.sh")), "user.origin").unwrap(),
        Some(b"kast test".to_vec())
    );
    // One folder comes under its own name.
    let out = u.path("one");
    extract("deep/level0", &out);
    common::assert_same_tree(&src.join("deep/level0"), &out.join("level0"));
    // A file is not a folder; `..` is refused as everywhere.
    let (status, _) = ui.get("/api/snapshots/latest/tar?path=run.sh");
    assert_eq!(status, 400);
    let (status, _) = ui.get("/api/snapshots/latest/tar?path=deep/..");
    assert_eq!(status, 400);
    ui.stop();
}
