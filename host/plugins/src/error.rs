//! Everything a plugin can do wrong, named with the plugin and the operation,
//! so a user reads "plugin fs: put ran out of time", not a wasm backtrace.

use std::time::Duration;

/// Why a connector call or load failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file is not a component exporting a kast world this host knows.
    #[error("{path}: not a kast connector: {why}")]
    NotAConnector {
        /// The `.wasm` file.
        path: String,
        /// What the loader found instead.
        why: String,
    },
    /// A call ran past its time limit and was interrupted (epoch deadline):
    /// a plugin cannot hold the host by waiting.
    #[error("plugin {plugin}: {operation} was stopped after {limit:?} (per-call time limit)")]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The contract call it was in.
        operation: &'static str,
        /// The limit it hit.
        limit: Duration,
    },
    /// A call asked for more linear memory than the sandbox grants.
    #[error(
        "plugin {plugin}: {operation} tried to use more than {limit_mib} MiB of memory and was stopped"
    )]
    OutOfMemory {
        /// The plugin's name.
        plugin: String,
        /// The contract call it was in.
        operation: &'static str,
        /// The memory limit, in MiB.
        limit_mib: usize,
    },
    /// A call passed another sandbox limit (a reply too large, too many
    /// open handles): stopped before the host spent memory on it.
    #[error("plugin {plugin}: {operation} was stopped: it {what} (a sandbox limit)")]
    OverLimit {
        /// The plugin's name.
        plugin: String,
        /// The contract call it was in.
        operation: &'static str,
        /// Which limit, in words.
        what: String,
    },
    /// The plugin trapped (a panic, an unreachable, a bad memory access);
    /// its instance is dropped and the host carries on.
    #[error("plugin {plugin}: {operation} crashed: {message}")]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// The contract call it was in.
        operation: &'static str,
        /// The trap's message.
        message: String,
    },
    /// The plugin returned an error of the contract: an ordinary failure
    /// (not found, refused, unreachable).
    #[error("plugin {plugin}: {operation}: {message}")]
    Failed {
        /// The plugin's name.
        plugin: String,
        /// The contract call that failed.
        operation: &'static str,
        /// The contract's error kind, which callers map to exit codes.
        kind: ErrorKind,
        /// The plugin's message.
        message: String,
    },
    /// The plugin broke the contract (an unknown handle, a reply out of
    /// order); treated as hostile, never trusted further.
    #[error("plugin {plugin}: {message}")]
    Misbehaved {
        /// The plugin's name.
        plugin: String,
        /// What it did.
        message: String,
    },
    /// No installed plugin serves the location's scheme.
    #[error("no plugin serves '{0}://' locations; install one with `kast plugin install`")]
    UnknownScheme(String),
    /// The plugin serves the scheme but not this role (a storage-only
    /// plugin named as a backup source).
    #[error("plugin {plugin} does not serve the {role} role")]
    RoleNotServed {
        /// The plugin's name.
        plugin: String,
        /// The role asked of it.
        role: &'static str,
    },
    /// The location does not parse, or grants what it may not.
    #[error("invalid location '{location}': {why}")]
    BadLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        why: String,
    },
    /// The plugin folder could not be read or written.
    #[error("plugin registry at {path}: {source}")]
    Registry {
        /// The file or folder concerned.
        path: String,
        /// What the filesystem reported.
        #[source]
        source: std::io::Error,
    },
    /// The wasm runtime itself failed to start or compile.
    #[error("starting the plugin runtime: {what}: {source}")]
    Runtime {
        /// The step that failed.
        what: &'static str,
        /// wasmtime's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The contract's error kinds, as the host sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object or path is not there.
    NotFound,
    /// Something is already at the name and the call may not replace it.
    AlreadyExists,
    /// The remote side refused (credentials, permissions, append-only).
    PermissionDenied,
    /// The arguments make no sense to the plugin.
    InvalidInput,
    /// The remote side cannot be reached now: worth a retry.
    Unavailable,
    /// The remote side is full.
    NoSpace,
    /// The plugin cannot do this at all (a hard link on FTP).
    Unsupported,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The `std::io` kind for it, so the engine's source and destination
    /// traits (which speak `io::Error`) keep the distinction.
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
