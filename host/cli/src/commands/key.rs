//! `kast key add|list|remove`: the passphrases that open a store.

use crate::cli::KeyCommand;
use crate::context::{Context, read_secret};
use crate::spec::format_time;
use anyhow::{Context as _, Result};
use kast_engine::keys::{Capability, KdfParams};
use serde_json::json;

pub fn run(ctx: &Context, command: &KeyCommand) -> Result<()> {
    let store = ctx.open_store()?;
    match command {
        KeyCommand::Add {
            new_passphrase_file,
            put_only,
        } => {
            store.require_full("add keys")?;
            let passphrase = read_secret(
                new_passphrase_file.as_deref(),
                "KAST_NEW_PASSPHRASE",
                "new passphrase",
                true,
            )?;
            let capability = if *put_only {
                Capability::PutOnly
            } else {
                Capability::Full
            };
            let name = store.add_key(&passphrase, KdfParams::default(), capability)?;
            if ctx.json {
                ctx.print_json(
                    &json!({ "added": name, "capability": capability_name(capability) }),
                )?;
            } else if !ctx.quiet {
                println!("added {} key {name}", capability_name(capability));
            }
        }
        KeyCommand::List => {
            let keys = store.list_keys()?;
            if ctx.json {
                return ctx.print_json(&json!(keys.iter().map(|k| json!({
                    "name": k.name, "created": format_time(k.created * 1_000_000_000), "host": k.host,
                    "user": k.user, "current": k.current, "capability": capability_name(k.capability),
                })).collect::<Vec<_>>()));
            }
            for k in keys {
                println!(
                    "{}{} {:8} created {} by {} on {}",
                    if k.current { "* " } else { "  " },
                    k.name,
                    capability_name(k.capability),
                    format_time(k.created * 1_000_000_000),
                    k.user,
                    k.host
                );
            }
        }
        KeyCommand::SaveLocal => {
            let path = ctx.local_key_path(&store.config().store_id);
            write_private(&path, store.local_key().to_text().as_bytes())?;
            if ctx.json {
                ctx.print_json(&json!({ "saved": path }))?;
            } else if !ctx.quiet {
                println!("saved the store's key to {}", path.display());
                if store.is_put_only() {
                    println!(
                        "commands on this machine no longer ask for the passphrase; the key is put-only: whoever reads that file can add backups, not read them"
                    );
                } else {
                    println!(
                        "commands on this machine no longer ask for the passphrase; anyone who can read that file can read the backups"
                    );
                }
            }
        }
        KeyCommand::ForgetLocal => {
            let path = ctx.local_key_path(&store.config().store_id);
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            if ctx.json {
                ctx.print_json(&json!({ "removed": path }))?;
            } else if !ctx.quiet {
                println!("removed {}", path.display());
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

/// The capability as `key list` and `--json` name it.
fn capability_name(capability: Capability) -> &'static str {
    match capability {
        Capability::Full => "full",
        Capability::PutOnly => "put-only",
    }
}

/// Writes a file only its owner can read, creating its folder.
fn write_private(path: &std::path::Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(data)?;
    file.sync_all()?;
    Ok(())
}
