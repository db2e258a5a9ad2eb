//! kast's built-in `ftp` connector: a directory on an FTP server (or FTPS,
//! explicit TLS) as storage, source or destination, from inside the sandbox.
//!
//! The protocol is `suppaftp`'s (synchronous, over WASI sockets), with
//! rustls for FTPS. Data connections go to the control connection's IP
//! address whatever the server's PASV reply says: the host grants the
//! plugin that one address only (control port plus passive ports).
//!
//! Location: `ftp://[user[:password]@]host[:port]/path` or `ftps://…`.
//! Options: `password` (or `password_file`, read by the host), `ca` (PEM,
//! read by the host), `pin=SHA256:…`, `timeout` (seconds), `data_ports`
//! (the host's grant; the plugin needs nothing of it).

mod listing;
mod tls;

use kast_sdk::{
    Connector, Destination, Entry, EntryKind, Error, ErrorKind, FileInfo, FileStorage, FileTree,
    Listing, Location, Metadata, PluginInfo, Role, Source, Storage,
};
use listing::Item;
use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode, RustlsConnector, RustlsFtpStream, Status};

/// The control connection (plain until `AUTH TLS` upgrades it).
type Ftp = RustlsFtpStream;

/// How long to wait for the server, unless `timeout=` says.
const DEFAULT_TIMEOUT_SECONDS: u64 = 120;

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidInput, message)
}

struct FtpConnector;

impl Connector for FtpConnector {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "ftp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            schemes: vec!["ftp".into(), "ftps".into()],
            roles: vec![Role::Storage, Role::Source, Role::Destination],
            description: "a directory on an FTP server (FTPS with explicit TLS)".into(),
        }
    }

    fn storage(location: Location) -> Result<Box<dyn Storage>, Error> {
        let session = Session::connect(&location)?;
        Ok(Box::new(FileStorage::new(FtpTree {
            s: Rc::new(RefCell::new(session)),
            made: HashSet::new(),
        })))
    }

    fn source(location: Location) -> Result<Box<dyn Source>, Error> {
        let mut session = Session::connect(&location)?;
        let single_file = !session.is_dir(&session.root.clone());
        Ok(Box::new(FtpSource {
            s: Rc::new(RefCell::new(session)),
            single_file,
        }))
    }

    fn destination(location: Location) -> Result<Box<dyn Destination>, Error> {
        let mut session = Session::connect(&location)?;
        let root = session.root.clone();
        session.make_dirs(&root, &mut HashSet::new())?;
        Ok(Box::new(FtpDestination {
            s: Rc::new(RefCell::new(session)),
        }))
    }
}

kast_sdk::export_connector!(FtpConnector);

/// A logged-in FTP connection and what the server can do.
pub(crate) struct Session {
    pub ftp: Ftp,
    pub peer: String,
    pub root: String,
    /// MLSD/MLST: listings with exact facts.
    pub mlsd: bool,
    /// MFMT: set a file's time.
    mfmt: bool,
}

