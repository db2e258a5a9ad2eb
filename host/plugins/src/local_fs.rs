//! The host side of `kast:host/local-fs` (`wit/host`, private to kast):
//! one granted directory (or file) served over raw byte paths. Paths are
//! resolved beneath the grant by cap-std (openat2 `RESOLVE_BENEATH` on
//! Linux), and the last component is never followed if it is a symlink,
//! so a plugin can reach nothing outside.

use crate::bindings::local_fs::Host;
use crate::bindings::types::{Entry, EntryKind, Error, ErrorKind, Metadata};
use crate::list_ahead::ListAhead;
use crate::prefetch::Prefetcher;
use crate::xattrs;
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use cap_std::fs::{Dir, MetadataExt, OpenOptions, Permissions, PermissionsExt};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use std::path::{Path, PathBuf};

/// The contract's kind of an entry, by the engine's one mapping of `st_mode`.
fn kind_of_mode(mode: u32) -> EntryKind {
    crate::connectors::wit_entry_kind(kast_engine::tree::EntryKind::of_mode(mode))
}

/// What a location grants: a directory, or one file inside its folder.
pub enum Grant {
    Dir(Dir),
    File { parent: Dir, name: OsString },
}

/// The state behind the interface for one plugin instance.
#[derive(Default)]
pub struct LocalFs {
    grant: Option<Grant>,
    files: HashMap<u64, std::fs::File>,
    /// The paths of the files opened by `create`, by handle…
    created: HashMap<u64, Vec<u8>>,
    /// …and the last of them closed, kept open for its metadata, which a
    /// restore sets next: no second path walk, open and close per file.
    /// Dropped by any call that could change what the path names.
    last_closed: Option<(Vec<u8>, std::fs::File)>,
    next: u64,
    set_owner: bool,
    /// Started on the first listing (a store's instances rarely list).
    prefetcher: Option<Prefetcher>,
    /// Started when a backup first says which directories come next.
    list_ahead: Option<ListAhead>,
    /// What the last listing knew beyond its entries, until the host takes it.
    last_facts: Option<(Vec<u8>, Facts)>,
}

/// One directory's listing: the entries the plugin gets, and what the
/// 0.1 contract's `entry` cannot carry, which the host adds itself when the
/// plugin hands the entries on ([`LocalFs::take_facts`]).
pub struct Listing {
    pub entries: Vec<Entry>,
    pub facts: Facts,
}

/// Facts about a few entries of a listing, by name (a directory of hard
/// links, as rsnapshot makes, has one for every entry: looked up by hash).
#[derive(Default)]
pub struct Facts {
    /// Files with more than one link: name → (link count, device).
    pub links: HashMap<Vec<u8>, (u64, u64)>,
    /// Directories on another filesystem than the listed one: name → device.
    pub mounts: HashMap<Vec<u8>, u64>,
}

impl LocalFs {
    /// Serves `path`: a directory (created first when `create` is set), or a
    /// single file.
    pub fn grant(path: &Path, create: bool) -> io::Result<LocalFs> {
        let authority = cap_std::ambient_authority();
        if create {
            std::fs::create_dir_all(path)?;
        }
        let grant = if std::fs::metadata(path)?.is_dir() {
            Grant::Dir(Dir::open_ambient_dir(path, authority)?)
        } else {
            let parent = path.parent().unwrap_or(Path::new("/"));
            let name = path
                .file_name()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
            Grant::File {
                parent: Dir::open_ambient_dir(parent, authority)?,
                name: name.to_os_string(),
            }
        };
        Ok(LocalFs {
            grant: Some(grant),
            files: HashMap::new(),
            created: HashMap::new(),
            last_closed: None,
            next: 0,
            // SAFETY: geteuid has no preconditions.
            set_owner: unsafe { libc::geteuid() } == 0,
            prefetcher: None,
            list_ahead: None,
            last_facts: None,
        })
    }

    /// What the listing of `path` knew beyond its entries, if it was the
    /// last one made.
    pub fn take_facts(&mut self, path: &[u8]) -> Option<Facts> {
        match self.last_facts.take() {
            Some((listed, facts)) if listed == path => Some(facts),
            _ => None,
        }
    }

