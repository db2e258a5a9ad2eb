//! The storage role: a store's objects under the bucket's prefix, in the
//! native layout (`PREFIX/packs/ab/abcd…`).

use crate::client::Client;
use crate::destination::ObjectWriter;
use kast_sdk::{Error, Listing, ObjectInfo, ObjectKind, Storage, Upload, layout, listing};
use std::io::{Cursor, Read, Write};
use std::rc::Rc;

pub struct S3Storage {
    client: Rc<Client>,
}

impl S3Storage {
    pub fn new(client: Rc<Client>) -> Self {
        S3Storage { client }
    }

    fn key(&self, kind: ObjectKind, name: &str) -> Result<String, Error> {
        let (_, path) = layout::object_path(kind, name)?;
        Ok(format!("{}{path}", self.client.prefix))
    }
}

impl Storage for S3Storage {
    /// One PUT, or a multipart upload for an object larger than a part:
    /// either way S3 shows the object whole or not at all. A signed PUT
    /// carries its body's digest, so up to a part is held here.
    fn put(&mut self, kind: ObjectKind, name: &str, _size: u64) -> Result<Box<dyn Upload>, Error> {
        let key = self.key(kind, name)?;
        Ok(Box::new(ObjectUpload(ObjectWriter::new(
            self.client.clone(),
            key,
        ))))
    }

    /// One GET (so a missing object is `not-found` here, not at the first read).
    fn get(&mut self, kind: ObjectKind, name: &str) -> Result<Box<dyn Read>, Error> {
        let key = self.key(kind, name)?;
        let data = self.client.get(&key, None)?.unwrap_or_default();
        Ok(Box::new(Cursor::new(data)))
    }

    fn get_range(
        &mut self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        let key = self.key(kind, name)?;
        Ok(self
            .client
            .get(&key, Some((offset, length)))?
            .unwrap_or_default())
    }

    fn list(&mut self, kind: ObjectKind) -> Result<Listing<ObjectInfo>, Error> {
        let prefix = &self.client.prefix;
        let within = match kind {
            ObjectKind::Config => format!("{prefix}config"),
            _ => format!("{prefix}{}/", layout::folder(kind)),
        };
        let out: Vec<ObjectInfo> = self
            .client
            .list(&within, false)?
            .objects
            .into_iter()
            .filter_map(|o| {
                let name = o.key.rsplit('/').next()?.to_string();
                let (_, path) = layout::object_path(kind, &name).ok()?;
                (format!("{prefix}{path}") == o.key).then_some(ObjectInfo { name, size: o.size })
            })
            .collect();
        Ok(listing(out))
    }

    fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<(), Error> {
        let key = self.key(kind, name)?;
        self.client.delete(&key)
    }
}

/// An object stored through the same writer a restore uses.
struct ObjectUpload(ObjectWriter);

impl Upload for ObjectUpload {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.0.write_all(data).map_err(|e| Error::io("put", e))
    }

    fn commit(mut self: Box<Self>) -> Result<(), Error> {
        self.0.flush().map_err(|e| Error::io("put", e))
    }
}
