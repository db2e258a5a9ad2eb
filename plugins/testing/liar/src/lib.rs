//! A connector that answers contract 0.2's calls with more than was asked
//! for, for kast's sandbox tests only. It is written against the bare WIT
//! because the SDK keeps to the sizes the host asks for. As a storage, the
//! location's `do=` option picks the lie:
//!
//! - `pages`: every listing page has one entry more than `max`;
//! - `pieces`: every `download.read` gives one byte more than `max`;
//! - `ranges`: every `get-range` gives one byte more than `length`;
//! - `endless`: listings never end (a page of `max` names, again and again).
//!
//! As a source, the root lists one file, `big`, and every `read-at` gives
//! one byte more than `length`.

// The generated bindings carry no doc comments of their own.
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/0.2.0",
        world: "connector",
    });
}
use bindings::{exports, kast};

use exports::kast::connector::{object_store, plugin, tree_destination, tree_source};
use kast::connector::types::{
    EntryKind, Error, ErrorKind, Location, Metadata, ObjectInfo, ObjectKind, PluginInfo, Role,
};
use std::cell::RefCell;

struct Liar;

thread_local! {
    static MODE: RefCell<String> = const { RefCell::new(String::new()) };
}

fn mode() -> String {
    MODE.with(|m| m.borrow().clone())
}

fn unsupported() -> Error {
    Error {
        kind: ErrorKind::Unsupported,
        message: "not served".into(),
    }
}

impl plugin::Guest for Liar {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "liar".into(),
            version: "0.0.1".into(),
            schemes: vec!["liar".into()],
            roles: vec![Role::Storage, Role::Source],
            description: "answers with more than was asked for (tests only)".into(),
        }
    }
}

/// One more than asked for, of whatever is asked.
pub struct TooMuch;

impl object_store::GuestUpload for TooMuch {
    fn write(&self, _data: Vec<u8>) -> Result<(), Error> {
        Ok(())
    }
    fn commit(&self) -> Result<(), Error> {
        Ok(())
    }
}

impl object_store::GuestDownload for TooMuch {
    fn read(&self, max: u32) -> Result<Vec<u8>, Error> {
        Ok(vec![7; max as usize + 1])
    }
}

impl object_store::GuestObjectListing for TooMuch {
    fn next(&self, max: u32) -> Result<Vec<ObjectInfo>, Error> {
        let extra = if mode() == "endless" { 0 } else { 1 };
        Ok((0..max + extra)
            .map(|i| ObjectInfo {
                name: format!("{i:064x}"),
                size: 1,
            })
            .collect())
    }
}

impl tree_source::GuestDirListing for TooMuch {
    fn next(&self, max: u32) -> Result<Vec<tree_source::Entry>, Error> {
        Ok((0..=max)
            .map(|i| tree_source::Entry {
                name: format!("f{i}").into_bytes(),
                kind: EntryKind::File,
                meta: Metadata {
                    mode: 0o100644,
                    uid: 0,
                    gid: 0,
                    mtime_ns: 0,
                    ctime_ns: 0,
                    inode: 0,
                    size: 1,
                    xattrs: Vec::new(),
                },
                symlink_target: None,
            })
            .collect())
    }
}

impl tree_source::GuestFile for TooMuch {
    fn read_at(&self, _offset: u64, length: u32) -> Result<Vec<u8>, Error> {
        Ok(vec![7; length as usize + 1])
    }
}

impl tree_destination::GuestFileWriter for TooMuch {
    fn write(&self, _data: Vec<u8>) -> Result<(), Error> {
        Err(unsupported())
    }
    fn finish(&self) -> Result<(), Error> {
        Err(unsupported())
    }
}

impl object_store::Guest for Liar {
    type Upload = TooMuch;
    type Download = TooMuch;
    type ObjectListing = TooMuch;

    fn open(location: Location) -> Result<(), Error> {
        let mode = location
            .options
            .iter()
            .find(|(k, _)| k == "do")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        MODE.with(|m| *m.borrow_mut() = mode);
        Ok(())
    }

    fn put(_: ObjectKind, _: String, _: u64) -> Result<object_store::Upload, Error> {
        Ok(object_store::Upload::new(TooMuch))
    }

    fn get(_: ObjectKind, _: String) -> Result<object_store::Download, Error> {
        Ok(object_store::Download::new(TooMuch))
    }

    fn get_range(_: ObjectKind, _: String, _: u64, length: u32) -> Result<Vec<u8>, Error> {
        Ok(vec![7; length as usize + 1])
    }

    fn list_objects(_: ObjectKind) -> Result<object_store::ObjectListing, Error> {
        Ok(object_store::ObjectListing::new(TooMuch))
    }

    fn delete(_: ObjectKind, _: String) -> Result<(), Error> {
        Ok(())
    }
}

impl tree_source::Guest for Liar {
    type DirListing = TooMuch;
    type File = TooMuch;

    fn open(_location: Location) -> Result<(), Error> {
        Ok(())
    }

    fn list_dir(_path: Vec<u8>) -> Result<tree_source::DirListing, Error> {
        Ok(tree_source::DirListing::new(TooMuch))
    }

    fn open_file(_path: Vec<u8>) -> Result<tree_source::File, Error> {
        Ok(tree_source::File::new(TooMuch))
    }
}

impl tree_destination::Guest for Liar {
    type FileWriter = TooMuch;

    fn open(_: Location) -> Result<(), Error> {
        Err(unsupported())
    }
    fn create_dir(_: Vec<u8>) -> Result<(), Error> {
        Err(unsupported())
    }
    fn create_file(_: Vec<u8>, _: bool) -> Result<tree_destination::FileWriter, Error> {
        Err(unsupported())
    }
    fn symlink(_: Vec<u8>, _: Vec<u8>, _: bool) -> Result<(), Error> {
        Err(unsupported())
    }
    fn set_metadata(_: Vec<u8>, _: EntryKind, _: Metadata) -> Result<(), Error> {
        Err(unsupported())
    }
}

bindings::export!(Liar with_types_in bindings);
