//! An SFTP version 3 client (draft-ietf-secsh-filexfer-02, as OpenSSH
//! serves it) with its extensions for atomic rename, fsync, free space and
//! transfer limits. Requests are pipelined: replies are matched by id, so
//! reads and writes keep many requests in flight instead of waiting a
//! round trip per piece.

use crate::channel::Channel;
use crate::invalid;
use crate::wire::{Reader, Writer};
use kast_sdk::{Error, ErrorKind};
use std::collections::{HashMap, HashSet, VecDeque};

const FXP_INIT: u8 = 1;
const FXP_VERSION: u8 = 2;
const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_LSTAT: u8 = 7;
const FXP_SETSTAT: u8 = 9;
const FXP_OPENDIR: u8 = 11;
const FXP_READDIR: u8 = 12;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_REALPATH: u8 = 16;
const FXP_STAT: u8 = 17;
const FXP_RENAME: u8 = 18;
const FXP_READLINK: u8 = 19;
const FXP_SYMLINK: u8 = 20;
const FXP_STATUS: u8 = 101;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;
const FXP_NAME: u8 = 104;
const FXP_ATTRS: u8 = 105;
const FXP_EXTENDED: u8 = 200;
const FXP_EXTENDED_REPLY: u8 = 201;

pub const OPEN_READ: u32 = 0x01;
pub const OPEN_WRITE: u32 = 0x02;
pub const OPEN_CREATE: u32 = 0x08;
pub const OPEN_TRUNCATE: u32 = 0x10;
pub const OPEN_EXCLUSIVE: u32 = 0x20;

const STATUS_OK: u32 = 0;
const STATUS_EOF: u32 = 1;

const ATTR_SIZE: u32 = 0x1;
const ATTR_UIDGID: u32 = 0x2;
const ATTR_PERMISSIONS: u32 = 0x4;
const ATTR_ACMODTIME: u32 = 0x8;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// Requests kept in flight by a streaming read or write.
const DEPTH: usize = 16;
/// The transfer size when the server does not say (the protocol's minimum).
const DEFAULT_PIECE: u32 = 32 * 1024;
/// Never larger than this, whatever the server says (OpenSSH's own cap).
const MAX_PIECE: u32 = 255 * 1024;

/// File attributes; SFTP v3 carries times in whole seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    pub size: Option<u64>,
    pub owner: Option<(u32, u32)>,
    pub permissions: Option<u32>,
    /// (atime, mtime) in seconds.
    pub times: Option<(u32, u32)>,
}

