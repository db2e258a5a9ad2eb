//! The pages, rendered on the server with maud (escaped by construction).
//! Each reads what it shows through the same functions as the JSON API, so
//! a page and `/api` never disagree; none needs JavaScript to be read.

use super::App;
use super::api::{self, ApiError, InSnapshot, SnapshotQuery, TreeQuery, blocking, lossy, window};
use super::auth::Session;
use crate::spec::{format_bytes, format_time};
use axum::extract::{Extension, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kast_engine::browse::{self, ChangeKind};
use kast_engine::tree::Content;
use kast_plugins::location::percent_encode_path as encode;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

/// Rows per page of a list.
const ROWS: usize = 200;
/// How much of a file the file view shows as text.
const PREVIEW_BYTES: usize = 64 * 1024;

/// The page around `body`: the navigation, the title, the stylesheet, the
/// script, and the session's CSRF token for the script's requests.
fn layout(app: &App, session: &Session, title: &str, body: Markup) -> Response {
    let base = &app.base;
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · kast" }
                meta name="csrf-token" content=(session.csrf);
                meta name="base-path" content=(base);
                link rel="stylesheet" href={ (base) "/assets/kast.css" };
                link rel="icon" type="image/svg+xml" href={ (base) "/assets/kast.svg" };
                script src={ (base) "/assets/kast.js" } defer {}
            }
            body {
                header {
                    strong { a href={ (base) "/" } { "kast" } }
                    a href={ (base) "/snapshots" } { "Snapshots" }
                    a href={ (base) "/diff" } { "Compare" }
                    a href={ (base) "/history" } { "History" }
                    a href={ (base) "/check" } { "Check" }
                    a href={ (base) "/plugins" } { "Plugins" }
                    form.search role="search" method="get" action={ (base) "/find" } {
                        input type="search" name="pattern" placeholder="Find files (*.pdf, src/**/*.rs)" aria-label="find files in every snapshot";
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'",
            ),
        ],
        axum::response::Html(markup.into_string()),
    )
        .into_response()
}

/// Renders what `work` builds off the async threads, or the error.
async fn render(
    app: Arc<App>,
    session: Session,
    work: impl FnOnce(&App) -> Result<(String, Markup), ApiError> + Send + 'static,
) -> Response {
    let shared = app.clone();
    match blocking(move || work(&shared)).await {
        Ok((title, body)) => layout(&app, &session, &title, body),
        Err(ApiError(status, message)) => {
            let mut page = layout(
                &app,
                &session,
                "Something went wrong",
                html! { p.bad { (message) } },
            );
            *page.status_mut() = status;
            page
        }
    }
}

/// `GET /assets/kast.css`.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/kast.css"),
    )
}

/// `GET /assets/kast.svg`: the tab's icon.
pub async fn icon() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("assets/kast.svg"),
    )
}

/// `GET /assets/kast.js`: starts jobs and follows their progress.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/kast.js"),
    )
}

fn snapshot_link(app: &App, id: &str, label: &str) -> Markup {
    html! { a href={ (app.base) "/snapshots/" (id) "/browse" } { code { (label) } } }
}