    /// Makes `path` another name of `existing`, both beneath the grant
    /// (the 0.1 contract has no call for it, so the host makes links for
    /// the `fs` scheme itself, within the same grant).
    pub fn hard_link(&mut self, path: &[u8], existing: &[u8], overwrite: bool) -> io::Result<()> {
        self.last_closed = None;
        // `resolve` refuses only paths the grant does not reach.
        let to_io = |e: Error| io::Error::new(io::ErrorKind::PermissionDenied, e.message);
        let (dir, rel) = self.resolve(path).map_err(to_io)?;
        let (from_dir, from_rel) = self.resolve(existing).map_err(to_io)?;
        if overwrite && dir.symlink_metadata(&rel).is_ok() {
            remove_any(dir, &rel)?;
        }
        from_dir.hard_link(&from_rel, dir, &rel)
    }

    /// Starts reading ahead `files` (paths as the plugin names them, with
    /// their sizes), which a backup is about to read in this order.
    pub fn will_read(&mut self, files: &[(Vec<u8>, u64)]) {
        if self.grant.is_none() {
            return;
        }
        if self.prefetcher.is_none() {
            self.prefetcher = Prefetcher::start();
        }
        let (Some(prefetcher), Ok((dir, _))) = (&self.prefetcher, self.resolve(b"")) else {
            return;
        };
        prefetcher.ask(
            dir,
            files
                .iter()
                .map(|(path, size)| (PathBuf::from(OsStr::from_bytes(path)), *size)),
        );
    }

    /// Starts listing `dirs` (paths as the plugin names them), which a
    /// backup is about to list in this order.
    pub fn will_list(&mut self, dirs: &[Vec<u8>]) {
        let Some(Grant::Dir(root)) = &self.grant else {
            return;
        };
        if self.list_ahead.is_none() {
            self.list_ahead = ListAhead::start(root, list_beneath);
        }
        if let Some(ahead) = &self.list_ahead {
            ahead.ask(dirs);
        }
    }

    /// Resolves a plugin path to (directory, path relative to it).
    fn resolve(&self, path: &[u8]) -> Result<(&Dir, PathBuf), Error> {
        let grant = self.grant.as_ref().ok_or_else(|| {
            err(
                ErrorKind::PermissionDenied,
                "this location grants no local files",
            )
        })?;
        match grant {
            Grant::Dir(dir) => Ok((dir, rel_path(path)?)),
            Grant::File { parent, name } => {
                if path.is_empty() {
                    Ok((parent, PathBuf::from(name)))
                } else {
                    Err(err(
                        ErrorKind::PermissionDenied,
                        "this location grants a single file",
                    ))
                }
            }
        }
    }

    fn file(&mut self, handle: u64) -> Result<&mut std::fs::File, Error> {
        self.files
            .get_mut(&handle)
            .ok_or_else(|| err(ErrorKind::InvalidInput, "unknown file handle"))
    }

    fn keep(&mut self, file: std::fs::File) -> u64 {
        self.next += 1;
        self.files.insert(self.next, file);
        self.next
    }

    fn entry(dir: &Dir, rel: &Path, name: Vec<u8>) -> io::Result<Entry> {
        let meta = dir.symlink_metadata(rel)?;
        let stat = Stat {
            kind: kind_of_mode(meta.mode()),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            inode: meta.ino(),
            size: meta.size(),
            links: meta.nlink(),
            device: meta.dev(),
        };
        Self::entry_from(dir, rel, name, stat)
    }

