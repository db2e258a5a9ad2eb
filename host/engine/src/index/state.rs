//! States: index deltas. Each backup (and each maintenance run) writes one or
//! more states listing the packs it put and the blobs inside them; the index
//! is the union of all states, so it can always be rebuilt from the store.

use crate::codec::{Reader, Writer};
use crate::crypto::{Id, Keys, Sealing};
use crate::error::{Error, Result};
use crate::pack::{PackEntry, decode_footer, encode_footer};

/// The packs one state adds, each with its footer's entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// Each pack written, with the table of what it holds (its footer's
    /// entries, so the index can be rebuilt without reading packs).
    pub packs: Vec<(Id, Vec<PackEntry>)>,
    /// How every pack it lists was sealed: by a full key, or by one
    /// put-only session (docs/store-format.md, "Put-only keys").
    pub sealing: Sealing,
}

impl Default for State {
    fn default() -> Self {
        State {
            packs: Vec::new(),
            sealing: Sealing::Store,
        }
    }
}

/// A state of a full key's packs, byte for byte as before put-only keys.
const STATE_VERSION: u8 = 1;
/// A state of one put-only session's packs: the session's public value
/// comes first.
const STATE_VERSION_SESSION: u8 = 2;

/// A state as read back, with what this client makes of it.
pub struct OpenedState {
    /// The state.
    pub state: State,
    /// Whether this client reuses its blobs in backups (it or a key of
    /// its kind wrote it; see [`Keys::open_state`]).
    pub trusted: bool,
    /// The put-only key that wrote it; `None` for a full key's.
    pub author: Option<[u8; 16]>,
}

impl State {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self.sealing {
            Sealing::Store => w.u8(STATE_VERSION),
            Sealing::Session(session) => {
                w.u8(STATE_VERSION_SESSION);
                w.fixed(&session);
            }
        }
        w.varint(self.packs.len() as u64);
        for (pack, entries) in &self.packs {
            w.fixed(&pack.0);
            w.bytes(&encode_footer(entries));
        }
        w.into_bytes()
    }

    fn decode(bytes: &[u8], what: &str) -> Result<State> {
        let mut r = Reader::new(bytes, what);
        let sealing = match r.u8()? {
            STATE_VERSION => Sealing::Store,
            STATE_VERSION_SESSION => Sealing::Session(r.array()?),
            _ => return Err(Error::corrupt(what, "unknown state version")),
        };
        let count = r.len(33)?;
        let mut packs = Vec::with_capacity(count);
        for _ in 0..count {
            let pack = Id(r.array()?);
            packs.push((pack, decode_footer(r.bytes()?, what)?));
        }
        r.finish()?;
        Ok(State { packs, sealing })
    }

    /// Encrypts the state for storage; its object name is the hash of the result.
    pub fn seal(&self, keys: &Keys) -> Result<Vec<u8>> {
        keys.seal_state(&self.encode())
    }

    /// Encrypts the state as the put-only key `author` wrote it (a full key
    /// rewriting that key's state).
    pub fn seal_as(&self, keys: &Keys, author: &[u8; 16]) -> Result<Vec<u8>> {
        keys.seal_state_as(author, &self.encode())
    }

    /// Verifies a state's bytes against its name, then decrypts and
    /// decodes them; `None` for a state this key need not read (another
    /// put-only key's, for a put-only key).
    pub fn open(keys: &Keys, name: &Id, sealed: &[u8]) -> Result<Option<OpenedState>> {
        let what = format!("state {}", name.short());
        if Id::of_object(sealed) != *name {
            return Err(Error::corrupt(&what, "content does not match its name"));
        }
        let Some(opened) = keys.open_state(sealed, &what)? else {
            return Ok(None);
        };
        let state = State::decode(&opened.plain, &what)?;
        Ok(Some(OpenedState {
            state,
            trusted: opened.trusted,
            author: opened.author,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobKind;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(session: [u8; 32], packs in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec((any::<[u8; 32]>(), any::<u32>(), any::<u32>()), 0..5)), 0..5)) {
            let state = State { sealing: if session == [0; 32] { Sealing::Store } else { Sealing::Session(session) }, packs: packs.into_iter().map(|(p, es)| (Id(p), es.into_iter().map(|(id, offset, length)| PackEntry {
                id: Id(id), kind: BlobKind::Data, offset, length, raw_length: length / 2 }).collect())).collect() };
            prop_assert_eq!(State::decode(&state.encode(), "s").unwrap(), state);
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let _ = State::decode(&bytes, "s");
        }
    }
}
