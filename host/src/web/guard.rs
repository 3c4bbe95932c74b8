//! Who may ask what. Every request passes [`check`] before it reaches a route:
//!
//! 1. The `Host` header must name this server (its listen address, `localhost`, `127.0.0.1` or `[::1]`, with
//!    its port): a page on another site that rebinds its own name to 127.0.0.1 (DNS rebinding) is refused
//!    with 403. A server listening on every address (0.0.0.0, ::) cannot know its names and requires the
//!    token instead.
//! 2. With a token (`--token-file`, or generated because the address is not loopback), every request must
//!    carry `Authorization: Bearer TOKEN`, or the session cookie a page gets from `POST /api/v1/login` with
//!    the token: 401 otherwise. Only the page's own files (which hold no data) and the login are served
//!    without. A request that authenticates with the cookie (which a browser sends by itself) is held to the
//!    CSRF rule of 4 as well.
//! 3. `--read-only` refuses every POST, PATCH and DELETE with 403.
//! 4. Unless it carries the bearer token, a POST, PATCH or DELETE must carry `X-Kanban-CSRF` with the token this
//!    server generated at start (`GET /api/v1/session` hands it to same-origin pages): 403 otherwise. A
//!    cross-site page can send a request but cannot read the session document, so it cannot forge one.
//!
//! Tokens are compared in constant time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, App};
use crate::board::Home;

/// The header a browser page sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-kanban-csrf";

/// The cookie `POST /api/v1/login` sets: the token itself, `HttpOnly` (no script reads it) and
/// `SameSite=Strict` (no other site's page makes the browser send it).
pub const SESSION_COOKIE: &str = "kanban_token";

/// What is served without the token: the page's files (they hold no board data) and the login.
fn open_path(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD => matches!(path, "/" | "/app.css" | "/app.js"),
        Method::POST => path == "/api/v1/login",
        _ => false,
    }
}

pub struct Guard {
    /// Required on every request when set.
    token: Option<String>,
    /// Required on state-changing requests when there is no token.
    pub csrf: String,
    pub read_only: bool,
    /// `Host` values that name this server; `None` when listening on every address.
    hosts: Option<Vec<String>>,
}

impl Guard {
    /// The rules for a server bound to `addr`. Returns a line to print once when a token was generated.
    pub fn new(
        home: &Home,
        addr: SocketAddr,
        token_file: Option<&Path>,
        read_only: bool,
    ) -> anyhow::Result<(Guard, Option<String>)> {
        let mut notice = None;
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the token file {}", path.display()))?;
                let token = text.trim().to_string();
                if token.len() < 16 || token.chars().any(char::is_whitespace) {
                    return Err(crate::ops::input::UsageError(format!(
                        "the token in {} must be one word of at least 16 characters",
                        path.display()
                    ))
                    .into());
                }
                Some(token)
            }
            None if !addr.ip().is_loopback() => {
                let token = random_hex()?;
                let path = home.root().join("serve.token");
                write_secret(&path, &token)?;
                notice = Some(format!(
                    "token (send as `Authorization: Bearer TOKEN`; saved to {}): {token}",
                    path.display()
                ));
                Some(token)
            }
            None => None,
        };
        let hosts = (!addr.ip().is_unspecified()).then(|| {
            let port = addr.port();
            let mut hosts = vec![addr.to_string(), format!("localhost:{port}"), format!("127.0.0.1:{port}")];
            hosts.push(format!("[::1]:{port}"));
            hosts.dedup();
            hosts
        });
        Ok((Guard { token, csrf: random_hex()?, read_only, hosts }, notice))
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(hosts) = &self.hosts else { return true };
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
        hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Does the request carry this server's bearer token?
    fn bearer(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else { return false };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|given| same(given.trim(), token))
    }

    /// Does the request carry the session cookie with this server's token?
    fn cookie(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else { return false };
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == SESSION_COOKIE && same(value, token))
    }

    /// The `Set-Cookie` value for a page that gave `given`, or `None` when it is not this server's token
    /// (or the server has none).
    pub fn login(&self, given: &str) -> Option<String> {
        let token = self.token.as_ref()?;
        same(given.trim(), token)
            .then(|| format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"))
    }

    /// Does the server require a token?
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn csrf_ok(&self, headers: &HeaderMap) -> bool {
        headers.get(CSRF_HEADER).and_then(|h| h.to_str().ok()).is_some_and(|given| same(given, &self.csrf))
    }

    /// Is a request from a page on another origin? (An `Origin` header that does not name this server.)
    pub fn cross_origin(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) else { return false };
        let Some(hosts) = &self.hosts else { return false };
        let host = origin.strip_prefix("http://").unwrap_or("");
        !hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// The middleware: refuse what the rules above refuse, pass the rest.
pub async fn check(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match verdict(&app.guard, request.method(), request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

fn verdict(guard: &Guard, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    if !guard.host_allowed(headers) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Host '{host}' does not name this server (DNS rebinding is refused)"),
        ));
    }
    if open_path(method, path) {
        return Ok(());
    }
    let bearer = guard.bearer(headers);
    if guard.token.is_some() && !bearer && !guard.cookie(headers) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this server requires `Authorization: Bearer TOKEN` (the token of --token-file or <home>/serve.token)",
        ));
    }
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && guard.read_only {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the server is read-only (--read-only): {method} is refused"),
        ));
    }
    if changes && !bearer && !guard.csrf_ok(headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{method} needs the `X-Kanban-CSRF` header with the token of GET /api/v1/session"),
        ));
    }
    Ok(())
}

/// Constant-time equality: how much of a token matched does not show in the response time.
fn same(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes as hex.
fn random_hex() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(hex::encode(bytes))
}

/// Write a secret readable only by its owner (mode 0600 from creation, never wider).
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
