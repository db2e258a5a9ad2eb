//! States: index deltas. Each backup (and each maintenance run) writes one or
//! more states listing the packs it put and the blobs inside them; the index
//! is the union of all states, so it can always be rebuilt from the store.

use crate::codec::{Reader, Writer};
use crate::crypto::{Domain, Id, Keys};
use crate::error::{Error, Result};
use crate::pack::{PackEntry, decode_footer, encode_footer};

/// The packs one state adds, each with its footer's entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Each pack written, with the table of what it holds (its footer's entries, so the index
    /// can be rebuilt without reading packs).
    pub packs: Vec<(Id, Vec<PackEntry>)>,
}

const STATE_VERSION: u8 = 1;

impl State {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(STATE_VERSION);
        w.varint(self.packs.len() as u64);
        for (pack, entries) in &self.packs {
            w.fixed(&pack.0);
            w.bytes(&encode_footer(entries));
        }
        w.into_bytes()
    }

    fn decode(bytes: &[u8], what: &str) -> Result<State> {
        let mut r = Reader::new(bytes, what);
        if r.u8()? != STATE_VERSION {
            return Err(Error::corrupt(what, "unknown state version"));
        }
        let count = r.len(33)?;
        let mut packs = Vec::with_capacity(count);
        for _ in 0..count {
            let pack = Id(r.array()?);
            packs.push((pack, decode_footer(r.bytes()?, what)?));
        }
        r.finish()?;
        Ok(State { packs })
    }

    /// Encrypts the state for storage; its object name is the hash of the result.
    pub fn seal(&self, keys: &Keys) -> Result<Vec<u8>> {
        keys.seal(Domain::State, b"", &self.encode())
    }

    /// Verifies a state's bytes against its name, then decrypts and decodes them.
    pub fn open(keys: &Keys, name: &Id, sealed: &[u8]) -> Result<State> {
        let what = format!("state {}", name.short());
        if Id::of_object(sealed) != *name {
            return Err(Error::corrupt(&what, "content does not match its name"));
        }
        State::decode(&keys.open(Domain::State, b"", sealed, &what)?, &what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobKind;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(packs in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec((any::<[u8; 32]>(), any::<u32>(), any::<u32>()), 0..5)), 0..5)) {
            let state = State { packs: packs.into_iter().map(|(p, es)| (Id(p), es.into_iter().map(|(id, offset, length)| PackEntry {
                id: Id(id), kind: BlobKind::Data, offset, length, raw_length: length / 2 }).collect())).collect() };
            prop_assert_eq!(State::decode(&state.encode(), "s").unwrap(), state);
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let _ = State::decode(&bytes, "s");
        }
    }
}
