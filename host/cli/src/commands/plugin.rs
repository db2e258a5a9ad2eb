//! `kast plugin install|list|remove|info|sdk`.

use crate::cli::PluginCommand;
use crate::context::Context;
use crate::table::{Align, Table};
use crate::views;
use anyhow::{Context as _, Result, anyhow, bail};
use kast_plugins::Role;
use serde_json::json;
use std::path::Path;

fn roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SDK crate as this kast was built with it, so a plugin author needs
/// the binary only, not kast's sources: (path in the crate, contents).
const SDK: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../../../sdk/Cargo.toml")),
    ("README.md", include_str!("../../../../sdk/README.md")),
    ("src/lib.rs", include_str!("../../../../sdk/src/lib.rs")),
    (
        "src/connector.rs",
        include_str!("../../../../sdk/src/connector.rs"),
    ),
    ("src/url.rs", include_str!("../../../../sdk/src/url.rs")),
    ("src/files.rs", include_str!("../../../../sdk/src/files.rs")),
    (
        "src/example.md",
        include_str!("../../../../sdk/src/example.md"),
    ),
    (
        "wit/connector.wit",
        include_str!("../../../../sdk/wit/connector.wit"),
    ),
];

/// Writes the SDK into `dir`, refusing to overwrite anything there.
fn write_sdk(ctx: &Context, dir: &Path) -> Result<()> {
    for (path, _) in SDK {
        let target = dir.join(path);
        if target.symlink_metadata().is_ok() {
            bail!(
                "{} already exists; give a new or empty folder",
                target.display()
            );
        }
    }
    for (path, text) in SDK {
        let target = dir.join(path);
        let folder = target.parent().expect("a file in a folder");
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        std::fs::write(&target, text)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    if ctx.json {
        return ctx.print_json(&json!({
            "dir": dir, "contract": kast_plugins::CONTRACTS.last(),
        }));
    }
    if !ctx.quiet {
        println!(
            "wrote the kast-sdk crate and the contract (kast:connector@{}) to {}",
            kast_plugins::CONTRACTS.last().expect("one at least"),
            dir.display()
        );
    }
    Ok(())
}

pub fn run(ctx: &Context, command: &PluginCommand) -> Result<()> {
    if let PluginCommand::Sdk { dir } = command {
        return write_sdk(ctx, dir);
    }
    let registry = ctx.host()?.registry();
    match command {
        PluginCommand::Install { file, replace } => {
            let (listed, replaced) = registry.install(file, *replace)?;
            for name in &replaced {
                ctx.note(&format!("replaced the installed plugin {name}"));
            }
            if ctx.json {
                return ctx.print_json(&views::plugin(&listed));
            }
            if !ctx.quiet {
                println!(
                    "installed {} {} ({}); it may reach, for {}",
                    listed.info.name,
                    listed.info.version,
                    roles(&listed.info.roles),
                    views::reach(&listed)
                );
            }
        }
        PluginCommand::List => {
            let all = registry.list()?;
            if ctx.json {
                return ctx.print_json(&json!(all.iter().map(views::plugin).collect::<Vec<_>>()));
            }
            if ctx.quiet {
                return Ok(());
            }
            let mut table = Table::new(&[
                ("name", Align::Left),
                ("version", Align::Left),
                ("contract", Align::Left),
                ("roles", Align::Left),
                ("schemes", Align::Left),
                ("kind", Align::Left),
                ("description", Align::Left),
            ]);
            for l in all {
                table.row(vec![
                    l.info.name.clone(),
                    l.info.version.clone(),
                    l.contract.clone(),
                    roles(&l.info.roles),
                    l.info
                        .schemes
                        .iter()
                        .map(|s| format!("{s}://"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    if l.builtin { "built in" } else { "installed" }.to_string(),
                    l.info.description.clone(),
                ]);
            }
            table.write(&mut std::io::stdout().lock())?;
        }
        PluginCommand::Remove { name } => {
            registry.remove(name)?;
            if !ctx.quiet && !ctx.json {
                println!("removed plugin {name}");
            }
        }
        PluginCommand::Info { name } => {
            let listed = registry
                .list()?
                .into_iter()
                .find(|l| &l.info.name == name)
                .ok_or_else(|| anyhow!("no plugin named {name}; `kast plugin list` shows them"))?;
            if ctx.json {
                return ctx.print_json(&views::plugin(&listed));
            }
            println!("name         {}", listed.info.name);
            println!("version      {}", listed.info.version);
            println!("contract     kast:connector@{}", listed.contract);
            println!("description  {}", listed.info.description);
            println!("roles        {}", roles(&listed.info.roles));
            println!("schemes      {}", listed.info.schemes.join(", "));
            println!("may reach    {}", views::reach(&listed));
            println!("limits       {}", ctx.plugin_limits().describe());
            println!("wasm         {} bytes, blake3 {}", listed.size, listed.hash);
            println!(
                "origin       {}",
                if listed.builtin {
                    "built in"
                } else {
                    "installed"
                }
            );
        }
        PluginCommand::Sdk { .. } => unreachable!("written above"),
    }
    Ok(())
}
