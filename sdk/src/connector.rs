//! The connector side of the SDK: the generated bindings of the contract,
//! one trait per role, and the glue between them.

use crate::url::Url;
use std::cell::RefCell;
use std::io::{Read, Write};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
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
    /// An error of `kind`; the kind is what the host acts on (retry, refuse, report), the
    /// message what the user reads.
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

    /// The location's URL taken apart by the parser the host uses too.
    pub fn parse_url(&self) -> Result<Url, Error> {
        Url::parse(&self.url).map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))
    }
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

/// Items of a listing, produced as the host pages through them, so a
/// directory of a million entries is never one value.
pub type Listing<T> = Box<dyn Iterator<Item = Result<T, Error>>>;

/// A listing of items already in hand.
pub fn listing<T: 'static>(items: Vec<T>) -> Listing<T> {
    Box::new(items.into_iter().map(Ok))
}

/// An object being stored: its bytes arrive in order, in parts of about a
/// MiB. Dropped without [`Upload::commit`] (the host gave up), it must
/// leave nothing behind.
pub trait Upload {
    /// Sends the next part of the object.
    fn write(&mut self, data: &[u8]) -> Result<(), Error>;
    /// Stores the object atomically and durably.
    fn commit(self: Box<Self>) -> Result<(), Error>;
}

/// An [`Upload`] that keeps the parts in memory and stores them in one
/// piece: for systems that cannot take an object in parts, and small objects.
pub fn buffered(
    size: u64,
    store: impl FnOnce(Vec<u8>) -> Result<(), Error> + 'static,
) -> Box<dyn Upload> {
    struct Buffered<F>(Vec<u8>, F);
    impl<F: FnOnce(Vec<u8>) -> Result<(), Error>> Upload for Buffered<F> {
        fn write(&mut self, data: &[u8]) -> Result<(), Error> {
            self.0.extend_from_slice(data);
            Ok(())
        }
        fn commit(self: Box<Self>) -> Result<(), Error> {
            let Buffered(data, store) = *self;
            store(data)
        }
    }
    // The announced size is the host's word, not a promise: capped.
    let capacity = usize::try_from(size).unwrap_or(0).min(64 << 20);
    Box::new(Buffered(Vec::with_capacity(capacity), store))
}

/// Keeps a store's objects. See `wit/connector.wit` for each operation's
/// contract: puts are atomic and durable, deleting a missing object succeeds.
pub trait Storage {
    /// Starts storing an object of `size` bytes.
    fn put(&mut self, kind: ObjectKind, name: &str, size: u64) -> Result<Box<dyn Upload>, Error>;
    /// A whole object, read in order.
    fn get(&mut self, kind: ObjectKind, name: &str) -> Result<Box<dyn Read>, Error>;
    /// `length` bytes from `offset`; fewer only when the object is shorter. Restores and checks
    /// read single blobs this way.
    fn get_range(
        &mut self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error>;
    /// Every object of `kind`, as name and size.
    fn list(&mut self, kind: ObjectKind) -> Result<Listing<ObjectInfo>, Error>;
    /// Removes an object; a missing one is not an error.
    fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<(), Error>;
}

/// A tree to back up; paths are relative, `/`-separated, empty for the root.
pub trait Source {
    /// The entries of the folder at `path`.
    fn list_dir(&mut self, path: &[u8]) -> Result<Listing<Entry>, Error>;
    /// The content of the file at `path`, read in order.
    fn open_file(&mut self, path: &[u8]) -> Result<Box<dyn Read>, Error>;

    /// The file from `offset` on. The host reads in order, and asks for an
    /// offset only after restarting an instance or to retry; by default the
    /// file is read from its start up to `offset`, which a connector whose
    /// system can seek should replace.
    fn open_file_at(&mut self, path: &[u8], offset: u64) -> Result<Box<dyn Read>, Error> {
        let mut reader = self.open_file(path)?;
        let skipped = std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())
            .map_err(|e| Error::io("read", e))?;
        if skipped < offset {
            // Past the end: nothing more to read.
            return Ok(Box::new(std::io::empty()));
        }
        Ok(reader)
    }
}

