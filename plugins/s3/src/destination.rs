//! The destination role: a restore into a bucket (or a prefix of it).
//! Files become objects under their path; each streams up (a multipart
//! upload once it outgrows a part) and appears only when finished. Folders
//! need no object. A file's modification time and its `user.s3.*`
//! extended attributes become user metadata; symlinks, modes and owners
//! have no place in S3 and are reported or dropped.

use crate::client::{Client, Upload};
use crate::{MTIME_HEADER, XATTR_PREFIX};
use kast_sdk::{Destination, EntryKind, Error, ErrorKind, Metadata};
use std::io::Write;
use std::rc::Rc;

pub struct S3Destination {
    client: Rc<Client>,
}

impl S3Destination {
    pub fn new(client: Rc<Client>) -> Self {
        S3Destination { client }
    }

    fn key(&self, path: &[u8]) -> Result<String, Error> {
        let path = std::str::from_utf8(path)
            .map_err(|_| crate::client::invalid("S3 keys are UTF-8".into()))?;
        Ok(format!("{}{path}", self.client.prefix))
    }
}

/// The user metadata for `meta`: the time, and the extended attributes
/// that came from S3 (or were named for it) whose values a header can
/// carry.
fn user_metadata(meta: &Metadata) -> Vec<(String, String)> {
    let seconds = meta.mtime_ns.div_euclid(1_000_000_000);
    let nanos = meta.mtime_ns.rem_euclid(1_000_000_000);
    let mut out = vec![(MTIME_HEADER.to_string(), format!("{seconds}.{nanos:09}"))];
    for (name, value) in &meta.xattrs {
        let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) else {
            continue;
        };
        let Some(user) = name.strip_prefix(XATTR_PREFIX) else {
            continue;
        };
        let header_safe = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
        let name_safe = user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if name_safe && !user.is_empty() && header_safe(value) && user != "mtime" {
            out.push((
                format!("x-amz-meta-{}", user.to_ascii_lowercase()),
                value.to_string(),
            ));
        }
    }
    out
}

impl Destination for S3Destination {
    fn create_dir(&mut self, _path: &[u8]) -> Result<(), Error> {
        Ok(())
    }

    fn create_file(&mut self, path: &[u8], overwrite: bool) -> Result<Box<dyn Write>, Error> {
        let key = self.key(path)?;
        if !overwrite && self.client.head_many(std::slice::from_ref(&key))?[0].is_some() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{key} exists (restore with --force to replace it)"),
            ));
        }
        Ok(Box::new(ObjectWriter::new(self.client.clone(), key)))
    }

    fn symlink(&mut self, _path: &[u8], _target: &[u8], _overwrite: bool) -> Result<(), Error> {
        Err(Error::new(ErrorKind::Unsupported, "S3 has no symlinks"))
    }

    /// A file's time and metadata go on the object (a copy onto itself);
    /// folders have no object to carry them.
    fn set_metadata(&mut self, path: &[u8], kind: EntryKind, meta: Metadata) -> Result<(), Error> {
        if kind != EntryKind::File {
            return Ok(());
        }
        let key = self.key(path)?;
        self.client.set_meta(&key, &user_metadata(&meta))
    }
}

/// One object being written: bytes gather up to a part; a larger file
/// becomes a multipart upload, sent a part at a time. Dropped before its
/// flush, nothing is stored (an upload begun is aborted). Also the storage
/// role's uploads.
pub(crate) struct ObjectWriter {
    client: Rc<Client>,
    key: String,
    buffer: Vec<u8>,
    upload: Option<Upload>,
    /// Set once the object exists: a second flush must not rewrite it.
    finished: bool,
}

impl ObjectWriter {
    pub(crate) fn new(client: Rc<Client>, key: String) -> Self {
        ObjectWriter {
            client,
            key,
            buffer: Vec::new(),
            upload: None,
            finished: false,
        }
    }
}

pub(crate) fn io_error(e: Error) -> std::io::Error {
    let kind = match e.kind {
        ErrorKind::NotFound => std::io::ErrorKind::NotFound,
        ErrorKind::PermissionDenied => std::io::ErrorKind::PermissionDenied,
        ErrorKind::NoSpace => std::io::ErrorKind::StorageFull,
        ErrorKind::Unavailable => std::io::ErrorKind::ConnectionAborted,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e.message)
}

impl Write for ObjectWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let part_size = self.client.part_size();
        self.buffer.extend_from_slice(data);
        while self.buffer.len() > part_size {
            if self.upload.is_none() {
                self.upload = Some(self.client.start_upload(&self.key).map_err(io_error)?);
            }
            let upload = self.upload.as_mut().expect("started above");
            upload
                .part(&self.client, &self.buffer[..part_size])
                .map_err(io_error)?;
            self.buffer.drain(..part_size);
        }
        Ok(data.len())
    }

    /// Finishes the object: the file exists once this succeeds.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let buffer = std::mem::take(&mut self.buffer);
        match self.upload.take() {
            None => self.client.put(&self.key, &buffer),
            Some(mut upload) => {
                if !buffer.is_empty() {
                    upload.part(&self.client, &buffer).map_err(io_error)?;
                }
                upload.complete(&self.client)
            }
        }
        .map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_the_time_and_s3_attributes_a_header_can_carry() {
        let meta = Metadata {
            mtime_ns: 1_700_000_000_250_000_000,
            xattrs: vec![
                (b"user.s3.owner".to_vec(), b"ana".to_vec()),
                (b"user.s3.bin".to_vec(), vec![0, 1]),
                (b"user.other".to_vec(), b"x".to_vec()),
            ],
            ..Metadata::empty()
        };
        assert_eq!(
            user_metadata(&meta),
            vec![
                (MTIME_HEADER.to_string(), "1700000000.250000000".to_string()),
                ("x-amz-meta-owner".to_string(), "ana".to_string()),
            ]
        );
    }
}
