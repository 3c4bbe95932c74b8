//! Recurring schedules: one row per schedule, and the tick's write that turns due occurrences into cards.
//! Each occurrence's card is created through the one creation path ([`super::cards::create_in`]) with an
//! idempotency key naming the schedule and the occurrence, in the same transaction that advances the
//! schedule's `next_at` and appends the events, so two dispatchers never create one occurrence twice. When
//! the occurrences fall is [`crate::recurring`]'s to say; this file writes it.

use rusqlite::params;
use serde::Serialize;
use serde_json::json;

use super::cards::{append_event, check_new, create_in};
use super::db::{Row, Tx};
use super::{NewTask, Result, Store, StoreError};
use crate::model::{CatchUp, EventKind, Schedule, Status, Template};
use crate::recurring::{self, Spec};

/// A schedule to add; `next_at` is its first occurrence, computed by the caller from the same spec.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub cron: String,
    pub tz: String,
    pub catch_up: CatchUp,
    pub skip_if_open: bool,
    pub card: Template,
    pub next_at: i64,
    pub created_by: Option<String>,
}

/// What a tick did (or, in a dry run, would do) with one due occurrence of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Occurrence {
    pub schedule: i64,
    /// The occurrence's time (unix seconds).
    pub occurrence: i64,
    /// The card created for it (none in a dry run, or when it is skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Why it is skipped: `previous card open` (`--skip-if-open`), `missed` (`--catch-up none`), or the
    /// reason its card could not be created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

const COLUMNS: &str = "id, cron, tz, catch_up, skip_if_open, card, next_at, last_occurrence, last_task_id, \
                       created_at, created_by";

fn read_schedule(r: &Row) -> rusqlite::Result<Schedule> {
    let card: String = r.get(5)?;
    let card: Template = serde_json::from_str(&card).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Schedule {
        id: r.get(0)?,
        cron: r.get(1)?,
        tz: r.get(2)?,
        catch_up: r.get(3)?,
        skip_if_open: r.get(4)?,
        card,
        next_at: r.get(6)?,
        last_occurrence: r.get(7)?,
        last_task_id: r.get(8)?,
        created_at: r.get(9)?,
        created_by: r.get(10)?,
    })
}

fn load_schedule(tx: &Tx, id: i64) -> Result<Option<Schedule>> {
    tx.query_opt(&format!("SELECT {COLUMNS} FROM recurring WHERE id = ?1"), params![id], read_schedule)
}

/// The card of `schedule`'s occurrence at `occurrence`, before the board's defaults.
pub fn card_of(schedule: i64, template: &Template, occurrence: i64) -> NewTask {
    NewTask {
        title: template.title.clone(),
        body: template.body.clone(),
        assignee: template.assignee.clone(),
        priority: template.priority,
        tenant: template.tenant.clone(),
        workspace_kind: template.workspace_kind,
        workspace_path: template.workspace_path.clone(),
        idempotency_key: Some(recurring::idempotency_key(schedule, occurrence)),
        max_runtime_seconds: template.max_runtime_seconds,
        max_retries: template.max_retries,
        goal_mode: template.goal_mode,
        goal_max_turns: template.goal_max_turns,
        created_by: Some(format!("recurring:{schedule}")),
        ..NewTask::default()
    }
}

/// Is the card still open (neither done nor archived)? A card deleted for good is not.
fn is_open(tx: &Tx, id: &str) -> Result<bool> {
    let status: Option<Status> =
        tx.query_opt("SELECT status FROM tasks WHERE id = ?1", params![id], |r| r.get(0))?;
    Ok(status.is_some_and(|s| !matches!(s, Status::Done | Status::Archived)))
}

impl Store {
    /// Add a schedule with its `recurring_added` event. Its card must pass the rules of `create`.
    pub fn add_schedule(&mut self, new: &NewSchedule, now: i64) -> Result<Schedule> {
        check_new(&card_of(0, &new.card, new.next_at))?;
        let card = serde_json::to_string(&new.card).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.write(|tx| {
            let id: i64 = tx.query_row(
                "INSERT INTO recurring (cron, tz, catch_up, skip_if_open, card, next_at, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
                params![new.cron, new.tz, new.catch_up, new.skip_if_open, card, new.next_at, now, new.created_by],
                |r| r.get(0),
            )?;
            append_event(
                tx,
                None,
                None,
                EventKind::RecurringAdded,
                json!({"schedule": id, "cron": new.cron, "tz": new.tz, "title": new.card.title,
                       "next_at": new.next_at, "by": new.created_by}),
                now,
            )?;
            Ok(load_schedule(tx, id)?.expect("inserted above"))
        })
    }

