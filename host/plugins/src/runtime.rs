//! The wasm runtime kast shares between all plugins: one wasmtime engine
//! with epoch interruption (per-call deadlines) and a ticker thread, a
//! small tokio runtime on which calls run (so a call waiting in a host
//! call ends at its deadline too), a linker with WASI, the host's
//! `local-fs` and the sandbox's socket limit, and a cache of precompiled
//! components keyed by the wasm's hash and the wasmtime version, so a
//! command pays ~0.3 ms per plugin instead of seconds of compilation.

use crate::bindings;
use crate::contract::{CONTRACTS, Version};
use crate::error::PluginError;
use crate::sandbox::host_state::HostState;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

/// How often the epoch advances: the granularity of call deadlines.
pub const TICK: Duration = Duration::from_millis(10);

/// A loaded, validated connector component.
pub struct Plugin {
    pub info: crate::registry::PluginInfo,
    pub(crate) component: Component,
    /// BLAKE3 of the wasm bytes.
    pub hash: String,
    /// The version of `kast:connector` it was built against.
    pub contract: String,
    /// The same, as the bindings that serve it.
    pub(crate) version: crate::contract::Version,
    /// Whether it ships inside kast (built from this repository with the
    /// SDK, so known to free what it hands over); set by the registry.
    pub builtin: bool,
}

/// Engine, linker, the tokio runtime calls run on, and compile cache.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    /// Drives sockets, timers and HTTP for every instance; a call runs on
    /// the thread that makes it (`block_on`), so calls from many threads
    /// run side by side.
    tokio: Option<tokio::runtime::Runtime>,
    cache_dir: Option<PathBuf>,
}

impl Drop for Runtime {
    /// Never waits for tokio's threads: the last reference may be dropped
    /// on a thread where blocking is not allowed.
    fn drop(&mut self) {
        if let Some(tokio) = self.tokio.take() {
            tokio.shutdown_background();
        }
    }
}

impl Runtime {
    /// `cache_dir` keeps precompiled components; `None` compiles every time.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Arc<Runtime>, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // For `perf`: KAST_PERFMAP=1 names plugin functions in profiles.
        if std::env::var_os("KAST_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(runtime("configuring wasmtime"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(runtime("linking WASI"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(runtime("linking WASI HTTP"))?;
        crate::sandbox::network::add_socket_limit(&mut linker)
            .map_err(runtime("linking the socket limit"))?;
        // The host's private `local-fs` (for its own `fs` plugin) and the
        // contract's type-only `types` interfaces, which components import.
        bindings::private::FsPlugin::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(runtime("linking local-fs"))?;
        linker
            .instance("kast:connector/types@0.1.0")
            .map_err(runtime("linking the contract's types"))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("kast-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(runtime("starting the epoch thread"))?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kast-plugin-io")
            .enable_io()
            .enable_time()
            .build()
            .map_err(runtime("starting the plugins' I/O runtime"))?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            tokio: Some(tokio),
            cache_dir,
        }))
    }

    /// Runs `work` (a call into an instance) to its end, or until `limit`
    /// has passed: then `None`, and `work` is dropped wherever it waits.
    pub(crate) fn within<F: Future>(&self, limit: Duration, work: F) -> Option<F::Output> {
        let tokio = self.tokio.as_ref().expect("taken only on drop");
        // The timer is made inside the runtime: it needs its clock.
        tokio
            .block_on(async { tokio::time::timeout(limit, work).await })
            .ok()
    }

    /// Compiles (or loads precompiled) and validates a component: it must
    /// export `kast:connector/plugin` and say who it is.
    pub fn load(&self, wasm: &[u8], origin: &str) -> Result<Plugin, PluginError> {
        let not_ours = |why: String| PluginError::NotAConnector {
            path: origin.to_string(),
            why,
        };
        if !wasmparser_is_component(wasm) {
            return Err(not_ours(
                "this is not a WebAssembly component (a core module, or not wasm at all)".into(),
            ));
        }
        let hash = blake3::hash(wasm).to_hex().to_string();
        let component = self
            .compile(wasm, &hash)
            .map_err(|e| not_ours(e.to_string()))?;
        let contract = contract_of(&self.engine, &component).ok_or_else(|| {
            not_ours("it exports none of kast's worlds (no kast:connector interface)".into())
        })?;
        let Some(version) = Version::parse(&contract) else {
            return Err(not_ours(format!(
                "it was built against kast:connector@{contract}, which this kast does not know \
                 (it knows {}): a newer kast may",
                CONTRACTS.join(", ")
            )));
        };
        let info = crate::instance::read_info(self, &component, version, origin)?;
        Ok(Plugin {
            info,
            component,
            contract,
            version,
            hash,
            builtin: false,
        })
    }

    fn compile(&self, wasm: &[u8], hash: &str) -> wasmtime::Result<Component> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, wasm);
        };
        let version = env!("CARGO_PKG_VERSION");
        let path = dir.join(format!("{hash}-wasmtime48-kast{version}.cwasm"));
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of this
            // same wasmtime build (the name carries the wasm hash and the
            // versions), into kast's own cache directory; deserialize also
            // checks the engine's compatibility hash and refuses a mismatch.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let bytes = self.engine.precompile_component(wasm)?;
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        // SAFETY: as above: just produced by this engine.
        unsafe { Component::deserialize(&self.engine, &bytes) }
    }
}

/// The version of `kast:connector` a component exports, from its export
/// names (`kast:connector/plugin@0.1.0`).
fn contract_of(engine: &Engine, component: &Component) -> Option<String> {
    component
        .component_type()
        .exports(engine)
        .find_map(|(name, _)| {
            let (package, version) = name.split_once('@')?;
            package
                .starts_with("kast:connector/")
                .then(|| version.to_string())
        })
}

/// A component starts with the 8-byte preamble `\0asm`, version 0x0d, layer 1.
fn wasmparser_is_component(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm[..4] == *b"\0asm" && wasm[6..8] == [1, 0]
}

/// Names what failed while the runtime was being set up.
fn runtime<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    what: &'static str,
) -> impl FnOnce(E) -> PluginError {
    move |e| PluginError::Runtime {
        what,
        source: e.into(),
    }
}
