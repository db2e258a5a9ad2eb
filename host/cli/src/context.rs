//! What every command needs: where things live (XDG directories), the
//! store location, the passphrase, the plugin host, and how to report
//! (text, JSON, quiet, progress bars only on a terminal).

use anyhow::{Context as _, Result, anyhow, bail};
use kast_engine::{Error as EngineError, Progress, Store};
use kast_plugins::Host;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The per-user directories kast uses (XDG base directories).
#[derive(Clone)]
pub struct Dirs {
    pub data: PathBuf,
    pub cache: PathBuf,
    /// Local key files (`kast key save-local`).
    pub config: PathBuf,
    /// The config file: saved locations and jobs (`--config`, else
    /// `config.toml` in `config`).
    pub config_file: PathBuf,
}

impl Dirs {
    pub fn from_env() -> Result<Dirs> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let base = |var: &str, fallback: &str| -> Result<PathBuf> {
            match std::env::var_os(var).filter(|v| !v.is_empty()) {
                Some(v) => Ok(PathBuf::from(v).join("kast")),
                None => Ok(home
                    .as_ref()
                    .ok_or_else(|| anyhow!("neither {var} nor HOME is set"))?
                    .join(fallback)
                    .join("kast")),
            }
        };
        let config = base("XDG_CONFIG_HOME", ".config")?;
        Ok(Dirs {
            data: base("XDG_DATA_HOME", ".local/share")?,
            cache: base("XDG_CACHE_HOME", ".cache")?,
            config_file: config.join("config.toml"),
            config,
        })
    }
}

/// Said whenever a store is created: borg and restic say it too.
pub const LOST_PASSPHRASE: &str = "keep the passphrase safe: a lost passphrase means lost backups, \
     nobody can read them without it (`kast key add` adds a second one, `kast key save-local` \
     keeps a key file on this machine)";

/// Shared state of one `kast` run.
pub struct Context {
    pub json: bool,
    pub quiet: bool,
    pub dirs: Dirs,
    store: Option<String>,
    passphrase_file: Option<PathBuf>,
    limits: kast_plugins::Limits,
    /// `--plugin-log`: opened once, shared by every host of this run.
    plugin_log: Option<Arc<kast_plugins::plugin_log::PluginLog>>,
    host: OnceLock<Host>,
}

impl Context {
    pub fn new(cli: &crate::cli::Cli) -> Result<Context> {
        let mut dirs = Dirs::from_env()?;
        if let Some(file) = &cli.config {
            dirs.config_file = file.clone();
        }
        let plugin_log = cli
            .plugin_log
            .as_deref()
            .map(|path| {
                kast_plugins::plugin_log::PluginLog::open(path)
                    .with_context(|| format!("cannot open the plugin log {}", path.display()))
            })
            .transpose()?;
        Ok(Context {
            json: cli.json,
            quiet: cli.quiet,
            dirs,
            store: cli.store.clone(),
            passphrase_file: cli.passphrase_file.clone(),
            limits: kast_plugins::Limits {
                memory_bytes: cli.plugin_memory_mib.max(16) << 20,
                call_timeout: std::time::Duration::from_secs(cli.plugin_timeout.max(1)),
            },
            plugin_log,
            host: OnceLock::new(),
        })
    }

    /// The same settings for another store (a job's), with its own
    /// passphrase file when given.
    pub fn for_store(&self, store: &str, passphrase_file: Option<PathBuf>) -> Context {
        Context {
            json: self.json,
            quiet: self.quiet,
            dirs: self.dirs.clone(),
            store: Some(store.to_string()),
            passphrase_file: passphrase_file.or_else(|| self.passphrase_file.clone()),
            limits: self.limits,
            plugin_log: self.plugin_log.clone(),
            host: OnceLock::new(),
        }
    }

    /// The plugin host, started on first use.
    pub fn host(&self) -> Result<&Host> {
        if let Some(host) = self.host.get() {
            return Ok(host);
        }
        let host = self.new_host()?;
        Ok(self.host.get_or_init(|| host))
    }

