//! Who may use the UI: whoever opened the login URL `kast ui` printed.
//!
//! The URL carries a one-run login token; opening it sets a session cookie
//! (HttpOnly, SameSite=Strict) and redirects to the same page without the
//! token, so the token does not linger in the address bar or history.
//! Every other request needs that cookie; a request that changes anything
//! (any method but GET and HEAD) also needs the session's CSRF token in the
//! `x-csrf-token` header, which the pages read from a meta tag and scripts
//! from `GET /api/session`.

use super::App;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const COOKIE: &str = "kast_session";

/// One browser's session.
#[derive(Clone)]
pub struct Session {
    pub csrf: String,
}

/// The login token and the sessions it opened.
pub struct Auth {
    login_token: String,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Auth {
    pub fn new() -> anyhow::Result<Auth> {
        Ok(Auth {
            login_token: kast_engine::crypto::random_name(32)?,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    pub fn login_token(&self) -> &str {
        &self.login_token
    }

    fn open_session(&self) -> anyhow::Result<String> {
        let id = kast_engine::crypto::random_name(32)?;
        let csrf = kast_engine::crypto::random_name(32)?;
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Session { csrf });
        Ok(id)
    }

    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        // Compared through the map's hash, then in constant time.
        sessions
            .iter()
            .find(|(known, _)| same(known.as_bytes(), id.as_bytes()))
            .map(|(_, s)| s.clone())
    }
}

/// Compares secrets without an early exit on the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `token` query parameter, if the URL has one.
fn token_in(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v)
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
}

/// The middleware in front of every route.
pub async fn guard(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let uri = request.uri().clone();
    if let Some(token) = token_in(uri.query()) {
        if !same(token.as_bytes(), app.auth.login_token.as_bytes()) {
            return refuse(StatusCode::UNAUTHORIZED, "wrong login token");
        }
        let Ok(id) = app.auth.open_session() else {
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
        };
        let scope = if app.base.is_empty() { "/" } else { &app.base };
        let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path={scope}");
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, uri.path().to_string()),
            ],
        )
            .into_response();
    }
    let Some(session) = app.auth.session(request.headers()) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "not logged in: open the URL `kast ui` printed",
        );
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let sent = request
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same(sent.as_bytes(), session.csrf.as_bytes()) {
            return refuse(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
        }
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}
