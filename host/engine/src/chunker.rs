//! Content-defined chunking with FastCDC 2020 over a stream.
//!
//! The cut points are exactly those of `fastcdc::v2020::cut_gear` (a test
//! holds them equal), found by a scanner that keeps its hash between reads:
//! bytes are read a small step at a time and appended to the chunk, so
//! there is no window of twice the largest chunk (16 MiB) to hold; the few
//! bytes read past a cut start the next chunk.

use crate::config::ChunkerParams;
use fastcdc::v2020::{Normalization, get_gear_with_seed, select_masks};
use std::borrow::Cow;
use std::io::{self, Read};

/// Bytes read at a time: at most this many are read past a cut and
/// carried over to the next chunk.
const STEP: usize = 64 * 1024;

/// Cuts with a store's parameters and seeded gear table.
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

/// Where the scan of the current chunk stands: the next pair of bytes to
/// hash (FastCDC 2020 hashes two bytes a step) and the hash so far.
struct Scan {
    pair: usize,
    hash: u64,
}

impl Chunker {
    /// A chunker for one store: `seed` comes from its key, so chunk boundaries do not reveal
    /// content to someone without it.
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

    /// As [`Chunker::chunks`], reading through a buffer kept from an
    /// earlier stream ([`Chunks::into_buffer`]): a backup of many small
    /// files would otherwise zero a fresh one for each.
    pub fn chunks_in<R: Read>(&self, reader: R, mut buffer: Vec<u8>) -> Chunks<'_, R> {
        buffer.resize(STEP, 0);
        Chunks {
            chunker: self,
            reader,
            buffer,
            carry: Vec::new(),
            eof: false,
        }
    }

    fn start(&self) -> Scan {
        Scan {
            pair: self.params.min_size as usize / 2,
            hash: 0,
        }
    }

    /// Hashes on through `data` (the chunk so far); the chunk's length if a
    /// cut falls inside it. Cuts below the average size need more bits to
    /// match than cuts above it (normalised chunking).
    fn scan(&self, scan: &mut Scan, data: &[u8]) -> Option<usize> {
        let end = (data.len() / 2).min(self.params.max_size as usize / 2);
        let center = (self.params.avg_size as usize / 2).min(end);
        let (gear, gear_ls) = (&self.gear, &self.gear_ls);
        for (end, mask) in [(center, self.mask_s), (end, self.mask_l)] {
            let mask_ls = mask << 1;
            while scan.pair < end {
                let a = scan.pair * 2;
                scan.hash = (scan.hash << 2).wrapping_add(gear_ls[data[a] as usize]);
                if scan.hash & mask_ls == 0 {
                    return Some(a);
                }
                scan.hash = scan.hash.wrapping_add(gear[data[a + 1] as usize]);
                if scan.hash & mask == 0 {
                    return Some(a + 1);
                }
                scan.pair += 1;
            }
        }
        None
    }
}

/// An iterator of chunks read from one stream.
pub struct Chunks<'a, R> {
    chunker: &'a Chunker,
    reader: R,
    /// Where reads land before they join the chunk (`STEP` bytes).
    buffer: Vec<u8>,
    /// Bytes read past the last cut: the start of the next chunk.
    carry: Vec<u8>,
    eof: bool,
}

impl<R: Read> Chunks<'_, R> {
    /// Reads the next chunk into `out` (cleared first); false at the end of
    /// the stream.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        let max = self.chunker.params.max_size as usize;
        out.clear();
        out.append(&mut self.carry);
        let mut scan = self.chunker.start();
        loop {
            let cut = match self.chunker.scan(&mut scan, out) {
                Some(cut) => Some(cut),
                None if out.len() >= max => Some(max),
                None if self.eof => return Ok(!out.is_empty()),
                None => None,
            };
            if let Some(cut) = cut {
                self.carry.extend_from_slice(&out[cut..]);
                out.truncate(cut);
                return Ok(true);
            }
            self.read(out, max - out.len())?;
        }
    }

    /// The read buffer, for the next stream.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buffer
    }

    /// Appends up to `want` bytes (at most a step); notes the end of the
    /// stream.
    fn read(&mut self, out: &mut Vec<u8>, want: usize) -> io::Result<()> {
        let want = want.min(self.buffer.len());
        let n = loop {
            match self.reader.read(&mut self.buffer[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        out.extend_from_slice(&self.buffer[..n]);
        self.eof = n == 0;
        Ok(())
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

    /// The cut points of `fastcdc`'s own `cut_gear` over the whole input,
    /// which the streaming scanner must reproduce: a store's chunks must not
    /// depend on how its files were read.
    fn reference(chunker: &Chunker, input: &[u8]) -> Vec<usize> {
        let p = &chunker.params;
        let mut cuts = Vec::new();
        let mut at = 0;
        while at < input.len() {
            let (_, len) = fastcdc::v2020::cut_gear(
                &input[at..],
                p.min_size as usize,
                p.avg_size as usize,
                p.max_size as usize,
                chunker.mask_s,
                chunker.mask_l,
                chunker.mask_s << 1,
                chunker.mask_l << 1,
                &chunker.gear,
                &chunker.gear_ls,
            );
            at += len.max(1);
            cuts.push(at);
        }
        cuts
    }

    #[test]
    fn cut_points_are_those_of_fastcdc() {
        let chunker = Chunker::new(small(), 9);
        let mut input = data(3_000_000, 3);
        // A long run of zeroes forces cuts at the maximum size.
        input.splice(1_000_000..1_000_000, std::iter::repeat_n(0u8, 300_000));
        for len in [0, 1, 4095, 4096, 4097, 4098, 20_000, 65_537, input.len()] {
            let input = &input[..len];
            let mut at = 0;
            let ours: Vec<usize> = chunker
                .chunks(Trickle(input))
                .map(|c| {
                    at += c.unwrap().len();
                    at
                })
                .collect();
            assert_eq!(ours, reference(&chunker, input), "length {len}");
        }
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let chunker = Chunker::new(small(), 0);
        assert_eq!(chunker.chunks(&b""[..]).count(), 0);
    }
}
