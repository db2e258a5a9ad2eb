//! # kast-sdk
//!
//! Write a kast connector in Rust as a plain trait implementation. A
//! connector is a WebAssembly component that kast loads in a sandbox; this
//! crate hides the generated bindings of the contract it carries
//! (`wit/connector.wit`, `kast:connector@0.2.0`) behind one trait per role
//! and one export macro.
//!
//! A complete connector that serves a directory as a source:
//!
//! ```no_run
//! use kast_sdk::{Connector, Entry, EntryKind, Error, Listing, Location, Metadata, PluginInfo, Role, Source};
//! use std::io::Read;
//!
//! struct Hello;
//!
//! impl Connector for Hello {
//!     fn info() -> PluginInfo {
//!         PluginInfo {
//!             name: "hello".into(),
//!             version: "0.1.0".into(),
//!             schemes: vec!["hello".into()],
//!             roles: vec![Role::Source],
//!             description: "one file that says hello".into(),
//!         }
//!     }
//!
//!     fn source(_location: Location) -> Result<Box<dyn Source>, Error> {
//!         Ok(Box::new(HelloSource))
//!     }
//! }
//!
//! struct HelloSource;
//!
//! impl Source for HelloSource {
//!     fn list_dir(&mut self, _path: &[u8]) -> Result<Listing<Entry>, Error> {
//!         let meta = Metadata { mode: 0o100644, size: 6, ..Metadata::empty() };
//!         let hello = Entry { name: b"hello.txt".to_vec(), kind: EntryKind::File, meta, symlink_target: None };
//!         Ok(kast_sdk::listing(vec![hello]))
//!     }
//!
//!     fn open_file(&mut self, _path: &[u8]) -> Result<Box<dyn Read>, Error> {
//!         Ok(Box::new(&b"hello\n"[..]))
//!     }
//! }
//!
//! kast_sdk::export_connector!(Hello);
//! ```
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
