//! Jobs through the real binary: `kast job run`, `kast agent` on a
//! two-second schedule, hooks, the activity log and `kast report` (text,
//! JSON, Prometheus), a webhook received by a real HTTP server on loopback,
//! two agents on one job, SIGTERM during a backup, and the units and
//! crontab lines `kast schedule` writes, checked by `systemd-analyze
//! verify` and a cron parser (Python's croniter).

use kast_test_support::common;
use kast_test_support::servers;
use kast_test_support::user;

use serde_json::Value;
use servers::tls_proxy::TlsProxy;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use user::User;

/// A user with a store and a folder to back up (one small file in it).
fn user_with_source() -> (User, std::path::PathBuf) {
    let u = User::new();
    u.create();
    let src = u.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    (u, src)
}

/// Writes the user's config file (in their HOME, where kast looks).
fn write_config(u: &User, text: &str) {
    let dir = u.home.path().join(".config/kast");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

/// A real HTTP server on loopback that answers 503 to its first `failing`
/// requests and 200 after, and hands each POST body to the test.
fn webhook_server(mut failing: usize) -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            assert!(first.starts_with("POST /hook HTTP/1.1"), "{first}");
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if failing > 0 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            failing = failing.saturating_sub(1);
            stream
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .unwrap();
            if sender.send(serde_json::from_slice(&body).unwrap()).is_err() {
                return;
            }
        }
    });
    (url, receiver)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Stops an agent with SIGTERM; returns its log once it has exited cleanly.
fn stop_agent(mut agent: Child) -> String {
    signal(&agent, "TERM");
    let mut log = String::new();
    agent
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let status = agent.wait().unwrap();
    assert!(status.success(), "agent exited with {status}: {log}");
    assert!(log.contains("kast agent: stopped"), "{log}");
    log
}

/// Waits until `done` holds, for at most a minute.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn report(u: &User) -> Value {
    u.json(&["report"])
}

fn job<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {report}"))
}