    /// A plugin host of its own, for a long-running command (`kast ui`)
    /// that hands it to other threads.
    pub fn new_host(&self) -> Result<Host> {
        let mut host = Host::new(
            Some(self.dirs.cache.join("plugins")),
            Some(self.dirs.data.join("plugins")),
        )?;
        host.set_limits(self.limits);
        // Loud even under --quiet: a server nobody checks is not a detail.
        host.set_warnings(|text| {
            eprintln!("kast: WARNING: {}", crate::views::shown(text.as_bytes()))
        });
        if let Some(log) = &self.plugin_log {
            host.set_plugin_log(log.clone());
        }
        Ok(host)
    }

    /// Resolves `@name` through the saved locations; anything else is as given.
    pub fn location(&self, text: &str) -> Result<String> {
        crate::commands::location::resolve(&self.dirs, text)
    }

    /// The store location and whether it is the default one.
    pub fn store_location(&self) -> Result<(String, bool)> {
        match &self.store {
            Some(s) => Ok((self.location(s)?, false)),
            None => Ok((self.dirs.data.join("store").display().to_string(), true)),
        }
    }

    fn cache_root(&self) -> PathBuf {
        self.dirs.cache.clone()
    }

    /// The passphrase from the file option, `KAST_PASSPHRASE`, or a prompt
    /// (asked twice when `confirm`).
    pub fn passphrase(&self, confirm: bool) -> Result<Vec<u8>> {
        read_secret(
            self.passphrase_file.as_deref(),
            "KAST_PASSPHRASE",
            "passphrase",
            confirm,
        )
    }

    /// Where the local key file of a store lives (see `kast key save-local`).
    pub fn local_key_path(&self, store_id: &str) -> PathBuf {
        self.dirs
            .config
            .join("keys")
            .join(format!("{store_id}.key"))
    }

    /// Opens the store: with its local key file when the user saved one,
    /// else with the passphrase. Errors say what to do.
    pub fn open_store(&self) -> Result<Store> {
        let (location, _) = self.store_location()?;
        self.open_store_at(&location, None)
    }

    /// Opens the store at `location`, with `passphrase` if given, else the
    /// local key file, else the usual passphrase sources.
    pub fn open_store_at(&self, location: &str, passphrase: Option<&[u8]>) -> Result<Store> {
        let store = self.unlock_store_at(location, passphrase)?;
        self.check_pack_size(store.config().pack_target)?;
        Ok(store)
    }

    /// The limits every plugin instance runs under (`--plugin-memory-mib`,
    /// `--plugin-timeout`).
    pub fn plugin_limits(&self) -> kast_plugins::Limits {
        self.limits
    }

    /// Refuses packs a storage plugin could not be handed whole under the
    /// plugin memory limit: said up front, before any work, instead of a
    /// backup failing at its first pack.
    pub fn check_pack_size(&self, pack_target: u32) -> Result<()> {
        // A pack closes once it reaches its target, so it may pass it by a
        // chunk or so.
        let largest = u64::from(pack_target) + (8 << 20);
        let allowed = self.limits.largest_object() as u64;
        if largest > allowed {
            bail!(
                "packs of {} MiB cannot be handed to a storage plugin limited to {} MiB of memory \
                 (a plugin gets a quarter of its memory for one object): use --pack-size-mib {} \
                 or less, or give plugins --plugin-memory-mib {}",
                pack_target >> 20,
                self.limits.memory_bytes >> 20,
                (allowed.saturating_sub(8 << 20) >> 20).max(1),
                (largest * 4).div_ceil(1 << 20),
            );
        }
        Ok(())
    }

