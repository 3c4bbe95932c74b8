//! The daemon: tick every board (or one) until SIGINT or SIGTERM, idleness or a tick budget stops it.
//!
//! It reaps its exited children first on every loop, even when no board can be opened. It warns when
//! spawnable cards go unspawned for several ticks. And it follows upgrades: on SIGHUP, or when the binary
//! at its own path changes (an upgrade renamed a new file over it), it re-executes itself with the same
//! arguments between two ticks. Workers keep running under their supervisors across the restart; the next
//! tick of the new binary settles them as usual.
//!
//! With `--serve ADDR` it also runs the web server ([`crate::web::Embedded`]) on a thread of its own beside
//! the ticks, and counts its ticks into [`TickStats`] for the server's `/metrics`. The server stops with the
//! daemon; on a re-exec its listening socket is passed on to the new image (same port, connections that
//! arrive meanwhile wait in the socket's backlog).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{TickOptions, TickReport, tick};
use crate::board::{Board, Home};
use crate::clock;
use crate::model::EventKind;
use crate::policy::PolicyRuntime;

/// Consecutive ticks with spawnable cards waiting and nothing spawned before the health warning.
const HEALTH_TICKS: u32 = 6;
const HEALTH_EVERY: Duration = Duration::from_secs(300);

/// Per-board memory the daemon keeps between ticks.
#[derive(Default)]
struct Health {
    starved_ticks: u32,
    last_warning: Option<Instant>,
    /// The board's ticks failing in a row (it or its database could not be read or written).
    backoff: Backoff,
}

/// The longest a failing board waits between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Attempts failing in a row, and when to try again: a failing board is tried after a wait that doubles
/// each time, not hammered (and logged) every interval.
#[derive(Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

impl Backoff {
    /// A failed attempt: the wait before the next one doubles from `base` (at least 100 ms) up to
    /// [`MAX_BACKOFF`].
    fn failed(&mut self, base: Duration) -> Duration {
        self.failures += 1;
        let base = base.max(Duration::from_millis(100));
        let delay = base.saturating_mul(1 << self.failures.min(16)).min(MAX_BACKOFF);
        self.retry_at = Some(Instant::now() + delay);
        delay
    }

    /// An attempt that worked: how many failed before it.
    fn recovered(&mut self) -> u32 {
        self.retry_at = None;
        std::mem::take(&mut self.failures)
    }

    fn waiting(&self) -> bool {
        self.retry_at.is_some_and(|at| Instant::now() < at)
    }
}

/// How the daemon loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Signal,
    Idle,
    Budget,
}

/// What the daemon runs: which boards, how often, and when to stop.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// One board, or every board of the home.
    pub board: Option<String>,
    pub interval: Duration,
    pub until_idle: bool,
    pub max_ticks: Option<u64>,
    /// Run the web server beside the ticks (`daemon --serve`).
    pub serve: Option<crate::web::ServeOptions>,
}

/// Upper bounds (seconds) of the tick duration histogram's buckets (`kanban_tick_duration_seconds`).
pub const TICK_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// What the daemon's loop counts, read by the web server's `/metrics` under `daemon --serve`. A tick here is
/// one pass over every board the daemon serves.
#[derive(Default)]
pub struct TickStats {
    ticks: AtomicU64,
    /// Ticks by the first bucket of [`TICK_BUCKETS`] they fit in; the last slot is over every bound.
    buckets: [AtomicU64; TICK_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    policy_calls: AtomicU64,
}

/// A reading of [`TickStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct TickSnapshot {
    pub ticks: u64,
    /// Cumulative counts, one per bound of [`TICK_BUCKETS`] (ticks at most that long); `ticks` is `+Inf`.
    pub le: Vec<u64>,
    pub sum_seconds: f64,
    pub policy_calls: u64,
}

