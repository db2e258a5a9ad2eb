//! # kast-sdk
//!
//! Write a kast connector in Rust as a plain trait implementation. A
//! connector is a WebAssembly component that kast loads in a sandbox; this
//! crate hides the generated bindings of the contract it carries
//! (`wit/connector.wit`, `kast:connector@0.2.0`) behind one trait per role
//! and one export macro.
//!
// The example needs the connector bindings; without them (the host's
// location parser only) it is left out rather than failing to build.
#![cfg_attr(feature = "connector", doc = include_str!("example.md"))]
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`); the `.wasm` is already a component. Install it with
//! `kast plugin install target/wasm32-wasip2/release/hello.wasm`.
//!
//! Every connector exports the full `connector` world; the roles it does not
//! serve answer `unsupported`, and `info().roles` tells the host which it does.
//!
//! What the contract splits in parts, the traits hand over as Rust's own
//! streams: a stored object arrives through an [`Upload`], an object and a
//! file leave through a [`Read`], listings through an iterator ([`Listing`]).
//! Only [`Source::open_file_at`] is worth writing for speed, where the
//! system can seek: the SDK otherwise reads from the start up to the offset
//! the host asks for (which it does after restarting an instance).

pub mod url;
pub use url::{Url, percent_decode};

#[cfg(feature = "connector")]
mod connector;
#[cfg(feature = "connector")]
pub use connector::*;

#[cfg(feature = "connector")]
pub mod files;
#[cfg(feature = "connector")]
pub use files::{FileInfo, FileStorage, FileTree, layout};