#[test]
fn a_job_runs_its_hooks_and_records_what_happened() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    common::generate_tree(&src, 9, 1 << 20);
    let hooks = u.path("hooks.log");
    write_config(
        &u,
        &format!(
            r#"
[jobs.home]
store = "{store}"
backup = ["{src}"]
tags = ["laptop"]
exclude = ["many"]
keep = {{ last = 2 }}
check = "50%"
pre = "echo pre $KAST_JOB >> {hooks}; echo said by the hook"
post = "echo post $KAST_OUTCOME $KAST_FILES_NEW $KAST_RECORDED >> {hooks}"

[jobs.guarded]
store = "{store}"
backup = ["{src}"]
every = "1d"
pre = "exit 3"
post = "echo post $KAST_OUTCOME $KAST_REASON >> {hooks}"
"#,
            store = u.location,
            src = src.display(),
            hooks = hooks.display()
        ),
    );
    let listed = u.json(&["job", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    for _ in 0..3 {
        let ran = u.json(&["job", "run", "home"]);
        assert_eq!(ran["outcome"], "success", "{ran}");
        assert_eq!(ran["recorded"], true, "{ran}");
    }
    // Retention kept two; the excludes and tags applied.
    let snapshots = u.json(&["ls"]);
    assert_eq!(snapshots.as_array().unwrap().len(), 2, "{snapshots}");
    assert_eq!(snapshots[0]["tags"][0], "laptop");
    assert!(
        u.json(&["ls", "latest"])
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["name"] != "many")
    );
    // The sampled check a job can run is also `kast check --sample`.
    let sampled = u.json(&["check", "--sample", "50%"]);
    assert_eq!(sampled["clean"], true, "{sampled}");
    let (read, all) = (
        sampled["packs_read"].as_u64().unwrap(),
        sampled["packs"].as_u64().unwrap(),
    );
    assert!(read >= 1 && read <= all.div_ceil(2), "{sampled}");
    let out = u.kast(&["check", "--sample", "0%"]);
    assert_eq!(out.status.code(), Some(1), "{}", user::stderr(&out));
    // A failing pre hook aborts the job (exit 1), and is recorded.
    let out = u.kast(&["job", "run", "guarded"]);
    assert_eq!(out.status.code(), Some(1), "{}", user::stderr(&out));
    assert!(user::stderr(&out).contains("pre hook `exit 3` exited with status 3"));
    let hooks = std::fs::read_to_string(&hooks).unwrap();
    let lines: Vec<&str> = hooks.lines().collect();
    assert_eq!(lines[0], "pre home");
    // The first run found every file new; later ones nothing.
    assert!(
        lines[1].starts_with("post success ") && lines[1].ends_with(" true"),
        "{hooks}"
    );
    assert_ne!(lines[1], "post success 0 true", "{hooks}");
    assert_eq!(lines[5], "post success 0 true", "{hooks}");
    assert!(lines[6].starts_with("post failure the pre hook"), "{hooks}");
    let r = report(&u);
    let home = job(&r, "home");
    assert_eq!(
        (home["runs"].as_u64(), home["failures"].as_u64()),
        (Some(3), Some(0)),
        "{r}"
    );
    assert!(home["last_success_ns"].as_i64().is_some(), "{r}");
    let guarded = job(&r, "guarded");
    assert_eq!(guarded["failures"], 1, "{r}");
    // A monitoring check hears of it through the exit status.
    assert_eq!(guarded["stale"], true, "{r}");
    let out = u.kast(&["report", "--fail-stale"]);
    assert_eq!(out.status.code(), Some(5), "{}", user::stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("guarded [STALE]"));
    assert!(guarded["last_success"].is_null(), "{r}");
    assert!(
        guarded["last_run"]["reason"]
            .as_str()
            .unwrap()
            .contains("status 3"),
        "{r}"
    );
    // A file kast cannot read (run without root's power to read anything):
    // the run is partial (exit 4), the record names the file, and the
    // webhook (on failure, the default, which partial runs are) is retried
    // past a 503.
    let (hook_url, received) = webhook_server(1);
    let config = u.home.path().join(".config/kast/config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[jobs.partial]\nstore = \"{}\"\nbackup = [\"{}\"]\nnotify = {{ webhook = \"{hook_url}\" }}\n",
        u.location,
        src.display()
    ));
    std::fs::write(&config, text).unwrap();
    let secret = src.join("private.key");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let out = u.kast_under(
        &["setpriv", "--inh-caps=-all", "--bounding-set=-all"],
        &["--json", "job", "run", "partial"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", user::stderr(&out));
    let ran: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (ran["outcome"].as_str(), ran["errors"].as_u64()),
        (Some("partial"), Some(1)),
        "{ran}"
    );
    assert!(
        ran["error_samples"][0]
            .as_str()
            .unwrap()
            .contains("private.key"),
        "{ran}"
    );
    for attempt in 0..2 {
        let heard = received.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(heard["outcome"], "partial", "attempt {attempt}: {heard}");
    }
    // Without --store the report reads every job's store; one that cannot
    // be opened is named, its jobs stale, and the others still reported.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[jobs.lost]\nstore = \"{}\"\nbackup = [\"/tmp\"]\nevery = \"1d\"\n",
        u.path("no-store-here").display()
    ));
    std::fs::write(&config, text).unwrap();
    let out = Command::new(kast_test_support::user::kast_binary())
        .args(["--json", "report"])
        .env_clear()
        .env("HOME", u.home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KAST_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", user::stderr(&out));
    let everywhere: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lost = job(&everywhere, "lost");
    assert_eq!(lost["stale"], true, "{everywhere}");
    assert!(
        lost["store_error"]
            .as_str()
            .unwrap()
            .contains("no store at"),
        "{everywhere}"
    );
    assert_eq!(job(&everywhere, "home")["runs"], 3, "{everywhere}");
    // `job show` reads the runs back from the store.
    let shown = u.ok(&["job", "show", "home"]);
    assert!(
        shown.contains("[jobs.home]") && shown.contains("last runs"),
        "{shown}"
    );
    // A misspelt key is an error, not a silently different job.
    write_config(
        &u,
        &format!(
            "[jobs.x]\nstore = \"{}\"\nbackup = [\"/\"]\nkeeep = {{ last = 1 }}\n",
            u.location
        ),
    );
    let out = u.kast(&["job", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        user::stderr(&out).contains("keeep"),
        "{}",
        user::stderr(&out)
    );
}

#[test]
fn the_agent_runs_jobs_on_schedule_survives_failures_and_tells_a_webhook() {
    let u = User::new();
    u.create();
    let src = u.path("src");
    common::generate_tree(&src, 4, 0);
    let (hook_url, received) = webhook_server(0);
    let prometheus = u.path("kast.prom");
    write_config(
        &u,
        &format!(
            r#"
[jobs.home]
store = "{store}"
backup = ["{src}"]
every = "2s"
notify = {{ webhook = "{hook_url}", on = "always" }}

[jobs.guarded]
store = "{store}"
backup = ["{src}"]
every = "2s"
pre = "exit 3"

[jobs.gone]
store = "{store}"
backup = ["{gone}"]
every = "2s"
"#,
            store = u.location,
            src = src.display(),
            gone = u.path("no-such-folder").display(),
        ),
    );
    let agent = u.spawn(&["agent"]);
    wait_for("three runs of each job", || {
        let r = report(&u);
        ["home", "guarded", "gone"].iter().all(|name| {
            r["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|j| j["job"] == *name && j["runs"].as_u64() >= Some(3))
        })
    });
    let log = stop_agent(agent);
    let r = report(&u);
    let home = job(&r, "home");
    assert_eq!(home["failures"], 0, "{r}");
    assert_eq!(home["stale"], false, "{r}");
    assert!(u.snapshot_ids().len() >= 3, "{log}");
    // A failing job is recorded each time and the next run still happens.
    for name in ["guarded", "gone"] {
        let j = job(&r, name);
        assert_eq!(j["failures"], j["runs"], "{r}");
        assert_eq!(j["stale"], true, "{r}");
    }
    assert!(
        job(&r, "gone")["last_run"]["reason"]
            .as_str()
            .unwrap()
            .contains("no-such-folder"),
        "{r}"
    );
    // The webhook heard every run of `home`, as JSON.
    let first = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        (first["job"].as_str(), first["outcome"].as_str()),
        (Some("home"), Some("success"))
    );
    assert_eq!(first["recorded"], true);
    assert_eq!(first["snapshots"].as_array().unwrap().len(), 1);
    assert!(first["files_new"].as_u64().unwrap() > 0, "{first}");
    // Prometheus text format: every sample line is `name{labels} value`,
    // under its HELP and TYPE lines.
    u.ok(&["report", "--prometheus", prometheus.to_str().unwrap()]);
    let text = std::fs::read_to_string(&prometheus).unwrap();
    let mut declared = Vec::new();
    let mut values = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge");
            declared.push(name.to_string());
        } else if !line.starts_with("# HELP ") {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            let (name, labels) = series.split_once('{').unwrap();
            assert!(declared.last().is_some_and(|d| d == name), "{line}");
            assert!(
                labels.ends_with('}')
                    && labels.contains("job=\"")
                    && labels.contains(",host=\"")
                    && labels.contains(",store=\""),
                "{line}"
            );
            let job = labels.split('"').nth(1).unwrap();
            values.insert(format!("{name}/{job}"), value);
        }
    }
    assert_eq!(values["kast_job_stale/guarded"], 1.0, "{text}");
    assert_eq!(values["kast_job_stale/home"], 0.0, "{text}");
    assert_eq!(values["kast_job_last_run_success/home"], 1.0, "{text}");
    assert_eq!(values["kast_job_last_run_success/gone"], 0.0, "{text}");
    assert!(values["kast_job_runs/home"] >= 3.0, "{text}");
    let last = values["kast_job_last_success_timestamp_seconds/home"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now - last < 60.0, "{text}");
    // The text report says which jobs are late.
    let text = u.ok(&["report"]);
    assert!(
        text.contains("guarded [STALE]") && text.contains("home:"),
        "{text}"
    );
}

