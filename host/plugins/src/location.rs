//! Locations: a URL (`fs:///srv/store`, `sftp://user@host:22/path?identity=…`)
//! or a plain local path, split into what the sandbox and the plugin need.

use crate::error::PluginError;
use kast_sdk::url::{Url, percent_decode};
pub use kast_sdk::url::{is_secret_option, percent_decode_bytes, percent_encode_path, redact};
use std::path::PathBuf;

/// A location as the host parses it, to decide the sandbox's grants and
/// what to print. The plugin never sees this type: it is handed the
/// contract's own `location` record (`bindings::types::Location`: the URL,
/// the options with `*_file` secrets read in, the resolved address), which
/// the host builds from this one and always names with its `types::` path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The URL as given (a plain path becomes `fs://` + its absolute path):
    /// what the plugin gets, secrets and all.
    pub url: String,
    /// The URL with every secret in it as `***` ([`redact`]): what kast
    /// prints and records (a snapshot's source), so the same location with
    /// another password still names the same source.
    pub shown: String,
    /// The scheme before `://`, lowercase: picks the plugin.
    pub scheme: String,
    /// The user name, percent-decoded.
    pub user: Option<String>,
    /// The host, percent-decoded (IPv6 without brackets): what the network grant is made for.
    pub host: Option<String>,
    /// The port, when the URL gives one.
    pub port: Option<u16>,
    /// Percent-decoded path.
    pub path: String,
    /// The query string's `key=value` pairs, percent-decoded.
    pub options: Vec<(String, String)>,
}

impl Location {
    /// Parses a URL (with the SDK's parser, the one every connector uses),
    /// or takes anything without `scheme://` as a local path.
    pub fn parse(text: &str) -> Result<Location, PluginError> {
        let bad = |why: &str| PluginError::BadLocation {
            location: redact(text),
            why: why.to_string(),
        };
        if !text.contains("://") {
            let path = std::path::absolute(text).map_err(|e| bad(&e.to_string()))?;
            let path = path
                .to_str()
                .ok_or_else(|| bad("the path is not UTF-8"))?
                .to_string();
            let url = format!("fs://{}", percent_encode_path(&path));
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
        }
        let url = Url::parse(text).map_err(|e| bad(&e.why))?;
        // `fs://` alone must not quietly mean the whole machine.
        if url.scheme == "fs" && !url.has_path {
            return Err(bad("a path is missing: fs:///path/to/folder"));
        }
        Ok(Location {
            url: text.to_string(),
            shown: redact(text),
            scheme: url.scheme,
            user: url.user,
            host: url.host,
            port: url.port,
            path: url.path,
            options: url.options,
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
            out.push(percent_decode(password));
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

    /// The value of query option `key` (the first, if given twice).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
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