/// `GET /`: the store, and the last backup of each source.
pub async fn overview(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
) -> Response {
    render(app, session, |app| {
        let list = app.catalog.snapshots(&app.store)?;
        let summary = crate::views::store(&app.store, &list.all, list.damaged)?;
        let number = |key: &str| summary[key].as_u64().unwrap_or(0);
        let mut last_of_source = BTreeMap::new();
        for (id, s) in &list.all {
            last_of_source.insert(s.source.clone(), (id, s));
        }
        let body = html! {
            table.facts {
                tr { th { "location" } td { (app.store.location()) } }
                tr { th { "snapshots" } td { (list.all.len()) } }
                @if list.damaged > 0 {
                    tr { th { "damaged" } td.bad { (list.damaged) " snapshots cannot be read: run a check" } }
                }
                tr { th { "size on storage" } td { (format_bytes(number("stored_bytes"))) " in " (number("packs")) " packs" } }
                tr { th { "logical size" } td { (format_bytes(number("logical_bytes"))) " across all snapshots" } }
                tr { th { "dedup and compression" } td { (format!("{:.1}×", summary["dedup_ratio"].as_f64().unwrap_or(0.0))) } }
            }
            h2 { "Last backup of each source" }
            table {
                tr { th { "source" } th { "host" } th { "when (UTC)" } th { "snapshot" } th.num { "files" } th.num { "size" } th { "status" } th { "history" } }
                @for (source, (id, s)) in &last_of_source {
                    tr {
                        td { a href={ (app.base) "/snapshots?source=" (encode(source)) } { (source) } }
                        td { (s.host) }
                        td { (format_time(s.time_ns)) }
                        td { (snapshot_link(app, &id.to_hex(), &id.short())) }
                        td.num { (s.summary.files) }
                        td.num { (format_bytes(s.summary.logical_bytes)) }
                        td {
                            @if s.summary.errors == 0 { span.good { "complete" } }
                            @else { span.bad { (s.summary.errors) " entries not read" } }
                        }
                        td { a href={ (app.base) "/history?source=" (encode(source)) } { "chart" } }
                    }
                }
            }
        };
        Ok(("Store".to_string(), body))
    })
    .await
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    source: Option<String>,
}

/// `GET /history[?source=]`: each source's history as a chart (size,
/// files and bytes added per snapshot; job runs, failures in red), one
/// source or all of them.
pub async fn history(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    render(app, session, move |app| {
        let list = app.catalog.snapshots(&app.store)?;
        let runs = kast_engine::activity::history(&app.store)?.runs;
        let mut sources: Vec<&str> = list.all.iter().map(|(_, s)| s.source.as_str()).collect();
        sources.extend(runs.iter().flat_map(|r| r.sources.iter().map(String::as_str)));
        sources.sort_unstable();
        sources.dedup();
        let wanted = q.source.filter(|s| !s.is_empty());
        sources.retain(|s| wanted.as_deref().is_none_or(|w| w == *s));
        let body = html! {
            @if sources.is_empty() { p { "Nothing backed up yet." } }
            @for source in &sources {
                @let points: Vec<super::chart::Point> = list.all.iter()
                    .filter(|(_, s)| s.source == *source)
                    .map(|(id, s)| super::chart::Point {
                        time_ns: s.time_ns,
                        label: id.short(),
                        logical_bytes: s.summary.logical_bytes,
                        files: s.summary.files,
                        bytes_added: s.summary.bytes_added,
                    })
                    .collect();
                @let source_runs: Vec<&kast_engine::activity::Activity> = runs.iter()
                    .filter(|r| r.sources.iter().any(|s| s == source))
                    .collect();
                section.history {
                    h2 { a href={ (app.base) "/snapshots?source=" (encode(source)) } { (source) } }
                    p.legend {
                        (points.len()) " snapshots, " (source_runs.len()) " job runs"
                        @let failed = source_runs.iter().filter(|r| r.outcome == kast_engine::activity::Outcome::Failure).count();
                        @if failed > 0 { ", " span.bad { (failed) " failed" } }
                        ". Point at a mark for its figures."
                    }
                    (super::chart::history(&points, &source_runs))
                }
            }
        };
        Ok(("History".to_string(), body))
    })
    .await
}

