//! Storage for connectors that keep a store's objects as files in a tree (a
//! disk, an SFTP or FTP server). What every such connector must get right
//! is written once here: the engine's native layout (so a store copied
//! between a disk and a server opens in both), a put written to a temporary
//! name and renamed into place (so a reader sees all of an object or none),
//! and the packs' fan-out listing. A connector supplies only its file
//! operations, as a [`FileTree`], and returns a [`FileStorage`].

use crate::connector::{
    EntryKind, Error, ErrorKind, Listing, ObjectInfo, ObjectKind, Storage, Upload, listing,
};
use std::cell::RefCell;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::rc::Rc;

/// The store layout of connectors that keep objects as files (the engine's
/// native one).
pub mod layout {
    use crate::connector::{Error, ErrorKind, ObjectKind};

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

/// One entry of a folder, as far as the store needs it.
pub struct FileInfo {
    /// The entry's name.
    pub name: Vec<u8>,
    /// What it is: only files are objects; folders are fan-out.
    pub kind: EntryKind,
    /// Its length in bytes, reported by listings.
    pub size: u64,
}

/// The file operations of a system that keeps a store. Paths are relative
/// to the store's root and `/`-separated; the implementation adds its root.
pub trait FileTree: 'static {
    /// A file being written.
    type Writer: 'static;

    /// Creates `dir` and any missing parents (`""` is the store's root);
    /// one already there is fine, including one another writer made
    /// meanwhile.
    fn make_dirs(&mut self, dir: &str) -> Result<(), Error>;
    /// The entries of `dir`, or `None` when there is no such folder.
    fn list(&mut self, dir: &str) -> Result<Option<Vec<FileInfo>>, Error>;
    /// The size of the file at `path`, or `None` when there is none.
    fn size(&mut self, path: &str) -> Result<Option<u64>, Error>;
    /// Creates the new file `path`, which will be `size` bytes long.
    fn create(&mut self, path: &str, size: u64) -> Result<Self::Writer, Error>;
    /// Appends `data` to the file.
    fn write(&mut self, writer: &mut Self::Writer, data: &[u8]) -> Result<(), Error>;
    /// Completes a written file: everything sent, durable where the system
    /// can sync, closed. An error means the file cannot be trusted.
    fn finish(&mut self, writer: Self::Writer) -> Result<(), Error>;
    /// Closes a file that will not be finished (it is removed next).
    fn abandon(&mut self, writer: Self::Writer);
    /// Moves `from` over `to`, replacing it.
    fn rename(&mut self, from: &str, to: &str) -> Result<(), Error>;
    /// Makes the names in `dir` durable, where the system can.
    fn sync_dir(&mut self, _dir: &str) -> Result<(), Error> {
        Ok(())
    }
    /// Removes a file; a missing one is an error of kind `NotFound`.
    fn remove(&mut self, path: &str) -> Result<(), Error>;
    /// The whole file, read in order.
    fn open(&mut self, path: &str) -> Result<Box<dyn Read>, Error>;
    /// `length` bytes of `path` from `offset`; fewer only at its end.
    fn read_range(&mut self, path: &str, offset: u64, length: u64) -> Result<Vec<u8>, Error>;
}

/// A [`Storage`] over a [`FileTree`], in the native layout.
pub struct FileStorage<T: FileTree> {
    tree: Rc<RefCell<T>>,
    /// Folders made (or found) already, so a put costs no round trip for them.
    made: HashSet<String>,
    /// Unique per instance, so writers side by side never share a temp name.
    temp_prefix: String,
    counter: u64,
}

impl<T: FileTree> FileStorage<T> {
    /// A storage over `tree`, with a temporary-name prefix of its own.
    pub fn new(tree: T) -> Self {
        // std seeds RandomState from the system's random source
        // (wasi:random on wasm32-wasip2): all a temporary name needs.
        let unique = RandomState::new().hash_one(0u8);
        FileStorage {
            tree: Rc::new(RefCell::new(tree)),
            made: HashSet::new(),
            temp_prefix: format!(".tmp-{unique:016x}"),
            counter: 0,
        }
    }

