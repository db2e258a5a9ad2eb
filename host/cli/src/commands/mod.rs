//! One module per command group; each parses nothing (clap did), calls the
//! engine or the plugin host, and prints.

pub mod backup;
pub mod browse;
pub mod job;
pub mod key;
pub mod location;
pub mod plugin;
pub mod report;
pub mod restore;
pub mod schedule;
pub mod serve;
pub mod store;
pub mod stream;
pub mod sync;