impl Session {
    fn connect(location: &Location) -> Result<Session, Error> {
        let url = location.parse_url()?;
        let secure = url.scheme == "ftps";
        let host = url.host.clone().unwrap_or_default();
        let address: SocketAddr = location
            .address
            .as_deref()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| invalid("the host gave no address to connect to".into()))?;
        let timeout =
            Duration::from_secs(location.seconds_option("timeout", DEFAULT_TIMEOUT_SECONDS)?);
        let user = url.user.clone().unwrap_or_else(|| "anonymous".into());
        let peer = format!("{user}@{}", host);
        let open = move |addr: SocketAddr| kast_sdk::connect(addr, timeout);
        let stream = open(address)
            .map_err(|e| Error::io(format!("cannot connect to {peer} ({address})"), e))?;
        let fail = |what: &str, e: FtpError| ftp_error(&peer, what, e);
        let ip: IpAddr = address.ip();
        let mut ftp = Ftp::connect_with_stream(stream)
            .map_err(|e| fail("greeting", e))?
            // Data connections go to the control connection's address, never
            // to one the server names: that is all the sandbox allows anyway.
            .passive_stream_builder(move |data: SocketAddr| {
                open(SocketAddr::new(ip, data.port())).map_err(FtpError::ConnectionError)
            });
        if secure {
            let config = tls::client_config(location.option("ca"), location.option("pin"))?;
            ftp = ftp
                .into_secure(RustlsConnector::from(config), &host)
                .map_err(|e| fail("AUTH TLS", e))?;
        }
        let password = location
            .option("password")
            .map(str::to_string)
            .or(url.password)
            .unwrap_or_else(|| {
                if url.user.is_none() {
                    "kast@".into()
                } else {
                    String::new()
                }
            });
        ftp.login(user.as_str(), password.as_str())
            .map_err(|e| match e {
                FtpError::UnexpectedResponse(r) => Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "{peer}: login refused: {}",
                        String::from_utf8_lossy(&r.body).trim()
                    ),
                ),
                e => fail("login", e),
            })?;
        ftp.transfer_type(FileType::Binary)
            .map_err(|e| fail("TYPE I", e))?;
        let features = ftp.feat().unwrap_or_default();
        let has = |f: &str| features.keys().any(|k| k.eq_ignore_ascii_case(f));
        ftp.set_mode(if has("EPSV") {
            Mode::ExtendedPassive
        } else {
            Mode::Passive
        });
        let mut session = Session {
            mlsd: has("MLST"),
            mfmt: has("MFMT"),
            ftp,
            peer,
            root: url.path,
        };
        if session.root.len() > 1 && session.root.ends_with('/') {
            session.root.pop();
        }
        Ok(session)
    }

    /// `root/rel` for the byte paths the host passes; FTP names are text.
    fn path(&self, rel: &[u8]) -> Result<String, Error> {
        let rel = std::str::from_utf8(rel).map_err(|_| {
            invalid(format!(
                "{}: FTP carries names as text; {:?} is not UTF-8",
                self.peer,
                String::from_utf8_lossy(rel)
            ))
        })?;
        Ok(join(&self.root, rel))
    }

    fn error(&self, what: &str, e: FtpError) -> Error {
        ftp_error(&self.peer, what, e)
    }

    fn is_dir(&mut self, path: &str) -> bool {
        let here = self.ftp.pwd().ok();
        let is_dir = self.ftp.cwd(path).is_ok();
        if let Some(here) = here {
            let _ = self.ftp.cwd(here);
        }
        is_dir
    }

    /// `mkdir -p`, remembering what exists.
    fn make_dirs(&mut self, dir: &str, made: &mut HashSet<String>) -> Result<(), Error> {
        if dir.is_empty() || dir == "/" || made.contains(dir) {
            return Ok(());
        }
        if !self.is_dir(dir) {
            if let Some((parent, _)) = dir.rsplit_once('/') {
                self.make_dirs(parent, made)?;
            }
            if let Err(e) = self.ftp.mkdir(dir) {
                // Someone else may have made it meanwhile.
                if !self.is_dir(dir) {
                    return Err(self.error(&format!("MKD {dir}"), e));
                }
            }
        }
        made.insert(dir.to_string());
        Ok(())
    }

    /// Reads `path` from `offset`, `limit` bytes at most.
    fn read(&mut self, path: &str, offset: u64, limit: Option<u64>) -> Result<Vec<u8>, Error> {
        if offset > 0 {
            self.ftp
                .resume_transfer(offset as usize)
                .map_err(|e| self.error("REST", e))?;
        }
        let mut stream = self
            .ftp
            .retr_as_stream(path)
            .map_err(|e| ftp_error(&self.peer, &format!("RETR {path}"), e))?;
        let mut out = Vec::new();
        let read = match limit {
            Some(n) => (&mut stream).take(n).read_to_end(&mut out),
            None => stream.read_to_end(&mut out),
        };
        read.map_err(|e| Error::io(format!("{}: reading {path}", self.peer), e))?;
        if limit.is_some() {
            // A range may stop before the end: the server then reports the
            // transfer as cut short, which is what was asked for.
            drop(stream);
        } else {
            stream
                .finish()
                .map_err(|e| self.error(&format!("RETR {path}"), e))?;
        }
        Ok(out)
    }
}

fn join(root: &str, rel: &str) -> String {
    if rel.is_empty() {
        root.to_string()
    } else if root.ends_with('/') {
        format!("{root}{rel}")
    } else {
        format!("{root}/{rel}")
    }
}

