//! SSH's wire encoding (RFC 4251 §5): big-endian integers, length-prefixed
//! strings, mpints and name-lists. SFTP uses the same encoding, so both
//! layers share these two types.

use std::fmt;

/// A malformed message from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed message from the server: {}", self.0)
    }
}

/// Builds a message.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// A writer whose message starts with `byte` (the message type).
    pub fn message(byte: u8) -> Writer {
        let mut w = Writer::new();
        w.u8(byte);
        w
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn string(&mut self, v: impl AsRef<[u8]>) -> &mut Self {
        let v = v.as_ref();
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
        self
    }

    /// An unsigned big-endian number as an mpint: no leading zero bytes,
    /// and one zero byte added when the top bit is set.
    pub fn mpint(&mut self, v: &[u8]) -> &mut Self {
        let start = v.iter().position(|&b| b != 0).unwrap_or(v.len());
        let v = &v[start..];
        let pad = v.first().is_some_and(|&b| b & 0x80 != 0);
        self.u32((v.len() + pad as usize) as u32);
        if pad {
            self.buf.push(0);
        }
        self.buf.extend_from_slice(v);
        self
    }

    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
}

/// Reads a message; every read checks the bounds.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.data.len() < n {
            return Err(Malformed("message too short"));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    pub fn bool(&mut self) -> Result<bool, Malformed> {
        Ok(self.u8()? != 0)
    }

    pub fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }

    pub fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }

    pub fn string(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub fn utf8(&mut self) -> Result<String, Malformed> {
        Ok(String::from_utf8_lossy(self.string()?).into_owned())
    }

    pub fn name_list(&mut self) -> Result<Vec<String>, Malformed> {
        let text = self.utf8()?;
        Ok(text
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpint_follows_rfc4251_examples() {
        let enc = |v: &[u8]| Writer::new().mpint(v).buf.clone();
        assert_eq!(enc(&[0]), vec![0, 0, 0, 0]);
        assert_eq!(enc(&[0, 0x80]), vec![0, 0, 0, 2, 0, 0x80]);
        assert_eq!(
            enc(&[0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7]),
            vec![0, 0, 0, 8, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7]
        );
    }

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(&[0, 0, 0, 9, 1, 2]);
        assert!(r.string().is_err());
        let mut w = Writer::new();
        w.string("abc").u64(7).bool(true);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.string().unwrap(), b"abc");
        assert_eq!(r.u64().unwrap(), 7);
        assert!(r.bool().unwrap());
        assert!(r.is_empty());
    }
}
