//! The SSH transport layer (RFC 4253) over a plain, blocking `TcpStream`,
//! which is what WASI sockets give a component: version exchange,
//! `curve25519-sha256` key exchange with host key verification, AEAD
//! packet protection, OpenSSH's strict key exchange (the Terrapin fix), and
//! re-keying whenever the server asks (OpenSSH does after 1 GiB with
//! chacha20-poly1305, so every large backup re-keys).

use crate::cipher::{self, PacketCipher, TAG_LEN};
use crate::hostkey::HostKeyPolicy;
use crate::wire::{Reader, Writer};
use crate::{invalid, other, unavailable};
use kast_sdk::{Error, ErrorKind};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const CLIENT_VERSION: &str = concat!("SSH-2.0-kast_", env!("CARGO_PKG_VERSION"));
/// The largest packet accepted, as OpenSSH's limit (with room for padding).
const MAX_PACKET: usize = 256 * 1024 + 1024;
/// Outgoing packets are gathered until this many bytes, then written at once.
const SEND_BATCH: usize = 256 * 1024;

pub const MSG_DISCONNECT: u8 = 1;
const MSG_IGNORE: u8 = 2;
const MSG_UNIMPLEMENTED: u8 = 3;
const MSG_DEBUG: u8 = 4;
pub const MSG_EXT_INFO: u8 = 7;
const MSG_KEXINIT: u8 = 20;
const MSG_NEWKEYS: u8 = 21;
const MSG_KEX_ECDH_INIT: u8 = 30;
const MSG_KEX_ECDH_REPLY: u8 = 31;
const MSG_GLOBAL_REQUEST: u8 = 80;
const MSG_REQUEST_FAILURE: u8 = 82;

/// An encrypted, authenticated connection to one SSH server.
pub struct Transport {
    stream: TcpStream,
    /// Bytes read from the socket, `start..end` not yet consumed.
    inbuf: Box<[u8]>,
    start: usize,
    end: usize,
    outbuf: Vec<u8>,
    send_seq: u32,
    recv_seq: u32,
    sealer: Option<PacketCipher>,
    opener: Option<PacketCipher>,
    session_id: Vec<u8>,
    server_version: Vec<u8>,
    policy: HostKeyPolicy,
    /// The host key of the first exchange; a re-key must show the same.
    host_key: Option<Vec<u8>>,
    strict: bool,
    /// Signature algorithms the server accepts for user keys (EXT_INFO).
    pub server_sig_algs: Vec<String>,
    /// Who we talk to, for messages.
    pub peer: String,
}

/// What one side offered in its KEXINIT.
struct Offer {
    kex: Vec<String>,
    host_key: Vec<String>,
    cipher_c2s: Vec<String>,
    cipher_s2c: Vec<String>,
}

impl Offer {
    fn parse(payload: &[u8]) -> Result<Offer, Error> {
        let mut r = Reader::new(payload);
        r.u8().and_then(|_| r.u64()).and_then(|_| r.u64())?;
        Ok(Offer {
            kex: r.name_list()?,
            host_key: r.name_list()?,
            cipher_c2s: r.name_list()?,
            cipher_s2c: r.name_list()?,
        })
    }
}

fn choose(ours: &[&str], theirs: &[String], what: &str) -> Result<String, Error> {
    ours.iter()
        .find(|o| theirs.iter().any(|t| t == *o))
        .map(|o| o.to_string())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the server offers no {what} kast speaks (it offers {}; kast: {})",
                    theirs.join(","),
                    ours.join(",")
                ),
            )
        })
}

impl Transport {
    /// Connects, exchanges keys and checks the server's host key.
    /// `timeout` bounds every wait for the server, so a server that hangs
    /// is an error, not a backup stuck forever.
    pub fn connect(
        address: &str,
        peer: String,
        policy: HostKeyPolicy,
        timeout: Duration,
    ) -> Result<Transport, Error> {
        let socket: std::net::SocketAddr = address
            .parse()
            .map_err(|_| invalid(format!("the host gave a bad address {address:?}")))?;
        let stream = kast_sdk::connect(socket, timeout)
            .map_err(|e| Error::io(format!("cannot connect to {peer} ({address})"), e))?;
        let _ = stream.set_nodelay(true);
        let mut t = Transport {
            stream,
            inbuf: vec![0u8; 2 * MAX_PACKET].into_boxed_slice(),
            start: 0,
            end: 0,
            outbuf: Vec::with_capacity(SEND_BATCH + MAX_PACKET),
            send_seq: 0,
            recv_seq: 0,
            sealer: None,
            opener: None,
            session_id: Vec::new(),
            server_version: Vec::new(),
            policy,
            host_key: None,
            strict: false,
            server_sig_algs: Vec::new(),
            peer,
        };
        t.outbuf
            .extend_from_slice(format!("{CLIENT_VERSION}\r\n").as_bytes());
        t.flush()?;
        t.server_version = t.read_version()?;
        t.key_exchange(None)?;
        Ok(t)
    }