/// Maps an FTP failure to the contract's kinds, keeping the server's words.
fn ftp_error(peer: &str, what: &str, e: FtpError) -> Error {
    match e {
        FtpError::ConnectionError(io) => {
            let timed_out = matches!(
                io.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            );
            if timed_out {
                Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{peer}: {what}: the server stopped answering (timeout=SECONDS raises the wait)"
                    ),
                )
            } else {
                Error::io(format!("{peer}: {what}: connection lost"), io)
            }
        }
        FtpError::UnexpectedResponse(r) => {
            let text = String::from_utf8_lossy(&r.body).trim().to_string();
            let kind = match r.status.code() {
                530 | 532 | 553 => ErrorKind::PermissionDenied,
                550 if text.to_lowercase().contains("permission") => ErrorKind::PermissionDenied,
                550 => ErrorKind::NotFound,
                452 | 552 => ErrorKind::NoSpace,
                421 | 425 | 426 => ErrorKind::Unavailable,
                502 | 504 => ErrorKind::Unsupported,
                _ => ErrorKind::Other,
            };
            Error::new(kind, format!("{peer}: {what}: {text}"))
        }
        FtpError::SecureError(why) => {
            Error::new(ErrorKind::PermissionDenied, format!("{peer}: TLS: {why}"))
        }
        other => Error::new(ErrorKind::Other, format!("{peer}: {what}: {other}")),
    }
}

/// A store folder's entries; a folder not made yet is empty. Servers say
/// "no such folder" with different codes (vsftpd 550, pyftpdlib 501, others
/// 450), so a failed listing is taken as empty only once changing into the
/// folder fails too: a folder that is there but cannot be listed stays an
/// error.
fn list_if_there(s: &mut Session, dir: &str) -> Result<Vec<Item>, Error> {
    match listing::list(s, dir, false) {
        Ok(items) => Ok(items),
        Err(e) if e.kind == ErrorKind::Unavailable => Err(e),
        Err(e) => match s.ftp.cwd(dir) {
            Err(FtpError::UnexpectedResponse(_)) => Ok(Vec::new()),
            _ => Err(e),
        },
    }
}

/// The store's files on the server; the SDK's [`FileStorage`] lays them
/// out and writes each through a temporary name: uploaded in one transfer
/// fed part by part, its size checked, then renamed over the final name
/// (RNFR/RNTO), so a reader sees all of an object or none.
struct FtpTree {
    s: Rc<RefCell<Session>>,
    made: HashSet<String>,
}

impl FtpTree {
    fn path(&self, rel: &str) -> String {
        join(&self.s.borrow().root, rel)
    }
}

/// A file being uploaded: what the host announced, and what came.
struct FtpWriter {
    stream: Box<dyn Transfer>,
    path: String,
    size: u64,
    written: u64,
}

impl FileTree for FtpTree {
    type Writer = FtpWriter;

    fn make_dirs(&mut self, dir: &str) -> Result<(), Error> {
        let dir = self.path(dir);
        self.s.borrow_mut().make_dirs(&dir, &mut self.made)
    }

    fn list(&mut self, dir: &str) -> Result<Option<Vec<FileInfo>>, Error> {
        let dir = self.path(dir);
        let items = list_if_there(&mut self.s.borrow_mut(), &dir)?;
        Ok(Some(
            items
                .into_iter()
                .map(|item| FileInfo {
                    name: item.name.into_bytes(),
                    kind: item.kind,
                    size: item.size,
                })
                .collect(),
        ))
    }

    /// Any answer but a size is taken as "no such file": servers word it
    /// differently, and a store that cannot be read fails on its next step.
    fn size(&mut self, path: &str) -> Result<Option<u64>, Error> {
        let path = self.path(path);
        Ok(self.s.borrow_mut().ftp.size(&path).ok().map(|n| n as u64))
    }

    fn create(&mut self, path: &str, size: u64) -> Result<FtpWriter, Error> {
        let path = self.path(path);
        let s = &mut *self.s.borrow_mut();
        let stream = s
            .ftp
            .put_with_stream(&path)
            .map_err(|e| ftp_error(&s.peer, &format!("STOR {path}"), e))?;
        Ok(FtpWriter {
            stream: Box::new(stream),
            path,
            size,
            written: 0,
        })
    }

    fn write(&mut self, writer: &mut FtpWriter, data: &[u8]) -> Result<(), Error> {
        writer.stream.write_all(data).map_err(|e| {
            Error::io(
                format!("{}: writing {}", self.s.borrow().peer, writer.path),
                e,
            )
        })?;
        writer.written += data.len() as u64;
        Ok(())
    }

