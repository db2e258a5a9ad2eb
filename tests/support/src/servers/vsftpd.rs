//! A real vsftpd on a loopback port, for the FTP tests: its own config, a
//! test CA and a server certificate for FTPS, passive ports of its own, and
//! the test user logging in with a password that exists only in the
//! server's mount namespace (a copy of /etc/shadow and a PAM service file
//! mounted over the real ones there). Anonymous logins see `anon/`,
//! read-only.

use super::{
    current_user, encode, free_port, signal_tree, spawn_in_namespace, test_certificates,
    wait_for_banner, write_shadow,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use super::PASSWORD;

/// A running vsftpd on loopback; stopped on drop.
pub struct Vsftpd {
    /// Its config and password file.
    pub dir: tempfile::TempDir,
    /// The control port.
    pub port: u16,
    /// The user to log in as.
    pub user: String,
    /// The passive data ports the server uses.
    pub data_ports: (u16, u16),
    child: Option<Child>,
    extra: Vec<String>,
}

impl Vsftpd {
    /// Starts one with the default config.
    pub fn start() -> Vsftpd {
        Vsftpd::start_with(&[])
    }

    /// A server with extra `vsftpd.conf` lines (they override the defaults).
    pub fn start_with(extra: &[&str]) -> Vsftpd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["anon", "empty", "pam.d"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("anon/welcome.txt"), b"hello, anonymous\n").unwrap();
        test_certificates(d);
        let low = 20000 + (free_port() % 20000);
        let mut server = Vsftpd {
            port: free_port(),
            dir,
            user: current_user(),
            data_ports: (low, low + 50),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.launch();
        server
    }

    /// A path inside the server's temporary folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn launch(&mut self) {
        let d = self.dir.path().to_path_buf();
        let mut config = format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
             background=NO\nlocal_enable=YES\nwrite_enable=YES\nlocal_umask=022\n\
             anonymous_enable=YES\nanon_root={d}/anon\nno_anon_password=YES\n\
             pam_service_name=kast-test-ftp\nseccomp_sandbox=NO\nisolate=NO\n\
             isolate_network=NO\nsecure_chroot_dir={d}/empty\npasv_enable=YES\n\
             pasv_min_port={low}\npasv_max_port={high}\npasv_address=127.0.0.1\n\
             xferlog_enable=NO\nvsftpd_log_file={d}/vsftpd.log\nuse_localtime=NO\n\
             mdtm_write=YES\nchmod_enable=YES\nmax_per_ip=0\nmax_clients=0\n\
             ssl_enable=YES\nallow_anon_ssl=YES\nforce_local_logins_ssl=NO\n\
             force_local_data_ssl=NO\nrsa_cert_file={d}/server.pem\n\
             rsa_private_key_file={d}/server.key\nrequire_ssl_reuse=NO\n\
             ssl_ciphers=HIGH\n",
            port = self.port,
            d = d.display(),
            low = self.data_ports.0,
            high = self.data_ports.1,
        );
        for line in &self.extra {
            let key = line.split('=').next().unwrap_or("");
            config = config
                .lines()
                .filter(|l| !l.starts_with(&format!("{key}=")))
                .map(|l| format!("{l}\n"))
                .collect();
            config.push_str(&format!("{line}\n"));
        }
        std::fs::write(d.join("vsftpd.conf"), config).unwrap();
        std::fs::write(
            d.join("pam.d/kast-test-ftp"),
            "auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_permit.so\n",
        )
        .unwrap();
        write_shadow(&d.join("shadow"), &self.user, PASSWORD);
        let child = spawn_in_namespace(
            &format!(
                "mount --bind {d}/shadow /etc/shadow && mount --bind {d}/pam.d /etc/pam.d",
                d = d.display()
            ),
            &format!("/usr/sbin/vsftpd {}/vsftpd.conf", d.display()),
            &d.join("stderr.log"),
        );
        self.child = Some(child);
        wait_for_banner(self.port, b"220", &d.join("stderr.log"));
    }

    /// `ftp://user:password@127.0.0.1:port/path` (the password from a file,
    /// as a user would give it), granting only this server's data ports.
    pub fn url(&self, path: &Path) -> String {
        let password = self.path("password");
        if !password.exists() {
            std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
        }
        format!(
            "{}?password_file={}&data_ports={}-{}",
            self.bare_url("ftp", path),
            password.display(),
            self.data_ports.0,
            self.data_ports.1
        )
    }

    /// `scheme://user@127.0.0.1:port/path`, with no options.
    pub fn bare_url(&self, scheme: &str, path: &Path) -> String {
        format!(
            "{scheme}://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            encode(path)
        )
    }

    /// SHA256 of the server certificate, as `pin=` takes it.
    pub fn pin(&self) -> String {
        let der = Command::new("openssl")
            .args(["x509", "-outform", "der", "-in"])
            .arg(self.path("server.pem"))
            .output()
            .unwrap()
            .stdout;
        let digest = Command::new("openssl")
            .args(["dgst", "-sha256", "-binary"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&der)?;
                child.wait_with_output()
            })
            .unwrap()
            .stdout;
        let b64 = Command::new("openssl")
            .args(["base64", "-A"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&digest)?;
                child.wait_with_output()
            })
            .unwrap()
            .stdout;
        format!(
            "SHA256:{}",
            String::from_utf8(b64).unwrap().trim().trim_end_matches('=')
        )
    }

    /// Kills the server and every session it forked, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_tree(child.id(), "-KILL");
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for Vsftpd {
    fn drop(&mut self) {
        self.kill();
    }
}