impl TickStats {
    /// Count one tick that took `took`, and the runtime's policy calls so far.
    pub fn record(&self, took: Duration, policy_calls: u64) {
        let secs = took.as_secs_f64();
        let slot = TICK_BUCKETS.iter().position(|&b| secs <= b).unwrap_or(TICK_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.policy_calls.store(policy_calls, Ordering::Relaxed);
        // Last: a reader that sees this tick sees its bucket too.
        self.ticks.fetch_add(1, Ordering::Release);
    }

    pub fn snapshot(&self) -> TickSnapshot {
        let ticks = self.ticks.load(Ordering::Acquire);
        let mut le = Vec::with_capacity(TICK_BUCKETS.len());
        let mut total = 0;
        for slot in &self.buckets[..TICK_BUCKETS.len()] {
            total += slot.load(Ordering::Relaxed);
            le.push(total.min(ticks));
        }
        TickSnapshot {
            ticks,
            le,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            policy_calls: self.policy_calls.load(Ordering::Relaxed),
        }
    }
}

/// The binary the daemon runs from, and its file identity when the daemon started.
struct Binary {
    path: PathBuf,
    identity: Option<(u64, u64, i64)>,
}

impl Binary {
    fn current() -> Binary {
        let path = crate::worker::executable().unwrap_or_default();
        let identity = Self::identity_of(&path);
        Binary { path, identity }
    }

    fn identity_of(path: &PathBuf) -> Option<(u64, u64, i64)> {
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino(), m.mtime()))
    }

    /// The file at the daemon's path is no longer the one it started from.
    fn replaced(&self) -> bool {
        let now = Self::identity_of(&self.path);
        now.is_some() && now != self.identity
    }

    /// Replace this process with the binary at its path, same arguments, its environment plus `extra`.
    /// Returns only on failure.
    fn reexec(&self, extra: &[(String, String)]) -> anyhow::Error {
        let path = match CString::new(self.path.as_os_str().as_bytes()) {
            Ok(p) => p,
            Err(e) => return e.into(),
        };
        let args: Vec<CString> =
            std::env::args_os().filter_map(|a| CString::new(a.as_bytes()).ok()).collect();
        let mut env: Vec<CString> = std::env::vars_os()
            .filter(|(k, _)| !extra.iter().any(|(name, _)| k.as_bytes() == name.as_bytes()))
            .filter_map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok())
            .collect();
        env.extend(extra.iter().filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok()));
        match nix::unistd::execve(&path, &args, &env) {
            Err(errno) => anyhow::anyhow!("cannot restart as {}: {errno}", self.path.display()),
            Ok(never) => match never {},
        }
    }
}

/// Tick the boards until a signal, idleness or the tick budget stops it. Returns the number of ticks.
pub fn run(home: &Home, options: &DaemonOptions) -> anyhow::Result<(u64, Ended)> {
    let binary = Binary::current();
    let stats = Arc::new(TickStats::default());
    // Started first: a bad address or token file fails the daemon before its first tick.
    let server = match &options.serve {
        Some(serve) => Some(crate::web::Embedded::start(home, serve.clone(), stats.clone())?),
        None => None,
    };
    // The runtime only waits (the interval, signals); ticks run outside it, as plain blocking code, so the
    // store's blocking clients (SQLite, and PostgreSQL's, which runs a runtime of its own) are never
    // driven from inside an async task.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut sigint, mut sigterm, mut sighup) = {
        use tokio::signal::unix::{SignalKind, signal};
        let _inside = rt.enter();
        (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?, signal(SignalKind::hangup())?)
    };
    let mut health: BTreeMap<String, Health> = BTreeMap::new();
    // One runtime for the daemon's life: components compile once, instances are per tick.
    let mut runtime = PolicyRuntime::new(home);
    let mut ticks = 0u64;
    start_notifier(home.clone(), options.board.clone(), options.interval);
    tracing::info!(interval = ?options.interval, "daemon started");
    let (ticks, ended, restart) = loop {
        // Reap first, always, even if no board can be opened this tick.
        crate::process::reap_zombies();
        let started = Instant::now();
        let idle = tick_all(home, options, &mut runtime, &mut health);
        stats.record(started.elapsed(), runtime.calls());
        ticks += 1;
        if options.until_idle && idle {
            tracing::info!(ticks, "idle; stopping");
            break (ticks, Ended::Idle, false);
        }
        if options.max_ticks.is_some_and(|m| ticks >= m) {
            tracing::info!(ticks, "tick budget reached; stopping");
            break (ticks, Ended::Budget, false);
        }
        if binary.replaced() {
            tracing::warn!(path = %binary.path.display(), "the kanban binary was replaced; restarting on it");
            break (ticks, Ended::Signal, true);
        }
        let woken = rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(options.interval) => None,
                _ = sigint.recv() => { tracing::info!("SIGINT; stopping"); Some(false) }
                _ = sigterm.recv() => { tracing::info!("SIGTERM; stopping"); Some(false) }
                _ = sighup.recv() => {
                    tracing::info!("SIGHUP; restarting on the binary at {}", binary.path.display());
                    Some(true)
                }
            }
        });
        if let Some(restart) = woken {
            break (ticks, Ended::Signal, restart);
        }
    };
    drop(rt);
    if restart {
        // The server finishes its requests, and its socket goes to the new image through the exec.
        let extra = match server {
            Some(server) => vec![server.hand_over()?],
            None => vec![],
        };
        return Err(binary.reexec(&extra));
    }
    if let Some(server) = server {
        server.stop();
    }
    Ok((ticks, ended))
}

