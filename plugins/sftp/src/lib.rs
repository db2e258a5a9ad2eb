//! kast's built-in `sftp` connector: a directory on an SSH server as
//! storage, source or destination, from inside the sandbox.
//!
//! It carries its own SSH client ([`transport`], [`auth`], [`channel`]) on
//! RustCrypto crates, because the async SSH crates do not run under WASI;
//! the only network it has is one TCP connection to the address the host
//! granted. Keys and known_hosts arrive as option text, read by the host.
//!
//! Location: `sftp://user@host[:port]/absolute/path`, or `/~/path` for a
//! path under the login directory. Options: `identity` (repeatable),
//! `identity_passphrase`, `password`, `known_hosts`, `fingerprint`,
//! `timeout` (seconds), `insecure_accept_any_host_key=true` (tests only).

mod auth;
mod chacha;
mod channel;
mod cipher;
mod hostkey;
mod sftp;
mod transport;
mod wire;

use auth::Credentials;
use hostkey::HostKeyPolicy;
use kast_sdk::{
    Connector, Destination, Entry, EntryKind, Error, ErrorKind, FileInfo, FileStorage, FileTree,
    Listing, Location, Metadata, PluginInfo, Role, Source, Storage, listing,
};
use sftp::{Attrs, ReadAhead, Sftp, WriteBehind};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::Duration;

pub(crate) fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidInput, message)
}

pub(crate) fn unavailable(message: String) -> Error {
    Error::new(ErrorKind::Unavailable, message)
}

pub(crate) fn other(message: String) -> Error {
    Error::new(ErrorKind::Other, message)
}

impl From<wire::Malformed> for Error {
    fn from(e: wire::Malformed) -> Error {
        invalid(e.to_string())
    }
}

struct SftpConnector;

impl Connector for SftpConnector {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "sftp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            schemes: vec!["sftp".into()],
            roles: vec![Role::Storage, Role::Source, Role::Destination],
            description: "a directory on an SSH server (SFTP)".into(),
        }
    }

    fn storage(location: Location) -> Result<Box<dyn Storage>, Error> {
        let (sftp, root) = connect(&location)?;
        Ok(Box::new(FileStorage::new(SftpTree {
            s: Rc::new(RefCell::new(sftp)),
            root,
            made: HashSet::new(),
        })))
    }

    fn source(location: Location) -> Result<Box<dyn Source>, Error> {
        let (mut sftp, root) = connect(&location)?;
        let attrs = sftp.lstat(&root)?;
        let single_file = attrs.file_type() != S_IFDIR;
        Ok(Box::new(SftpSource {
            s: Rc::new(RefCell::new(sftp)),
            root,
            single_file,
            sizes: HashMap::new(),
        }))
    }

    fn destination(location: Location) -> Result<Box<dyn Destination>, Error> {
        let user = parse_url(&location)?.user;
        let (mut sftp, root) = connect(&location)?;
        make_dirs(&mut sftp, &root, &mut HashSet::new())?;
        Ok(Box::new(SftpDestination {
            s: Rc::new(RefCell::new(sftp)),
            root,
            set_owner: user == "root",
        }))
    }
}

kast_sdk::export_connector!(SftpConnector);