    /// Every schedule of the board, oldest first.
    pub fn schedules(&mut self) -> Result<Vec<Schedule>> {
        self.read(|tx| {
            tx.query_map(&format!("SELECT {COLUMNS} FROM recurring ORDER BY id"), &[], read_schedule)
        })
    }

    /// Remove a schedule, with its `recurring_removed` event. The cards it created stay.
    pub fn remove_schedule(&mut self, id: i64, now: i64) -> Result<Schedule> {
        self.write(|tx| {
            let Some(schedule) = load_schedule(tx, id)? else {
                return Err(StoreError::NotFound(format!("recurring schedule {id}")));
            };
            tx.execute("DELETE FROM recurring WHERE id = ?1", params![id])?;
            append_event(
                tx,
                None,
                None,
                EventKind::RecurringRemoved,
                json!({"schedule": id, "cron": schedule.cron, "tz": schedule.tz, "title": schedule.card.title}),
                now,
            )?;
            Ok(schedule)
        })
    }

    /// Is any schedule due at `now`? One probe of the `next_at` index, for the tick to skip the write.
    pub fn recurring_due(&mut self, now: i64) -> Result<bool> {
        self.read(|tx| {
            tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM recurring WHERE next_at IS NOT NULL AND next_at <= ?1)",
                params![now],
                |r| r.get(0),
            )
        })
    }

    /// Create the cards of every occurrence due at `now`, by each schedule's catch-up rule, in one
    /// transaction that also advances each schedule's `next_at` and appends the events
    /// (`recurring_created` on each new card, board-level `recurring_skipped` for each skip). `prepare`
    /// applies the board's defaults to a card (an error skips that occurrence, naming why). With `dry_run`
    /// the same decisions are made and nothing is written.
    pub fn run_recurring(
        &mut self,
        now: i64,
        dry_run: bool,
        prepare: &dyn Fn(NewTask) -> Result<NewTask>,
    ) -> Result<Vec<Occurrence>> {
        let body = |tx: &Tx| -> Result<Vec<Occurrence>> {
            let due: Vec<Schedule> = tx.query_map(
                &format!(
                    "SELECT {COLUMNS} FROM recurring WHERE next_at IS NOT NULL AND next_at <= ?1 ORDER BY next_at, id"
                ),
                params![now],
                read_schedule,
            )?;
            let mut done = Vec::new();
            for schedule in due {
                fire_schedule(tx, &schedule, now, dry_run, prepare, &mut done)?;
            }
            Ok(done)
        };
        if dry_run { self.read(body) } else { self.write(body) }
    }
}

