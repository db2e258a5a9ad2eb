//! The storage role: a store's objects under the bucket's prefix, in the
//! native layout (`PREFIX/packs/ab/abcd…`).

use crate::client::Client;
use kast_sdk::{Error, ObjectInfo, ObjectKind, Storage, layout};

pub struct S3Storage {
    client: Client,
}

impl S3Storage {
    pub fn new(client: Client) -> Self {
        S3Storage { client }
    }

    fn key(&self, kind: ObjectKind, name: &str) -> Result<String, Error> {
        let (_, path) = layout::object_path(kind, name)?;
        Ok(format!("{}{path}", self.client.prefix))
    }
}

impl Storage for S3Storage {
    /// One PUT, or a multipart upload for a pack larger than a part: either
    /// way S3 shows the object whole or not at all.
    fn put(&mut self, kind: ObjectKind, name: &str, data: Vec<u8>) -> Result<(), Error> {
        let key = self.key(kind, name)?;
        self.client.put(&key, &data)
    }

    fn get(&mut self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, Error> {
        let key = self.key(kind, name)?;
        Ok(self.client.get(&key, None)?.unwrap_or_default())
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

    fn list(&mut self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, Error> {
        let prefix = &self.client.prefix;
        let within = match kind {
            ObjectKind::Config => format!("{prefix}config"),
            _ => format!("{prefix}{}/", layout::folder(kind)),
        };
        let mut out: Vec<ObjectInfo> = self
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
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<(), Error> {
        let key = self.key(kind, name)?;
        self.client.delete(&key)
    }
}
