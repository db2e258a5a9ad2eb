//! The options a plugin receives. A plugin has no filesystem of its own,
//! so the files a location names are read here, by the host, and handed
//! over as text:
//!
//! - `NAME_file=PATH` becomes `NAME=<first line of PATH>`: secrets such as
//!   `password_file` stay off the command line.
//! - `identity=PATH`, `known_hosts=PATH` and `ca=PATH` become the whole
//!   file's text.
//! - A path starting `~/` is under the user's home, as in a shell.
//! - For `sftp://`, as `ssh` does: with no `known_hosts`, `fingerprint` or
//!   `insecure_accept_any_host_key`, the user's `~/.ssh/known_hosts`; with
//!   no `identity` and no password, the user's `~/.ssh/id_ed25519`,
//!   `id_ecdsa` and `id_rsa` (as `default_identity`, which the plugin skips
//!   when it cannot use one, where a named identity that fails is an error).
//! - For `ftps://` with neither `ca` nor `pin`: the system's CA bundle.
//! - For `http://` and `https://` (a store `kast serve` serves): `client=`,
//!   a random id the same for every instance in this process, with which
//!   the server ties each lock to the client that made it.
//! - For `s3://` and `s3+http://` with no key options: kast's own
//!   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_DEFAULT_REGION`
//!   (the plugin itself never sees the environment).

use crate::error::PluginError;
use crate::location::Location;
use std::path::PathBuf;

/// Options whose value is a path whose whole text the plugin gets.
const FILE_OPTIONS: &[&str] = &["identity", "known_hosts", "ca"];

/// Where Debian, Ubuntu, Arch and Alpine keep the trusted CA certificates.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A random id for this process, made once: every instance of a location
/// gets the same, so any of them may remove a lock another made.
fn process_client_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // Two independently seeded std hashers: 128 bits from the system's
        // random source, no extra crate.
        let word = || {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.finish()
        };
        format!("{:016x}{:016x}", word(), word())
    })
}

/// The options to hand the plugin for `location`.
pub fn plugin_options(location: &Location) -> Result<Vec<(String, String)>, PluginError> {
    let read = |key: &str, path: &str| {
        let path = expand_home(path);
        std::fs::read_to_string(&path).map_err(|e| PluginError::BadLocation {
            location: location.shown.clone(),
            why: format!("cannot read {key}={}: {e}", path.display()),
        })
    };
    let mut out = Vec::with_capacity(location.options.len());
    for (key, value) in &location.options {
        let option = match key.strip_suffix("_file") {
            Some(name) if !name.is_empty() => (
                name.to_string(),
                read(key, value)?.lines().next().unwrap_or("").to_string(),
            ),
            _ if FILE_OPTIONS.contains(&key.as_str()) => (key.clone(), read(key, value)?),
            _ => (key.clone(), value.clone()),
        };
        out.push(option);
    }
    if location.scheme == "sftp" {
        add_ssh_defaults(&mut out, home_ssh_dir());
    }
    if matches!(location.scheme.as_str(), "http" | "https") {
        out.push(("client".into(), process_client_id().to_string()));
    }
    if matches!(location.scheme.as_str(), "s3" | "s3+http")
        && !out.iter().any(|(k, _)| k == "access_key_id")
    {
        for (var, option) in [
            ("AWS_ACCESS_KEY_ID", "access_key_id"),
            ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
            ("AWS_DEFAULT_REGION", "region"),
        ] {
            if let Ok(value) = std::env::var(var)
                && !out.iter().any(|(k, _)| k == option)
            {
                out.push((option.into(), value));
            }
        }
    }
    if location.scheme == "ftps"
        && !out.iter().any(|(k, _)| k == "ca" || k == "pin")
        && let Ok(bundle) = std::fs::read_to_string(SYSTEM_CA_BUNDLE)
    {
        out.push(("ca".into(), bundle));
    }
    Ok(out)
}

/// `~/x` is under the user's home, as a shell would have it.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn home_ssh_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".ssh"))
}

fn add_ssh_defaults(options: &mut Vec<(String, String)>, ssh_dir: Option<PathBuf>) {
    let has = |options: &[(String, String)], keys: &[&str]| {
        options.iter().any(|(k, _)| keys.contains(&k.as_str()))
    };
    let Some(dir) = ssh_dir else {
        return;
    };
    if !has(
        options,
        &["known_hosts", "fingerprint", "insecure_accept_any_host_key"],
    ) {
        let text = std::fs::read_to_string(dir.join("known_hosts")).unwrap_or_default();
        options.push(("known_hosts".into(), text));
    }
    if !has(options, &["identity", "password"]) {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
                options.push(("default_identity".into(), text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_read_by_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "hunter2\nignored\n").unwrap();
        let url = format!(
            "ftp://u@127.0.0.1/x?password_file={}&mode=passive",
            secret.display()
        );
        let options = plugin_options(&Location::parse(&url).unwrap()).unwrap();
        assert_eq!(
            options,
            vec![
                ("password".to_string(), "hunter2".to_string()),
                ("mode".to_string(), "passive".to_string())
            ]
        );
        let missing = Location::parse("ftp://h/x?password_file=/nonexistent/pw").unwrap();
        assert!(
            plugin_options(&missing)
                .unwrap_err()
                .to_string()
                .contains("password_file")
        );
    }

    #[test]
    fn ssh_files_are_read_whole_and_defaulted_like_ssh() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "line one\nline two\n").unwrap();
        let url = format!("sftp://u@h/x?identity={}", key.display());
        let mut options = plugin_options(&Location::parse(&url).unwrap()).unwrap();
        assert_eq!(
            options[0],
            ("identity".into(), "line one\nline two\n".into())
        );

        let ssh = dir.path().join(".ssh");
        std::fs::create_dir(&ssh).unwrap();
        std::fs::write(ssh.join("known_hosts"), "h ssh-ed25519 AAAA\n").unwrap();
        std::fs::write(ssh.join("id_rsa"), "rsa key").unwrap();
        options.clear();
        add_ssh_defaults(&mut options, Some(ssh.clone()));
        assert_eq!(
            options,
            vec![
                ("known_hosts".into(), "h ssh-ed25519 AAAA\n".into()),
                ("default_identity".into(), "rsa key".into())
            ]
        );
        let mut pinned = vec![
            ("fingerprint".to_string(), "SHA256:x".to_string()),
            ("password".to_string(), "pw".to_string()),
        ];
        add_ssh_defaults(&mut pinned, Some(ssh));
        assert_eq!(pinned.len(), 2, "nothing added when the user chose");
    }
}