/// `GET /snapshots`: every snapshot, newest first, filtered, a page at a time.
pub async fn snapshots(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Query(q): Query<SnapshotQuery>,
) -> Response {
    render(app, session, move |app| {
        let list = app.catalog.snapshots(&app.store)?;
        let matching = q.matching(&list.all)?;
        let (offset, range) = window(&matching, q.offset, Some(ROWS));
        let shown = range.len();
        let filter_value = |v: &Option<String>| v.clone().unwrap_or_default();
        let filters = [
            ("tag", &q.tag),
            ("source", &q.source),
            ("host", &q.host),
            ("after", &q.after),
            ("before", &q.before),
        ]
        .iter()
        .map(|(name, value)| format!("&{name}={}", encode(filter_value(value))))
        .collect::<String>();
        let body = html! {
            form.filters method="get" action={ (app.base) "/snapshots" } {
                input name="tag" placeholder="tag" value=(filter_value(&q.tag));
                input name="source" placeholder="source" value=(filter_value(&q.source));
                input name="host" placeholder="host" value=(filter_value(&q.host));
                label { "taken from " input type="date" name="after" value=(filter_value(&q.after)); }
                label { " before " input type="date" name="before" value=(filter_value(&q.before)); }
                button type="submit" { "Filter" }
            }
            (pager(app, "/snapshots?", &filters, offset, shown, matching.len()))
            form method="get" action={ (app.base) "/diff" } {
                table {
                    tr { th { "from" } th { "to" } th { "id" } th { "when (UTC)" } th { "source" } th { "host" } th { "tags" } th.num { "files" } th.num { "size" } th.num { "errors" } }
                    @for (id, s) in &matching[range] {
                        @let hex = id.to_hex();
                        tr {
                            td { input type="radio" name="from" value=(hex) aria-label="compare from"; }
                            td { input type="radio" name="to" value=(hex) aria-label="compare to"; }
                            td { (snapshot_link(app, &hex, &id.short())) }
                            td { (format_time(s.time_ns)) }
                            td { (s.source) }
                            td { (s.host) }
                            td { (s.tags.join(", ")) }
                            td.num { (s.summary.files) }
                            td.num { (format_bytes(s.summary.logical_bytes)) }
                            td.num { @if s.summary.errors > 0 { span.bad { (s.summary.errors) } } @else { "0" } }
                        }
                    }
                }
                p { button type="submit" { "Compare the two chosen" } }
            }
        };
        Ok(("Snapshots".to_string(), body))
    })
    .await
}

/// "Newer/older" links and where in the list the page is.
fn pager(app: &App, path: &str, query: &str, offset: usize, shown: usize, total: usize) -> Markup {
    html! {
        div.pager {
            span { (offset + usize::from(shown > 0)) "–" (offset + shown) " of " (total) }
            @if offset > 0 {
                a href={ (app.base) (path) "offset=" (offset.saturating_sub(ROWS)) (query) } { "← previous" }
            }
            @if offset + shown < total {
                a href={ (app.base) (path) "offset=" (offset + ROWS) (query) } { "next →" }
            }
        }
    }
}

/// Links to each folder on the way to `path`.
fn crumbs(app: &App, id: &str, path: &[u8]) -> Markup {
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    html! {
        div.crumbs {
            a href={ (app.base) "/snapshots/" (id) "/browse" } { (&id[..id.len().min(8)]) }
            @for (i, part) in parts.iter().enumerate() {
                " / "
                a href={ (app.base) "/snapshots/" (id) "/browse?path=" (encode(parts[..=i].join(&b'/'))) } { (lossy(part)) }
            }
        }
    }
}

fn child(path: &[u8], name: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        name.to_vec()
    } else {
        [path, b"/", name].concat()
    }
}

