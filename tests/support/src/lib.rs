//! What kast's tests share, as a crate rather than files included by path,
//! so each helper compiles once and has one home:
//!
//! - [`common`]: deterministic data, generated trees with the awkward cases,
//!   stores in temporary folders, and tree comparison by bytes and metadata;
//!   [`common::conformance`] is the suite every connector passes;
//! - [`servers`]: real servers (OpenSSH, vsftpd, pyftpdlib, ProFTPD, Garage,
//!   wsgidav, a TLS proxy) started on loopback and stopped on drop;
//! - [`user`]: the user the end-to-end tests act as, who has only the
//!   `kast` command line;
//! - [`markdown`]: the shell blocks of a Markdown page, which the README and
//!   tutorial tests run.

pub mod common;
pub mod markdown;
pub mod servers;
pub mod user;
