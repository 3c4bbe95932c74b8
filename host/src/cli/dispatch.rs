//! Dispatcher commands: one tick (`dispatch`), the loop (`daemon`), the demo, and the hidden supervisor.

use std::time::{Duration, Instant};

use super::{Command, Context, render};
use crate::board::{Board, Home};
use crate::clock;
use crate::dispatch::{TickOptions, TickReport, tick};
use crate::policy::PolicyRuntime;

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dispatch { dry_run, wait, json } => {
            crate::process::reap_zombies();
            let board = ctx.board()?;
            let mut runtime = PolicyRuntime::new(&ctx.home);
            let report = tick(&ctx.home, &board, &mut runtime, TickOptions { dry_run, wait }, clock::now())?;
            if json { render::json(&report) } else { print_report(&report) }
        }
        Command::Daemon { interval, until_idle, max_ticks } => {
            let interval = Duration::from_secs_f64(interval.max(0.05));
            daemon(ctx, interval, until_idle, max_ticks).map(|_| ())
        }
        Command::Demo => super::demo::run(&ctx.home),
        Command::Supervise { id, run } => {
            let board = ctx.board()?;
            let mut store = board.open_store()?;
            crate::worker::supervise(&ctx.home, &board, &mut store, &id, run)
        }
        _ => unreachable!("routed by cli::run"),
    }
}

fn print_report(r: &TickReport) -> anyhow::Result<()> {
    if r.skipped_locked {
        println!("board {}: another dispatcher is ticking; skipped", r.board);
        return Ok(());
    }
    let verb = if r.dry_run { "would spawn" } else { "spawned" };
    for s in &r.spawned {
        println!("{verb} {} ({}) in {}", s.task_id, s.assignee, s.workspace);
    }
    let lists: [(&str, &Vec<String>); 12] = [
        ("promoted", &r.promoted),
        ("reclaimed", &r.reclaimed),
        ("claim extended", &r.claims_extended),
        ("crashed", &r.crashed),
        ("protocol violation", &r.protocol_violations),
        ("rate limited", &r.rate_limited),
        ("config error", &r.config_errors),
        ("timed out", &r.timed_out),
        ("stale", &r.stale),
        ("blocked by breaker or policy", &r.auto_blocked),
        ("unassigned (no router)", &r.skipped_unassigned),
        ("assignee is not a profile", &r.skipped_nonspawnable),
    ];
    for (label, ids) in lists {
        if !ids.is_empty() {
            println!("{label}: {}", ids.join(" "));
        }
    }
    for a in &r.auto_assigned {
        println!("assigned {} to {} ({})", a.task_id, a.assignee, a.policy);
    }
    for g in &r.respawn_guarded {
        println!("deferred {}: {} ({})", g.task_id, g.reason, g.policy);
    }
    for c in &r.skipped_per_profile_capped {
        println!("capped {}: profile {} has {} running", c.task_id, c.assignee, c.running);
    }
    if !r.skipped_board_capped.is_empty() {
        println!("board cap reached; waiting: {}", r.skipped_board_capped.join(" "));
    }
    for f in &r.spawn_failed {
        println!("spawn failed {}: {}", f.task_id, f.error);
    }
    for e in &r.policy_errors {
        println!("policy error {} on {}: {}", e.policy, e.task_id.as_deref().unwrap_or("-"), e.error);
    }
    println!("board {}: {} running, {} waiting", r.board, r.running, r.pending);
    Ok(())
}

/// Consecutive ticks with spawnable cards waiting and nothing spawned before the health warning.
const HEALTH_TICKS: u32 = 6;
const HEALTH_EVERY: Duration = Duration::from_secs(300);

/// Per-board memory the daemon keeps between ticks.
#[derive(Default)]
struct Health {
    starved_ticks: u32,
    last_warning: Option<Instant>,
}

