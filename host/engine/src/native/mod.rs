//! The engine's own source and destination, without the plugin boundary:
//! a local directory ([`local`]) and a tree in memory ([`memory`]). Tests
//! compare what went in with what came out through them, and the benchmark
//! prices the WebAssembly boundary against them. Not where a store lives:
//! storages are in [`crate::storage`].

pub mod local;
pub mod memory;
