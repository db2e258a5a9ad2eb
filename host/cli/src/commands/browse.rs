//! Reading a store: `ls`, `find`, `cat`, `diff`.

use crate::cli::{FilterArgs, FindArgs};
use crate::context::Context;
use crate::spec::{self, format_bytes, format_time};
use crate::table::{Align, Table};
use crate::views;
use anyhow::{Context as _, Result, bail};
use kast_engine::browse::{self, ChangeKind, Resolved};
use kast_engine::crypto::Id;
use kast_engine::find::{FindStats, Found};
use kast_engine::tree::{Content, Node};
use serde_json::json;
use std::io::Write;

pub fn ls(ctx: &Context, spec_text: Option<&str>, filter: &FilterArgs) -> Result<()> {
    let store = ctx.open_store()?;
    let Some(spec_text) = spec_text else {
        let f = spec::filter(ctx, filter)?;
        let (snapshots, damaged) = if store.is_put_only() {
            // Headers are sealed to full keys: what it made is what it knows.
            ctx.note(
                "this key is put-only: these are the snapshots it made from this machine; a full key lists them all",
            );
            (store.own_snapshots()?, Vec::new())
        } else {
            let list = browse::snapshots(&store)?;
            crate::seen::check(ctx, &store, &list.snapshots);
            (list.snapshots, list.damaged)
        };
        let snaps: Vec<_> = snapshots.iter().filter(|(_, s)| f.matches(s)).collect();
        if ctx.json {
            return ctx.print_json(&json!(
                snaps
                    .iter()
                    .map(|(id, s)| views::snapshot(id, s))
                    .collect::<Vec<_>>()
            ));
        }
        if !ctx.quiet && !snaps.is_empty() {
            let mut table = Table::new(&[
                ("id", Align::Left),
                ("time (UTC)", Align::Left),
                ("host", Align::Left),
                ("size", Align::Right),
                ("source", Align::Left),
                ("tags", Align::Left),
            ]);
            for (id, s) in snaps {
                let mut tags = s.tags.join(",");
                if !s.job.is_empty() {
                    tags = format!(
                        "{tags}{}job:{}",
                        if tags.is_empty() { "" } else { " " },
                        s.job
                    );
                }
                // Host and source are only what a put-only key claims.
                if let Some(writer) = &s.writer {
                    tags = format!(
                        "{tags}{}put-only:{}",
                        if tags.is_empty() { "" } else { " " },
                        &writer[..8.min(writer.len())]
                    );
                }
                table.row(vec![
                    id.short(),
                    format_time(s.time_ns),
                    s.host.clone(),
                    format_bytes(s.summary.logical_bytes),
                    s.source.clone(),
                    tags,
                ]);
            }
            table.write(&mut std::io::stdout().lock())?;
        }
        for (name, e) in &damaged {
            ctx.warn(&format!("snapshot {name} cannot be read: {e}"));
        }
        return Ok(());
    };
    store.require_full("list a snapshot's contents")?;
    let (snapshot, path) = spec::split(spec_text);
    let (id, snap) = spec::resolve_at(ctx, &store, snapshot, path, filter)?;
    let index = store.index()?;
    let nodes = browse::list(&store, &index, (&id, &snap), path.as_bytes())?;
    if ctx.json {
        return ctx.print_json(&json!(nodes.iter().map(views::node).collect::<Vec<_>>()));
    }
    if ctx.quiet || nodes.is_empty() {
        return Ok(());
    }
    let mut table = Table::new(&[
        ("permissions", Align::Left),
        ("uid", Align::Right),
        ("gid", Align::Right),
        ("size", Align::Right),
        ("modified (UTC)", Align::Left),
        ("name", Align::Left),
    ]);
    for n in &nodes {
        let suffix = match &n.content {
            Content::Dir { .. } => "/".to_string(),
            Content::Symlink { target } => format!(" -> {}", views::shown(target)),
            _ => String::new(),
        };
        let error = n
            .error
            .as_ref()
            .map(|e| format!("  (not backed up whole: {})", views::shown(e.as_bytes())))
            .unwrap_or_default();
        table.row(vec![
            views::permissions(n),
            n.meta.uid.to_string(),
            n.meta.gid.to_string(),
            format_bytes(n.meta.size),
            format_time(n.meta.mtime_ns),
            format!("{}{suffix}{error}", views::shown(&n.name)),
        ]);
    }
    table.write(&mut std::io::stdout().lock())?;
    Ok(())
}

