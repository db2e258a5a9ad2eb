//! `kast serve`: the store's storage over HTTP, append-only unless told
//! otherwise, for clients that must not be able to delete their backups
//! (docs/serve.md). The server holds no key: it moves sealed objects.

use crate::context::Context;
use anyhow::{Context as _, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kast_engine::Store;
use kast_engine::storage::{ObjectKind, Storage, StorageError};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How `kast serve` was asked to serve.
pub struct Options {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The file whose first line is the token every request must carry.
    pub token_file: std::path::PathBuf,
    /// Let clients delete and replace objects (for `rm` and `maintenance`
    /// through the server).
    pub allow_delete: bool,
    /// A certificate chain and its key (PEM files): serve HTTPS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The largest object a client may put: a pack of the largest target the
/// store format allows, with room for its footer.
const LARGEST_OBJECT: usize = (1 << 30) + (64 << 20);

/// The header a client names itself with, so it may remove its own locks.
const CLIENT_HEADER: &str = "x-kast-client";

/// Shortest token accepted: a guessable one would make the server open.
const SHORTEST_TOKEN: usize = 16;

struct Server {
    storage: Arc<dyn Storage>,
    token: Vec<u8>,
    allow_delete: bool,
    /// Which client made each lock this server stored.
    lock_owners: Mutex<HashMap<String, String>>,
}

/// Serves until Ctrl-C (which sets `cancel`).
pub fn run(ctx: &Context, options: &Options, cancel: Arc<AtomicBool>) -> Result<()> {
    let token = read_token(&options.token_file)?;
    let (location, _) = ctx.store_location()?;
    let shown = kast_plugins::location::redact(&location);
    let storage = ctx
        .host()?
        .storage(&location)
        .with_context(|| format!("cannot open {shown}"))?;
    // Served only once it is a store; `create` is made where it lives.
    Store::peek_id(&*storage).with_context(|| format!("no store to serve at {shown}"))?;
    let tls = options
        .tls
        .as_ref()
        .map(|(cert, key)| tls_acceptor(cert, key))
        .transpose()?;
    let server = Arc::new(Server {
        storage,
        token,
        allow_delete: options.allow_delete,
        lock_owners: Mutex::new(HashMap::new()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let address = listener.local_addr()?;
        // The first line of standard output, as scripts and tests expect.
        println!(
            "{}://{address}/",
            if tls.is_some() { "https" } else { "http" }
        );
        std::io::stdout().flush()?;
        ctx.note(&format!(
            "serving {shown} {}",
            if options.allow_delete {
                "(deletes allowed)"
            } else {
                "append-only: no object can be deleted or replaced through it"
            }
        ));
        let shutdown = async move {
            while !cancel.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        };
        let app = routes(server);
        match tls {
            None => axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .context("serving the store"),
            Some(acceptor) => axum::serve(TlsListener::new(listener, acceptor), app)
                .with_graceful_shutdown(shutdown)
                .await
                .context("serving the store"),
        }
    })
}

/// The server's TLS setup from PEM files; errors name the file.
fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "cannot read a PEM certificate chain from {}",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        bail!("{} holds no PEM certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not go together")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Connections that finished their TLS handshake. Handshakes run apart
/// (each within a time limit), so a slow client holds up no other.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    address: SocketAddr,
}

impl TlsListener {
    fn new(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        let address = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (send, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let send = send.clone();
                tokio::spawn(async move {
                    let limit = std::time::Duration::from_secs(10);
                    if let Ok(Ok(tls)) = tokio::time::timeout(limit, acceptor.accept(tcp)).await {
                        let _ = send.send((tls, peer)).await;
                    }
                });
            }
        });
        TlsListener { ready, address }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task never ends while this lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.address)
    }
}

fn read_token(path: &std::path::Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().as_bytes().to_vec();
    if token.len() < SHORTEST_TOKEN {
        bail!(
            "the token in {} is shorter than {SHORTEST_TOKEN} characters; make one with \
             `head -c 32 /dev/urandom | base64 > {}`",
            path.display(),
            path.display()
        );
    }
    Ok(token)
}

fn routes(server: Arc<Server>) -> Router {
    Router::new()
        .route("/v1/{kind}/", get(list))
        .route("/v1/{kind}/{name}", get(read).put(write).delete(remove))
        .layer(DefaultBodyLimit::max(LARGEST_OBJECT))
        .layer(axum::middleware::from_fn_with_state(server.clone(), guard))
        .with_state(server)
}

/// Every request carries the token, compared in constant time; without
/// it, 401 and nothing more.
async fn guard(
    State(server): State<Arc<Server>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or(b"");
    if !same_bytes(given, &server.token) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response();
    }
    next.run(request).await
}

/// Equal, taking the same time wherever they differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn kind_of(folder: &str) -> Option<ObjectKind> {
    Some(match folder {
        "config" => ObjectKind::Config,
        "keys" => ObjectKind::Key,
        "packs" => ObjectKind::Pack,
        "states" => ObjectKind::State,
        "snapshots" => ObjectKind::Snapshot,
        "locks" => ObjectKind::Lock,
        _ => return None,
    })
}

