//! The one place that knows contract versions exist. Each released version
//! of `kast:connector` has its own bindings ([`crate::bindings`]); this
//! module instantiates a component through the bindings of the version it
//! was built against and answers the host's calls, which are in the newest
//! version's terms, through them. The adapters above (`connectors.rs`) and
//! everything above those never see a version.
//!
//! 0.1.0 is adapted to 0.2.0's calls like this: a put, a get or a listing
//! is one call (0.2.0 splits them in parts), file handles are numbers, and
//! reads go in order only (0.1.0 cannot seek, so an instance is restarted
//! only between files).

mod destination;
mod source;
mod storage;

use crate::bindings::{types, v0_1, v0_2};
use crate::error::PluginError;
use crate::instance::{CallResult, Instance};
use crate::registry::Role;
use crate::sandbox::host_state::HostState;
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker, ResourceAny};

/// The contract versions this kast binds (a folder each in `wit/`), oldest first.
pub const CONTRACTS: &[&str] = &["0.1.0", "0.2.0"];

/// The contract assumed for a plugin recorded before versions were.
pub(crate) fn first_contract() -> String {
    CONTRACTS[0].to_string()
}

/// One released version of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V0_1,
    V0_2,
}

impl Version {
    /// The version a package version string names, if this kast binds it.
    pub(crate) fn parse(version: &str) -> Option<Version> {
        match version {
            "0.1.0" => Some(Version::V0_1),
            "0.2.0" => Some(Version::V0_2),
            _ => None,
        }
    }

    /// Whether a source's files can be read from any offset, so an
    /// instance can be restarted (or a piece retried) inside a file.
    pub(crate) fn reads_at_offsets(self) -> bool {
        self != Version::V0_1
    }
}

/// Pieces of files and objects cross the boundary at most this large:
/// large enough that a call's cost vanishes, small enough that the
/// plugin's memory (which never shrinks) stays small.
pub(crate) const PIECE: usize = 1 << 20;

/// Listings cross this many entries per call.
const PAGE: u32 = 4096;

/// The most entries one listing may return under 0.1 (where the host's
/// memory is bounded by what one call may hand over anyway).
const MAX_LISTED: usize = 1 << 24;

/// About what one listed item costs the host to keep, for the bound on a
/// whole listing: the host keeps a listing in memory, so a plugin that
/// never ends one is stopped once it has listed as much as its own memory
/// limit (what 0.1 allowed in one call).
pub(crate) trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for types::ObjectInfo {
    fn weight(&self) -> usize {
        self.name.len() + 48
    }
}

impl Weight for types::Entry {
    fn weight(&self) -> usize {
        let xattrs: usize = self
            .meta
            .xattrs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum();
        self.name.len() + self.symlink_target.as_ref().map_or(0, Vec::len) + xattrs + 128
    }
}

/// The exports of an instance, as the world of its role and version.
pub(crate) enum Exports {
    Storage01(v0_1::storage::Storage),
    Source01(v0_1::source::Source),
    Destination01(v0_1::destination::Destination),
    Storage02(v0_2::storage::Storage),
    Source02(v0_2::source::Source),
    Destination02(v0_2::destination::Destination),
}

impl Exports {
    /// Instantiates `component` as the world of `role` in `version`.
    pub(crate) async fn instantiate(
        version: Version,
        role: Role,
        store: &mut Store<HostState>,
        component: &Component,
        linker: &Linker<HostState>,
    ) -> wasmtime::Result<Exports> {
        use Exports as E;
        Ok(match (version, role) {
            (Version::V0_1, Role::Storage) => E::Storage01(
                v0_1::storage::Storage::instantiate_async(store, component, linker).await?,
            ),
            (Version::V0_1, Role::Source) => E::Source01(
                v0_1::source::Source::instantiate_async(store, component, linker).await?,
            ),
            (Version::V0_1, Role::Destination) => E::Destination01(
                v0_1::destination::Destination::instantiate_async(store, component, linker).await?,
            ),
            (Version::V0_2, Role::Storage) => E::Storage02(
                v0_2::storage::Storage::instantiate_async(store, component, linker).await?,
            ),
            (Version::V0_2, Role::Source) => E::Source02(
                v0_2::source::Source::instantiate_async(store, component, linker).await?,
            ),
            (Version::V0_2, Role::Destination) => E::Destination02(
                v0_2::destination::Destination::instantiate_async(store, component, linker).await?,
            ),
        })
    }

