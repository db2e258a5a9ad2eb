//! The user the end-to-end tests act as: a fresh HOME, a passphrase in
//! the environment, one store, and only the `kast` command line.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// The `kast` binary under test: the one Cargo built for this run, beside
/// the test executable's `deps/` folder (the tests that use it are
/// integration tests of the `kast` package, so Cargo builds it fresh before
/// they run; `KAST_BIN` names another).
pub fn kast_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(bin) = std::env::var_os("KAST_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("the test's own path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("a test runs from target/PROFILE/deps");
        let bin = profile_dir.join("kast");
        assert!(
            bin.exists(),
            "{} is missing: run the tests with cargo test -p kast",
            bin.display()
        );
        bin
    })
}

/// A user with an empty home and one store.
pub struct User {
    /// The user's home (kast runs with HOME set to it); removed on drop.
    pub home: tempfile::TempDir,
    /// Where the store's files are, on this machine.
    pub store: PathBuf,
    /// How kast is told where the store is (`--store`).
    pub location: String,
}

impl Default for User {
    fn default() -> Self {
        Self::new()
    }
}

impl User {
    /// A user with a fresh home and a store inside it.
    pub fn new() -> User {
        let home = tempfile::tempdir().unwrap();
        let store = home.path().join("store");
        User {
            location: store.display().to_string(),
            home,
            store,
        }
    }

    /// A user with a fresh home whose store is at `store`.
    pub fn with_store(store: PathBuf) -> User {
        User {
            location: store.display().to_string(),
            home: tempfile::tempdir().unwrap(),
            store,
        }
    }

    /// A path inside the home.
    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Runs kast against this user's store with the right passphrase.
    pub fn kast(&self, args: &[&str]) -> Output {
        self.kast_with(args, "correct horse")
    }

    /// Runs kast against this user's store with `passphrase`.
    pub fn kast_with(&self, args: &[&str], passphrase: &str) -> Output {
        self.command(args, passphrase).output().unwrap()
    }

    /// Runs kast under `wrapper` (such as `setpriv …`), which runs the
    /// command line it is given after its own arguments.
    pub fn kast_under(&self, wrapper: &[&str], args: &[&str]) -> Output {
        let mut command = Command::new(wrapper[0]);
        command.args(&wrapper[1..]).arg(kast_binary());
        self.finish(&mut command, args, "correct horse");
        command.output().unwrap()
    }

    fn command(&self, args: &[&str], passphrase: &str) -> Command {
        let mut command = Command::new(kast_binary());
        self.finish(&mut command, args, passphrase);
        command
    }

    /// The store, the arguments and a clean environment.
    fn finish(&self, command: &mut Command, args: &[&str], passphrase: &str) {
        command
            .args(["--store", &self.location])
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KAST_PASSPHRASE", passphrase);
    }

    /// Starts kast in the background (to interrupt it); its standard
    /// error is kept for the test to read.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args, "correct horse")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Starts kast with its standard output readable through a pipe.
    pub fn spawn_piped(&self, args: &[&str]) -> Child {
        self.command(args, "correct horse")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs and expects success; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kast(args);
        assert!(
            out.status.success(),
            "kast {args:?} failed ({:?}):\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kast with `--json`, expects success and parses what it prints.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("--json prints JSON")
    }

    /// Creates the store with test-speed key derivation.
    pub fn create(&self) {
        self.ok(&["create", "--kdf-memory-mib", "8", "--kdf-iterations", "1"]);
    }

    /// The ids of the store's snapshots, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        self.json(&["ls"])
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Sends Ctrl-C (SIGINT) to a kast started in the background.
pub fn interrupt(child: &Child) {
    send_signal(child, "INT");
}

/// Sends a signal by name (`INT`, `TERM`) as `kill -NAME` does.
pub fn send_signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits up to `limit` for a kast started with [`User::spawn`] to end;
/// its exit code (`None` if killed by a signal) and standard error. Fails
/// the test, naming `what`, if it is still running then.
pub fn wait_for_exit(
    mut child: Child,
    limit: std::time::Duration,
    what: &str,
) -> (Option<i32>, String) {
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < limit, "{what} did not end");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    }
    (status.code(), err)
}

/// A command's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A tmpfs of `mib` MiB mounted on a folder for as long as it lives: a
/// small disk to fill, or a filesystem that holds every i64 time. Needs
/// root, as the tests run.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts it; fails the test when it cannot.
    pub fn mount(dir: &std::path::Path, mib: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root, as the tests run"
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
