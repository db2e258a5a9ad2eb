//! # kast-sdk
//!
//! Write a kast connector in Rust as a plain trait implementation. A
//! connector is a WebAssembly component that kast loads in a sandbox; this
//! crate hides the generated WIT bindings (`wit/0.1.0/connector.wit`) behind one
//! trait per role and one export macro.
//!
//! A complete connector that serves a directory as a source:
//!
//! ```no_run
//! use kast_sdk::{Connector, Entry, EntryKind, Error, Location, Metadata, PluginInfo, Role, Source};
//! use std::io::Read;
//!
//! struct Hello;
//!
//! impl Connector for Hello {
//!     fn info() -> PluginInfo {
//!         PluginInfo {
//!             name: "hello".into(),
//!             version: "0.1.0".into(),
//!             schemes: vec!["hello".into()],
//!             roles: vec![Role::Source],
//!             description: "one file that says hello".into(),
//!         }
//!     }
//!
//!     fn source(_location: Location) -> Result<Box<dyn Source>, Error> {
//!         Ok(Box::new(HelloSource))
//!     }
//! }
//!
//! struct HelloSource;
//!
//! impl Source for HelloSource {
//!     fn list_dir(&mut self, _path: &[u8]) -> Result<Vec<Entry>, Error> {
//!         let meta = Metadata { mode: 0o100644, size: 6, ..Metadata::empty() };
//!         Ok(vec![Entry { name: b"hello.txt".to_vec(), kind: EntryKind::File, meta, symlink_target: None }])
//!     }
//!
//!     fn open_file(&mut self, _path: &[u8]) -> Result<Box<dyn Read>, Error> {
//!         Ok(Box::new(&b"hello\n"[..]))
//!     }
//! }
//!
//! kast_sdk::export_connector!(Hello);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`); the `.wasm` is already a component. Install it with
//! `kast plugin install target/wasm32-wasip2/release/hello.wasm`.
//!
//! Every connector exports the full `connector` world; the roles it does not
//! serve answer `unsupported`, and `info().roles` tells the host which it does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/0.1.0",
        world: "connector",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "kast_sdk::bindings",
    });
}

use bindings::exports::kast::connector::{object_store, plugin, tree_destination, tree_source};
pub use bindings::kast::connector::types::{
    EntryKind, Error, ErrorKind, Location, Metadata, ObjectInfo, ObjectKind, PluginInfo, Role,
};

/// A directory entry, as a source lists it.
pub type Entry = bindings::kast::connector::types::Entry;

impl Metadata {
    /// All zeros: fill what your system knows.
    pub fn empty() -> Self {
        Metadata {
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size: 0,
            xattrs: Vec::new(),
        }
    }
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The answer for a role or operation a connector does not serve.
    pub fn unsupported(what: &str) -> Self {
        Error::new(
            ErrorKind::Unsupported,
            format!("{what} is not supported by this connector"),
        )
    }

    /// Maps an I/O error to the contract's kinds.
    pub fn io(context: impl std::fmt::Display, e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::InvalidInput | K::InvalidData => ErrorKind::InvalidInput,
            K::StorageFull | K::QuotaExceeded => ErrorKind::NoSpace,
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::TimedOut
            | K::BrokenPipe
            | K::HostUnreachable
            | K::NetworkUnreachable => ErrorKind::Unavailable,
            K::Unsupported => ErrorKind::Unsupported,
            _ => ErrorKind::Other,
        };
        Error::new(kind, format!("{context}: {e}"))
    }
}

impl Location {
    /// The value of option `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The URL's path, percent-decoded (`fs:///srv/store` gives `/srv/store`).
    pub fn path(&self) -> String {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let path = match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        };
        let path = path.split(['?', '#']).next().unwrap_or("/");
        percent_decode(path)
    }
}

/// Decodes `%XX` escapes, as URLs carry user names, passwords and paths.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Location {
    /// A whole number of seconds from option `key` (such as `timeout`),
    /// else `default`; zero or text is a clear error.
    pub fn seconds_option(&self, key: &str, default: u64) -> Result<u64, Error> {
        match self.option(key) {
            None => Ok(default),
            Some(text) => text.parse::<u64>().ok().filter(|&s| s > 0).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("{key}={text}: give a whole number of seconds"),
                )
            }),
        }
    }
}