    /// As `entry`, for a name read from `dir`'s own listing: one component,
    /// so `fstatat` on the confined descriptor cannot leave it, and costs
    /// one system call where cap-std's general path opens the entry first.
    fn listed_entry(dir: &Dir, name: &OsStr) -> io::Result<(Entry, Stat)> {
        let c_name = std::ffi::CString::new(name.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid descriptor, a NUL-terminated name, and a buffer
        // of the right type that the call fills when it returns 0.
        let st = unsafe {
            if libc::fstatat(
                dir.as_raw_fd(),
                c_name.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            st.assume_init()
        };
        let stat = Stat {
            kind: kind_of_mode(st.st_mode),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
            inode: st.st_ino,
            size: st.st_size as u64,
            links: st.st_nlink,
            device: st.st_dev,
        };
        Self::entry_from(dir, Path::new(name), name.as_bytes().to_vec(), stat)
            .map(|entry| (entry, stat))
    }

    fn entry_from(dir: &Dir, rel: &Path, name: Vec<u8>, stat: Stat) -> io::Result<Entry> {
        let symlink_target = if stat.kind == EntryKind::Symlink {
            Some(
                dir.read_link_contents(rel)?
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else {
            None
        };
        Ok(Entry {
            name,
            kind: stat.kind,
            meta: Metadata {
                mode: stat.mode,
                uid: stat.uid,
                gid: stat.gid,
                mtime_ns: stat.mtime_ns,
                ctime_ns: stat.ctime_ns,
                inode: stat.inode,
                size: if stat.kind == EntryKind::File {
                    stat.size
                } else {
                    0
                },
                xattrs: xattrs::read(dir, rel),
            },
            symlink_target,
        })
    }
}

/// What a listing needs of a `stat`, from cap-std or from `fstatat`.
#[derive(Clone, Copy)]
struct Stat {
    kind: EntryKind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    size: u64,
    links: u64,
    device: u64,
}

/// The entries of directory `rel` beneath `dir` (`path`, the plugin's name
/// for it, for errors).
fn list_in(dir: &Dir, rel: &Path, path: &[u8]) -> Result<Listing, Error> {
    let sub = dir
        .open_dir_nofollow(rel)
        .map_err(|e| io_err("list", path, e))?;
    let device = sub
        .dir_metadata()
        .map_err(|e| io_err("list", path, e))?
        .dev();
    let mut listing = Listing {
        entries: Vec::new(),
        facts: Facts::default(),
    };
    for item in sub.entries().map_err(|e| io_err("list", path, e))? {
        let name = item.map_err(|e| io_err("list", path, e))?.file_name();
        match LocalFs::listed_entry(&sub, &name) {
            Ok((entry, stat)) => {
                if stat.kind == EntryKind::File && stat.links > 1 {
                    let facts = (stat.links, stat.device);
                    listing.facts.links.insert(entry.name.clone(), facts);
                } else if stat.kind == EntryKind::Dir && stat.device != device {
                    listing.facts.mounts.insert(entry.name.clone(), stat.device);
                }
                listing.entries.push(entry)
            }
            // Gone between the listing and the stat: no longer part of the tree.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat", name.as_bytes(), e)),
        }
    }
    Ok(listing)
}

/// [`list_in`] for a plugin path beneath a granted directory: what the
/// listing helpers run.
fn list_beneath(root: &Dir, path: &[u8]) -> Result<Listing, Error> {
    list_in(root, &rel_path(path)?, path)
}

/// A plugin path as a path relative to the granted directory: components
/// joined by `/`, none empty, `.` or `..`.
fn rel_path(path: &[u8]) -> Result<PathBuf, Error> {
    if path.is_empty() {
        return Ok(PathBuf::from("."));
    }
    let legal = path
        .split(|&b| b == b'/')
        .all(|c| !c.is_empty() && c != b"." && c != b".." && !c.contains(&0));
    if !legal {
        return Err(err(
            ErrorKind::InvalidInput,
            format!("illegal path {:?}", String::from_utf8_lossy(path)),
        ));
    }
    Ok(PathBuf::from(OsStr::from_bytes(path)))
}

fn err(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error {
        kind,
        message: message.into(),
    }
}

fn io_err(op: &str, path: &[u8], e: io::Error) -> Error {
    use io::ErrorKind as K;
    let kind = match e.kind() {
        K::NotFound => ErrorKind::NotFound,
        K::AlreadyExists => ErrorKind::AlreadyExists,
        K::PermissionDenied => ErrorKind::PermissionDenied,
        K::InvalidInput | K::InvalidFilename => ErrorKind::InvalidInput,
        K::StorageFull | K::QuotaExceeded => ErrorKind::NoSpace,
        K::Unsupported => ErrorKind::Unsupported,
        _ => ErrorKind::Other,
    };
    err(
        kind,
        format!("{op} {:?}: {e}", String::from_utf8_lossy(path)),
    )
}

fn last_component(path: &[u8]) -> Vec<u8> {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path).to_vec()
}

impl crate::bindings::types::Host for crate::sandbox::host_state::HostState {}

impl Host for crate::sandbox::host_state::HostState {
    fn stat(&mut self, path: Vec<u8>) -> Result<Entry, Error> {
        let fs = &self.local_fs;
        let (dir, rel) = fs.resolve(&path)?;
        let name = match fs.grant.as_ref() {
            Some(Grant::File { name, .. }) => name.as_bytes().to_vec(),
            _ => last_component(&path),
        };
        LocalFs::entry(dir, &rel, name).map_err(|e| io_err("stat", &path, e))
    }

    fn list_dir(&mut self, path: Vec<u8>) -> Result<Vec<Entry>, Error> {
        let fs = &mut self.local_fs;
        let listing = match fs.list_ahead.as_ref().and_then(|a| a.take(&path)) {
            Some(listed) => listed?,
            None => {
                let (dir, rel) = fs.resolve(&path)?;
                list_in(dir, &rel, &path)?
            }
        };
        fs.last_facts = Some((path, listing.facts));
        Ok(listing.entries)
    }

    fn open_read(&mut self, path: Vec<u8>) -> Result<u64, Error> {
        let (dir, rel) = self.local_fs.resolve(&path)?;
        let file = open_no_wait(dir, &rel).map_err(|e| io_err("open", &path, e))?;
        // Only regular files are read: a FIFO or a device could make the
        // call wait, or never end.
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(err(
                ErrorKind::InvalidInput,
                format!("{}: not a regular file", String::from_utf8_lossy(&path)),
            ));
        }
        Ok(self.local_fs.keep(file))
    }

    fn read_at(&mut self, handle: u64, offset: u64, length: u32) -> Result<Vec<u8>, Error> {
        let file = self.local_fs.file(handle)?;
        // Seek and read into spare capacity: no pass to zero the buffer first
        // (a handle belongs to one single-threaded instance, so seeking is safe).
        let mut buf = Vec::with_capacity(length as usize);
        file.seek(io::SeekFrom::Start(offset))
            .and_then(|_| (&*file).take(u64::from(length)).read_to_end(&mut buf))
            .map_err(|e| io_err("read", b"", e))?;
        Ok(buf)
    }

    fn create(&mut self, path: Vec<u8>, replace: bool) -> Result<u64, Error> {
        self.local_fs.last_closed = None;
        let (dir, rel) = self.local_fs.resolve(&path)?;
        if replace && dir.symlink_metadata(&rel).is_ok() {
            // Replaced, never written through: a symlink must not redirect
            // the write, and a file's other hard links keep their content.
            remove_any(dir, &rel).map_err(|e| io_err("replace", &path, e))?;
        }
        let mut options = OpenOptions::new();
        options
            .write(true)
            .follow(FollowSymlinks::No)
            .create_new(true);
        cap_std::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = dir
            .open_with(&rel, &options)
            .map_err(|e| io_err("create", &path, e))?;
        let handle = self.local_fs.keep(file.into_std());
        self.local_fs.created.insert(handle, path);
        Ok(handle)
    }

    fn write(&mut self, handle: u64, data: Vec<u8>) -> Result<(), Error> {
        self.local_fs
            .file(handle)?
            .write_all(&data)
            .map_err(|e| io_err("write", b"", e))
    }

    fn sync(&mut self, handle: u64) -> Result<(), Error> {
        self.local_fs
            .file(handle)?
            .sync_all()
            .map_err(|e| io_err("sync", b"", e))
    }

    fn close(&mut self, handle: u64) {
        let fs = &mut self.local_fs;
        let file = fs.files.remove(&handle);
        if let Some(path) = fs.created.remove(&handle) {
            fs.last_closed = file.map(|file| (path, file));
        }
    }

    fn mkdir(&mut self, path: Vec<u8>) -> Result<(), Error> {
        self.local_fs.last_closed = None;
        let (dir, rel) = self.local_fs.resolve(&path)?;
        if path.is_empty() {
            return Ok(());
        }
        dir.create_dir_all(&rel)
            .map_err(|e| io_err("mkdir", &path, e))
    }

    fn sync_dir(&mut self, path: Vec<u8>) -> Result<(), Error> {
        let (dir, rel) = self.local_fs.resolve(&path)?;
        // Opened for reading: a descriptor cap-std keeps for lookups only
        // (O_PATH) cannot be synced.
        let mut options = OpenOptions::new();
        options
            .read(true)
            .follow(FollowSymlinks::No)
            .maybe_dir(true);
        // Never waits: a FIFO in its place opens at once.
        cap_std::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
        let handle = dir
            .open_with(&rel, &options)
            .map_err(|e| io_err("sync", &path, e))?;
        handle.sync_all().map_err(|e| io_err("sync", &path, e))
    }

    fn rename(&mut self, source: Vec<u8>, target: Vec<u8>) -> Result<(), Error> {
        self.local_fs.last_closed = None;
        let (dir, from) = self.local_fs.resolve(&source)?;
        let (_, to) = self.local_fs.resolve(&target)?;
        dir.rename(&from, dir, &to)
            .map_err(|e| io_err("rename", &source, e))
    }

    fn remove(&mut self, path: Vec<u8>) -> Result<(), Error> {
        self.local_fs.last_closed = None;
        if path.is_empty() {
            return Err(err(
                ErrorKind::PermissionDenied,
                "the granted directory itself cannot be removed",
            ));
        }
        let (dir, rel) = self.local_fs.resolve(&path)?;
        remove_any(dir, &rel).map_err(|e| io_err("remove", &path, e))
    }

    fn symlink(&mut self, path: Vec<u8>, target: Vec<u8>) -> Result<(), Error> {
        self.local_fs.last_closed = None;
        let (dir, rel) = self.local_fs.resolve(&path)?;
        // The target is stored as given and only ever resolved by whoever
        // follows the link later, outside this sandbox's grant.
        dir.symlink_contents(OsStr::from_bytes(&target), &rel)
            .map_err(|e| io_err("symlink", &path, e))
    }

    fn set_metadata(
        &mut self,
        path: Vec<u8>,
        kind: EntryKind,
        meta: Metadata,
    ) -> Result<(), Error> {
        let set_owner = self.local_fs.set_owner;
        let fail = |e: io::Error| io_err("set metadata of", &path, e);
        if kind == EntryKind::File
            && let Some((closed, file)) = self.local_fs.last_closed.take()
            && closed == path
        {
            return set_metadata_fd(&file, &meta, set_owner).map_err(fail);
        }
        let (dir, rel) = self.local_fs.resolve(&path)?;
        // Files and folders: every change through one descriptor opened
        // without following links (one path walk instead of four, and no
        // link swapped in between can redirect a change).
        let opened = match kind {
            EntryKind::File | EntryKind::Dir => open_no_wait(dir, &rel),
            _ => Err(io::Error::from(io::ErrorKind::Unsupported)),
        };
        if let Ok(file) = opened {
            return set_metadata_fd(&file, &meta, set_owner).map_err(fail);
        }
        let is_symlink = dir
            .symlink_metadata(&rel)
            .map_err(fail)?
            .file_type()
            .is_symlink();
        if set_owner {
            lchown_at(dir, &rel, meta.uid, meta.gid).map_err(fail)?;
        }
        if !is_symlink && kind != EntryKind::Symlink {
            for (name, value) in &meta.xattrs {
                // Best effort: the target filesystem may not take every namespace.
                let _ = xattr::set(xattrs::fd_path(dir, &rel), OsStr::from_bytes(name), value);
            }
            dir.set_permissions(&rel, Permissions::from_mode(meta.mode & 0o7777))
                .map_err(fail)?;
        }
        let wanted = timespec(meta.mtime_ns);
        at_parent(dir, &rel, |parent, name| {
            // SAFETY: a descriptor open for the call, a NUL-terminated
            // name, and `times` outlives the call.
            let times = [wanted, wanted];
            check(unsafe {
                libc::utimensat(
                    parent,
                    name.as_ptr(),
                    times.as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })?;
            // SAFETY: as above; the buffer is filled when the call returns 0.
            let kept = unsafe {
                let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
                check(libc::fstatat(
                    parent,
                    name.as_ptr(),
                    st.as_mut_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                ))?;
                st.assume_init()
            };
            time_kept(&wanted, kept.st_mtime, kept.st_mtime_nsec)
        })
        .map_err(fail)
    }
}

/// Opens an entry for reading without following a symlink and without
/// waiting: a FIFO opens at once instead of waiting for a writer.
pub(crate) fn open_no_wait(dir: &Dir, rel: &Path) -> io::Result<std::fs::File> {
    let mut options = OpenOptions::new();
    options.read(true).follow(FollowSymlinks::No);
    cap_std::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    dir.open_with(rel, &options).map(|f| f.into_std())
}

/// A time in nanoseconds since the epoch as a `timespec` (seconds below
/// zero before 1970, nanoseconds always forward).
fn timespec(ns: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: ns.rem_euclid(1_000_000_000) as libc::c_long,
    }
}

/// Filesystems clamp times they cannot hold (ext4 before 1901, FAT before
/// 1980) without an error, so a restore reads the time back: a time not
/// kept is `Unsupported`, which the engine counts and reports once.
fn time_kept(wanted: &libc::timespec, seconds: i64, nanos: i64) -> io::Result<()> {
    if wanted.tv_sec == seconds && wanted.tv_nsec == nanos {
        return Ok(());
    }
    let time = |s: i64, n: i64| {
        let ns = i128::from(s) * 1_000_000_000 + i128::from(n);
        let ns = ns.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
        kast_engine::time::format_time(ns)
    };
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "the filesystem cannot hold the time {} UTC; it kept {} UTC",
            time(wanted.tv_sec, wanted.tv_nsec),
            time(seconds, nanos)
        ),
    ))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Owner (when root), extended attributes, mode and times of an open file
