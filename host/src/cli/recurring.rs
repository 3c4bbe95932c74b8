//! `kanban recurring add|list|rm`: parse, call [`crate::ops::recurring`], render.

use super::cards::{default_author, warn_unknown_profile};
use super::{Invocation, RecurringAddArgs, RecurringCommand, render};
use crate::model::{Schedule, Template};
use crate::ops::recurring::{self, AddSchedule};
use crate::ops::{self, Desk};

pub fn run(inv: &Invocation, command: RecurringCommand) -> anyhow::Result<()> {
    let (board, mut store) = inv.open()?;
    let host_id = ops::host_id(&inv.home)?;
    let mut desk = Desk::new(&board, &mut store, &host_id);
    match command {
        RecurringCommand::Add(args) => add(&mut desk, *args),
        RecurringCommand::List { json } => {
            let schedules = recurring::list(&mut desk)?;
            if json {
                return render::json(&schedules);
            }
            if schedules.is_empty() {
                println!("no recurring schedules on board {}", board.slug);
            }
            for s in &schedules {
                println!("{}  {}", s.id, line(s));
            }
            Ok(())
        }
        RecurringCommand::Rm { id } => {
            let removed = recurring::remove(&mut desk, id)?;
            println!("Removed recurring schedule {} ({}); its cards stay", removed.id, removed.card.title);
            Ok(())
        }
    }
}

fn add(desk: &mut Desk, args: RecurringAddArgs) -> anyhow::Result<()> {
    let card = Template {
        title: args.title,
        body: args.body.unwrap_or_default(),
        assignee: args.card.assignee,
        priority: args.card.priority,
        tenant: args.card.tenant,
        workspace_kind: args.card.workspace.as_ref().map(|w| w.kind),
        workspace_path: args.card.workspace.and_then(|w| w.path).map(|p| p.display().to_string()),
        max_runtime_seconds: args.card.max_runtime,
        max_retries: args.card.max_retries,
        goal_mode: args.card.goal,
        goal_max_turns: args.card.goal_max_turns,
    };
    let schedule = recurring::add(
        desk,
        AddSchedule {
            cron: args.cron,
            tz: args.tz,
            catch_up: args.catch_up,
            skip_if_open: args.skip_if_open,
            card,
            created_by: default_author(),
        },
    )?;
    warn_unknown_profile(desk.board, schedule.card.assignee.as_deref());
    if args.json {
        return render::json(&schedule);
    }
    println!("Added recurring schedule {}: {}", schedule.id, line(&schedule));
    Ok(())
}

/// `0 3 * * * Europe/Berlin  catch-up latest  next 2026-01-16 02:00:00 UTC  nightly report` (after the id
/// in `list`).
fn line(s: &Schedule) -> String {
    let next =
        s.next_at.map(|t| format!("next {} UTC", render::time(t))).unwrap_or_else(|| "never again".into());
    let skip = if s.skip_if_open { ", skip if open" } else { "" };
    format!("{} {}  catch-up {}{skip}  {next}  {}", s.cron, s.tz, s.catch_up, s.card.title)
}
