//! `GET /metrics`: the Prometheus text exposition format, written by hand (a few gauges and one counter do
//! not need a crate). Card counts and running workers are read from each served board at scrape time;
//! SSE clients and HTTP requests are counted in memory by this server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, App, blocking};
use crate::model::Status;
use crate::store::TaskFilter;

#[derive(Default)]
pub struct Metrics {
    pub sse_clients: AtomicI64,
    /// Requests by (route pattern, status code).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

/// The middleware: count every request by its route pattern (not its path: ids would make the series
/// unbounded) and status.
pub async fn count(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or("unmatched".into());
    let response = next.run(request).await;
    let mut requests = app.metrics.requests.lock().unwrap_or_else(|e| e.into_inner());
    *requests.entry((route, response.status().as_u16())).or_default() += 1;
    response
}

pub async fn render(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let reader = app.clone();
    let boards = blocking(move || {
        let mut boards = Vec::new();
        for row in crate::views::BoardRow::list(&reader.home, reader.only_board.as_deref())? {
            // A board that cannot be read right now is left out of this scrape, not an error for all.
            let Ok(board) = reader.home.open_board(&row.slug) else { continue };
            let Ok(mut store) = board.open_store() else { continue };
            let stats = store.stats()?;
            let running = TaskFilter { status: Some(Status::Running), ..Default::default() };
            let mut by_profile: BTreeMap<String, i64> = BTreeMap::new();
            store.for_each_task(&running, |task| {
                *by_profile.entry(task.assignee.unwrap_or_else(|| "none".into())).or_default() += 1;
                Ok(())
            })?;
            boards.push((row.slug, stats.by_status, by_profile));
        }
        Ok(boards)
    })
    .await?;
    let mut out = String::new();
    out.push_str("# HELP kanban_cards Cards by board and status.\n# TYPE kanban_cards gauge\n");
    for (slug, by_status, _) in &boards {
        for status in Status::names() {
            let n = by_status.get(status).copied().unwrap_or(0);
            let _ = writeln!(out, "kanban_cards{{board=\"{}\",status=\"{status}\"}} {n}", label(slug));
        }
    }
    out.push_str(
        "# HELP kanban_running_workers Running cards by board and profile.\n# TYPE kanban_running_workers gauge\n",
    );
    for (slug, _, by_profile) in &boards {
        for (profile, n) in by_profile {
            let _ = writeln!(
                out,
                "kanban_running_workers{{board=\"{}\",profile=\"{}\"}} {n}",
                label(slug),
                label(profile)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP kanban_sse_clients Connected event-stream clients.\n# TYPE kanban_sse_clients gauge\nkanban_sse_clients {}",
        app.metrics.sse_clients.load(Ordering::Relaxed)
    );
    out.push_str(
        "# HELP kanban_http_requests_total HTTP requests by route and status.\n# TYPE kanban_http_requests_total counter\n",
    );
    let requests = app.metrics.requests.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for ((route, status), n) in requests {
        let _ = writeln!(
            out,
            "kanban_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            label(&route)
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response())
}

/// A label value escaped as the exposition format wants.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
