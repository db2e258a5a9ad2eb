//! `kast ui` in a real headless Chromium, driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`): a person's path through the
//! pages, with a screenshot of each under `target/tmp/ui-screenshots/`, and
//! no JavaScript console error allowed.

use kast_test_support::common;
use kast_test_support::user;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use user::User;

/// A process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port, once it accepts connections.
fn chromedriver() -> (Killed, String) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (scripts/setup installs chromium-driver)");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), format!("http://127.0.0.1:{port}"))
}

/// The browser's console log (chromedriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

/// One browser session and where its screenshots go.
struct Browser {
    client: Client,
    shots: PathBuf,
    errors: Vec<String>,
}

impl Browser {
    async fn start(driver: &str, downloads: &Path) -> Browser {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            }),
        );
        capabilities.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({"browser": "ALL"}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(driver)
            .await
            .expect("a Chromium session");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            shots,
            errors: Vec::new(),
        }
    }

    /// Saves a screenshot and collects the console's errors so far.
    async fn shot(&mut self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        let log = self.client.issue_cmd(BrowserLog).await.unwrap();
        for entry in log.as_array().into_iter().flatten() {
            if entry["level"] == "SEVERE" {
                self.errors.push(format!("{name}: {}", entry["message"]));
            }
        }
    }

    /// Clicks the element, found again when the page replaces it first.
    async fn click(&self, locator: Locator<'_>) {
        for _ in 0..50 {
            let found = self.client.wait().for_element(locator).await.unwrap();
            match found.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("{locator:?}: {e}"),
            }
        }
        panic!("{locator:?} kept going stale");
    }

    /// The text of the first element `css` finds, found again when the
    /// page replaces it in between (a click's navigation still landing).
    async fn text(&self, css: &str) -> String {
        for _ in 0..50 {
            let found = self
                .client
                .wait()
                .for_element(Locator::Css(css))
                .await
                .unwrap();
            match found.text().await {
                Ok(text) => return text,
                Err(e) if e.to_string().contains("stale element") => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
        panic!("{css} kept going stale")
    }

    /// Waits until the page's text contains `wanted`; returns the text.
    async fn wait_for_text(&self, wanted: &str) -> String {
        let started = Instant::now();
        loop {
            let body = self.text("body").await;
            if body.contains(wanted) {
                return body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no {wanted:?} in:\n{body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits for a downloaded file to be complete (Chromium writes a
/// `.crdownload` first).
fn downloaded(path: &Path) -> Vec<u8> {
    let started = Instant::now();
    loop {
        let partial = std::fs::read_dir(path.parent().unwrap()).unwrap().any(|e| {
            e.unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "crdownload")
        });
        if path.exists() && !partial {
            return std::fs::read(path).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} never arrived",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_person_browses_compares_restores_and_checks_in_chromium() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir_all(src.join("docs/deep")).unwrap();
    std::fs::write(src.join("notes.txt"), "first\n").unwrap();
    std::fs::write(src.join("docs/deep/plan.md"), "# plan\n").unwrap();
    common::write_random_file(&src.join("photo.bin"), 2 << 20, 3);
    u.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("notes.txt"), "second, longer\n").unwrap();
    u.ok(&["backup", src.to_str().unwrap()]);

    let mut ui = Killed(u.spawn_piped(&["ui"]));
    let mut line = String::new();
    BufReader::new(ui.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let login = line.trim().to_string();
    let (_driver, driver_url) = chromedriver();
    let downloads = u.path("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut b = Browser::start(&driver_url, &downloads).await;
        // The printed URL logs in and lands on the overview.
        b.client.goto(&login).await.unwrap();
        assert_eq!(b.text("h1").await, "Store");
        assert!(
            !b.client
                .current_url()
                .await
                .unwrap()
                .as_str()
                .contains("token")
        );
        b.shot("overview").await;
        // To the newest snapshot, into a folder, to a file.
        b.click(Locator::LinkText("Snapshots")).await;
        b.wait_for_text("1–2 of 2").await;
        b.shot("snapshots").await;
        b.click(Locator::Css("table tr:nth-child(2) td:nth-child(3) a"))
            .await;
        b.wait_for_text("docs/").await;
        b.shot("browse-root").await;
        b.click(Locator::LinkText("docs/")).await;
        b.click(Locator::LinkText("deep/")).await;
        b.wait_for_text("plan.md").await;
        b.shot("browse-folder").await;
        // The folder as a tar stream: tar extracts the same bytes.
        b.click(Locator::LinkText("Download this folder (.tar)"))
            .await;
        let archive = downloaded(&downloads.join("deep.tar"));
        let unpacked = u.path("unpacked");
        std::fs::create_dir(&unpacked).unwrap();
        let mut tar = Command::new("tar")
            .args(["-x", "-f", "-", "-C"])
            .arg(&unpacked)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        tar.stdin.take().unwrap().write_all(&archive).unwrap();
        assert!(tar.wait().unwrap().success());
        assert_eq!(
            std::fs::read(unpacked.join("deep/plan.md")).unwrap(),
            b"# plan\n"
        );
        b.click(Locator::LinkText("plan.md")).await;
        assert_eq!(b.text("pre").await, "# plan");
        b.shot("file-view").await;
        // A download's bytes equal the original's.
        b.click(Locator::Css(".crumbs a")).await;
        b.click(Locator::LinkText("photo.bin")).await;
        b.wait_for_text("Not text").await;
        b.click(Locator::LinkText("Download")).await;
        assert_eq!(
            downloaded(&downloads.join("photo.bin")),
            std::fs::read(src.join("photo.bin")).unwrap()
        );
        // Compare the two snapshots: the changed file shows, with its versions.
        b.click(Locator::LinkText("Snapshots")).await;
        b.click(Locator::Css("table tr:nth-child(3) input[name=from]"))
            .await;
        b.click(Locator::Css("table tr:nth-child(2) input[name=to]"))
            .await;
        b.click(Locator::Css("button[type=submit]:not(.filters button)"))
            .await;
        let changes = b.wait_for_text("notes.txt").await;
        assert!(changes.contains("modified"), "{changes}");
        b.shot("diff").await;
        b.click(Locator::LinkText("before")).await;
        assert_eq!(b.text("pre").await, "first");
        // Restore the newest snapshot from its page; the job page follows it.
        b.client.back().await.unwrap();
        b.click(Locator::LinkText("Snapshots")).await;
        b.click(Locator::Css("table tr:nth-child(2) td:nth-child(3) a"))
            .await;
        let target = u.path("restored");
        b.client
            .wait()
            .for_element(Locator::Css("input[name=to]"))
            .await
            .unwrap()
            .send_keys(target.to_str().unwrap())
            .await
            .unwrap();
        b.click(Locator::Css("form[data-job] button")).await;
        b.wait_for_text("Restored 3 files").await;
        b.shot("restore-job").await;
        common::assert_same_tree(&src, &target);
        // A flipped byte in a pack: a check started from the page names it.
        let pack = common::damage_largest_pack(&u.store);
        b.click(Locator::LinkText("Check")).await;
        b.shot("check").await;
        b.click(Locator::Css("form[data-job] button")).await;
        let report = b.wait_for_text("Damaged:").await;
        let name = pack.file_name().unwrap().to_str().unwrap();
        assert!(report.contains(&name[..8]), "{report}");
        b.shot("check-job").await;
        b.click(Locator::LinkText("Plugins")).await;
        b.wait_for_text("may reach").await;
        b.shot("plugins").await;
        // The search box on every page: a name glob finds the file in both
        // snapshots, and a match opens the file.
        b.client
            .find(Locator::Css("header input[name=pattern]"))
            .await
            .unwrap()
            .send_keys("plan*\u{E007}")
            .await
            .unwrap();
        let found = b.wait_for_text("2 matches").await;
        assert!(found.contains("docs/deep/plan.md"), "{found}");
        b.shot("find").await;
        b.click(Locator::LinkText("docs/deep/plan.md")).await;
        assert_eq!(b.text("pre").await, "# plan");
        // The source's history, drawn: a mark per snapshot in each panel.
        b.click(Locator::LinkText("History")).await;
        b.wait_for_text("2 snapshots, 0 job runs").await;
        let marks = b
            .client
            .find_all(Locator::Css("svg.chart circle.point"))
            .await
            .unwrap();
        assert_eq!(marks.len(), 4, "size and files, two snapshots each");
        b.shot("history").await;
        let errors = std::mem::take(&mut b.errors);
        b.client.close().await.unwrap();
        assert!(errors.is_empty(), "JavaScript console errors: {errors:#?}");
    });
}
