//! Real database servers from Debian (PostgreSQL, MariaDB), each started
//! in the foreground in a private data folder that listens only on a Unix
//! socket in that folder, and killed on drop. Their clients find them as
//! a user's would (PostgreSQL's through `PGHOST`, [`Postgres::env`];
//! MariaDB's through `~/.my.cnf`, [`MariaDb::client_config`]), so the
//! commands the tests and the how-to run are the ones a user types.

use super::{run, signal_tree};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Waits for a server's socket to appear, or fails with its log.
fn wait_for_socket(socket: &Path, log: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the server exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the server did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A command's standard output, which must succeed.
fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running PostgreSQL; stopped on drop.
pub struct Postgres {
    /// Its data and socket folder.
    pub dir: tempfile::TempDir,
    /// Where its programs are (`initdb`, `pg_dump`, `psql`…).
    pub bin: PathBuf,
    child: Child,
}

impl Postgres {
    /// Whether Debian's PostgreSQL is installed (`scripts/setup --tests`).
    pub fn available() -> bool {
        Self::find_bin().is_some()
    }

    fn find_bin() -> Option<PathBuf> {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|bin| bin.join("postgres").exists())
            .collect();
        versions.sort();
        versions.pop()
    }

    /// A fresh cluster (trust authentication on its socket only), started.
    pub fn start() -> Postgres {
        let bin = Self::find_bin().expect("PostgreSQL is installed (scripts/setup --tests)");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // PostgreSQL refuses to run as root: as root, it runs as `postgres`,
        // which must reach the folder.
        let as_owner = |program: &Path| {
            let mut cmd = if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            };
            cmd.current_dir(dir.path());
            cmd
        };
        if is_root() {
            run(Command::new("chown").arg("postgres").arg(dir.path()));
        }
        run(as_owner(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .arg(&data));
        let log = dir.path().join("log");
        let mut child = as_owner(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "listen_addresses=", "-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_socket(&dir.path().join(".s.PGSQL.5432"), &log, &mut child);
        let pg = Postgres { dir, bin, child };
        // The socket appears a moment before connections are taken.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pg.client("pg_isready").status().unwrap().success() {
            assert!(Instant::now() < deadline, "PostgreSQL never got ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    /// What its clients need to find it: `PGHOST` (the socket's folder)
    /// and `PGUSER`, and its programs first on `PATH`.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        vec![
            ("PGHOST".into(), self.dir.path().display().to_string()),
            ("PGUSER".into(), "postgres".into()),
            ("PATH".into(), format!("{}:{path}", self.bin.display())),
        ]
    }

    /// One of its client programs, set up to reach it.
    pub fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.envs(self.env());
        cmd
    }

    /// Runs SQL in `db` (stopping at the first error); what it printed,
    /// unaligned and without headers.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        output(
            self.client("psql")
                .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c"])
                .arg(sql),
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        signal_tree(self.child.id(), "-KILL");
        let _ = self.child.wait();
    }
}

/// A running MariaDB; stopped on drop.
pub struct MariaDb {
    /// Its data and socket folder.
    pub dir: tempfile::TempDir,
    child: Child,
}

impl MariaDb {
    /// Whether Debian's MariaDB server is installed.
    pub fn available() -> bool {
        Path::new("/usr/sbin/mariadbd").exists()
    }

    fn socket(dir: &Path) -> PathBuf {
        dir.join("mariadb.sock")
    }

    /// A fresh server whose `root` logs in over its socket without a
    /// password, started.
    pub fn start() -> MariaDb {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let user = super::current_user();
        run(Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={user}"))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]));
        let log = dir.path().join("log");
        let socket = Self::socket(dir.path());
        let mut child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--user={user}"))
            .args(["--skip-networking", "--innodb-buffer-pool-size=64M"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_socket(&socket, &log, &mut child);
        let db = MariaDb { dir, child };
        std::fs::write(db.dir.path().join("client.cnf"), db.client_config()).unwrap();
        db
    }

    /// The `[client]` options that reach it as `root`, for a `~/.my.cnf`
    /// (Debian's own client config names the system server's socket,
    /// and an option file outranks `MYSQL_UNIX_PORT`).
    pub fn client_config(&self) -> String {
        format!(
            "[client]\nsocket={}\nuser=root\n",
            Self::socket(self.dir.path()).display()
        )
    }

    /// One of its client programs, set up to reach it as `root`.
    pub fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg(format!(
            "--defaults-extra-file={}",
            self.dir.path().join("client.cnf").display()
        ));
        cmd
    }

    /// Runs SQL in `db`; what it printed, without column names.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let mut cmd = self.client("mariadb");
        cmd.args(["--batch", "--skip-column-names"]);
        if !db.is_empty() {
            cmd.arg(db);
        }
        output(cmd.arg("-e").arg(sql))
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        signal_tree(self.child.id(), "-KILL");
        let _ = self.child.wait();
    }
}
