//! The sandbox policy, in one place: what an instance may reach is decided
//! from its location and role alone, never by the plugin.
//!
//! - `fs://PATH`: that directory (or file) through the host's `local-fs`
//!   interface; created for a destination, and for a storage only when a
//!   store is being created (opening a mistyped store path creates nothing).
//! - `SCHEME://HOST[:PORT]/…`: outbound TCP to exactly one address, the one
//!   the host resolved `HOST` to, on that port. Name lookup stays off inside
//!   the sandbox (wasmtime-wasi does not filter it), so the plugin gets the
//!   resolved address in `location.address`.
//! - `ftp://` and `ftps://` also need passive-mode data connections, to ports
//!   the server names at run time: the same IP address, on unprivileged
//!   ports (1024–65535), or only `data_ports=LOW-HIGH` when the location
//!   says. Never another address: the plugin ignores the address in the
//!   server's PASV reply (the NAT workaround every client has), so a server
//!   cannot point it elsewhere either.
//! - `s3://HOST[:PORT]/…` and `s3+http://…` (likewise `https`/`http`, and
//!   WebDAV's `davs`/`dav`): no sockets at all; `wasi:http` requests to
//!   exactly that scheme (HTTPS for the first of each pair) and authority (the host makes the
//!   connection, resolves the name and does the TLS; anything else, a
//!   redirect's target included, is denied).
//! - `SCHEME:///PATH` with no host (other schemes): that directory (or the
//!   folder of that file) preopened through WASI at the same path, read-only
//!   for a source.
//! - Never: environment variables, arguments, stdio, other files or hosts.

use crate::error::PluginError;
use crate::instance::{Grants, HttpEndpoint, TcpGrant};
use crate::location::Location;
use crate::registry::Role;
use std::net::ToSocketAddrs;
use std::ops::RangeInclusive;

/// Default ports of the schemes kast knows.
fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "sftp" | "ssh" => 22,
        "ftp" | "ftps" => 21,
        _ => return None,
    })
}

/// For schemes spoken over `wasi:http`: whether it is HTTPS.
fn http_scheme(scheme: &str) -> Option<bool> {
    match scheme {
        "s3" | "https" | "davs" => Some(true),
        "s3+http" | "http" | "dav" => Some(false),
        _ => None,
    }
}

/// FTP's passive data ports: `data_ports=LOW-HIGH`, else all unprivileged.
fn data_ports(location: &Location) -> Result<RangeInclusive<u16>, &'static str> {
    let Some(text) = location.option("data_ports") else {
        return Ok(1024..=65535);
    };
    let (low, high) = text
        .split_once('-')
        .and_then(|(l, h)| Some((l.parse::<u16>().ok()?, h.parse::<u16>().ok()?)))
        .filter(|(l, h)| l <= h && *l > 0)
        .ok_or("data_ports must be LOW-HIGH, e.g. data_ports=40000-40100")?;
    Ok(low..=high)
}

/// What a plugin serving `scheme` may reach, in words for the user (what
/// [`grants_for`] grants for that scheme's locations).
pub fn reach(scheme: &str) -> String {
    if scheme == "fs" {
        "the one local directory (or file) the location names".into()
    } else if let Some(https) = http_scheme(scheme) {
        let http = if https { "HTTPS" } else { "HTTP" };
        format!("{http} requests to the location's own host and port only, no sockets")
    } else if matches!(scheme, "ftp" | "ftps") {
        "the location's host only: its port, and passive data ports on that address".into()
    } else {
        "for a location with a host, that one address only; without one, \
         the folder its path names (read-only as a source)"
            .into()
    }
}