    fn unlock_store_at(&self, location: &str, passphrase: Option<&[u8]>) -> Result<Store> {
        let url = location;
        // Every message shows the location with its secrets redacted.
        let location = &kast_plugins::location::redact(url);
        let storage = self.host()?.storage(url).map_err(|e| match e {
            // A local store path that does not exist: nothing to open.
            kast_plugins::PluginError::BadLocation { .. }
                if !url.contains("://") || url.starts_with("fs://") =>
            {
                anyhow!("no store at {location}; create one with `kast create`")
            }
            other => anyhow!(other),
        })?;
        let passphrase = match passphrase {
            Some(p) => p.to_vec(),
            None => {
                let id = Store::peek_id(&*storage).map_err(|e| match e {
                    EngineError::NoStore(_) => {
                        anyhow!("no store at {location}; create one with `kast create`")
                    }
                    other => anyhow!(other).context(format!("cannot open store {location}")),
                })?;
                let key_file = self.local_key_path(&id);
                if let Ok(text) = std::fs::read_to_string(&key_file) {
                    let key = kast_engine::keys::LocalKey::from_text(&text)
                        .ok_or_else(|| anyhow!("{} is not a kast key file", key_file.display()))?;
                    return Store::open_with_local_key(storage, key, Some(self.cache_root())).map_err(|e| {
                        anyhow!(e).context(format!(
                            "the local key file {} does not open {location}; remove it with `kast key forget-local`",
                            key_file.display()
                        ))
                    });
                }
                self.passphrase(false)?
            }
        };
        Store::open(storage, &passphrase, Some(self.cache_root())).map_err(|e| match e {
            EngineError::NoStore(_) => {
                anyhow!("no store at {location}; create one with `kast create`")
            }
            EngineError::WrongPassphrase => anyhow!("wrong passphrase for store {location}"),
            other => anyhow!(other).context(format!("cannot open store {location}")),
        })
    }

    /// Opens the store; the default store is created on first use.
    pub fn open_or_create_default(&self) -> Result<Store> {
        let (location, default) = self.store_location()?;
        if default && !Path::new(&location).join("config").exists() {
            // The default store is a local path: no secret to hide.
            let storage = self.host()?.new_storage(&location)?;
            {
                let passphrase = self.passphrase(true)?;
                let store = Store::create(
                    storage,
                    &passphrase,
                    &Default::default(),
                    Some(self.cache_root()),
                )?;
                self.note(&format!("created a new store at {location}"));
                self.note(LOST_PASSPHRASE);
                return Ok(store);
            }
        }
        self.open_store()
    }

    /// A line for the user on standard error (not in quiet or JSON mode).
    pub fn note(&self, text: &str) {
        if !self.quiet && !self.json {
            eprintln!("{text}");
        }
    }

    /// A warning: always shown, unless quiet.
    pub fn warn(&self, text: &str) {
        if !self.quiet {
            eprintln!("warning: {}", crate::views::shown(text.as_bytes()));
        }
    }

    /// A progress display for long work, when standard error is a terminal.
    pub fn progress(&self, what: &str, total: Option<u64>) -> Arc<dyn Progress> {
        if self.quiet || self.json || !std::io::stderr().is_terminal() {
            return Arc::new(kast_engine::progress::Silent);
        }
        Arc::new(crate::progress::Bar::new(what, total))
    }

    /// Prints a JSON document.
    pub fn print_json(&self, value: &serde_json::Value) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }
}

/// Reads a secret from a file, an environment variable, or the terminal.
pub fn read_secret(file: Option<&Path>, env: &str, what: &str, confirm: bool) -> Result<Vec<u8>> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the {what} file {}", file.display()))?;
        let line = text.lines().next().unwrap_or("");
        if line.is_empty() {
            bail!("the {what} file {} is empty", file.display());
        }
        return Ok(line.as_bytes().to_vec());
    }
    if let Ok(value) = std::env::var(env) {
        if value.is_empty() {
            bail!("{env} is set but empty");
        }
        return Ok(value.into_bytes());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no {what}: set {env}, use --passphrase-file, or run in a terminal to be asked");
    }
    let first = rpassword::prompt_password(format!("{what}: "))?;
    if first.is_empty() {
        bail!("an empty {what} is not allowed");
    }
    if confirm {
        let second = rpassword::prompt_password(format!("{what} again: "))?;
        if first != second {
            bail!("the two {what}s differ");
        }
    }
    Ok(first.into_bytes())
}