fn fire_schedule(
    tx: &Tx,
    schedule: &Schedule,
    now: i64,
    dry_run: bool,
    prepare: &dyn Fn(NewTask) -> Result<NewTask>,
    done: &mut Vec<Occurrence>,
) -> Result<()> {
    let id = schedule.id;
    let next_at = schedule.next_at.expect("selected by next_at");
    let skip = |occurrence: i64, reason: String, done: &mut Vec<Occurrence>| -> Result<()> {
        if !dry_run {
            append_event(
                tx,
                None,
                None,
                EventKind::RecurringSkipped,
                json!({"schedule": id, "occurrence": occurrence, "reason": reason, "title": schedule.card.title}),
                now,
            )?;
        }
        done.push(Occurrence { schedule: id, occurrence, task_id: None, skipped: Some(reason) });
        Ok(())
    };
    let spec = match Spec::parse(&schedule.cron, &schedule.tz) {
        Ok(spec) => spec,
        Err(e) => {
            // Only a row written by hand gets here: stop it, say why.
            skip(next_at, e.to_string(), done)?;
            if !dry_run {
                tx.execute("UPDATE recurring SET next_at = NULL WHERE id = ?1", params![id])?;
            }
            return Ok(());
        }
    };
    let due = recurring::due(&spec, next_at, now, schedule.catch_up);
    if let Some(missed) = due.missed {
        skip(missed, "missed".into(), done)?;
    }
    let mut last_task = schedule.last_task_id.clone();
    let mut last_occurrence = schedule.last_occurrence;
    // In a dry run the card it would create is open.
    let mut created_open = false;
    for occurrence in due.fire {
        if schedule.skip_if_open
            && let Some(previous) = &last_task
            && (created_open || is_open(tx, previous)?)
        {
            skip(occurrence, format!("previous card {previous} open"), done)?;
            continue;
        }
        let card = match prepare(card_of(id, &schedule.card, occurrence)) {
            Ok(card) => card,
            Err(e) => {
                skip(occurrence, e.to_string(), done)?;
                continue;
            }
        };
        if dry_run {
            done.push(Occurrence { schedule: id, occurrence, task_id: None, skipped: None });
            last_task = Some(format!("(occurrence {occurrence})"));
            created_open = true;
            continue;
        }
        let (task, new) = match create_in(tx, &card, now) {
            Ok(created) => created,
            Err(e @ (StoreError::Invalid(_) | StoreError::NotFound(_) | StoreError::Refused(_))) => {
                skip(occurrence, e.to_string(), done)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if new {
            append_event(
                tx,
                Some(&task.id),
                None,
                EventKind::RecurringCreated,
                json!({"schedule": id, "occurrence": occurrence, "cron": schedule.cron, "tz": schedule.tz}),
                now,
            )?;
        }
        done.push(Occurrence { schedule: id, occurrence, task_id: Some(task.id.clone()), skipped: None });
        last_task = Some(task.id);
        last_occurrence = Some(occurrence);
    }
    if !dry_run {
        tx.execute(
            "UPDATE recurring SET next_at = ?1, last_task_id = ?2, last_occurrence = ?3 WHERE id = ?4",
            params![due.next_at, last_task, last_occurrence, id],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN15: i64 = 1_768_435_200;
    const HOUR: i64 = 3600;

    fn store() -> (tempfile::TempDir, Store) {
        crate::store::testing::store()
    }

    fn hourly(store: &mut Store) -> Schedule {
        let new = NewSchedule {
            cron: "0 * * * *".into(),
            tz: "UTC".into(),
            catch_up: CatchUp::Latest,
            skip_if_open: false,
            card: Template { title: "hourly".into(), ..Template::default() },
            next_at: JAN15 + HOUR,
            created_by: None,
        };
        store.add_schedule(&new, JAN15).unwrap()
    }

    fn cards(store: &mut Store) -> usize {
        store.list_tasks(&crate::store::TaskFilter::default()).unwrap().len()
    }

    #[test]
    fn a_racer_that_read_the_old_next_at_creates_no_second_card() {
        let (_dir, mut store) = store();
        let s = hourly(&mut store);
        let first = store.run_recurring(JAN15 + HOUR, false, &Ok).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(cards(&mut store), 1);
        // A second dispatcher that decided on the old next_at: the occurrence's key is held.
        store
            .write(|tx| {
                tx.execute("UPDATE recurring SET next_at = ?1 WHERE id = ?2", params![JAN15 + HOUR, s.id])
            })
            .unwrap();
        let again = store.run_recurring(JAN15 + HOUR, false, &Ok).unwrap();
        assert_eq!(again[0].task_id, first[0].task_id, "the card that holds the key");
        assert_eq!(cards(&mut store), 1);
        let created =
            store.events(None, None).unwrap().iter().filter(|e| e.kind == "recurring_created").count();
        assert_eq!(created, 1, "one event for one card");
    }

    #[test]
    fn a_dry_run_decides_the_same_and_writes_nothing() {
        let (_dir, mut store) = store();
        let s = hourly(&mut store);
        assert!(!store.recurring_due(JAN15 + HOUR - 1).unwrap());
        assert!(store.recurring_due(JAN15 + HOUR).unwrap());
        let dry = store.run_recurring(JAN15 + HOUR, true, &Ok).unwrap();
        assert_eq!(
            dry,
            [Occurrence { schedule: s.id, occurrence: JAN15 + HOUR, task_id: None, skipped: None }]
        );
        assert_eq!(cards(&mut store), 0);
        assert_eq!(store.schedules().unwrap()[0].next_at, Some(JAN15 + HOUR));
    }

    #[test]
    fn a_card_the_board_refuses_skips_its_occurrence_and_the_schedule_moves_on() {
        let (_dir, mut store) = store();
        let s = hourly(&mut store);
        let refuse = |_: NewTask| -> Result<NewTask> { Err(StoreError::Invalid("no workdir".into())) };
        let done = store.run_recurring(JAN15 + HOUR, false, &refuse).unwrap();
        assert_eq!(done[0].skipped.as_deref(), Some("no workdir"));
        assert_eq!(cards(&mut store), 0);
        assert_eq!(store.schedules().unwrap()[0].next_at, Some(JAN15 + 2 * HOUR));
        assert_eq!(s.next_at, Some(JAN15 + HOUR));
    }
}
