//! The sandbox every connector instance runs in, in one place: what it may
//! reach ([`grants`], from the table of [`schemes`]), what it may use
//! ([`limits`]), and the wasmtime store that enforces both ([`store`], with
//! the socket rules in [`network`] and the HTTP rules in [`http`]).
//! `docs/connector-contract.md` states each limit and what a plugin that
//! reaches it sees.

pub mod grants;
pub(crate) mod host_state;
pub mod http;
pub mod limits;
pub mod network;
pub mod schemes;

pub use grants::{Grants, grants_for, reach};
pub use http::HttpEndpoint;
pub use limits::Limits;
pub use network::TcpGrant;