/// Connects to `address` within `timeout`, and sets that timeout on every
/// read and write, so a server that hangs is an error, not a stuck backup.
/// Under WASI a refused non-blocking connect can look like success (the
/// first read then fails with "not connected"): such a socket is retried
/// with a plain connect, which reports the real reason.
pub fn connect(
    address: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> std::io::Result<std::net::TcpStream> {
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
    if stream.peer_addr().is_err() {
        stream = std::net::TcpStream::connect(address)?;
    }
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// The store layout of connectors that keep objects as files (the engine's
/// native one), so a store copied between a disk and a server opens in both.
pub mod layout {
    use super::{Error, ErrorKind, ObjectKind};

    /// Object names are lowercase hex (or `config`); anything else is
    /// refused before it can become a path.
    pub fn is_object_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    }

    /// The folder objects of `kind` live in ("" for the config).
    pub fn folder(kind: ObjectKind) -> &'static str {
        match kind {
            ObjectKind::Config => "",
            ObjectKind::Key => "keys",
            ObjectKind::Pack => "packs",
            ObjectKind::State => "states",
            ObjectKind::Snapshot => "snapshots",
            ObjectKind::Lock => "locks",
        }
    }

    /// The folder and the file of one object, relative to the store's
    /// root; packs are spread over folders named by their first two digits.
    pub fn object_path(kind: ObjectKind, name: &str) -> Result<(String, String), Error> {
        if !is_object_name(name) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("invalid object name {name:?}"),
            ));
        }
        Ok(match kind {
            ObjectKind::Config => (String::new(), "config".to_string()),
            ObjectKind::Pack => {
                let fan = &name[..2.min(name.len())];
                (format!("packs/{fan}"), format!("packs/{fan}/{name}"))
            }
            _ => (folder(kind).to_string(), format!("{}/{name}", folder(kind))),
        })
    }
}

/// Keeps a store's objects. See `wit/0.1.0/connector.wit` for each operation's
/// contract: puts are atomic and durable, deleting a missing object succeeds.
pub trait Storage {
    fn put(&mut self, kind: ObjectKind, name: &str, data: Vec<u8>) -> Result<(), Error>;
    fn get(&mut self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, Error>;
    fn get_range(
        &mut self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error>;
    fn list(&mut self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, Error>;
    fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<(), Error>;
}

/// A tree to back up; paths are relative, `/`-separated, empty for the root.
pub trait Source {
    fn list_dir(&mut self, path: &[u8]) -> Result<Vec<Entry>, Error>;
    fn open_file(&mut self, path: &[u8]) -> Result<Box<dyn Read>, Error>;
}

/// Where a restore writes.
pub trait Destination {
    fn create_dir(&mut self, path: &[u8]) -> Result<(), Error>;
    fn create_file(&mut self, path: &[u8], overwrite: bool) -> Result<Box<dyn Write>, Error>;
    fn symlink(&mut self, path: &[u8], target: &[u8], overwrite: bool) -> Result<(), Error>;
    fn set_metadata(&mut self, path: &[u8], kind: EntryKind, meta: Metadata) -> Result<(), Error>;
}

/// A connector: says who it is and opens the roles it serves.
pub trait Connector: 'static {
    fn info() -> PluginInfo;

    fn storage(location: Location) -> Result<Box<dyn Storage>, Error> {
        let _ = location;
        Err(Error::unsupported("storage"))
    }

    fn source(location: Location) -> Result<Box<dyn Source>, Error> {
        let _ = location;
        Err(Error::unsupported("source"))
    }

    fn destination(location: Location) -> Result<Box<dyn Destination>, Error> {
        let _ = location;
        Err(Error::unsupported("destination"))
    }
}

/// Exports `$connector` (a type implementing [`Connector`]) as the
/// component's implementation of the `connector` world.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        type __KastAdapter = $crate::Adapter<$connector>;
        $crate::bindings::export_bindings!(__KastAdapter with_types_in $crate::bindings);
    };
}

/// What an instance has opened. A component instance serves one location in
/// one role, and wasm is single-threaded, so thread-local state is the state.
#[derive(Default)]
struct Opened {
    storage: Option<Box<dyn Storage>>,
    source: Option<Box<dyn Source>>,
    destination: Option<Box<dyn Destination>>,
    readers: HashMap<u64, Box<dyn Read>>,
    writers: HashMap<u64, Box<dyn Write>>,
    next_handle: u64,
}

thread_local! {
    static OPENED: RefCell<Opened> = RefCell::new(Opened::default());
}

fn with<T>(f: impl FnOnce(&mut Opened) -> T) -> T {
    OPENED.with(|o| f(&mut o.borrow_mut()))
}

fn not_open(role: &str) -> Error {
    Error::new(ErrorKind::InvalidInput, format!("{role} used before open"))
}

fn bad_handle() -> Error {
    Error::new(ErrorKind::InvalidInput, "unknown file handle")
}

/// Glue between the generated bindings and a [`Connector`]; used by
/// [`export_connector!`], not by connector authors.
#[doc(hidden)]
pub struct Adapter<C>(std::marker::PhantomData<C>);

impl<C: Connector> plugin::Guest for Adapter<C> {
    fn info() -> PluginInfo {
        C::info()
    }
}

impl<C: Connector> object_store::Guest for Adapter<C> {
    fn open(location: Location) -> Result<(), Error> {
        let storage = C::storage(location)?;
        with(|o| o.storage = Some(storage));
        Ok(())
    }

    fn put(kind: ObjectKind, name: String, data: Vec<u8>) -> Result<(), Error> {
        with(|o| {
            o.storage
                .as_mut()
                .ok_or_else(|| not_open("storage"))?
                .put(kind, &name, data)
        })
    }

    fn get(kind: ObjectKind, name: String) -> Result<Vec<u8>, Error> {
        with(|o| {
            o.storage
                .as_mut()
                .ok_or_else(|| not_open("storage"))?
                .get(kind, &name)
        })
    }