/// `GET /snapshots/{id}/browse?path=`: one folder of a snapshot.
pub async fn browse(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    InSnapshot(path): InSnapshot,
    Query(q): Query<TreeQuery>,
) -> Response {
    render(app, session, move |app| {
        let (id, snap, nodes) = api::directory(app, &id, &path)?;
        let hex = id.to_hex();
        let (offset, range) = window(&nodes, q.offset, Some(ROWS));
        let shown = range.len();
        let query = format!("&path={}", encode(&path));
        let body = html! {
            (crumbs(app, &hex, &path))
            p {
                "Snapshot of " (snap.source) " on " (snap.host) ", " (format_time(snap.time_ns)) " UTC. "
                a href={ (app.base) "/api/snapshots/" (hex) "/tar?path=" (encode(&path)) } { "Download this folder (.tar)" }
            }
            (pager(app, &format!("/snapshots/{hex}/browse?"), &query, offset, shown, nodes.len()))
            table {
                tr { th { "name" } th { "mode" } th.num { "size" } th { "modified (UTC)" } }
                @for node in &nodes[range] {
                    @let name = node.name_lossy();
                    @let target = encode(child(&path, &node.name));
                    tr {
                        td {
                            @match &node.content {
                                Content::Dir { .. } => a href={ (app.base) "/snapshots/" (hex) "/browse?path=" (target) } { (name) "/" },
                                Content::File { .. } => a href={ (app.base) "/snapshots/" (hex) "/view?path=" (target) } { (name) },
                                Content::Symlink { target } => { (name) " → " (String::from_utf8_lossy(target)) },
                                Content::Special => { (name) },
                            }
                            @if let Some(error) = &node.error { " " span.bad { "(not backed up whole: " (error) ")" } }
                        }
                        td { code { (format!("{:o}", node.meta.mode & 0o7777)) } }
                        td.num { @if let Content::File { .. } = node.content { (format_bytes(node.meta.size)) } }
                        td { (format_time(node.meta.mtime_ns)) }
                    }
                }
            }
        };
        let body = html! { (body) (restore_form(&hex, &path)) };
        let title = if path.is_empty() { "/".to_string() } else { lossy(&path) };
        Ok((title, body))
    })
    .await
}

/// Whether bytes read as text: UTF-8 (a cut last character allowed) with
/// no NUL.
fn is_text(bytes: &[u8]) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && bytes.len() == PREVIEW_BYTES,
    };
    valid && !bytes.contains(&0)
}

/// `GET /snapshots/{id}/view?path=`: a file: its metadata, a preview
/// (text, or an image), and a download link.
pub async fn view(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    InSnapshot(path): InSnapshot,
) -> Response {
    render(app, session, move |app| {
        let (id, node, index) = api::file_node(app, &id, &path)?;
        let hex = id.to_hex();
        let raw = format!("{}/api/snapshots/{hex}/file?path={}", app.base, encode(&path));
        // The file's first bytes; what cannot be read is not previewed.
        let mut prefix = Vec::new();
        if let Ok(file) = browse::open_file(&app.store, &index, &node) {
            let _ = file.take(PREVIEW_BYTES as u64).read_to_end(&mut prefix);
        }
        let image = api::shown_type(&path).starts_with("image/");
        let body = html! {
            (crumbs(app, &hex, &path))
            table.facts {
                tr { th { "size" } td { (format_bytes(node.meta.size)) " (" (node.meta.size) " bytes)" } }
                tr { th { "mode" } td { code { (format!("{:o}", node.meta.mode & 0o7777)) } } }
                tr { th { "owner" } td { (node.meta.uid) ":" (node.meta.gid) } }
                tr { th { "modified (UTC)" } td { (format_time(node.meta.mtime_ns)) } }
            }
            p { a href={ (raw) "&download=1" } download { "Download" } }
            (restore_form(&hex, &path))
            @if image {
                img.preview src=(raw) alt=(lossy(&node.name));
            } @else if is_text(&prefix) {
                @if node.meta.size > PREVIEW_BYTES as u64 { p { "The first " (format_bytes(PREVIEW_BYTES as u64)) ":" } }
                pre.preview { (String::from_utf8_lossy(&prefix)) }
            } @else {
                p { "Not text: download it to open it." }
            }
        };
        Ok((node.name_lossy(), body))
    })
    .await
}

