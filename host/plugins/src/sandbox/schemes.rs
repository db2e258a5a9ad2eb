//! The one table of what kast knows about URL schemes: how a location of
//! each is reached. [`super::grants::grants_for`] enforces it and
//! [`super::grants::reach`] says it in words, both from the same value.

/// How a plugin serving a scheme reaches its locations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The one local directory (or file) the location names, through the
    /// host's `local-fs` (the `fs` scheme).
    LocalFiles,
    /// `wasi:http` requests to the location's own authority, no sockets.
    Http {
        /// Whether the origin is `https` (the host does the TLS).
        https: bool,
    },
    /// TCP to the address the location's host resolves to, on its port
    /// (or this default); `data_ports` adds FTP's passive data ports on
    /// that same address.
    Tcp {
        /// The protocol's port, when the location names none.
        default_port: Option<u16>,
        /// Whether FTP's passive data ports on the same address are open too.
        data_ports: bool,
    },
    /// A scheme kast does not know: TCP to the location's host and port
    /// when it names one, else the folder its path names, preopened
    /// through WASI (read-only as a source).
    Other,
}

/// Every scheme with facts of its own; any other is [`Reach::Other`].
const SCHEMES: &[(&str, Reach)] = &[
    ("fs", Reach::LocalFiles),
    (
        "sftp",
        Reach::Tcp {
            default_port: Some(22),
            data_ports: false,
        },
    ),
    (
        "ssh",
        Reach::Tcp {
            default_port: Some(22),
            data_ports: false,
        },
    ),
    (
        "ftp",
        Reach::Tcp {
            default_port: Some(21),
            data_ports: true,
        },
    ),
    (
        "ftps",
        Reach::Tcp {
            default_port: Some(21),
            data_ports: true,
        },
    ),
    ("s3", Reach::Http { https: true }),
    ("s3+http", Reach::Http { https: false }),
    ("https", Reach::Http { https: true }),
    ("http", Reach::Http { https: false }),
    // WebDAV.
    ("davs", Reach::Http { https: true }),
    ("dav", Reach::Http { https: false }),
];

/// Every scheme with facts of its own, and its facts.
pub fn known() -> &'static [(&'static str, Reach)] {
    SCHEMES
}

/// How locations of `scheme` are reached.
pub fn reach_of(scheme: &str) -> Reach {
    SCHEMES
        .iter()
        .find(|(name, _)| *name == scheme)
        .map_or(Reach::Other, |(_, reach)| *reach)
}
