//! The wasmtime `Store` of one instance (not a kast store): its WASI
//! context with exactly its grants, its resource table and HTTP context
//! under the host-side caps, and the memory limiter. Everything an instance can touch hangs off the
//! [`HostState`] built here.

use super::grants::Grants;
use super::http::HttpHooks;
use super::limits::{Limiter, Limits, MAX_HTTP_FIELD_BYTES};
use super::network;
use crate::error::PluginError;
use crate::local_fs::LocalFs;
use crate::plugin_log::{LogStream, PluginLog, Tail};
use crate::runtime::{Runtime, TICK};
use std::sync::Arc;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The store's data: WASI context, resource table, local files, limits.
pub struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_hooks: HttpHooks,
    pub(crate) local_fs: LocalFs,
    pub(crate) limiter: Limiter,
    /// The end of what the instance wrote to stderr, for a crash report.
    pub(crate) stderr: Tail,
    /// A host-side limit the running call ran into, in words: a call that
    /// then fails is reported as stopped by it.
    pub(crate) over_limit: Option<String>,
}

impl HostState {
    /// TCP sockets the instance holds now.
    pub(crate) fn tcp_sockets(&mut self) -> usize {
        self.table
            .iter_mut()
            .filter(|entry| entry.is::<wasmtime_wasi::p2::TcpSocket>())
            .count()
    }

    /// Whether the resource table is (nearly) full: a call that trapped
    /// then was refused one more host object.
    pub(crate) fn host_objects_exhausted(&mut self) -> bool {
        self.table.iter_mut().count() + 1 >= self.table.max_capacity()
    }
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

/// A store for one instance with `grants`, under `limits`; what it prints
/// goes to `log` (with the plugin's name) when the user asked for one.
pub(crate) fn new_store(
    runtime: &Runtime,
    grants: &Grants,
    limits: &Limits,
    log: Option<(&Arc<PluginLog>, &str)>,
) -> Result<Store<HostState>, PluginError> {
    let mut wasi = WasiCtxBuilder::new();
    // No environment, no arguments, no stdin, no preopened directories, no
    // name lookup: only what is granted below. Output goes to the plugin
    // log when the user asked for one.
    let stderr = Tail::default();
    if let Some((log, plugin)) = log {
        wasi.stdout(log.stream(plugin, "stdout"));
    }
    let plugin = log.map_or("", |(_, plugin)| plugin);
    wasi.stderr(LogStream::stderr(
        log.map(|(log, _)| log),
        plugin,
        stderr.clone(),
    ));
    network::allow_tcp(&mut wasi, &grants.tcp);
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
        // File operations run on tokio's blocking threads (not the calling
        // one), so a call's deadline ends a wait on a slow file too.
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
    let mut table = ResourceTable::new();
    table.set_max_capacity(limits.host_objects());
    let mut http = wasmtime_wasi_http::WasiHttpCtx::new();
    http.set_field_size_limit(MAX_HTTP_FIELD_BYTES);
    let mut store = Store::new(
        &runtime.engine,
        HostState {
            wasi: wasi.build(),
            table,
            http,
            http_hooks: HttpHooks::new(grants.http.as_ref())?,
            local_fs,
            limiter: Limiter::new(limits),
            stderr,
            over_limit: None,
        },
    );
    store.limiter(|s| &mut s.limiter);
    // What one call hands the host (a listing, an object) may take at most
    // as much of the host's memory as the plugin may have of its own
    // (wasmtime counts it as it copies; its default is 128 MiB).
    store.set_hostcall_fuel(limits.memory_bytes);
    store.epoch_deadline_trap();
    // Instantiation runs guest code too: it gets the same deadline as a call.
    store.set_epoch_deadline(deadline_ticks(limits));
    Ok(store)
}

/// A call's time limit in epoch ticks.
pub(crate) fn deadline_ticks(limits: &Limits) -> u64 {
    (limits.call_timeout.as_millis() / TICK.as_millis()).max(1) as u64
}