impl Attrs {
    fn decode(r: &mut Reader) -> Result<Attrs, Error> {
        let flags = r.u32()?;
        let mut a = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(r.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            a.owner = Some((r.u32()?, r.u32()?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(r.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.times = Some((r.u32()?, r.u32()?));
        }
        if flags & ATTR_EXTENDED != 0 {
            for _ in 0..r.u32()? {
                r.string()?;
                r.string()?;
            }
        }
        Ok(a)
    }

    fn encode(&self, w: &mut Writer) {
        let flags = self.size.map_or(0, |_| ATTR_SIZE)
            | self.owner.map_or(0, |_| ATTR_UIDGID)
            | self.permissions.map_or(0, |_| ATTR_PERMISSIONS)
            | self.times.map_or(0, |_| ATTR_ACMODTIME);
        w.u32(flags);
        if let Some(size) = self.size {
            w.u64(size);
        }
        if let Some((uid, gid)) = self.owner {
            w.u32(uid).u32(gid);
        }
        if let Some(p) = self.permissions {
            w.u32(p);
        }
        if let Some((atime, mtime)) = self.times {
            w.u32(atime).u32(mtime);
        }
    }

    /// The file type bits of the mode.
    pub fn file_type(&self) -> u32 {
        self.permissions.unwrap_or(0) & 0o170000
    }
}

/// One directory entry.
pub struct Name {
    pub name: Vec<u8>,
    pub attrs: Attrs,
}

enum Reply {
    Status(u32, String),
    Handle(Vec<u8>),
    Data(Vec<u8>),
    Names(Vec<Name>),
    Attrs(Attrs),
    Extended(Vec<u8>),
}

/// An SFTP session.
pub struct Sftp {
    ch: Channel,
    next_id: u32,
    /// Replies that arrived while another was awaited.
    stash: HashMap<u32, Reply>,
    /// Requests whose replies nobody will read (fire-and-forget closes).
    ignored: HashSet<u32>,
    extensions: Vec<String>,
    pub max_read: u32,
    pub max_write: u32,
    pub peer: String,
}

impl Sftp {
    /// Starts SFTP on an open channel and learns the server's limits.
    pub fn start(ch: Channel) -> Result<Sftp, Error> {
        let peer = ch.t.peer.clone();
        let mut s = Sftp {
            ch,
            next_id: 0,
            stash: HashMap::new(),
            ignored: HashSet::new(),
            extensions: Vec::new(),
            max_read: DEFAULT_PIECE,
            max_write: DEFAULT_PIECE,
            peer,
        };
        s.ch.write(&[0, 0, 0, 5, FXP_INIT, 0, 0, 0, 3])?;
        let (kind, body) = s.read_packet()?;
        if kind != FXP_VERSION {
            return Err(invalid(format!("{} did not start SFTP", s.peer)));
        }
        let mut r = Reader::new(&body);
        let version = r.u32()?;
        if version < 3 {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{} speaks SFTP version {version}; kast needs 3", s.peer),
            ));
        }
        while !r.is_empty() {
            s.extensions.push(r.utf8()?);
            r.string()?;
        }
        if s.has("limits@openssh.com") {
            let reply = s.extended("limits@openssh.com", |_| {})?;
            let mut r = Reader::new(&reply);
            r.u64()?;
            let read = r.u64()?;
            let write = r.u64()?;
            let fit = |v: u64| {
                if v == 0 {
                    DEFAULT_PIECE
                } else {
                    v.min(MAX_PIECE as u64) as u32
                }
            };
            s.max_read = fit(read);
            s.max_write = fit(write);
        }
        Ok(s)
    }

    pub fn has(&self, extension: &str) -> bool {
        self.extensions.iter().any(|e| e == extension)
    }

    fn read_packet(&mut self) -> Result<(u8, Vec<u8>), Error> {
        let len = u32::from_be_bytes(self.ch.read_exact(4)?.try_into().unwrap_or_default());
        if !(1..=(MAX_PIECE + 64 * 1024)).contains(&len) {
            return Err(invalid(format!(
                "{} sent an SFTP packet of length {len}",
                self.peer
            )));
        }
        let packet = self.ch.read_exact(len as usize)?;
        Ok((packet[0], packet[1..].to_vec()))
    }

    /// Sends a request; its reply is fetched with `wait`.
    fn request(&mut self, kind: u8, body: impl FnOnce(&mut Writer)) -> Result<u32, Error> {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let mut w = Writer::new();
        w.u32(0).u8(kind).u32(id);
        body(&mut w);
        let len = (w.buf.len() - 4) as u32;
        w.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.ch.write(&w.buf)?;
        Ok(id)
    }

    fn wait(&mut self, id: u32) -> Result<Reply, Error> {
        if let Some(reply) = self.stash.remove(&id) {
            return Ok(reply);
        }
        self.ch.flush()?;
        loop {
            let (kind, body) = self.read_packet()?;
            let mut r = Reader::new(&body);
            let got = r.u32()?;
            let reply = match kind {
                FXP_STATUS => Reply::Status(r.u32()?, r.utf8().unwrap_or_default()),
                FXP_HANDLE => Reply::Handle(r.string()?.to_vec()),
                FXP_DATA => Reply::Data(r.string()?.to_vec()),
                FXP_NAME => {
                    let count = r.u32()?;
                    let mut names = Vec::with_capacity(count.min(4096) as usize);
                    for _ in 0..count {
                        let name = r.string()?.to_vec();
                        r.string()?;
                        names.push(Name {
                            name,
                            attrs: Attrs::decode(&mut r)?,
                        });
                    }
                    Reply::Names(names)
                }
                FXP_ATTRS => Reply::Attrs(Attrs::decode(&mut r)?),
                FXP_EXTENDED_REPLY => Reply::Extended(r.rest().to_vec()),
                other => {
                    return Err(invalid(format!(
                        "{} sent unknown SFTP reply {other}",
                        self.peer
                    )));
                }
            };
            if got == id {
                return Ok(reply);
            }
            if !self.ignored.remove(&got) {
                self.stash.insert(got, reply);
            }
        }
    }

    fn call(&mut self, kind: u8, body: impl FnOnce(&mut Writer)) -> Result<Reply, Error> {
        let id = self.request(kind, body)?;
        self.wait(id)
    }

    /// The error for a status reply about `path`.
    fn status_error(&self, code: u32, message: &str, path: &[u8]) -> Error {
        let kind = match code {
            2 => ErrorKind::NotFound,
            3 => ErrorKind::PermissionDenied,
            5 => ErrorKind::InvalidInput,
            6 | 7 => ErrorKind::Unavailable,
            8 => ErrorKind::Unsupported,
            _ => ErrorKind::Other,
        };
        let message = if message.is_empty() {
            format!("status {code}")
        } else {
            message.to_string()
        };
        Error::new(
            kind,
            format!("{}:{}: {message}", self.peer, String::from_utf8_lossy(path)),
        )
    }

    fn expect_ok(&self, reply: Reply, path: &[u8]) -> Result<(), Error> {
        match reply {
            Reply::Status(STATUS_OK, _) => Ok(()),
            Reply::Status(code, message) => Err(self.status_error(code, &message, path)),
            _ => Err(self.unexpected()),
        }
    }

    fn unexpected(&self) -> Error {
        invalid(format!("{} sent a reply of the wrong type", self.peer))
    }

    fn extended(&mut self, name: &str, body: impl FnOnce(&mut Writer)) -> Result<Vec<u8>, Error> {
        match self.call(FXP_EXTENDED, |w| {
            w.string(name);
            body(w);
        })? {
            Reply::Extended(data) => Ok(data),
            // Extensions that only succeed or fail answer with a status.
            Reply::Status(STATUS_OK, _) => Ok(Vec::new()),
            Reply::Status(code, message) => Err(self.status_error(code, &message, name.as_bytes())),
            _ => Err(self.unexpected()),
        }
    }

    pub fn open(&mut self, path: &[u8], flags: u32, attrs: &Attrs) -> Result<Vec<u8>, Error> {
        match self.call(FXP_OPEN, |w| {
            w.string(path).u32(flags);
            attrs.encode(w);
        })? {
            Reply::Handle(h) => Ok(h),
            Reply::Status(code, message) => Err(self.status_error(code, &message, path)),
            _ => Err(self.unexpected()),
        }
    }

    pub fn close(&mut self, handle: &[u8]) -> Result<(), Error> {
        let reply = self.call(FXP_CLOSE, |w| {
            w.string(handle);
        })?;
        self.expect_ok(reply, b"(close)")
    }

    /// Closes without waiting for the answer (a read handle's close cannot
    /// lose data, so it need not cost a round trip).
    pub fn close_later(&mut self, handle: &[u8]) {
        if let Ok(id) = self.request(FXP_CLOSE, |w| {
            w.string(handle);
        }) {
            self.ignored.insert(id);
        }
    }

    fn attrs_call(&mut self, kind: u8, path: &[u8]) -> Result<Attrs, Error> {
        match self.call(kind, |w| {
            w.string(path);
        })? {
            Reply::Attrs(a) => Ok(a),
            Reply::Status(code, message) => Err(self.status_error(code, &message, path)),
            _ => Err(self.unexpected()),
        }
    }

    /// Attributes of `path` itself (a symlink is not followed).
    pub fn lstat(&mut self, path: &[u8]) -> Result<Attrs, Error> {
        self.attrs_call(FXP_LSTAT, path)
    }

    pub fn stat(&mut self, path: &[u8]) -> Result<Attrs, Error> {
        self.attrs_call(FXP_STAT, path)
    }

    pub fn setstat(&mut self, path: &[u8], attrs: &Attrs) -> Result<(), Error> {
        let reply = self.call(FXP_SETSTAT, |w| {
            w.string(path);
            attrs.encode(w);
        })?;
        self.expect_ok(reply, path)
    }

    /// Sets attributes of a symlink itself, where the server can.
    pub fn lsetstat(&mut self, path: &[u8], attrs: &Attrs) -> Result<(), Error> {
        if !self.has("lsetstat@openssh.com") {
            return Err(Error::unsupported("lsetstat"));
        }
        self.extended("lsetstat@openssh.com", |w| {
            w.string(path);
            attrs.encode(w);
        })
        .map(|_| ())
    }

    /// Every entry of a directory but `.` and `..`.
    pub fn list_dir(&mut self, path: &[u8]) -> Result<Vec<Name>, Error> {
        let handle = match self.call(FXP_OPENDIR, |w| {
            w.string(path);
        })? {
            Reply::Handle(h) => h,
            Reply::Status(code, message) => return Err(self.status_error(code, &message, path)),
            _ => return Err(self.unexpected()),
        };
        let mut out = Vec::new();
        let result = loop {
            match self.call(FXP_READDIR, |w| {
                w.string(&handle);
            }) {
                Ok(Reply::Names(names)) => out.extend(
                    names
                        .into_iter()
                        .filter(|n| n.name != b"." && n.name != b".."),
                ),
                Ok(Reply::Status(STATUS_EOF, _)) => break Ok(out),
                Ok(Reply::Status(code, message)) => {
                    break Err(self.status_error(code, &message, path));
                }
                Ok(_) => break Err(self.unexpected()),
                Err(e) => return Err(e),
            }
        };
        self.close_later(&handle);
        result
    }

    pub fn remove(&mut self, path: &[u8]) -> Result<(), Error> {
        let reply = self.call(FXP_REMOVE, |w| {
            w.string(path);
        })?;
        self.expect_ok(reply, path)
    }

    pub fn mkdir(&mut self, path: &[u8]) -> Result<(), Error> {
        let reply = self.call(FXP_MKDIR, |w| {
            w.string(path);
            Attrs::default().encode(w);
        })?;
        self.expect_ok(reply, path)
    }

    /// Renames, replacing `to` atomically where the server can.
    pub fn rename(&mut self, from: &[u8], to: &[u8]) -> Result<(), Error> {
        if self.has("posix-rename@openssh.com") {
            return self
                .extended("posix-rename@openssh.com", |w| {
                    w.string(from).string(to);
                })
                .map(|_| ());
        }
        let reply = self.call(FXP_RENAME, |w| {
            w.string(from).string(to);
        })?;
        self.expect_ok(reply, to)
    }

    pub fn readlink(&mut self, path: &[u8]) -> Result<Vec<u8>, Error> {
        self.name_call(FXP_READLINK, path)
    }

    /// The absolute form of `path` (`.` is the login directory).
    pub fn realpath(&mut self, path: &[u8]) -> Result<Vec<u8>, Error> {
        self.name_call(FXP_REALPATH, path)
    }

    fn name_call(&mut self, kind: u8, path: &[u8]) -> Result<Vec<u8>, Error> {
        match self.call(kind, |w| {
            w.string(path);
        })? {
            Reply::Names(mut names) if !names.is_empty() => Ok(names.swap_remove(0).name),
            Reply::Status(code, message) => Err(self.status_error(code, &message, path)),
            _ => Err(self.unexpected()),
        }
    }

    /// Creates `link` pointing at `target` (OpenSSH takes the two in the
    /// reverse of the draft's order, and every server copies OpenSSH).
    pub fn symlink(&mut self, link: &[u8], target: &[u8]) -> Result<(), Error> {
        let reply = self.call(FXP_SYMLINK, |w| {
            w.string(target).string(link);
        })?;
        self.expect_ok(reply, link)
    }

    /// Makes a file's written data durable, where the server can.
    pub fn fsync(&mut self, handle: &[u8]) -> Result<(), Error> {
        if !self.has("fsync@openssh.com") {
            return Ok(());
        }
        self.extended_status("fsync@openssh.com", handle)
    }

    fn extended_status(&mut self, name: &str, arg: &[u8]) -> Result<(), Error> {
        let reply = self.call(FXP_EXTENDED, |w| {
            w.string(name).string(arg);
        })?;
        self.expect_ok(reply, name.as_bytes())
    }

    /// Free bytes for an unprivileged user on the filesystem of `path`.
    pub fn free_space(&mut self, path: &[u8]) -> Option<u64> {
        if !self.has("statvfs@openssh.com") {
            return None;
        }
        let data = self
            .extended("statvfs@openssh.com", |w| {
                w.string(path);
            })
            .ok()?;
        let mut r = Reader::new(&data);
        let _bsize = r.u64().ok()?;
        let frsize = r.u64().ok()?;
        let _blocks = r.u64().ok()?;
        let _bfree = r.u64().ok()?;
        let bavail = r.u64().ok()?;
        Some(bavail.saturating_mul(frsize))
    }

    /// The error for a failed write to `path`: a full disk is named as such.
    fn write_error(&mut self, code: u32, message: &str, path: &[u8]) -> Error {
        let error = self.status_error(code, message, path);
        if error.kind == ErrorKind::Other
            && self
                .free_space(parent(path))
                .is_some_and(|free| free < 1 << 20)
        {
            return Error::new(
                ErrorKind::NoSpace,
                format!(
                    "{}:{}: no space left on the server's disk",
                    self.peer,
                    String::from_utf8_lossy(path)
                ),
            );
        }
        error
    }
}

fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &path[..i],
        None => b".",
    }
}

