//! The sealed snapshot headers this machine has read, kept in one file of
//! the local cache. Every command that names a snapshot (`latest`, an id
//! prefix, a backup's parent) reads every header; with 10,000 snapshots
//! that was 10,000 objects fetched each time (1.25 s on a local disk, many
//! minutes over SFTP or S3). A header never changes (its name is the hash
//! of its bytes), so once read it is kept: a command then lists the
//! snapshot names and fetches only the new ones.
//!
//! The file holds the headers as the store does, sealed: it is no more
//! readable than the store, and each header is opened and checked against
//! its name on every use, so a damaged or altered file costs a fetch,
//! never a wrong answer.

use crate::crypto::Id;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

const MAGIC: &[u8; 8] = b"KASTHDR1";
/// A header is a few hundred bytes; anything claiming more is damage.
const MAX_HEADER: usize = 1 << 20;

/// Sealed headers by snapshot id, loaded from and saved to one file.
pub(crate) struct HeaderCache {
    path: PathBuf,
    sealed: HashMap<Id, Vec<u8>>,
    changed: bool,
}

impl HeaderCache {
    /// What the file at `path` holds; nothing if it is missing or damaged.
    pub(crate) fn load(path: PathBuf) -> HeaderCache {
        let sealed = std::fs::read(&path)
            .ok()
            .and_then(|bytes| parse(&bytes))
            .unwrap_or_default();
        HeaderCache {
            path,
            sealed,
            changed: false,
        }
    }

    /// The sealed header of `id`, if kept.
    pub(crate) fn get(&self, id: &Id) -> Option<&[u8]> {
        self.sealed.get(id).map(Vec::as_slice)
    }

    /// Keeps the sealed header of `id` (read from the store).
    pub(crate) fn insert(&mut self, id: Id, sealed: Vec<u8>) {
        if sealed.len() <= MAX_HEADER {
            self.sealed.insert(id, sealed);
            self.changed = true;
        }
    }

    /// Forgets `id` (its kept copy did not open).
    pub(crate) fn remove(&mut self, id: &Id) {
        self.changed |= self.sealed.remove(id).is_some();
    }

    /// Forgets every header the store no longer lists.
    pub(crate) fn keep_only(&mut self, listed: &HashSet<Id>) {
        let before = self.sealed.len();
        self.sealed.retain(|id, _| listed.contains(id));
        self.changed |= self.sealed.len() != before;
    }

    /// Writes the file again if anything changed (a new file, then a
    /// rename: a reader never sees half of one). A cache that cannot be
    /// written is only slower, so the caller may ignore the error.
    pub(crate) fn save(&self) -> std::io::Result<()> {
        if !self.changed {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out =
            Vec::with_capacity(8 + self.sealed.values().map(|s| s.len() + 36).sum::<usize>());
        out.extend_from_slice(MAGIC);
        for (id, sealed) in &self.sealed {
            out.extend_from_slice(&id.0);
            out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
            out.extend_from_slice(sealed);
        }
        let temporary = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::File::create(&temporary)
            .and_then(|mut file| file.write_all(&out))
            .and_then(|()| std::fs::rename(&temporary, &self.path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }
}

fn parse(bytes: &[u8]) -> Option<HashMap<Id, Vec<u8>>> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let mut out = HashMap::new();
    while !rest.is_empty() {
        let id = Id(rest.get(..32)?.try_into().ok()?);
        let len = u32::from_le_bytes(rest.get(32..36)?.try_into().ok()?) as usize;
        if len > MAX_HEADER {
            return None;
        }
        out.insert(id, rest.get(36..36 + len)?.to_vec());
        rest = &rest[36 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_headers_come_back_and_damage_means_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("headers");
        let mut cache = HeaderCache::load(path.clone());
        cache.insert(Id([1; 32]), b"one".to_vec());
        cache.insert(Id([2; 32]), b"two".to_vec());
        cache.keep_only(&[Id([2; 32])].into_iter().collect());
        cache.save().unwrap();
        let again = HeaderCache::load(path.clone());
        assert_eq!(again.get(&Id([2; 32])), Some(&b"two"[..]));
        assert_eq!(again.get(&Id([1; 32])), None);
        // Cut short: nothing kept rather than a wrong length trusted.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(HeaderCache::load(path).sealed.len(), 0);
    }
}