/// The parts of an `sftp://` URL the plugin needs: SSH logs in with keys
/// (or `password=`), so a password in the URL's user part is not used.
struct Url {
    user: String,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(location: &Location) -> Result<Url, Error> {
    let url = location.parse_url()?;
    let user = url.user.filter(|u| !u.is_empty()).ok_or_else(|| {
        invalid(format!(
            "{}: give the user to log in as: sftp://USER@host/path",
            kast_sdk::url::redact(&location.url)
        ))
    })?;
    Ok(Url {
        user,
        host: url.host.unwrap_or_default(),
        port: url.port.unwrap_or(22),
        path: url.path,
    })
}

/// How long to wait for the server before giving up, unless `timeout=` says.
const DEFAULT_TIMEOUT_SECONDS: u64 = 120;

/// Logs in and starts SFTP; returns the session and the absolute root.
fn connect(location: &Location) -> Result<(Sftp, Vec<u8>), Error> {
    let url = parse_url(location)?;
    let address = location
        .address
        .clone()
        .ok_or_else(|| invalid("the host gave no address to connect to".into()))?;
    let ip = address
        .rsplit_once(':')
        .map(|(ip, _)| ip.trim_matches(['[', ']']).to_string());
    let policy = if location.option("insecure_accept_any_host_key") == Some("true") {
        HostKeyPolicy::AcceptAny
    } else if let Some(fingerprint) = location.option("fingerprint") {
        HostKeyPolicy::Fingerprint(fingerprint.to_string())
    } else {
        HostKeyPolicy::KnownHosts {
            text: location.option("known_hosts").unwrap_or("").to_string(),
            names: HostKeyPolicy::names(&url.host, ip.as_deref(), url.port),
        }
    };
    let passphrase = location.option("identity_passphrase");
    let mut keys = Vec::new();
    for (key, text) in &location.options {
        match key.as_str() {
            "identity" => {
                let name = format!("identity #{}", keys.len() + 1);
                keys.push((name, Credentials::load_key(text, passphrase)?));
            }
            // The user's usual keys: one that needs a passphrase is skipped.
            "default_identity" => {
                if let Ok(k) = Credentials::load_key(text, passphrase) {
                    keys.push((format!("~/.ssh key {}", k.algorithm()), k));
                }
            }
            _ => {}
        }
    }
    let credentials = Credentials {
        user: url.user.clone(),
        keys,
        password: location.option("password").map(str::to_string),
    };
    let peer = format!("{}@{}", url.user, url.host);
    let timeout = location.seconds_option("timeout", DEFAULT_TIMEOUT_SECONDS)?;
    let mut transport =
        transport::Transport::connect(&address, peer, policy, Duration::from_secs(timeout))?;
    auth::authenticate(&mut transport, &credentials)?;
    let channel = channel::Channel::open_sftp(transport)?;
    let mut s = Sftp::start(channel)?;
    let root = match url.path.strip_prefix("/~") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            let mut home = s.realpath(b".")?;
            home.extend_from_slice(rest.as_bytes());
            home
        }
        _ => url.path.into_bytes(),
    };
    let root = match root.strip_suffix(b"/") {
        Some(r) if !r.is_empty() => r.to_vec(),
        _ => root,
    };
    Ok((s, root))
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// `root/rel`, for the relative paths the host passes.
fn join(root: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut out = root.to_vec();
    if !rel.is_empty() {
        if out.last() != Some(&b'/') {
            out.push(b'/');
        }
        out.extend_from_slice(rel);
    }
    out
}

/// `mkdir -p`, remembering what exists so a busy folder costs one check.
fn make_dirs(s: &mut Sftp, dir: &[u8], made: &mut HashSet<Vec<u8>>) -> Result<(), Error> {
    if dir.is_empty() || made.contains(dir) {
        return Ok(());
    }
    match s.lstat(dir) {
        Ok(a) if a.file_type() == S_IFDIR => {}
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{}:{} exists and is not a directory",
                    s.peer,
                    String::from_utf8_lossy(dir)
                ),
            ));
        }
        Err(e) if e.kind == ErrorKind::NotFound => {
            if let Some(i) = dir.iter().rposition(|&b| b == b'/').filter(|&i| i > 0) {
                make_dirs(s, &dir[..i], made)?;
            }
            if let Err(e) = s.mkdir(dir) {
                // Someone else may have made it meanwhile.
                if !s.lstat(dir).is_ok_and(|a| a.file_type() == S_IFDIR) {
                    return Err(e);
                }
            }
        }
        Err(e) => return Err(e),
    }
    made.insert(dir.to_vec());
    Ok(())
}

/// A store's objects as files, in the engine's native layout (the same as
/// The store's files on the server; the SDK's [`FileStorage`] lays them
/// out and writes each through a temporary name: written in parts with
/// writes in flight, synced (fsync@openssh.com), closed, then renamed over
/// the final name, so a reader sees all or nothing.
struct SftpTree {
    s: Rc<RefCell<Sftp>>,
    root: Vec<u8>,
    made: HashSet<Vec<u8>>,
}

impl SftpTree {
    fn path(&self, rel: &str) -> Vec<u8> {
        join(&self.root, rel.as_bytes())
    }

