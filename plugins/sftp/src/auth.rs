//! User authentication (RFC 4252): private keys first (ed25519, ECDSA
//! P-256, RSA with SHA-2 signatures), then the password, offered through
//! `password` or `keyboard-interactive`, whichever the server takes.
//! The keys arrive as text in options: the host read the files the user
//! named, so the plugin itself never touches a filesystem.

use crate::transport::Transport;
use crate::wire::{Reader, Writer};
use crate::{invalid, unavailable};
use kast_sdk::{Error, ErrorKind};
use ssh_key::private::KeypairData;
use ssh_key::{Algorithm, HashAlg, PrivateKey};

const MSG_SERVICE_REQUEST: u8 = 5;
const MSG_SERVICE_ACCEPT: u8 = 6;
const MSG_USERAUTH_REQUEST: u8 = 50;
const MSG_USERAUTH_FAILURE: u8 = 51;
const MSG_USERAUTH_SUCCESS: u8 = 52;
const MSG_USERAUTH_BANNER: u8 = 53;
/// Also PASSWD_CHANGEREQ, depending on the method in progress.
const MSG_USERAUTH_INFO_REQUEST: u8 = 60;
const MSG_USERAUTH_INFO_RESPONSE: u8 = 61;

/// What the user can prove.
pub struct Credentials {
    pub user: String,
    /// Private keys in OpenSSH format, with the name they came from.
    pub keys: Vec<(String, PrivateKey)>,
    pub password: Option<String>,
}

impl Credentials {
    /// Reads a private key; an encrypted one needs `passphrase`.
    pub fn load_key(text: &str, passphrase: Option<&str>) -> Result<PrivateKey, Error> {
        let bad = |why: String| Error::new(ErrorKind::InvalidInput, why);
        if text.contains("BEGIN RSA PRIVATE KEY") || text.contains("BEGIN EC PRIVATE KEY") {
            return Err(bad(
                "the identity is in the old PEM format; convert it with \
                 `ssh-keygen -p -f FILE` (which rewrites it in OpenSSH format)"
                    .into(),
            ));
        }
        let key = PrivateKey::from_openssh(text.trim())
            .map_err(|e| bad(format!("the identity is not an OpenSSH private key: {e}")))?;
        if !key.is_encrypted() {
            return Ok(key);
        }
        let passphrase = passphrase.ok_or_else(|| {
            bad("the identity is passphrase-protected: give identity_passphrase_file=PATH".into())
        })?;
        key.decrypt(passphrase)
            .map_err(|_| bad("wrong passphrase for the identity".into()))
    }
}

/// The name a key signs with, given what the server accepts.
fn signature_algorithm(key: &PrivateKey) -> Option<&'static str> {
    match key.algorithm() {
        Algorithm::Ed25519 => Some("ssh-ed25519"),
        Algorithm::Ecdsa { .. } => Some("ecdsa-sha2-nistp256"),
        // ssh-key signs RSA with SHA-512, which OpenSSH has taken since 7.2.
        Algorithm::Rsa { .. } => Some("rsa-sha2-512"),
        _ => None,
    }
}

/// Logs in as `credentials.user`, or says which methods failed and which
/// the server would take.
pub fn authenticate(t: &mut Transport, credentials: &Credentials) -> Result<(), Error> {
    t.send(
        Writer::message(MSG_SERVICE_REQUEST)
            .string("ssh-userauth")
            .buf
            .as_slice(),
    )?;
    let accept = t.recv()?;
    if accept[0] != MSG_SERVICE_ACCEPT {
        return Err(invalid(format!(
            "{} refused the authentication service",
            t.peer
        )));
    }
    let user = credentials.user.as_str();
    let mut tried = Vec::new();
    let mut allowed = vec!["publickey".to_string(), "password".to_string()];
    for (name, key) in &credentials.keys {
        if !allowed.iter().any(|m| m == "publickey") {
            break;
        }
        let Some(algorithm) = signature_algorithm(key) else {
            tried.push(format!("{name} (unsupported key type {})", key.algorithm()));
            continue;
        };
        let blob = key
            .public_key()
            .to_bytes()
            .map_err(|e| invalid(format!("cannot encode {name}: {e}")))?;
        let mut signed = Writer::new();
        signed
            .string(t.session_id())
            .u8(MSG_USERAUTH_REQUEST)
            .string(user)
            .string("ssh-connection")
            .string("publickey")
            .bool(true)
            .string(algorithm)
            .string(&blob);
        let signature = key_sign(key, &signed.buf)?;
        let mut request = Writer::message(MSG_USERAUTH_REQUEST);
        request.raw(&signed.buf[4 + t.session_id().len() + 1..]);
        request.string(&signature);
        t.send(&request.buf)?;
        tried.push(format!(
            "key {name} ({})",
            key.public_key().fingerprint(HashAlg::Sha256)
        ));
        match outcome(t)? {
            None => return Ok(()),
            Some(methods) => allowed = methods,
        }
    }
    if let Some(password) = &credentials.password {
        if allowed.iter().any(|m| m == "password") {
            let mut w = Writer::message(MSG_USERAUTH_REQUEST);
            w.string(user)
                .string("ssh-connection")
                .string("password")
                .bool(false)
                .string(password);
            t.send(&w.buf)?;
            tried.push("password".into());
            match outcome(t)? {
                None => return Ok(()),
                Some(methods) => allowed = methods,
            }
        }
        if allowed.iter().any(|m| m == "keyboard-interactive") {
            tried.push("keyboard-interactive".into());
            if keyboard_interactive(t, user, password)? {
                return Ok(());
            }
        }
    }
    let tried = if tried.is_empty() {
        "no credentials were given (identity=PATH or password_file=PATH)".to_string()
    } else {
        format!("tried {}", tried.join(", "))
    };
    Err(Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "{} refused to log in {user}: {tried}; the server accepts {}",
            t.peer,
            allowed.join(",")
        ),
    ))
}