/// `GET /find?pattern=`: the search box's answer, every match in every
/// snapshot (newest first), each linking to the file or folder.
pub async fn find(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Query(q): Query<api::FindQuery>,
) -> Response {
    render(app, session, move |app| {
        let (found, more) = api::find_matches(app, &q)?;
        let value = |v: &Option<String>| v.clone().unwrap_or_default();
        let pattern = value(&q.pattern);
        let body = html! {
            form.filters method="get" action={ (app.base) "/find" } {
                input name="pattern" placeholder="name or path glob" value=(pattern) aria-label="pattern";
                label { input type="checkbox" name="ignore_case" checked[q.ignore_case.as_ref().is_some_and(|v| !v.is_empty())]; " ignore case" }
                input name="source" placeholder="source" value=(value(&q.source));
                input name="tag" placeholder="tag" value=(value(&q.tag));
                label { "taken from " input type="date" name="after" value=(value(&q.after)); }
                label { " before " input type="date" name="before" value=(value(&q.before)); }
                button type="submit" { "Find" }
            }
            @if pattern.is_empty() {
                p { "A glob on names (" code { "*.pdf" } ", " code { "report-202?.txt" } "), or with a " code { "/" } " on whole paths, where "
                    code { "**" } " crosses folders (" code { "src/**/*.rs" } ")." }
            } @else if found.is_empty() {
                p { "Nothing matches " code { (pattern) } "." }
            } @else {
                p.found {
                    (found.len()) " matches"
                    @if more { ": the first " (found.len()) " only; narrow the pattern or the snapshots" }
                    "."
                }
                table {
                    tr { th { "snapshot" } th { "path" } th.num { "size" } th { "modified (UTC)" } }
                    @for (id, f) in &found {
                        @let hex = id.to_hex();
                        tr {
                            td { (snapshot_link(app, &hex, &id.short())) }
                            td {
                                @if f.kind == kast_engine::find::FoundKind::Dir {
                                    a href={ (app.base) "/snapshots/" (hex) "/browse?path=" (encode(&f.path)) } { (lossy(&f.path)) "/" }
                                } @else if f.kind == kast_engine::find::FoundKind::File {
                                    a href={ (app.base) "/snapshots/" (hex) "/view?path=" (encode(&f.path)) } { (lossy(&f.path)) }
                                } @else {
                                    (lossy(&f.path))
                                }
                            }
                            td.num { (format_bytes(f.size)) }
                            td { (format_time(f.mtime_ns)) }
                        }
                    }
                }
            }
        };
        Ok(("Find files".to_string(), body))
    })
    .await
}

