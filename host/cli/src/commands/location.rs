//! `kast location add|list|remove`: named locations in the config file
//! (`~/.config/kast/config.toml`, or `--config`), used as `@name`.

use crate::cli::LocationCommand;
use crate::context::{Context, Dirs};
use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// The part of the config file this command owns; other tables are kept.
#[derive(Default, Serialize, Deserialize)]
struct Config {
    #[serde(default)]
    locations: BTreeMap<String, String>,
    #[serde(flatten)]
    rest: BTreeMap<String, toml::Value>,
}

fn load(dirs: &Dirs) -> Result<Config> {
    let file = &dirs.config_file;
    match std::fs::read_to_string(file) {
        Ok(text) => {
            toml::from_str(&text).with_context(|| format!("cannot read {}", file.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

fn save(dirs: &Dirs, config: &Config) -> Result<()> {
    let p = &dirs.config_file;
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(p, toml::to_string(config)?)
        .with_context(|| format!("cannot write {}", p.display()))
}

/// `@name` as the URL saved under that name; anything else as given.
pub fn resolve(dirs: &Dirs, text: &str) -> Result<String> {
    let Some(name) = text.strip_prefix('@') else {
        return Ok(text.to_string());
    };
    load(dirs)?.locations.get(name).cloned().ok_or_else(|| {
        anyhow!("no location named @{name}; `kast location add {name} URL` saves one")
    })
}

pub fn run(ctx: &Context, command: &LocationCommand) -> Result<()> {
    let mut config = load(&ctx.dirs)?;
    match command {
        LocationCommand::Add { name, url } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
            {
                bail!("a location name is letters, digits, '-' and '_'");
            }
            kast_plugins::Location::parse(url)?;
            config.locations.insert(name.clone(), url.clone());
            save(&ctx.dirs, &config)?;
            if !ctx.quiet && !ctx.json {
                println!("saved @{name} = {}", kast_plugins::location::redact(url));
            }
        }
        LocationCommand::List => {
            let shown: std::collections::BTreeMap<&String, String> = config
                .locations
                .iter()
                .map(|(name, url)| (name, kast_plugins::location::redact(url)))
                .collect();
            if ctx.json {
                return ctx.print_json(&json!(shown));
            }
            for (name, url) in &shown {
                println!("@{name}  {url}");
            }
        }
        LocationCommand::Remove { name } => {
            if config.locations.remove(name).is_none() {
                bail!("no location named @{name}");
            }
            save(&ctx.dirs, &config)?;
            if !ctx.quiet && !ctx.json {
                println!("removed @{name}");
            }
        }
    }
    Ok(())
}