    /// Adds `dir`'s objects to `out`; entries that are not object files
    /// (temporary files, strays) are left out.
    fn list_folder(&self, dir: &str, out: &mut Vec<ObjectInfo>) -> Result<(), Error> {
        for entry in self.tree.borrow_mut().list(dir)?.unwrap_or_default() {
            let Ok(name) = String::from_utf8(entry.name) else {
                continue;
            };
            if entry.kind == EntryKind::File && layout::is_object_name(&name) {
                out.push(ObjectInfo {
                    name,
                    size: entry.size,
                });
            }
        }
        Ok(())
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl<T: FileTree> Storage for FileStorage<T> {
    fn put(&mut self, kind: ObjectKind, name: &str, size: u64) -> Result<Box<dyn Upload>, Error> {
        let (dir, path) = layout::object_path(kind, name)?;
        let mut tree = self.tree.borrow_mut();
        if !self.made.contains(&dir) {
            tree.make_dirs(&dir)?;
            self.made.insert(dir.clone());
        }
        self.counter += 1;
        let temp = join(&dir, &format!("{}-{}", self.temp_prefix, self.counter));
        let writer = tree.create(&temp, size)?;
        Ok(Box::new(FileUpload {
            tree: self.tree.clone(),
            writer: Some(writer),
            temp,
            dir,
            path,
        }))
    }

    fn get(&mut self, kind: ObjectKind, name: &str) -> Result<Box<dyn Read>, Error> {
        let (_, path) = layout::object_path(kind, name)?;
        self.tree.borrow_mut().open(&path)
    }

    fn get_range(
        &mut self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        let (_, path) = layout::object_path(kind, name)?;
        self.tree.borrow_mut().read_range(&path, offset, length)
    }

    fn list(&mut self, kind: ObjectKind) -> Result<Listing<ObjectInfo>, Error> {
        let mut out = Vec::new();
        match kind {
            ObjectKind::Config => {
                if let Some(size) = self.tree.borrow_mut().size("config")? {
                    out.push(ObjectInfo {
                        name: "config".into(),
                        size,
                    });
                }
            }
            ObjectKind::Pack => {
                let fans = self.tree.borrow_mut().list("packs")?.unwrap_or_default();
                for fan in fans.into_iter().filter(|f| f.kind == EntryKind::Dir) {
                    // A fan-out folder is two hex digits; anything else is not ours.
                    let Ok(fan) = String::from_utf8(fan.name) else {
                        continue;
                    };
                    if fan.len() == 2 && layout::is_object_name(&fan) {
                        self.list_folder(&format!("packs/{fan}"), &mut out)?;
                    }
                }
            }
            _ => self.list_folder(layout::folder(kind), &mut out)?,
        }
        Ok(listing(out))
    }

    fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<(), Error> {
        let (_, path) = layout::object_path(kind, name)?;
        match self.tree.borrow_mut().remove(&path) {
            Err(e) if e.kind != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// An object being written to its temporary name: committed, it is
/// finished, renamed into place and its folder synced; dropped before, the
/// temporary file is removed.
struct FileUpload<T: FileTree> {
    tree: Rc<RefCell<T>>,
    /// Until committed.
    writer: Option<T::Writer>,
    temp: String,
    dir: String,
    path: String,
}

impl<T: FileTree> Upload for FileUpload<T> {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "write after commit"))?;
        self.tree.borrow_mut().write(writer, data)
    }

    fn commit(mut self: Box<Self>) -> Result<(), Error> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "committed twice"))?;
        let mut tree = self.tree.borrow_mut();
        let result = tree
            .finish(writer)
            .and_then(|()| tree.rename(&self.temp, &self.path))
            .and_then(|()| tree.sync_dir(&self.dir));
        if result.is_err() {
            let _ = tree.remove(&self.temp);
        }
        result
    }
}

