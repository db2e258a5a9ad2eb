//! FTP servers besides vsftpd, each a real one on a loopback port, so the
//! FTP connector is held to more than one server's habits: pyftpdlib
//! (Python, Debian's `python3-pyftpdlib`) and ProFTPD (Debian's
//! `proftpd-core`, unpacked by `scripts/setup --tests` into [`PROFTPD`]:
//! installed, it would replace vsftpd).
//! Each logs the test user in with [`PASSWORD`] to the whole filesystem
//! (paths in URLs are absolute), with passive ports of its own.

use super::{PASSWORD, encode, free_port, signal_tree, wait_for_banner};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Where `scripts/setup --tests` unpacks ProFTPD.
pub const PROFTPD: &str = "/opt/kast-test-servers/proftpd/usr/sbin/proftpd";

/// What a test needs of an FTP server.
pub trait FtpServer {
    /// `ftp://user@127.0.0.1:port/path?password_file=…&data_ports=…`.
    fn url(&self, path: &Path) -> String;
    /// The server's name, for messages.
    fn name(&self) -> &'static str;
}

impl FtpServer for super::vsftpd::Vsftpd {
    fn url(&self, path: &Path) -> String {
        super::vsftpd::Vsftpd::url(self, path)
    }
    fn name(&self) -> &'static str {
        "vsftpd"
    }
}

/// A running server process, its folder and ports.
pub struct Running {
    dir: tempfile::TempDir,
    port: u16,
    user: &'static str,
    data_ports: (u16, u16),
    child: Child,
    name: &'static str,
}

impl Running {
    fn url(&self, path: &Path) -> String {
        let password = self.dir.path().join("password");
        if !password.exists() {
            std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
        }
        format!(
            "ftp://{}@127.0.0.1:{}{}?password_file={}&data_ports={}-{}",
            self.user,
            self.port,
            encode(path),
            password.display(),
            self.data_ports.0,
            self.data_ports.1
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        signal_tree(self.child.id(), "-KILL");
        let _ = self.child.wait();
    }
}

fn ports() -> (u16, (u16, u16)) {
    let low = 20000 + (free_port() % 20000);
    (free_port(), (low, low + 50))
}

fn spawn(command: &mut Command, log: &Path, name: &str) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name} (scripts/setup --tests installs it): {e}"))
}

/// pyftpdlib, with every permission, rooted at `/`.
pub struct Pyftpdlib(Running);

impl Pyftpdlib {
    /// Starts one on free ports; stopped on drop.
    pub fn start() -> Pyftpdlib {
        let dir = tempfile::tempdir().unwrap();
        let (port, data_ports) = ports();
        let script = "import sys\n\
            from pyftpdlib.authorizers import DummyAuthorizer\n\
            from pyftpdlib.handlers import FTPHandler\n\
            from pyftpdlib.servers import FTPServer\n\
            port, low, high, user, password = sys.argv[1:6]\n\
            auth = DummyAuthorizer()\n\
            auth.add_user(user, password, '/', perm='elradfmwMT')\n\
            FTPHandler.authorizer = auth\n\
            FTPHandler.passive_ports = range(int(low), int(high) + 1)\n\
            FTPServer(('127.0.0.1', int(port)), FTPHandler).serve_forever()\n";
        let log = dir.path().join("stderr.log");
        // Debian's Python, where python3-pyftpdlib installs it.
        let child = spawn(
            Command::new("/usr/bin/python3").args([
                "-c",
                script,
                &port.to_string(),
                &data_ports.0.to_string(),
                &data_ports.1.to_string(),
                "kast",
                PASSWORD,
            ]),
            &log,
            "pyftpdlib",
        );
        wait_for_banner(port, b"220", &log);
        Pyftpdlib(Running {
            dir,
            port,
            user: "kast",
            data_ports,
            child,
            name: "pyftpdlib",
        })
    }
}

impl FtpServer for Pyftpdlib {
    fn url(&self, path: &Path) -> String {
        self.0.url(path)
    }
    fn name(&self) -> &'static str {
        self.0.name
    }
}

/// ProFTPD, standalone in the foreground, its user in a file of its own
/// (uid 0, as the tests run, so it may set owners).
pub struct Proftpd(Running);

impl Proftpd {
    /// Starts one on free ports; stopped on drop.
    pub fn start() -> Proftpd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (port, data_ports) = ports();
        let hash = Command::new("openssl")
            .args(["passwd", "-6", PASSWORD])
            .output()
            .unwrap()
            .stdout;
        let passwd = d.join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "kast:{}:0:0::/:/bin/sh\n",
                String::from_utf8_lossy(&hash).trim()
            ),
        )
        .unwrap();
        // ProFTPD refuses a user file others can read.
        std::fs::set_permissions(&passwd, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let config = format!(
            "ServerType standalone\nDefaultServer on\nServerName \"kast test\"\n\
             Port {port}\nDefaultAddress 127.0.0.1\nUseIPv6 off\nUser root\nGroup root\n\
             RootLogin on\nAuthOrder mod_auth_file.c\nAuthUserFile {passwd}\n\
             RequireValidShell off\nPassivePorts {low} {high}\n\
             ScoreboardFile {d}/scoreboard\nPidFile {d}/pid\nDelayTable none\n\
             WtmpLog off\nTransferLog none\nSystemLog {d}/system.log\n\
             UseReverseDNS off\nAllowOverwrite on\nUmask 022\nTimesGMT on\n\
             <Limit SITE_CHMOD>\n  AllowAll\n</Limit>\n",
            passwd = passwd.display(),
            d = d.display(),
            low = data_ports.0,
            high = data_ports.1,
        );
        std::fs::write(d.join("proftpd.conf"), config).unwrap();
        let log = d.join("stderr.log");
        let child = spawn(
            Command::new(PROFTPD)
                .arg("-n")
                .arg("-c")
                .arg(d.join("proftpd.conf")),
            &log,
            "proftpd",
        );
        wait_for_banner(port, b"220", &log);
        Proftpd(Running {
            dir,
            port,
            user: "kast",
            data_ports,
            child,
            name: "proftpd",
        })
    }
}

impl FtpServer for Proftpd {
    fn url(&self, path: &Path) -> String {
        self.0.url(path)
    }
    fn name(&self) -> &'static str {
        self.0.name
    }
}
