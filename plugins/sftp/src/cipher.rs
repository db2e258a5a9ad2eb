//! The packet ciphers kast speaks: `chacha20-poly1305@openssh.com` (first
//! choice: fast in software, and WebAssembly has no AES instructions) and
//! `aes256-gcm@openssh.com` / `aes128-gcm@openssh.com` (RFC 5647). Both are
//! AEAD modes, so no separate MAC is ever negotiated.
//!
//! A sealed packet is `length(4) | padding_length(1) | payload | padding |
//! tag(16)`; the length is encrypted (chacha) or authenticated as AAD (GCM).

use crate::chacha::ChaCha20;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce};
use poly1305::Poly1305;

/// The ciphers we offer, best first.
pub const NAMES: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
];

pub const TAG_LEN: usize = 16;

/// Key and IV lengths a cipher needs from the key exchange.
pub fn key_lengths(name: &str) -> (usize, usize) {
    match name {
        "chacha20-poly1305@openssh.com" => (64, 0),
        "aes256-gcm@openssh.com" => (32, 12),
        _ => (16, 12),
    }
}

/// A packet protection failed: the data was altered or the stream is out of step.
#[derive(Debug)]
pub struct BadPacket;

/// One direction's packet protection.
pub enum PacketCipher {
    ChaCha {
        /// Encrypts the payload; its first block keys Poly1305.
        main: [u8; 32],
        /// Encrypts the 4-byte length.
        header: [u8; 32],
    },
    Aes256 {
        cipher: Box<Aes256Gcm>,
        iv: [u8; 12],
    },
    Aes128 {
        cipher: Box<Aes128Gcm>,
        iv: [u8; 12],
    },
}

impl PacketCipher {
    pub fn new(name: &str, key: &[u8], iv: &[u8]) -> PacketCipher {
        match name {
            "chacha20-poly1305@openssh.com" => {
                let mut main = [0u8; 32];
                let mut header = [0u8; 32];
                main.copy_from_slice(&key[..32]);
                header.copy_from_slice(&key[32..64]);
                PacketCipher::ChaCha { main, header }
            }
            "aes256-gcm@openssh.com" => PacketCipher::Aes256 {
                cipher: Box::new(Aes256Gcm::new_from_slice(&key[..32]).expect("32-byte key")),
                iv: iv[..12].try_into().expect("12-byte iv"),
            },
            _ => PacketCipher::Aes128 {
                cipher: Box::new(Aes128Gcm::new_from_slice(&key[..16]).expect("16-byte key")),
                iv: iv[..12].try_into().expect("12-byte iv"),
            },
        }
    }

    /// Padding aligns everything after the length field to this.
    pub fn block_size(&self) -> usize {
        match self {
            PacketCipher::ChaCha { .. } => 8,
            _ => 16,
        }
    }

    /// Seals `packet` (length field first) in place and returns the tag
    /// to send after it.
    pub fn seal(&mut self, seq: u32, packet: &mut [u8]) -> [u8; TAG_LEN] {
        match self {
            PacketCipher::ChaCha { main, header } => {
                let nonce = (seq as u64).to_be_bytes();
                ChaCha20::new(header, nonce).apply(0, &mut packet[..4]);
                let stream = ChaCha20::new(main, nonce);
                let mut poly_key = [0u8; 32];
                stream.apply(0, &mut poly_key);
                stream.apply(1, &mut packet[4..]);
                Poly1305::new(&poly_key.into())
                    .compute_unpadded(packet)
                    .into()
            }
            PacketCipher::Aes256 { cipher, iv } => gcm_seal(cipher.as_ref(), iv, packet),
            PacketCipher::Aes128 { cipher, iv } => gcm_seal(cipher.as_ref(), iv, packet),
        }
    }

