//! A store in a local directory: one file per object, written atomically
//! (temporary file, fsync, rename, fsync of the directory) so a crash never
//! leaves a half-written object under a real name.

use super::{ObjectInfo, ObjectKind, Storage, StorageError, is_valid_name};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Objects as files under a root directory; packs are fanned out into 256
/// subdirectories by the first two hex digits of their name.
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Uses `root` as the store directory; nothing is created until the first put.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store's folder, for the local cache and messages.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, kind: ObjectKind, name: &str) -> PathBuf {
        match kind {
            ObjectKind::Config => self.root.join("config"),
            ObjectKind::Pack => self
                .root
                .join(kind.dir_name())
                .join(&name[..2.min(name.len())])
                .join(name),
            _ => self.root.join(kind.dir_name()).join(name),
        }
    }

    fn check_name(kind: ObjectKind, name: &str) -> Result<(), StorageError> {
        if is_valid_name(name) {
            Ok(())
        } else {
            Err(StorageError::Backend(
                format!("invalid {kind} name {name:?}").into(),
            ))
        }
    }

    fn io(op: &'static str, kind: ObjectKind, name: &str, source: io::Error) -> StorageError {
        if source.kind() == io::ErrorKind::NotFound && op != "put" {
            StorageError::NotFound {
                kind,
                name: name.to_string(),
            }
        } else {
            StorageError::Io {
                op,
                kind,
                name: name.to_string(),
                source,
            }
        }
    }

    fn write_atomically(&self, target: &Path, data: &[u8]) -> io::Result<()> {
        let dir = target.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir)?;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
        let tmp = dir.join(format!(".tmp-{}", hex::encode(suffix)));
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            file.write_all(data)?;
            file.sync_all()?;
            fs::rename(&tmp, target)?;
            File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn list_dir(dir: &Path, out: &mut Vec<ObjectInfo>) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_valid_name(&name) {
                continue; // temporary files and strangers are not objects
            }
            let meta = entry.metadata()?;
            if meta.is_file() {
                out.push(ObjectInfo {
                    name,
                    size: meta.len(),
                });
            }
        }
        Ok(())
    }
}

impl Storage for LocalStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<(), StorageError> {
        Self::check_name(kind, name)?;
        self.write_atomically(&self.path(kind, name), data)
            .map_err(|e| Self::io("put", kind, name, e))
    }

    fn get(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, StorageError> {
        Self::check_name(kind, name)?;
        fs::read(self.path(kind, name)).map_err(|e| Self::io("get", kind, name, e))
    }

    fn get_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, StorageError> {
        Self::check_name(kind, name)?;
        let read = || -> io::Result<Vec<u8>> {
            let mut file = File::open(self.path(kind, name))?;
            file.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(length.min(1 << 30) as usize);
            file.take(length).read_to_end(&mut buf)?;
            Ok(buf)
        };
        read().map_err(|e| Self::io("get", kind, name, e))
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut out = Vec::new();
        let result = match kind {
            ObjectKind::Config => match fs::metadata(self.root.join("config")) {
                Ok(meta) => {
                    out.push(ObjectInfo {
                        name: "config".into(),
                        size: meta.len(),
                    });
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            },
            ObjectKind::Pack => (|| {
                let dir = self.root.join(kind.dir_name());
                let fans = match fs::read_dir(&dir) {
                    Ok(fans) => fans,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
                };
                for fan in fans {
                    let fan = fan?;
                    if fan.file_type()?.is_dir() {
                        Self::list_dir(&fan.path(), &mut out)?;
                    }
                }
                Ok(())
            })(),
            _ => Self::list_dir(&self.root.join(kind.dir_name()), &mut out),
        };
        result.map_err(|e| Self::io("list", kind, "*", e))?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<(), StorageError> {
        Self::check_name(kind, name)?;
        match fs::remove_file(self.path(kind, name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::io("delete", kind, name, e)),
        }
    }
}
