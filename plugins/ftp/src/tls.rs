//! FTPS trust: the server's certificate chain is verified against the CA
//! certificates the location names (`ca=PATH`, read by the host; the
//! system's bundle when none is named), or, for a self-signed server, its
//! certificate must match a pinned `pin=SHA256:…` exactly.

use base64::Engine;
use kast_sdk::{Error, ErrorKind};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest;
use std::sync::Arc;

fn bad(why: String) -> Error {
    Error::new(ErrorKind::InvalidInput, why)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS client settings for a location's `ca` or `pin` option.
pub fn client_config(ca: Option<&str>, pin: Option<&str>) -> Result<Arc<ClientConfig>, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup: {e}")))?;
    let config = if let Some(pin) = pin {
        let digest = pin
            .strip_prefix("SHA256:")
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(b64.trim_end_matches('='))
                    .ok()
            })
            .filter(|d| d.len() == 32)
            .ok_or_else(|| {
                bad(format!(
                    "pin={pin}: give SHA256:<base64> of the certificate"
                ))
            })?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                digest,
                provider: provider(),
            }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca.unwrap_or("").as_bytes()) {
            let cert = cert.map_err(|e| bad(format!("the ca file is not PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("a certificate in the ca file is unusable: {e}")))?;
        }
        if roots.is_empty() {
            return Err(bad(
                "ftps needs a CA to check the server against: ca=PATH (PEM), or pin=SHA256:… \
                 for a self-signed server"
                    .into(),
            ));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `SHA256:…` of a certificate, as `pin=` takes it.
pub fn fingerprint(cert: &[u8]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(cert))
    )
}

/// Accepts exactly one certificate, whatever its issuer or names; the
/// handshake's signatures are still checked, so only the key's holder passes.
#[derive(Debug)]
struct Pinned {
    digest: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if sha2::Sha256::digest(end_entity.as_ref()).as_slice() == self.digest.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate is {}, not the pinned one",
                fingerprint(end_entity.as_ref())
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