/// A name the engine could have written: `config`, or lowercase hex.
fn valid_name(kind: ObjectKind, name: &str) -> bool {
    match kind {
        ObjectKind::Config => name == "config",
        _ => {
            !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
    }
}

/// The object a path names, if the engine could have written it.
fn object(kind: &str, name: &str) -> Option<ObjectKind> {
    kind_of(kind).filter(|k| valid_name(*k, name))
}

fn no_such_object() -> Response {
    (StatusCode::NOT_FOUND, "no such object\n").into_response()
}

fn failure(e: StorageError) -> Response {
    match e {
        StorageError::NotFound { .. } => (StatusCode::NOT_FOUND, "not found\n").into_response(),
        other => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the server's storage failed: {other}\n"),
        )
            .into_response(),
    }
}

/// Runs a storage call off the async threads (storages block).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(failure),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()),
    }
}

async fn list(State(server): State<Arc<Server>>, Path(kind): Path<String>) -> Response {
    let Some(kind) = kind_of(&kind) else {
        return (StatusCode::NOT_FOUND, "no such kind\n").into_response();
    };
    let storage = server.storage.clone();
    match blocking(move || storage.list(kind)).await {
        Ok(objects) => {
            let mut body = String::new();
            for o in objects {
                body.push_str(&format!("{} {}\n", o.name, o.size));
            }
            body.into_response()
        }
        Err(response) => response,
    }
}

async fn read(
    State(server): State<Arc<Server>>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(kind) = object(&kind, &name) else {
        return no_such_object();
    };
    let storage = server.storage.clone();
    match headers
        .get(header::RANGE)
        .map(|v| parse_range(v.as_bytes()))
    {
        None => match blocking(move || storage.get(kind, &name)).await {
            Ok(bytes) => bytes.into_response(),
            Err(response) => response,
        },
        Some(None) => (StatusCode::RANGE_NOT_SATISFIABLE, "bad range\n").into_response(),
        Some(Some((offset, length))) => {
            match blocking(move || storage.get_range(kind, &name, offset, length)).await {
                Ok(bytes) => (StatusCode::PARTIAL_CONTENT, bytes).into_response(),
                Err(response) => response,
            }
        }
    }
}

/// `bytes=FIRST-LAST` → (offset, length); any other form is refused.
fn parse_range(value: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(value).ok()?.strip_prefix("bytes=")?;
    let (first, last) = text.split_once('-')?;
    let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    (last >= first).then(|| (first, last - first + 1))
}

async fn write(
    State(server): State<Arc<Server>>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(kind) = object(&kind, &name) else {
        return no_such_object();
    };
    let client = headers
        .get(CLIENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let storage = server.storage.clone();
    let allow_delete = server.allow_delete;
    let key = name.clone();
    let stored = blocking(move || {
        if !allow_delete {
            // Append-only: a new name, or the very bytes already there (a
            // retried put whose answer was lost).
            match storage.get(kind, &name) {
                Ok(there) => return Ok(there == body[..]),
                Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        storage.put(kind, &name, &body).map(|()| true)
    })
    .await;
    match stored {
        Ok(true) => {
            if kind == ObjectKind::Lock && !client.is_empty() {
                server
                    .lock_owners
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, client);
            }
            StatusCode::OK.into_response()
        }
        Ok(false) => (
            StatusCode::FORBIDDEN,
            "this server is append-only: an object that exists cannot be replaced\n",
        )
            .into_response(),
        Err(response) => response,
    }
}

async fn remove(
    State(server): State<Arc<Server>>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(kind) = object(&kind, &name) else {
        return no_such_object();
    };
    let client = headers.get(CLIENT_HEADER).and_then(|v| v.to_str().ok());
    let own_lock = kind == ObjectKind::Lock && {
        let owners = server.lock_owners.lock().unwrap_or_else(|p| p.into_inner());
        client.is_some_and(|c| !c.is_empty() && owners.get(&name).map(String::as_str) == Some(c))
    };
    if !server.allow_delete && !own_lock {
        return (
            StatusCode::FORBIDDEN,
            "this server is append-only: objects cannot be deleted through it\n",
        )
            .into_response();
    }
    let storage = server.storage.clone();
    let key = name.clone();
    match blocking(move || storage.delete(kind, &name)).await {
        Ok(()) => {
            server
                .lock_owners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            StatusCode::OK.into_response()
        }
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_names_are_parsed_strictly() {
        assert_eq!(parse_range(b"bytes=0-9"), Some((0, 10)));
        assert_eq!(parse_range(b"bytes=5-5"), Some((5, 1)));
        assert_eq!(parse_range(b"bytes=9-0"), None);
        assert_eq!(parse_range(b"bytes=-5"), None);
        assert_eq!(parse_range(b"bytes=0-1,4-5"), None);
        assert!(valid_name(ObjectKind::Pack, "0a1b"));
        assert!(!valid_name(ObjectKind::Pack, "../config"));
        assert!(!valid_name(ObjectKind::Pack, "0A"));
        assert!(!valid_name(ObjectKind::Config, "other"));
        assert!(same_bytes(b"token", b"token"));
        assert!(!same_bytes(b"token", b"tokem") && !same_bytes(b"token", b"tok"));
    }
}
