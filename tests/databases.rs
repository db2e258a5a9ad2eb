//! Streams and databases through the real binary: `--stdin` and
//! `--from-command` (a failing or killed command writes no snapshot, a
//! stop stops the command), jobs with `commands`, and `docs/databases.md`
//! followed as written against real PostgreSQL, MariaDB and SQLite, each
//! restored copy compared row by row (a checksum of every row) with the
//! original.

use kast_test_support::markdown::blocks;
use kast_test_support::servers::databases::{MariaDb, Postgres};
use kast_test_support::user::{self, User};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROWS: u32 = 200_000;

fn doc() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(repo.join("docs/databases.md")).unwrap()
}

/// PATH with the `kast` under test first.
fn path_with_kast(extra: Option<&str>) -> String {
    let bin = user::kast_binary().parent().unwrap().display().to_string();
    let rest = std::env::var("PATH").unwrap_or_default();
    match extra {
        Some(more) => format!("{bin}:{more}"),
        None => format!("{bin}:{rest}"),
    }
}

/// Runs every `sh TAG` block of the how-to, in order, in `dir`, as `u`
/// with the servers' `env`; returns how many ran.
fn run_blocks(u: &User, tag: &str, dir: &Path, env: &[(String, String)]) -> usize {
    let mut ran = 0;
    let server_path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    for block in blocks(&doc()) {
        if block.info != format!("sh {tag}") {
            continue;
        }
        ran += 1;
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block.text])
            .current_dir(dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("HOME", u.home.path())
            .env("PATH", path_with_kast(server_path))
            .env("KAST_STORE", &u.location)
            .env("KAST_PASSPHRASE", "correct horse")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docs/databases.md, block {ran} ({tag}) failed:\n{}\n{}{}",
            block.text,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ran
}