pub fn cat(ctx: &Context, spec_text: &str, filter: &FilterArgs) -> Result<()> {
    let store = ctx.open_store()?;
    store.require_full("read files out of snapshots")?;
    let (snapshot, path) = spec::split(spec_text);
    if path.is_empty() {
        bail!("name a file: SNAPSHOT:PATH");
    }
    let (id, snap) = spec::resolve_at(ctx, &store, snapshot, path, filter)?;
    let index = store.index()?;
    let node = match browse::resolve_path(&store, &index, (&id, &snap), path.as_bytes())? {
        Resolved::Node(n) => n,
        Resolved::Root(_) => bail!("{path} is a directory"),
    };
    let mut out = std::io::stdout().lock();
    browse::cat(&store, &index, &node, &mut out)?;
    out.flush()?;
    Ok(())
}

/// A `find` pattern as two tests: one on names, which the engine applies
/// to every entry while it walks, and one on whole paths, for a pattern
/// with a `/` (matched on what passed the first). The web UI's search
/// uses the same.
pub struct FindPattern {
    name: globset::GlobMatcher,
    path: Option<globset::GlobMatcher>,
}

impl FindPattern {
    /// Compiles `pattern` as `kast find` reads it.
    pub fn new(pattern: &str, ignore_case: bool) -> Result<Self> {
        let glob = |text: &str| -> Result<globset::GlobMatcher> {
            Ok(globset::GlobBuilder::new(text)
                .literal_separator(true)
                .case_insensitive(ignore_case)
                .backslash_escape(true)
                .build()
                .with_context(|| format!("bad pattern {pattern:?}"))?
                .compile_matcher())
        };
        let whole = pattern.trim_start_matches('/');
        let Some((_, last)) = whole.rsplit_once('/') else {
            return Ok(Self {
                name: glob(whole)?,
                path: None,
            });
        };
        // The name a match must have is the pattern's last part; a last
        // part with `**` in it may match any name.
        let last = if last.contains("**") { "*" } else { last };
        Ok(Self {
            name: glob(last)?,
            path: Some(glob(whole)?),
        })
    }

    /// Searches `snapshots` (see [`kast_engine::find::find`]) and calls
    /// `found` for each entry that matches the whole pattern.
    pub fn search(
        &self,
        store: &kast_engine::Store,
        index: &kast_engine::index::Index,
        snapshots: &[(Id, kast_engine::snapshot::Snapshot)],
        found: &mut dyn FnMut(&Id, &Found) -> kast_engine::Result<()>,
    ) -> kast_engine::Result<FindStats> {
        kast_engine::find::find(
            store,
            index,
            snapshots,
            &|name| self.name_matches(name),
            &mut |id, _, f| {
                if self.path_matches(&f.path) {
                    found(id, f)
                } else {
                    Ok(())
                }
            },
        )
    }

    /// Whether an entry's name may match.
    fn name_matches(&self, name: &[u8]) -> bool {
        self.name.is_match(bytes_path(name))
    }

    /// Whether an entry whose name matched matches on its whole path.
    fn path_matches(&self, path: &[u8]) -> bool {
        self.path
            .as_ref()
            .is_none_or(|glob| glob.is_match(bytes_path(path)))
    }
}

fn bytes_path(bytes: &[u8]) -> &std::path::Path {
    std::path::Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes))
}

