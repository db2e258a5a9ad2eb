//! Telling people about a run: a webhook (HTTP POST of the run's JSON,
//! retried on network errors and 5xx/429 answers; HTTPS against the Mozilla
//! roots or the job's own CA) and a command (the JSON on
//! its standard input). A notification that fails is a warning of the run,
//! never a reason to fail it.

use super::Notify;
use anyhow::{Context as _, Result, anyhow, bail};
use kast_engine::activity::Activity;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Waits before each retry of a webhook (four tries in all).
const RETRY_WAITS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(9),
];
/// How long one try may take to connect, and to send or hear anything.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The JSON every notification carries: the run as the activity log keeps
/// it, and whether it is in the log.
pub fn message(activity: &Activity, not_recorded: Option<&str>) -> Value {
    let mut value = json!(activity);
    value["recorded"] = json!(not_recorded.is_none());
    if let Some(why) = not_recorded {
        value["not_recorded_because"] = json!(why);
    }
    value
}

/// Sends `message` everywhere `notify` says (a command may run `limit`);
/// returns what failed.
pub fn send(notify: &Notify, message: &Value, limit: Duration) -> Vec<String> {
    let body = message.to_string();
    let mut failed = Vec::new();
    if let Some(url) = &notify.webhook
        && let Err(e) = post_with_retries(url, notify.ca.as_deref(), body.as_bytes())
    {
        failed.push(format!("webhook {url}: {e:#}"));
    }
    if let Some(command) = &notify.command {
        let ran = super::shell::Shell {
            what: "notify command",
            command,
            env: &[],
            input: Some(body.as_bytes()),
            limit,
            cancel: None,
        }
        .run();
        if let Err(e) = ran {
            failed.push(format!("{e:#}"));
        }
    }
    failed
}

fn post_with_retries(url: &str, ca: Option<&std::path::Path>, body: &[u8]) -> Result<()> {
    let endpoint = Endpoint::parse(url)?;
    let ca_pem = ca
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the CA file {}", path.display()))
        })
        .transpose()?;
    let mut waits = RETRY_WAITS.iter();
    loop {
        let error = match endpoint.post(ca_pem.as_deref(), body) {
            Ok(status) if (200..300).contains(&status) => return Ok(()),
            Ok(status) if status >= 500 || status == 429 => anyhow!("answered {status}"),
            Ok(status) => bail!("answered {status}"),
            // A certificate that does not check will not check in a minute.
            Err(e) if is_tls_failure(&e) => return Err(e),
            Err(e) => e,
        };
        match waits.next() {
            Some(wait) => std::thread::sleep(*wait),
            None => return Err(error.context("gave up after 4 tries")),
        }
    }
}

/// Whether `e` is the TLS layer refusing (a certificate, a protocol), not
/// the network failing.
fn is_tls_failure(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<rustls::Error>().is_some()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
    })
}

/// Where a webhook goes: `http[s]://host[:port]/path`.
pub struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint> {
        let bad = |why: &str| anyhow!("webhook {url:?}: {why}");
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("give an http:// or https:// URL"));
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(bad(
                "put credentials in the path or query, not before the host",
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => {
                (h, p.parse().map_err(|_| bad("the port is not a number"))?)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
        })
    }

    /// One try: the answer's status code. HTTPS certificates are checked
    /// against `ca_pem` when given, else the Mozilla roots.
    fn post(&self, ca_pem: Option<&str>, body: &[u8]) -> Result<u16> {
        let address = (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("{} has no address", self.host))?;
        let tcp = TcpStream::connect_timeout(&address, TIMEOUT)?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        let host_header = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: kast/{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        if self.tls {
            let config = kast_plugins::tls_config(ca_pem)?;
            let name = rustls::pki_types::ServerName::try_from(self.host.clone())?;
            let connection = rustls::ClientConnection::new(Arc::clone(&config), name)?;
            exchange(rustls::StreamOwned::new(connection, tcp), &head, body)
        } else {
            exchange(tcp, &head, body)
        }
    }
}

/// Writes the request and reads the status line of the answer.
fn exchange(mut stream: impl Read + Write, head: &str, body: &[u8]) -> Result<u16> {
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP answer: {:?}", line.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_read_or_refused() {
        let e = Endpoint::parse("https://hooks.example.org/kast?x=1").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.path.as_str()),
            (true, "hooks.example.org", 443, "/kast?x=1")
        );
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((e.tls, e.port, e.path.as_str()), (false, 8080, "/"));
        let e = Endpoint::parse("http://[::1]:9000/hook").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        for bad in [
            "ftp://x",
            "http://",
            "http://user:pw@host/",
            "http://host:port/",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