/// Streams a file's content with reads kept in flight.
pub struct ReadAhead {
    pub handle: Vec<u8>,
    next: u64,
    /// Stop before this offset (a ranged read); None reads to the end.
    limit: Option<u64>,
    /// Requests to keep in flight; grows from a small start so a small
    /// file costs few requests.
    depth: usize,
    pending: VecDeque<(u32, u64, u32)>,
    eof: bool,
}

impl ReadAhead {
    /// `expected` is the size the listing showed, if known: that much is
    /// requested at once, plus one read that finds the end.
    pub fn new(handle: Vec<u8>, offset: u64, limit: Option<u64>, expected: Option<u64>) -> Self {
        let depth = match expected {
            Some(size) => (size / MAX_PIECE as u64 + 2).min(DEPTH as u64) as usize,
            None => 1,
        };
        ReadAhead {
            handle,
            next: offset,
            limit,
            depth,
            pending: VecDeque::new(),
            eof: false,
        }
    }

    /// The next piece of the file, in order; None at the end.
    pub fn next_piece(&mut self, s: &mut Sftp) -> Result<Option<Vec<u8>>, Error> {
        while !self.eof && self.pending.len() < self.depth {
            let len = match self.limit {
                Some(limit) if self.next >= limit => break,
                Some(limit) => (limit - self.next).min(s.max_read as u64) as u32,
                None => s.max_read,
            };
            let (handle, offset) = (&self.handle, self.next);
            let id = s.request(FXP_READ, |w| {
                w.string(handle).u64(offset).u32(len);
            })?;
            self.pending.push_back((id, offset, len));
            self.next += len as u64;
        }
        let Some((id, offset, len)) = self.pending.pop_front() else {
            return Ok(None);
        };
        match s.wait(id)? {
            Reply::Data(data) if !data.is_empty() => {
                if (data.len() as u32) < len {
                    // A short read: ask for the rest before anything later.
                    let (handle, at) = (&self.handle, offset + data.len() as u64);
                    let rest = len - data.len() as u32;
                    let id = s.request(FXP_READ, |w| {
                        w.string(handle).u64(at).u32(rest);
                    })?;
                    self.pending.push_front((id, at, rest));
                } else {
                    self.depth = (self.depth * 2).min(DEPTH);
                }
                Ok(Some(data))
            }
            Reply::Data(_) | Reply::Status(STATUS_EOF, _) => {
                self.eof = true;
                self.forget(s);
                Ok(None)
            }
            Reply::Status(code, message) => {
                self.forget(s);
                Err(s.status_error(code, &message, b"(read)"))
            }
            _ => Err(s.unexpected()),
        }
    }

