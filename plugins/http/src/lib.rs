//! kast's built-in `http`/`https` connector: a store served by another
//! machine's `kast serve` (docs/serve.md). The plugin has no sockets: the
//! host sends each request, to exactly the location's origin, and does the
//! TLS (trusting the location's `ca=` when given).
//!
//! Location: `http[s]://host[:port][/prefix]/?token_file=F`. The host reads
//! the token file (`token=` reaches the plugin) and adds `client=`, an id
//! the same for every instance in one kast process, which the server uses
//! to let a client remove the locks it made and no others.

use kast_plugin_http_client::{self as http, Method, Reply};
use kast_sdk::{
    Connector, Error, ErrorKind, Listing, Location, ObjectInfo, ObjectKind, PluginInfo, Role,
    Storage, Upload, buffered, layout, listing,
};
use std::io::{Cursor, Read};
use std::rc::Rc;

struct HttpConnector;

impl Connector for HttpConnector {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "http".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            schemes: vec!["http".into(), "https".into()],
            roles: vec![Role::Storage],
            description: "a store served by `kast serve`".into(),
        }
    }

    fn storage(location: Location) -> Result<Box<dyn Storage>, Error> {
        Ok(Box::new(HttpStorage(Rc::new(Server::open(&location)?))))
    }
}

kast_sdk::export_connector!(HttpConnector);

/// Where the store is served, and how to ask.
struct Server {
    /// `scheme://authority/prefix/v1/`.
    base: url::Url,
    token: String,
    client: String,
    /// The location as shown (no secrets), for messages.
    shown: String,
}

impl Server {
    fn open(location: &Location) -> Result<Server, Error> {
        let bad = |why: &str| Error::new(ErrorKind::InvalidInput, why.to_string());
        let mut base = url::Url::parse(&location.url).map_err(|e| bad(&e.to_string()))?;
        let token = location
            .option("token")
            .ok_or_else(|| bad("the location needs token_file=FILE (the server's token)"))?
            .to_string();
        let client = location.option("client").unwrap_or("").to_string();
        base.set_query(None);
        base.set_fragment(None);
        let prefix = base.path().trim_end_matches('/').to_string();
        base.set_path(&format!("{prefix}/v1/"));
        let shown = format!(
            "{}://{}{}",
            base.scheme(),
            base.host_str().unwrap_or(""),
            base.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        Ok(Server {
            base,
            token,
            client,
            shown,
        })
    }

    fn url(&self, kind: ObjectKind, name: Option<&str>) -> Result<url::Url, Error> {
        let folder = match kind {
            ObjectKind::Config => "config",
            other => layout::folder(other),
        };
        let path = match name {
            Some(name) => {
                layout::object_path(kind, name)?;
                format!("{folder}/{name}")
            }
            None => format!("{folder}/"),
        };
        self.base
            .join(&path)
            .map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))
    }

    /// One exchange, retried as the shared client retries; a status the
    /// server answers with for good is turned into the contract's error.
    fn exchange(
        &self,
        method: Method,
        url: &url::Url,
        range: Option<(u64, u64)>,
        body: &[u8],
    ) -> Result<Reply, Error> {
        let mut headers = vec![("authorization", format!("Bearer {}", self.token))];
        if !self.client.is_empty() {
            headers.push(("x-kast-client", self.client.clone()));
        }
        if let Some((offset, length)) = range {
            let last = offset + length.max(1) - 1;
            headers.push(("range", format!("bytes={offset}-{last}")));
        }
        let what = format!("{method:?} {}", url.path());
        let reply = http::with_retries(&self.shown, &what, || {
            http::send(&method, url, &headers, body)
        })?;
        let said = || {
            String::from_utf8_lossy(&reply.body)
                .trim()
                .chars()
                .take(200)
                .collect::<String>()
        };
        match reply.status {
            200..=299 => Ok(reply),
            401 => Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("{}: the server refused the token (token_file=)", self.shown),
            )),
            403 => Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("{}: {}", self.shown, said()),
            )),
            404 => Err(Error::new(
                ErrorKind::NotFound,
                format!("{what}: not found"),
            )),
            416 if range.is_some() => Ok(Reply {
                status: 206,
                headers: Vec::new(),
                body: Vec::new(),
            }),
            status => Err(Error::new(
                ErrorKind::Other,
                format!("{}: {what}: HTTP {status} {}", self.shown, said()),
            )),
        }
    }
}

struct HttpStorage(Rc<Server>);

impl Storage for HttpStorage {
    /// One PUT of the whole object, which the server stores atomically
    /// and durably before it answers.
    fn put(&mut self, kind: ObjectKind, name: &str, size: u64) -> Result<Box<dyn Upload>, Error> {
        let server = self.0.clone();
        let url = server.url(kind, Some(name))?;
        Ok(buffered(size, move |data| {
            server.exchange(Method::Put, &url, None, &data).map(|_| ())
        }))
    }

    fn get(&mut self, kind: ObjectKind, name: &str) -> Result<Box<dyn Read>, Error> {
        let url = self.0.url(kind, Some(name))?;
        let reply = self.0.exchange(Method::Get, &url, None, &[])?;
        Ok(Box::new(Cursor::new(reply.body)))
    }

    fn get_range(
        &mut self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        if length == 0 {
            return Ok(Vec::new());
        }
        let url = self.0.url(kind, Some(name))?;
        let mut body = self
            .0
            .exchange(Method::Get, &url, Some((offset, length)), &[])?
            .body;
        // A server that ignores ranges sends the whole object.
        if body.len() as u64 > length {
            body = body
                .get(offset as usize..)
                .unwrap_or_default()
                .iter()
                .take(length as usize)
                .copied()
                .collect();
        }
        Ok(body)
    }

    fn list(&mut self, kind: ObjectKind) -> Result<Listing<ObjectInfo>, Error> {
        let url = self.0.url(kind, None)?;
        let reply = self.0.exchange(Method::Get, &url, None, &[])?;
        let text = String::from_utf8(reply.body)
            .map_err(|_| Error::new(ErrorKind::Other, "the listing is not UTF-8"))?;
        let mut out = Vec::new();
        for line in text.lines() {
            let (name, size) = line
                .split_once(' ')
                .and_then(|(n, s)| Some((n, s.parse::<u64>().ok()?)))
                .ok_or_else(|| {
                    Error::new(ErrorKind::Other, format!("a bad listing line: {line:?}"))
                })?;
            out.push(ObjectInfo {
                name: name.to_string(),
                size,
            });
        }
        Ok(listing(out))
    }

    fn delete(&mut self, kind: ObjectKind, name: &str) -> Result<(), Error> {
        let url = self.0.url(kind, Some(name))?;
        match self.0.exchange(Method::Delete, &url, None, &[]) {
            Ok(_) => Ok(()),
            // Deleting what is not there is not an error (the contract).
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
