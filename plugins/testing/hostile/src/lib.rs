//! A deliberately hostile connector, for kast's sandbox tests only. What it
//! does is chosen by the location's `do=` option:
//!
//! - `escape`: `put` tries to write outside its directory (an absolute path
//!   given as `target=`, and `..`) and to read `/etc/passwd`;
//! - `connect`: `put` connects to `target=IP:PORT`, an address not granted;
//! - `alloc`: `put` allocates without end;
//! - `spin`: `put` loops forever;
//! - `sleep`: `put` sleeps 45 s (a wait in a host call, not running wasm);
//! - `hang-read`: `put` connects to its location's own host and port and
//!   reads (the server given there accepts and never sends);
//! - `http-hang`: as `dav://`, `put` sends a request to its endpoint and
//!   waits for an answer that never comes;
//! - `fields`: `put` creates HTTP header fields of 100 kB each, 10,000 of
//!   them, and keeps them (host memory, no grant needed); `objects`: the
//!   same with 100,000 sets of 8 kB; `bodies`: 20,000 HTTP request bodies,
//!   each written as far as the host allows, kept unsent;
//! - `sockets`: `put` opens 100 connections to its location's address
//!   and keeps them;
//! - `trap-on-pack`: a working storage whose `after`-th pack put panics;
//! - `dup-list`: a working storage that lists every object three times;
//! - as a source: a listing with illegal and duplicate names, and a file
//!   far longer than its listed size.
//!
//! Otherwise it is a plain storage: objects as flat files in the directory
//! the host preopened.

use kast_sdk::{
    Connector, Entry, EntryKind, Error, ErrorKind, Listing, Location, Metadata, ObjectInfo,
    ObjectKind, PluginInfo, Role, Source, Storage, Upload, buffered, listing,
};
use std::io::{Cursor, Read};
use std::path::PathBuf;

struct Hostile;

impl Connector for Hostile {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: "0.0.1".into(),
            // `dav` as well, for the HTTP grant its locations get.
            schemes: vec!["hostile".into(), "dav".into()],
            roles: vec![Role::Storage, Role::Source],
            // A description that would clear the screen if printed raw.
            description: "misbehaves on purpose (tests only)\x1b[2J\x1b[31m".into(),
        }
    }

    fn storage(location: Location) -> Result<Box<dyn Storage>, Error> {
        Ok(Box::new(HostileStorage {
            address: location.address.clone().unwrap_or_default(),
            authority: location
                .url
                .split_once("://")
                .map(|(_, rest)| rest.split('/').next().unwrap_or("").to_string())
                .unwrap_or_default(),
            dir: PathBuf::from(location.parse_url()?.path),
            mode: location.option("do").unwrap_or("").to_string(),
            target: location.option("target").unwrap_or("").to_string(),
            after: location
                .option("after")
                .and_then(|a| a.parse().ok())
                .unwrap_or(1),
            packs: 0,
        }))
    }

    fn source(_location: Location) -> Result<Box<dyn Source>, Error> {
        Ok(Box::new(Malformed))
    }
}

kast_sdk::export_connector!(Hostile);

struct HostileStorage {
    /// The one address the sandbox granted, for `hang-read` and `sockets`.
    address: String,
    /// `host:port` of the location, for `http-hang`.
    authority: String,
    dir: PathBuf,
    mode: String,
    target: String,
    after: u32,
    packs: u32,
}

fn denied(what: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::PermissionDenied, format!("{what}: {e}"))
}

/// A GET of `http://AUTHORITY/`, waiting for the answer.
fn http_get(authority: &str) -> Result<(), Error> {
    use wasi::http::{outgoing_handler, types};
    let request = types::OutgoingRequest::new(types::Fields::new());
    let _ = request.set_scheme(Some(&types::Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some("/"));
    let future = outgoing_handler::handle(request, None)
        .map_err(|e| Error::new(ErrorKind::PermissionDenied, format!("http: {e:?}")))?;
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(_))) => Ok(()),
        other => Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("http: {other:?}"),
        )),
    }
}

