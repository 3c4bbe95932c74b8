//! The web board itself (docs/web.md): three static files embedded in the binary and served at `/`,
//! `/app.css` and `/app.js`. No build step: plain HTML, CSS and an ES module that speaks only to the JSON API
//! and the event stream of this server. The page passes the same [`super::guard`] as every route (Host
//! check, token), and is sent with a Content-Security-Policy that allows only this server's own files: no
//! inline script, no other origin, no framing. Card text is never parsed as HTML by the page (it builds
//! DOM nodes with `textContent`); the policy is the second wall.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::App;

const INDEX: &str = include_str!("assets/index.html");
const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// What the page may load and do: its own files and API only. `img-src data:` for the empty favicon.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'";

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/app.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Small and embedded: always revalidated, so a new binary's page is never mixed with an old one.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}
