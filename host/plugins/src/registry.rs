//! Which plugins exist: the built-in ones embedded in the binary, and the
//! ones a user installed (`<data dir>/plugins/NAME.wasm` with `NAME.json`
//! beside it). Installing validates the component and precompiles it.

use crate::bindings::types;
use crate::error::PluginError;
use crate::runtime::{Plugin, Runtime};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A part a connector plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Keeps a store's objects.
    Storage,
    /// Is read by a backup.
    Source,
    /// Is written by a restore.
    Destination,
}

impl Role {
    /// The role's name in the contract and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Storage => "storage",
            Role::Source => "source",
            Role::Destination => "destination",
        }
    }
}

/// Who a plugin says it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// The plugin's name, unique in a registry.
    pub name: String,
    /// Its own version, shown by `plugin list`.
    pub version: String,
    /// The location schemes it serves (`sftp`, `s3`).
    pub schemes: Vec<String>,
    /// The parts it can play.
    pub roles: Vec<Role>,
    /// One line for `plugin list`.
    pub description: String,
}

impl PluginInfo {
    pub(crate) fn from_wit(info: types::PluginInfo) -> Self {
        PluginInfo {
            // Shown to the user: nothing a plugin says may drive a terminal.
            name: info.name,
            version: crate::plugin_log::plain(&info.version),
            schemes: info
                .schemes
                .into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            roles: info
                .roles
                .into_iter()
                .map(|r| match r {
                    types::Role::Storage => Role::Storage,
                    types::Role::Source => Role::Source,
                    types::Role::Destination => Role::Destination,
                })
                .collect(),
            description: crate::plugin_log::plain(&info.description),
        }
    }
}

/// The built-in plugins, compiled into the binary.
const BUILTIN: &[(&str, &[u8])] = &[
    (
        "fs",
        include_bytes!(concat!(
            env!("KAST_PLUGIN_WASM_DIR"),
            "/kast_plugin_fs.wasm"
        )),
    ),
    (
        "ftp",
        include_bytes!(concat!(
            env!("KAST_PLUGIN_WASM_DIR"),
            "/kast_plugin_ftp.wasm"
        )),
    ),
    (
        "http",
        include_bytes!(concat!(
            env!("KAST_PLUGIN_WASM_DIR"),
            "/kast_plugin_http.wasm"
        )),
    ),
    (
        "s3",
        include_bytes!(concat!(
            env!("KAST_PLUGIN_WASM_DIR"),
            "/kast_plugin_s3.wasm"
        )),
    ),
    (
        "sftp",
        include_bytes!(concat!(
            env!("KAST_PLUGIN_WASM_DIR"),
            "/kast_plugin_sftp.wasm"
        )),
    ),
];

/// A plugin as `plugin list` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Listed {
    /// What the plugin says of itself.
    #[serde(flatten)]
    pub info: PluginInfo,
    /// The contract version it was built against (`0.1.0` for a plugin
    /// recorded before kast said).
    #[serde(default = "crate::contract::first_contract")]
    pub contract: String,
    /// Embedded in the binary (cannot be removed, only shadowed).
    pub builtin: bool,
    /// BLAKE3 of the wasm.
    pub hash: String,
    /// Size of the wasm in bytes.
    pub size: u64,
}

/// The most schemes one plugin may claim: every one is checked against
/// every installed plugin's, and shown in `plugin list`.
const MAX_SCHEMES: usize = 16;

/// Why `scheme` cannot name a connector, if it cannot: RFC 3986's syntax
/// (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`, kept lower case, as
/// locations are read), and not a bare web or file scheme, which names a
/// transport rather than a service (`dav+https`, `s3+http` do).
pub fn scheme_problem(scheme: &str) -> Option<&'static str> {
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    let rest_ok = bytes
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.'));
    if !first_ok || !rest_ok || scheme.len() > 64 {
        return Some(
            "is not a URL scheme: a lower-case letter, then letters, digits, '+', '-' or '.' (RFC 3986)",
        );
    }
    if matches!(scheme, "http" | "https" | "file") {
        return Some("names a transport, not a service: kast reserves http, https and file");
    }
    None
}

/// Built-in and installed plugins, loaded on first use.
pub struct Registry {
    runtime: Arc<Runtime>,
    dir: Option<PathBuf>,
    loaded: std::sync::Mutex<Vec<Arc<Plugin>>>,
}