/// Where a restore writes.
pub trait Destination {
    /// Creates a folder; an existing one is fine.
    fn create_dir(&mut self, path: &[u8]) -> Result<(), Error>;
    /// Opens a file to write its content from the start. Without `overwrite`, an existing file
    /// is an `already-exists` error.
    fn create_file(&mut self, path: &[u8], overwrite: bool) -> Result<Box<dyn Write>, Error>;
    /// Makes a symlink. Without `overwrite`, an existing entry is an `already-exists` error.
    fn symlink(&mut self, path: &[u8], target: &[u8], overwrite: bool) -> Result<(), Error>;
    /// Applies mode, owner, times and extended attributes, as far as the system holds them;
    /// called after a folder's content is written.
    fn set_metadata(&mut self, path: &[u8], kind: EntryKind, meta: Metadata) -> Result<(), Error>;
}

/// A connector: says who it is and opens the roles it serves.
pub trait Connector: 'static {
    /// Name, version, schemes and roles, as `kast plugin list` shows them.
    fn info() -> PluginInfo;

    /// Opens the storage at `location`; by default the role is not served.
    fn storage(location: Location) -> Result<Box<dyn Storage>, Error> {
        let _ = location;
        Err(Error::unsupported("storage"))
    }

    /// Opens the source at `location`; by default the role is not served.
    fn source(location: Location) -> Result<Box<dyn Source>, Error> {
        let _ = location;
        Err(Error::unsupported("source"))
    }

    /// Opens the destination at `location`; by default the role is not served.
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

fn finished() -> Error {
    Error::new(ErrorKind::InvalidInput, "used after it was finished")
}

fn storage<T>(f: impl FnOnce(&mut dyn Storage) -> Result<T, Error>) -> Result<T, Error> {
    with(|o| {
        f(o.storage
            .as_deref_mut()
            .ok_or_else(|| not_open("storage"))?)
    })
}

fn source<T>(f: impl FnOnce(&mut dyn Source) -> Result<T, Error>) -> Result<T, Error> {
    with(|o| f(o.source.as_deref_mut().ok_or_else(|| not_open("source"))?))
}

fn destination<T>(f: impl FnOnce(&mut dyn Destination) -> Result<T, Error>) -> Result<T, Error> {
    with(|o| {
        f(o.destination
            .as_deref_mut()
            .ok_or_else(|| not_open("destination"))?)
    })
}

/// Reads up to `max` bytes, as many as come: the host asks for a large
/// piece on purpose. The buffer grows as bytes come: zeroing `max` bytes
/// first would cost more than reading a small file.
fn read_piece(reader: &mut dyn Read, max: u32) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    reader
        .take(u64::from(max))
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", e))?;
    Ok(buf)
}

