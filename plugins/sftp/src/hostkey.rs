//! Is this really the server the user meant? The host key the server shows
//! is checked against the user's `known_hosts` (as `ssh` does, hashed
//! entries and `[host]:port` included) or against a pinned fingerprint.
//! An unknown or changed key is refused with a message saying how to check
//! and trust it; nothing is ever accepted silently.

use hmac::{Hmac, Mac};
use ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use ssh_key::{Algorithm, HashAlg, PublicKey};

/// How the server's key is judged.
pub enum HostKeyPolicy {
    /// The text of a known_hosts file, and the names the server goes by.
    KnownHosts { text: String, names: Vec<String> },
    /// `SHA256:…` as `ssh-keygen -lf` prints it.
    Fingerprint(String),
    /// Tests only: any key is taken.
    AcceptAny,
}

impl HostKeyPolicy {
    /// The names to look up for `host` on `port`: `host` on 22, else
    /// `[host]:port`; the address is looked up too, as `ssh` does.
    pub fn names(host: &str, ip: Option<&str>, port: u16) -> Vec<String> {
        let form = |h: &str| {
            if port == 22 {
                h.to_string()
            } else {
                format!("[{h}]:{port}")
            }
        };
        let mut names = vec![form(host)];
        if let Some(ip) = ip.filter(|ip| *ip != host) {
            names.push(form(ip));
        }
        names
    }

    /// Host key algorithms to offer, those already known for this host first
    /// so a known key is the one the server shows.
    pub fn preferred_algorithms(&self) -> Vec<&'static str> {
        let mut all = vec![
            "ssh-ed25519",
            "ecdsa-sha2-nistp256",
            "rsa-sha2-512",
            "rsa-sha2-256",
        ];
        if let HostKeyPolicy::KnownHosts { text, names } = self {
            let known: Vec<Algorithm> = entries_for(text, names)
                .filter(|e| e.marker().is_none())
                .map(|e| e.public_key().algorithm())
                .collect();
            let is_known = |alg: &&str| {
                known.iter().any(|k| match k {
                    Algorithm::Rsa { .. } => alg.starts_with("rsa-"),
                    other => other.as_str() == *alg,
                })
            };
            all.sort_by_key(|alg| !is_known(alg));
        }
        all
    }

    /// Ok when the key is trusted; otherwise what the user should do.
    pub fn check(&self, key: &PublicKey) -> Result<(), String> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        match self {
            HostKeyPolicy::AcceptAny => Ok(()),
            HostKeyPolicy::Fingerprint(pinned) => {
                if pinned.trim() == fingerprint {
                    Ok(())
                } else {
                    Err(format!(
                        "the server's host key is {fingerprint}, not the pinned {pinned}: \
                         someone may be impersonating the server, or its key changed"
                    ))
                }
            }
            HostKeyPolicy::KnownHosts { text, names } => {
                let entries: Vec<Entry> = entries_for(text, names).collect();
                let same = |e: &Entry| e.public_key().key_data() == key.key_data();
                if entries
                    .iter()
                    .any(|e| same(e) && e.marker() == Some(&Marker::Revoked))
                {
                    return Err(format!(
                        "the server's host key {fingerprint} is marked @revoked in known_hosts"
                    ));
                }
                let plain = || entries.iter().filter(|e| e.marker().is_none());
                if plain().any(same) {
                    return Ok(());
                }
                let same_type_differs =
                    plain().any(|e| e.public_key().algorithm() == key.algorithm());
                if same_type_differs {
                    Err(format!(
                        "HOST KEY CHANGED for {}: the server shows {fingerprint}, which is not \
                         the key in known_hosts. Someone may be impersonating the server; if \
                         the change is expected, remove the old entry (ssh-keygen -R '{}')",
                        names[0], names[0]
                    ))
                } else {
                    Err(format!(
                        "unknown host {}: its key {fingerprint} is not in known_hosts. Check \
                         the fingerprint with the server's owner, then add it (ssh-keyscan \
                         {} >> ~/.ssh/known_hosts) or pass fingerprint={fingerprint}",
                        names[0],
                        scan_args(&names[0])
                    ))
                }
            }
        }
    }
}

