//! `kast restore SNAPSHOT[:PATH] --to LOCATION [--force]`.

use crate::cli::FilterArgs;
use crate::context::Context;
use crate::spec::{self, format_bytes};
use anyhow::{Context as _, Result, bail};
use kast_engine::RestoreOptions;

pub fn run(
    ctx: &Context,
    spec_text: &str,
    to: &str,
    force: bool,
    filter: &FilterArgs,
) -> Result<()> {
    let store = ctx.open_store()?;
    let (snapshot, path) = spec::split(spec_text);
    let (id, snap) = spec::resolve(ctx, &store, snapshot, filter)?;
    let target = ctx.location(to)?;
    let destination = ctx
        .host()?
        .destination(&target)
        .with_context(|| format!("cannot write to {to}"))?;
    let options = RestoreOptions {
        overwrite: force,
        progress: ctx.progress(
            &format!("restoring {}", id.short()),
            path.is_empty().then_some(snap.summary.logical_bytes),
        ),
        ..Default::default()
    };
    let outcome = kast_engine::restore(&store, &id, path.as_bytes(), &destination, &options)
        .map_err(|e| match e {
            kast_engine::Error::Destination { ref source, .. }
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                anyhow::Error::new(e).context(format!(
                    "{to} already has files the snapshot holds; add --force to replace them"
                ))
            }
            other => anyhow::Error::new(other),
        })?;
    if ctx.json {
        ctx.print_json(&crate::views::restored(&id, &outcome))?;
    } else if !ctx.quiet {
        println!(
            "restored {} files, {} dirs, {} symlinks ({}) from {} to {to}",
            outcome.files,
            outcome.dirs,
            outcome.symlinks,
            format_bytes(outcome.bytes),
            id.short()
        );
    }
    for (path, error) in &outcome.errors {
        ctx.warn(&format!("{path}: {error}"));
    }
    if !outcome.errors.is_empty() {
        bail!(
            "{} entries could not be restored whole",
            outcome.errors.len()
        );
    }
    Ok(())
}
