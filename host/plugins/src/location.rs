//! Locations: a URL (`fs:///srv/store`, `sftp://user@host:22/path?identity=…`)
//! or a plain local path, split into what the sandbox and the plugin need.

use crate::error::PluginError;
use std::path::PathBuf;

/// A parsed location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The URL as given (a plain path becomes `fs://` + its absolute path):
    /// what the plugin gets, secrets and all.
    pub url: String,
    /// The URL with every secret in it as `***` ([`redact`]): what kast
    /// prints and records (a snapshot's source), so the same location with
    /// another password still names the same source.
    pub shown: String,
    pub scheme: String,
    pub user: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Percent-decoded path.
    pub path: String,
    /// The query string's `key=value` pairs, percent-decoded.
    pub options: Vec<(String, String)>,
}

impl Location {
    /// Parses a URL, or takes anything without `scheme://` as a local path.
    pub fn parse(text: &str) -> Result<Location, PluginError> {
        let bad = |why: &str| PluginError::BadLocation {
            location: redact(text),
            why: why.to_string(),
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            let path = std::path::absolute(text).map_err(|e| bad(&e.to_string()))?;
            let path = path
                .to_str()
                .ok_or_else(|| bad("the path is not UTF-8"))?
                .to_string();
            let url = format!("fs://{}", encode_path(&path));
            return Ok(Location {
                shown: url.clone(),
                url,
                scheme: "fs".into(),
                user: None,
                host: None,
                port: None,
                path,
                options: Vec::new(),
            });
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(bad("the scheme must be letters, digits, '+', '-' or '.'"));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            // `fs://` alone must not quietly mean the whole machine.
            None if scheme == "fs" => {
                return Err(bad("a path is missing: fs:///path/to/folder"));
            }
            None => (rest, "/"),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(decode(u)), h),
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in the host"))?;
            let port = after
                .strip_prefix(':')
                .map(|p| p.parse::<u16>())
                .transpose()
                .map_err(|_| bad("bad port"))?;
            (Some(h.to_string()), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    Some(h.to_string()),
                    Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
                ),
                None => (Some(hostport.to_string()), None),
            }
        };
        let host = host.filter(|h| !h.is_empty());
        let mut options = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            options.push((decode(k), decode(v)));
        }
        Ok(Location {
            url: text.to_string(),
            shown: redact(text),
            scheme,
            user,
            host,
            port,
            path: decode(path),
            options,
        })
    }

    /// The local path of an `fs` location.
    pub fn local_path(&self) -> PathBuf {
        PathBuf::from(&self.path)
    }

    /// The secret values a plugin could quote: the password of the user
    /// part (as written and decoded), and the values of secret options
    /// among `options` (those the plugin gets, files already read).
    pub fn secrets(&self, options: &[(String, String)]) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((_, rest)) = self.url.split_once("://")
            && let Some((userinfo, _)) =
                rest.split(['/', '?']).next().unwrap_or("").rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            out.push(password.to_string());
            out.push(decode(password));
        }
        out.extend(
            options
                .iter()
                .filter(|(k, _)| is_secret_option(k))
                .map(|(_, v)| v.trim().to_string()),
        );
        out.retain(|s| !s.is_empty());
        out.sort();
        out.dedup();
        out
    }

    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether a query option holds a secret: never printed or recorded. A
/// `*_file` option names a file the host reads, which is no secret itself.
pub fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !key.ends_with("_file")
        && ["password", "passwd", "secret", "token", "credential"]
            .iter()
            .any(|word| key.contains(word))
}

/// `text` with the password of its user part and the values of its secret
/// options ([`is_secret_option`]) replaced by `***`, as restic shows a
/// repository URL. Anything that is not a URL is returned as it is.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let (before, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = before.split_at(before.find('/').unwrap_or(before.len()));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_option(&decode(key)) => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `text` with each of `secrets` replaced by `***`.
pub fn scrub(mut text: String, secrets: &[String]) -> String {
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

/// Percent-decodes; a `%` not followed by two hex digits stays as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some((Some(high), Some(low))) = bytes
                .get(i + 1)
                .zip(bytes.get(i + 2))
                .map(|(&h, &l)| (hex(h), hex(l)))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a URL path (or query value), keeping `/` and the
/// unreserved characters; the one encoder kast's URLs use.
pub fn encode_path(path: impl AsRef<[u8]>) -> String {
    let path = path.as_ref();
    let mut out = String::with_capacity(path.len());
    for &b in path {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_parse() {
        let l = Location::parse(
            "sftp://root@127.0.0.1:2222/srv/store?identity=/root/.ssh/id&known_hosts=/k",
        )
        .unwrap();
        assert_eq!(l.scheme, "sftp");
        assert_eq!(l.user.as_deref(), Some("root"));
        assert_eq!(l.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(l.port, Some(2222));
        assert_eq!(l.path, "/srv/store");
        assert_eq!(l.option("identity"), Some("/root/.ssh/id"));
        let f = Location::parse("fs:///srv/my%20store").unwrap();
        assert_eq!(
            (f.scheme.as_str(), f.path.as_str(), f.host.clone()),
            ("fs", "/srv/my store", None)
        );
        let p = Location::parse("/tmp/a b").unwrap();
        assert_eq!(p.scheme, "fs");
        assert_eq!(p.path, "/tmp/a b");
        assert_eq!(Location::parse(&p.url).unwrap().path, "/tmp/a b");
        let v6 = Location::parse("ftp://[::1]:21/x").unwrap();
        assert_eq!((v6.host.as_deref(), v6.port), (Some("::1"), Some(21)));
        assert!(Location::parse("ftp://h:notaport/x").is_err());
        let e = Location::parse("fs://").unwrap_err().to_string();
        assert!(e.contains("a path is missing"), "{e}");
        assert!(Location::parse("sftp://127.0.0.1:1/%aé").is_ok());
    }

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let l = Location::parse(
            "s3+http://h:3900/b/?region=garage&secret_access_key=SK&access_key_id=AK&password_file=/p",
        )
        .unwrap();
        assert_eq!(
            l.shown,
            "s3+http://h:3900/b/?region=garage&secret_access_key=***&access_key_id=AK&password_file=/p"
        );
        assert!(l.url.contains("SK"), "the plugin still gets it");
        assert_eq!(
            redact("ftp://me:hunter2@files/x?Password=p&session_token=t"),
            "ftp://me:***@files/x?Password=***&session_token=***"
        );
        assert_eq!(redact("/plain/path"), "/plain/path");
        // Another password: the same recorded source.
        assert_eq!(redact("sftp://u:a@h/p"), redact("sftp://u:b@h/p"));
        let err = Location::parse("ftp://me:hunter2@h:bad/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10_000))]
        #[test]
        fn no_text_makes_parsing_or_redacting_panic(text in "\\PC*") {
            let _ = Location::parse(&text);
            let _ = redact(&text);
        }

        #[test]
        fn url_shaped_text_never_panics(
            scheme in "[a-z+.-]{0,6}",
            user in "[^/?#]{0,8}",
            host in "[^/?]{0,12}",
            path in "[^?]{0,12}",
            query in ".{0,20}",
        ) {
            let text = format!("{scheme}://{user}@{host}/{path}?{query}");
            if let Ok(l) = Location::parse(&text) {
                proptest::prop_assert!(!l.shown.is_empty());
            }
            let _ = redact(&text);
        }
    }
}