    fn finish(&mut self, writer: FtpWriter) -> Result<(), Error> {
        let s = &mut *self.s.borrow_mut();
        let FtpWriter {
            stream,
            path,
            size,
            written,
        } = writer;
        stream
            .done()
            .map_err(|e| s.error(&format!("STOR {path}"), e))?;
        match s.ftp.size(&path) {
            Ok(held) if held as u64 != written || written != size => Err(Error::new(
                ErrorKind::Other,
                format!(
                    "{}: {path} holds {held} bytes after uploading {written} of {size}",
                    s.peer
                ),
            )),
            _ => Ok(()),
        }
    }

    fn abandon(&mut self, writer: FtpWriter) {
        let _ = writer.stream.done();
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
        let (from, to) = (self.path(from), self.path(to));
        let s = &mut *self.s.borrow_mut();
        s.ftp
            .rename(&from, &to)
            .map_err(|e| s.error(&format!("RNTO {to}"), e))
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        let path = self.path(path);
        let s = &mut *self.s.borrow_mut();
        s.ftp
            .rm(&path)
            .map_err(|e| s.error(&format!("DELE {path}"), e))
    }

    fn open(&mut self, path: &str) -> Result<Box<dyn Read>, Error> {
        let path = self.path(path);
        Ok(Box::new(open_remote(&mut self.s.borrow_mut(), path, 0)?))
    }

    fn read_range(&mut self, path: &str, offset: u64, length: u64) -> Result<Vec<u8>, Error> {
        let path = self.path(path);
        self.s.borrow_mut().read(&path, offset, Some(length))
    }
}

/// Starts downloading `path` from `offset` (REST, then RETR).
fn open_remote(s: &mut Session, path: String, offset: u64) -> Result<RemoteFile, Error> {
    if offset > 0 {
        s.ftp
            .resume_transfer(offset as usize)
            .map_err(|e| s.error("REST", e))?;
    }
    let stream = s
        .ftp
        .retr_as_stream(&path)
        .map_err(|e| s.error(&format!("RETR {path}"), e))?;
    Ok(RemoteFile {
        stream: Some(Box::new(stream)),
        peer: s.peer.clone(),
        path,
    })
}

/// A remote tree to back up.
struct FtpSource {
    s: Rc<RefCell<Session>>,
    single_file: bool,
}

fn entry_of(item: Item) -> Entry {
    let mtime_ns = item.mtime * 1_000_000_000;
    Entry {
        name: item.name.into_bytes(),
        kind: item.kind,
        meta: Metadata {
            mode: item.mode,
            uid: item.uid,
            gid: item.gid,
            mtime_ns,
            // FTP has no ctime or inode: the mtime stands in for ctime.
            ctime_ns: mtime_ns,
            inode: 0,
            size: if item.kind == EntryKind::File {
                item.size
            } else {
                0
            },
            xattrs: Vec::new(),
        },
        symlink_target: item.symlink_target.map(String::into_bytes),
    }
}

impl Source for FtpSource {
    fn list_dir(&mut self, path: &[u8]) -> Result<Listing<Entry>, Error> {
        let s = &mut *self.s.borrow_mut();
        if self.single_file {
            let item = listing::stat_file(s, &s.root.clone())?;
            return Ok(kast_sdk::listing(vec![entry_of(item)]));
        }
        let dir = s.path(path)?;
        let entries = listing::list(s, &dir, true)?
            .into_iter()
            .map(entry_of)
            .collect();
        Ok(kast_sdk::listing(entries))
    }

    fn open_file(&mut self, path: &[u8]) -> Result<Box<dyn Read>, Error> {
        self.open_file_at(path, 0)
    }

    fn open_file_at(&mut self, path: &[u8], offset: u64) -> Result<Box<dyn Read>, Error> {
        let s = &mut *self.s.borrow_mut();
        let full = if self.single_file {
            s.root.clone()
        } else {
            s.path(path)?
        };
        Ok(Box::new(open_remote(s, full, offset)?))
    }
}

/// A data transfer in progress, whatever the control connection's TLS.
trait Transfer: Read + Write {
    /// Closes the data connection and checks the server's final reply.
    fn done(self: Box<Self>) -> Result<(), FtpError>;
}

