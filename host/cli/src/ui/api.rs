//! The JSON API under the pages (docs/ui.md). Field names are the CLI's
//! `--json` ones (`crate::views`), so a script written against one works
//! against the other. Engine calls run on tokio's blocking pool.

use super::auth::Session;
use super::{App, archive};
use crate::views;
use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kast_engine::browse::{self, Resolved};
use kast_engine::crypto::Id;
use kast_engine::index::Index;
use kast_engine::snapshot::Snapshot;
use kast_engine::tree::{Content, Metadata, Node};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// An error answer: a status and a message for the user.
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, message.into())
    }
}

impl From<kast_engine::Error> for ApiError {
    fn from(e: kast_engine::Error) -> ApiError {
        use kast_engine::Error::*;
        let status = match e {
            NoSuchPath { .. } | NoSuchSnapshot(_) => StatusCode::NOT_FOUND,
            InvalidArgument(_) | AmbiguousSnapshot(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<Json<Value>, ApiError>;

/// Runs engine work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// The `path` query parameter: a path inside a snapshot, as the bytes it
/// percent-encodes (names need not be UTF-8; `kast_plugins::location::
/// percent_encode_path` writes them). Relative, `/`-separated, no `.` or `..`
/// (refused rather than resolved, so a request can never mean something
/// other than it says); the root when absent or empty.
pub struct InSnapshot(pub Vec<u8>);

impl<S: Send + Sync> FromRequestParts<S> for InSnapshot {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<InSnapshot, ApiError> {
        let raw = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|pair| pair.strip_prefix("path="))
            .unwrap_or("");
        checked_path(&decoded(raw)).map(InSnapshot)
    }
}

/// Percent-decodes a query value (`+` is a space, as forms send it).
pub(super) fn decoded(text: &str) -> Vec<u8> {
    kast_plugins::location::percent_decode_bytes(&text.replace('+', " "))
}

fn checked_path(path: &[u8]) -> Result<Vec<u8>, ApiError> {
    if path.starts_with(b"/") {
        return Err(ApiError::bad("paths are relative to the snapshot's root"));
    }
    if path
        .split(|&b| b == b'/')
        .any(|part| part == b".." || part == b".")
    {
        return Err(ApiError::bad("a path may not contain . or .."));
    }
    let end = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    Ok(path[..end].to_vec())
}

/// A path for people and messages (names that are not UTF-8 shown with �).
pub(super) fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// The last name of a path, fit for a `filename="…"` header.
fn last_name(path: &[u8]) -> Option<String> {
    let name = path
        .rsplit(|&b| b == b'/')
        .next()
        .filter(|n| !n.is_empty())?;
    Some(lossy(name).replace(['"', '\\'], ""))
}

pub(super) fn snapshot(app: &App, text: &str) -> Result<(Id, Snapshot), ApiError> {
    app.catalog
        .find(&app.store, text)
        .map_err(ApiError::not_found)
}

/// One page of a long list: where it starts (`offset`) and how long it
/// is (`limit`, 100 unless asked, at most 1,000).
pub(super) fn window<T>(
    items: &[T],
    offset: Option<usize>,
    limit: Option<usize>,
) -> (usize, std::ops::Range<usize>) {
    let offset = offset.unwrap_or(0).min(items.len());
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    (offset, offset..(offset + limit).min(items.len()))
}

/// `GET /api/session`: the CSRF token scripts send with state changes.
pub async fn session(Extension(session): Extension<Session>) -> Json<Value> {
    Json(json!({ "csrf_token": session.csrf }))
}

/// `GET /api/store`: as `kast info --json`.
pub async fn store(State(app): State<Arc<App>>) -> Answer {
    blocking(move || {
        let list = app.catalog.snapshots(&app.store)?;
        Ok(Json(views::store(&app.store, &list.all, list.damaged)?))
    })
    .await
}

/// Which snapshots a list shows, and which page of them.
#[derive(Deserialize, Default)]
pub struct SnapshotQuery {
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    pub tag: Option<String>,
    pub source: Option<String>,
    pub host: Option<String>,
    /// Taken at or after: `YYYY-MM-DD[THH:MM[:SS]]`, UTC (as `--after`).
    pub after: Option<String>,
    /// Taken strictly before (as `--before`).
    pub before: Option<String>,
}

impl SnapshotQuery {
    /// The matching snapshots, newest first. An empty filter field (as an
    /// HTML form sends) matches everything.
    pub fn matching<'a>(
        &self,
        all: &'a [(Id, Snapshot)],
    ) -> Result<Vec<&'a (Id, Snapshot)>, ApiError> {
        let wanted = |field: &Option<String>| field.clone().filter(|v| !v.is_empty());
        let time = |field: &Option<String>| {
            wanted(field)
                .map(|text| crate::spec::parse_time(&text))
                .transpose()
                .map_err(|e| ApiError::bad(e.to_string()))
        };
        let filter = browse::SnapshotFilter {
            tags: wanted(&self.tag).into_iter().collect(),
            source: wanted(&self.source),
            host: wanted(&self.host),
            after_ns: time(&self.after)?,
            before_ns: time(&self.before)?,
        };
        Ok(all
            .iter()
            .rev()
            .filter(|(_, s)| filter.matches(s))
            .collect())
    }
}

/// `GET /api/snapshots`: newest first, filtered, one page; items as
/// `kast ls --json`.
pub async fn snapshots(State(app): State<Arc<App>>, Query(q): Query<SnapshotQuery>) -> Answer {
    blocking(move || {
        let list = app.catalog.snapshots(&app.store)?;
        let matching = q.matching(&list.all)?;
        let (offset, range) = window(&matching, q.offset, q.limit);
        Ok(Json(json!({
            "total": matching.len(), "offset": offset,
            "items": matching[range].iter().map(|(id, s)| views::snapshot(id, s)).collect::<Vec<_>>(),
        })))
    })
    .await
}

/// `GET /api/snapshots/{id}`: as `kast info SNAPSHOT --json`.
pub async fn snapshot_detail(State(app): State<Arc<App>>, Path(id): Path<String>) -> Answer {
    blocking(move || {
        let (id, snap) = snapshot(&app, &id)?;
        Ok(Json(views::snapshot_detail(&id, &snap)))
    })
    .await
}

/// Which page of a directory (the directory is the `path` parameter).
#[derive(Deserialize)]
pub struct TreeQuery {
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

/// The entries of a snapshot's directory, by name.
pub(super) fn directory(
    app: &App,
    id: &str,
    path: &[u8],
) -> Result<(Id, Snapshot, Arc<Vec<Node>>), ApiError> {
    let (id, snap) = snapshot(app, id)?;
    let nodes = app.listings.get_or_read(&snap.root, path, || {
        let index = app.store.index()?;
        browse::list(&app.store, &index, (&id, &snap), path)
    })?;
    Ok((id, snap, nodes))
}

/// `GET /api/snapshots/{id}/tree?path=`: one page of a directory, by name;
/// items as `kast ls SNAPSHOT:PATH --json`.
pub async fn tree(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    InSnapshot(path): InSnapshot,
    Query(q): Query<TreeQuery>,
) -> Answer {
    blocking(move || {
        let (_, _, nodes) = directory(&app, &id, &path)?;
        let (offset, range) = window(&nodes, q.offset, q.limit);
        Ok(Json(json!({
            "path": lossy(&path), "total": nodes.len(), "offset": offset,
            "items": nodes[range].iter().map(views::node).collect::<Vec<_>>(),
        })))
    })
    .await
}

#[derive(Deserialize)]
pub struct FileQuery {
    /// Any value: sent as an attachment (the browser saves it).
    download: Option<String>,
}

/// The file at `path` in a snapshot (an error for anything else), the
/// snapshot's id, and the index it was found with (for reading it: loading
/// the index lists the store's states, once per request is enough).
pub(super) fn file_node(app: &App, id: &str, path: &[u8]) -> Result<(Id, Node, Index), ApiError> {
    let (id, snap) = snapshot(app, id)?;
    let index = app.store.index()?;
    match browse::resolve_path(&app.store, &index, (&id, &snap), path)? {
        Resolved::Node(node) if matches!(node.content, Content::File { .. }) => {
            Ok((id, node, index))
        }
        _ => Err(ApiError::bad(format!("{} is not a file", lossy(path)))),
    }
}

/// The type to send a file as when shown in the page: images by their
/// extension (so an `<img>` shows them), anything else as plain bytes.
pub(super) fn shown_type(path: &[u8]) -> &'static str {
    let extension = lossy(path)
        .rsplit('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => "application/octet-stream",
    }
}

/// `GET /api/snapshots/{id}/file?path=`: a file's bytes, streamed as they
/// are decrypted (never held whole).
pub async fn file(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    InSnapshot(path): InSnapshot,
    Query(q): Query<FileQuery>,
) -> Result<Response, ApiError> {
    let (_, node, index) = {
        let app = app.clone();
        let path = path.clone();
        blocking(move || file_node(&app, &id, &path)).await?
    };
    let size = node.meta.size;
    let body = streamed(move |out| {
        browse::cat(&app.store, &index, &node, out)?;
        Ok(())
    });
    let name = last_name(&path).unwrap_or_else(|| "file".into());
    let disposition = if q.download.is_some() {
        format!("attachment; filename=\"{name}\"")
    } else {
        "inline".to_string()
    };
    Ok((
        [
            (header::CONTENT_TYPE, shown_type(&path).to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        body,
    )
        .into_response())
}

/// A response body that `write` fills from a blocking thread, a piece at a
/// time (at most four pieces wait for the client). When `write` fails the
/// client sees a cut-short body, and the reason goes to the server's log.
fn streamed(
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<(), Box<dyn std::error::Error>>
    + Send
    + 'static,
) -> Body {
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter(sender.clone());
        if let Err(e) = write(&mut out) {
            eprintln!("kast ui: a download stopped: {e}");
            let _ = sender.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|piece| (piece, receiver))
    });
    Body::from_stream(stream)
}

/// `GET /api/snapshots/{id}/tar?path=`: a folder (the whole snapshot when
/// `path` is empty) and everything under it, as a tar stream.
pub async fn tar(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    InSnapshot(path): InSnapshot,
) -> Result<Response, ApiError> {
    let (id, meta, nodes, index) = {
        let app = app.clone();
        let path = path.clone();
        blocking(move || folder(&app, &id, &path)).await?
    };
    // The archive's top folder: the folder's own name, or the snapshot's
    // short id for a whole snapshot (never entries loose in the current
    // directory of whoever extracts it).
    let top = match path.rsplit(|&b| b == b'/').next() {
        Some(name) if !name.is_empty() => name.to_vec(),
        _ => format!("kast-{}", id.short()).into_bytes(),
    };
    let disposition = format!(
        "attachment; filename=\"{}.tar\"",
        last_name(&top).unwrap_or_default()
    );
    let body = streamed(move |out| {
        let folder = archive::Folder {
            top: &top,
            meta,
            nodes,
        };
        archive::write_tar(&app.store, &index, folder, out)?;
        Ok(())
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// The folder at `path`, checked to be one: the snapshot's id, the
/// folder's metadata, its entries and the index they were read with.
fn folder(app: &App, id: &str, path: &[u8]) -> Result<(Id, Metadata, Vec<Node>, Index), ApiError> {
    let (id, snap) = snapshot(app, id)?;
    let index = app.store.index()?;
    match browse::resolve_path(&app.store, &index, (&id, &snap), path)? {
        Resolved::Root(tree) => Ok((id, root_meta(&snap), tree.nodes, index)),
        Resolved::Node(Node {
            meta,
            content: Content::Dir { tree },
            ..
        }) => {
            let nodes = app.store.read_tree(&index, &tree)?.nodes;
            Ok((id, meta, nodes, index))
        }
        Resolved::Node(_) => Err(ApiError::bad(format!("{} is not a folder", lossy(path)))),
    }
}

/// A snapshot's root folder in an archive: readable, dated as the snapshot.
fn root_meta(snap: &Snapshot) -> Metadata {
    Metadata {
        mode: libc::S_IFDIR | 0o755,
        mtime_ns: snap.time_ns,
        ctime_ns: snap.time_ns,
        ..Default::default()
    }
}

/// Hands what the engine writes to the response body, a piece at a time.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(buf.to_vec()))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Deserialize)]
pub struct DiffQuery {
    from: String,
    to: String,
}

/// `GET /api/diff?from=&to=`: as `kast diff --json`.
pub async fn diff(State(app): State<Arc<App>>, Query(q): Query<DiffQuery>) -> Answer {
    blocking(move || {
        let (_, from) = snapshot(&app, &q.from)?;
        let (_, to) = snapshot(&app, &q.to)?;
        let index = app.store.index()?;
        let changes = browse::diff(&app.store, &index, &from.root, &to.root)?;
        Ok(Json(json!(
            changes.iter().map(views::change).collect::<Vec<_>>()
        )))
    })
    .await
}

/// What `GET /api/find` and the search page take: the pattern and the
/// snapshot filters of `kast find`, and how many matches to return.
#[derive(Deserialize, Default)]
pub struct FindQuery {
    pub pattern: Option<String>,
    /// Any value but empty ignores case (an HTML checkbox sends `on`).
    pub ignore_case: Option<String>,
    pub limit: Option<usize>,
    pub tag: Option<String>,
    pub source: Option<String>,
    pub host: Option<String>,
    pub after: Option<String>,
    pub before: Option<String>,
}

/// Matches at most, when a request names no limit.
pub const FIND_LIMIT: usize = 1000;

/// The matches of a search, newest snapshot first, and whether there were
/// more than `limit` (the search stops there).
pub fn find_matches(
    app: &App,
    q: &FindQuery,
) -> Result<(Vec<(Id, kast_engine::find::Found)>, bool), ApiError> {
    let text = q.pattern.clone().unwrap_or_default();
    if text.is_empty() {
        return Ok((Vec::new(), false));
    }
    let ignore_case = q.ignore_case.as_ref().is_some_and(|v| !v.is_empty());
    let pattern = crate::commands::browse::FindPattern::new(&text, ignore_case)
        .map_err(|e| ApiError::bad(format!("{e:#}")))?;
    let filters = SnapshotQuery {
        tag: q.tag.clone(),
        source: q.source.clone(),
        host: q.host.clone(),
        after: q.after.clone(),
        before: q.before.clone(),
        ..SnapshotQuery::default()
    };
    let list = app.catalog.snapshots(&app.store)?;
    let snapshots: Vec<_> = filters.matching(&list.all)?.into_iter().cloned().collect();
    let index = app.store.index()?;
    let limit = q.limit.unwrap_or(FIND_LIMIT);
    let mut found = Vec::new();
    let mut more = false;
    let searched = pattern.search(&app.store, &index, &snapshots, &mut |id, f| {
        if found.len() == limit {
            more = true;
            return Err(kast_engine::Error::Interrupted);
        }
        found.push((*id, f.clone()));
        Ok(())
    });
    match searched {
        Err(kast_engine::Error::Interrupted) if more => {}
        Err(e) => return Err(e.into()),
        Ok(stats) => {
            if let Some((tree, e)) = stats.unreadable.first() {
                return Err(ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("tree {} cannot be read: {e} (run a check)", tree.short()),
                ));
            }
        }
    }
    Ok((found, more))
}

/// `GET /api/find?pattern=`: as `kast find --json`, newest snapshot first,
/// at most `limit` (1000) matches.
pub async fn find(State(app): State<Arc<App>>, Query(q): Query<FindQuery>) -> Answer {
    blocking(move || {
        let (found, _) = find_matches(&app, &q)?;
        Ok(Json(json!(
            found
                .iter()
                .map(|(id, f)| views::found(id, f))
                .collect::<Vec<_>>()
        )))
    })
    .await
}

/// `GET /api/plugins`: as `kast plugin list --json`.
pub async fn plugins(State(app): State<Arc<App>>) -> Answer {
    blocking(move || {
        let listed = app
            .host
            .registry()
            .list()
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(Json(json!(
            listed.iter().map(views::plugin).collect::<Vec<_>>()
        )))
    })
    .await
}

/// What `POST /api/restore` takes.
#[derive(Deserialize)]
pub struct RestoreRequest {
    /// `latest` or an id prefix.
    snapshot: String,
    /// A folder or file in the snapshot; the whole snapshot when empty.
    path: Option<String>,
    /// The same, percent-encoded (for names that are not UTF-8, which JSON
    /// strings cannot carry); wins over `path`. The pages send this one.
    path_encoded: Option<String>,
    /// Where to: a local path, a location URL or a saved `@name`, as
    /// `kast restore --to`.
    to: String,
    /// Replace files that exist there (as `--force`).
    #[serde(default)]
    overwrite: bool,
}

/// `POST /api/restore`: starts a restore job; answers `{"job": id}`. The
/// result, once done, is as `kast restore --json`.
pub async fn restore(State(app): State<Arc<App>>, Json(r): Json<RestoreRequest>) -> Answer {
    let path = match (&r.path_encoded, &r.path) {
        (Some(encoded), _) => checked_path(&decoded(encoded))?,
        (None, path) => checked_path(path.as_deref().unwrap_or("").as_bytes())?,
    };
    if r.to.trim().is_empty() {
        return Err(ApiError::bad("say where to restore to"));
    }
    let job = blocking(move || {
        let (id, snap) = snapshot(&app, &r.snapshot)?;
        let to = crate::commands::location::resolve(&app.dirs, &r.to)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        let destination = app
            .host
            .destination(&to)
            .map_err(|e| ApiError::bad(format!("cannot write to {}: {e}", r.to)))?;
        let total = path.is_empty().then_some(snap.summary.logical_bytes);
        let snap = snap.clone();
        let worker = app.clone();
        Ok(app.tasks.start("restore", total, move |job| {
            let options = kast_engine::RestoreOptions {
                overwrite: match r.overwrite {
                    true => kast_engine::Overwrite::Always,
                    false => kast_engine::Overwrite::Refuse,
                },
                progress: job,
                ..Default::default()
            };
            kast_engine::restore(&worker.store, &id, &path, &destination, &options)
                .map(|outcome| views::restored(&id, &snap, &outcome))
                .map_err(|e| e.to_string())
        }))
    })
    .await?;
    Ok(Json(json!({ "job": job })))
}

/// What `POST /api/check` takes.
#[derive(Deserialize)]
pub struct CheckRequest {
    /// Structure only, no pack data (as `--fast`).
    #[serde(default)]
    fast: bool,
}

/// `POST /api/check`: starts a check of the whole store; answers
/// `{"job": id}`. The result, once done, is as `kast check --json`.
pub async fn check(State(app): State<Arc<App>>, Json(r): Json<CheckRequest>) -> Answer {
    let worker = app.clone();
    let job = app.tasks.start("check", None, move |job| {
        let options = kast_engine::check::CheckOptions {
            fast: r.fast,
            progress: job,
            ..Default::default()
        };
        kast_engine::check::check(&worker.store, &options)
            .map(|report| views::check_report(&report))
            .map_err(|e| e.to_string())
    });
    Ok(Json(json!({ "job": job })))
}

/// `GET /api/jobs/{id}`: a job's progress and, once over, its outcome.
pub async fn job(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Answer {
    let job = app
        .tasks
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(Json(job.json(id)))
}
