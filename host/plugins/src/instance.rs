//! One connector instance: a wasmtime store with the sandbox's grants and
//! limits, the instantiated world, and a call wrapper that turns traps,
//! timeouts and memory exhaustion into [`PluginError`]s. A trapped instance
//! is dropped and the next call starts a fresh one (re-opening the
//! location), so no state of a failed call leaks into the next.

use crate::bindings::{self, types};
use crate::error::{ErrorKind, PluginError};
use crate::http_client;
use crate::local_fs::LocalFs;
use crate::registry::{PluginInfo, Role};
use crate::runtime::{Runtime, TICK};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Resource limits of every instance.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Wall time one call may take before it is interrupted.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            call_timeout: Duration::from_secs(300),
        }
    }
}

/// What the sandbox lets an instance reach: decided by
/// [`crate::grants::grants_for`] from the location alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// A local directory (or file) served through `local-fs`; `true` when
    /// it may be created.
    pub local: Option<(PathBuf, bool)>,
    /// The only addresses outbound TCP may connect to.
    pub tcp: Vec<TcpGrant>,
    /// A directory preopened through WASI at its own path; `true` when
    /// read-only.
    pub preopen: Option<(PathBuf, bool)>,
    /// The one HTTP endpoint `wasi:http` requests may go to.
    pub http: Option<HttpEndpoint>,
}

/// An HTTP(S) endpoint: requests to any other scheme or authority are
/// denied by the host before a connection is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpEndpoint {
    pub https: bool,
    /// `host:port`, lowercase.
    pub authority: String,
    /// PEM certificates of the only CAs trusted for this endpoint (the
    /// location's `ca=`); `None` trusts the Mozilla roots.
    pub ca_pem: Option<String>,
}

impl HttpEndpoint {
    /// Whether a request for `uri` may go out.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return false,
        };
        let Some(authority) = uri.authority() else {
            return false;
        };
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let asked = format!("{}:{port}", authority.host().to_ascii_lowercase());
        https == self.https && asked == self.authority
    }
}

/// The wasi:http policy of one instance: the one endpoint requests may go
/// to, and the TLS configuration they use.
struct HttpHooks(Option<(HttpEndpoint, Arc<rustls::ClientConfig>)>);

impl HttpHooks {
    fn new(endpoint: Option<&HttpEndpoint>) -> Result<Self, PluginError> {
        Ok(HttpHooks(match endpoint {
            Some(e) => Some((e.clone(), http_client::tls_config(e.ca_pem.as_deref())?)),
            None => None,
        }))
    }
}

impl wasmtime_wasi_http::WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<http_client::Sent, wasmtime_wasi_http::Error>> + Send> {
        let allowed = match &self.0 {
            Some((endpoint, tls)) if endpoint.allows(request.uri()) => Some(tls.clone()),
            _ => None,
        };
        Box::new(async move {
            match allowed {
                Some(tls) => http_client::send(request, options, tls).await,
                None => Err(wasmtime_wasi_http::Error::HttpRequestDenied),
            }
        })
    }
}

/// Outbound TCP to one IP address, on a range of ports (a single port for
/// most protocols; FTP adds the passive data ports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpGrant {
    pub ip: IpAddr,
    pub ports: RangeInclusive<u16>,
}

impl TcpGrant {
    pub fn allows(&self, addr: &SocketAddr) -> bool {
        addr.ip() == self.ip && self.ports.contains(&addr.port())
    }
}

/// Memory accounting that remembers a refusal, so the error can say why,
/// and the most the instance has been granted.
struct Limiter {
    memory_bytes: usize,
    refused: bool,
    granted: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.refused = true;
            return Ok(false);
        }
        self.granted = self.granted.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The store's data: WASI context, resource table, local files, limits.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_hooks: HttpHooks,
    pub(crate) local_fs: LocalFs,
    limiter: Limiter,
    /// The end of what the instance wrote to stderr, for a crash report.
    stderr: crate::plugin_log::Tail,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