    /// Drops the requests still in flight (their replies are discarded).
    pub fn forget(&mut self, s: &mut Sftp) {
        for (id, _, _) in self.pending.drain(..) {
            if s.stash.remove(&id).is_none() {
                s.ignored.insert(id);
            }
        }
    }
}

/// Writes a file sequentially with writes kept in flight.
pub struct WriteBehind {
    pub handle: Vec<u8>,
    pub path: Vec<u8>,
    offset: u64,
    pending: VecDeque<u32>,
}

impl WriteBehind {
    pub fn new(handle: Vec<u8>, path: Vec<u8>) -> Self {
        WriteBehind {
            handle,
            path,
            offset: 0,
            pending: VecDeque::new(),
        }
    }

    pub fn write(&mut self, s: &mut Sftp, data: &[u8]) -> Result<(), Error> {
        for piece in data.chunks(s.max_write as usize) {
            if self.pending.len() >= DEPTH {
                self.settle_one(s)?;
            }
            let (handle, offset) = (&self.handle, self.offset);
            let id = s.request(FXP_WRITE, |w| {
                w.string(handle).u64(offset).string(piece);
            })?;
            self.pending.push_back(id);
            self.offset += piece.len() as u64;
        }
        Ok(())
    }

    fn settle_one(&mut self, s: &mut Sftp) -> Result<(), Error> {
        let Some(id) = self.pending.pop_front() else {
            return Ok(());
        };
        match s.wait(id)? {
            Reply::Status(STATUS_OK, _) => Ok(()),
            Reply::Status(code, message) => {
                for id in self.pending.drain(..) {
                    s.ignored.insert(id);
                }
                Err(s.write_error(code, &message, &self.path))
            }
            _ => Err(s.unexpected()),
        }
    }

    /// Waits until every write is acknowledged.
    pub fn settle(&mut self, s: &mut Sftp) -> Result<(), Error> {
        while !self.pending.is_empty() {
            self.settle_one(s)?;
        }
        Ok(())
    }
}
