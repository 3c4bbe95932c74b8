//! Recurring cards (`kanban recurring`): schedules that create a card at each occurrence of a cron
//! expression in an explicit time zone. Adding checks the expression, the zone and the card (by the rules
//! of `create`, the board's defaults included); the tick creates the due occurrences through
//! [`run_due`], each card by the one creation path with the board's defaults applied as `create` applies
//! them.

use super::Desk;
use super::cards::with_board_defaults;
use crate::model::{CatchUp, Schedule, Template};
use crate::recurring::Spec;
use crate::store::{NewSchedule, Occurrence, StoreError, card_of};

/// A schedule as asked for on the command line.
#[derive(Debug, Clone)]
pub struct AddSchedule {
    pub cron: String,
    /// An IANA zone name; stored by its canonical name.
    pub tz: String,
    pub catch_up: CatchUp,
    pub skip_if_open: bool,
    pub card: Template,
    pub created_by: Option<String>,
}

/// Add a schedule. A bad expression or zone, or a card `create` would refuse, is a usage error naming it.
pub fn add(desk: &mut Desk, add: AddSchedule) -> anyhow::Result<Schedule> {
    let now = crate::clock::now();
    let spec = Spec::parse(&add.cron, &add.tz).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let next_at = spec.first_after(&add.cron, now).map_err(|e| StoreError::Invalid(e.to_string()))?;
    // The board's defaults are applied at each occurrence (as `create` applies them then); checking them now
    // refuses a card that could never be created.
    let checked = with_board_defaults(desk.board, card_of(0, &add.card, next_at))?;
    let mut card = add.card;
    // An assignee of `none` (or blank) is no assignee, as `create` reads it; the workdir stays the board's
    // to give at each occurrence.
    card.assignee = checked.assignee;
    let new = NewSchedule {
        cron: add.cron.trim().to_string(),
        tz: spec.zone().to_string(),
        catch_up: add.catch_up,
        skip_if_open: add.skip_if_open,
        card,
        next_at,
        created_by: add.created_by,
    };
    let schedule = desk.store.add_schedule(&new, now)?;
    tracing::info!(board = %desk.board.slug, schedule = schedule.id, cron = %schedule.cron, tz = %schedule.tz, "recurring schedule added");
    Ok(schedule)
}

pub fn list(desk: &mut Desk) -> anyhow::Result<Vec<Schedule>> {
    Ok(desk.store.schedules()?)
}

/// Remove a schedule; the cards it created stay. An unknown id is not found (exit 1).
pub fn remove(desk: &mut Desk, id: i64) -> anyhow::Result<Schedule> {
    let schedule = desk.store.remove_schedule(id, crate::clock::now())?;
    tracing::info!(board = %desk.board.slug, schedule = id, "recurring schedule removed");
    Ok(schedule)
}

/// The tick's step: create the cards of the occurrences due at `now` (with `dry_run`, say which it would
/// create and write nothing). A board none of whose schedules is due costs one index probe.
pub fn run_due(desk: &mut Desk, now: i64, dry_run: bool) -> anyhow::Result<Vec<Occurrence>> {
    if !desk.store.recurring_due(now)? {
        return Ok(Vec::new());
    }
    let board = desk.board;
    let done = desk.store.run_recurring(now, dry_run, &|card| with_board_defaults(board, card))?;
    for o in &done {
        match (&o.task_id, &o.skipped) {
            (Some(task), _) => {
                tracing::info!(board = %board.slug, schedule = o.schedule, occurrence = o.occurrence, task = %task, "recurring card created")
            }
            (None, Some(why)) => {
                tracing::info!(board = %board.slug, schedule = o.schedule, occurrence = o.occurrence, reason = %why, "recurring occurrence skipped")
            }
            (None, None) => {}
        }
    }
    Ok(done)
}
