//! Location URLs (`sftp://user@host:22/path?identity=…`), parsed one way
//! for everyone: the kast host parses a location with this module to decide
//! what the sandbox grants, and a connector parses the same text with it to
//! know where to go, so the two can never disagree on the host, the port or
//! the path. It needs no bindings: the host uses it with
//! `default-features = false`.
//!
//! The rules: `scheme://[user[:password]@]host[:port][/path][?k=v&…]`; the
//! scheme is case-insensitive; an IPv6 host is written in brackets; user,
//! password, path and options are percent-decoded (a `%` not followed by
//! two hex digits stays as it is); a missing path is `/`; a `#` is refused
//! (locations have no fragment, and dropping one would quietly change the
//! path: `fs:///home/me/#notes` must be written `%23notes`). Secrets (the password, options such as
//! `secret_access_key`) never appear in an error or in [`redact`]'s output.

use std::fmt;

/// A location URL taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Lowercase.
    pub scheme: String,
    /// Percent-decoded.
    pub user: Option<String>,
    /// Percent-decoded; never printed ([`redact`] hides it).
    pub password: Option<String>,
    /// Without brackets for IPv6; `None` when empty (`fs:///path`).
    pub host: Option<String>,
    /// `None` when the URL gives none: the connector picks its protocol's.
    pub port: Option<u16>,
    /// Percent-decoded; `/` when the URL has none.
    pub path: String,
    /// Whether the URL wrote a path at all (`ftp://host` did not).
    pub has_path: bool,
    /// The query's `key=value` pairs, percent-decoded, in order.
    pub options: Vec<(String, String)>,
}

/// Why a text is not a location URL; it quotes the URL with its secrets
/// redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError {
    /// The URL, redacted.
    pub url: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.why)
    }
}

impl std::error::Error for UrlError {}

impl Url {
    /// Parses `text`, which must have a `scheme://`.
    pub fn parse(text: &str) -> Result<Url, UrlError> {
        let bad = |why: &str| UrlError {
            url: redact(text),
            why: why.to_string(),
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("not a URL (scheme://…)"))?;
        if rest.contains('#') {
            return Err(bad("write a '#' as %23 (a location has no #fragment)"));
        }
        let scheme = scheme.to_ascii_lowercase();
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(bad("the scheme must be letters, digits, '+', '-' or '.'"));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((name, pass)) => (Some(percent_decode(name)), Some(percent_decode(pass))),
                None => (Some(percent_decode(u)), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("unclosed '[' in the host"))?;
                let port = match after {
                    "" => None,
                    _ => Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("text after the ']' of the host"))?,
                    ),
                };
                (h, port)
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad("bad port")))
            .transpose()?;
        let options = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Ok(Url {
            scheme,
            user,
            password: password.filter(|p| !p.is_empty()),
            host: (!host.is_empty()).then(|| host.to_string()),
            port,
            path: path.map_or_else(|| "/".to_string(), percent_decode),
            has_path: path.is_some(),
            options,
        })
    }

    /// The value of option `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `host[:port]` as a URL writes it (IPv6 in brackets), for building
    /// another URL to the same server.
    pub fn authority(&self) -> String {
        let host = self.host.as_deref().unwrap_or("");
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
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
                Some((key, _)) if is_secret_option(&percent_decode(key)) => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it
/// is, and bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(text: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(text)).into_owned()
}

/// Decodes `%XX` escapes into bytes, for names that need not be UTF-8.
pub fn percent_decode_bytes(text: &str) -> Vec<u8> {
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
    out
}

/// Percent-encodes a URL path (or query value), keeping `/` and the
/// unreserved characters: the one encoder kast's URLs use.
pub fn percent_encode_path(path: impl AsRef<[u8]>) -> String {
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
    fn every_part_is_found_and_decoded() {
        let u = Url::parse(
            "SFTP://bob%40corp:s%3Acret@example.org:2222/srv/my%20store?identity=/k&x=a%26b",
        )
        .unwrap();
        assert_eq!(u.scheme, "sftp");
        assert_eq!(u.user.as_deref(), Some("bob@corp"));
        assert_eq!(u.password.as_deref(), Some("s:cret"));
        assert_eq!(u.host.as_deref(), Some("example.org"));
        assert_eq!(u.port, Some(2222));
        assert_eq!(u.path, "/srv/my store");
        assert_eq!(u.option("identity"), Some("/k"));
        assert_eq!(u.option("x"), Some("a&b"));
        assert_eq!(u.authority(), "example.org:2222");
    }

    #[test]
    fn hosts_ports_and_paths_have_defaults() {
        let v6 = Url::parse("ftp://[::1]:21/x").unwrap();
        assert_eq!((v6.host.as_deref(), v6.port), (Some("::1"), Some(21)));
        assert_eq!(v6.authority(), "[::1]:21");
        let bare = Url::parse("ftps://files").unwrap();
        assert_eq!((bare.path.as_str(), bare.has_path), ("/", false));
        assert_eq!((bare.user, bare.password, bare.port), (None, None, None));
        let fs = Url::parse("fs:///srv/a").unwrap();
        assert_eq!((fs.host, fs.path.as_str()), (None, "/srv/a"));
        let anon = Url::parse("ftp://me:@h/").unwrap();
        assert_eq!((anon.user.as_deref(), anon.password), (Some("me"), None));
    }

    #[test]
    fn bad_urls_are_clear_and_keep_secrets() {
        for (text, why) in [
            ("/plain/path", "not a URL"),
            ("s c://h/", "the scheme"),
            ("ftp://me:hunter2@h:bad/x", "bad port"),
            ("ftp://[::1/x", "unclosed"),
            ("ftp://[::1]x/", "after the ']'"),
            ("ftp://h:70000/", "bad port"),
            ("fs:///home/me/#notes", "%23"),
        ] {
            let e = Url::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn escapes_that_are_not_escapes_stay() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode_bytes("%FF"), vec![0xff]);
        assert_eq!(percent_encode_path(b"/a b\xff"), "/a%20b%FF");
    }

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact("ftp://me:hunter2@files/x?Password=p&session_token=t&password_file=/p&y=1"),
            "ftp://me:***@files/x?Password=***&session_token=***&password_file=/p&y=1"
        );
        assert_eq!(redact("/plain/path"), "/plain/path");
        assert_eq!(redact("sftp://u:a@h/p"), redact("sftp://u:b@h/p"));
    }

    #[test]
    fn no_text_makes_parsing_panic() {
        // Every short string over a small alphabet of URL syntax.
        let alphabet = [
            "a", ":", "@", "/", "[", "]", "%", "é", "?", "=", "&", "#", "1",
        ];
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            texts = texts
                .iter()
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            for t in &texts {
                let _ = Url::parse(&format!("x://{t}"));
                let _ = redact(&format!("x://{t}"));
                let _ = percent_decode(t);
            }
        }
    }
}