impl Registry {
    /// `dir` holds installed plugins; `None` offers only the built-in ones.
    pub fn new(runtime: Arc<Runtime>, dir: Option<PathBuf>) -> Registry {
        Registry {
            runtime,
            dir,
            loaded: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The wasm engine plugins run on, shared so compiled code is cached once.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn registry_err(path: &Path, e: std::io::Error) -> PluginError {
        PluginError::Registry {
            path: path.display().to_string(),
            source: e,
        }
    }

    /// The plugin serving `scheme`.
    pub fn for_scheme(&self, scheme: &str) -> Result<Arc<Plugin>, PluginError> {
        let scheme = scheme.to_ascii_lowercase();
        if let Some(p) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|p| p.info.schemes.contains(&scheme))
        {
            return Ok(p.clone());
        }
        for (name, wasm) in BUILTIN {
            let plugin = self.load_builtin(name, wasm)?;
            if plugin.info.schemes.contains(&scheme) {
                return Ok(plugin);
            }
        }
        let claims: Vec<Listed> = self
            .installed()?
            .into_iter()
            .filter(|l| l.info.schemes.contains(&scheme))
            .collect();
        match claims.as_slice() {
            [] => Err(PluginError::UnknownScheme(scheme)),
            [one] => self.load_installed(&one.info.name),
            // Left by an older kast, which let this happen: never a guess.
            [first, second, ..] => Err(PluginError::Misbehaved {
                plugin: first.info.name.clone(),
                message: format!(
                    "plugins {} and {} both claim {scheme}://; remove one with `kast plugin remove`",
                    first.info.name, second.info.name
                ),
            }),
        }
    }

    fn remember(&self, plugin: Plugin) -> Arc<Plugin> {
        let plugin = Arc::new(plugin);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(plugin.clone());
        plugin
    }

    fn load_builtin(&self, name: &str, wasm: &[u8]) -> Result<Arc<Plugin>, PluginError> {
        if let Some(p) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|p| p.info.name == name)
        {
            return Ok(p.clone());
        }
        let mut plugin = self
            .runtime
            .load(wasm, &format!("built-in plugin {name}"))?;
        plugin.builtin = true;
        Ok(self.remember(plugin))
    }

