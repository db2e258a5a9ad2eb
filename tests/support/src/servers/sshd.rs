//! A real OpenSSH server on a loopback port, for the SFTP tests: its own
//! host keys, config and authorized keys in a temporary directory, started
//! in the foreground and killed (with every session it forked) on drop.
//! No system service or file is touched: the test user's password exists
//! only in a private mount namespace, where a copy of /etc/shadow is
//! mounted over the real one.

use super::{
    current_user, encode, free_port, run, signal_tree, spawn_in_namespace, wait_for_banner,
    write_shadow,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

pub use super::PASSWORD;
/// The passphrase of the encrypted RSA client key the server accepts.
pub const RSA_PASSPHRASE: &str = "rsa key passphrase";

/// A running OpenSSH `sshd` on loopback; stopped on drop.
pub struct Sshd {
    /// Its config, host keys and client keys.
    pub dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
    /// The user to log in as.
    pub user: String,
    child: Option<Child>,
    extra: Vec<String>,
}

fn keygen(path: &Path, kind: &str, passphrase: &str) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", passphrase, "-C", "kast-test", "-f"])
        .arg(path));
}

impl Sshd {
    /// A server with the default test configuration.
    pub fn start() -> Sshd {
        Sshd::start_with(&[])
    }

    /// A server with extra `sshd_config` lines (they come first, so they win).
    pub fn start_with(extra: &[&str]) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_ed25519"), "ed25519", "");
        keygen(&d.join("host_rsa"), "rsa", "");
        keygen(&d.join("id_ed25519"), "ed25519", "");
        keygen(&d.join("id_rsa"), "rsa", RSA_PASSPHRASE);
        keygen(&d.join("id_stranger"), "ed25519", "");
        let authorized = [
            std::fs::read_to_string(d.join("id_ed25519.pub")).unwrap(),
            std::fs::read_to_string(d.join("id_rsa.pub")).unwrap(),
        ]
        .concat();
        std::fs::write(d.join("authorized_keys"), authorized).unwrap();
        std::fs::create_dir(d.join("small")).unwrap();
        let user = current_user();
        let mut sshd = Sshd {
            port: free_port(),
            dir,
            user,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        let host = |name: &str| {
            let text = std::fs::read_to_string(sshd.dir.path().join(name)).unwrap();
            let mut fields = text.split_whitespace();
            format!(
                "[127.0.0.1]:{} {} {}\n",
                sshd.port,
                fields.next().unwrap(),
                fields.next().unwrap()
            )
        };
        let known = host("host_ed25519.pub") + &host("host_rsa.pub");
        std::fs::write(sshd.dir.path().join("known_hosts"), known).unwrap();
        sshd.launch();
        sshd
    }

    /// A path inside the server's temporary folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn launch(&mut self) {
        let d = self.dir.path().to_path_buf();
        let mut config = self.extra.join("\n");
        config.push_str(&format!(
            "\nPort {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\n\
             HostKey {d}/host_rsa\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile none\nStrictModes no\nUsePAM no\nPermitRootLogin yes\n\
             PasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
             LogLevel ERROR\nMaxStartups 100\n",
            port = self.port,
            d = d.display()
        ));
        if !config.contains("Subsystem") {
            config.push_str("Subsystem sftp internal-sftp\n");
        }
        std::fs::write(d.join("sshd_config"), config).unwrap();
        // sshd insists on its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        // The password (and a 4 MiB disk at small/) exist only in sshd's
        // own mount namespace.
        write_shadow(&d.join("shadow"), &self.user, PASSWORD);
        let child = spawn_in_namespace(
            &format!(
                "mount --bind {d}/shadow /etc/shadow && mount -t tmpfs -o size=4m tmpfs {d}/small",
                d = d.display()
            ),
            &format!("/usr/sbin/sshd -D -e -f {}/sshd_config", d.display()),
            &d.join("sshd.log"),
        );
        self.child = Some(child);
        wait_for_banner(self.port, b"SSH-", &d.join("sshd.log"));
    }

    /// The URL of `path` on this server, logging in with the ed25519 key
    /// and checking the host key against the test known_hosts.
    pub fn url(&self, path: &Path) -> String {
        format!(
            "{}?identity={}&known_hosts={}",
            self.bare_url(path),
            self.path("id_ed25519").display(),
            self.path("known_hosts").display()
        )
    }

    /// The URL with no options.
    pub fn bare_url(&self, path: &Path) -> String {
        format!(
            "sftp://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            encode(path)
        )
    }

    /// Kills the server and every session it forked, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_tree(child.id(), "-KILL");
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same keys.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Sshd {
    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server and its sessions:
    /// a server that hangs without closing anything.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            signal_tree(child.id(), if frozen { "-STOP" } else { "-CONT" });
        }
    }
}