/// `kast ARGS | CONSUMER`, both of which must succeed.
fn pipe_into(u: &User, args: &[&str], consumer: &mut Command) {
    let mut kast = Command::new(user::kast_binary())
        .args(["--store", &u.location])
        .args(args)
        .env("HOME", u.home.path())
        .env("KAST_PASSPHRASE", "correct horse")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = consumer
        .stdin(kast.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(kast.wait().unwrap().success(), "kast {args:?} failed");
    assert!(
        out.status.success(),
        "{consumer:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The job of the how-to, into `u`'s config, with `u`'s store.
fn write_job(u: &User) {
    let job = blocks(&doc())
        .into_iter()
        .find(|b| b.info == "toml job")
        .expect("the how-to shows a job");
    let text = job.text.replace("/srv/kast/store", &u.location);
    let config = u.home.path().join(".config/kast");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.toml"), text).unwrap();
}

#[test]
fn postgresql_dumps_restore_every_row() {
    if !Postgres::available() {
        eprintln!("skipped: PostgreSQL is not installed (scripts/setup --tests)");
        return;
    }
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        &format!(
            "CREATE TABLE t (i int PRIMARY KEY, h text, n numeric, at timestamptz, b bytea);
             INSERT INTO t SELECT g, md5(g::text), g * 1.5,
                 '2020-01-01'::timestamptz + g * interval '1 minute', decode(md5(g::text), 'hex')
             FROM generate_series(1, {ROWS}) g;
             CREATE ROLE reader;"
        ),
    );
    let checksum = |db: &str| {
        pg.sql(
            db,
            "SELECT count(*) || ' ' || md5(string_agg(t::text, E'\\n' ORDER BY i)) FROM t",
        )
    };
    let original = checksum("app");
    assert!(original.starts_with(&format!("{ROWS} ")), "{original}");

    let u = User::new();
    u.create();
    write_job(&u);
    let work = tempfile::tempdir().unwrap();
    assert_eq!(run_blocks(&u, "postgres", work.path(), &pg.env()), 4);
    assert_eq!(checksum("app_restored"), original);
    assert_eq!(checksum("app_from_dump"), original);
    // The database itself dropped, and made again from the store.
    pg.sql("postgres", "DROP DATABASE app");
    pg.sql("postgres", "CREATE DATABASE app");
    pipe_into(
        &u,
        &["cat", "latest:app.sql"],
        pg.client("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "app"]),
    );
    assert_eq!(checksum("app"), original);

    // The globals dump holds the role; the job made its own snapshots.
    // A stream's name says which source `latest` means.
    let globals = u.ok(&["cat", "latest:globals.sql"]);
    assert!(globals.contains("CREATE ROLE reader"), "{globals}");
    let listed = u.json(&["ls"]);
    let by_job: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["job"] == "databases")
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(by_job, ["stdin:app.sql", "stdin:globals.sql"]);
    let report = u.ok(&["report"]);
    assert!(report.contains("databases"), "{report}");
}

#[test]
fn mariadb_dumps_restore_every_row() {
    if !MariaDb::available() {
        eprintln!("skipped: MariaDB is not installed (scripts/setup --tests)");
        return;
    }
    let db = MariaDb::start();
    db.sql("", "CREATE DATABASE app");
    db.sql(
        "app",
        &format!(
            "CREATE TABLE t (i INT PRIMARY KEY, h CHAR(32), n DECIMAL(14,2), at DATETIME(6), b VARBINARY(16)) ENGINE=InnoDB;
             INSERT INTO t SELECT seq, MD5(seq), seq * 1.5,
                 '2020-01-01' + INTERVAL seq MINUTE + INTERVAL seq MICROSECOND, UNHEX(MD5(seq))
             FROM seq_1_to_{ROWS};"
        ),
    );
    let checksum = |name: &str| {
        db.sql(
            name,
            "SET SESSION group_concat_max_len = 1073741824;
             SELECT CONCAT(COUNT(*), ' ', MD5(GROUP_CONCAT(CONCAT_WS(',', i, h, n, at, HEX(b)) ORDER BY i SEPARATOR '\\n'))) FROM t;",
        )
    };
    let original = checksum("app");
    assert!(original.starts_with(&format!("{ROWS} ")), "{original}");
    let u = User::new();
    u.create();
    std::fs::write(u.home.path().join(".my.cnf"), db.client_config()).unwrap();
    let work = tempfile::tempdir().unwrap();
    assert_eq!(run_blocks(&u, "mariadb", work.path(), &[]), 2);
    assert_eq!(checksum("app_restored"), original);
    db.sql("", "DROP DATABASE app; CREATE DATABASE app");
    let mut mariadb = db.client("mariadb");
    mariadb.arg("app");
    pipe_into(&u, &["cat", "latest:app.sql"], &mut mariadb);
    assert_eq!(checksum("app"), original);
}

#[test]
fn sqlite_dumps_and_copies_restore_every_row() {
    if Command::new("sqlite3").arg("--version").output().is_err() {
        eprintln!("skipped: sqlite3 is not installed (scripts/setup --tests)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let sqlite = |db: &str, sql: &str| {
        let out = Command::new("sqlite3")
            .arg(work.path().join(db))
            .arg(sql)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    sqlite(
        "app.db",
        &format!(
            "CREATE TABLE t (i INTEGER PRIMARY KEY, h TEXT, b BLOB);
             WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {ROWS})
             INSERT INTO t SELECT i, hex(randomblob(16)), randomblob(24) FROM g;"
        ),
    );
    let rows = |db: &str| sqlite(db, "SELECT i, h, hex(b) FROM t ORDER BY i");
    let original = rows("app.db");
    assert_eq!(original.lines().count(), ROWS as usize);
    let u = User::new();
    u.create();
    assert_eq!(run_blocks(&u, "sqlite", work.path(), &[]), 2);
    assert_eq!(rows("app-restored.db"), original);
    assert!(!work.path().join("app-copy.db").exists());
    let copy = u.path("copy");
    u.ok(&[
        "restore",
        "latest",
        "--source",
        work.path().join("app-copy.db").to_str().unwrap(),
        "--to",
        copy.to_str().unwrap(),
    ]);
    let mut restored = PathBuf::from(&copy);
    restored.push("app-copy.db");
    let out = Command::new("sqlite3")
        .arg(&restored)
        .arg("SELECT i, h, hex(b) FROM t ORDER BY i")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), original);
}

#[test]
fn a_stream_is_stored_whole_or_not_at_all() {
    let u = User::new();
    u.create();
    // 40 MiB through standard input, back byte for byte.
    let data: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut child = Command::new(user::kast_binary())
        .args([
            "--store",
            &u.location,
            "--json",
            "backup",
            "--stdin",
            "data.bin",
        ])
        .env("HOME", u.home.path())
        .env("KAST_PASSPHRASE", "correct horse")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["snapshots"][0]["source"], "stdin:data.bin");
    assert_eq!(report["snapshots"][0]["logical_bytes"], data.len());
    let back = u.kast(&["cat", "latest:data.bin", "--source", "stdin:data.bin"]);
    assert!(back.stdout == data, "the stream came back changed");
    let listing = u.json(&["ls", "latest:", "--source", "stdin:data.bin"]);
    assert_eq!(listing[0]["permissions"], "-rw-------", "{listing}");

    // A command's output, and the same NAME again: one source, two snapshots.
    u.ok(&[
        "backup",
        "--from-command",
        "data.bin",
        "--",
        "head",
        "-c",
        "1000",
        "/dev/zero",
    ]);
    let ids = u.json(&["ls", "--source", "stdin:data.bin"]);
    assert_eq!(ids.as_array().unwrap().len(), 2);

    // A failing command: exit 1, its status and its messages, no snapshot.
    let before = u.snapshot_ids().len();
    let out = u.kast(&[
        "backup",
        "--from-command",
        "bad.sql",
        "--",
        "sh",
        "-c",
        "echo 'partial dump'; echo 'pg_dump: error: connection refused' >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = user::stderr(&out);
    assert!(err.contains("exited with status 3"), "{err}");
    assert!(
        err.contains("connection refused"),
        "the command's own message: {err}"
    );
    assert!(err.contains("no snapshot was written"), "{err}");
    // A killed command.
    let out = u.kast(&[
        "backup",
        "--from-command",
        "bad.sql",
        "--",
        "sh",
        "-c",
        "head -c 100000 /dev/zero; kill -9 $$",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        user::stderr(&out).contains("killed by signal 9"),
        "{}",
        user::stderr(&out)
    );
    // One that cannot start.
    let out = u.kast(&[
        "backup",
        "--from-command",
        "bad.sql",
        "--",
        "/nonexistent/pg_dump",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(user::stderr(&out).contains("could not start"));
    assert_eq!(
        u.snapshot_ids().len(),
        before,
        "no snapshot from any of them"
    );
    // Usage mistakes.
    for args in [
        &["backup", "--from-command", "x"][..],
        &["backup", "--stdin", "x", "/tmp"],
        &["backup", "--", "true"],
    ] {
        assert_eq!(u.kast(args).status.code(), Some(2), "{args:?}");
    }
    let out = u.kast(&["backup", "--from-command", "a/b", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(user::stderr(&out).contains("cannot be a file name"));
}

#[test]
fn stopping_a_backup_stops_its_command() {
    let u = User::new();
    u.create();
    let pidfile = u.path("dump.pid");
    // A dump that writes a little, then hangs (a lock wait).
    let script = format!(
        "echo $$ > {}; head -c 5000 /dev/zero; exec sleep 600",
        pidfile.display()
    );
    let child = u.spawn(&[
        "backup",
        "--from-command",
        "slow.sql",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let start = Instant::now();
    while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    user::send_signal(&child, "TERM");
    let (code, err) = user::wait_for_exit(child, Duration::from_secs(30), "kast backup");
    assert_eq!(code, Some(130), "{err}");
    // SAFETY: kill with signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the command was left running");
    assert!(u.snapshot_ids().is_empty(), "no snapshot of a stopped dump");
}
