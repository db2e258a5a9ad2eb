//! `kast sync --to STORE [SNAPSHOT...]`: copy snapshots between stores.

use crate::cli::FilterArgs;
use crate::context::{Context, read_secret};
use crate::spec::{self, format_bytes};
use anyhow::Result;
use serde_json::json;
use std::path::Path;

pub fn run(
    ctx: &Context,
    to: &str,
    to_passphrase_file: Option<&Path>,
    specs: &[String],
) -> Result<()> {
    let from = ctx.open_store()?;
    from.require_full("copy snapshots out of this store")?;
    let mut ids = Vec::new();
    for s in specs {
        ids.push(spec::resolve(ctx, &from, spec::split(s).0, &FilterArgs::default())?.0);
    }
    let target_location = ctx.location(to)?;
    let passphrase = read_secret(
        to_passphrase_file,
        "KAST_TO_PASSPHRASE",
        "target passphrase",
        false,
    )?;
    let target = ctx.open_store_at(&target_location, Some(&passphrase))?;
    let to = kast_plugins::location::redact(to);
    let outcome = kast_engine::sync::sync(&from, &target, &ids, ctx.progress("syncing", None))?;
    if ctx.json {
        return ctx.print_json(&json!({
            "copied": outcome.copied.iter().map(|(s, t)| json!({"source": s.to_hex(), "target": t.to_hex()})).collect::<Vec<_>>(),
            "skipped": outcome.skipped.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
            "blobs_added": outcome.blobs_added, "bytes_added": outcome.bytes_added,
        }));
    }
    if !ctx.quiet {
        for (s, t) in &outcome.copied {
            println!("copied {} as {}", s.short(), t.short());
        }
        println!(
            "{} copied, {} already there, {} added to {to}",
            spec::count(outcome.copied.len() as u64, "snapshot", "snapshots"),
            outcome.skipped.len(),
            format_bytes(outcome.bytes_added)
        );
    }
    Ok(())
}
