//! The store's config: the one plaintext object, fixed at creation. It says
//! how every client must cut and pack data, and carries a MAC under the
//! master key so a tampered config is detected as soon as a key opens.

use crate::compression::Compression;
use crate::crypto::Keys;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The store format this engine writes: 2 added the config's compression
/// and frames of several small chunks. It reads 1 too, and writes a store
/// of version 1 as version 1 (LZ4, one blob a frame), so a store made by
/// an older kast stays readable by it.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest store format this engine reads and writes.
const OLDEST_FORMAT: u32 = 1;

/// FastCDC parameters, the same for every client of a store so they cut alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// No chunk is shorter, except a file's last.
    pub min_size: u32,
    /// The size chunks tend to; a power of two.
    pub avg_size: u32,
    /// No chunk is longer: a cut is forced here.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// 512 KiB / 1 MiB / 8 MiB: Kloset's default; large chunks keep the index small.
    fn default() -> Self {
        Self {
            min_size: 512 * 1024,
            avg_size: 1024 * 1024,
            max_size: 8 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Rejects sizes FastCDC 2020 cannot use.
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020 as f;
        let (min, avg, max) = (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&avg)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && avg.is_power_of_two();
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "chunker sizes {min}/{avg}/{max} are outside FastCDC's limits"
            )))
        }
    }
}

/// The authenticated part of the config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigBody {
    /// The store format version ([`FORMAT_VERSION`] when made).
    pub version: u32,
    /// Random; names the store's local cache and tells stores apart.
    pub store_id: String,
    /// How every client of the store cuts content, so equal data dedups.
    pub chunker: ChunkerParams,
    /// Packs close once their blobs reach this many bytes.
    pub pack_target: u32,
    /// When the store was made (seconds since the epoch).
    pub created: i64,
    /// What writers compress with (format 2 on; absent in format 1,
    /// which is LZ4 alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
}

impl ConfigBody {
    /// What this store's writers compress with.
    pub fn compression(&self) -> Compression {
        self.compression.unwrap_or(Compression::Lz4)
    }

    /// Whether writers may put small chunks together in one frame (format
    /// 2 on: an older kast could not read them).
    pub fn groups(&self) -> bool {
        self.version >= 2 && self.compression().groups()
    }
}

/// The config object: body plus MAC.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigFile {
    /// The settings the MAC covers.
    #[serde(flatten)]
    pub body: ConfigBody,
    /// Hex of BLAKE3-keyed(config MAC key, canonical JSON of the body).
    pub mac: String,
}

impl ConfigFile {
    /// Serialises `body` with its MAC, ready to put as the `config` object.
    pub(crate) fn seal(body: ConfigBody, keys: &Keys) -> Result<Vec<u8>> {
        let mac = hex::encode(keys.config_mac(&canonical(&body)?)?);
        serde_json::to_vec_pretty(&ConfigFile { body, mac })
            .map_err(|e| Error::corrupt("config", e.to_string()))
    }

    /// Parses without verifying: the store id is needed to find the keys.
    pub fn parse(bytes: &[u8]) -> Result<ConfigFile> {
        let file: ConfigFile = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("config", format!("not a kast config: {e}")))?;
        if !(OLDEST_FORMAT..=FORMAT_VERSION).contains(&file.body.version) {
            return Err(Error::UnsupportedVersion(file.body.version));
        }
        // The id names local files (caches, key files) before any MAC is
        // checked, so a storage must not choose it freely.
        if !is_store_id(&file.body.store_id) {
            return Err(Error::corrupt(
                "config",
                "the store id is not 32 lowercase hex digits",
            ));
        }
        Ok(file)
    }

    /// Checks the MAC once the master key is known.
    pub fn verify(&self, keys: &Keys) -> Result<()> {
        let expected = hex::encode(keys.config_mac(&canonical(&self.body)?)?);
        if expected == self.mac {
            self.body.chunker.validate()
        } else {
            Err(Error::corrupt(
                "config",
                "MAC mismatch: the config was modified",
            ))
        }
    }
}

/// True for what `create` makes a store id: 16 random bytes in lowercase hex.
pub fn is_store_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn canonical(body: &ConfigBody) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|e| Error::corrupt("config", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seal_parse_verify_round_trip(store_id in "[0-9a-f]{32}", pack_target: u32, created: i64, shift in 0u32..3) {
            let keys = Keys::derive(&MasterKey([4; 32]));
            let body = ConfigBody {
                version: FORMAT_VERSION,
                store_id,
                chunker: ChunkerParams {
                    min_size: 65536 << shift,
                    avg_size: 262144 << shift,
                    max_size: 1048576 << shift,
                },
                pack_target,
                created,
                compression: [None, Some(Compression::Lz4), Some(Compression::Zstd(7))][shift as usize],
            };
            let bytes = ConfigFile::seal(body.clone(), &keys).unwrap();
            let parsed = ConfigFile::parse(&bytes).unwrap();
            prop_assert_eq!(&parsed.body, &body);
            parsed.verify(&keys).unwrap();
            prop_assert!(parsed.verify(&Keys::derive(&MasterKey([5; 32]))).is_err());
        }

        #[test]
        fn a_store_id_that_could_be_a_path_is_refused(id in "[^0-9a-f]{0,40}|\\.\\./.*|/.*|[0-9a-f]{31}|[0-9a-f]{33}") {
            let keys = Keys::derive(&MasterKey([4; 32]));
            let body = ConfigBody {
                version: FORMAT_VERSION,
                store_id: id,
                chunker: ChunkerParams::default(),
                pack_target: 1 << 20,
                created: 0,
                compression: None,
            };
            let bytes = ConfigFile::seal(body, &keys).unwrap();
            prop_assert!(ConfigFile::parse(&bytes).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let _ = ConfigFile::parse(&bytes);
        }
    }
}