#[test]
fn two_agents_never_run_one_job_at_once() {
    let (u, src) = user_with_source();
    // The pre hook notes an overlap if another run of the job is inside it.
    let inside = u.path("inside");
    let overlaps = u.path("overlaps");
    write_config(
        &u,
        &format!(
            r#"
[jobs.busy]
store = "{store}"
backup = ["{src}"]
every = "1s"
pre = "mkdir {inside} || {{ echo overlap >> {overlaps}; exit 9; }}; sleep 1; rmdir {inside}"
"#,
            store = u.location,
            src = src.display(),
            inside = inside.display(),
            overlaps = overlaps.display(),
        ),
    );
    let first = u.spawn(&["agent"]);
    let second = u.spawn(&["agent"]);
    wait_for("four runs", || {
        job(&report(&u), "busy")["runs"].as_u64() >= Some(4)
    });
    let logs = stop_agent(first) + &stop_agent(second);
    assert!(!overlaps.exists(), "{logs}");
    assert!(logs.contains("running elsewhere"), "{logs}");
    // Each agent ran it in turn; no run failed but those SIGTERM cut short.
    let shown = u.json(&["job", "show", "busy"]);
    for run in shown["last_runs"].as_array().unwrap() {
        if run["outcome"] != "success" {
            assert!(
                run["reason"].as_str().unwrap().contains("interrupted"),
                "{shown}"
            );
        }
    }
}

