//! `kast backup`: one snapshot per location, with gitignore-style excludes,
//! a summary, and a clean stop on Ctrl-C.

use crate::cli::BackupArgs;
use crate::context::Context;
use crate::spec::format_bytes;
use anyhow::{Context as _, Result, bail};
use kast_engine::source::Source as _;
use kast_engine::stream::StreamSource;
use kast_engine::{BackupOptions, Error as EngineError, Exclude};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Builds the matcher for --exclude patterns and --exclude-file lines,
/// matched against paths relative to the backed-up location.
pub fn excludes(patterns: &[String], files: &[std::path::PathBuf]) -> Result<Option<Exclude>> {
    if patterns.is_empty() && files.is_empty() {
        return Ok(None);
    }
    let mut builder = ignore::gitignore::GitignoreBuilder::new("/");
    for pattern in patterns {
        builder
            .add_line(None, pattern)
            .with_context(|| format!("bad exclude pattern {pattern:?}"))?;
    }
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for line in text.lines() {
            builder
                .add_line(Some(file.clone()), line)
                .with_context(|| format!("bad pattern in {}: {line:?}", file.display()))?;
        }
    }
    let matcher = builder.build()?;
    Ok(Some(Arc::new(move |path: &[u8], is_dir: bool| {
        let path = std::path::Path::new(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path),
        );
        matcher
            .matched_path_or_any_parents(path, is_dir)
            .is_ignore()
    })))
}

/// Backs up one location (a path, URL or `@name`) with `options`.
pub fn back_up(
    ctx: &Context,
    store: &kast_engine::Store,
    location: &str,
    options: &BackupOptions,
) -> Result<kast_engine::BackupOutcome> {
    let resolved = ctx.location(location)?;
    let location = &kast_plugins::location::redact(location);
    let source = ctx
        .host()?
        .source(&resolved)
        .with_context(|| format!("cannot read {location}"))?;
    back_up_source(ctx, store, &source, location, options)
}

/// Backs up a stream (standard input, a command's output) as the file
/// `name` of a snapshot of `stdin:NAME`: whole, or no snapshot at all.
pub fn back_up_stream(
    ctx: &Context,
    store: &kast_engine::Store,
    name: &str,
    reader: Box<dyn std::io::Read + Send>,
    options: &BackupOptions,
) -> Result<kast_engine::BackupOutcome> {
    let source = StreamSource::new(name, reader).context("--stdin/--from-command NAME")?;
    let options = BackupOptions {
        whole_or_nothing: true,
        ..options.clone()
    };
    back_up_source(ctx, store, &source, &source.location(), &options)
}

fn back_up_source(
    ctx: &Context,
    store: &kast_engine::Store,
    source: &dyn kast_engine::Source,
    location: &str,
    options: &BackupOptions,
) -> Result<kast_engine::BackupOutcome> {
    match kast_engine::backup(store, source, options) {
        Ok(o) => {
            crate::seen::remember(ctx, store, &o.id, &o.snapshot);
            Ok(o)
        }
        Err(EngineError::Interrupted)
            if options
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed)) =>
        {
            bail!("interrupted: what was stored so far is kept, and the next backup reuses it")
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("backup of {location} failed"))),
    }
}

/// Says which mount points a backup kept empty, and how to include them.
pub fn note_skipped_mounts(ctx: &Context, skipped: &[(String, String)]) {
    if skipped.is_empty() {
        return;
    }
    let named: Vec<String> = skipped
        .iter()
        .map(|(path, fs_type)| match fs_type.as_str() {
            "" => path.clone(),
            t => format!("{path} ({t})"),
        })
        .collect();
    ctx.note(&format!(
        "left out {} mounted filesystem{} (kept as empty folders): {}; name one as a location to back it up",
        skipped.len(),
        if skipped.len() == 1 { "" } else { "s" },
        named.join(", ")
    ));
}

/// Exit code 4 when some entries could not be read (the snapshot is saved
/// and lists them).
pub fn run(ctx: &Context, args: &BackupArgs, cancel: Arc<AtomicBool>) -> Result<i32> {
    let store = ctx.open_or_create_default()?;
    let exclude = excludes(&args.excludes, &args.exclude_files)?;
    let options = |location: &str| BackupOptions {
        tags: args.tags.clone(),
        exclude: exclude.clone(),
        progress: ctx.progress(&format!("backing up {location}"), None),
        cancel: Some(cancel.clone()),
        one_file_system: args.one_file_system,
        ..Default::default()
    };
    let mut results = Vec::new();
    let mut partial = false;
    if let Some(name) = &args.stdin {
        let location = StreamSource::location_of(name);
        let stdin = Box::new(std::io::stdin());
        let outcome = back_up_stream(ctx, &store, name, stdin, &options(&location))?;
        partial |= report(ctx, &location, &outcome, &mut results);
    }
    if let Some(name) = &args.from_command {
        let location = StreamSource::location_of(name);
        let output = super::stream::CommandOutput::start(&args.command, cancel.clone())?;
        let outcome = back_up_stream(ctx, &store, name, Box::new(output), &options(&location))?;
        partial |= report(ctx, &location, &outcome, &mut results);
    }
    for given in &args.locations {
        let location = kast_plugins::location::redact(given);
        let outcome = back_up(ctx, &store, given, &options(&location))?;
        partial |= report(ctx, &location, &outcome, &mut results);
    }
    if ctx.json {
        ctx.print_json(&json!({ "snapshots": results }))?;
    }
    if partial {
        ctx.warn("some entries could not be read; the snapshot lists them");
    }
    Ok(if partial { 4 } else { 0 })
}

/// Prints one backup's line (or keeps its JSON for the end); true when
/// some entries could not be read.
fn report(
    ctx: &Context,
    location: &str,
    outcome: &kast_engine::BackupOutcome,
    results: &mut Vec<serde_json::Value>,
) -> bool {
    for w in &outcome.warnings {
        ctx.warn(w);
    }
    note_skipped_mounts(ctx, &outcome.skipped_mounts);
    let s = &outcome.snapshot.summary;
    if !ctx.json && !ctx.quiet {
        println!(
            "snapshot {} of {}: {} ({} new, {} changed, {} unchanged), {} read, {} added, {:.1} s",
            outcome.id.short(),
            location,
            crate::spec::count(s.files, "file", "files"),
            outcome.files_new,
            s.files_read - outcome.files_new,
            s.files_unchanged,
            format_bytes(s.bytes_read),
            format_bytes(s.bytes_added),
            s.duration_ms as f64 / 1000.0
        );
    }
    results.push(json!({
        "id": outcome.id.to_hex(), "source": outcome.snapshot.source, "files": s.files, "dirs": s.dirs,
        "files_new_or_changed": s.files_read, "files_new": outcome.files_new,
        "files_changed": s.files_read - outcome.files_new, "files_unchanged": s.files_unchanged,
        "bytes_read": s.bytes_read, "bytes_added": s.bytes_added, "logical_bytes": s.logical_bytes,
        "duration_ms": s.duration_ms, "warnings": outcome.warnings,
        "skipped_mounts": outcome.skipped_mounts.iter()
            .map(|(path, fs_type)| json!({ "path": path, "fs_type": fs_type }))
            .collect::<Vec<_>>(),
    }));
    !outcome.warnings.is_empty()
}
