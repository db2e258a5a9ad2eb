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
    Connector, Destination, Entry, EntryKind, Error, ErrorKind, Listing, Location, Metadata,
    ObjectInfo, ObjectKind, PluginInfo, Role, Source, Storage, Upload, layout, listing,
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
        Ok(Box::new(FsStorage { counter: 0 }))
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

/// Objects as files, in the engine's native layout; puts are written to a
/// temporary name, synced, renamed, and the folder synced.
struct FsStorage {
    counter: u64,
}

impl FsStorage {
    fn path(kind: ObjectKind, name: &str) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let (dir, path) = layout::object_path(kind, name)?;
        Ok((dir.into_bytes(), path.into_bytes()))
    }

    fn list_folder(dir: &str, out: &mut Vec<ObjectInfo>) -> Result<(), Error> {
        let entries = match host::list_dir(dir.as_bytes()) {
            Ok(e) => e,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for e in entries {
            let Ok(name) = String::from_utf8(e.name) else {
                continue;
            };
            if e.kind == EntryKind::File && layout::is_object_name(&name) {
                out.push(ObjectInfo {
                    name,
                    size: e.meta.size,
                });
            }
        }
        Ok(())
    }
}

impl Storage for FsStorage {
    fn put(&mut self, kind: ObjectKind, name: &str, _size: u64) -> Result<Box<dyn Upload>, Error> {
        let (dir, path) = Self::path(kind, name)?;
        self.counter += 1;
        let mut tmp = dir.clone();
        if !tmp.is_empty() {
            tmp.push(b'/');
        }
        tmp.extend_from_slice(format!(".tmp-{name}-{}", self.counter).as_bytes());
        host::mkdir(&dir)?;
        let handle = host::create(&tmp, false)?;
        Ok(Box::new(FsUpload {
            handle: Some(handle),
            tmp,
            dir,
            path,
        }))
    }

    fn get(&mut self, kind: ObjectKind, name: &str) -> Result<Box<dyn Read>, Error> {
        let (_, path) = Self::path(kind, name)?;
        Ok(Box::new(HostFile::open(&path, 0)?))
    }

    fn get_range(
        &mut self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        let (_, path) = Self::path(kind, name)?;
        let length = u32::try_from(length)
            .map_err(|_| Error::new(ErrorKind::InvalidInput, "range too long"))?;
        let handle = host::open_read(&path)?;
        let result = host::read_at(handle, offset, length);
        host::close(handle);
        result
    }

    fn list(&mut self, kind: ObjectKind) -> Result<Listing<ObjectInfo>, Error> {
        let mut out = Vec::new();
        match kind {
            ObjectKind::Config => match host::stat(b"config") {
                Ok(e) => out.push(ObjectInfo {
                    name: "config".into(),
                    size: e.meta.size,
                }),
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
            ObjectKind::Pack => {
                let fans = match host::list_dir(b"packs") {
                    Ok(f) => f,
                    Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(e),
                };
                for fan in fans.into_iter().filter(|f| f.kind == EntryKind::Dir) {
                    let fan = String::from_utf8_lossy(&fan.name).into_owned();
                    Self::list_folder(&format!("packs/{fan}"), &mut out)?;
                }
            }
            _ => Self::list_folder(layout::folder(kind), &mut out)?,
        }
        Ok(listing(out))
    }

    fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<(), Error> {
        let (_, path) = Self::path(kind, name)?;
        match host::remove(&path) {
            Err(e) if e.kind != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// An object being written to a temporary name: committed, it is synced,
/// renamed into place and its folder synced; dropped before, removed.
struct FsUpload {
    /// Until committed.
    handle: Option<u64>,
    tmp: Vec<u8>,
    dir: Vec<u8>,
    path: Vec<u8>,
}

impl Upload for FsUpload {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        let handle = self
            .handle
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "write after commit"))?;
        host::write(handle, data)
    }

    fn commit(mut self: Box<Self>) -> Result<(), Error> {
        let handle = self
            .handle
            .take()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "committed twice"))?;
        let synced = host::sync(handle);
        host::close(handle);
        let result = synced
            .and_then(|()| host::rename(&self.tmp, &self.path))
            .and_then(|()| host::sync_dir(&self.dir));
        if result.is_err() {
            let _ = host::remove(&self.tmp);
        }
        result
    }
}

impl Drop for FsUpload {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            host::close(handle);
            let _ = host::remove(&self.tmp);
        }
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