    fn read_all(&mut self, path: &[u8], offset: u64, limit: Option<u64>) -> Result<Vec<u8>, Error> {
        let handle = self
            .s
            .borrow_mut()
            .open(path, sftp::OPEN_READ, &Attrs::default())?;
        let expected = limit.map(|l| l - offset);
        let mut reader = ReadAhead::new(handle, offset, limit, expected);
        let mut out = Vec::with_capacity(expected.unwrap_or(0).min(64 << 20) as usize);
        let result = loop {
            match reader.next_piece(&mut self.s.borrow_mut()) {
                Ok(Some(piece)) => out.extend_from_slice(&piece),
                Ok(None) => break Ok(out),
                Err(e) => break Err(e),
            }
        };
        reader.forget(&mut self.s.borrow_mut());
        self.s.borrow_mut().close_later(&reader.handle);
        result
    }
}

impl FileTree for SftpTree {
    type Writer = WriteBehind;

    fn make_dirs(&mut self, dir: &str) -> Result<(), Error> {
        let dir = self.path(dir);
        make_dirs(&mut self.s.borrow_mut(), &dir, &mut self.made)
    }

    fn list(&mut self, dir: &str) -> Result<Option<Vec<FileInfo>>, Error> {
        let names = match self.s.borrow_mut().list_dir(&self.path(dir)) {
            Ok(n) => n,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let kind = |a: &Attrs| match a.file_type() {
            S_IFREG => EntryKind::File,
            S_IFDIR => EntryKind::Dir,
            _ => EntryKind::Special,
        };
        Ok(Some(
            names
                .into_iter()
                .map(|n| FileInfo {
                    kind: kind(&n.attrs),
                    size: n.attrs.size.unwrap_or(0),
                    name: n.name,
                })
                .collect(),
        ))
    }

    fn size(&mut self, path: &str) -> Result<Option<u64>, Error> {
        match self.s.borrow_mut().stat(&self.path(path)) {
            Ok(a) => Ok(Some(a.size.unwrap_or(0))),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn create(&mut self, path: &str, _size: u64) -> Result<WriteBehind, Error> {
        let path = self.path(path);
        let flags =
            sftp::OPEN_WRITE | sftp::OPEN_CREATE | sftp::OPEN_TRUNCATE | sftp::OPEN_EXCLUSIVE;
        let attrs = Attrs {
            permissions: Some(0o600),
            ..Attrs::default()
        };
        let handle = self.s.borrow_mut().open(&path, flags, &attrs)?;
        Ok(WriteBehind::new(handle, path))
    }

    fn write(&mut self, writer: &mut WriteBehind, data: &[u8]) -> Result<(), Error> {
        writer.write(&mut self.s.borrow_mut(), data)
    }

    fn finish(&mut self, mut writer: WriteBehind) -> Result<(), Error> {
        let s = &mut *self.s.borrow_mut();
        let written = writer.settle(s).and_then(|()| s.fsync(&writer.handle));
        let closed = s.close(&writer.handle);
        written.and(closed)
    }

    fn abandon(&mut self, mut writer: WriteBehind) {
        let s = &mut *self.s.borrow_mut();
        let _ = writer.settle(s);
        let _ = s.close(&writer.handle);
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
        let (from, to) = (self.path(from), self.path(to));
        self.s.borrow_mut().rename(&from, &to)
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        let path = self.path(path);
        self.s.borrow_mut().remove(&path)
    }

    fn open(&mut self, path: &str) -> Result<Box<dyn Read>, Error> {
        let handle =
            self.s
                .borrow_mut()
                .open(&self.path(path), sftp::OPEN_READ, &Attrs::default())?;
        Ok(Box::new(RemoteFile {
            s: self.s.clone(),
            reader: ReadAhead::new(handle, 0, None, None),
            piece: Vec::new(),
            at: 0,
        }))
    }

    fn read_range(&mut self, path: &str, offset: u64, length: u64) -> Result<Vec<u8>, Error> {
        let end = offset
            .checked_add(length)
            .ok_or_else(|| invalid("range past the end of any object".into()))?;
        let path = self.path(path);
        self.read_all(&path, offset, Some(end))
    }
}

/// A remote tree to back up.
struct SftpSource {
    s: Rc<RefCell<Sftp>>,
    root: Vec<u8>,
    single_file: bool,
    /// Sizes from listings, so a file's reads can all be sent at once.
    sizes: HashMap<Vec<u8>, u64>,
}

fn entry_of(s: &mut Sftp, path: &[u8], name: Vec<u8>, attrs: &Attrs) -> Result<Entry, Error> {
    let mode = attrs.permissions.unwrap_or(0);
    let kind = match mode & S_IFMT {
        S_IFDIR => EntryKind::Dir,
        S_IFREG => EntryKind::File,
        S_IFLNK => EntryKind::Symlink,
        _ => EntryKind::Special,
    };
    let symlink_target = if kind == EntryKind::Symlink {
        Some(s.readlink(path)?)
    } else {
        None
    };
    let (uid, gid) = attrs.owner.unwrap_or((0, 0));
    let mtime_ns = attrs.times.map_or(0, |(_, m)| m as i64 * 1_000_000_000);
    Ok(Entry {
        name,
        kind,
        meta: Metadata {
            mode,
            uid,
            gid,
            mtime_ns,
            // SFTP v3 has no ctime or inode: the mtime stands in for ctime.
            ctime_ns: mtime_ns,
            inode: 0,
            size: if kind == EntryKind::File {
                attrs.size.unwrap_or(0)
            } else {
                0
            },
            xattrs: Vec::new(),
        },
        symlink_target,
    })
}

impl Source for SftpSource {
    fn list_dir(&mut self, path: &[u8]) -> Result<Listing<Entry>, Error> {
        let s = &mut *self.s.borrow_mut();
        if self.single_file {
            let attrs = s.lstat(&self.root)?;
            let name = self
                .root
                .rsplit(|&b| b == b'/')
                .next()
                .unwrap_or(b"")
                .to_vec();
            return Ok(listing(vec![entry_of(s, &self.root, name, &attrs)?]));
        }
        let dir = join(&self.root, path);
        let mut out = Vec::new();
        for n in s.list_dir(&dir)? {
            let full = join(&dir, &n.name);
            let entry = entry_of(s, &full, n.name, &n.attrs)?;
            if entry.kind == EntryKind::File {
                self.sizes.insert(full, entry.meta.size);
            }
            out.push(entry);
        }
        Ok(listing(out))
    }

    fn open_file(&mut self, path: &[u8]) -> Result<Box<dyn Read>, Error> {
        self.open_file_at(path, 0)
    }

    fn open_file_at(&mut self, path: &[u8], offset: u64) -> Result<Box<dyn Read>, Error> {
        let full = if self.single_file {
            self.root.clone()
        } else {
            join(&self.root, path)
        };
        let expected = self
            .sizes
            .remove(&full)
            .map(|size| size.saturating_sub(offset));
        let handle = self
            .s
            .borrow_mut()
            .open(&full, sftp::OPEN_READ, &Attrs::default())?;
        Ok(Box::new(RemoteFile {
            s: self.s.clone(),
            reader: ReadAhead::new(handle, offset, None, expected),
            piece: Vec::new(),
            at: 0,
        }))
    }
}

/// A remote file being read with reads in flight.
struct RemoteFile {
    s: Rc<RefCell<Sftp>>,
    reader: ReadAhead,
    piece: Vec<u8>,
    at: usize,
}

impl Read for RemoteFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.piece.len() {
            let next = self.reader.next_piece(&mut self.s.borrow_mut());
            match next {
                Ok(Some(piece)) => {
                    self.piece = piece;
                    self.at = 0;
                }
                Ok(None) => return Ok(0),
                Err(e) => return Err(io::Error::other(e.message)),
            }
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for RemoteFile {
    fn drop(&mut self) {
        let s = &mut *self.s.borrow_mut();
        self.reader.forget(s);
        s.close_later(&self.reader.handle);
    }
}

/// Where a restore writes on the server.
struct SftpDestination {
    s: Rc<RefCell<Sftp>>,
    root: Vec<u8>,
    /// Ownership is set only when logged in as root (nobody else may).
    set_owner: bool,
}

impl Destination for SftpDestination {
    fn create_dir(&mut self, path: &[u8]) -> Result<(), Error> {
        let full = join(&self.root, path);
        let s = &mut *self.s.borrow_mut();
        match s.mkdir(&full) {
            Ok(()) => Ok(()),
            Err(e) => match s.lstat(&full) {
                Ok(a) if a.file_type() == S_IFDIR => Ok(()),
                Ok(_) => Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{}:{} exists and is not a directory",
                        s.peer,
                        String::from_utf8_lossy(&full)
                    ),
                )),
                Err(_) => Err(e),
            },
        }
    }

    fn create_file(&mut self, path: &[u8], overwrite: bool) -> Result<Box<dyn Write>, Error> {
        let full = join(&self.root, path);
        let s = &mut *self.s.borrow_mut();
        let mut flags = sftp::OPEN_WRITE | sftp::OPEN_CREATE | sftp::OPEN_TRUNCATE;
        if !overwrite {
            // SFTP v3 reports an existing file as a bare failure: look first.
            if s.lstat(&full).is_ok() {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{}:{} already exists",
                        s.peer,
                        String::from_utf8_lossy(&full)
                    ),
                ));
            }
            flags |= sftp::OPEN_EXCLUSIVE;
        }
        let attrs = Attrs {
            permissions: Some(0o600),
            ..Attrs::default()
        };
        let handle = s.open(&full, flags, &attrs)?;
        Ok(Box::new(RemoteWriter {
            s: self.s.clone(),
            writer: Some(WriteBehind::new(handle, full)),
        }))
    }

    fn symlink(&mut self, path: &[u8], target: &[u8], overwrite: bool) -> Result<(), Error> {
        let full = join(&self.root, path);
        let s = &mut *self.s.borrow_mut();
        if overwrite {
            match s.remove(&full) {
                Err(e) if e.kind != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        s.symlink(&full, target)
    }

    fn set_metadata(&mut self, path: &[u8], kind: EntryKind, meta: Metadata) -> Result<(), Error> {
        let full = join(&self.root, path);
        let s = &mut *self.s.borrow_mut();
        let wanted = meta.mtime_ns.div_euclid(1_000_000_000);
        let seconds = wanted.clamp(0, u32::MAX as i64) as u32;
        let owner = self.set_owner.then_some((meta.uid, meta.gid));
        if kind == EntryKind::Symlink {
            let attrs = Attrs {
                owner,
                times: Some((seconds, seconds)),
                ..Attrs::default()
            };
            // Where the server cannot change a link itself, leave it be.
            return match s.lsetstat(&full, &attrs) {
                Err(e) if e.kind == ErrorKind::Unsupported => Ok(()),
                other => other.and_then(|()| time_held(wanted, seconds)),
            };
        }
        if let Some(owner) = owner {
            s.setstat(
                &full,
                &Attrs {
                    owner: Some(owner),
                    ..Attrs::default()
                },
            )?;
        }
        s.setstat(
            &full,
            &Attrs {
                permissions: Some(meta.mode & 0o7777),
                times: Some((seconds, seconds)),
                ..Attrs::default()
            },
        )?;
        time_held(wanted, seconds)
    }
}

/// SFTP version 3 carries times as unsigned 32-bit seconds (1970 to 2106):
/// a time outside is set to the nearest it can say, and said to be
/// `unsupported`, which the host counts and reports once per restore.
fn time_held(wanted: i64, sent: u32) -> Result<(), Error> {
    if wanted == i64::from(sent) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Unsupported,
        format!(
            "SFTP carries times from 1970 to 2106 only: {wanted} s since 1970 was set as {sent} s"
        ),
    ))
}

