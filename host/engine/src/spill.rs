//! A pack's bytes between sealing and the put. They go to an unnamed
//! temporary file when the system gives one (restic keeps its packs in
//! temporary files too). A backup then holds only the frames in flight
//! rather than whole packs: 16 MiB filling and 16 MiB being put was most
//! of a small-file backup's peak memory. When no file can be made or
//! written (a full or read-only temporary directory), the bytes stay in
//! memory and the backup goes on as before.
//!
//! The file is made with `O_TMPFILE` where the system has it, so it has no
//! name and vanishes when closed, even if the process is killed. `TMPDIR`
//! chooses where it goes. A pack lives there for milliseconds, so its pages
//! are usually dropped before they are written to a disk.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Writes to the file are gathered up to this size: a pack of tree
/// frames of a few hundred bytes each is then a few dozen writes, not
/// thousands.
const STAGE: usize = 256 << 10;

/// Where a pack's bytes wait: a file, or parts in memory.
pub enum Body {
    /// In the temporary file: its first `in_file` bytes, then `staged`.
    Spilled {
        /// The unnamed temporary file.
        file: File,
        /// Bytes written to the file so far.
        in_file: u64,
        /// Bytes not yet written.
        staged: Vec<u8>,
    },
    /// In memory: the parts in order.
    Memory(Vec<Vec<u8>>),
}

impl Body {
    /// A body in a temporary file if one can be made, in memory otherwise.
    pub fn new() -> Self {
        match tempfile::tempfile() {
            Ok(file) => Body::Spilled {
                file,
                in_file: 0,
                staged: Vec::new(),
            },
            Err(_) => Body::Memory(Vec::new()),
        }
    }

    /// Appends a part. A spilled body gives the part back, since it is
    /// written out (or staged as a copy) and can be reused; a body in
    /// memory keeps it.
    pub fn push(&mut self, part: Vec<u8>) -> Option<Vec<u8>> {
        if let Body::Spilled {
            file,
            in_file,
            staged,
        } = self
        {
            match spill(file, in_file, staged, &part) {
                Ok(()) => return Some(part),
                Err(_) => self.fall_back(),
            }
        }
        if let Body::Memory(parts) = self {
            parts.push(part);
        }
        None
    }

    /// Bytes this body holds in memory (what a backup must count against
    /// its limit on unsent packs).
    pub fn in_memory(&self) -> u64 {
        match self {
            Body::Spilled { staged, .. } => staged.len() as u64,
            Body::Memory(parts) => parts.iter().map(|p| p.len() as u64).sum(),
        }
    }

    /// Reads the bytes back in order. Each part of a body in memory goes
    /// to `sent` once it has been read, so the caller can free it while
    /// the put goes on.
    pub fn reader(self, sent: &mut dyn FnMut(Vec<u8>)) -> io::Result<BodyReader<'_>> {
        Ok(match self {
            Body::Spilled {
                mut file,
                in_file,
                staged,
            } => {
                file.seek(SeekFrom::Start(0))?;
                BodyReader::File(file.take(in_file).chain(io::Cursor::new(staged)))
            }
            Body::Memory(parts) => {
                let mut parts = parts.into_iter();
                let current = io::Cursor::new(parts.next().unwrap_or_default());
                BodyReader::Memory {
                    parts,
                    current,
                    sent,
                }
            }
        })
    }

    /// After a failed write the file still holds its first `in_file`
    /// bytes: they are read back, and the body goes on in memory. If even
    /// that fails, the pack is lost, and the backup fails when the put
    /// reads short.
    fn fall_back(&mut self) {
        let Body::Spilled {
            file,
            in_file,
            staged,
        } = self
        else {
            return;
        };
        let mut written = Vec::with_capacity(*in_file as usize);
        let back = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| (&*file).take(*in_file).read_to_end(&mut written));
        let mut parts = Vec::new();
        if back.is_ok() && written.len() as u64 == *in_file {
            parts.push(written);
            parts.push(std::mem::take(staged));
        }
        *self = Body::Memory(parts);
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::new()
    }
}