    pub fn session_id(&self) -> &[u8] {
        &self.session_id
    }

    /// Lines before the version line are allowed (RFC 4253 §4.2).
    fn read_version(&mut self) -> Result<Vec<u8>, Error> {
        for _ in 0..64 {
            let mut line = Vec::new();
            loop {
                self.fill(1)?;
                let b = self.inbuf[self.start];
                self.start += 1;
                if b == b'\n' {
                    break;
                }
                if line.len() > 1024 {
                    return Err(invalid(format!("{} is not an SSH server", self.peer)));
                }
                line.push(b);
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.starts_with(b"SSH-2.0-") || line.starts_with(b"SSH-1.99-") {
                return Ok(line);
            }
            if line.starts_with(b"SSH-") {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "{} speaks {}, not SSH 2",
                        self.peer,
                        String::from_utf8_lossy(&line)
                    ),
                ));
            }
        }
        Err(invalid(format!("{} is not an SSH server", self.peer)))
    }

    /// Makes `need` unread bytes available, reading from the socket.
    fn fill(&mut self, need: usize) -> Result<(), Error> {
        while self.end - self.start < need {
            if self.start + need > self.inbuf.len() {
                self.inbuf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            self.flush()?;
            let n = self
                .stream
                .read(&mut self.inbuf[self.end..])
                .map_err(|e| self.lost(e))?;
            if n == 0 {
                return Err(unavailable(format!("{} closed the connection", self.peer)));
            }
            self.end += n;
        }
        Ok(())
    }

    /// Writes the gathered packets.
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.outbuf.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.outbuf);
        self.outbuf.clear();
        result.map_err(|e| self.lost(e))
    }

    fn lost(&self, e: std::io::Error) -> Error {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            return unavailable(format!(
                "{} stopped answering (no reply within the timeout; raise it with timeout=SECONDS)",
                self.peer
            ));
        }
        Error::io(format!("connection to {} lost", self.peer), e)
    }

    /// Queues one packet (written on the next flush, read, or full batch).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        let block = self.sealer.as_ref().map_or(8, |c| c.block_size());
        // AEAD modes align what follows the length field; plain text aligns all.
        let unaligned = if self.sealer.is_some() { 1 } else { 5 } + payload.len();
        let mut padding = block - unaligned % block;
        if padding < 4 {
            padding += block;
        }
        let start = self.outbuf.len();
        let length = (1 + payload.len() + padding) as u32;
        self.outbuf.extend_from_slice(&length.to_be_bytes());
        self.outbuf.push(padding as u8);
        self.outbuf.extend_from_slice(payload);
        // Zero padding is fine: the AEAD ciphers encrypt it.
        self.outbuf.resize(self.outbuf.len() + padding, 0);
        if let Some(sealer) = &mut self.sealer {
            let tag = sealer.seal(self.send_seq, &mut self.outbuf[start..]);
            self.outbuf.extend_from_slice(&tag);
        }
        self.send_seq = self.send_seq.wrapping_add(1);
        if self.outbuf.len() >= SEND_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// The next packet's payload, whatever its type.
    fn recv_packet(&mut self) -> Result<Vec<u8>, Error> {
        self.fill(4)?;
        let first = &self.inbuf[self.start..self.start + 4];
        let length = match &self.opener {
            Some(c) => c.packet_length(self.recv_seq, first),
            None => u32::from_be_bytes(first.try_into().unwrap_or_default()),
        } as usize;
        if !(5..=MAX_PACKET).contains(&length) {
            return Err(invalid(format!(
                "{} sent a packet of impossible length {length} (corrupt stream?)",
                self.peer
            )));
        }
        let tag = if self.opener.is_some() { TAG_LEN } else { 0 };
        let total = 4 + length + tag;
        self.fill(total)?;
        let packet = &mut self.inbuf[self.start..self.start + total];
        if let Some(opener) = &mut self.opener {
            opener.open(self.recv_seq, packet).map_err(|_| {
                invalid(format!(
                    "a packet from {} failed authentication: the connection was tampered with",
                    self.peer
                ))
            })?;
        }
        let padding = packet[4] as usize;
        if padding + 1 > length {
            return Err(invalid(format!("{} sent bad padding", self.peer)));
        }
        let payload = packet[5..4 + length - padding].to_vec();
        self.start += total;
        self.recv_seq = self.recv_seq.wrapping_add(1);
        if payload.is_empty() {
            return Err(invalid(format!("{} sent an empty packet", self.peer)));
        }
        Ok(payload)
    }

    /// The next packet for the layers above; transport messages (ignore,
    /// debug, re-key, global requests) are handled here.
    pub fn recv(&mut self) -> Result<Vec<u8>, Error> {
        loop {
            let payload = self.recv_packet()?;
            match payload[0] {
                MSG_IGNORE | MSG_DEBUG => {}
                MSG_DISCONNECT => return Err(self.disconnected(&payload)),
                MSG_UNIMPLEMENTED => {
                    return Err(other(format!(
                        "{} did not understand a message from kast",
                        self.peer
                    )));
                }
                MSG_KEXINIT => self.key_exchange(Some(payload))?,
                MSG_EXT_INFO => self.read_ext_info(&payload)?,
                MSG_GLOBAL_REQUEST => {
                    let mut r = Reader::new(&payload[1..]);
                    r.string()?;
                    if r.bool()? {
                        self.send(&[MSG_REQUEST_FAILURE])?;
                    }
                }
                _ => return Ok(payload),
            }
        }
    }

    fn disconnected(&self, payload: &[u8]) -> Error {
        let mut r = Reader::new(&payload[1..]);
        let reason = r.u32().unwrap_or(0);
        let text = r.utf8().unwrap_or_default();
        let kind = match reason {
            // Host not allowed, too many connections, auth cancelled/failed.
            1 | 13 | 14 => ErrorKind::PermissionDenied,
            _ => ErrorKind::Unavailable,
        };
        Error::new(kind, format!("{} disconnected: {text}", self.peer))
    }

    fn read_ext_info(&mut self, payload: &[u8]) -> Result<(), Error> {
        let mut r = Reader::new(&payload[1..]);
        for _ in 0..r.u32()? {
            let name = r.utf8()?;
            let mut value = Reader::new(r.string()?);
            if name == "server-sig-algs" {
                let text = value.rest();
                self.server_sig_algs = String::from_utf8_lossy(text)
                    .split(',')
                    .map(str::to_string)
                    .collect();
            }
        }
        Ok(())
    }

    fn kexinit(&self) -> Vec<u8> {
        let mut cookie = [0u8; 16];
        OsRng.fill_bytes(&mut cookie);
        let mut kex = vec!["curve25519-sha256", "curve25519-sha256@libssh.org"];
        if self.session_id.is_empty() {
            // Markers, only in the first exchange: ask for the server's
            // signature algorithms, and for strict key exchange.
            kex.extend(["ext-info-c", "kex-strict-c-v00@openssh.com"]);
        }
        let ciphers = cipher::NAMES.join(",");
        let mut w = Writer::message(MSG_KEXINIT);
        w.raw(&cookie)
            .string(kex.join(","))
            .string(self.policy.preferred_algorithms().join(","))
            .string(&ciphers)
            .string(&ciphers)
            // No MACs: every cipher offered is an AEAD mode.
            .string("")
            .string("")
            .string("none")
            .string("none")
            .string("")
            .string("")
            .bool(false)
            .u32(0);
        w.buf
    }

    /// A full key exchange: the first one (`server_kexinit` None), or a
    /// re-key the server started by sending its KEXINIT.
    fn key_exchange(&mut self, server_kexinit: Option<Vec<u8>>) -> Result<(), Error> {
        let first = self.session_id.is_empty();
        let ours = self.kexinit();
        self.send(&ours)?;
        let theirs = match server_kexinit {
            Some(p) => p,
            None => self.recv_kex_message(MSG_KEXINIT)?,
        };
        let offer = Offer::parse(&theirs)?;
        if first {
            self.strict = offer
                .kex
                .iter()
                .any(|k| k == "kex-strict-s-v00@openssh.com");
        }
        choose(
            &["curve25519-sha256", "curve25519-sha256@libssh.org"],
            &offer.kex,
            "key exchange",
        )?;
        let host_key_alg = choose(
            &self.policy.preferred_algorithms(),
            &offer.host_key,
            "host key type",
        )?;
        let c2s = choose(cipher::NAMES, &offer.cipher_c2s, "cipher")?;
        let s2c = choose(cipher::NAMES, &offer.cipher_s2c, "cipher")?;

        let secret = x25519_dalek::EphemeralSecret::random_from_rng(OsRng);
        let public = x25519_dalek::PublicKey::from(&secret);
        self.send(
            Writer::message(MSG_KEX_ECDH_INIT)
                .string(public.as_bytes())
                .buf
                .as_slice(),
        )?;
        let reply = self.recv_kex_message(MSG_KEX_ECDH_REPLY)?;
        let mut r = Reader::new(&reply[1..]);
        let host_key_blob = r.string()?.to_vec();
        let server_public: [u8; 32] = r
            .string()?
            .try_into()
            .map_err(|_| invalid(format!("{} sent a bad curve25519 key", self.peer)))?;
        let signature_blob = r.string()?;
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(server_public));
        if !shared.was_contributory() {
            return Err(invalid(format!("{} sent a degenerate key", self.peer)));
        }
        let mut k = Writer::new();
        k.mpint(shared.as_bytes());
        let k = k.buf;
        let mut h = Writer::new();
        h.string(CLIENT_VERSION)
            .string(&self.server_version)
            .string(&ours)
            .string(&theirs)
            .string(&host_key_blob)
            .string(public.as_bytes())
            .string(server_public)
            .raw(&k);
        let h = Sha256::digest(&h.buf).to_vec();
        self.verify_host_key(&host_key_blob, &host_key_alg, signature_blob, &h)?;
        if first {
            self.session_id = h.clone();
        }

        let derive = |letter: u8, len: usize| -> Vec<u8> {
            let mut out = Sha256::new()
                .chain_update(&k)
                .chain_update(&h)
                .chain_update([letter])
                .chain_update(&self.session_id)
                .finalize()
                .to_vec();
            while out.len() < len {
                let more = Sha256::new()
                    .chain_update(&k)
                    .chain_update(&h)
                    .chain_update(&out)
                    .finalize();
                out.extend_from_slice(&more);
            }
            out.truncate(len);
            out
        };
        let (key_len, iv_len) = cipher::key_lengths(&c2s);
        let sealer = PacketCipher::new(&c2s, &derive(b'C', key_len), &derive(b'A', iv_len));
        let (key_len, iv_len) = cipher::key_lengths(&s2c);
        let opener = PacketCipher::new(&s2c, &derive(b'D', key_len), &derive(b'B', iv_len));

        self.send(&[MSG_NEWKEYS])?;
        self.sealer = Some(sealer);
        if self.strict {
            self.send_seq = 0;
        }
        self.recv_kex_message(MSG_NEWKEYS)?;
        self.opener = Some(opener);
        if self.strict {
            self.recv_seq = 0;
        }
        Ok(())
    }

    /// The next packet during a key exchange, which must be `expected`.
    fn recv_kex_message(&mut self, expected: u8) -> Result<Vec<u8>, Error> {
        loop {
            let payload = self.recv_packet()?;
            match payload[0] {
                t if t == expected => return Ok(payload),
                MSG_DISCONNECT => return Err(self.disconnected(&payload)),
                // Strict mode allows nothing else during the first exchange.
                MSG_IGNORE | MSG_DEBUG if !(self.strict && self.opener.is_none()) => {}
                t => {
                    return Err(invalid(format!(
                        "{} sent message {t} during key exchange (expected {expected})",
                        self.peer
                    )));
                }
            }
        }
    }

    fn verify_host_key(
        &mut self,
        blob: &[u8],
        algorithm: &str,
        signature: &[u8],
        exchange_hash: &[u8],
    ) -> Result<(), Error> {
        use signature::Verifier;
        let denied = |why: String| Error::new(ErrorKind::PermissionDenied, why);
        match &self.host_key {
            Some(known) if known.as_slice() != blob => {
                return Err(denied(format!(
                    "{} changed its host key during the connection",
                    self.peer
                )));
            }
            Some(_) => {}
            None => {
                let key = ssh_key::PublicKey::from_bytes(blob).map_err(|e| {
                    invalid(format!(
                        "{} sent a host key kast cannot read: {e}",
                        self.peer
                    ))
                })?;
                self.policy
                    .check(&key)
                    .map_err(|why| denied(format!("{}: {why}", self.peer)))?;
                self.host_key = Some(blob.to_vec());
            }
        }
        let key = ssh_key::PublicKey::from_bytes(blob)
            .map_err(|e| invalid(format!("bad host key: {e}")))?;
        let signature = ssh_key::Signature::try_from(signature)
            .map_err(|e| invalid(format!("{} sent a bad signature: {e}", self.peer)))?;
        if signature.algorithm().as_str() != algorithm {
            return Err(invalid(format!(
                "{} signed with {} instead of the agreed {algorithm}",
                self.peer,
                signature.algorithm()
            )));
        }
        Verifier::verify(&key, exchange_hash, &signature).map_err(|_| {
            denied(format!(
                "{}'s host key signature does not verify: someone may be intercepting the connection",
                self.peer
            ))
        })
    }
}