#[test]
fn sigterm_during_a_backup_leaves_a_store_that_checks_clean() {
    let (u, src) = user_with_source();
    for i in 0..8 {
        common::write_random_file(&src.join(format!("big{i}")), 48 << 20, i);
    }
    write_config(
        &u,
        &format!(
            "[jobs.big]\nstore = \"{}\"\nbackup = [\"{}\"]\nevery = \"1h\"\n",
            u.location,
            src.display()
        ),
    );
    let agent = u.spawn(&["agent"]);
    // Stop it once the backup has written its first pack.
    wait_for("a pack", || {
        std::fs::read_dir(u.store.join("packs")).is_ok_and(|d| d.count() > 0)
    });
    let log = stop_agent(agent);
    let check = u.kast(&["check"]);
    assert!(check.status.success(), "{}\n{log}", user::stderr(&check));
    let r = report(&u);
    let big = job(&r, "big");
    // Interrupted (recorded as a failure that says so), unless it won the race.
    if big["last_run"]["outcome"] == "failure" {
        assert!(
            big["last_run"]["reason"]
                .as_str()
                .unwrap()
                .contains("interrupted"),
            "{r}"
        );
    }
}

/// Whether process `pid` stops running within five seconds (a killed
/// process may take a moment to be scheduled and die; a zombie waiting for
/// a reaper, which a container's init may never be, counts as stopped).
fn stops(pid: &str) -> bool {
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim()
                .starts_with('Z')
        })
    };
    (0..50).any(|_| {
        if !running() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    })
}

#[test]
fn a_hung_hook_is_stopped_with_what_it_started() {
    let (u, src) = user_with_source();
    let (pid_file, heard) = (u.path("sleeper.pid"), u.path("heard.json"));
    write_config(
        &u,
        &format!(
            r#"[jobs.stuck]
store = "{store}"
backup = ["{src}"]
pre = "sleep 300 & echo $! > {pid}; wait"
hook_timeout = "1s"
notify = {{ command = "cat > {heard}; sleep 300" }}
"#,
            store = u.location,
            src = src.display(),
            pid = pid_file.display(),
            heard = heard.display(),
        ),
    );
    // Past its limit the hook is stopped, with the sleep it started; the
    // notify command that hangs after reading is stopped too, a warning.
    let clock = Instant::now();
    let out = u.kast(&["job", "run", "stuck"]);
    assert!(clock.elapsed() < Duration::from_secs(60));
    let said = user::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("pre hook `sleep 300 &") && said.contains("ran past its limit of 1s"),
        "{said}"
    );
    assert!(
        said.contains("notify command `cat >") && said.contains("ran past its limit"),
        "{said}"
    );
    let sleeper = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        stops(sleeper.trim()),
        "the hook's sleep {sleeper} still runs"
    );
    let told: Value = serde_json::from_slice(&std::fs::read(&heard).unwrap()).unwrap();
    assert_eq!(told["outcome"], "failure", "{told}");
    let r = report(&u);
    assert!(
        job(&r, "stuck")["last_run"]["reason"]
            .as_str()
            .unwrap()
            .contains("ran past its limit of 1s"),
        "{r}"
    );
    // SIGTERM while a hook runs (an hour's limit) stops the agent at once,
    // and the run is recorded as interrupted.
    let started_file = u.path("slow-started");
    write_config(
        &u,
        &format!(
            "[jobs.slow]\nstore = \"{}\"\nbackup = [\"{}\"]\nevery = \"1h\"\npre = \"touch {}; sleep 300\"\n",
            u.location,
            src.display(),
            started_file.display()
        ),
    );
    let agent = u.spawn(&["agent"]);
    wait_for("the slow hook", || started_file.exists());
    let clock = Instant::now();
    let log = stop_agent(agent);
    assert!(clock.elapsed() < Duration::from_secs(30), "{log}");
    let r = report(&u);
    let reason = &job(&r, "slow")["last_run"]["reason"];
    assert!(
        reason.as_str().unwrap().contains("interrupted"),
        "{r}\n{log}"
    );
}

