//! `kast ui`: the web interface. One axum server (on a small tokio runtime)
//! over one open store: server-rendered pages and the JSON API they use,
//! everything embedded in the binary, nothing fetched from elsewhere.
//! Loopback by default; every request needs the session the printed login
//! URL opens (see `auth`). docs/ui.md describes the API.

mod api;
mod archive;
mod auth;
pub(crate) mod catalog;
mod chart;
mod pages;
mod tasks;

use crate::context::Context;
use anyhow::{Context as _, Result};
use axum::Router;
use axum::routing::{get, post};
use kast_engine::Store;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What every handler shares.
pub struct App {
    store: Store,
    host: kast_plugins::Host,
    catalog: catalog::Catalog,
    listings: catalog::Listings,
    tasks: tasks::Tasks,
    auth: auth::Auth,
    /// The path prefix the UI is served under (`""` or `/prefix`).
    base: String,
    /// Where saved `@name` locations are read from (read again on each use,
    /// so one saved while the UI runs works at once).
    dirs: crate::context::Dirs,
}

/// How `kast ui` was asked to serve.
pub struct Options {
    pub listen: Option<SocketAddr>,
    pub open: bool,
    pub base_path: String,
}

/// `/prefix/` or `prefix` → `/prefix`; `/` or empty → empty.
fn normalized_base(text: &str) -> Result<String> {
    let trimmed = text.trim_matches('/');
    if trimmed.split('/').any(|p| p == ".." || p == ".") || trimmed.contains(['?', '#', '"']) {
        anyhow::bail!("--base-path {text:?}: give a plain path such as /kast");
    }
    Ok(if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    })
}

fn routes(app: Arc<App>) -> Router {
    let base = app.base.clone();
    let at = |path: &str| format!("{base}{path}");
    let mut router = Router::new()
        .route(&at("/"), get(pages::overview))
        .route(&at("/assets/kast.css"), get(pages::stylesheet))
        .route(&at("/assets/kast.js"), get(pages::script))
        .route(&at("/assets/kast.svg"), get(pages::icon))
        .route(&at("/check"), get(pages::check))
        .route(&at("/jobs/{id}"), get(pages::job))
        .route(&at("/snapshots"), get(pages::snapshots))
        .route(&at("/snapshots/{id}/browse"), get(pages::browse))
        .route(&at("/snapshots/{id}/view"), get(pages::view))
        .route(&at("/diff"), get(pages::diff))
        .route(&at("/find"), get(pages::find))
        .route(&at("/history"), get(pages::history))
        .route(&at("/plugins"), get(pages::plugins))
        .route(&at("/api/session"), get(api::session))
        .route(&at("/api/store"), get(api::store))
        .route(&at("/api/snapshots"), get(api::snapshots))
        .route(&at("/api/snapshots/{id}"), get(api::snapshot_detail))
        .route(&at("/api/snapshots/{id}/tree"), get(api::tree))
        .route(&at("/api/snapshots/{id}/file"), get(api::file))
        .route(&at("/api/snapshots/{id}/tar"), get(api::tar))
        .route(&at("/api/diff"), get(api::diff))
        .route(&at("/api/find"), get(api::find))
        .route(&at("/api/plugins"), get(api::plugins))
        .route(&at("/api/restore"), post(api::restore))
        .route(&at("/api/check"), post(api::check))
        .route(&at("/api/jobs/{id}"), get(api::job));
    if !base.is_empty() {
        // `/prefix` as well as `/prefix/`, as proxies forward either.
        router = router.route(&base, get(pages::overview));
    }
    router
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::guard,
        ))
        .with_state(app)
}

/// Serves until Ctrl-C (which sets `cancel`).
pub fn run(ctx: &Context, options: &Options, cancel: Arc<AtomicBool>) -> Result<()> {
    let store = ctx.open_store()?;
    store.require_full("serve the web UI, which reads the store")?;
    let app = Arc::new(App {
        store,
        host: ctx.new_host()?,
        catalog: catalog::Catalog::default(),
        listings: catalog::Listings::default(),
        tasks: tasks::Tasks::default(),
        auth: auth::Auth::new()?,
        base: normalized_base(&options.base_path)?,
        dirs: ctx.dirs.clone(),
    });
    let listen = options
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        let url = format!(
            "http://{address}{}/?token={}",
            app.base,
            app.auth.login_token()
        );
        // The first line of standard output, as scripts and tests expect.
        println!("{url}");
        std::io::stdout().flush()?;
        if !address.ip().is_loopback() {
            ctx.warn(&format!(
                "listening on {address}, reachable from other machines: anyone who \
                 learns the URL above can read this store (prefer a reverse proxy with TLS)"
            ));
        }
        // Reads the snapshot list and the index now, not on the first page
        // (a fresh local cache reads every index delta of the store).
        let warm = app.clone();
        tokio::task::spawn_blocking(move || {
            let _ = warm.catalog.snapshots(&warm.store);
            let _ = warm.store.index();
        });
        if options.open {
            open_browser(ctx, &url);
        }
        let shutdown = async move {
            while !cancel.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        };
        axum::serve(listener, routes(app))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving the UI")
    })
}

/// Opens the URL in the desktop's browser; says so when it cannot.
fn open_browser(ctx: &Context, url: &str) {
    let opened = std::process::Command::new("xdg-open")
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if opened.is_err() {
        ctx.warn("could not start a browser (xdg-open); open the URL above yourself");
    }
}