fn new_store(
    runtime: &Runtime,
    grants: &Grants,
    limits: &Limits,
    log: Option<(&Arc<crate::plugin_log::PluginLog>, &str)>,
) -> Result<Store<HostState>, PluginError> {
    let mut wasi = WasiCtxBuilder::new();
    // No environment, no arguments, no stdio, no preopened directories, no
    // name lookup: only what is granted below. Output goes to the plugin
    // log when the user asked for one.
    let stderr = crate::plugin_log::Tail::default();
    if let Some((log, plugin)) = log {
        wasi.stdout(log.stream(plugin, "stdout"));
    }
    let plugin = log.map_or("", |(_, plugin)| plugin);
    wasi.stderr(crate::plugin_log::LogStream::stderr(
        log.map(|(log, _)| log),
        plugin,
        stderr.clone(),
    ));
    if !grants.tcp.is_empty() {
        let allowed = grants.tcp.clone();
        wasi.allow_tcp(true);
        wasi.socket_addr_check(move |addr, use_| {
            let ok = allowed.iter().any(|grant| grant.allows(&addr))
                // connect() first binds implicitly to the unspecified address.
                || (matches!(use_, wasmtime_wasi::sockets::SocketAddrUse::TcpBind)
                    && addr.ip().is_unspecified()
                    && addr.port() == 0);
            Box::pin(async move { ok })
        });
    }
    if let Some((dir, read_only)) = &grants.preopen {
        let guest = dir.to_str().ok_or_else(|| PluginError::BadLocation {
            location: dir.display().to_string(),
            why: "the path is not UTF-8".into(),
        })?;
        let perms = if *read_only {
            wasmtime_wasi::FsPerms::ReadOnly
        } else {
            wasmtime_wasi::FsPerms::ReadWrite
        };
        wasi.allow_blocking_current_thread(true);
        wasi.preopened_dir(dir, guest, perms)
            .map_err(|e| PluginError::BadLocation {
                location: dir.display().to_string(),
                why: e.to_string(),
            })?;
    }
    let local_fs = match &grants.local {
        Some((path, create)) => {
            LocalFs::grant(path, *create).map_err(|e| PluginError::BadLocation {
                location: path.display().to_string(),
                why: e.to_string(),
            })?
        }
        None => LocalFs::default(),
    };
    let mut store = Store::new(
        &runtime.engine,
        HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_hooks: HttpHooks::new(grants.http.as_ref())?,
            local_fs,
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                refused: false,
                granted: 0,
            },
            stderr,
        },
    );
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_trap();
    // Instantiation runs guest code too: it gets the same deadline as a call.
    store.set_epoch_deadline(deadline_ticks(limits));
    Ok(store)
}

fn deadline_ticks(limits: &Limits) -> u64 {
    (limits.call_timeout.as_millis() / TICK.as_millis()).max(1) as u64
}

/// The world an instance was created for.
enum Exports {
    Storage(bindings::storage::Storage),
    Source(bindings::source::Source),
    Destination(bindings::destination::Destination),
}

/// Everything needed to start an instance: the same for every instance of
/// one location, so a connector can run several side by side.
pub struct InstanceConfig {
    pub runtime: Arc<Runtime>,
    pub plugin: Arc<crate::runtime::Plugin>,
    pub role: Role,
    pub location: types::Location,
    pub grants: Grants,
    pub limits: Limits,
    /// The location's secrets, scrubbed from every message the plugin
    /// returns: a plugin that quotes its URL must not print a password.
    pub secrets: Vec<String>,
    /// Where the plugin's stdout and stderr go (`--plugin-log`); else nowhere.
    pub log: Option<Arc<crate::plugin_log::PluginLog>>,
}

impl InstanceConfig {
    /// Instantiates the plugin and opens the location.
    pub fn open(self: &Arc<Self>) -> Result<Instance, PluginError> {
        if !self.plugin.info.roles.contains(&self.role) {
            return Err(PluginError::RoleNotServed {
                plugin: self.plugin.info.name.clone(),
                role: self.role.name(),
            });
        }
        let mut instance = Instance {
            config: self.clone(),
            live: None,
            handed_over: 0,
        };
        instance.start()?;
        Ok(instance)
    }
}

/// A running connector instance serving one location in one role.
pub struct Instance {
    config: Arc<InstanceConfig>,
    live: Option<(Store<HostState>, Exports)>,
    /// File bytes the live instance has returned from `read`.
    handed_over: u64,
}

/// What a typed call returns: the wasm call's outcome wrapping the
/// connector's own result.
pub type CallResult<R> = wasmtime::Result<Result<R, types::Error>>;

impl Instance {
    pub fn plugin_name(&self) -> &str {
        &self.config.plugin.info.name
    }

    /// Whether the location grants local files (the `fs` scheme): only then
    /// can the host make hard links for the plugin.
    pub(crate) fn grants_local_files(&self) -> bool {
        self.config.grants.local.is_some()
    }