impl<T: suppaftp::TlsStream> Transfer for suppaftp::TransferStream<T> {
    fn done(self: Box<Self>) -> Result<(), FtpError> {
        (*self).finish()
    }
}

/// A file being downloaded; its transfer is checked at the end.
struct RemoteFile {
    stream: Option<Box<dyn Transfer>>,
    peer: String,
    path: String,
}

impl Read for RemoteFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(0);
        };
        let n = stream.read(buf)?;
        if n == 0 && !buf.is_empty() {
            // The server confirms the whole file was sent (226), or says not.
            if let Some(stream) = self.stream.take() {
                stream.done().map_err(|e| {
                    io::Error::other(
                        ftp_error(&self.peer, &format!("RETR {}", self.path), e).message,
                    )
                })?;
            }
        }
        Ok(n)
    }
}

/// Where a restore writes on the server.
struct FtpDestination {
    s: Rc<RefCell<Session>>,
}

impl Destination for FtpDestination {
    fn create_dir(&mut self, path: &[u8]) -> Result<(), Error> {
        let s = &mut *self.s.borrow_mut();
        let full = s.path(path)?;
        if s.is_dir(&full) {
            return Ok(());
        }
        s.ftp
            .mkdir(&full)
            .map_err(|e| s.error(&format!("MKD {full}"), e))
    }

    fn create_file(&mut self, path: &[u8], overwrite: bool) -> Result<Box<dyn Write>, Error> {
        let s = &mut *self.s.borrow_mut();
        let full = s.path(path)?;
        if !overwrite && (s.ftp.size(&full).is_ok() || s.is_dir(&full)) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{}:{full} already exists", s.peer),
            ));
        }
        let stream = s
            .ftp
            .put_with_stream(&full)
            .map_err(|e| s.error(&format!("STOR {full}"), e))?;
        Ok(Box::new(RemoteWriter {
            stream: Some(Box::new(stream)),
            peer: s.peer.clone(),
            path: full,
        }))
    }

    fn symlink(&mut self, path: &[u8], _target: &[u8], _overwrite: bool) -> Result<(), Error> {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "FTP cannot create symlinks: {} was not restored",
                String::from_utf8_lossy(path)
            ),
        ))
    }

    fn set_metadata(&mut self, path: &[u8], kind: EntryKind, meta: Metadata) -> Result<(), Error> {
        let s = &mut *self.s.borrow_mut();
        let full = s.path(path)?;
        if kind == EntryKind::Symlink {
            return Ok(());
        }
        // Best effort, as the contract allows: servers differ in what they let
        // a client change. Mode by SITE CHMOD, the time by MFMT or by the
        // two-argument MDTM that vsftpd and others take.
        let _ = s.ftp.site(format!("CHMOD {:o} {full}", meta.mode & 0o7777));
        let seconds = meta.mtime_ns.div_euclid(1_000_000_000);
        let stamp = listing::format_time(seconds).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("the time {seconds} s since 1970 has no FTP form"),
            )
        })?;
        let set = if s.mfmt {
            s.ftp
                .custom_command(format!("MFMT {stamp} {full}"), &[Status::File])
        } else {
            s.ftp.custom_command(
                format!("MDTM {stamp} {full}"),
                &[Status::File, Status::CommandOk],
            )
        };
        let set = match set {
            Err(_) if kind == EntryKind::File => s
                .ftp
                .site(format!("UTIME {full} {stamp} {stamp} {stamp} UTC"))
                .map(drop),
            other => other.map(drop),
        };
        // A server that takes no way of setting a time (or refuses this
        // one) leaves the upload's time: said so, and counted by the host.
        set.map_err(|e| {
            Error::new(
                ErrorKind::Unsupported,
                format!("{}: the server did not set the time {stamp}: {e}", s.peer),
            )
        })
    }
}

/// A file being uploaded; `flush` ends the transfer and checks the reply.
struct RemoteWriter {
    stream: Option<Box<dyn Transfer>>,
    peer: String,
    path: String,
}

impl Write for RemoteWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::other("the file is already finished"))?
            .write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.stream.take() {
            Some(stream) => stream.done().map_err(|e| {
                io::Error::other(ftp_error(&self.peer, &format!("STOR {}", self.path), e).message)
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", ""), "/a");
    }
}
