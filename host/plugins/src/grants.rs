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
//! - `SCHEME:///PATH` with no host (other schemes): that directory (or the
//!   folder of that file) preopened through WASI at the same path, read-only
//!   for a source.
//! - Never: environment variables, arguments, stdio, other files or hosts.

use crate::error::PluginError;
use crate::instance::Grants;
use crate::location::Location;
use crate::registry::Role;
use std::net::ToSocketAddrs;

/// Default ports of the schemes kast knows.
fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "sftp" | "ssh" => 22,
        "ftp" | "ftps" => 21,
        "http" | "s3+http" => 80,
        "https" | "s3" => 443,
        _ => return None,
    })
}

/// The grants for `location` in `role`, and the address handed to the
/// plugin. `creating` is set when a new store is being created there.
pub fn grants_for(
    location: &Location,
    role: Role,
    creating: bool,
) -> Result<(Grants, Option<String>), PluginError> {
    let bad = |why: String| PluginError::BadLocation {
        location: location.url.clone(),
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
        return Ok((
            Grants {
                tcp: vec![address],
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
