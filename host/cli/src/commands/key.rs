//! `kast key add|list|remove`: the passphrases that open a store.

use crate::cli::KeyCommand;
use crate::context::{Context, read_secret};
use crate::spec::format_time;
use anyhow::Result;
use kast_engine::keys::KdfParams;
use serde_json::json;

pub fn run(ctx: &Context, command: &KeyCommand) -> Result<()> {
    let store = ctx.open_store()?;
    match command {
        KeyCommand::Add {
            new_passphrase_file,
        } => {
            let passphrase = read_secret(
                new_passphrase_file.as_deref(),
                "KAST_NEW_PASSPHRASE",
                "new passphrase",
                true,
            )?;
            let name = store.add_key(&passphrase, KdfParams::default())?;
            if ctx.json {
                ctx.print_json(&json!({ "added": name }))?;
            } else if !ctx.quiet {
                println!("added key {name}");
            }
        }
        KeyCommand::List => {
            let keys = store.list_keys()?;
            if ctx.json {
                return ctx.print_json(&json!(keys.iter().map(|k| json!({
                    "name": k.name, "created": format_time(k.created * 1_000_000_000), "host": k.host,
                    "user": k.user, "current": k.current,
                })).collect::<Vec<_>>()));
            }
            for k in keys {
                println!(
                    "{}{} created {} by {} on {}",
                    if k.current { "* " } else { "  " },
                    k.name,
                    format_time(k.created * 1_000_000_000),
                    k.user,
                    k.host
                );
            }
        }
        KeyCommand::Remove { name } => {
            store.remove_key(name)?;
            if ctx.json {
                ctx.print_json(&json!({ "removed": name }))?;
            } else if !ctx.quiet {
                println!("removed key {name}");
            }
        }
    }
    Ok(())
}
