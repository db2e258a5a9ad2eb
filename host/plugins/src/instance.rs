//! One connector instance: a wasmtime store with the sandbox's grants and
//! limits, the instantiated world, and a call wrapper that turns traps,
//! timeouts and memory exhaustion into [`PluginError`]s. A trapped instance
//! is dropped and the next call starts a fresh one (re-opening the
//! location), so no state of a failed call leaks into the next.

use crate::bindings::types;
use crate::contract::{Exports, Version};
use crate::error::{ErrorKind, PluginError};
use crate::local_fs::LocalFs;
use crate::registry::{PluginInfo, Role};
use crate::runtime::Runtime;
use crate::sandbox::host_state::{HostState, deadline_ticks, new_store};
use crate::sandbox::{Grants, Limits};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Store, Trap};

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
            generation: 0,
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
    /// Counts the instances started: what one opened means nothing to the next.
    generation: u64,
}

/// What a typed call returns: the wasm call's outcome wrapping the
/// connector's own result.
pub type CallResult<R> = wasmtime::Result<Result<R, types::Error>>;

impl Instance {
    pub fn plugin_name(&self) -> &str {
        &self.config.plugin.info.name
    }

    /// The limits the instance runs under.
    pub(crate) fn limits(&self) -> Limits {
        self.config.limits
    }

    /// The contract version the plugin was built against.
    pub(crate) fn version(&self) -> Version {
        self.config.plugin.version
    }

