//! A real WebDAV server (wsgidav, from PyPI) on loopback, sharing one
//! folder to one user with HTTP Basic authentication.

use super::{free_port, signal_tree, wait_for_banner};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running wsgidav; stopped on drop.
pub struct WebDav {
    /// Its config.
    pub dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
    /// The folder shared as `/`.
    pub root: PathBuf,
    child: Child,
}

/// The one user it knows.
pub const USER: &str = "alice";
/// That user's password.
pub const PASSWORD: &str = "wonder-land";

impl WebDav {
    /// Shares `root` as `/` on a free port.
    pub fn start(root: &Path) -> WebDav {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = serde_json::json!({
            "host": "127.0.0.1",
            "port": port,
            "provider_mapping": { "/": root },
            "simple_dc": { "user_mapping": { "*": { USER: { "password": PASSWORD } } } },
            "http_authenticator": {
                "accept_basic": true,
                "accept_digest": false,
                "default_to_digest": false,
                "trusted_auth_header": null,
            },
            "verbose": 1,
        });
        let config_path = dir.path().join("wsgidav.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = dir.path().join("log");
        let child = Command::new("wsgidav")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
            .spawn()
            .expect("start wsgidav (scripts/setup installs it: pip install wsgidav cheroot)");
        wait_for_banner(port, b"", &log);
        WebDav {
            dir,
            port,
            root: root.to_path_buf(),
            child,
        }
    }

    /// The `dav://` location of `path` on this server, with credentials.
    pub fn location(&self, path: &str) -> String {
        format!(
            "dav://127.0.0.1:{}/{path}?user={USER}&password={}",
            self.port, PASSWORD
        )
    }
}

impl Drop for WebDav {
    fn drop(&mut self) {
        signal_tree(self.child.id(), "-KILL");
        let _ = self.child.wait();
    }
}
