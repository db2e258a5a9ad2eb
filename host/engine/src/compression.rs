//! Compression codecs. A store's config names the codec its writers use
//! (chosen at `create`); every sealed frame names the codec of its own
//! bytes, so a reader opens any mix, and a store written by an older
//! version (LZ4 only) reads the same as ever.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The frame's payload is stored as it is.
pub(crate) const RAW: u8 = 0;
/// LZ4 block format.
pub(crate) const LZ4: u8 = 1;
/// One zstd frame.
pub(crate) const ZSTD: u8 = 2;

/// What writers of a store compress with, as `kast create --compression`
/// takes it: `zstd[:LEVEL]`, `lz4` or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Stored as it is: for data known not to compress.
    None,
    /// The fastest; about half the ratio of zstd on text.
    Lz4,
    /// zstd at a level from 1 (fastest) to 19 (smallest).
    Zstd(i32),
}

impl Compression {
    /// The level `zstd` alone means: measured the best size for its speed
    /// (docs/benchmarks.md, "Compression").
    pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

    /// Whether small chunks are worth compressing together (a frame of
    /// many): the gain comes from the codec seeing across files.
    pub(crate) fn groups(self) -> bool {
        self != Compression::None
    }
}

impl Default for Compression {
    /// zstd level 3: stores 20–50 % smaller than LZ4 on text at about the
    /// same backup time, since both run far faster than encryption and
    /// hashing on incompressible data (docs/benchmarks.md, "Compression").
    fn default() -> Self {
        Compression::Zstd(Compression::ZSTD_DEFAULT_LEVEL)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Lz4 => f.write_str("lz4"),
            Compression::Zstd(level) => write!(f, "zstd:{level}"),
        }
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidArgument(format!(
                "unknown compression {text:?}: use zstd, zstd:LEVEL (1 to 19), lz4 or none"
            ))
        };
        match text.split_once(':') {
            None if text == "none" => Ok(Compression::None),
            None if text == "lz4" => Ok(Compression::Lz4),
            None if text == "zstd" => Ok(Compression::default()),
            Some(("zstd", level)) => match level.parse::<i32>() {
                Ok(level) if (1..=19).contains(&level) => Ok(Compression::Zstd(level)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl serde::Serialize for Compression {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Compression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One worker's compressor: the zstd context is made once and reused, which
/// is most of zstd's cost on small inputs.
pub(crate) struct Compressor {
    codec: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl Compressor {
    pub(crate) fn new(codec: Compression) -> Self {
        Compressor { codec, zstd: None }
    }

    /// Appends `input` compressed to `out` and returns the codec byte, or
    /// returns `None` (leaving `out` as it was) when that would not save
    /// at least a few bytes.
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Option<u8>> {
        let start = out.len();
        let codec = match self.codec {
            Compression::None => return Ok(None),
            Compression::Lz4 => {
                out.resize(
                    start + lz4_flex::block::get_maximum_output_size(input.len()),
                    0,
                );
                let n = lz4_flex::block::compress_into(input, &mut out[start..])
                    .map_err(|e| Error::corrupt("compression", e.to_string()))?;
                out.truncate(start + n);
                LZ4
            }
            Compression::Zstd(level) => {
                let zstd = match &mut self.zstd {
                    Some(z) => z,
                    None => self.zstd.insert(
                        zstd::bulk::Compressor::new(level)
                            .map_err(|e| Error::corrupt("compression", e.to_string()))?,
                    ),
                };
                // Room for a result worth keeping, written into spare
                // capacity: no page past what zstd writes is touched, and
                // an output that would not be smaller stops zstd early
                // (the only way it fails here: a blob is then stored raw).
                out.reserve(input.len());
                let mut cursor = std::io::Cursor::new(&mut *out);
                cursor.set_position(start as u64);
                if zstd.compress_to_buffer(input, &mut cursor).is_err() {
                    out.truncate(start);
                    return Ok(None);
                }
                ZSTD
            }
        };
        if out.len() - start + 4 < input.len() {
            Ok(Some(codec))
        } else {
            out.truncate(start);
            Ok(None)
        }
    }
}

/// Decompresses `input` (compressed with `codec`) into exactly `raw_len`
/// bytes; anything else is corruption, so a hostile frame cannot make a
/// reader allocate more than its index promised.
pub(crate) fn decompress(codec: u8, input: &[u8], raw_len: usize, what: &str) -> Result<Vec<u8>> {
    let out = match codec {
        RAW => input.to_vec(),
        LZ4 => {
            let mut out = vec![0u8; raw_len];
            let n = lz4_flex::block::decompress_into(input, &mut out)
                .map_err(|e| Error::corrupt(what, format!("bad LZ4 data: {e}")))?;
            out.truncate(n);
            out
        }
        ZSTD => {
            let mut out = Vec::with_capacity(raw_len);
            zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(input, &mut out))
                .map_err(|e| Error::corrupt(what, format!("bad zstd data: {e}")))?;
            out
        }
        _ => return Err(Error::corrupt(what, "unknown compression")),
    };
    if out.len() != raw_len {
        return Err(Error::corrupt(what, "decompressed length differs"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip_and_bad_ones_are_refused() {
        for text in ["none", "lz4", "zstd:1", "zstd:3", "zstd:19"] {
            assert_eq!(text.parse::<Compression>().unwrap().to_string(), text);
        }
        assert_eq!("zstd".parse::<Compression>().unwrap(), Compression::Zstd(3));
        for bad in ["", "zstd:0", "zstd:20", "zstd:x", "gzip", "lz4:1", "zstd:"] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_codec_round_trips(data: Vec<u8>, repeat in 1usize..20, codec in 0usize..4) {
            let codec = [Compression::None, Compression::Lz4, Compression::Zstd(1), Compression::Zstd(9)][codec];
            let input = data.repeat(repeat);
            let mut out = b"kept".to_vec();
            match Compressor::new(codec).compress(&input, &mut out).unwrap() {
                Some(c) => {
                    prop_assert!(out.len() - 4 + 4 < input.len());
                    prop_assert_eq!(decompress(c, &out[4..], input.len(), "t").unwrap(), input.clone());
                    prop_assert!(decompress(c, &out[4..], input.len() + 1, "t").is_err());
                }
                None => prop_assert_eq!(&out, b"kept"),
            }
        }

        #[test]
        fn garbage_never_panics(codec in 0u8..4, input: Vec<u8>, raw_len in 0usize..100_000) {
            let _ = decompress(codec, &input, raw_len, "t");
        }
    }
}