impl HostileStorage {
    fn file(&self, kind: ObjectKind, name: &str) -> PathBuf {
        self.dir.join(format!("{kind:?}-{name}").to_lowercase())
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, Error> {
        std::fs::read(self.file(kind, name)).map_err(|e| Error::io(name, e))
    }

    fn attack(&mut self) -> Result<(), Error> {
        match self.mode.as_str() {
            "escape" => {
                std::fs::write(&self.target, b"escaped").map_err(|e| denied("write outside", e))?;
                std::fs::write(self.dir.join("../escaped"), b"escaped")
                    .map_err(|e| denied("write ..", e))?;
                std::fs::read("/etc/passwd").map_err(|e| denied("read /etc/passwd", e))?;
                Ok(())
            }
            "connect" => {
                std::net::TcpStream::connect(&self.target).map_err(|e| denied("connect", e))?;
                Ok(())
            }
            "http" => http_get(&self.target),
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "chatter" => {
                // A terminal-clearing escape, then far more than any log keeps.
                println!("hello from inside\x1b[2J");
                let line = "z".repeat(999);
                for _ in 0..20_000 {
                    eprintln!("{line}");
                }
                Ok(())
            }
            "shout" => Err(Error::new(
                ErrorKind::Other,
                format!("\x1b[2J\rwarning: forged{}", "!".repeat(100 << 20)),
            )),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(45));
                Ok(())
            }
            "hang-read" => {
                let mut stream = std::net::TcpStream::connect(&self.address)
                    .map_err(|e| denied("connect", e))?;
                let mut byte = [0u8; 1];
                stream.read(&mut byte).map_err(|e| denied("read", e))?;
                Ok(())
            }
            "http-hang" => http_get(&self.authority),
            "fields" | "objects" => {
                use wasi::http::types;
                // Big sets of fields, or very many small ones.
                let (size, count) = match self.mode.as_str() {
                    "fields" => (100_000, 10_000),
                    _ => (8_000, 100_000),
                };
                let value = vec![b'v'; size];
                let mut hoard = Vec::new();
                for _ in 0..count {
                    let fields = types::Fields::new();
                    let _ = fields.append("x-hoard", &value);
                    hoard.push(fields);
                }
                std::hint::black_box(&hoard);
                Ok(())
            }
            "bodies" => {
                use wasi::http::types;
                // Request bodies written as far as the host lets them, kept
                // unsent (no grant is needed to make them).
                let mut hoard = Vec::new();
                for _ in 0..20_000 {
                    let request = types::OutgoingRequest::new(types::Fields::new());
                    let body = request
                        .body()
                        .map_err(|()| Error::new(ErrorKind::Other, "body"))?;
                    let stream = body
                        .write()
                        .map_err(|()| Error::new(ErrorKind::Other, "stream"))?;
                    let permitted = stream.check_write().unwrap_or(0).min(1 << 20);
                    let _ = stream.write(&vec![b'b'; permitted as usize]);
                    hoard.push((request, body, stream));
                }
                std::hint::black_box(&hoard);
                Ok(())
            }
            "sockets" => {
                let mut held = Vec::new();
                for _ in 0..100 {
                    held.push(
                        std::net::TcpStream::connect(&self.address)
                            .map_err(|e| denied("connect", e))?,
                    );
                }
                std::hint::black_box(&held);
                Ok(())
            }
            "spin" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            _ => Ok(()),
        }
    }
}

impl Storage for HostileStorage {
    fn put(&mut self, kind: ObjectKind, name: &str, size: u64) -> Result<Box<dyn Upload>, Error> {
        self.attack()?;
        let mut crash = false;
        if self.mode == "trap-on-pack" && kind == ObjectKind::Pack {
            self.packs += 1;
            crash = self.packs >= self.after;
        }
        let partial = self.dir.join("partial.tmp");
        let tmp = self.dir.join(format!("{name}.tmp"));
        let file = self.file(kind, name);
        Ok(buffered(size, move |data| {
            if crash {
                // Half a pack on disk under a temporary name, then the crash.
                let _ = std::fs::write(partial, &data[..data.len() / 2]);
                panic!("hostile plugin crashes mid-write");
            }
            std::fs::write(&tmp, &data).map_err(|e| Error::io("put", e))?;
            std::fs::rename(&tmp, file).map_err(|e| Error::io("put", e))
        }))
    }

    fn get(&mut self, kind: ObjectKind, name: &str) -> Result<Box<dyn Read>, Error> {
        Ok(Box::new(Cursor::new(self.read(kind, name)?)))
    }

    fn get_range(
        &mut self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        let data = self.read(kind, name)?;
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(length as usize).min(data.len());
        Ok(data[start..end].to_vec())
    }

    fn list(&mut self, kind: ObjectKind) -> Result<Listing<ObjectInfo>, Error> {
        let prefix = format!("{kind:?}-").to_lowercase();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", e))? {
            let entry = entry.map_err(|e| Error::io("list", e))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_prefix(&prefix) {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                let copies = if self.mode == "dup-list" { 3 } else { 1 };
                for _ in 0..copies {
                    out.push(ObjectInfo {
                        name: name.to_string(),
                        size,
                    });
                }
            }
        }
        Ok(listing(out))
    }

    fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<(), Error> {
        match std::fs::remove_file(self.file(kind, name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(name, e)),
            _ => Ok(()),
        }
    }
}

/// A source that lies: illegal names, and a file that overflows its reads.
struct Malformed;

fn file(name: &[u8], size: u64) -> Entry {
    Entry {
        name: name.to_vec(),
        kind: EntryKind::File,
        meta: Metadata {
            mode: 0o100644,
            size,
            ..Metadata::empty()
        },
        symlink_target: None,
    }
}

/// Far more content than the listing's size promised (3 MiB, not 10 bytes).
struct Flood(usize);

impl Read for Flood {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0);
        buf[..n].fill(b'x');
        self.0 -= n;
        Ok(n)
    }
}

impl Source for Malformed {
    fn list_dir(&mut self, path: &[u8]) -> Result<Listing<Entry>, Error> {
        if !path.is_empty() {
            return Ok(listing(Vec::new()));
        }
        Ok(listing(vec![
            file(b"..", 5),
            file(b"a/b", 5),
            file(b"", 5),
            file(b"nul\0name", 5),
            file(b"ok.txt", 5),
            // Would clear the screen and forge a line if printed raw.
            file(b"evil\x1b[2J\rwarning: forged.txt", 5),
            file(b"dup", 5),
            file(b"dup", 5),
            file(b"flood", 10),
            Entry {
                name: b"not-a-dir".to_vec(),
                kind: EntryKind::Dir,
                meta: Metadata::empty(),
                symlink_target: None,
            },
        ]))
    }

    fn open_file(&mut self, path: &[u8]) -> Result<Box<dyn Read>, Error> {
        match path {
            b"flood" => Ok(Box::new(Flood(3 << 20))),
            b"ok.txt" | b"dup" | b"evil\x1b[2J\rwarning: forged.txt" => {
                Ok(Box::new(&b"fine\n"[..]))
            }
            _ => Err(Error::new(ErrorKind::NotFound, "no such file")),
        }
    }
}