impl<T: FileTree> Drop for FileUpload<T> {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            let mut tree = self.tree.borrow_mut();
            tree.abandon(writer);
            let _ = tree.remove(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A tree in memory, whose failures a test can switch on.
    #[derive(Default)]
    struct Memory {
        files: BTreeMap<String, Vec<u8>>,
        dirs: HashSet<String>,
        fail_finish: bool,
        make_dirs_calls: usize,
    }

    impl FileTree for Memory {
        type Writer = (String, Vec<u8>);

        fn make_dirs(&mut self, dir: &str) -> Result<(), Error> {
            self.make_dirs_calls += 1;
            let mut at = String::new();
            for part in dir.split('/').filter(|p| !p.is_empty()) {
                at = join(&at, part);
                self.dirs.insert(at.clone());
            }
            Ok(())
        }

        fn list(&mut self, dir: &str) -> Result<Option<Vec<FileInfo>>, Error> {
            if !dir.is_empty() && !self.dirs.contains(dir) {
                return Ok(None);
            }
            let prefix = join(dir, "");
            let child = |p: &String| {
                p.strip_prefix(&prefix)
                    .filter(|rest| !rest.is_empty() && !rest.contains('/'))
                    .map(|rest| rest.as_bytes().to_vec())
            };
            let mut out: Vec<FileInfo> = self
                .files
                .iter()
                .filter_map(|(p, data)| {
                    child(p).map(|name| FileInfo {
                        name,
                        kind: EntryKind::File,
                        size: data.len() as u64,
                    })
                })
                .collect();
            out.extend(self.dirs.iter().filter_map(|d| {
                child(d).map(|name| FileInfo {
                    name,
                    kind: EntryKind::Dir,
                    size: 0,
                })
            }));
            Ok(Some(out))
        }

        fn size(&mut self, path: &str) -> Result<Option<u64>, Error> {
            Ok(self.files.get(path).map(|d| d.len() as u64))
        }

        fn create(&mut self, path: &str, _size: u64) -> Result<Self::Writer, Error> {
            self.files.insert(path.to_string(), Vec::new());
            Ok((path.to_string(), Vec::new()))
        }

        fn write(&mut self, writer: &mut Self::Writer, data: &[u8]) -> Result<(), Error> {
            writer.1.extend_from_slice(data);
            Ok(())
        }

        fn finish(&mut self, (path, data): Self::Writer) -> Result<(), Error> {
            if self.fail_finish {
                return Err(Error::new(ErrorKind::Other, "disk full"));
            }
            self.files.insert(path, data);
            Ok(())
        }

        fn abandon(&mut self, _writer: Self::Writer) {}

        fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
            let data = self.files.remove(from).expect("renamed file exists");
            self.files.insert(to.to_string(), data);
            Ok(())
        }

        fn remove(&mut self, path: &str) -> Result<(), Error> {
            self.files
                .remove(path)
                .map(drop)
                .ok_or_else(|| Error::new(ErrorKind::NotFound, path))
        }

        fn open(&mut self, path: &str) -> Result<Box<dyn Read>, Error> {
            let data = self.files.get(path).cloned();
            data.map(|d| Box::new(std::io::Cursor::new(d)) as Box<dyn Read>)
                .ok_or_else(|| Error::new(ErrorKind::NotFound, path))
        }

        fn read_range(&mut self, path: &str, offset: u64, length: u64) -> Result<Vec<u8>, Error> {
            let data = self
                .files
                .get(path)
                .ok_or_else(|| Error::new(ErrorKind::NotFound, path))?;
            let start = (offset as usize).min(data.len());
            let end = start.saturating_add(length as usize).min(data.len());
            Ok(data[start..end].to_vec())
        }
    }

    fn put(storage: &mut FileStorage<Memory>, kind: ObjectKind, name: &str, data: &[u8]) {
        let mut upload = storage.put(kind, name, data.len() as u64).unwrap();
        upload.write(data).unwrap();
        upload.commit().unwrap();
    }

