//! Real servers on loopback for the connector tests: OpenSSH (`sshd`),
//! PostgreSQL and MariaDB (`databases`, on Unix sockets),
//! vsftpd (`vsftpd`), a Garage cluster (`garage`), a TLS-terminating
//! stunnel (`tls_proxy`) and wsgidav (`webdav`), each started in the
//! foreground with its own temporary configuration and killed, with
//! everything it forked, on drop.
//! No system service or file is touched: where a server needs the test
//! user's password (or its PAM configuration), those exist only in the
//! server's private mount namespace.

pub mod databases;
pub mod ftp_servers;
pub mod garage;
pub mod sshd;
pub mod tls_proxy;
pub mod vsftpd;
pub mod webdav;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test user's password, inside the servers' namespaces only.
pub const PASSWORD: &str = "kast test password";

/// Runs `cmd` and panics with its stderr if it fails.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl(args: &[&str], dir: &Path) {
    run(Command::new("openssl").args(args).current_dir(dir));
}

/// A fresh test CA in `dir` (`ca.pem`, `ca.key`) and a server certificate
/// it signed for 127.0.0.1 and localhost (`server.pem`, `server.key`).
pub fn test_certificates(dir: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=kast test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        dir,
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
        dir,
    );
}

/// A loopback port free right now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The user the tests run as.
pub fn current_user() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string()
}

/// A copy of /etc/shadow in which `user`'s password is `password`, to be
/// mounted over the real one inside a server's namespace.
pub fn write_shadow(path: &Path, user: &str, password: &str) {
    let hash = String::from_utf8(
        Command::new("openssl")
            .args(["passwd", "-6", password])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    let shadow: String = shadow
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(':').collect();
            if fields.first() == Some(&user) && fields.len() > 2 {
                fields[1] = hash.trim();
            }
            fields.join(":") + "\n"
        })
        .collect();
    std::fs::write(path, shadow).unwrap();
}

/// Runs `setup` (shell, typically bind mounts) and then `exec`s `server`,
/// in a private mount namespace, with standard error to `log`; what the
/// setup mounts is seen by the server alone, never by the system.
pub fn spawn_in_namespace(setup: &str, server: &str, log: &Path) -> Child {
    Command::new("unshare")
        .args(["-m", "sh", "-c", &format!("{setup} && exec {server}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start {server} (scripts/setup installs it): {e}"))
}

/// Waits until something on `port` greets with `banner`.
pub fn wait_for_banner(port: u16, banner: &[u8], log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let mut got = vec![0u8; banner.len()];
            if s.read_exact(&mut got).is_ok() && got == banner {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server on port {port} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` (`-KILL`, `-STOP`, `-CONT`) to `pid` and all it forked.
pub fn signal_tree(pid: u32, signal: &str) {
    let mut pids = vec![pid];
    let mut i = 0;
    while i < pids.len() {
        pids.extend(children_of(pids[i]));
        i += 1;
    }
    for pid in pids {
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1.to_string();
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Percent-encodes a path for a URL.
pub fn encode(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