    /// Which instance is (or will be) live.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether instance `generation` is still the live one.
    pub(crate) fn is_live(&self, generation: u64) -> bool {
        self.live.is_some() && self.generation == generation
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
    /// data than that; says whether it will. Called between files, and
    /// between the pieces of a file when the contract reads at offsets:
    /// some component toolchains never free what an export returns
    /// (componentize-py 0.25 keeps every byte in its linear memory;
    /// componentize-js 0.23's engine counts them against a heap limit of
    /// its own, invisible from here, and fails at about 700 MB), and a fresh
    /// instance keeps such a source going for any amount of data. Built-in
    /// plugins keep their instance (and the read-ahead state the host holds
    /// for it) until their memory grows.
    pub(crate) fn restart_if_grown(&mut self) -> bool {
        let half = self.config.limits.memory_bytes / 2;
        let grown = self.live.as_ref().is_some_and(|(store, _)| {
            store.data().limiter.granted > half
                || (!self.config.plugin.builtin && self.handed_over > half as u64)
        });
        if grown {
            self.live = None;
        }
        grown
    }

    /// Counts file bytes a `read` returned, for [`Self::restart_if_grown`].
    pub(crate) fn handed_over(&mut self, bytes: usize) {
        self.handed_over += bytes as u64;
    }

    fn start(&mut self) -> Result<(), PluginError> {
        let config = self.config.clone();
        let plugin = || config.plugin.info.name.clone();
        let log = config
            .log
            .as_ref()
            .map(|log| (log, config.plugin.info.name.as_str()));
        let mut store = new_store(&config.runtime, &config.grants, &config.limits, log)?;
        let component = &config.plugin.component;
        let linker = &config.runtime.linker;
        // Instantiation runs guest code too: it has the same deadline as a call.
        let (version, role) = (config.plugin.version, config.role);
        let instantiated = config.runtime.within(
            config.limits.call_timeout,
            Exports::instantiate(version, role, &mut store, component, linker),
        );
        let exports = match instantiated {
            None => {
                return Err(PluginError::Timeout {
                    plugin: plugin(),
                    operation: "start",
                    limit: config.limits.call_timeout,
                });
            }
            Some(result) => result.map_err(|e| PluginError::Misbehaved {
                plugin: plugin(),
                message: format!("cannot be instantiated: {e}"),
            })?,
        };
        self.live = Some((store, exports));
        self.handed_over = 0;
        self.generation += 1;
        let location = config.location.clone();
        self.call("open", async |store, exports| {
            exports.open(store, &location).await
        })
    }

    /// Runs one export under the deadline and maps every failure. The
    /// deadline holds twice: epoch interruption stops running wasm, and the
    /// call's future is dropped when its time is up, which ends any wait
    /// inside a host call (a sleep, a socket, an HTTP response, a file).
    pub(crate) fn call<R>(
        &mut self,
        operation: &'static str,
        f: impl AsyncFnOnce(&mut Store<HostState>, &Exports) -> CallResult<R>,
    ) -> Result<R, PluginError> {
        if self.live.is_none() {
            self.start()?;
        }
        let (store, exports) = self.live.as_mut().expect("started above");
        let limits = self.config.limits;
        store.set_epoch_deadline(deadline_ticks(&limits));
        store.data_mut().limiter.refused = false;
        store.data_mut().over_limit = None;
        let plugin = self.config.plugin.info.name.clone();
        let outcome = self
            .config
            .runtime
            .within(limits.call_timeout, f(store, exports));
        let timeout = PluginError::Timeout {
            plugin: plugin.clone(),
            operation,
            limit: limits.call_timeout,
        };
        let Some(outcome) = outcome else {
            // Stopped while waiting: the instance is mid-call, never to resume.
            self.live = None;
            return Err(timeout);
        };
        let state = store.data_mut();
        let over_limit = |state: &mut HostState| {
            state
                .over_limit
                .take()
                .or_else(|| {
                    state.host_objects_exhausted().then(|| {
                        format!(
                            "held {} host objects (streams, sockets, HTTP fields…), the most an instance may",
                            limits.host_objects()
                        )
                    })
                })
                .map(|what| PluginError::OverLimit {
                    plugin: plugin.clone(),
                    operation,
                    what,
                })
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(over_limit(state).unwrap_or_else(|| PluginError::Failed {
                plugin: plugin.clone(),
                operation,
                kind: kind_of(e.kind),
                message: crate::plugin_log::plain(&crate::location::scrub(
                    e.message,
                    &self.config.secrets,
                )),
            })),
            Err(trap) => {
                let refused = state.limiter.refused;
                let last_words = state.stderr.last_words();
                let over = over_limit(state);
                // A trapped instance cannot be entered again: start afresh next time.
                self.live = None;
                Err(match trap.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => timeout,
                    _ if refused => PluginError::OutOfMemory {
                        plugin,
                        operation,
                        limit_mib: limits.memory_bytes >> 20,
                    },
                    _ if over.is_some() => over.expect("checked"),
                    _ if let Some(what) = host_side_limit(&trap, &limits) => {
                        PluginError::OverLimit {
                            plugin,
                            operation,
                            what,
                        }
                    }
                    // What trapped, and the plugin's own last words (a
                    // panic message) when it left any on stderr.
                    code => PluginError::Trap {
                        plugin,
                        operation,
                        message: {
                            let what = match code {
                                Some(code) => code.to_string(),
                                // Its cause, not the backtrace's heading.
                                None => crate::plugin_log::escaped(
                                    trap.root_cause()
                                        .to_string()
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
}

/// The host-side limit a trap says was reached, in words, if it was one:
/// wasmtime's cap on the data one call hands the host, or the size of a set
/// of HTTP fields.
fn host_side_limit(trap: &wasmtime::Error, limits: &Limits) -> Option<String> {
    let cause = trap.root_cause().to_string();
    if cause.contains("fuel allocated for hostcalls") {
        Some(format!(
            "handed the host more than {} MiB in one call, its memory limit",
            limits.memory_bytes >> 20
        ))
    } else if cause.contains("total size of fields exceeds limit") {
        Some(format!(
            "made a set of HTTP fields larger than {} KiB",
            crate::sandbox::limits::MAX_HTTP_FIELD_BYTES >> 10
        ))
    } else {
        None
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
    version: Version,
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
    let exported = crate::contract::exported_roles(version, &pre);
    let Some(&first) = exported.first() else {
        return Err(not_ours(format!(
            "it exports none of kast's worlds (storage, source, destination of kast:connector@{})",
            crate::contract::CONTRACTS.join(", @")
        )));
    };
    let limits = Limits {
        call_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut store = new_store(runtime, &Grants::default(), &limits, None)?;
    let linker = &runtime.linker;
    let asked = runtime.within(limits.call_timeout, async {
        let exports = Exports::instantiate(version, first, &mut store, component, linker).await?;
        exports.info(&mut store).await
    });
    // Stopped while waiting (no answer) or while running (interrupted).
    let timed_out = match &asked {
        None => true,
        Some(Err(e)) => matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)),
        Some(Ok(_)) => false,
    };
    let info = match asked {
        Some(result) if !timed_out => {
            result.map_err(|e| not_ours(format!("its info() failed: {e:#}")))?
        }
        _ => {
            return Err(not_ours(format!(
                "its info() did not answer within {} s",
                limits.call_timeout.as_secs()
            )));
        }
    };
    let info = PluginInfo::from_wit(info);
    for role in &info.roles {
        if !exported.contains(role) {
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