#[test]
fn a_second_ctrl_c_quits_at_once_and_takes_the_hook_along() {
    let (u, src) = user_with_source();
    let pid_file = u.path("sleeper.pid");
    // The hook and its sleep ignore SIGTERM, so only a kill stops them.
    write_config(
        &u,
        &format!(
            "[jobs.deaf]\nstore = \"{}\"\nbackup = [\"{}\"]\npre = \"trap '' TERM; sleep 300 & echo $! > {}; wait\"\n",
            u.location,
            src.display(),
            pid_file.display()
        ),
    );
    let mut child = u.spawn(&["job", "run", "deaf"]);
    wait_for("the hook", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))
    });
    let sleeper = std::fs::read_to_string(&pid_file).unwrap();
    user::interrupt(&child);
    std::thread::sleep(Duration::from_millis(300));
    user::interrupt(&child);
    // Not waiting for kast's standard error to close: a sleep left behind
    // would hold it open.
    let status = child.wait().unwrap();
    let outlived = !stops(sleeper.trim());
    if outlived {
        let _ = Command::new("kill")
            .args(["-KILL", sleeper.trim()])
            .status();
    }
    assert_eq!(status.code(), Some(130));
    assert!(!outlived, "the hook's sleep {sleeper} outlived kast");
}

#[test]
fn a_damaged_activity_record_is_named_and_the_others_still_report() {
    let (u, src) = user_with_source();
    write_config(
        &u,
        &format!(
            "[jobs.home]\nstore = \"{}\"\nbackup = [\"{}\"]\n",
            u.location,
            src.display()
        ),
    );
    u.ok(&["job", "run", "home"]);
    u.ok(&["job", "run", "home"]);
    // The record is the last thing a run writes: a pack of its own.
    let newest = walkdir(&u.store.join("packs"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap();
    // Its one blob ends where the footer starts (`footer_len`, the last
    // four bytes, says where; docs/store-format.md).
    let mut bytes = std::fs::read(&newest).unwrap();
    let tail = bytes.len() - 4;
    let footer_len = u32::from_le_bytes(bytes[tail..].try_into().unwrap()) as usize;
    bytes[tail - footer_len - 1] ^= 1;
    std::fs::write(&newest, bytes).unwrap();
    for args in [
        &["--json", "report"][..],
        &["--json", "job", "show", "home"],
    ] {
        let out = u.kast(args);
        let said = user::stderr(&out);
        assert!(out.status.success(), "{args:?}: {said}");
        assert!(
            said.contains("activity record") && said.contains("cannot be read"),
            "{args:?}: {said}"
        );
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        let runs = match args[1] {
            "report" => job(&shown, "home")["runs"].as_u64(),
            _ => shown["last_runs"].as_array().map(|r| r.len() as u64),
        };
        assert_eq!(runs, Some(1), "{shown}");
    }
}

/// Every file under `dir`.
fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_agent_catches_up_on_a_calendar_run_it_missed() {
    let (u, src) = user_with_source();
    let mut config = String::new();
    for name in ["missed", "current", "new"] {
        config.push_str(&format!(
            "[jobs.{name}]\nstore = \"{}\"\nbackup = [\"{}\"]\ncalendar = \"daily\"\ntags = [\"{name}\"]\n",
            u.location,
            src.display()
        ));
    }
    write_config(&u, &config);
    // `missed` last started in 1970, before today's midnight; `current`
    // has started since; `new` has never run (as for systemd, not a miss).
    let stamps = u.home.path().join(".local/share/kast/jobs");
    std::fs::create_dir_all(&stamps).unwrap();
    std::fs::write(stamps.join("missed.last"), "1000\n").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(stamps.join("current.last"), format!("{now}\n")).unwrap();
    let agent = u.spawn(&["agent"]);
    wait_for("the missed run", || !u.snapshot_ids().is_empty());
    // Give a wrongly started second job the time to show itself.
    std::thread::sleep(Duration::from_secs(2));
    let log = stop_agent(agent);
    assert!(log.contains("job missed missed its run at"), "{log}");
    let snapshots = u.json(&["ls"]);
    let tags: Vec<&str> = snapshots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tags"][0].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["missed"], "{log}");
    let stamp: u64 = std::fs::read_to_string(stamps.join("missed.last"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(stamp >= now, "{stamp} < {now}");
}

#[test]
fn generated_units_verify_and_crontab_lines_parse() {
    let u = User::new();
    u.create();
    write_config(
        &u,
        &format!(
            r#"
[jobs.hourly]
store = "{store}"
backup = ["/tmp"]
every = "1h"

[jobs.weekdays]
store = "{store}"
backup = ["/tmp"]
calendar = "Mon..Fri 02:00"

[jobs.odd]
store = "{store}"
backup = ["/tmp"]
every = "7m"
"#,
            store = u.location
        ),
    );
    let units = u.home.path().join(".config/systemd/user");
    for name in ["hourly", "weekdays", "odd"] {
        // Without a running systemd user manager the units are written and
        // the command says how to enable them.
        let out = u.kast(&["schedule", "install", name, "--init", "systemd"]);
        if !out.status.success() {
            assert!(user::stderr(&out).contains("systemctl --user daemon-reload"));
        }
        let service = units.join(format!("kast-{name}.service"));
        let timer = units.join(format!("kast-{name}.timer"));
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .args([&service, &timer])
            .env("HOME", u.home.path())
            .output()
            .unwrap();
        assert!(
            verify.status.success() && verify.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let timer = std::fs::read_to_string(&timer).unwrap();
        assert!(
            timer.contains("Persistent=true") && timer.contains("RandomizedDelaySec="),
            "{timer}"
        );
        let service = std::fs::read_to_string(&service).unwrap();
        assert!(
            service.contains("Nice=19") && service.contains("IOSchedulingClass=idle"),
            "{service}"
        );
        assert!(service.contains(&format!("job run {name}")), "{service}");
    }
    // `schedule list` finds them; `schedule remove` takes one away.
    let listed = u.json(&["schedule", "list"]);
    let jobs: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["job"].as_str().unwrap())
        .collect();
    for name in ["hourly", "weekdays", "odd"] {
        assert!(jobs.contains(&name), "{listed}");
    }
    u.ok(&["schedule", "remove", "odd"]);
    assert!(!units.join("kast-odd.timer").exists() && !units.join("kast-odd.service").exists());
    let out = u.kast(&["schedule", "remove", "odd"]);
    assert!(
        user::stderr(&out).contains("not scheduled"),
        "{}",
        user::stderr(&out)
    );
    let weekdays = std::fs::read_to_string(units.join("kast-weekdays.timer")).unwrap();
    assert!(
        weekdays.contains("OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 02:00:00"),
        "{weekdays}"
    );
    // The crontab lines, parsed by croniter; `every = "7m"` cannot be said
    // in cron and is refused with a way out.
    for (name, fields) in [("hourly", "0 * * * *"), ("weekdays", "0 2 * * 1,2,3,4,5")] {
        let line = u.ok(&["schedule", "install", name, "--init", "cron", "--print"]);
        assert!(line.starts_with(fields), "{line}");
        assert!(
            line.trim_end().ends_with(&format!("# kast job {name}")),
            "{line}"
        );
        let parsed = Command::new("python3")
            .args([
                "-c",
                "import sys, croniter; assert croniter.croniter.is_valid(' '.join(sys.argv[1].split()[:5]))",
                &line,
            ])
            .status()
            .unwrap();
        assert!(parsed.success(), "croniter refused {line}");
    }
    let out = u.kast(&["schedule", "install", "odd", "--init", "cron", "--print"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(user::stderr(&out).contains("kast agent"));
}

#[test]
fn a_webhook_over_https_checks_the_certificate_against_the_jobs_ca() {
    let (u, src) = user_with_source();
    let (plain_url, received) = webhook_server(0);
    let port: u16 = plain_url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/hook")
        .parse()
        .unwrap();
    let proxy = TlsProxy::start(port);
    let url = format!("https://127.0.0.1:{}/hook", proxy.port);
    write_config(
        &u,
        &format!(
            r#"
[jobs.private]
store = "{store}"
backup = ["{src}"]
notify = {{ webhook = "{url}", ca = "{ca}", on = "always" }}

[jobs.untrusted]
store = "{store}"
backup = ["{src}"]
notify = {{ webhook = "{url}", on = "always" }}
"#,
            store = u.location,
            src = src.display(),
            ca = proxy.ca().display(),
        ),
    );
    u.ok(&["job", "run", "private"]);
    let heard = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        (heard["job"].as_str(), heard["outcome"].as_str()),
        (Some("private"), Some("success"))
    );
    // Without the CA the certificate is refused at once (no retries), the
    // run itself still succeeds, and the warning says why.
    let started = Instant::now();
    let out = u.kast(&["job", "run", "untrusted"]);
    assert!(out.status.success(), "{}", user::stderr(&out));
    let said = user::stderr(&out);
    // Retrying would wait 1 + 3 + 9 s and say it gave up.
    assert!(
        started.elapsed() < Duration::from_secs(12) && !said.contains("gave up"),
        "retried a certificate failure: {said}"
    );
    assert!(
        said.contains("webhook") && said.to_lowercase().contains("certificate"),
        "{said}"
    );
    assert!(received.recv_timeout(Duration::from_millis(500)).is_err());
    // Both jobs succeeded: nothing is stale.
    let out = u.kast(&["--json", "report", "--fail-stale"]);
    assert_eq!(out.status.code(), Some(0), "{}", user::stderr(&out));
}

/// A job's `keep` chooses among the snapshots the job made, never the ones
/// made by hand or by another job (unless `keep_scope = "source"`), and
/// every run says which snapshots it removed and what its check found: in
/// text, `--json`, the activity log (`kast report`) and notifications.
#[test]
fn a_jobs_retention_removes_only_its_own_snapshots_and_says_which() {
    let (u, src) = user_with_source();
    for _ in 0..4 {
        u.ok(&["backup", src.to_str().unwrap()]);
    }
    let by_hand: Vec<String> = u
        .json(&["ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let told = u.path("told.json");
    write_config(
        &u,
        &format!(
            r#"
[jobs.docs]
store = "{store}"
backup = ["{src}"]
tags = ["docs"]
keep = {{ last = 2 }}
check = "fast"
notify = {{ command = "cat > {told}", on = "always" }}

[jobs.everything]
store = "{store}"
backup = ["{src}"]
keep = {{ last = 1 }}
keep_scope = "source"
"#,
            store = u.location,
            src = src.display(),
            told = told.display(),
        ),
    );
    let mut made = Vec::new();
    for run in 0..3 {
        let ran = u.json(&["job", "run", "docs"]);
        assert_eq!(ran["outcome"], "success", "{ran}");
        assert_eq!(ran["check"]["clean"], true, "{ran}");
        assert_eq!(ran["check"]["kind"], "fast", "{ran}");
        made.push(ran["snapshots"][0].as_str().unwrap().to_string());
        let removed: Vec<&str> = ran["removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        match run {
            2 => assert_eq!(removed, [made[0].as_str()], "{ran}"),
            _ => assert!(removed.is_empty(), "{ran}"),
        }
    }
    let listed = u.json(&["ls"]);
    let left: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for id in &by_hand {
        assert!(
            left.contains(&id.as_str()),
            "a hand-made snapshot went: {listed}"
        );
    }
    assert_eq!(left.len(), by_hand.len() + 2, "{listed}");
    let jobs: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs.iter().filter(|j| **j == "docs").count(), 2, "{listed}");

    // In text: the count on the run's line, then every id removed.
    let text = u.ok(&["job", "run", "docs"]);
    assert!(
        text.contains("retention removed 1 snapshot, check (fast) clean"),
        "{text}"
    );
    assert!(
        text.contains(&format!("removed by retention: {}", made[1])),
        "{text}"
    );
    // The notification and the activity log carry the same.
    let heard: Value = serde_json::from_slice(&std::fs::read(&told).unwrap()).unwrap();
    assert_eq!(heard["removed"][0], made[1].as_str(), "{heard}");
    assert_eq!(heard["check"]["clean"], true, "{heard}");
    let r = report(&u);
    let last = &job(&r, "docs")["last_run"];
    assert_eq!(last["removed"][0], made[1].as_str(), "{r}");
    assert_eq!(last["check"]["damaged"], 0, "{r}");
    let said = String::from_utf8(u.kast(&["report"]).stdout).unwrap();
    assert!(said.contains("retention removed 1 snapshot"), "{said}");

    // keep_scope = "source": every snapshot of the source is chosen among.
    let ran = u.json(&["job", "run", "everything"]);
    assert_eq!(
        ran["removed"].as_array().unwrap().len(),
        by_hand.len() + 2,
        "{ran}"
    );
    assert_eq!(u.json(&["ls"]).as_array().unwrap().len(), 1);
}