/// A remote file being written; `flush` waits for every write and closes.
struct RemoteWriter {
    s: Rc<RefCell<Sftp>>,
    writer: Option<WriteBehind>,
}

impl Write for RemoteWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("the file is already finished"))?;
        writer
            .write(&mut self.s.borrow_mut(), data)
            .map_err(|e| io::Error::other(e.message))?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        let s = &mut *self.s.borrow_mut();
        let written = writer.settle(s);
        let closed = s.close(&writer.handle);
        written.and(closed).map_err(|e| io::Error::other(e.message))
    }
}

impl Drop for RemoteWriter {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            self.s.borrow_mut().close_later(&writer.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(url: &str) -> Location {
        Location {
            url: url.into(),
            options: Vec::new(),
            address: None,
        }
    }

    #[test]
    fn urls_give_user_host_port_and_path() {
        let u = parse_url(&location(
            "sftp://bob%40corp@example.org:2222/srv/my%20store?x=1",
        ))
        .unwrap();
        assert_eq!(
            (u.user.as_str(), u.host.as_str(), u.port, u.path.as_str()),
            ("bob@corp", "example.org", 2222, "/srv/my store")
        );
        let v6 = parse_url(&location("sftp://a@[::1]/x")).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 22));
        assert!(parse_url(&location("sftp://example.org/x")).is_err());
        assert_eq!(join(b"/a", b""), b"/a");
        assert_eq!(join(b"/", b"b/c"), b"/b/c");
    }
}