fn scan_args(name: &str) -> String {
    match name.strip_prefix('[').and_then(|n| n.split_once("]:")) {
        Some((host, port)) => format!("-p {port} {host}"),
        None => name.to_string(),
    }
}

/// Entries of `text` that name one of `names`; lines kast cannot parse
/// (key types it does not know) are skipped, as `ssh` skips them.
fn entries_for<'a>(text: &'a str, names: &'a [String]) -> impl Iterator<Item = Entry> + 'a {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.parse::<Entry>().ok())
        .filter(move |e| names.iter().any(|n| matches(e.host_patterns(), n)))
}

/// Whether `name` matches a known_hosts host field: hashed names by
/// HMAC-SHA1, patterns by `*`/`?` globs with `!` negation.
fn matches(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => {
            let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                return false;
            };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        HostPatterns::Patterns(list) => {
            let mut hit = false;
            for pattern in list {
                if let Some(negated) = pattern.strip_prefix('!') {
                    if glob(negated.as_bytes(), name.as_bytes()) {
                        return false;
                    }
                } else if glob(pattern.as_bytes(), name.as_bytes()) {
                    hit = true;
                }
            }
            hit
        }
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p.eq_ignore_ascii_case(t) => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMZXqEfC8r174bjiA/HdJQm7Zz3Y88sDTjIrUYBs1Oig";
    const OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA8e7Syh99tqpQ3IocHG8ZdqqmiSyhdj2A4EpmlWU0NA";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn policy(text: String, port: u16) -> HostKeyPolicy {
        HostKeyPolicy::KnownHosts {
            text,
            names: HostKeyPolicy::names("example.org", Some("10.0.0.1"), port),
        }
    }

    #[test]
    fn known_unknown_and_changed_keys() {
        let known = policy(format!("example.org {KEY}\n"), 22);
        assert!(known.check(&key(KEY)).is_ok());
        let changed = known.check(&key(OTHER)).unwrap_err();
        assert!(changed.contains("HOST KEY CHANGED"), "{changed}");
        let other_port = policy(format!("example.org {KEY}\n"), 2222);
        let unknown = other_port.check(&key(KEY)).unwrap_err();
        assert!(
            unknown.contains("unknown host [example.org]:2222"),
            "{unknown}"
        );
        assert!(
            unknown.contains("ssh-keyscan -p 2222 example.org"),
            "{unknown}"
        );
        let bracketed = policy(format!("[example.org]:2222,other {KEY}\n"), 2222);
        assert!(bracketed.check(&key(KEY)).is_ok());
        let by_ip = policy(format!("10.0.0.1 {KEY}\n"), 22);
        assert!(by_ip.check(&key(KEY)).is_ok());
        let revoked = policy(format!("example.org {KEY}\n@revoked * {KEY}\n"), 22);
        assert!(revoked.check(&key(KEY)).unwrap_err().contains("revoked"));
        let negated = policy(format!("*.org,!example.org {KEY}\n"), 22);
        assert!(negated.check(&key(KEY)).is_err());
        let globbed = policy(format!("# comment\ngarbage line\n*.ORG {KEY}\n"), 22);
        assert!(globbed.check(&key(KEY)).is_ok());
    }

    #[test]
    fn hashed_names_match() {
        let salt = [7u8; 20];
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"example.org");
        let hash = mac.finalize().into_bytes();
        let b64 = base64::engine::general_purpose::STANDARD;
        let line = format!("|1|{}|{} {KEY}\n", b64.encode(salt), b64.encode(hash));
        assert!(policy(line, 22).check(&key(KEY)).is_ok());
    }

    #[test]
    fn fingerprints_are_compared_exactly() {
        let k = key(KEY);
        let printed = k.fingerprint(HashAlg::Sha256).to_string();
        assert!(HostKeyPolicy::Fingerprint(printed).check(&k).is_ok());
        assert!(
            HostKeyPolicy::Fingerprint("SHA256:nope".into())
                .check(&k)
                .is_err()
        );
    }

    #[test]
    fn known_key_types_are_offered_first() {
        let rsa_only = policy(
            "example.org ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDP\n".to_string(),
            22,
        );
        // An unparsable key is skipped: the default order stays.
        assert_eq!(rsa_only.preferred_algorithms()[0], "ssh-ed25519");
    }
}
