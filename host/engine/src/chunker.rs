//! Content-defined chunking with FastCDC 2020 over a stream.
//!
//! The `fastcdc` crate's own `StreamCDC` moves its whole buffer after every
//! chunk (up to `max_size` bytes copied per chunk); this reader keeps a buffer
//! of twice the maximum and moves only the unread tail when it refills, so the
//! chunker costs one pass over the data plus one copy out per chunk.

use crate::config::ChunkerParams;
use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};
use std::borrow::Cow;
use std::io::{self, Read};

/// Cuts with a store's parameters and seeded gear table.
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

impl Chunker {
    pub fn new(params: ChunkerParams, seed: u64) -> Self {
        let (mask_s, mask_l) = select_masks(params.avg_size as usize, Normalization::Level1);
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Self {
            params,
            mask_s,
            mask_l,
            gear,
            gear_ls,
        }
    }

    /// Streams the chunks of `reader`.
    pub fn chunks<R: Read>(&self, reader: R) -> Chunks<'_, R> {
        self.chunks_in(reader, Vec::new())
    }

    /// As [`Chunker::chunks`], in a window kept from an earlier stream
    /// ([`Chunks::into_window`]): zeroing a fresh window of twice the
    /// largest chunk costs more than reading a small file.
    pub fn chunks_in<R: Read>(&self, reader: R, mut window: Vec<u8>) -> Chunks<'_, R> {
        window.resize(2 * self.params.max_size as usize, 0);
        Chunks {
            chunker: self,
            reader,
            buf: window,
            start: 0,
            end: 0,
            eof: false,
        }
    }

    fn cut(&self, data: &[u8]) -> usize {
        let p = &self.params;
        let (_, len) = cut_gear(
            data,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len
    }
}

/// An iterator of chunks read from one stream.
pub struct Chunks<'a, R> {
    chunker: &'a Chunker,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Chunks<'_, R> {
    /// The window, for the next stream.
    pub fn into_window(self) -> Vec<u8> {
        self.buf
    }

    fn fill(&mut self) -> io::Result<()> {
        let max = self.chunker.params.max_size as usize;
        if self.end - self.start >= max || self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < self.buf.len() {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Copies the next chunk into `out` (cleared first); false at the end
    /// of the stream.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        self.fill()?;
        let available = &self.buf[self.start..self.end];
        out.clear();
        if available.is_empty() {
            return Ok(false);
        }
        let len = self.chunker.cut(available).clamp(1, available.len());
        out.extend_from_slice(&available[..len]);
        self.start += len;
        Ok(true)
    }
}

impl<R: Read> Iterator for Chunks<'_, R> {
    type Item = io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut chunk = Vec::new();
        match self.next_into(&mut chunk) {
            Ok(true) => Some(Ok(chunk)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect()
    }

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        }
    }

    /// A reader that returns at most 1000 bytes a call, to exercise refills.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn chunks_reassemble_and_respect_bounds() {
        let input = data(1_000_000, 1);
        let chunker = Chunker::new(small(), 42);
        let chunks: Vec<Vec<u8>> = chunker.chunks(&input[..]).map(Result::unwrap).collect();
        assert_eq!(chunks.concat(), input);
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.len() >= 4096 && c.len() <= 65536, "{}", c.len());
        }
        let trickled: Vec<Vec<u8>> = chunker
            .chunks(Trickle(&input))
            .map(Result::unwrap)
            .collect();
        assert_eq!(trickled, chunks, "cut points must not depend on read sizes");
    }

    #[test]
    fn cut_points_resynchronise_after_an_insert() {
        let input = data(2_000_000, 2);
        let mut edited = input.clone();
        edited.insert(1_000_000, 0xAB);
        let chunker = Chunker::new(small(), 7);
        let a: std::collections::HashSet<Vec<u8>> =
            chunker.chunks(&input[..]).map(Result::unwrap).collect();
        let b: Vec<Vec<u8>> = chunker.chunks(&edited[..]).map(Result::unwrap).collect();
        let new = b.iter().filter(|c| !a.contains(*c)).count();
        assert!(new <= 2, "{new} new chunks after a one-byte insert");
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let chunker = Chunker::new(small(), 0);
        assert_eq!(chunker.chunks(&b""[..]).count(), 0);
    }
}