/// The next `max` items of a listing.
fn page<T>(items: &mut dyn Iterator<Item = Result<T, Error>>, max: u32) -> Result<Vec<T>, Error> {
    items.take(max as usize).collect()
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

#[doc(hidden)]
pub struct UploadResource(RefCell<Option<Box<dyn Upload>>>);

impl object_store::GuestUpload for UploadResource {
    fn write(&self, data: Vec<u8>) -> Result<(), Error> {
        self.0
            .borrow_mut()
            .as_mut()
            .ok_or_else(finished)?
            .write(&data)
    }

    fn commit(&self) -> Result<(), Error> {
        self.0.borrow_mut().take().ok_or_else(finished)?.commit()
    }
}

#[doc(hidden)]
pub struct ReaderResource(RefCell<Box<dyn Read>>);

impl object_store::GuestDownload for ReaderResource {
    fn read(&self, max: u32) -> Result<Vec<u8>, Error> {
        read_piece(&mut **self.0.borrow_mut(), max)
    }
}

#[doc(hidden)]
pub struct ListingResource<T>(RefCell<Listing<T>>);

impl object_store::GuestObjectListing for ListingResource<ObjectInfo> {
    fn next(&self, max: u32) -> Result<Vec<ObjectInfo>, Error> {
        page(&mut *self.0.borrow_mut(), max)
    }
}

impl tree_source::GuestDirListing for ListingResource<Entry> {
    fn next(&self, max: u32) -> Result<Vec<Entry>, Error> {
        page(&mut *self.0.borrow_mut(), max)
    }
}

impl<C: Connector> object_store::Guest for Adapter<C> {
    type Upload = UploadResource;
    type Download = ReaderResource;
    type ObjectListing = ListingResource<ObjectInfo>;

    fn open(location: Location) -> Result<(), Error> {
        let storage = C::storage(location)?;
        with(|o| o.storage = Some(storage));
        Ok(())
    }

    fn put(kind: ObjectKind, name: String, size: u64) -> Result<object_store::Upload, Error> {
        let upload = storage(|s| s.put(kind, &name, size))?;
        Ok(object_store::Upload::new(UploadResource(RefCell::new(
            Some(upload),
        ))))
    }

    fn get(kind: ObjectKind, name: String) -> Result<object_store::Download, Error> {
        let reader = storage(|s| s.get(kind, &name))?;
        Ok(object_store::Download::new(ReaderResource(RefCell::new(
            reader,
        ))))
    }

    fn get_range(
        kind: ObjectKind,
        name: String,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, Error> {
        storage(|s| s.get_range(kind, &name, offset, u64::from(length)))
    }

    fn list_objects(kind: ObjectKind) -> Result<object_store::ObjectListing, Error> {
        let items = storage(|s| s.list(kind))?;
        Ok(object_store::ObjectListing::new(ListingResource(
            RefCell::new(items),
        )))
    }

    fn delete(kind: ObjectKind, name: String) -> Result<(), Error> {
        storage(|s| s.delete(kind, &name))
    }
}

/// A source file: read in order from where the last read ended, opened
/// again at the offset the host asks for when that is elsewhere.
#[doc(hidden)]
pub struct FileResource(RefCell<FileState>);

struct FileState {
    path: Vec<u8>,
    reader: Box<dyn Read>,
    position: u64,
}

impl tree_source::GuestFile for FileResource {
    fn read_at(&self, offset: u64, length: u32) -> Result<Vec<u8>, Error> {
        let mut file = self.0.borrow_mut();
        if offset != file.position {
            let path = file.path.clone();
            file.reader = source(|s| s.open_file_at(&path, offset))?;
            file.position = offset;
        }
        let piece = read_piece(&mut *file.reader, length)?;
        file.position += piece.len() as u64;
        Ok(piece)
    }
}

impl<C: Connector> tree_source::Guest for Adapter<C> {
    type DirListing = ListingResource<Entry>;
    type File = FileResource;

    fn open(location: Location) -> Result<(), Error> {
        let source = C::source(location)?;
        with(|o| o.source = Some(source));
        Ok(())
    }

    fn list_dir(path: Vec<u8>) -> Result<tree_source::DirListing, Error> {
        let items = source(|s| s.list_dir(&path))?;
        Ok(tree_source::DirListing::new(ListingResource(RefCell::new(
            items,
        ))))
    }

    fn open_file(path: Vec<u8>) -> Result<tree_source::File, Error> {
        let reader = source(|s| s.open_file(&path))?;
        Ok(tree_source::File::new(FileResource(RefCell::new(
            FileState {
                path,
                reader,
                position: 0,
            },
        ))))
    }
}

#[doc(hidden)]
pub struct WriterResource(RefCell<Option<Box<dyn Write>>>);

impl tree_destination::GuestFileWriter for WriterResource {
    fn write(&self, data: Vec<u8>) -> Result<(), Error> {
        self.0
            .borrow_mut()
            .as_mut()
            .ok_or_else(finished)?
            .write_all(&data)
            .map_err(|e| Error::io("write", e))
    }

    fn finish(&self) -> Result<(), Error> {
        let mut writer = self.0.borrow_mut().take().ok_or_else(finished)?;
        writer.flush().map_err(|e| Error::io("flush", e))
    }
}

impl<C: Connector> tree_destination::Guest for Adapter<C> {
    type FileWriter = WriterResource;

    fn open(location: Location) -> Result<(), Error> {
        let destination = C::destination(location)?;
        with(|o| o.destination = Some(destination));
        Ok(())
    }

    fn create_dir(path: Vec<u8>) -> Result<(), Error> {
        destination(|d| d.create_dir(&path))
    }

    fn create_file(path: Vec<u8>, overwrite: bool) -> Result<tree_destination::FileWriter, Error> {
        let writer = destination(|d| d.create_file(&path, overwrite))?;
        Ok(tree_destination::FileWriter::new(WriterResource(
            RefCell::new(Some(writer)),
        )))
    }

    fn symlink(path: Vec<u8>, target: Vec<u8>, overwrite: bool) -> Result<(), Error> {
        destination(|d| d.symlink(&path, &target, overwrite))
    }

    fn set_metadata(path: Vec<u8>, kind: EntryKind, meta: Metadata) -> Result<(), Error> {
        destination(|d| d.set_metadata(&path, kind, meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_url_is_parsed() {
        let loc = Location {
            url: "fs:///srv/my%20store?x=1".into(),
            options: vec![("x".into(), "1".into())],
            address: None,
        };
        assert_eq!(loc.parse_url().unwrap().path, "/srv/my store");
        assert_eq!(loc.option("x"), Some("1"));
        assert_eq!(loc.option("y"), None);
    }
}
