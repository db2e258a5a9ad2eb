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

use super::http::HttpEndpoint;
use super::network::TcpGrant;
use super::schemes::{Reach, reach_of};
use crate::error::PluginError;
use crate::location::Location;
use crate::registry::Role;
use std::net::ToSocketAddrs;
use std::ops::RangeInclusive;
use std::path::PathBuf;

/// What the sandbox lets an instance reach: decided by [`grants_for`] from
/// the location alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// A local directory (or file) served through `local-fs`; `true` when
    /// it may be created.
    pub local: Option<(PathBuf, bool)>,
    /// The only addresses outbound TCP may connect to.
    pub tcp: Vec<TcpGrant>,
    /// A directory preopened through WASI at its own path; `true` when
    /// read-only.
    pub preopen: Option<(PathBuf, bool)>,
    /// The one HTTP endpoint `wasi:http` requests may go to.
    pub http: Option<HttpEndpoint>,
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

/// What a plugin serving `scheme` may reach, in words for the user: the
/// same [`Reach`] [`grants_for`] enforces.
pub fn reach(scheme: &str) -> String {
    match reach_of(scheme) {
        Reach::LocalFiles => "the one local directory (or file) the location names".into(),
        Reach::Http { https } => {
            let http = if https { "HTTPS" } else { "HTTP" };
            format!("{http} requests to the location's own host and port only, no sockets")
        }
        Reach::Tcp {
            default_port,
            data_ports,
        } => {
            let port = match default_port {
                Some(port) => format!("its port (default {port})"),
                None => "its port".into(),
            };
            let data = if data_ports {
                ", and passive data ports on that address"
            } else {
                ""
            };
            format!("the location's host only: {port}{data}")
        }
        Reach::Other => "for a location with a host, that one address only; without one, \
             the folder its path names (read-only as a source)"
            .into(),
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
    let reach = reach_of(&location.scheme);
    match (reach, &location.host) {
        (Reach::LocalFiles, Some(_)) => {
            Err(bad("fs locations name a local path: fs:///path".into()))
        }
        (Reach::LocalFiles, None) => {
            let create = role == Role::Destination || (role == Role::Storage && creating);
            Ok((
                Grants {
                    local: Some((location.local_path(), create)),
                    ..Grants::default()
                },
                None,
            ))
        }
        (Reach::Http { https }, Some(host)) => {
            let port = location.port.unwrap_or(if https { 443 } else { 80 });
            Ok((
                Grants {
                    http: Some(HttpEndpoint {
                        https,
                        authority: format!("{}:{port}", host.to_ascii_lowercase()),
                        ca_pem: None,
                    }),
                    ..Grants::default()
                },
                None,
            ))
        }
        (Reach::Tcp { .. } | Reach::Other, Some(host)) => {
            let (default_port, with_data_ports) = match reach {
                Reach::Tcp {
                    default_port,
                    data_ports,
                } => (default_port, data_ports),
                _ => (None, false),
            };
            let port = location
                .port
                .or(default_port)
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
            if with_data_ports {
                tcp.push(TcpGrant {
                    ip: address.ip(),
                    ports: data_ports(location).map_err(|why| bad(why.into()))?,
                });
            }
            Ok((
                Grants {
                    tcp,
                    ..Grants::default()
                },
                Some(address.to_string()),
            ))
        }
        // A network scheme without a host, or a scheme kast does not know.
        _ => {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kast plugin info` says a scheme may reach is what its
    /// locations are granted: both come from the one table.
    #[test]
    fn the_printed_reach_is_the_enforced_one() {
        for (scheme, facts) in super::super::schemes::known() {
            let said = reach(scheme);
            let url = format!("{scheme}://127.0.0.1/x");
            let location = Location::parse(&url).unwrap();
            let granted = grants_for(&location, Role::Source, false);
            match *facts {
                Reach::LocalFiles => {
                    let local = Location::parse(&format!("{scheme}:///x")).unwrap();
                    let (grants, _) = grants_for(&local, Role::Source, false).unwrap();
                    assert!(grants.local.is_some() && grants.tcp.is_empty(), "{scheme}");
                    assert!(said.contains("local directory"), "{scheme}: {said}");
                }
                Reach::Http { https } => {
                    let (grants, _) = granted.unwrap();
                    let endpoint = grants.http.expect("an HTTP grant");
                    assert_eq!(endpoint.https, https, "{scheme}");
                    assert!(grants.tcp.is_empty(), "{scheme}: no sockets");
                    let word = if https {
                        "HTTPS requests"
                    } else {
                        "HTTP requests"
                    };
                    assert!(
                        said.starts_with(word) && said.contains("no sockets"),
                        "{said}"
                    );
                }
                Reach::Tcp {
                    default_port,
                    data_ports,
                } => {
                    let (grants, _) = granted.unwrap();
                    let port = default_port.expect("known TCP schemes have a port");
                    assert_eq!(grants.tcp[0].ports, port..=port, "{scheme}");
                    assert_eq!(grants.tcp.len() == 2, data_ports, "{scheme}");
                    assert!(said.contains(&format!("default {port}")), "{said}");
                    assert_eq!(said.contains("passive data ports"), data_ports, "{said}");
                }
                Reach::Other => unreachable!("the table holds known schemes"),
            }
        }
        assert!(reach("hostile").contains("that one address only"));
    }

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
