//! Snapshot headers: the small sealed object that names a backup's root tree
//! and says what, when, where from and how much.

use crate::codec::{Reader, Writer};
use crate::crypto::{Id, Keys};
use crate::error::{Error, Result};

/// Version 1; version 2 adds the job's name at the end, written only for
/// a job's snapshots, so every other header stays as older kast reads it.
const HEADER_VERSION: u8 = 1;
const HEADER_VERSION_WITH_JOB: u8 = 2;

/// Counts and sizes of one backup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Regular files.
    pub files: u64,
    /// Directories, the root included.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Fifos, sockets and devices.
    pub specials: u64,
    /// Entries recorded with an error (unreadable files and dirs).
    pub errors: u64,
    /// Sum of file sizes: what a restore writes.
    pub logical_bytes: u64,
    /// Files whose content was read (new or changed).
    pub files_read: u64,
    /// Files taken from the previous snapshot unread.
    pub files_unchanged: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// New blobs this backup stored.
    pub blobs_added: u64,
    /// Sealed bytes those blobs occupy in packs.
    pub bytes_added: u64,
    /// How long the backup took.
    pub duration_ms: u64,
}

/// A snapshot header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Nanoseconds since the Unix epoch when the backup started.
    pub time_ns: i64,
    /// The machine backed up, for `--host` filters and retention groups.
    pub host: String,
    /// The user who ran the backup.
    pub user: String,
    /// Where the data came from: a location URL or path.
    pub source: String,
    /// Labels given at backup time, for filters and retention.
    pub tags: Vec<String>,
    /// The job that made it (`kast job run`); empty for a backup by hand.
    /// A job's retention looks only at its own snapshots.
    pub job: String,
    /// The id of the root directory's tree: the Merkle root of everything backed up.
    pub root: Id,
    /// Counts and sizes, readable without walking the tree.
    pub summary: Summary,
    /// The put-only key that wrote it (its name), or `None` for a full
    /// key. Proven by the header's MAC, not written inside it: host,
    /// source and tags are what the writer claims, so retention and
    /// `latest` keep each writer's snapshots apart.
    pub writer: Option<String>,
}

impl Snapshot {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(if self.job.is_empty() {
            HEADER_VERSION
        } else {
            HEADER_VERSION_WITH_JOB
        });
        w.i64(self.time_ns);
        w.str(&self.host);
        w.str(&self.user);
        w.str(&self.source);
        w.varint(self.tags.len() as u64);
        for t in &self.tags {
            w.str(t);
        }
        w.fixed(&self.root.0);
        let s = &self.summary;
        for v in [
            s.files,
            s.dirs,
            s.symlinks,
            s.specials,
            s.errors,
            s.logical_bytes,
            s.files_read,
            s.files_unchanged,
            s.bytes_read,
            s.blobs_added,
            s.bytes_added,
            s.duration_ms,
        ] {
            w.varint(v);
        }
        if !self.job.is_empty() {
            w.str(&self.job);
        }
        w.into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8], what: &str) -> Result<Snapshot> {
        let mut r = Reader::new(bytes, what);
        let version = r.u8()?;
        if version != HEADER_VERSION && version != HEADER_VERSION_WITH_JOB {
            return Err(Error::corrupt(what, "unknown snapshot version"));
        }
        let time_ns = r.i64()?;
        let host = r.string()?;
        let user = r.string()?;
        let source = r.string()?;
        let tag_count = r.len(1)?;
        let tags = (0..tag_count).map(|_| r.string()).collect::<Result<_>>()?;
        let root = Id(r.array()?);
        let mut v = [0u64; 12];
        for slot in &mut v {
            *slot = r.varint()?;
        }
        let job = match version {
            HEADER_VERSION_WITH_JOB => r.string()?,
            _ => String::new(),
        };
        r.finish()?;
        let [
            files,
            dirs,
            symlinks,
            specials,
            errors,
            logical_bytes,
            files_read,
            files_unchanged,
            bytes_read,
            blobs_added,
            bytes_added,
            duration_ms,
        ] = v;
        Ok(Snapshot {
            time_ns,
            host,
            user,
            source,
            tags,
            job,
            root,
            summary: Summary {
                files,
                dirs,
                symlinks,
                specials,
                errors,
                logical_bytes,
                files_read,
                files_unchanged,
                bytes_read,
                blobs_added,
                bytes_added,
                duration_ms,
            },
            writer: None,
        })
    }

    /// Encrypts the header for storage; its object name is the hash of the
    /// result. A put-only key's says which key wrote it, provably
    /// ([`Keys::seal_snapshot`]).
    pub fn seal(&self, keys: &Keys) -> Result<Vec<u8>> {
        keys.seal_snapshot(&self.encode())
    }

    /// Verifies the name (hash of the bytes), then opens and decodes; a
    /// put-only key's header comes back with its writer set.
    pub fn open(keys: &Keys, name: &Id, sealed: &[u8]) -> Result<Snapshot> {
        let what = format!("snapshot {}", name.short());
        if Id::of_object(sealed) != *name {
            return Err(Error::corrupt(&what, "content does not match its name"));
        }
        let (plain, writer) = keys.open_snapshot(sealed, &what)?;
        let mut snapshot = Snapshot::decode(&plain, &what)?;
        snapshot.writer = writer.map(hex::encode);
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(time_ns: i64, host in ".*", user in ".*", source in ".*",
                      tags in proptest::collection::vec(".*", 0..4), job in ".*", root: [u8; 32], counts: [u64; 12]) {
            let [files, dirs, symlinks, specials, errors, logical_bytes, files_read, files_unchanged, bytes_read, blobs_added, bytes_added, duration_ms] = counts;
            let snap = Snapshot { time_ns, host, user, source, tags, job, root: Id(root), summary: Summary {
                files, dirs, symlinks, specials, errors, logical_bytes, files_read, files_unchanged, bytes_read, blobs_added, bytes_added, duration_ms }, writer: None };
            prop_assert_eq!(Snapshot::decode(&snap.encode(), "s").unwrap(), snap);
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let _ = Snapshot::decode(&bytes, "s");
        }
    }
}