fn key_sign(key: &PrivateKey, data: &[u8]) -> Result<Vec<u8>, Error> {
    use signature::{SignatureEncoding, Signer};
    let failed = |e: &dyn std::fmt::Display| invalid(format!("cannot sign with the identity: {e}"));
    if let KeypairData::Rsa(pair) = key.key_data() {
        // ssh-key 0.6.7 builds the RSA key from p and p (not q), so the
        // key is assembled here from its parts.
        let number = |m: &ssh_key::Mpint| {
            rsa::BigUint::from_bytes_be(m.as_positive_bytes().unwrap_or_default())
        };
        let private = rsa::RsaPrivateKey::from_components(
            number(&pair.public.n),
            number(&pair.public.e),
            number(&pair.private.d),
            vec![number(&pair.private.p), number(&pair.private.q)],
        )
        .map_err(|e| failed(&e))?;
        let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(private)
            .try_sign(data)
            .map_err(|e| failed(&e))?;
        let mut out = Writer::new();
        out.string("rsa-sha2-512").string(signature.to_vec());
        return Ok(out.buf);
    }
    let signature: ssh_key::Signature = key.try_sign(data).map_err(|e| failed(&e))?;
    Vec::try_from(signature).map_err(|e| failed(&e))
}

/// None on success; the methods that may continue on failure.
fn outcome(t: &mut Transport) -> Result<Option<Vec<String>>, Error> {
    loop {
        let reply = t.recv()?;
        match reply[0] {
            MSG_USERAUTH_SUCCESS => return Ok(None),
            MSG_USERAUTH_FAILURE => return Ok(Some(Reader::new(&reply[1..]).name_list()?)),
            MSG_USERAUTH_BANNER => {}
            MSG_USERAUTH_INFO_REQUEST => {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "{} says the password has expired: change it with ssh first",
                        t.peer
                    ),
                ));
            }
            other => {
                return Err(unavailable(format!(
                    "{} sent message {other} during authentication",
                    t.peer
                )));
            }
        }
    }
}

/// Answers every prompt with the password (that is how servers ask for it
/// when `password` itself is off); false when refused.
fn keyboard_interactive(t: &mut Transport, user: &str, password: &str) -> Result<bool, Error> {
    let mut w = Writer::message(MSG_USERAUTH_REQUEST);
    w.string(user)
        .string("ssh-connection")
        .string("keyboard-interactive")
        .string("")
        .string("");
    t.send(&w.buf)?;
    for _ in 0..8 {
        let reply = t.recv()?;
        match reply[0] {
            MSG_USERAUTH_SUCCESS => return Ok(true),
            MSG_USERAUTH_FAILURE => return Ok(false),
            MSG_USERAUTH_BANNER => {}
            MSG_USERAUTH_INFO_REQUEST => {
                let mut r = Reader::new(&reply[1..]);
                r.string()?;
                r.string()?;
                r.string()?;
                let prompts = r.u32()?.min(16);
                let mut w = Writer::message(MSG_USERAUTH_INFO_RESPONSE);
                w.u32(prompts);
                for _ in 0..prompts {
                    w.string(password);
                }
                t.send(&w.buf)?;
            }
            other => {
                return Err(unavailable(format!(
                    "{} sent message {other} during authentication",
                    t.peer
                )));
            }
        }
    }
    Ok(false)
}
