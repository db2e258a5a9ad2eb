//! kast's built-in `fs` connector: a local directory as storage, source or
//! destination, from inside the sandbox.
//!
//! The component reaches the disk only through the host's `local-fs`
//! interface, private to kast, which serves exactly the directory the
//! location names (see `wit/host/local-fs.wit` for why WASI's own
//! filesystem is not enough). The
//! store layout is the engine's native one, so a store written through this
//! plugin opens natively and the other way round.

mod host {
    wit_bindgen::generate!({
        path: ["../../wit/0.2.0", "../../wit/host"],
        world: "kast:host/fs-plugin",
        // The shared types are the SDK's own, so entries and errors pass through.
        with: { "kast:connector/types@0.2.0": kast_sdk::bindings::kast::connector::types },
    });
    pub use kast::host::local_fs::*;
}

use kast_sdk::{
    Connector, Destination, Entry, EntryKind, Error, ErrorKind, FileInfo, FileStorage, FileTree,
    Listing, Location, Metadata, PluginInfo, Role, Source, Storage, listing,
};
use std::io::{self, Read, Write};

/// Reads a file in pieces this large: one boundary crossing per MiB.
const PIECE: u32 = 1 << 20;

struct Fs;

impl Connector for Fs {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "fs".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            schemes: vec!["fs".into()],
            roles: vec![Role::Storage, Role::Source, Role::Destination],
            description: "a directory on this machine".into(),
        }
    }

    fn storage(_location: Location) -> Result<Box<dyn Storage>, Error> {
        host::mkdir(b"")?;
        Ok(Box::new(FileStorage::new(FsTree)))
    }

    fn source(_location: Location) -> Result<Box<dyn Source>, Error> {
        let root = host::stat(b"")?;
        Ok(Box::new(FsSource {
            single_file: root.kind != EntryKind::Dir,
        }))
    }

    fn destination(_location: Location) -> Result<Box<dyn Destination>, Error> {
        host::mkdir(b"")?;
        Ok(Box::new(FsDestination))
    }
}

kast_sdk::export_connector!(Fs);

/// The store's files, reached through the host; the SDK's [`FileStorage`]
/// lays them out and writes each through a temporary name.
struct FsTree;

impl FileTree for FsTree {
    /// A host file handle.
    type Writer = u64;

    fn make_dirs(&mut self, dir: &str) -> Result<(), Error> {
        host::mkdir(dir.as_bytes())
    }

    fn list(&mut self, dir: &str) -> Result<Option<Vec<FileInfo>>, Error> {
        match host::list_dir(dir.as_bytes()) {
            Ok(entries) => Ok(Some(
                entries
                    .into_iter()
                    .map(|e| FileInfo {
                        name: e.name,
                        kind: e.kind,
                        size: e.meta.size,
                    })
                    .collect(),
            )),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn size(&mut self, path: &str) -> Result<Option<u64>, Error> {
        match host::stat(path.as_bytes()) {
            Ok(e) => Ok(Some(e.meta.size)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn create(&mut self, path: &str, _size: u64) -> Result<u64, Error> {
        host::create(path.as_bytes(), false)
    }

    fn write(&mut self, handle: &mut u64, data: &[u8]) -> Result<(), Error> {
        host::write(*handle, data)
    }

    fn finish(&mut self, handle: u64) -> Result<(), Error> {
        let synced = host::sync(handle);
        host::close(handle);
        synced
    }

    fn abandon(&mut self, handle: u64) {
        host::close(handle);
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
        host::rename(from.as_bytes(), to.as_bytes())
    }

    fn sync_dir(&mut self, dir: &str) -> Result<(), Error> {
        host::sync_dir(dir.as_bytes())
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        host::remove(path.as_bytes())
    }

    fn open(&mut self, path: &str) -> Result<Box<dyn Read>, Error> {
        Ok(Box::new(HostFile::open(path.as_bytes(), 0)?))
    }

    fn read_range(&mut self, path: &str, offset: u64, length: u64) -> Result<Vec<u8>, Error> {
        let length = u32::try_from(length)
            .map_err(|_| Error::new(ErrorKind::InvalidInput, "range too long"))?;
        let handle = host::open_read(path.as_bytes())?;
        let result = host::read_at(handle, offset, length);
        host::close(handle);
        result
    }
}

struct FsSource {
    single_file: bool,
}

/// A file read through the host in large pieces.
struct HostFile {
    handle: u64,
    offset: u64,
    piece: Vec<u8>,
    at: usize,
}

impl HostFile {
    fn open(path: &[u8], offset: u64) -> Result<HostFile, Error> {
        Ok(HostFile {
            handle: host::open_read(path)?,
            offset,
            piece: Vec::new(),
            at: 0,
        })
    }
}

impl Read for HostFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.piece.len() {
            self.piece = host::read_at(self.handle, self.offset, PIECE)
                .map_err(|e| io::Error::other(e.message))?;
            self.offset += self.piece.len() as u64;
            self.at = 0;
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        host::close(self.handle);
    }
}

impl Source for FsSource {
    fn list_dir(&mut self, path: &[u8]) -> Result<Listing<Entry>, Error> {
        if self.single_file {
            // A file location: the host granted its folder; present the one file.
            return host::stat(b"").map(|e| listing(vec![e]));
        }
        host::list_dir(path).map(listing)
    }

    fn open_file(&mut self, path: &[u8]) -> Result<Box<dyn Read>, Error> {
        self.open_file_at(path, 0)
    }

    fn open_file_at(&mut self, path: &[u8], offset: u64) -> Result<Box<dyn Read>, Error> {
        let path = if self.single_file { &b""[..] } else { path };
        Ok(Box::new(HostFile::open(path, offset)?))
    }
}

struct FsDestination;

/// A file written through the host; `flush` makes it complete.
struct HostWriter {
    handle: u64,
    buf: Vec<u8>,
}

impl Write for HostWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.is_empty() && data.len() >= PIECE as usize {
            // Already a large piece: pass it through without another copy.
            host::write(self.handle, data).map_err(|e| io::Error::other(e.message))?;
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE as usize {
            host::write(self.handle, &self.buf).map_err(|e| io::Error::other(e.message))?;
            self.buf.clear();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            host::write(self.handle, &self.buf).map_err(|e| io::Error::other(e.message))?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl Drop for HostWriter {
    fn drop(&mut self) {
        host::close(self.handle);
    }
}

impl Destination for FsDestination {
    fn create_dir(&mut self, path: &[u8]) -> Result<(), Error> {
        host::mkdir(path)
    }

    fn create_file(&mut self, path: &[u8], overwrite: bool) -> Result<Box<dyn Write>, Error> {
        let handle = host::create(path, overwrite)?;
        Ok(Box::new(HostWriter {
            handle,
            buf: Vec::with_capacity(PIECE as usize),
        }))
    }

    fn symlink(&mut self, path: &[u8], target: &[u8], overwrite: bool) -> Result<(), Error> {
        if overwrite {
            match host::remove(path) {
                Err(e) if e.kind != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        host::symlink(path, target)
    }

    fn set_metadata(&mut self, path: &[u8], kind: EntryKind, meta: Metadata) -> Result<(), Error> {
        host::set_metadata(path, kind, &meta)
    }
}