/// Stages small parts and writes the stage (or a large part) whole; only
/// whole successful writes count in `in_file`.
fn spill(file: &mut File, in_file: &mut u64, staged: &mut Vec<u8>, part: &[u8]) -> io::Result<()> {
    if staged.len() + part.len() <= STAGE {
        staged.extend_from_slice(part);
        return Ok(());
    }
    if !staged.is_empty() {
        file.write_all(staged)?;
        *in_file += staged.len() as u64;
        staged.clear();
    }
    if part.len() <= STAGE {
        staged.extend_from_slice(part);
        return Ok(());
    }
    file.write_all(part)?;
    *in_file += part.len() as u64;
    Ok(())
}

/// A body's bytes, read back for a put.
pub enum BodyReader<'a> {
    /// From the temporary file, then what was still staged.
    File(io::Chain<io::Take<File>, io::Cursor<Vec<u8>>>),
    /// From the parts in memory, each handed to `sent` once read.
    Memory {
        /// Parts not yet started.
        parts: std::vec::IntoIter<Vec<u8>>,
        /// The part being read.
        current: io::Cursor<Vec<u8>>,
        /// Where read parts go.
        sent: &'a mut dyn FnMut(Vec<u8>),
    },
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BodyReader::File(file) => file.read(buf),
            BodyReader::Memory {
                parts,
                current,
                sent,
            } => loop {
                let n = current.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                let Some(next) = parts.next() else {
                    return Ok(0);
                };
                let done = std::mem::replace(current, io::Cursor::new(next));
                sent(done.into_inner());
            },
        }
    }
}

impl Drop for BodyReader<'_> {
    /// Parts a failed put did not read are handed back too.
    fn drop(&mut self) {
        if let BodyReader::Memory {
            parts,
            current,
            sent,
        } = self
        {
            sent(std::mem::take(current.get_mut()));
            parts.for_each(&mut **sent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Vec<Vec<u8>> {
        [10, STAGE - 5, 7, 3 * STAGE, 0, 1, STAGE]
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![i as u8; n])
            .collect()
    }

    fn read_all(body: Body) -> (Vec<u8>, usize) {
        let mut handed = 0;
        let mut sent = |_: Vec<u8>| handed += 1;
        let mut out = Vec::new();
        body.reader(&mut sent)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        (out, handed)
    }

    #[test]
    fn a_spilled_body_reads_back_what_was_pushed_and_holds_little() {
        let mut body = Body::new();
        assert!(matches!(body, Body::Spilled { .. }), "no temporary file");
        for part in parts() {
            assert!(body.push(part).is_some(), "a spilled part is given back");
            assert!(body.in_memory() <= STAGE as u64);
        }
        assert_eq!(read_all(body).0, parts().concat());
    }

    #[test]
    fn a_body_in_memory_hands_every_part_back_once() {
        let mut body = Body::Memory(Vec::new());
        for part in parts() {
            assert!(body.push(part).is_none());
        }
        assert_eq!(body.in_memory(), parts().concat().len() as u64);
        let (bytes, handed) = read_all(body);
        assert_eq!(bytes, parts().concat());
        assert_eq!(handed, parts().len());
    }

    #[test]
    fn a_failed_spill_goes_on_in_memory_with_every_byte() {
        let mut body = Body::new();
        let all = parts();
        let (first, rest) = all.split_at(4);
        for part in first.iter() {
            body.push(part.clone());
        }
        // A file opened read-only fails every write, as a full disk would.
        if let Body::Spilled { file, .. } = &mut body {
            let mut written = Vec::new();
            file.seek(SeekFrom::Start(0)).unwrap();
            file.read_to_end(&mut written).unwrap();
            let path = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(path.path(), &written).unwrap();
            *file = File::open(path.path()).unwrap();
        }
        for part in rest.iter() {
            body.push(part.clone());
        }
        assert!(matches!(body, Body::Memory(_)), "still spilling");
        assert_eq!(read_all(body).0, all.concat());
    }
}