/// or folder.
fn set_metadata_fd(file: &std::fs::File, meta: &Metadata, set_owner: bool) -> io::Result<()> {
    use xattr::FileExt;
    let fd = file.as_raw_fd();
    if set_owner {
        // SAFETY: plain syscalls on a descriptor open for the whole call.
        check(unsafe { libc::fchown(fd, meta.uid, meta.gid) })?;
    }
    for (name, value) in &meta.xattrs {
        // Best effort: the target filesystem may not take every namespace.
        let _ = file.set_xattr(OsStr::from_bytes(name), value);
    }
    // SAFETY: as above.
    check(unsafe { libc::fchmod(fd, (meta.mode & 0o7777) as libc::mode_t) })?;
    let wanted = timespec(meta.mtime_ns);
    // SAFETY: as above; `times` outlives the call.
    check(unsafe { libc::futimens(fd, [wanted, wanted].as_ptr()) })?;
    let kept = file.metadata()?;
    time_kept(
        &wanted,
        std::os::unix::fs::MetadataExt::mtime(&kept),
        std::os::unix::fs::MetadataExt::mtime_nsec(&kept),
    )
}

fn remove_any(dir: &Dir, rel: &Path) -> io::Result<()> {
    if dir.symlink_metadata(rel)?.is_dir() {
        dir.remove_dir_all(rel)
    } else {
        dir.remove_file(rel)
    }
}

/// `lchown` beneath `dir`.
fn lchown_at(dir: &Dir, rel: &Path, uid: u32, gid: u32) -> io::Result<()> {
    at_parent(dir, rel, |parent, name| {
        // SAFETY: the descriptor is open for the duration of the call and
        // the name is a valid NUL-terminated string.
        check(unsafe { libc::fchownat(parent, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
    })
}

/// Runs a `*at` system call on the last name of `rel`: the parent is opened
/// through the confined descriptor, so only the last name is left, and the
/// call is made with `AT_SYMLINK_NOFOLLOW` on it.
fn at_parent<T>(
    dir: &Dir,
    rel: &Path,
    call: impl FnOnce(libc::c_int, &std::ffi::CStr) -> io::Result<T>,
) -> io::Result<T> {
    let parent = match rel.parent() {
        Some(p) if !p.as_os_str().is_empty() => dir.open_dir(p)?,
        _ => dir.try_clone()?,
    };
    let name = rel.file_name().unwrap_or(OsStr::new("."));
    let c_name = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
    call(parent.as_raw_fd(), &c_name)
}
