//! The source role: a bucket (or a prefix of it) as a tree. `/` in keys
//! makes folders; each object is a file with its size, its modification
//! time (the `mtime` user metadata when present, else Last-Modified) and
//! its user metadata as `user.s3.NAME` extended attributes. Content is read
//! in ranged pieces, never a whole object at once.

use crate::client::Client;
use crate::{MTIME_HEADER, XATTR_PREFIX};
use kast_sdk::{Entry, EntryKind, Error, Listing, Metadata, Source};
use std::io::Read;
use std::rc::Rc;

/// Bytes asked for per ranged GET while a file is read.
const PIECE: u64 = 8 << 20;

pub struct S3Source {
    client: Rc<Client>,
    /// Whether to HEAD each object for its user metadata.
    with_metadata: bool,
}

impl S3Source {
    pub fn new(client: Rc<Client>, with_metadata: bool) -> Self {
        S3Source {
            client,
            with_metadata,
        }
    }

    /// The key of the object at `path`.
    fn key(&self, path: &[u8]) -> Result<String, Error> {
        let path = std::str::from_utf8(path)
            .map_err(|_| crate::client::invalid("S3 keys are UTF-8".into()))?;
        Ok(format!("{}{path}", self.client.prefix))
    }

    /// The key prefix of the folder at `path`.
    fn folder(&self, path: &[u8]) -> Result<String, Error> {
        Ok(match self.key(path)? {
            key if path.is_empty() => key,
            key => key + "/",
        })
    }
}

/// Nanoseconds since the epoch of an RFC 3339 time (S3's Last-Modified in
/// listings) or an HTTP date (in HEAD replies); 0 if unreadable.
fn parse_time(text: &str) -> i64 {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return t.as_nanosecond() as i64;
    }
    jiff::fmt::rfc2822::parse(text)
        .map(|z| z.timestamp().as_nanosecond() as i64)
        .unwrap_or(0)
}

/// `1700000000.25` (seconds, any fraction) as nanoseconds.
fn parse_seconds(text: &str) -> Option<i64> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let seconds: i64 = whole.parse().ok()?;
    let digits: String = fraction.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nanos: i64 = format!("{digits:0<9}").parse().ok()?;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

impl Source for S3Source {
    fn list_dir(&mut self, path: &[u8]) -> Result<Listing<Entry>, Error> {
        let folder = self.folder(path)?;
        let listing = self.client.list(&folder, true)?;
        let mut out = Vec::new();
        for sub in &listing.folders {
            let name = sub
                .strip_prefix(&folder)
                .unwrap_or("")
                .trim_end_matches('/');
            if name.is_empty() || name.contains('/') {
                continue;
            }
            out.push(Entry {
                name: name.as_bytes().to_vec(),
                kind: EntryKind::Dir,
                meta: Metadata {
                    mode: 0o040755,
                    ..Metadata::empty()
                },
                symlink_target: None,
            });
        }
        // Folder markers (`a/b/`) are folders, not files.
        let files: Vec<_> = listing
            .objects
            .iter()
            .filter(|o| {
                o.key
                    .strip_prefix(&folder)
                    .is_some_and(|n| !n.is_empty() && !n.contains('/'))
            })
            .collect();
        let heads = if self.with_metadata {
            let keys: Vec<String> = files.iter().map(|o| o.key.clone()).collect();
            Some(self.client.head_many(&keys)?)
        } else {
            None
        };
        for (i, object) in files.iter().enumerate() {
            let mut mtime_ns = parse_time(&object.last_modified);
            let mut size = object.size;
            let mut xattrs = Vec::new();
            if let Some(heads) = &heads {
                // Gone since the listing: not part of this backup.
                let Some(head) = &heads[i] else { continue };
                for (name, value) in &head.headers {
                    let Some(user) = name.strip_prefix("x-amz-meta-") else {
                        continue;
                    };
                    if name == MTIME_HEADER {
                        if let Some(ns) = parse_seconds(value) {
                            mtime_ns = ns;
                        }
                    } else {
                        xattrs.push((
                            format!("{XATTR_PREFIX}{user}").into_bytes(),
                            value.as_bytes().to_vec(),
                        ));
                    }
                }
                if let Some(length) = head.header("content-length").and_then(|l| l.parse().ok()) {
                    size = length;
                }
            }
            xattrs.sort();
            out.push(Entry {
                name: object.key.as_bytes()[folder.len()..].to_vec(),
                kind: EntryKind::File,
                meta: Metadata {
                    mode: 0o100644,
                    mtime_ns,
                    // Any new PUT changes Last-Modified: it stands in for
                    // ctime, so unchanged objects are not read again.
                    ctime_ns: parse_time(&object.last_modified),
                    size,
                    xattrs,
                    ..Metadata::empty()
                },
                symlink_target: None,
            });
        }
        Ok(kast_sdk::listing(out))
    }

    fn open_file(&mut self, path: &[u8]) -> Result<Box<dyn Read>, Error> {
        self.open_file_at(path, 0)
    }

    /// Every piece is a ranged GET: starting elsewhere costs nothing.
    fn open_file_at(&mut self, path: &[u8], offset: u64) -> Result<Box<dyn Read>, Error> {
        Ok(Box::new(ObjectReader {
            client: self.client.clone(),
            key: self.key(path)?,
            offset,
            piece: Vec::new(),
            at: 0,
            done: false,
        }))
    }
}

/// Reads an object front to back, one ranged GET per piece.
struct ObjectReader {
    client: Rc<Client>,
    key: String,
    offset: u64,
    piece: Vec<u8>,
    at: usize,
    done: bool,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.piece.len() {
            if self.done {
                return Ok(0);
            }
            let piece = self
                .client
                .get(&self.key, Some((self.offset, PIECE)))
                .map_err(|e| std::io::Error::other(e.message))?
                .unwrap_or_default();
            self.done = (piece.len() as u64) < PIECE;
            self.offset += piece.len() as u64;
            self.piece = piece;
            self.at = 0;
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_both_of_s3s_forms_and_rclones() {
        let listing = parse_time("2026-11-26T19:30:21.946Z");
        let head = parse_time("Thu, 26 Nov 2026 19:30:21 GMT");
        assert_eq!(listing - head, 946_000_000);
        assert_eq!(
            parse_seconds("1700000000.25"),
            Some(1_700_000_000_250_000_000)
        );
        assert_eq!(parse_seconds("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(parse_seconds("soon"), None);
    }
}