    /// The length field of a packet whose first four bytes are `first`,
    /// without changing them (the tag covers the sealed form).
    pub fn packet_length(&self, seq: u32, first: &[u8]) -> u32 {
        let mut len: [u8; 4] = first[..4].try_into().expect("four bytes");
        if let PacketCipher::ChaCha { header, .. } = self {
            ChaCha20::new(header, (seq as u64).to_be_bytes()).apply(0, &mut len);
        }
        u32::from_be_bytes(len)
    }

    /// Checks and decrypts a whole sealed packet (length, body, tag) in
    /// place; the plain body is then `packet[4..len - TAG_LEN]`.
    pub fn open(&mut self, seq: u32, packet: &mut [u8]) -> Result<(), BadPacket> {
        let (body, tag) = packet.split_at_mut(packet.len() - TAG_LEN);
        match self {
            PacketCipher::ChaCha { main, .. } => {
                let stream = ChaCha20::new(main, (seq as u64).to_be_bytes());
                let mut poly_key = [0u8; 32];
                stream.apply(0, &mut poly_key);
                let expected = Poly1305::new(&poly_key.into()).compute_unpadded(body);
                let diff = expected
                    .iter()
                    .zip(tag.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b));
                if diff != 0 {
                    return Err(BadPacket);
                }
                stream.apply(1, &mut body[4..]);
                Ok(())
            }
            PacketCipher::Aes256 { cipher, iv } => gcm_open(cipher.as_ref(), iv, body, tag),
            PacketCipher::Aes128 { cipher, iv } => gcm_open(cipher.as_ref(), iv, body, tag),
        }
    }
}

/// RFC 5647: the last 8 bytes of the IV count packets.
fn next_gcm_nonce(iv: &mut [u8; 12]) -> [u8; 12] {
    let nonce = *iv;
    let counter = u64::from_be_bytes(iv[4..].try_into().expect("8 bytes")).wrapping_add(1);
    iv[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

fn gcm_seal<C: AeadInPlace>(cipher: &C, iv: &mut [u8; 12], packet: &mut [u8]) -> [u8; TAG_LEN] {
    let nonce = next_gcm_nonce(iv);
    let (length, body) = packet.split_at_mut(4);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), length, body)
        .expect("GCM seals any packet shorter than 64 GiB");
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&tag);
    out
}

fn gcm_open<C: AeadInPlace>(
    cipher: &C,
    iv: &mut [u8; 12],
    body: &mut [u8],
    tag: &[u8],
) -> Result<(), BadPacket> {
    let nonce = next_gcm_nonce(iv);
    let (length, body) = body.split_at_mut(4);
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(&nonce), length, body, tag.into())
        .map_err(|_| BadPacket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(name: &str) {
        let (key_len, iv_len) = key_lengths(name);
        let key: Vec<u8> = (0..key_len as u8).collect();
        let iv: Vec<u8> = (0..iv_len as u8).collect();
        let mut sender = PacketCipher::new(name, &key, &iv);
        let mut receiver = PacketCipher::new(name, &key, &iv);
        for seq in 0..3u32 {
            let mut packet = vec![0, 0, 0, 12, 4, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0];
            let plain = packet.clone();
            let tag = sender.seal(seq, &mut packet);
            packet.extend_from_slice(&tag);
            assert_ne!(packet[..16], plain[..]);
            assert_eq!(receiver.packet_length(seq, &packet), 12);
            let mut tampered = packet.clone();
            tampered[9] ^= 1;
            let mut probe = PacketCipher::new(name, &key, &iv);
            for s in 0..seq {
                let mut skip = plain.clone();
                let _ = probe.seal(s, &mut skip);
            }
            assert!(probe.open(seq, &mut tampered).is_err(), "{name} tamper");
            receiver.open(seq, &mut packet).unwrap();
            // The length stays as sent; the transport reads it with packet_length.
            assert_eq!(packet[4..16], plain[4..]);
        }
    }

    #[test]
    fn every_cipher_round_trips_and_rejects_tampering() {
        for name in NAMES {
            round_trip(name);
        }
    }
}
