//! The storage calls, as each contract version answers them.

use super::{Exports, Held, MAX_LISTED, PIECE, Version};
use crate::bindings::types::{ObjectInfo, ObjectKind};
use crate::error::PluginError;
use crate::instance::Instance;
use std::io::Read;

impl Instance {
    /// Stores a whole object: 0.1 takes it in one call, 0.2 in parts, so
    /// the plugin never holds more than a piece of it.
    pub(crate) fn put(
        &mut self,
        kind: ObjectKind,
        name: &str,
        data: &[u8],
    ) -> Result<(), PluginError> {
        if self.version() == Version::V0_1 {
            return self.put_whole(kind, name, data);
        }
        self.upload(kind, name, data.len() as u64, |write| {
            data.chunks(PIECE).try_for_each(write)
        })
    }

    /// Stores the `size` bytes `body` reads: 0.2 takes them a piece at a
    /// time, so neither the host nor the plugin holds the whole object;
    /// 0.1 takes them in one call.
    pub(crate) fn put_from(
        &mut self,
        kind: ObjectKind,
        name: &str,
        size: u64,
        body: &mut dyn Read,
    ) -> Result<(), PluginError> {
        let short = |got: u64| PluginError::Runtime {
            what: "reading the object to put",
            source: format!("{got} bytes, {size} announced").into(),
        };
        let unreadable = |e: std::io::Error| PluginError::Runtime {
            what: "reading the object to put",
            source: e.into(),
        };
        if self.version() == Version::V0_1 {
            let mut whole = Vec::with_capacity(size as usize);
            body.read_to_end(&mut whole).map_err(unreadable)?;
            if whole.len() as u64 != size {
                return Err(short(whole.len() as u64));
            }
            return self.put_whole(kind, name, &whole);
        }
        self.upload(kind, name, size, |write| {
            let mut piece = vec![0; PIECE.min(size as usize)];
            let mut sent = 0u64;
            while sent < size {
                let want = PIECE.min((size - sent) as usize);
                body.read_exact(&mut piece[..want]).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        short(sent)
                    } else {
                        unreadable(e)
                    }
                })?;
                write(&piece[..want])?;
                sent += want as u64;
            }
            Ok(())
        })
    }

    /// 0.1's one-call put.
    fn put_whole(&mut self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<(), PluginError> {
        self.call("put", async |s, e| match e {
            Exports::Storage01(b) => {
                b.kast_connector_object_store()
                    .call_put(s, kind, name, data)
                    .await
            }
            _ => unreachable!("a storage instance"),
        })
    }

    /// 0.2's upload: announces `size`, lets `send` write the pieces in
    /// order, then commits; the upload is released whatever happens.
    fn upload(
        &mut self,
        kind: ObjectKind,
        name: &str,
        size: u64,
        send: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<(), PluginError>) -> Result<(), PluginError>,
    ) -> Result<(), PluginError> {
        let upload = self.call("put", async |s, e| match e {
            Exports::Storage02(b) => {
                b.kast_connector_object_store()
                    .call_put(s, kind, name, size)
                    .await
            }
            _ => unreachable!("a storage instance"),
        })?;
        let upload = self.handle(Held::Resource(upload));
        let mut write = |piece: &[u8]| {
            self.call_on(upload, "put", async |s, e, h| match e {
                Exports::Storage02(b) => {
                    b.kast_connector_object_store()
                        .upload()
                        .call_write(s, h.resource(), piece)
                        .await
                }
                _ => unreachable!("a storage instance"),
            })
        };
        let mut result = send(&mut write);
        if result.is_ok() {
            result = self.call_on(upload, "put", async |s, e, h| match e {
                Exports::Storage02(b) => {
                    b.kast_connector_object_store()
                        .upload()
                        .call_commit(s, h.resource())
                        .await
                }
                _ => unreachable!("a storage instance"),
            });
        }
        self.release(upload);
        result
    }

    /// A whole object: 0.2 hands it over in pieces, stopped past `cap` bytes
    /// (no object kast writes is larger than a pack, which fits well within).
    pub(crate) fn get(
        &mut self,
        kind: ObjectKind,
        name: &str,
        cap: usize,
    ) -> Result<Vec<u8>, PluginError> {
        if self.version() == Version::V0_1 {
            return self.call("get", async |s, e| match e {
                Exports::Storage01(b) => {
                    b.kast_connector_object_store()
                        .call_get(s, kind, name)
                        .await
                }
                _ => unreachable!("a storage instance"),
            });
        }
        let download = self.call("get", async |s, e| match e {
            Exports::Storage02(b) => {
                b.kast_connector_object_store()
                    .call_get(s, kind, name)
                    .await
            }
            _ => unreachable!("a storage instance"),
        })?;
        let download = self.handle(Held::Resource(download));
        let mut data = Vec::new();
        let result = loop {
            let piece = match self.call_on(download, "get", async |s, e, h| match e {
                Exports::Storage02(b) => {
                    b.kast_connector_object_store()
                        .download()
                        .call_read(s, h.resource(), PIECE as u32)
                        .await
                }
                _ => unreachable!("a storage instance"),
            }) {
                Ok(piece) => piece,
                Err(e) => break Err(e),
            };
            if piece.is_empty() {
                break Ok(data);
            }
            if piece.len() > PIECE {
                break Err(self.misbehaved(format!(
                    "get returned a piece of {} bytes, {PIECE} were asked for",
                    piece.len()
                )));
            }
            if data.len() + piece.len() > cap {
                break Err(PluginError::OverLimit {
                    plugin: self.plugin_name().to_string(),
                    operation: "get",
                    what: format!("returned an object larger than {} MiB", cap >> 20),
                });
            }
            data.extend_from_slice(&piece);
        };
        self.release(download);
        result
    }

    /// `length` bytes of an object from `offset` (fewer at its end).
    pub(crate) fn get_range(
        &mut self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, PluginError> {
        let data = match self.version() {
            Version::V0_1 => self.call("get-range", async |s, e| match e {
                Exports::Storage01(b) => {
                    b.kast_connector_object_store()
                        .call_get_range(s, kind, name, offset, length)
                        .await
                }
                _ => unreachable!("a storage instance"),
            })?,
            Version::V0_2 => {
                let length = u32::try_from(length).map_err(|_| {
                    self.misbehaved(format!("a range of {length} bytes cannot be asked for"))
                })?;
                self.call("get-range", async |s, e| match e {
                    Exports::Storage02(b) => {
                        b.kast_connector_object_store()
                            .call_get_range(s, kind, name, offset, length)
                            .await
                    }
                    _ => unreachable!("a storage instance"),
                })?
            }
        };
        if data.len() as u64 > length {
            return Err(self.misbehaved(format!(
                "get-range returned {} bytes, {length} were asked for",
                data.len()
            )));
        }
        Ok(data)
    }

    /// Every object of `kind`, as the plugin lists them.
    pub(crate) fn list_objects(
        &mut self,
        kind: ObjectKind,
    ) -> Result<Vec<ObjectInfo>, PluginError> {
        if self.version() == Version::V0_1 {
            let listed = self.call("list", async |s, e| match e {
                Exports::Storage01(b) => {
                    b.kast_connector_object_store()
                        .call_list_objects(s, kind)
                        .await
                }
                _ => unreachable!("a storage instance"),
            })?;
            if listed.len() > MAX_LISTED {
                return Err(self.misbehaved(format!("listed more than {MAX_LISTED} objects")));
            }
            return Ok(listed);
        }
        let listing = self.call("list", async |s, e| match e {
            Exports::Storage02(b) => {
                b.kast_connector_object_store()
                    .call_list_objects(s, kind)
                    .await
            }
            _ => unreachable!("a storage instance"),
        })?;
        let listing = self.handle(Held::Resource(listing));
        self.drain(listing, "list", async |s, e, r, max| match e {
            Exports::Storage02(b) => {
                b.kast_connector_object_store()
                    .object_listing()
                    .call_next(s, r, max)
                    .await
            }
            _ => unreachable!("a storage instance"),
        })
    }

    /// Deletes an object; a missing one is no error.
    pub(crate) fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<(), PluginError> {
        self.call("delete", async |s, e| match e {
            Exports::Storage01(b) => {
                b.kast_connector_object_store()
                    .call_delete(s, kind, name)
                    .await
            }
            Exports::Storage02(b) => {
                b.kast_connector_object_store()
                    .call_delete(s, kind, name)
                    .await
            }
            _ => unreachable!("a storage instance"),
        })
    }
}
