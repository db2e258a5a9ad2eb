//! The pages, rendered on the server. Each is a plain HTML document that
//! reads the same engine calls as the API; no script is needed to read
//! them.

use super::App;
use crate::spec::{format_bytes, format_time};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;
use std::sync::Arc;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page around `body`, titled `title`.
fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · kast</title></head><body><h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    );
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'",
            ),
        ],
        Html(html),
    )
        .into_response()
}

/// `GET /`: the store overview: what it holds, and the newest snapshots.
pub async fn overview(State(app): State<Arc<App>>) -> Response {
    let built = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let list = app.catalog.snapshots(&app.store).map_err(|e| e.to_string())?;
        let summary = crate::views::store(&app.store, &list.all, list.damaged)
            .map_err(|e| e.to_string())?;
        let number = |key: &str| summary[key].as_u64().unwrap_or(0);
        let mut body = String::new();
        let _ = write!(
            body,
            "<table><tr><th>location</th><td>{}</td></tr>\
             <tr><th>snapshots</th><td>{}</td></tr>\
             <tr><th>stored</th><td>{} in {} packs</td></tr>\
             <tr><th>logical</th><td>{} ({:.1}× after dedup and compression)</td></tr></table>",
            escape(&app.store.location()),
            list.all.len(),
            format_bytes(number("stored_bytes")),
            number("packs"),
            format_bytes(number("logical_bytes")),
            summary["dedup_ratio"].as_f64().unwrap_or(0.0)
        );
        body.push_str("<h2>Newest snapshots</h2><table><tr><th>id</th><th>time (UTC)</th><th>source</th><th>host</th><th>size</th></tr>");
        for (id, s) in list.all.iter().rev().take(20) {
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                id.short(),
                format_time(s.time_ns),
                escape(&s.source),
                escape(&s.host),
                format_bytes(s.summary.logical_bytes)
            );
        }
        body.push_str("</table>");
        Ok(body)
    })
    .await;
    match built {
        Ok(Ok(body)) => page("Store", &body),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            page("Error", &escape(&e)),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
