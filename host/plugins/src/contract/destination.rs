//! The destination calls, as each contract version answers them.

use super::{Exports, Handle, Held, Version};
use crate::bindings::types::{EntryKind, Metadata};
use crate::error::PluginError;
use crate::instance::Instance;

impl Instance {
    pub(crate) fn create_dir(&mut self, path: &[u8]) -> Result<(), PluginError> {
        self.call("create-dir", async |s, e| match e {
            Exports::Destination01(b) => {
                b.kast_connector_tree_destination()
                    .call_create_dir(s, path)
                    .await
            }
            Exports::Destination02(b) => {
                b.kast_connector_tree_destination()
                    .call_create_dir(s, path)
                    .await
            }
            _ => unreachable!("a destination instance"),
        })
    }

    /// Opens a file for writing; [`Self::finish_file`] completes it.
    pub(crate) fn create_file(
        &mut self,
        path: &[u8],
        overwrite: bool,
    ) -> Result<Handle, PluginError> {
        let held = match self.version() {
            Version::V0_1 => Held::Number(self.call("create-file", async |s, e| {
                match e {
                    Exports::Destination01(b) => {
                        b.kast_connector_tree_destination()
                            .call_create_file(s, path, overwrite)
                            .await
                    }
                    _ => unreachable!("a destination instance"),
                }
            })?),
            Version::V0_2 => Held::Resource(self.call("create-file", async |s, e| {
                match e {
                    Exports::Destination02(b) => {
                        b.kast_connector_tree_destination()
                            .call_create_file(s, path, overwrite)
                            .await
                    }
                    _ => unreachable!("a destination instance"),
                }
            })?),
        };
        Ok(self.handle(held))
    }

    /// Appends to a file opened with [`Self::create_file`].
    pub(crate) fn write(&mut self, file: Handle, data: &[u8]) -> Result<(), PluginError> {
        self.call_on(file, "write", async |s, e, h| match e {
            Exports::Destination01(b) => {
                b.kast_connector_tree_destination()
                    .call_write(s, h.number(), data)
                    .await
            }
            Exports::Destination02(b) => {
                b.kast_connector_tree_destination()
                    .file_writer()
                    .call_write(s, h.resource(), data)
                    .await
            }
            _ => unreachable!("a destination instance"),
        })
    }

    /// Flushes and closes a file: it is complete once this succeeds.
    pub(crate) fn finish_file(&mut self, file: Handle) -> Result<(), PluginError> {
        let result = self.call_on(file, "finish-file", async |s, e, h| match e {
            Exports::Destination01(b) => {
                b.kast_connector_tree_destination()
                    .call_finish_file(s, h.number())
                    .await
            }
            Exports::Destination02(b) => {
                b.kast_connector_tree_destination()
                    .file_writer()
                    .call_finish(s, h.resource())
                    .await
            }
            _ => unreachable!("a destination instance"),
        });
        self.release(file);
        result
    }

    pub(crate) fn symlink(
        &mut self,
        path: &[u8],
        target: &[u8],
        overwrite: bool,
    ) -> Result<(), PluginError> {
        self.call("symlink", async |s, e| match e {
            Exports::Destination01(b) => {
                b.kast_connector_tree_destination()
                    .call_symlink(s, path, target, overwrite)
                    .await
            }
            Exports::Destination02(b) => {
                b.kast_connector_tree_destination()
                    .call_symlink(s, path, target, overwrite)
                    .await
            }
            _ => unreachable!("a destination instance"),
        })
    }

    pub(crate) fn set_metadata(
        &mut self,
        path: &[u8],
        kind: EntryKind,
        meta: &Metadata,
    ) -> Result<(), PluginError> {
        self.call("set-metadata", async |s, e| match e {
            Exports::Destination01(b) => {
                b.kast_connector_tree_destination()
                    .call_set_metadata(s, path, kind, meta)
                    .await
            }
            Exports::Destination02(b) => {
                b.kast_connector_tree_destination()
                    .call_set_metadata(s, path, kind, meta)
                    .await
            }
            _ => unreachable!("a destination instance"),
        })
    }
}