    /// The local files the host serves this instance, while it runs.
    pub(crate) fn local_fs(&mut self) -> Option<&mut LocalFs> {
        self.live
            .as_mut()
            .map(|(store, _)| &mut store.data_mut().local_fs)
    }

    /// Lets an instance start afresh at its next call once it has grown past
    /// half its memory cap or, for an installed plugin, returned more file
    /// data than that. Called between files: some component toolchains never
    /// free what an export returns (componentize-py 0.25 keeps every byte in
    /// its linear memory; componentize-js 0.23's engine counts them against a
    /// heap limit of its own, invisible from here, and fails at about 700 MB),
    /// and a fresh instance keeps such a source going for any number of
    /// files, each of which fits. Built-in plugins keep their instance (and
    /// the read-ahead state the host holds for it).
    pub(crate) fn restart_if_grown(&mut self) {
        let half = self.config.limits.memory_bytes / 2;
        let grown = self.live.as_ref().is_some_and(|(store, _)| {
            store.data().limiter.granted > half
                || (!self.config.plugin.builtin && self.handed_over > half as u64)
        });
        if grown {
            self.live = None;
        }
    }

    /// Counts file bytes a `read` returned, for [`Self::restart_if_grown`].
    pub(crate) fn handed_over(&mut self, bytes: usize) {
        self.handed_over += bytes as u64;
    }

    fn start(&mut self) -> Result<(), PluginError> {
        let config = self.config.clone();
        let log = config
            .log
            .as_ref()
            .map(|log| (log, config.plugin.info.name.as_str()));
        let mut store = new_store(&config.runtime, &config.grants, &config.limits, log)?;
        let component = &config.plugin.component;
        let linker = &config.runtime.linker;
        let instantiated = match config.role {
            Role::Storage => bindings::storage::Storage::instantiate(&mut store, component, linker)
                .map(Exports::Storage),
            Role::Source => bindings::source::Source::instantiate(&mut store, component, linker)
                .map(Exports::Source),
            Role::Destination => {
                bindings::destination::Destination::instantiate(&mut store, component, linker)
                    .map(Exports::Destination)
            }
        };
        let exports = instantiated.map_err(|e| PluginError::Misbehaved {
            plugin: config.plugin.info.name.clone(),
            message: format!("cannot be instantiated: {e}"),
        })?;
        self.live = Some((store, exports));
        self.handed_over = 0;
        let location = config.location.clone();
        self.call("open", |store, exports| match exports {
            Exports::Storage(b) => b.kast_connector_object_store().call_open(store, &location),
            Exports::Source(b) => b.kast_connector_tree_source().call_open(store, &location),
            Exports::Destination(b) => b
                .kast_connector_tree_destination()
                .call_open(store, &location),
        })
    }

    /// Runs one export under the deadline and maps every failure.
    fn call<R>(
        &mut self,
        operation: &'static str,
        f: impl FnOnce(&mut Store<HostState>, &Exports) -> CallResult<R>,
    ) -> Result<R, PluginError> {
        if self.live.is_none() {
            self.start()?;
        }
        let (store, exports) = self.live.as_mut().expect("started above");
        let limits = self.config.limits;
        store.set_epoch_deadline(deadline_ticks(&limits));
        store.data_mut().limiter.refused = false;
        let plugin = self.config.plugin.info.name.clone();
        match f(store, exports) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(PluginError::Failed {
                plugin,
                operation,
                kind: kind_of(e.kind),
                message: crate::plugin_log::plain(&crate::location::scrub(
                    e.message,
                    &self.config.secrets,
                )),
            }),
            Err(trap) => {
                let refused = store.data().limiter.refused;
                let last_words = store.data().stderr.last_words();
                // A trapped instance cannot be entered again: start afresh next time.
                self.live = None;
                Err(match trap.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => PluginError::Timeout {
                        plugin,
                        operation,
                        limit: limits.call_timeout,
                    },
                    _ if refused => PluginError::OutOfMemory {
                        plugin,
                        operation,
                        limit_mib: limits.memory_bytes >> 20,
                    },
                    // What trapped, and the plugin's own last words (a
                    // panic message) when it left any on stderr.
                    code => PluginError::Trap {
                        plugin,
                        operation,
                        message: {
                            let what = match code {
                                Some(code) => code.to_string(),
                                None => crate::plugin_log::escaped(
                                    format!("{trap}")
                                        .lines()
                                        .next()
                                        .unwrap_or("trap")
                                        .as_bytes(),
                                ),
                            };
                            match last_words {
                                Some(words) => format!("{what}; it said: {words}"),
                                None => what,
                            }
                        },
                    },
                })
            }
        }
    }

    pub fn storage_call<R>(
        &mut self,
        operation: &'static str,
        f: impl FnOnce(
            &mut Store<HostState>,
            &bindings::storage::exports::kast::connector::object_store::Guest,
        ) -> CallResult<R>,
    ) -> Result<R, PluginError> {
        self.call(operation, |store, exports| match exports {
            Exports::Storage(b) => f(store, b.kast_connector_object_store()),
            _ => unreachable!("a storage instance has storage exports"),
        })
    }

    pub fn source_call<R>(
        &mut self,
        operation: &'static str,
        f: impl FnOnce(
            &mut Store<HostState>,
            &bindings::source::exports::kast::connector::tree_source::Guest,
        ) -> CallResult<R>,
    ) -> Result<R, PluginError> {
        self.call(operation, |store, exports| match exports {
            Exports::Source(b) => f(store, b.kast_connector_tree_source()),
            _ => unreachable!("a source instance has source exports"),
        })
    }

    pub fn destination_call<R>(
        &mut self,
        operation: &'static str,
        f: impl FnOnce(
            &mut Store<HostState>,
            &bindings::destination::exports::kast::connector::tree_destination::Guest,
        ) -> CallResult<R>,
    ) -> Result<R, PluginError> {
        self.call(operation, |store, exports| match exports {
            Exports::Destination(b) => f(store, b.kast_connector_tree_destination()),
            _ => unreachable!("a destination instance has destination exports"),
        })
    }
}

