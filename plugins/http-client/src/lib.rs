//! One HTTP exchange over `wasi:http`, blocking, and the retry policy: the
//! host makes the connection (to the one endpoint it allows) and does TLS.
//! Shared by the connectors that speak HTTP (s3, http), so they retry and
//! report transport failures alike.

use kast_sdk::{Error, ErrorKind};
use std::time::{Duration, Instant};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::StreamError;

pub use wasi::http::types::Method;

/// Attempts at most, and the longest all of them may take together.
const ATTEMPTS: u32 = 6;
const TOTAL: Duration = Duration::from_secs(120);

/// Requests `send_all` keeps in flight at once.
const IN_FLIGHT: usize = 16;

/// A status, the headers and the whole body.
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Names lowercase.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether a failed exchange may succeed if tried again.
pub enum Failure {
    /// Worth another attempt (a dropped connection, a 5xx).
    Retry(Error),
    /// Not worth one (the sandbox refused, TLS failed).
    Fatal(Error),
}

/// Runs `exchange` until it succeeds, fails for good, or the attempts or
/// the time run out; 5xx replies (SlowDown, a node restarting) and dropped
/// connections are retried with exponential backoff and jitter. Every
/// request kast sends is idempotent (objects are named by their content).
pub fn with_retries(
    endpoint: &str,
    what: &str,
    mut exchange: impl FnMut() -> Result<Reply, Failure>,
) -> Result<Reply, Error> {
    let started = Instant::now();
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            let mut jitter = [0u8; 2];
            let _ = getrandom::getrandom(&mut jitter);
            let base = 100u64 << attempt.min(6);
            let wait = Duration::from_millis(base + u16::from_le_bytes(jitter) as u64 % base);
            if started.elapsed() + wait > TOTAL {
                break;
            }
            std::thread::sleep(wait);
        }
        match exchange() {
            Ok(reply) if reply.status >= 500 => {
                last = Some(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{endpoint}: {what}: HTTP {} {}",
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ),
                ));
            }
            Ok(reply) => return Ok(reply),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(e)) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| Error::new(ErrorKind::Unavailable, "no attempt made"));
    Err(Error::new(
        e.kind,
        format!("{} (gave up after retries)", e.message),
    ))
}

fn transport_error(url: &url::Url, e: ErrorCode) -> Failure {
    let at = url.host_str().unwrap_or("?");
    match e {
        ErrorCode::HttpRequestDenied => Failure::Fatal(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "the sandbox refused a request to {at}: only the location's endpoint is allowed"
            ),
        )),
        ErrorCode::DnsError(_)
        | ErrorCode::ConnectionRefused
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationIpUnroutable => Failure::Retry(Error::new(
            ErrorKind::Unavailable,
            format!("cannot reach {at}: {e:?}"),
        )),
        ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_)
        | ErrorCode::TlsProtocolError => Failure::Fatal(Error::new(
            ErrorKind::PermissionDenied,
            format!("{at}: TLS failed ({e:?}): is its certificate from a CA you trust (ca=PATH)?"),
        )),
        e => Failure::Retry(Error::new(
            ErrorKind::Unavailable,
            format!("{at}: the request failed: {e:?}"),
        )),
    }
}

/// Sends `body` to `url` with `method` and `headers`; reads the whole reply.
pub fn send(
    method: &Method,
    url: &url::Url,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Reply, Failure> {
    let pending = start(method, url, headers, body)?;
    finish(url, pending)
}

/// Sends the same bodiless `method` to each of `urls`, several at once
/// (the host runs them side by side); the replies in order.
pub fn send_all(method: &Method, urls: &[url::Url]) -> Vec<Result<Reply, Failure>> {
    let mut out = Vec::with_capacity(urls.len());
    for batch in urls.chunks(IN_FLIGHT) {
        let pending: Vec<_> = batch.iter().map(|u| start(method, u, &[], &[])).collect();
        for (url, p) in batch.iter().zip(pending) {
            out.push(p.and_then(|p| finish(url, p)));
        }
    }
    out
}

fn fatal(why: &str) -> Failure {
    Failure::Fatal(Error::new(ErrorKind::Other, why.to_string()))
}

/// Builds the request, hands it to the host and writes the body.
fn start(
    method: &Method,
    url: &url::Url,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<FutureIncomingResponse, Failure> {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|_| fatal("a header was refused"))?;
    }
    if !matches!(method, Method::Get | Method::Head) || !body.is_empty() {
        fields
            .append("content-length", body.len().to_string().as_bytes())
            .map_err(|_| fatal("content-length refused"))?;
    }
    let request = OutgoingRequest::new(fields);
    let scheme = if url.scheme() == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_string(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    request
        .set_method(method)
        .and_then(|()| request.set_scheme(Some(&scheme)))
        .and_then(|()| request.set_authority(Some(&authority)))
        .and_then(|()| request.set_path_with_query(Some(&path)))
        .map_err(|()| fatal("the request could not be built"))?;
    let outgoing = request.body().map_err(|()| fatal("no request body"))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| transport_error(url, e))?;
    {
        let stream = outgoing.write().map_err(|()| fatal("no body stream"))?;
        let mut rest = body;
        while !rest.is_empty() {
            let permitted = match stream.check_write() {
                Ok(0) => {
                    stream.subscribe().block();
                    continue;
                }
                Ok(n) => n as usize,
                Err(_) => break, // the reply says what went wrong
            };
            let n = permitted.min(rest.len());
            if stream.write(&rest[..n]).is_err() {
                break;
            }
            rest = &rest[n..];
        }
        let _ = stream.blocking_flush();
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| transport_error(url, e))?;
    Ok(future)
}

/// Waits for the reply to a started request and reads all of it.
fn finish(url: &url::Url, future: FutureIncomingResponse) -> Result<Reply, Failure> {
    let response = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| fatal("the reply was taken twice"))?
        .map_err(|e| transport_error(url, e))?;
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    let incoming = response.consume().map_err(|()| fatal("no reply body"))?;
    let mut out = Vec::new();
    {
        let stream = incoming.stream().map_err(|()| fatal("no reply stream"))?;
        loop {
            match stream.blocking_read(4 << 20) {
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(Failure::Retry(Error::new(
                        ErrorKind::Unavailable,
                        format!("the reply was cut short: {}", e.to_debug_string()),
                    )));
                }
            }
        }
    }
    drop(IncomingBody::finish(incoming));
    Ok(Reply {
        status,
        headers,
        body: out,
    })
}