    fn get_range(
        kind: ObjectKind,
        name: String,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        with(|o| {
            o.storage
                .as_mut()
                .ok_or_else(|| not_open("storage"))?
                .get_range(kind, &name, offset, length)
        })
    }

    fn list_objects(kind: ObjectKind) -> Result<Vec<ObjectInfo>, Error> {
        with(|o| {
            o.storage
                .as_mut()
                .ok_or_else(|| not_open("storage"))?
                .list(kind)
        })
    }

    fn delete(kind: ObjectKind, name: String) -> Result<(), Error> {
        with(|o| {
            o.storage
                .as_mut()
                .ok_or_else(|| not_open("storage"))?
                .delete(kind, &name)
        })
    }
}

impl<C: Connector> tree_source::Guest for Adapter<C> {
    fn open(location: Location) -> Result<(), Error> {
        let source = C::source(location)?;
        with(|o| o.source = Some(source));
        Ok(())
    }

    fn list_dir(path: Vec<u8>) -> Result<Vec<Entry>, Error> {
        with(|o| {
            o.source
                .as_mut()
                .ok_or_else(|| not_open("source"))?
                .list_dir(&path)
        })
    }

    fn open_file(path: Vec<u8>) -> Result<u64, Error> {
        with(|o| {
            let reader = o
                .source
                .as_mut()
                .ok_or_else(|| not_open("source"))?
                .open_file(&path)?;
            o.next_handle += 1;
            o.readers.insert(o.next_handle, reader);
            Ok(o.next_handle)
        })
    }

    fn read(handle: u64, max: u32) -> Result<Vec<u8>, Error> {
        with(|o| {
            let reader = o.readers.get_mut(&handle).ok_or_else(bad_handle)?;
            // Fill the piece (the host asks for a large read on purpose),
            // growing the buffer as bytes come: zeroing `max` bytes first
            // would cost more than reading a small file.
            let mut buf = Vec::new();
            reader
                .take(u64::from(max))
                .read_to_end(&mut buf)
                .map_err(|e| Error::io("read", e))?;
            Ok(buf)
        })
    }

    fn close_file(handle: u64) {
        with(|o| o.readers.remove(&handle));
    }
}

impl<C: Connector> tree_destination::Guest for Adapter<C> {
    fn open(location: Location) -> Result<(), Error> {
        let destination = C::destination(location)?;
        with(|o| o.destination = Some(destination));
        Ok(())
    }

    fn create_dir(path: Vec<u8>) -> Result<(), Error> {
        with(|o| {
            o.destination
                .as_mut()
                .ok_or_else(|| not_open("destination"))?
                .create_dir(&path)
        })
    }

    fn create_file(path: Vec<u8>, overwrite: bool) -> Result<u64, Error> {
        with(|o| {
            let writer = o
                .destination
                .as_mut()
                .ok_or_else(|| not_open("destination"))?
                .create_file(&path, overwrite)?;
            o.next_handle += 1;
            o.writers.insert(o.next_handle, writer);
            Ok(o.next_handle)
        })
    }

    fn write(handle: u64, data: Vec<u8>) -> Result<(), Error> {
        with(|o| {
            let writer = o.writers.get_mut(&handle).ok_or_else(bad_handle)?;
            writer.write_all(&data).map_err(|e| Error::io("write", e))
        })
    }

    fn finish_file(handle: u64) -> Result<(), Error> {
        with(|o| {
            let mut writer = o.writers.remove(&handle).ok_or_else(bad_handle)?;
            writer.flush().map_err(|e| Error::io("flush", e))
        })
    }

    fn symlink(path: Vec<u8>, target: Vec<u8>, overwrite: bool) -> Result<(), Error> {
        with(|o| {
            o.destination
                .as_mut()
                .ok_or_else(|| not_open("destination"))?
                .symlink(&path, &target, overwrite)
        })
    }

    fn set_metadata(path: Vec<u8>, kind: EntryKind, meta: Metadata) -> Result<(), Error> {
        with(|o| {
            o.destination
                .as_mut()
                .ok_or_else(|| not_open("destination"))?
                .set_metadata(&path, kind, meta)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_follow_the_native_layout() {
        use layout::object_path;
        assert_eq!(
            object_path(ObjectKind::Pack, "abcd").unwrap(),
            ("packs/ab".to_string(), "packs/ab/abcd".to_string())
        );
        assert_eq!(
            object_path(ObjectKind::Config, "config").unwrap(),
            (String::new(), "config".to_string())
        );
        assert_eq!(object_path(ObjectKind::Lock, "ff").unwrap().1, "locks/ff");
        for bad in ["../x", "a/b", "", "UPPER"] {
            assert!(object_path(ObjectKind::Key, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn location_path_is_decoded() {
        let loc = Location {
            url: "fs:///srv/my%20store?x=1".into(),
            options: vec![("x".into(), "1".into())],
            address: None,
        };
        assert_eq!(loc.path(), "/srv/my store");
        assert_eq!(loc.option("x"), Some("1"));
        assert_eq!(loc.option("y"), None);
    }
}