    fn load_installed(&self, name: &str) -> Result<Arc<Plugin>, PluginError> {
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| PluginError::UnknownScheme(name.to_string()))?;
        let path = dir.join(format!("{name}.wasm"));
        let wasm = std::fs::read(&path).map_err(|e| Self::registry_err(&path, e))?;
        let plugin = self.runtime.load(&wasm, &path.display().to_string())?;
        Ok(self.remember(plugin))
    }

    /// Every plugin: built-in first, then installed.
    pub fn list(&self) -> Result<Vec<Listed>, PluginError> {
        let mut out = Vec::new();
        for (name, wasm) in BUILTIN {
            let plugin = self.load_builtin(name, wasm)?;
            out.push(Listed {
                info: plugin.info.clone(),
                contract: plugin.contract.clone(),
                builtin: true,
                hash: plugin.hash.clone(),
                size: wasm.len() as u64,
            });
        }
        out.extend(self.installed()?);
        Ok(out)
    }

    fn installed(&self) -> Result<Vec<Listed>, PluginError> {
        let Some(dir) = &self.dir else {
            return Ok(Vec::new());
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::registry_err(dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "json") {
                let bytes = std::fs::read(&path).map_err(|e| Self::registry_err(&path, e))?;
                if let Ok(mut listed) = serde_json::from_slice::<Listed>(&bytes) {
                    // Recorded by a kast that did not escape them yet.
                    let info = &mut listed.info;
                    info.version = crate::plugin_log::escaped(info.version.as_bytes());
                    info.description = crate::plugin_log::escaped(info.description.as_bytes());
                    out.push(listed);
                }
            }
        }
        out.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        Ok(out)
    }

    /// Validates a `.wasm` (a component exporting one of kast's worlds),
    /// precompiles it and copies it into the plugin directory. A name or a
    /// scheme an installed plugin has is refused, naming it, unless
    /// `replace`: then the plugins in the way are removed (and returned).
    pub fn install(
        &self,
        wasm_path: &Path,
        replace: bool,
    ) -> Result<(Listed, Vec<String>), PluginError> {
        let dir = self.dir.as_ref().ok_or_else(|| PluginError::Registry {
            path: "(none)".into(),
            source: std::io::Error::other("no plugin directory configured"),
        })?;
        let wasm = std::fs::read(wasm_path).map_err(|e| Self::registry_err(wasm_path, e))?;
        let plugin = self.runtime.load(&wasm, &wasm_path.display().to_string())?;
        let info = plugin.info.clone();
        let bad_name = info.name.is_empty()
            || !info
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if bad_name {
            return Err(PluginError::NotAConnector {
                path: wasm_path.display().to_string(),
                why: format!(
                    "its name {:?} is not a plain name (letters, digits, '-', '_')",
                    info.name
                ),
            });
        }
        let refuse = |why: String| PluginError::NotAConnector {
            path: wasm_path.display().to_string(),
            why,
        };
        if info.schemes.is_empty() {
            return Err(refuse("it claims no scheme".into()));
        }
        if info.schemes.len() > MAX_SCHEMES {
            return Err(refuse(format!(
                "it claims {} schemes; a plugin may claim {MAX_SCHEMES}",
                info.schemes.len()
            )));
        }
        for scheme in &info.schemes {
            if let Some(why) = scheme_problem(scheme) {
                return Err(refuse(format!("its scheme {scheme:?} {why}")));
            }
        }
        for builtin in BUILTIN.iter().map(|(n, w)| self.load_builtin(n, w)) {
            let builtin = builtin?;
            let clash = builtin.info.name == info.name
                || info
                    .schemes
                    .iter()
                    .any(|s| builtin.info.schemes.contains(s));
            if clash {
                return Err(PluginError::NotAConnector {
                    path: wasm_path.display().to_string(),
                    why: format!("it would shadow the built-in plugin {}", builtin.info.name),
                });
            }
        }
        let in_the_way: Vec<Listed> = self
            .installed()?
            .into_iter()
            .filter(|other| {
                other.info.name == info.name
                    || info.schemes.iter().any(|s| other.info.schemes.contains(s))
            })
            .collect();
        if let Some(other) = in_the_way.first()
            && !replace
        {
            let what = if other.info.name == info.name {
                "its name".to_string()
            } else {
                let shared: Vec<&str> = info
                    .schemes
                    .iter()
                    .filter(|s| other.info.schemes.contains(s))
                    .map(|s| s.as_str())
                    .collect();
                format!("the scheme {}://", shared.join(":// and "))
            };
            return Err(refuse(format!(
                "{what} is taken by the installed plugin {} {}; \
                 `kast plugin install --replace` replaces it on purpose",
                other.info.name, other.info.version
            )));
        }
        for other in &in_the_way {
            self.remove(&other.info.name)?;
        }
        let replaced = in_the_way.into_iter().map(|l| l.info.name).collect();
        std::fs::create_dir_all(dir).map_err(|e| Self::registry_err(dir, e))?;
        let listed = Listed {
            info,
            contract: plugin.contract.clone(),
            builtin: false,
            hash: plugin.hash.clone(),
            size: wasm.len() as u64,
        };
        let target = dir.join(format!("{}.wasm", listed.info.name));
        std::fs::write(&target, &wasm).map_err(|e| Self::registry_err(&target, e))?;
        let meta = dir.join(format!("{}.json", listed.info.name));
        std::fs::write(
            &meta,
            serde_json::to_vec_pretty(&listed).expect("serializes"),
        )
        .map_err(|e| Self::registry_err(&meta, e))?;
        Ok((listed, replaced))
    }

    /// Removes an installed plugin.
    pub fn remove(&self, name: &str) -> Result<(), PluginError> {
        let Some(dir) = &self.dir else {
            return Err(PluginError::UnknownScheme(name.to_string()));
        };
        if !self.installed()?.iter().any(|l| l.info.name == name) {
            return Err(PluginError::Registry {
                path: dir.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no installed plugin named {name}"),
                ),
            });
        }
        for ext in ["wasm", "json"] {
            let path = dir.join(format!("{name}.{ext}"));
            std::fs::remove_file(&path).map_err(|e| Self::registry_err(&path, e))?;
        }
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| p.info.name != name);
        Ok(())
    }
}
