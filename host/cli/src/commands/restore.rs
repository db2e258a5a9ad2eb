//! `kast restore SNAPSHOT[:PATH] --to LOCATION [--overwrite WHEN]`.

use crate::cli::FilterArgs;
use crate::context::Context;
use crate::spec::{self, format_bytes};
use anyhow::{Context as _, Result, bail};
use kast_engine::{Overwrite, RestoreOptions};

/// One line for everything of one kind the destination could not hold.
fn describe_loss(loss: &kast_engine::Loss) -> String {
    let n = loss.count;
    match loss.kind {
        kast_engine::LossKind::HardLinks => format!(
            "{n} hard link{} written as separate copies ({}; the first: {})",
            if n == 1 { "" } else { "s" },
            loss.message,
            loss.example
        ),
        kast_engine::LossKind::Metadata => format!(
            "metadata of {n} entr{} not kept exactly (the first: {}: {})",
            if n == 1 { "y" } else { "ies" },
            loss.example,
            loss.message
        ),
    }
}

pub fn run(
    ctx: &Context,
    spec_text: &str,
    to: &str,
    overwrite: Overwrite,
    filter: &FilterArgs,
) -> Result<()> {
    let store = ctx.open_store()?;
    store.require_full("restore")?;
    let (snapshot, path) = spec::split(spec_text);
    let (id, snap) = spec::resolve_at(ctx, &store, snapshot, path, filter)?;
    // Always said: which snapshot `latest` (or a prefix) turned out to be.
    ctx.note(&format!(
        "restoring snapshot {} of {} on {}, taken {} UTC",
        id.short(),
        snap.source,
        snap.host,
        spec::format_time(snap.time_ns)
    ));
    let target = ctx.location(to)?;
    let to = &kast_plugins::location::redact(to);
    let destination = ctx
        .host()?
        .destination(&target)
        .with_context(|| format!("cannot write to {to}"))?;
    let options = RestoreOptions {
        overwrite,
        progress: ctx.progress(
            &format!("restoring {}", id.short()),
            path.is_empty().then_some(snap.summary.logical_bytes),
        ),
        ..Default::default()
    };
    let outcome = kast_engine::restore(&store, &id, path.as_bytes(), &destination, &options)
        .map_err(|e| match e {
            kast_engine::Error::Conflicts { .. } => anyhow::Error::new(e).context(
                "choose what to do with them: --overwrite never|if-newer|if-changed|always",
            ),
            // Appeared after the look before writing (or at a destination
            // that cannot be looked at beforehand).
            kast_engine::Error::Destination { ref source, .. }
                if overwrite == Overwrite::Refuse
                    && source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                anyhow::Error::new(e).context(format!(
                    "{to} has an entry the snapshot holds; choose with --overwrite what to do with it"
                ))
            }
            other => anyhow::Error::new(other),
        })?;
    if ctx.json {
        ctx.print_json(&crate::views::restored(&id, &snap, &outcome))?;
    } else if !ctx.quiet {
        let links = match outcome.hard_links {
            0 => String::new(),
            n => format!(" ({n} as hard links)"),
        };
        println!(
            "restored {}{links}, {}, {} ({}) from {} to {to}",
            spec::count(outcome.files, "file", "files"),
            spec::count(outcome.dirs, "dir", "dirs"),
            spec::count(outcome.symlinks, "symlink", "symlinks"),
            format_bytes(outcome.bytes),
            id.short()
        );
    }
    for (path, error) in &outcome.errors {
        ctx.warn(&format!("{path}: {error}"));
    }
    for loss in &outcome.losses {
        ctx.warn(&describe_loss(loss));
    }
    if let Some(first) = &outcome.first_skipped {
        let n = outcome.skipped;
        ctx.note(&format!(
            "left {n} entr{} as {to} had {} (the first: {first})",
            if n == 1 { "y" } else { "ies" },
            if n == 1 { "it" } else { "them" },
        ));
    }
    if !outcome.errors.is_empty() {
        bail!(
            "{} entries could not be restored whole",
            outcome.errors.len()
        );
    }
    Ok(())
}