    /// Who the plugin says it is.
    pub(crate) async fn info(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<types::PluginInfo> {
        match self {
            Exports::Storage01(b) => b.kast_connector_plugin().call_info(store).await,
            Exports::Source01(b) => b.kast_connector_plugin().call_info(store).await,
            Exports::Destination01(b) => b.kast_connector_plugin().call_info(store).await,
            Exports::Storage02(b) => b.kast_connector_plugin().call_info(store).await,
            Exports::Source02(b) => b.kast_connector_plugin().call_info(store).await,
            Exports::Destination02(b) => b.kast_connector_plugin().call_info(store).await,
        }
    }

    /// Opens the location the instance serves.
    pub(crate) async fn open(
        &self,
        store: &mut Store<HostState>,
        location: &types::Location,
    ) -> CallResult<()> {
        match self {
            Exports::Storage01(b) => {
                b.kast_connector_object_store()
                    .call_open(store, location)
                    .await
            }
            Exports::Source01(b) => {
                b.kast_connector_tree_source()
                    .call_open(store, location)
                    .await
            }
            Exports::Destination01(b) => {
                b.kast_connector_tree_destination()
                    .call_open(store, location)
                    .await
            }
            Exports::Storage02(b) => {
                b.kast_connector_object_store()
                    .call_open(store, location)
                    .await
            }
            Exports::Source02(b) => {
                b.kast_connector_tree_source()
                    .call_open(store, location)
                    .await
            }
            Exports::Destination02(b) => {
                b.kast_connector_tree_destination()
                    .call_open(store, location)
                    .await
            }
        }
    }
}

/// The roles whose world `pre` exports in `version`.
pub(crate) fn exported_roles(version: Version, pre: &InstancePre<HostState>) -> Vec<Role> {
    let exported = match version {
        Version::V0_1 => [
            v0_1::storage::StoragePre::new(pre.clone()).is_ok(),
            v0_1::source::SourcePre::new(pre.clone()).is_ok(),
            v0_1::destination::DestinationPre::new(pre.clone()).is_ok(),
        ],
        Version::V0_2 => [
            v0_2::storage::StoragePre::new(pre.clone()).is_ok(),
            v0_2::source::SourcePre::new(pre.clone()).is_ok(),
            v0_2::destination::DestinationPre::new(pre.clone()).is_ok(),
        ],
    };
    [Role::Storage, Role::Source, Role::Destination]
        .into_iter()
        .zip(exported)
        .filter_map(|(role, ok)| ok.then_some(role))
        .collect()
}

/// Something a plugin holds open for the host (a file, an upload, a
/// listing): meaningful only to the instance that opened it, so it carries
/// that instance's generation and is refused by any later one.
#[derive(Clone, Copy)]
pub(crate) struct Handle {
    generation: u64,
    held: Held,
}

#[derive(Clone, Copy)]
enum Held {
    /// 0.1.0's handles.
    Number(u64),
    /// 0.2.0's resources.
    Resource(ResourceAny),
}

impl Handle {
    fn number(self) -> u64 {
        match self.held {
            Held::Number(n) => n,
            Held::Resource(_) => unreachable!("0.1 handles are numbers"),
        }
    }

    fn resource(self) -> ResourceAny {
        match self.held {
            Held::Resource(r) => r,
            Held::Number(_) => unreachable!("0.2 handles are resources"),
        }
    }
}

impl Instance {
    fn handle(&self, held: Held) -> Handle {
        Handle {
            generation: self.generation(),
            held,
        }
    }

    /// Whether what `handle` names is still open (its instance still live).
    pub(crate) fn holds(&self, handle: Handle) -> bool {
        self.is_live(handle.generation)
    }

    /// Runs a call on what `handle` names, in the instance that opened it.
    fn call_on<R>(
        &mut self,
        handle: Handle,
        operation: &'static str,
        f: impl AsyncFnOnce(&mut Store<HostState>, &Exports, Handle) -> CallResult<R>,
    ) -> Result<R, PluginError> {
        if !self.is_live(handle.generation) {
            return Err(PluginError::Misbehaved {
                plugin: self.plugin_name().to_string(),
                message: format!(
                    "{operation}: the instance was restarted after a failure, and what it had \
                     open went with it"
                ),
            });
        }
        self.call(operation, async move |store, exports| {
            f(store, exports, handle).await
        })
    }

    /// Lets go of what `handle` names (a 0.2 resource is dropped, which
    /// runs the plugin's destructor); nothing to do once its instance is gone.
    pub(crate) fn release(&mut self, handle: Handle) {
        if !self.is_live(handle.generation) {
            return;
        }
        if let Held::Resource(resource) = handle.held {
            let _ = self.call("close", async move |store, _| {
                resource.resource_drop_async(store).await.map(Ok)
            });
        }
    }

    /// Pages through a listing until it ends.
    fn drain<T: Weight>(
        &mut self,
        listing: Handle,
        operation: &'static str,
        next: impl AsyncFn(&mut Store<HostState>, &Exports, ResourceAny, u32) -> CallResult<Vec<T>>,
    ) -> Result<Vec<T>, PluginError> {
        let mut all = Vec::new();
        let mut held = 0usize;
        let budget = self.limits().memory_bytes;
        let result = loop {
            let page = match self.call_on(listing, operation, async |s, e, h| {
                next(s, e, h.resource(), PAGE).await
            }) {
                Ok(page) => page,
                Err(e) => break Err(e),
            };
            if page.is_empty() {
                break Ok(all);
            }
            if page.len() > PAGE as usize {
                break Err(self.misbehaved(format!(
                    "{operation} returned a page of {} entries, {PAGE} were asked for",
                    page.len()
                )));
            }
            held += page.iter().map(Weight::weight).sum::<usize>();
            all.extend(page);
            if held > budget {
                break Err(PluginError::OverLimit {
                    plugin: self.plugin_name().to_string(),
                    operation,
                    what: format!(
                        "listed more than {} MiB in one listing, its memory limit",
                        budget >> 20
                    ),
                });
            }
        };
        self.release(listing);
        result
    }

    fn misbehaved(&self, message: String) -> PluginError {
        PluginError::Misbehaved {
            plugin: self.plugin_name().to_string(),
            message,
        }
    }
}