/// The grants for `location` in `role`, and the address handed to the
/// plugin. `creating` is set when a new store is being created there.
pub fn grants_for(
    location: &Location,
    role: Role,
    creating: bool,
) -> Result<(Grants, Option<String>), PluginError> {
    let bad = |why: String| PluginError::BadLocation {
        location: location.shown.clone(),
        why,
    };
    if location.scheme == "fs" {
        if location.host.is_some() {
            return Err(bad("fs locations name a local path: fs:///path".into()));
        }
        let create = role == Role::Destination || (role == Role::Storage && creating);
        return Ok((
            Grants {
                local: Some((location.local_path(), create)),
                ..Grants::default()
            },
            None,
        ));
    }
    if let (Some(host), Some(https)) = (&location.host, http_scheme(&location.scheme)) {
        let port = location.port.unwrap_or(if https { 443 } else { 80 });
        return Ok((
            Grants {
                http: Some(HttpEndpoint {
                    https,
                    authority: format!("{}:{port}", host.to_ascii_lowercase()),
                    ca_pem: None,
                }),
                ..Grants::default()
            },
            None,
        ));
    }
    if let Some(host) = &location.host {
        let port = location
            .port
            .or_else(|| default_port(&location.scheme))
            .ok_or_else(|| bad(format!("give a port: {}://{host}:PORT/…", location.scheme)))?;
        let address = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| bad(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| bad(format!("{host} has no address")))?;
        let mut tcp = vec![TcpGrant {
            ip: address.ip(),
            ports: port..=port,
        }];
        if matches!(location.scheme.as_str(), "ftp" | "ftps") {
            tcp.push(TcpGrant {
                ip: address.ip(),
                ports: data_ports(location).map_err(|why| bad(why.into()))?,
            });
        }
        return Ok((
            Grants {
                tcp,
                ..Grants::default()
            },
            Some(address.to_string()),
        ));
    }
    let path = location.local_path();
    let dir = if path.is_dir() {
        path
    } else {
        path.parent()
            .map(|p| p.to_path_buf())
            .ok_or_else(|| bad("no directory in the path".into()))?
    };
    Ok((
        Grants {
            preopen: Some((dir, role == Role::Source)),
            ..Grants::default()
        },
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(url: &str) -> Vec<TcpGrant> {
        let location = Location::parse(url).unwrap();
        grants_for(&location, Role::Storage, false).unwrap().0.tcp
    }

    #[test]
    fn network_grants_are_one_address_and_only_ftp_adds_data_ports() {
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            tcp("sftp://u@127.0.0.1:2222/x"),
            vec![TcpGrant {
                ip,
                ports: 2222..=2222
            }]
        );
        assert_eq!(
            tcp("ftp://127.0.0.1/x"),
            vec![
                TcpGrant { ip, ports: 21..=21 },
                TcpGrant {
                    ip,
                    ports: 1024..=65535
                }
            ]
        );
        assert_eq!(
            tcp("ftps://127.0.0.1/x?data_ports=40000-40100")[1].ports,
            40000..=40100
        );
        let s3 = Location::parse("s3+http://Garage.local:3900/bucket/p").unwrap();
        let endpoint = grants_for(&s3, Role::Storage, false)
            .unwrap()
            .0
            .http
            .unwrap();
        assert!(tcp("s3://h/b").is_empty(), "no sockets for S3");
        assert!(endpoint.allows(&"http://garage.local:3900/bucket/x?y".parse().unwrap()));
        for other in [
            "https://garage.local:3900/bucket",
            "http://garage.local:3901/bucket",
            "http://evil.example:3900/bucket",
            "http://garage.local/bucket",
        ] {
            assert!(!endpoint.allows(&other.parse().unwrap()), "{other}");
        }
        // WebDAV: dav is plain HTTP, davs HTTPS on 443 by default.
        let http_of = |url: &str| {
            let location = Location::parse(url).unwrap();
            grants_for(&location, Role::Source, false)
                .unwrap()
                .0
                .http
                .unwrap()
        };
        assert!(
            http_of("dav://dav.example:8080/x")
                .allows(&"http://dav.example:8080/x/y".parse().unwrap())
        );
        let davs = http_of("davs://dav.example/x");
        assert!(davs.allows(&"https://dav.example/x".parse().unwrap()));
        assert!(!davs.allows(&"http://dav.example/x".parse().unwrap()));
        assert!(
            tcp("davs://dav.example/x").is_empty(),
            "no sockets for WebDAV"
        );
        let bad = Location::parse("ftp://127.0.0.1/x?data_ports=9-1").unwrap();
        assert!(grants_for(&bad, Role::Source, false).is_err());
    }
}
