//! Everything a plugin can do wrong, named with the plugin and the operation,
//! so a user reads "plugin fs: put ran out of time", not a wasm backtrace.

use std::time::Duration;

/// Why a connector call or load failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{path}: not a kast connector: {why}")]
    NotAConnector { path: String, why: String },
    #[error("plugin {plugin}: {operation} was stopped after {limit:?} (per-call time limit)")]
    Timeout {
        plugin: String,
        operation: &'static str,
        limit: Duration,
    },
    #[error(
        "plugin {plugin}: {operation} tried to use more than {limit_mib} MiB of memory and was stopped"
    )]
    OutOfMemory {
        plugin: String,
        operation: &'static str,
        limit_mib: usize,
    },
    #[error("plugin {plugin}: {operation} was stopped: it {what} (a sandbox limit)")]
    OverLimit {
        plugin: String,
        operation: &'static str,
        what: String,
    },
    #[error("plugin {plugin}: {operation} crashed: {message}")]
    Trap {
        plugin: String,
        operation: &'static str,
        message: String,
    },
    #[error("plugin {plugin}: {operation}: {message}")]
    Failed {
        plugin: String,
        operation: &'static str,
        kind: ErrorKind,
        message: String,
    },
    #[error("plugin {plugin}: {message}")]
    Misbehaved { plugin: String, message: String },
    #[error("no plugin serves '{0}://' locations; install one with `kast plugin install`")]
    UnknownScheme(String),
    #[error("plugin {plugin} does not serve the {role} role")]
    RoleNotServed { plugin: String, role: &'static str },
    #[error("invalid location '{location}': {why}")]
    BadLocation { location: String, why: String },
    #[error("plugin registry at {path}: {source}")]
    Registry {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the plugin runtime: {what}: {source}")]
    Runtime {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The contract's error kinds, as the host sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    PermissionDenied,
    InvalidInput,
    Unavailable,
    NoSpace,
    Unsupported,
    Other,
}

impl ErrorKind {
    pub fn io_kind(self) -> std::io::ErrorKind {
        use std::io::ErrorKind as K;
        match self {
            ErrorKind::NotFound => K::NotFound,
            ErrorKind::AlreadyExists => K::AlreadyExists,
            ErrorKind::PermissionDenied => K::PermissionDenied,
            ErrorKind::InvalidInput => K::InvalidInput,
            ErrorKind::Unavailable => K::ConnectionAborted,
            ErrorKind::NoSpace => K::StorageFull,
            ErrorKind::Unsupported => K::Unsupported,
            ErrorKind::Other => K::Other,
        }
    }
}

impl PluginError {
    /// An I/O error carrying this one, for the engine's source and
    /// destination traits (the typed error stays reachable via `get_ref`).
    pub fn into_io(self) -> std::io::Error {
        let kind = match &self {
            PluginError::Failed { kind, .. } => kind.io_kind(),
            PluginError::Timeout { .. } => std::io::ErrorKind::TimedOut,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, self)
    }
}
