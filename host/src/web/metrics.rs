//! `GET /metrics`: the Prometheus text exposition format, written by hand (a few gauges, counters and one
//! histogram do not need a crate). Card counts and running workers are read from each served board at
//! scrape time; SSE clients and HTTP requests are counted in memory by this server. Spawns, run outcomes,
//! breaker trips and policy errors and quarantines are counted from each board's events since this server
//! started: a scrape reads only how many events of each kind came after the last one it counted
//! ([`crate::store::Store::event_tally`]), never the events themselves. Ticks, their durations and policy
//! calls come from the daemon's loop ([`TickStats`]), under `daemon --serve` only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, App, blocking};
use crate::board::Home;
use crate::dispatch::daemon::{TICK_BUCKETS, TickStats};
use crate::model::{EventKind, Outcome, Status};
use crate::store::TaskFilter;

pub struct Metrics {
    pub sse_clients: AtomicI64,
    /// Requests by (route pattern, status code).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Events counted per board since this server started.
    tallies: Mutex<BTreeMap<String, Tally>>,
    /// The daemon's loop, under `daemon --serve`.
    ticks: Option<Arc<TickStats>>,
}

/// One board's events since this server started, by (kind, about a run).
#[derive(Default)]
struct Tally {
    /// The newest event counted.
    last: i64,
    counts: BTreeMap<(String, bool), u64>,
}

impl Tally {
    fn get(&self, kind: EventKind, on_run: Option<bool>) -> u64 {
        self.counts
            .iter()
            .filter(|((k, run), _)| k == kind.as_str() && on_run.is_none_or(|r| r == *run))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Metrics {
    /// Counting starts now: each served board's events so far are left out (a board that appears later
    /// is counted from its first event).
    pub fn new(home: &Home, only_board: Option<&str>, ticks: Option<Arc<TickStats>>) -> Metrics {
        let mut tallies = BTreeMap::new();
        let slugs = match only_board {
            Some(slug) => vec![slug.to_string()],
            None => home.board_slugs().unwrap_or_default(),
        };
        for slug in slugs {
            let last = super::outside_runtime(|| {
                home.open_board(&slug).and_then(|b| Ok(b.open_store()?.last_event_id()?))
            });
            if let Ok(last) = last {
                tallies.insert(slug, Tally { last, counts: BTreeMap::new() });
            }
        }
        Metrics {
            sse_clients: AtomicI64::new(0),
            requests: Mutex::new(BTreeMap::new()),
            tallies: Mutex::new(tallies),
            ticks,
        }
    }
}

/// A counter family, one series per board.
struct PerBoard {
    name: &'static str,
    help: &'static str,
    kind: EventKind,
}

const PER_BOARD: [PerBoard; 4] = [
    PerBoard {
        name: "kanban_spawns_total",
        help: "Workers started (worker_started events) since this server started.",
        kind: EventKind::WorkerStarted,
    },
    PerBoard {
        name: "kanban_breaker_trips_total",
        help: "Cards the breaker blocked (gave_up events) since this server started.",
        kind: EventKind::GaveUp,
    },
    PerBoard {
        name: "kanban_policy_errors_total",
        help: "Failed policy calls (policy_error events) since this server started.",
        kind: EventKind::PolicyError,
    },
    PerBoard {
        name: "kanban_policy_quarantines_total",
        help: "Policies quarantined (policy_quarantined events) since this server started.",
        kind: EventKind::PolicyQuarantined,
    },
];

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
            let mut tallies = reader.metrics.tallies.lock().unwrap_or_else(|e| e.into_inner());
            let tally = tallies.entry(row.slug.clone()).or_default();
            // A board removed and made again starts its ids over: count it from its start.
            if store.last_event_id()? < tally.last {
                *tally = Tally::default();
            }
            let new = store.event_tally(tally.last)?;
            tally.last = new.last;
            for (kind, on_run, n) in new.counts {
                *tally.counts.entry((kind, on_run)).or_default() += n;
            }
            let counted: Vec<u64> = PER_BOARD.iter().map(|f| tally.get(f.kind, None)).collect();
            let outcomes: Vec<(&str, u64)> = Outcome::ALL
                .iter()
                .map(|o| (o.as_str(), tally.get(EventKind::of_outcome(*o), Some(true))))
                .collect();
            drop(tallies);
            let running = TaskFilter { status: Some(Status::Running), ..Default::default() };
            let mut by_profile: BTreeMap<String, i64> = BTreeMap::new();
            store.for_each_task(&running, |task| {
                *by_profile.entry(task.assignee.unwrap_or_else(|| "none".into())).or_default() += 1;
                Ok(())
            })?;
            boards.push((row.slug, stats.by_status, by_profile, counted, outcomes));
        }
        Ok(boards)
    })
    .await?;
    let mut out = String::new();
    out.push_str("# HELP kanban_cards Cards by board and status.\n# TYPE kanban_cards gauge\n");
    for (slug, by_status, ..) in &boards {
        for status in Status::names() {
            let n = by_status.get(status).copied().unwrap_or(0);
            let _ = writeln!(out, "kanban_cards{{board=\"{}\",status=\"{status}\"}} {n}", label(slug));
        }
    }
    out.push_str(
        "# HELP kanban_running_workers Running cards by board and profile.\n# TYPE kanban_running_workers gauge\n",
    );
    for (slug, _, by_profile, ..) in &boards {
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
    for (i, family) in PER_BOARD.iter().enumerate() {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} counter", family.name, family.help, family.name);
        for (slug, _, _, counted, _) in &boards {
            let _ = writeln!(out, "{}{{board=\"{}\"}} {}", family.name, label(slug), counted[i]);
        }
    }
    out.push_str(
        "# HELP kanban_run_outcomes_total Runs settled, by outcome, since this server started.\n# TYPE kanban_run_outcomes_total counter\n",
    );
    for (slug, _, _, _, outcomes) in &boards {
        for (kind, n) in outcomes {
            let _ =
                writeln!(out, "kanban_run_outcomes_total{{board=\"{}\",kind=\"{kind}\"}} {n}", label(slug));
        }
    }
    if let Some(ticks) = &app.metrics.ticks {
        daemon_families(&mut out, ticks);
    }
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

/// The families of the daemon's loop: ticks, their durations, policy calls.
fn daemon_families(out: &mut String, ticks: &TickStats) {
    let t = ticks.snapshot();
    let _ = writeln!(
        out,
        "# HELP kanban_ticks_total Daemon ticks (one pass over every board it serves).\n# TYPE kanban_ticks_total counter\nkanban_ticks_total {}",
        t.ticks
    );
    out.push_str(
        "# HELP kanban_tick_duration_seconds How long a daemon tick took.\n# TYPE kanban_tick_duration_seconds histogram\n",
    );
    for (bound, n) in TICK_BUCKETS.iter().zip(&t.le) {
        let _ = writeln!(out, "kanban_tick_duration_seconds_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "kanban_tick_duration_seconds_bucket{{le=\"+Inf\"}} {}", t.ticks);
    let _ = writeln!(out, "kanban_tick_duration_seconds_sum {}", t.sum_seconds);
    let _ = writeln!(out, "kanban_tick_duration_seconds_count {}", t.ticks);
    let _ = writeln!(
        out,
        "# HELP kanban_policy_calls_total Policy plugin calls by the daemon's ticks.\n# TYPE kanban_policy_calls_total counter\nkanban_policy_calls_total {}",
        t.policy_calls
    );
}

/// A label value escaped as the exposition format wants.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