/// Exit code 3 when a damaged tree left matches out (named on stderr).
pub fn find(ctx: &Context, args: &FindArgs) -> Result<i32> {
    let pattern = FindPattern::new(&args.pattern, args.ignore_case)?;
    let store = ctx.open_store()?;
    store.require_full("search snapshots")?;
    let filter = spec::filter(ctx, &args.filter)?;
    let list = browse::snapshots(&store)?;
    crate::seen::check(ctx, &store, &list.snapshots);
    for (name, e) in &list.damaged {
        ctx.warn(&format!("snapshot {name} cannot be read: {e}"));
    }
    let snapshots: Vec<_> = list
        .snapshots
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect();
    let index = store.index()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Printed as found, except the sorted `--path-only` list. A failed
    // write (a closed pipe) stops the walk and is returned as it is.
    let mut failed: Option<std::io::Error> = None;
    let mut paths = std::collections::BTreeSet::new();
    let mut first = true;
    let (json, quiet, path_only) = (ctx.json, ctx.quiet, args.path_only);
    let searched = pattern.search(&store, &index, &snapshots, &mut |id, found| {
        if path_only {
            paths.insert(found.path.clone());
            return Ok(());
        }
        let written = if json {
            let separator = if std::mem::take(&mut first) {
                "[\n"
            } else {
                ",\n"
            };
            write!(out, "{separator}{}", views::found(id, found))
        } else if quiet {
            Ok(())
        } else {
            let slash = if found.kind == kast_engine::find::FoundKind::Dir {
                "/"
            } else {
                ""
            };
            writeln!(
                out,
                "{}  {:>10}  {}:{}{slash}",
                format_time(found.mtime_ns),
                format_bytes(found.size),
                id.short(),
                views::shown(&found.path)
            )
        };
        written.map_err(|e| {
            failed = Some(e);
            kast_engine::Error::Interrupted
        })
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    let searched = searched?;
    if path_only {
        if json {
            let shown: Vec<_> = paths
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            ctx.print_json(&json!(shown))?;
        } else if !quiet {
            for path in &paths {
                writeln!(out, "{}", views::shown(path))?;
            }
        }
    } else if json {
        writeln!(out, "{}]", if first { "[" } else { "\n" })?;
    }
    out.flush()?;
    for (tree, e) in &searched.unreadable {
        ctx.warn(&format!(
            "tree {} cannot be read, so what is below it is not searched: {e} (run `kast check`)",
            tree.short()
        ));
    }
    Ok(if searched.unreadable.is_empty() { 0 } else { 3 })
}

pub fn diff(ctx: &Context, from: &str, to: &str, filter: &FilterArgs) -> Result<()> {
    let store = ctx.open_store()?;
    store.require_full("compare snapshots")?;
    let index = store.index()?;
    let tree_of = |text: &str| -> Result<kast_engine::crypto::Id> {
        let (snapshot, path) = spec::split(text);
        let (id, snap) = spec::resolve(ctx, &store, snapshot, filter)?;
        if path.is_empty() {
            return Ok(snap.root);
        }
        match browse::resolve_path(&store, &index, (&id, &snap), path.as_bytes())? {
            Resolved::Node(Node {
                content: Content::Dir { tree },
                ..
            }) => Ok(tree),
            Resolved::Root(_) => Ok(snap.root),
            _ => bail!("{path} is not a directory: diff compares directories"),
        }
    };
    let (from, to) = (tree_of(from)?, tree_of(to)?);
    let mut out = std::io::stdout().lock();
    // Printed as found: a diff of millions of changes is never held whole.
    // A failed write (a closed pipe) stops the walk and is returned as it is.
    let mut failed: Option<std::io::Error> = None;
    let mut stop = |e: std::io::Error| {
        failed = Some(e);
        kast_engine::Error::Interrupted
    };
    if ctx.json {
        let mut first = true;
        let walked = browse::diff_each(&store, &index, &from, &to, &mut |c| {
            let separator = if std::mem::take(&mut first) {
                "[\n"
            } else {
                ",\n"
            };
            write!(out, "{separator}{}", views::change(&c)).map_err(&mut stop)
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        walked?;
        writeln!(out, "{}]", if first { "[" } else { "\n" })?;
        return Ok(());
    }
    let mut counts = [0u64; 4];
    let quiet = ctx.quiet;
    let walked = browse::diff_each(&store, &index, &from, &to, &mut |c| {
        let (sign, slot) = match c.kind {
            ChangeKind::Added => ("+", 0),
            ChangeKind::Removed => ("-", 1),
            ChangeKind::Modified => ("M", 2),
            ChangeKind::Metadata => ("U", 3),
        };
        counts[slot] += 1;
        if quiet {
            return Ok(());
        }
        let sizes = match (c.old_size, c.new_size) {
            (Some(a), Some(b)) if a != b => {
                format!("  ({} -> {})", format_bytes(a), format_bytes(b))
            }
            (None, Some(b)) => format!("  ({})", format_bytes(b)),
            (Some(a), None) => format!("  ({})", format_bytes(a)),
            _ => String::new(),
        };
        let metadata = match c.metadata.as_slice() {
            [] => String::new(),
            fields => format!("  [{}]", fields.join(", ")),
        };
        writeln!(out, "{sign} {}{sizes}{metadata}", views::shown(&c.path)).map_err(&mut stop)
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    walked?;
    if quiet {
        return Ok(());
    }
    // The totals double as the legend of the marks.
    let [added, removed, modified, metadata] = counts;
    writeln!(
        out,
        "{added} added (+), {removed} removed (-), {modified} modified (M: content), \
         {metadata} with metadata changes only (U: the fields in brackets)"
    )?;
    Ok(())
}
