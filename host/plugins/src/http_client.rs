//! How the host sends a plugin's `wasi:http` request, once the sandbox has
//! allowed it: wasmtime-wasi-http's default client trusts only the public
//! web's roots, so this one carries its own TLS configuration (a private CA
//! from the location's `ca=` option, or the Mozilla roots) and otherwise
//! does what the default does: one connection per request, HTTP/1.1,
//! timeouts on connect, first byte and between bytes.

use crate::error::PluginError;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Used when the guest gives no timeout of its own.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// What the host hands back to wasmtime-wasi-http: the response and a
/// future that drives the connection to its end.
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// The TLS client configuration for one endpoint: certificates are checked
/// against `ca_pem` alone when given (a private CA), else against the
/// Mozilla roots.
pub fn tls_config(ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, PluginError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let bad = |why: String| PluginError::BadLocation {
                location: "ca=".into(),
                why,
            };
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("an unusable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(bad("the file holds no PEM certificate".into()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PluginError::BadLocation {
            location: "ca=".into(),
            why: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sends `request` (already allowed) and waits for the response head.
pub async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Sent, Error> {
    let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| {
        options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT)
    };
    let connect_timeout = timeout(|o| o.connect_timeout);
    let first_byte_timeout = timeout(|o| o.first_byte_timeout);
    let between_bytes_timeout = timeout(|o| o.between_bytes_timeout).max(Duration::from_millis(1));

    let uri = request.uri().clone();
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(connect_error)?;
    let _ = tcp.set_nodelay(true);

    // The request line carries only the path; the host header the rest.
    *request.uri_mut() = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let handshake = async {
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(Error::InvalidDnsNameError)?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(tls_error)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            Ok::<_, Error>((
                sender,
                Box::pin(conn) as Pin<Box<dyn Future<Output = _> + Send>>,
            ))
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            Ok((
                sender,
                Box::pin(conn) as Pin<Box<dyn Future<Output = _> + Send>>,
            ))
        }
    };
    let (mut sender, conn) = tokio::time::timeout(connect_timeout, handshake)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;

    // The connection runs on its own task while the request goes out, so
    // the response (and its body) can stream back.
    let driver = tokio::spawn(conn);
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let response = response.map(|incoming| {
        StalledBodyTimeout {
            incoming,
            limit: between_bytes_timeout,
            deadline: Box::pin(tokio::time::sleep(between_bytes_timeout)),
        }
        .boxed_unsync()
    });
    let io = async move {
        match driver.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::from(e)),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    };
    Ok((response, Box::new(io)))
}

fn connect_error(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        _ => Error::Connect(e),
    }
}

/// A certificate the roots do not vouch for is told apart from other TLS
/// failures, so the plugin can say "use ca=".
fn tls_error(e: std::io::Error) -> Error {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|t| {
            matches!(
                t,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        });
    if certificate {
        Error::TlsCertificateError
    } else {
        Error::Tls(e)
    }
}

/// A response body that fails when the server sends nothing for too long,
/// instead of holding a backup forever.
struct StalledBodyTimeout {
    incoming: hyper::body::Incoming,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Body for StalledBodyTimeout {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.limit;
                self.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.incoming.size_hint()
    }
}
