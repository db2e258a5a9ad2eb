//! # kast-plugins
//!
//! The connector host: loads WebAssembly connector components (the
//! built-in ones embedded in the binary, and the ones a user installed),
//! runs each in a sandbox with exactly the grants its location implies
//! ([`sandbox`]), under a memory limit and a per-call deadline, and adapts it
//! to the engine's `Storage`, `Source` and `Destination` traits.
//!
//! ```no_run
//! # fn main() -> Result<(), kast_plugins::PluginError> {
//! let host = kast_plugins::Host::new(None, None)?;
//! let storage = host.storage("fs:///srv/kast-store")?;
//! # Ok(()) }
//! ```

mod bindings;
mod connectors;
mod contract;
pub mod error;
mod fetch_ahead;
mod http_client;
mod instance;
mod list_ahead;
mod local_fs;
pub mod location;
mod options;
pub mod plugin_log;
mod prefetch;
pub mod registry;
mod runtime;
pub mod sandbox;
mod source_reader;
mod xattrs;

pub use connectors::{PluginDestination, PluginSource, PluginStorage};
pub use contract::CONTRACTS;
pub use error::PluginError;
/// The TLS settings plugins' HTTPS requests use, for the host's own (job
/// webhooks): Mozilla roots, or one private CA.
pub use http_client::tls_config;
pub use location::Location;
pub use registry::{Listed, PluginInfo, Registry, Role};
pub use runtime::Runtime;
pub use sandbox::{Grants, HttpEndpoint, Limits, TcpGrant};

use std::path::PathBuf;
use std::sync::Arc;

/// Where this build compiled the plugins (the built-in ones are embedded
/// from there), so tests find the test-only ones, which are never embedded.
#[doc(hidden)]
pub const BUILT_PLUGINS_DIR: &str = env!("KAST_PLUGIN_WASM_DIR");

/// Everything needed to turn a location into a connector.
pub struct Host {
    registry: Registry,
    limits: Limits,
    log: Option<Arc<plugin_log::PluginLog>>,
    warn: Box<dyn Fn(&str) + Send + Sync>,
}

impl Host {
    /// `cache_dir` keeps precompiled plugins; `plugin_dir` holds installed ones.
    pub fn new(
        cache_dir: Option<PathBuf>,
        plugin_dir: Option<PathBuf>,
    ) -> Result<Host, PluginError> {
        let runtime = Runtime::new(cache_dir)?;
        Ok(Host {
            registry: Registry::new(runtime, plugin_dir),
            limits: Limits::default(),
            log: None,
            warn: Box::new(|_| {}),
        })
    }

    /// Where warnings about a location go (a server whose identity will not
    /// be checked); the CLI prints them. Unset, they are dropped: whoever
    /// embeds the host and lets such options through must show them.
    pub fn set_warnings(&mut self, warn: impl Fn(&str) + Send + Sync + 'static) {
        self.warn = Box::new(warn);
    }

    /// Sends what instances opened from now on print to `log`.
    pub fn set_plugin_log(&mut self, log: Arc<plugin_log::PluginLog>) {
        self.log = Some(log);
    }

    /// Changes the memory and time limits of instances opened from now on.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The installed plugins, for `plugin list`, `install` and `remove`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn open(
        &self,
        text: &str,
        role: Role,
        creating: bool,
    ) -> Result<(Arc<instance::InstanceConfig>, String), PluginError> {
        let location = Location::parse(text)?;
        if location.option("insecure_accept_any_host_key") == Some("true") {
            // Said every time: this is for tests, never for real data.
            (self.warn)(&format!(
                "insecure_accept_any_host_key=true: the server's identity is NOT checked for \
                 {}; anyone on the network path can impersonate it",
                location.host.as_deref().unwrap_or("this location")
            ));
        }
        let plugin = self.registry.for_scheme(&location.scheme)?;
        let (mut grants, address) = sandbox::grants_for(&location, role, creating)?;
        let options = options::plugin_options(&location)?;
        if let Some(endpoint) = &mut grants.http {
            // The host does the TLS, so the host trusts `ca=`.
            endpoint.ca_pem = options
                .iter()
                .find(|(k, _)| k == "ca")
                .map(|(_, pem)| pem.clone());
        }
        let wit = bindings::types::Location {
            url: location.url.clone(),
            options,
            address,
        };
        let secrets = location.secrets(&wit.options);
        let config = Arc::new(instance::InstanceConfig {
            runtime: self.registry.runtime().clone(),
            plugin,
            role,
            location: wit,
            grants,
            limits: self.limits,
            secrets,
            log: self.log.clone(),
        });
        Ok((config, location.shown))
    }

    /// The storage at `location` (a URL or a local path). Files named in
    /// its options are read here, not by the plugin (see `options.rs`).
    pub fn storage(&self, location: &str) -> Result<Arc<PluginStorage>, PluginError> {
        let (config, url) = self.open(location, Role::Storage, false)?;
        Ok(Arc::new(PluginStorage::new(config, url)?))
    }

    /// The storage at `location`, for creating a new store there (a local
    /// directory is created if missing).
    pub fn new_storage(&self, location: &str) -> Result<Arc<PluginStorage>, PluginError> {
        let (config, url) = self.open(location, Role::Storage, true)?;
        Ok(Arc::new(PluginStorage::new(config, url)?))
    }

    /// The source at `location`.
    pub fn source(&self, location: &str) -> Result<PluginSource, PluginError> {
        let (config, url) = self.open(location, Role::Source, false)?;
        PluginSource::new(config, url)
    }

    /// The destination at `location`.
    pub fn destination(&self, location: &str) -> Result<PluginDestination, PluginError> {
        let (config, url) = self.open(location, Role::Destination, false)?;
        let look = match config.plugin.info.roles.contains(&Role::Source) {
            true => Some(self.open(location, Role::Source, false)?.0),
            false => None,
        };
        PluginDestination::new(config, url, look)
    }
}
