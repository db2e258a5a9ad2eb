//! A tiny, explicit binary codec for the store's sealed objects.
//!
//! Every object the engine seals (trees, snapshot headers, states, pack footers)
//! is written with these primitives so that `docs/store-format.md` can describe
//! it byte by byte and no serializer upgrade can silently change the format.
//! Integers are little-endian or LEB128 varints; byte strings carry a varint length.

use crate::error::Error;

/// Appends primitives to a byte buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Unsigned LEB128.
    pub fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    pub fn fixed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Length-prefixed byte string.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

/// Reads primitives back, failing with [`Error::Corrupt`] instead of panicking
/// on truncated or hostile input.
pub struct Reader<'a> {
    buf: &'a [u8],
    what: &'a str,
}

impl<'a> Reader<'a> {
    /// `what` names the object in errors ("tree 3fa2…").
    pub fn new(buf: &'a [u8], what: &'a str) -> Self {
        Self { buf, what }
    }

    fn corrupt(&self, why: &str) -> Error {
        Error::Corrupt {
            what: self.what.to_string(),
            why: why.to_string(),
        }
    }

    /// Fails unless every byte was consumed: trailing garbage is damage too.
    pub fn finish(self) -> Result<(), Error> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("trailing bytes"))
        }
    }

    /// Everything not read yet: a payload that runs to the end.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn fixed(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.buf.len() < n {
            return Err(self.corrupt("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.fixed(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.fixed(1)?[0])
    }

    pub fn i64(&mut self) -> Result<i64, Error> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn varint(&mut self) -> Result<u64, Error> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.corrupt("varint longer than 64 bits"))
    }

    /// A varint used as a count or length: bounded by the bytes left, so a
    /// hostile length can never make us allocate more than the input holds.
    pub fn len(&mut self, min_item_size: usize) -> Result<usize, Error> {
        let n = self.varint()?;
        let limit = self.buf.len() / min_item_size.max(1);
        if n > limit as u64 {
            return Err(self.corrupt("length exceeds the object"));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = self.len(1)?;
        self.fixed(n)
    }

    pub fn string(&mut self) -> Result<String, Error> {
        let raw = self.bytes()?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.corrupt("text is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn primitives_round_trip(a: u8, d: i64, v: u64, s in ".*", raw: Vec<u8>) {
            let mut w = Writer::new();
            w.u8(a); w.i64(d); w.varint(v); w.str(&s); w.bytes(&raw);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes, "test");
            prop_assert_eq!(r.u8().unwrap(), a);
            prop_assert_eq!(r.i64().unwrap(), d);
            prop_assert_eq!(r.varint().unwrap(), v);
            prop_assert_eq!(r.string().unwrap(), s);
            prop_assert_eq!(r.bytes().unwrap(), &raw[..]);
            r.finish().unwrap();
        }

        #[test]
        fn garbage_never_panics(raw: Vec<u8>) {
            let mut r = Reader::new(&raw, "test");
            let _ = r.varint();
            let _ = r.bytes();
            let _ = r.string();
            let _ = r.i64();
        }
    }

    #[test]
    fn hostile_length_is_refused() {
        let mut w = Writer::new();
        w.varint(u64::MAX >> 1);
        let bytes = w.into_bytes();
        assert!(Reader::new(&bytes, "x").bytes().is_err());
    }
}
