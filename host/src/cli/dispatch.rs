//! Dispatcher commands: one tick (`dispatch`), the loop (`daemon`), pausing and resuming it, the demo,
//! and the hidden supervisor.

use std::time::Duration;

use super::{Command, Invocation, render};
use crate::dispatch::daemon::{self, DaemonOptions};
use crate::dispatch::{TickOptions, TickReport, tick};
use crate::model::Pause;
use crate::ops::Desk;
use crate::policy::PolicyRuntime;

pub fn run(inv: &Invocation, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dispatch { dry_run, wait, json } => {
            crate::process::reap_zombies();
            let board = inv.board()?;
            let mut runtime = PolicyRuntime::new(&inv.home);
            let report = tick(&inv.home, &board, &mut runtime, TickOptions { dry_run, wait })?;
            if json { render::json(&report) } else { print_report(&report) }
        }
        Command::Daemon { interval, until_idle, max_ticks, serve, token_file, read_only } => {
            let serve = serve.map(|listen| crate::web::ServeOptions {
                listen,
                board: inv.board_flag.clone(),
                token_file,
                read_only,
            });
            let options = DaemonOptions {
                board: inv.board_flag.clone(),
                interval: Duration::from_secs_f64(interval.max(0.05)),
                until_idle,
                max_ticks,
                serve,
            };
            daemon::run(&inv.home, &options).map(|_| ())
        }
        Command::Pause { profile, reason } => {
            let (board, mut store) = inv.open()?;
            let host_id = inv.home.host_id()?;
            let mut desk = Desk::new(&board, &mut store, &host_id);
            let by = super::cards::default_author();
            let paused =
                crate::ops::pause::pause(&mut desk, profile.as_deref(), reason.as_deref(), by.as_deref())?;
            let p = &paused.pause;
            let why = p.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
            if paused.updated {
                println!(
                    "{} was already paused (since {}); reason updated{why}",
                    capitalized(&p.scope(&board.slug)),
                    render::time(p.paused_at)
                );
            } else {
                println!("Paused {}{why}", p.scope(&board.slug));
            }
            println!(
                "  nothing new is spawned until `kanban resume{}`; running workers finish",
                resume_flag(p)
            );
            Ok(())
        }
        Command::Resume { profile } => {
            let (board, mut store) = inv.open()?;
            let host_id = inv.home.host_id()?;
            let mut desk = Desk::new(&board, &mut store, &host_id);
            let by = super::cards::default_author();
            let lifted = crate::ops::pause::resume(&mut desk, profile.as_deref(), by.as_deref())?;
            println!(
                "Resumed {} (paused since {})",
                lifted.scope(&board.slug),
                render::time(lifted.paused_at)
            );
            Ok(())
        }
        Command::Demo => super::demo::run(&inv.home),
        Command::Supervise { id, run } => {
            crate::worker::become_session_leader()?;
            crate::worker::wait_at_gate();
            let board = inv.board()?;
            let mut store = board.open_store()?;
            let host_id = inv.home.host_id()?;
            let mut desk = Desk::new(&board, &mut store, &host_id);
            crate::ops::supervise::supervise(&inv.home, &mut desk, &id, run)
        }
        other => unreachable!("{other:?} is routed by cli::run"),
    }
}

fn print_report(r: &TickReport) -> anyhow::Result<()> {
    if r.skipped_locked {
        println!("board {}: another dispatcher is ticking; skipped", r.board);
        return Ok(());
    }
    for p in &r.pauses {
        println!("{}", pause_line(p, &r.board));
    }
    for o in r.recurring_created.iter().chain(&r.recurring_skipped).chain(&r.recurring_due) {
        let at = render::time(o.occurrence);
        match (&o.task_id, &o.skipped, r.dry_run) {
            (Some(task), _, _) => println!("recurring {}: created {task} for {at}", o.schedule),
            (None, Some(why), true) => println!("recurring {}: would skip {at} ({why})", o.schedule),
            (None, Some(why), false) => println!("recurring {}: skipped {at} ({why})", o.schedule),
            (None, None, _) => println!("recurring {}: would create a card for {at}", o.schedule),
        }
    }
    let verb = if r.dry_run { "would spawn" } else { "spawned" };
    for s in &r.spawned {
        let lane = if s.lane == crate::model::Lane::Review { " to review" } else { "" };
        println!("{verb} {} ({}{lane}) in {}", s.task_id, s.assignee, s.workspace);
    }
    let lists: [(&str, &Vec<String>); 15] = [
        ("promoted", &r.promoted),
        ("reclaimed", &r.reclaimed),
        ("claim extended", &r.claims_extended),
        ("crashed", &r.crashed),
        ("protocol violation", &r.protocol_violations),
        ("rate limited", &r.rate_limited),
        ("config error", &r.config_errors),
        ("timed out", &r.timed_out),
        ("stale", &r.stale),
        ("host error (not counted)", &r.host_errors),
        ("stopping the worker of", &r.stopping),
        ("blocked by breaker or policy", &r.auto_blocked),
        ("unassigned (no router)", &r.skipped_unassigned),
        ("assignee is not a profile", &r.skipped_nonspawnable),
        ("in review, waiting for a person", &r.awaiting_review),
    ];
    for (label, ids) in lists {
        if !ids.is_empty() {
            println!("{label}: {}", ids.join(" "));
        }
    }
    for a in &r.auto_assigned {
        println!("assigned {} to {} ({})", a.task_id, a.assignee, a.policy);
    }
    let now = crate::clock::now();
    for g in &r.respawn_guarded {
        let when =
            g.retry_after.map(|t| format!("; retry in {}", crate::clock::span(t - now))).unwrap_or_default();
        println!("deferred {}: {} ({}){when}", g.task_id, g.reason, g.policy);
    }
    for c in &r.skipped_per_profile_capped {
        println!("capped {}: profile {} has {} running", c.task_id, c.assignee, c.running);
    }
    if !r.paused.is_empty() {
        let ids: Vec<&str> = r.paused.iter().map(|p| p.task_id.as_str()).collect();
        println!("paused, not spawned: {}", ids.join(" "));
    }
    if !r.skipped_board_capped.is_empty() {
        println!("board cap reached; waiting: {}", r.skipped_board_capped.join(" "));
    }
    if !r.skipped_host_capped.is_empty() {
        println!("this host runs its max_workers; waiting: {}", r.skipped_host_capped.join(" "));
    }
    for u in &r.skipped_unfit {
        println!(
            "left to another host {}: profile {} requires {}",
            u.task_id,
            u.assignee,
            u.missing.join(", ")
        );
    }
    for f in &r.spawn_failed {
        println!("spawn failed {}: {}", f.task_id, f.error);
    }
    for e in &r.policy_errors {
        println!(
            "policy error {} on {} ({}): {}",
            e.policy,
            e.task_id.as_deref().unwrap_or("-"),
            e.error_kind,
            e.error
        );
    }
    println!("board {}: {} running, {} waiting", r.board, r.running, r.pending);
    Ok(())
}

/// One line for a pause: `board web paused since 2027-01-15 08:00:00 by alice: deploy freeze`.
fn pause_line(p: &Pause, board: &str) -> String {
    format!("{} paused {}", p.scope(board), pause_detail(p))
}

/// `since 2027-01-15 08:00:00 by alice: deploy freeze`.
pub(super) fn pause_detail(p: &Pause) -> String {
    let who = p.paused_by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
    let why = p.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    format!("since {}{who}{why}", render::time(p.paused_at))
}

fn resume_flag(p: &Pause) -> String {
    p.profile.as_deref().map(|name| format!(" --profile {name}")).unwrap_or_default()
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