fn kind_of(k: types::ErrorKind) -> ErrorKind {
    use types::ErrorKind as W;
    match k {
        W::NotFound => ErrorKind::NotFound,
        W::AlreadyExists => ErrorKind::AlreadyExists,
        W::PermissionDenied => ErrorKind::PermissionDenied,
        W::InvalidInput => ErrorKind::InvalidInput,
        W::Unavailable => ErrorKind::Unavailable,
        W::NoSpace => ErrorKind::NoSpace,
        W::Unsupported => ErrorKind::Unsupported,
        W::Other => ErrorKind::Other,
    }
}

/// Asks a component who it is, and checks that it exports every world its
/// roles need. Runs with no grants under the default limits.
pub(crate) fn read_info(
    runtime: &Runtime,
    component: &Component,
    origin: &str,
) -> Result<PluginInfo, PluginError> {
    let not_ours = |why: String| PluginError::NotAConnector {
        path: origin.to_string(),
        why,
    };
    let pre = runtime
        .linker
        .instantiate_pre(component)
        .map_err(|e| not_ours(format!("it needs imports kast does not provide: {e:#}")))?;
    let exported = [
        (
            Role::Storage,
            bindings::storage::StoragePre::new(pre.clone()).is_ok(),
        ),
        (
            Role::Source,
            bindings::source::SourcePre::new(pre.clone()).is_ok(),
        ),
        (
            Role::Destination,
            bindings::destination::DestinationPre::new(pre.clone()).is_ok(),
        ),
    ];
    let Some((first, _)) = exported.iter().find(|(_, ok)| *ok) else {
        return Err(not_ours(
            "it exports none of kast's worlds (storage, source, destination of kast:connector@0.1.0)".into(),
        ));
    };
    let limits = Limits {
        call_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut store = new_store(runtime, &Grants::default(), &limits, None)?;
    let info = match first {
        Role::Storage => {
            bindings::storage::Storage::instantiate(&mut store, component, &runtime.linker)
                .and_then(|b| b.kast_connector_plugin().call_info(&mut store))
        }
        Role::Source => {
            bindings::source::Source::instantiate(&mut store, component, &runtime.linker)
                .and_then(|b| b.kast_connector_plugin().call_info(&mut store))
        }
        Role::Destination => {
            bindings::destination::Destination::instantiate(&mut store, component, &runtime.linker)
                .and_then(|b| b.kast_connector_plugin().call_info(&mut store))
        }
    }
    .map_err(|e| not_ours(format!("its info() failed: {e:#}")))?;
    let info = PluginInfo::from_wit(info);
    for role in &info.roles {
        if !exported.iter().any(|(r, ok)| r == role && *ok) {
            return Err(not_ours(format!(
                "it claims the {} role but does not export it",
                role.name()
            )));
        }
    }
    if info.name.is_empty() || info.schemes.is_empty() || info.roles.is_empty() {
        return Err(not_ours(
            "its info() names no plugin, scheme or role".into(),
        ));
    }
    Ok(info)
}