/// Tick the boards until a signal, idleness or the tick budget stops it. Returns the number of ticks.
pub fn daemon(
    ctx: &Context,
    interval: Duration,
    until_idle: bool,
    max_ticks: Option<u64>,
) -> anyhow::Result<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut health: std::collections::BTreeMap<String, Health> = Default::default();
        // One runtime for the daemon's life: components compile once, instances are per tick.
        let mut runtime = PolicyRuntime::new(&ctx.home);
        let mut ticks = 0u64;
        tracing::info!(interval = ?interval, "daemon started");
        loop {
            // Reap first, always, even if no board can be opened this tick.
            crate::process::reap_zombies();
            let idle = tick_all(ctx, &mut runtime, &mut health);
            ticks += 1;
            if until_idle && idle {
                tracing::info!(ticks, "idle; stopping");
                return Ok(ticks);
            }
            if max_ticks.is_some_and(|m| ticks >= m) {
                tracing::info!(ticks, "tick budget reached; stopping");
                return Ok(ticks);
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = sigint.recv() => { tracing::info!("SIGINT; stopping"); return Ok(ticks); }
                _ = sigterm.recv() => { tracing::info!("SIGTERM; stopping"); return Ok(ticks); }
            }
        }
    })
}

/// One tick on every board this daemon serves. Returns true when all of them are idle.
fn tick_all(
    ctx: &Context,
    runtime: &mut PolicyRuntime,
    health: &mut std::collections::BTreeMap<String, Health>,
) -> bool {
    let slugs = match &ctx.board_flag {
        Some(slug) => vec![slug.clone()],
        None => match ctx.home.board_slugs() {
            Ok(slugs) => slugs,
            Err(e) => {
                tracing::error!(error = %e, "cannot list boards");
                return false;
            }
        },
    };
    let mut idle = true;
    for slug in slugs {
        let board = match ctx.home.open_board(&slug) {
            Ok(board) => board,
            Err(e) => {
                tracing::error!(board = %slug, error = %e, "cannot open board; skipping it this tick");
                continue;
            }
        };
        match tick(&ctx.home, &board, runtime, TickOptions::default(), clock::now()) {
            Ok(report) => {
                log_report(&report);
                idle &= report.is_idle() && !report.skipped_locked;
                watch_health(&ctx.home, &board, &report, health.entry(slug).or_default());
            }
            Err(e) => {
                idle = false;
                tracing::error!(board = %slug, error = %e, "tick failed");
            }
        }
    }
    idle
}

fn log_report(r: &TickReport) {
    for s in &r.spawned {
        tracing::info!(board = %r.board, task = %s.task_id, assignee = %s.assignee, "spawned");
    }
    let settled = r.crashed.len()
        + r.protocol_violations.len()
        + r.rate_limited.len()
        + r.config_errors.len()
        + r.timed_out.len()
        + r.stale.len()
        + r.reclaimed.len();
    if settled > 0 || !r.auto_blocked.is_empty() {
        tracing::info!(
            board = %r.board,
            crashed = ?r.crashed,
            protocol_violations = ?r.protocol_violations,
            rate_limited = ?r.rate_limited,
            timed_out = ?r.timed_out,
            stale = ?r.stale,
            reclaimed = ?r.reclaimed,
            gave_up = ?r.auto_blocked,
            "settled"
        );
    }
    for e in &r.policy_errors {
        tracing::warn!(board = %r.board, policy = %e.policy, task = e.task_id.as_deref().unwrap_or("-"), error = %e.error, "policy error");
    }
}

/// Warn when spawnable cards wait for [`HEALTH_TICKS`] ticks in a row with nothing spawned, at most once
/// per [`HEALTH_EVERY`]. The warning is logged and recorded as a board event.
fn watch_health(_home: &Home, board: &Board, report: &TickReport, health: &mut Health) {
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
            "dispatcher_health",
            serde_json::json!({"warning": message}),
            clock::now(),
        );
    }
}
