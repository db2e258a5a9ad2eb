//! Sockets: the addresses an instance may connect to, and how many sockets
//! it may hold at once. wasmtime-wasi checks every address through the
//! callback built here; the count is kept by the host's own
//! `create-tcp-socket`, which replaces wasmtime-wasi's in the linker.

use super::host_state::HostState;
use super::limits::MAX_SOCKETS;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::TcpSocket;
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::Host as _;
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsView};

/// Outbound TCP to one IP address, on a range of ports (a single port for
/// most protocols; FTP adds the passive data ports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpGrant {
    /// The one address a plugin may connect to: what the location's host resolved to, fixed
    /// before the plugin runs.
    pub ip: IpAddr,
    /// The ports it may connect to there.
    pub ports: RangeInclusive<u16>,
}

impl TcpGrant {
    /// Whether a connect to `addr` is granted.
    pub fn allows(&self, addr: &SocketAddr) -> bool {
        addr.ip() == self.ip && self.ports.contains(&addr.port())
    }
}

/// Lets an instance connect to the granted addresses and nowhere else.
pub(crate) fn allow_tcp(wasi: &mut wasmtime_wasi::WasiCtxBuilder, grants: &[TcpGrant]) {
    if grants.is_empty() {
        return;
    }
    let allowed = grants.to_vec();
    wasi.allow_tcp(true);
    wasi.socket_addr_check(move |addr, use_| {
        let ok = allowed.iter().any(|grant| grant.allows(&addr))
            // connect() first binds implicitly to the unspecified address.
            || (matches!(use_, SocketAddrUse::TcpBind)
                && addr.ip().is_unspecified()
                && addr.port() == 0);
        Box::pin(async move { ok })
    });
}

/// The version of `wasi:sockets` wasmtime-wasi 48 defines; components built
/// against any 0.2.x version link to it.
const TCP_CREATE_SOCKET: &str = "wasi:sockets/tcp-create-socket@0.2.12";

/// Replaces wasmtime-wasi's `create-tcp-socket` with one that refuses a
/// socket past [`MAX_SOCKETS`] (as `new-socket-limit`, what the system's
/// own limit would say) and remembers it, so the call's error can name the
/// limit.
pub(crate) fn add_socket_limit(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance(TCP_CREATE_SOCKET)?.func_wrap(
        "create-tcp-socket",
        |mut store: StoreContextMut<'_, HostState>, (family,): (IpAddressFamily,)| {
            let state = store.data_mut();
            if state.tcp_sockets() >= MAX_SOCKETS {
                state.over_limit = Some(format!(
                    "asked for more than {MAX_SOCKETS} sockets at once, the most an instance may hold"
                ));
                return Ok((Err(ErrorCode::NewSocketLimit),));
            }
            let created: Result<Resource<TcpSocket>, ErrorCode> =
                match state.sockets().create_tcp_socket(family) {
                    Ok(socket) => Ok(socket),
                    Err(e) => Err(e.downcast()?),
                };
            Ok((created,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