#[derive(Deserialize)]
pub struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /diff?from=&to=`: what changed between two snapshots, each change
/// linking to both versions.
pub async fn diff(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Query(q): Query<DiffQuery>,
) -> Response {
    render(app, session, move |app| {
        let (Some(from), Some(to)) = (q.from.filter(|v| !v.is_empty()), q.to.filter(|v| !v.is_empty())) else {
            let body = html! {
                p { "Choose two snapshots on the " a href={ (app.base) "/snapshots" } { "snapshots page" } " (from and to), or give their ids:" }
                form.filters method="get" action={ (app.base) "/diff" } {
                    input name="from" placeholder="from (id or latest)";
                    input name="to" placeholder="to (id or latest)";
                    button type="submit" { "Compare" }
                }
            };
            return Ok(("Compare two snapshots".to_string(), body));
        };
        let (from_id, from_snap) = api::snapshot(app, &from)?;
        let (to_id, to_snap) = api::snapshot(app, &to)?;
        let index = app.store.index()?;
        let changes = browse::diff(&app.store, &index, &from_snap.root, &to_snap.root)?;
        let (old, new) = (from_id.to_hex(), to_id.to_hex());
        let version = |hex: &str, path: &[u8], label: &str| html! {
            a href={ (app.base) "/snapshots/" (hex) "/view?path=" (encode(path)) } { (label) }
        };
        let body = html! {
            p {
                "From " (snapshot_link(app, &old, &from_id.short())) " (" (format_time(from_snap.time_ns)) ") to "
                (snapshot_link(app, &new, &to_id.short())) " (" (format_time(to_snap.time_ns)) "): "
                (changes.len()) " changes."
            }
            table {
                tr { th { "change" } th { "path" } th.num { "size before" } th.num { "size after" } th { "versions" } }
                @for c in &changes {
                    tr {
                        td { (crate::views::change_name(c.kind)) }
                        td { (c.path_lossy()) }
                        td.num { @if let Some(size) = c.old_size { (format_bytes(size)) } }
                        td.num { @if let Some(size) = c.new_size { (format_bytes(size)) } }
                        td {
                            @if c.kind != ChangeKind::Added && c.old_size.is_some() { (version(&old, &c.path, "before")) " " }
                            @if c.kind != ChangeKind::Removed && c.new_size.is_some() { (version(&new, &c.path, "after")) }
                        }
                    }
                }
            }
        };
        Ok(("Changes".to_string(), body))
    })
    .await
}

/// `GET /plugins`: the connectors kast can use, and what each may reach.
pub async fn plugins(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
) -> Response {
    render(app, session, |app| {
        let listed = app
            .host
            .registry()
            .list()
            .map_err(|e| ApiError(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let body = html! {
            table {
                tr { th { "name" } th { "version" } th { "roles" } th { "schemes" } th { "origin" } th { "may reach" } }
                @for l in &listed {
                    tr {
                        td { (l.info.name) }
                        td { (l.info.version) }
                        td { (l.info.roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")) }
                        td { (l.info.schemes.join(", ")) }
                        td { @if l.builtin { "built in" } @else { "installed" } }
                        td { (crate::views::reach(l)) }
                    }
                }
            }
        };
        Ok(("Plugins".to_string(), body))
    })
    .await
}

/// A form that restores `path` of a snapshot to a location, as a job.
fn restore_form(snapshot: &str, path: &[u8]) -> Markup {
    html! {
        h2 { "Restore" }
        form.filters data-job="/api/restore" {
            input type="hidden" name="snapshot" value=(snapshot);
            input type="hidden" name="path_encoded" value=(encode(path));
            input name="to" placeholder="to: a folder, a location URL or @name" required size="40" aria-label="restore to";
            label { input type="checkbox" name="overwrite"; " replace existing files" }
            button type="submit" { "Restore " @if path.is_empty() { "the snapshot" } @else { (lossy(path)) } }
            span.bad.error role="alert" hidden {}
        }
    }
}

/// `GET /check`: starts a check of the whole store.
pub async fn check(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
) -> Response {
    render(app, session, |_| {
        let body = html! {
            p { "A full check reads every pack and verifies every byte; a fast one checks the structure (snapshots, trees, the index) without reading pack data." }
            form.filters data-job="/api/check" {
                input type="hidden" name="fast" value="false";
                button type="submit" { "Full check" }
                span.bad.error role="alert" hidden {}
            }
            form.filters data-job="/api/check" {
                input type="hidden" name="fast" value="true";
                button type="submit" { "Fast check" }
                span.bad.error role="alert" hidden {}
            }
        };
        Ok(("Check the store".to_string(), body))
    })
    .await
}

/// `GET /jobs/{id}`: a job's live progress (the script polls the API) and
/// its outcome.
pub async fn job(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Path(id): Path<u64>,
) -> Response {
    render(app, session, move |app| {
        let job = app
            .tasks
            .get(id)
            .ok_or_else(|| ApiError(axum::http::StatusCode::NOT_FOUND, format!("no job {id}")))?;
        let kind = job.json(id)["kind"].as_str().unwrap_or("job").to_string();
        let body = html! {
            div data-job-id=(id) {
                p { "State: " strong.state { "…" } " · " span.amount { } }
                progress.bar max="1" {}
                div.outcome {}
            }
            noscript { p { "This page follows the job with JavaScript; " a href={ (app.base) "/api/jobs/" (id) } { "its JSON" } " shows the same." } }
        };
        Ok((format!("{} (job {id})", capitalized(&kind)), body))
    })
    .await
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
