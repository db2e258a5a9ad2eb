//! A TLS-terminating proxy (Debian's `stunnel4`) in front of a plain TCP
//! port, with a server certificate from a fresh test CA: HTTPS to a Garage
//! node, as a private deployment would put it.

use super::{signal_tree, test_certificates, wait_for_banner};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running proxy; stopped on drop.
pub struct TlsProxy {
    /// Its config, certificates and the CA to trust.
    pub dir: tempfile::TempDir,
    /// The port that speaks TLS.
    pub port: u16,
    child: Child,
}

impl TlsProxy {
    /// Terminates TLS on a free port and forwards to `127.0.0.1:target`.
    pub fn start(target: u16) -> TlsProxy {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        test_certificates(d);
        let port = super::free_port();
        std::fs::write(
            d.join("stunnel.conf"),
            format!(
                "foreground = yes\npid =\ndebug = warning\n[s3]\n\
                 accept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{target}\n\
                 cert = {d}/server.pem\nkey = {d}/server.key\n",
                d = d.display()
            ),
        )
        .unwrap();
        let log = d.join("log");
        let child = Command::new("stunnel4")
            .arg(d.join("stunnel.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start stunnel4 (scripts/setup installs it)");
        wait_for_banner(port, b"", &log);
        TlsProxy { dir, port, child }
    }

    /// The CA that signed the proxy's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        signal_tree(self.child.id(), "-KILL");
        let _ = self.child.wait();
    }
}