    fn names(storage: &mut FileStorage<Memory>, kind: ObjectKind) -> Vec<(String, u64)> {
        let mut out: Vec<_> = storage
            .list(kind)
            .unwrap()
            .map(|o| o.map(|o| (o.name, o.size)).unwrap())
            .collect();
        out.sort();
        out
    }

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
    fn objects_land_in_the_native_layout_and_list_back() {
        let mut storage = FileStorage::new(Memory::default());
        put(&mut storage, ObjectKind::Config, "config", b"c");
        put(&mut storage, ObjectKind::Pack, "ab01", b"pack one");
        put(&mut storage, ObjectKind::Pack, "ab02", b"two");
        put(&mut storage, ObjectKind::Pack, "cd01", b"three");
        put(&mut storage, ObjectKind::Snapshot, "ff", b"snap");
        let tree = storage.tree.borrow();
        let paths: Vec<_> = tree.files.keys().cloned().collect();
        assert_eq!(
            paths,
            [
                "config",
                "packs/ab/ab01",
                "packs/ab/ab02",
                "packs/cd/cd01",
                "snapshots/ff"
            ]
        );
        // One folder creation per folder, not per put.
        assert_eq!(tree.make_dirs_calls, 4);
        drop(tree);
        assert_eq!(
            names(&mut storage, ObjectKind::Pack),
            [("ab01".into(), 8), ("ab02".into(), 3), ("cd01".into(), 5)]
        );
        assert_eq!(
            names(&mut storage, ObjectKind::Config),
            [("config".into(), 1)]
        );
        assert_eq!(names(&mut storage, ObjectKind::Key), []);
        let mut read = String::new();
        let mut pack = storage.get(ObjectKind::Pack, "ab01").unwrap();
        pack.read_to_string(&mut read).unwrap();
        assert_eq!(read, "pack one");
        assert_eq!(
            storage.get_range(ObjectKind::Pack, "ab01", 5, 3).unwrap(),
            b"one"
        );
    }

    #[test]
    fn temporary_and_stray_files_are_not_listed() {
        let mut storage = FileStorage::new(Memory::default());
        put(&mut storage, ObjectKind::Pack, "ab01", b"x");
        let upload = storage.put(ObjectKind::Pack, "ab02", 1).unwrap();
        {
            let mut tree = storage.tree.borrow_mut();
            tree.files
                .insert("packs/ab/NOTES.txt".into(), b"x".to_vec());
            tree.dirs.insert("packs/zz-not-a-fan".into());
            tree.files
                .insert("packs/zz-not-a-fan/ab03".into(), b"x".to_vec());
        }
        assert_eq!(names(&mut storage, ObjectKind::Pack), [("ab01".into(), 1)]);
        drop(upload);
    }

    #[test]
    fn an_unfinished_or_failed_put_leaves_nothing() {
        let mut storage = FileStorage::new(Memory::default());
        let mut upload = storage.put(ObjectKind::Pack, "ab01", 4).unwrap();
        upload.write(b"half").unwrap();
        drop(upload);
        assert!(storage.tree.borrow().files.is_empty());

        storage.tree.borrow_mut().fail_finish = true;
        let mut upload = storage.put(ObjectKind::Pack, "ab01", 4).unwrap();
        upload.write(b"full").unwrap();
        assert!(upload.commit().is_err());
        assert!(storage.tree.borrow().files.is_empty());
    }

    #[test]
    fn names_that_are_not_objects_are_refused_before_any_path() {
        let mut storage = FileStorage::new(Memory::default());
        for bad in ["../config", "a/b", "", "ABC"] {
            assert!(storage.put(ObjectKind::Pack, bad, 0).is_err());
            assert!(storage.get(ObjectKind::Key, bad).is_err());
            assert!(storage.delete(ObjectKind::Key, bad).is_err());
        }
        assert!(storage.tree.borrow().files.is_empty());
        // Deleting what is not there succeeds.
        storage.delete(ObjectKind::Pack, "ab01").unwrap();
    }
}
