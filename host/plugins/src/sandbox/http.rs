//! `wasi:http`: the one endpoint an instance's requests may go to. The host
//! makes the connection, resolves the name and does the TLS; a request to
//! anything else (a redirect's target included) is denied before a
//! connection is made.

use crate::error::PluginError;
use crate::http_client;
use std::sync::Arc;

/// An HTTP(S) endpoint: requests to any other scheme or authority are
/// denied by the host before a connection is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpEndpoint {
    /// Whether the origin is `https`; a plain `http` request to it is denied.
    pub https: bool,
    /// `host:port`, lowercase.
    pub authority: String,
    /// PEM certificates of the only CAs trusted for this endpoint (the
    /// location's `ca=`); `None` trusts the Mozilla roots.
    pub ca_pem: Option<String>,
}

impl HttpEndpoint {
    /// Whether a request for `uri` may go out.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return false,
        };
        let Some(authority) = uri.authority() else {
            return false;
        };
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let asked = format!("{}:{port}", authority.host().to_ascii_lowercase());
        https == self.https && asked == self.authority
    }
}

/// The wasi:http policy of one instance: the one endpoint requests may go
/// to, and the TLS configuration they use.
pub(crate) struct HttpHooks(Option<(HttpEndpoint, Arc<rustls::ClientConfig>)>);

impl HttpHooks {
    pub(crate) fn new(endpoint: Option<&HttpEndpoint>) -> Result<Self, PluginError> {
        Ok(HttpHooks(match endpoint {
            Some(e) => Some((e.clone(), http_client::tls_config(e.ca_pem.as_deref())?)),
            None => None,
        }))
    }
}

impl wasmtime_wasi_http::WasiHttpHooks for HttpHooks {
    /// A request body holds at most this chunk and one queued (wasmtime's
    /// default is 1 MiB and two): with a request, its body and its stream,
    /// a body then holds no more per host object than a set of fields, so
    /// the host-object cap bounds both (see `limits.rs`). A PUT of a 16 MiB
    /// pack is 2048 writes.
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        crate::sandbox::limits::MAX_HTTP_FIELD_BYTES
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<http_client::Sent, wasmtime_wasi_http::Error>> + Send> {
        let allowed = match &self.0 {
            Some((endpoint, tls)) if endpoint.allows(request.uri()) => Some(tls.clone()),
            _ => None,
        };
        Box::new(async move {
            match allowed {
                Some(tls) => http_client::send(request, options, tls).await,
                None => Err(wasmtime_wasi_http::Error::HttpRequestDenied),
            }
        })
    }
}
