//! The source calls, as each contract version answers them.

use super::{Exports, Handle, Held, MAX_LISTED, Version};
use crate::bindings::types::Entry;
use crate::error::PluginError;
use crate::instance::Instance;

impl Instance {
    /// Every entry of the directory at `path`.
    pub(crate) fn list_dir(&mut self, path: &[u8]) -> Result<Vec<Entry>, PluginError> {
        if self.version() == Version::V0_1 {
            let listed = self.call("list-dir", async |s, e| match e {
                Exports::Source01(b) => b.kast_connector_tree_source().call_list_dir(s, path).await,
                _ => unreachable!("a source instance"),
            })?;
            if listed.len() > MAX_LISTED {
                return Err(self.misbehaved(format!("listed more than {MAX_LISTED} entries")));
            }
            return Ok(listed);
        }
        let listing = self.call("list-dir", async |s, e| match e {
            Exports::Source02(b) => b.kast_connector_tree_source().call_list_dir(s, path).await,
            _ => unreachable!("a source instance"),
        })?;
        let listing = self.handle(Held::Resource(listing));
        self.drain(listing, "list-dir", async |s, e, r, max| match e {
            Exports::Source02(b) => {
                b.kast_connector_tree_source()
                    .dir_listing()
                    .call_next(s, r, max)
                    .await
            }
            _ => unreachable!("a source instance"),
        })
    }

    /// Opens a file for reading; [`Self::release`] closes it.
    pub(crate) fn open_file(&mut self, path: &[u8]) -> Result<Handle, PluginError> {
        let held = match self.version() {
            Version::V0_1 => Held::Number(self.call("open-file", async |s, e| match e {
                Exports::Source01(b) => {
                    b.kast_connector_tree_source().call_open_file(s, path).await
                }
                _ => unreachable!("a source instance"),
            })?),
            Version::V0_2 => Held::Resource(self.call("open-file", async |s, e| match e {
                Exports::Source02(b) => {
                    b.kast_connector_tree_source().call_open_file(s, path).await
                }
                _ => unreachable!("a source instance"),
            })?),
        };
        Ok(self.handle(held))
    }

    /// Up to `length` bytes of an open file from `offset`. Under 0.1 the
    /// offset must be where the last read ended (it reads in order only).
    pub(crate) fn read_at(
        &mut self,
        file: Handle,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, PluginError> {
        let piece = self.call_on(file, "read", async |s, e, h| match e {
            Exports::Source01(b) => {
                b.kast_connector_tree_source()
                    .call_read(s, h.number(), length)
                    .await
            }
            Exports::Source02(b) => {
                b.kast_connector_tree_source()
                    .file()
                    .call_read_at(s, h.resource(), offset, length)
                    .await
            }
            _ => unreachable!("a source instance"),
        })?;
        if piece.len() > length as usize {
            return Err(self.misbehaved(format!(
                "read returned {} bytes, {length} were asked for",
                piece.len()
            )));
        }
        self.handed_over(piece.len());
        Ok(piece)
    }

    /// Closes a file opened with [`Self::open_file`].
    pub(crate) fn close_file(&mut self, file: Handle) {
        if let Held::Number(number) = file.held {
            let _ = self.call_on(file, "close-file", async |s, e, _| match e {
                Exports::Source01(b) => b
                    .kast_connector_tree_source()
                    .call_close_file(s, number)
                    .await
                    .map(Ok),
                _ => unreachable!("a source instance"),
            });
        } else {
            self.release(file);
        }
    }
}
