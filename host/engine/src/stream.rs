//! A backup of one stream: standard input, or a command's output (a
//! database dump). The stream becomes the only file of a snapshot whose
//! source is `stdin:NAME`, so each NAME has its own `latest` and retention,
//! whichever way its bytes arrived. It is read once, chunked as it comes,
//! and never held whole in memory or on disk.

use crate::source::{Source, SourceEntry, UNKNOWN_SIZE};
use crate::tree::{EntryKind, Metadata, is_valid_name};
use std::io::{self, Read};
use std::sync::Mutex;

/// A source of one file, read from a stream.
pub struct StreamSource {
    name: Vec<u8>,
    meta: Metadata,
    reader: Mutex<Option<Box<dyn Read + Send>>>,
}

impl StreamSource {
    /// The stream `reader` as the file `name` (a valid file name: no `/`).
    /// It is stored readable by its owner only: a dump holds everything.
    pub fn new(name: &str, reader: Box<dyn Read + Send>) -> io::Result<StreamSource> {
        if !is_valid_name(name.as_bytes()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} cannot be a file name (no `/`, not empty, not . or ..)"),
            ));
        }
        let now = crate::time::now_ns();
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(StreamSource {
            name: name.as_bytes().to_vec(),
            meta: Metadata {
                mode: libc::S_IFREG | 0o600,
                uid,
                gid,
                mtime_ns: now,
                ctime_ns: now,
                size: UNKNOWN_SIZE,
                ..Default::default()
            },
            reader: Mutex::new(Some(reader)),
        })
    }

    /// The source a stream named `name` is recorded as.
    pub fn location_of(name: &str) -> String {
        format!("stdin:{name}")
    }
}

impl Source for StreamSource {
    fn location(&self) -> String {
        Self::location_of(&String::from_utf8_lossy(&self.name))
    }

    fn list(&self, path: &[u8]) -> io::Result<Vec<SourceEntry>> {
        if !path.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "not a folder"));
        }
        Ok(vec![SourceEntry {
            name: self.name.clone(),
            kind: EntryKind::File,
            meta: self.meta.clone(),
            symlink_target: None,
            mount: None,
        }])
    }

    fn open(&self, path: &[u8]) -> io::Result<Box<dyn Read + Send>> {
        if path != self.name {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
        }
        self.reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| io::Error::other("a stream can be read only once"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_read_once_and_bad_names_refused() {
        let source = StreamSource::new("db.sql", Box::new(&b"dump"[..])).unwrap();
        assert_eq!(source.location(), "stdin:db.sql");
        let listed = source.list(b"").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].meta.size, UNKNOWN_SIZE);
        let mut read = Vec::new();
        source
            .open(b"db.sql")
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        assert_eq!(read, b"dump");
        assert!(source.open(b"db.sql").is_err(), "a stream is read once");
        for bad in ["", "a/b", ".", ".."] {
            assert!(
                StreamSource::new(bad, Box::new(io::empty())).is_err(),
                "{bad:?}"
            );
        }
    }
}