/// The notifier: a thread per board beside the ticks that delivers the board's due notifications (see
/// [`crate::ops::notify`]), so a slow or broken endpoint never holds up a tick, nor another board's
/// notifications. A watcher thread starts one for each board it finds. They end with the process; a
/// delivery cut off by the exit is leased, and delivered again once its lease expires.
fn start_notifier(home: Home, board: Option<String>, interval: Duration) {
    let pause = interval.clamp(Duration::from_millis(100), Duration::from_secs(1));
    let spawned = std::thread::Builder::new().name("notifier".into()).spawn(move || {
        let mut running: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        loop {
            let slugs = match &board {
                Some(slug) => vec![slug.clone()],
                None => home.board_slugs().unwrap_or_default(),
            };
            for slug in slugs {
                if running.contains(&slug) {
                    continue;
                }
                let home = home.clone();
                let name = slug.clone();
                let started = std::thread::Builder::new()
                    .name(format!("notify-{slug}"))
                    .spawn(move || deliver_forever(&home, &name, pause));
                match started {
                    Ok(_) => {
                        running.insert(slug);
                    }
                    Err(e) => tracing::error!(board = %slug, error = %e, "cannot start the board's notifier"),
                }
            }
            std::thread::sleep(pause * 5);
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the notifier; notifications wait for `kanban notify deliver`");
    }
}

/// Deliver one board's due notifications, pass after pass, until the process ends.
fn deliver_forever(home: &Home, slug: &str, pause: Duration) {
    let mut backoff = Backoff::default();
    loop {
        let mut wait = pause;
        if let Ok(board) = home.open_board(slug) {
            let delivered = board
                .open_store()
                .map_err(anyhow::Error::from)
                .and_then(|mut store| crate::ops::notify::deliver_due(&board, &mut store, clock::now()));
            match delivered {
                Ok(_) => {
                    backoff.recovered();
                }
                Err(e) => {
                    wait = backoff.failed(pause);
                    tracing::warn!(
                        board = %slug,
                        failures = backoff.failures,
                        retry_in_ms = wait.as_millis() as u64,
                        error = %format!("{e:#}"),
                        "notification delivery failed; backing off"
                    );
                }
            }
        }
        std::thread::sleep(wait);
    }
}

/// One tick on every board this daemon serves. Returns true when all of them are idle.
fn tick_all(
    home: &Home,
    options: &DaemonOptions,
    runtime: &mut PolicyRuntime,
    health: &mut BTreeMap<String, Health>,
) -> bool {
    let slugs = match options.board.as_deref() {
        Some(slug) => vec![slug.to_string()],
        None => match home.board_slugs() {
            Ok(slugs) => slugs,
            Err(e) => {
                tracing::error!(error = %e, "cannot list boards");
                return false;
            }
        },
    };
    let mut idle = true;
    for slug in slugs {
        let state = health.entry(slug.clone()).or_default();
        if state.backoff.waiting() {
            idle = false;
            continue;
        }
        // Nothing of a failed tick counts against a card: each of its steps is a transaction of its own,
        // and what it could not do, the next tick does.
        let ticked = home
            .open_board(&slug)
            .map_err(anyhow::Error::from)
            .and_then(|board| Ok((tick(home, &board, runtime, TickOptions::default())?, board)));
        match ticked {
            Ok((report, board)) => {
                let failed = state.backoff.recovered();
                if failed > 0 {
                    tracing::warn!(board = %slug, failed_ticks = failed, "the board ticks again");
                }
                log_report(&report);
                idle &= report.is_idle() && !report.skipped_locked;
                watch_health(&board, &report, state);
            }
            Err(e) => {
                idle = false;
                let retry = state.backoff.failed(options.interval);
                tracing::error!(
                    board = %slug,
                    failures = state.backoff.failures,
                    retry_in_ms = retry.as_millis() as u64,
                    error = %format!("{e:#}"),
                    "tick failed; backing off"
                );
            }
        }
    }
    idle
}

fn log_report(r: &TickReport) {
    for s in &r.spawned {
        tracing::info!(board = %r.board, task = %s.task_id, assignee = %s.assignee, lane = %s.lane, "spawned");
    }
    let settled = r.crashed.len()
        + r.protocol_violations.len()
        + r.rate_limited.len()
        + r.config_errors.len()
        + r.timed_out.len()
        + r.stale.len()
        + r.reclaimed.len()
        + r.host_errors.len();
    if settled > 0 || !r.auto_blocked.is_empty() {
        tracing::info!(
            board = %r.board,
            crashed = ?r.crashed,
            protocol_violations = ?r.protocol_violations,
            rate_limited = ?r.rate_limited,
            timed_out = ?r.timed_out,
            stale = ?r.stale,
            reclaimed = ?r.reclaimed,
            host_errors = ?r.host_errors,
            gave_up = ?r.auto_blocked,
            "settled"
        );
    }
    for e in &r.policy_errors {
        tracing::warn!(board = %r.board, policy = %e.policy, task = e.task_id.as_deref().unwrap_or("-"), kind = %e.error_kind, error = %e.error, "policy error");
    }
}

/// Warn when spawnable cards wait for [`HEALTH_TICKS`] ticks in a row with nothing spawned, at most once
/// per [`HEALTH_EVERY`]. The warning is logged and recorded as a board event.
fn watch_health(board: &Board, report: &TickReport, health: &mut Health) {
    let waiting = report.pending > 0
        || !report.skipped_unassigned.is_empty()
        || !report.skipped_nonspawnable.is_empty();
    if waiting && report.spawned.is_empty() {
        health.starved_ticks += 1;
    } else {
        health.starved_ticks = 0;
        return;
    }
    if health.starved_ticks < HEALTH_TICKS || health.last_warning.is_some_and(|t| t.elapsed() < HEALTH_EVERY)
    {
        return;
    }
    health.last_warning = Some(Instant::now());
    let message = format!(
        "ready cards have gone unspawned for {} ticks: {} waiting (capped or deferred), {} unassigned, {} with an assignee that is no profile",
        health.starved_ticks,
        report.pending,
        report.skipped_unassigned.len(),
        report.skipped_nonspawnable.len()
    );
    tracing::warn!(board = %board.slug, "{message}");
    if let Ok(mut store) = board.open_store() {
        let _ = store.record_event(
            None,
            EventKind::DispatcherHealth,
            serde_json::json!({"warning": message}),
            clock::now(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_stats_fill_cumulative_buckets_and_keep_the_latest_policy_call_count() {
        let stats = TickStats::default();
        assert_eq!(stats.snapshot().le, vec![0; TICK_BUCKETS.len()]);
        stats.record(Duration::from_millis(3), 2);
        stats.record(Duration::from_millis(30), 5);
        stats.record(Duration::from_secs(60), 9);
        let s = stats.snapshot();
        assert_eq!(s.ticks, 3);
        // <= 0.005: 1; <= 0.05 and on: 2; over 30 s only in +Inf (the tick count).
        assert_eq!(s.le, vec![1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
        assert!((s.sum_seconds - 60.033).abs() < 1e-6, "{}", s.sum_seconds);
        assert_eq!(s.policy_calls, 9);
    }
}
