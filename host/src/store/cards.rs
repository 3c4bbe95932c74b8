//! Cards: create, read, edit, and move through the lifecycle. Every state change goes through
//! [`Store::apply`], which asks [`crate::lifecycle::transition`] and writes its answer by compare-and-set in
//! one transaction with its events; this file decides no rule of its own.

use std::collections::{BTreeMap, HashMap};

use rusqlite::params;
use rusqlite::types::Value as SqlValue;
use serde::Serialize;
use serde_json::{Value, json};

use super::db::Tx;
use super::rows::{self, query_all, query_one};
use super::{Result, Store, StoreError};
use crate::breaker::{BreakerLimits, FailureLimit};
use crate::lifecycle::{self, Action, Actor, Facts, Refusal, Transition};
use crate::model::{
    Attachment, CardFacts, CardHistory, Comment, Event, EventKind, Run, RunStatus, Status, Task,
    WorkspaceKind,
};

// Statuses in SQL, spelled by the vocabulary.
const ARCHIVED: &str = Status::Archived.sql();
const BLOCKED: &str = Status::Blocked.sql();
const DONE: &str = Status::Done.sql();
const RUNNING: &str = Status::Running.sql();
const RUN_ENDED: &str = RunStatus::Ended.sql();
const RUN_RUNNING: &str = RunStatus::Running.sql();
const TODO: &str = Status::Todo.sql();

/// A card to create. Defaults match `kanban create` with no flags.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub title: String,
    pub body: String,
    pub assignee: Option<String>,
    pub priority: i64,
    pub parents: Vec<String>,
    pub triage: bool,
    pub tenant: Option<String>,
    /// `None` means scratch.
    pub workspace_kind: Option<WorkspaceKind>,
    pub workspace_path: Option<String>,
    pub branch_name: Option<String>,
    pub idempotency_key: Option<String>,
    pub max_runtime_seconds: Option<i64>,
    pub max_retries: Option<i64>,
    pub goal_mode: bool,
    pub goal_max_turns: Option<i64>,
    /// `Running` or `Blocked` to create a card already in that state.
    pub initial_status: Option<Status>,
    pub created_by: Option<String>,
}

/// A parent of a card created in a batch ([`Store::create_batch`]): a card by id, the card that holds an
/// idempotency key, or an earlier card of the same batch by its index (whose id is drawn only in the
/// batch's transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentRef {
    Id(String),
    Key(String),
    Earlier(usize),
}

/// One card of a batch. Its parents are named here; `card.parents` stays empty.
#[derive(Debug, Clone, Default)]
pub struct BatchCard {
    pub card: NewTask,
    pub parents: Vec<ParentRef>,
}

/// What a batch gave for one card: its id and status, and whether it is new (`false`: its idempotency key
/// was already held, and that card is given unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    pub status: Status,
    pub created: bool,
}

/// Why a batch wrote nothing. `index` is the card at fault, when one was (a rule it breaks, a parent not
/// found), and `field` the field at fault when the message does not name it.
#[derive(Debug)]
pub struct BatchError {
    pub index: Option<usize>,
    pub field: Option<&'static str>,
    pub error: StoreError,
}

#[derive(Debug, Clone, Default)]
pub struct EditTask {
    pub title: Option<String>,
    pub body: Option<String>,
    pub priority: Option<i64>,
    pub reset_failures: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListSort {
    #[default]
    Created,
    Priority,
    Status,
    Assignee,
    Title,
    Updated,
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<Status>,
    /// `Some("none")` selects unassigned cards.
    pub assignee: Option<String>,
    pub tenant: Option<String>,
    pub include_archived: bool,
    pub sort: ListSort,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    pub by_assignee: BTreeMap<String, i64>,
    pub events: i64,
    pub runs: i64,
    pub runs_by_outcome: BTreeMap<String, i64>,
}

/// Everything `kanban show` prints about a card, read in one snapshot.
/// When one run of the board began and ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpan {
    pub id: i64,
    pub profile: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct TaskDetail {
    pub task: Task,
    pub parents: Vec<Task>,
    pub children: Vec<Task>,
    pub comments: Vec<Comment>,
    pub events: Vec<Event>,
    pub runs: Vec<Run>,
    pub attachments: Vec<Attachment>,
}

/// What [`Store::apply`] did: the card as it is now, the transition that was written, and the children it
/// released.
#[derive(Debug, Clone)]
pub struct Applied {
    pub task: Task,
    pub transition: Transition,
    pub released: Vec<String>,
}

/// `t_` + 8 lowercase hex from the OS random source.
pub fn new_task_id() -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("t_{}", hex::encode(bytes))
}

// ---------------------------------------------------------------------------------------------------------
// Helpers used inside transactions.

pub(crate) fn load(tx: &Tx, id: &str) -> Result<Task> {
    let sql = format!("SELECT {} FROM tasks WHERE id = ?1", rows::task_columns());
    query_one!(tx, TaskReader, sql, params![id]).ok_or_else(|| StoreError::NotFound(format!("card {id}")))
}

pub(crate) fn load_run(tx: &Tx, id: i64) -> Result<Option<Run>> {
    let sql = format!("SELECT {} FROM task_runs WHERE id = ?1", rows::run_columns());
    Ok(query_one!(tx, RunReader, sql, params![id]))
}

pub(crate) fn append_event(
    tx: &Tx,
    task_id: Option<&str>,
    run_id: Option<i64>,
    kind: EventKind,
    payload: Value,
    now: i64,
) -> Result<i64> {
    tx.query_row(
        "INSERT INTO task_events (task_id, run_id, kind, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         RETURNING id",
        params![task_id, run_id, kind, payload.to_string(), now],
        |r| r.get(0),
    )
}

/// Ids of the card's parents that are neither done nor archived, oldest first.
pub(crate) fn open_parent_ids(tx: &Tx, id: &str) -> Result<Vec<String>> {
    tx.query_map(
        &format!(
            "SELECT p.id FROM task_links l JOIN tasks p ON p.id = l.parent_id
             WHERE l.child_id = ?1 AND p.status NOT IN ({DONE}, {ARCHIVED}) ORDER BY p.created_at, p.id"
        ),
        params![id],
        |r| r.get(0),
    )
}

/// Record `parent -> child`. Returns how many rows were added (0 if the link already existed).
pub(crate) fn insert_link(tx: &Tx, parent: &str, child: &str, now: i64) -> Result<usize> {
    tx.execute(
        "INSERT INTO task_links (parent_id, child_id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![parent, child, now],
    )
}

/// Move a card from the status it was read in to `to`, and nothing else. The `status = from` guard is the
/// compare-and-set: if anything changed the card since it was read, nothing is written and the caller is
/// refused.
fn set_status(tx: &Tx, task: &Task, to: Status, now: i64) -> Result<()> {
    let n = tx.execute(
        "UPDATE tasks SET status = ?1, updated_at = ?2 WHERE id = ?3 AND status = ?4",
        params![to, now, task.id, task.status],
    )?;
    if n != 1 {
        return Err(StoreError::Refused(format!("card {} changed concurrently; try again", task.id)));
    }
    Ok(())
}

/// After a parent closed: every `todo` child with no open parent left becomes `ready`.
fn release_children(tx: &Tx, parent_id: &str, now: i64) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT {} FROM tasks WHERE status = {TODO} AND id IN (SELECT child_id FROM task_links WHERE parent_id = ?1)
         ORDER BY created_at, id",
        rows::task_columns()
    );
    let children: Vec<Task> = query_all!(tx, TaskReader, sql, params![parent_id]);
    let mut released = Vec::new();
    for child in children {
        if open_parent_ids(tx, &child.id)?.is_empty() {
            set_status(tx, &child, Status::Ready, now)?;
            append_event(
                tx,
                Some(&child.id),
                None,
                EventKind::Ready,
                json!({"from": Status::Todo, "reason": "parents_done"}),
                now,
            )?;
            released.push(child.id);
        }
    }
    Ok(released)
}

/// Would linking `parent -> child` close a cycle? True when `parent` is already reachable from `child`.
fn reaches(tx: &Tx, from: &str, target: &str) -> Result<bool> {
    tx.query_row(
        "WITH RECURSIVE down(id) AS (
            SELECT ?1
            UNION
            SELECT l.child_id FROM task_links l JOIN down d ON l.parent_id = d.id
         )
         SELECT EXISTS (SELECT 1 FROM down WHERE id = ?2)",
        params![from, target],
        |r| r.get(0),
    )
}

fn non_blank(value: &str, what: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        Err(StoreError::Invalid(format!("{what} must not be blank")))
    } else {
        Ok(trimmed.to_string())
    }
}

fn refusal(r: Refusal) -> StoreError {
    match r {
        Refusal::Refused(m) => StoreError::Refused(m),
        Refusal::Invalid(m) => StoreError::Invalid(m),
    }
}

/// The facts the transition table needs, read in the transaction.
fn facts_of(tx: &Tx, task: &Task) -> Result<(Vec<String>, Option<Run>)> {
    let open = open_parent_ids(tx, &task.id)?;
    let run = match task.current_run_id {
        Some(id) => load_run(tx, id)?,
        None => None,
    };
    Ok((open, run))
}

/// Decide a transition on the card as read in this transaction.
pub(crate) fn decide(
    tx: &Tx,
    task: &Task,
    actor: Actor,
    action: &Action,
    limits: BreakerLimits,
) -> Result<Transition> {
    let (open, run) = facts_of(tx, task)?;
    lifecycle::transition(task, &Facts { open_parents: &open, run: run.as_ref() }, actor, action, limits)
        .map_err(refusal)
}

/// Write a decided transition: end the run, compare-and-set the card, append the events, release the
/// children. `task` is the card the transition was decided on.
pub(crate) fn write_transition(tx: &Tx, task: &Task, t: &Transition, now: i64) -> Result<Vec<String>> {
    let run_id = t.end_run.as_ref().map(|e| e.run_id);
    if let Some(end) = &t.end_run {
        tx.execute(
            &format!(
                "UPDATE task_runs SET status = {RUN_ENDED}, outcome = ?1, error = COALESCE(?2, error),
                    summary = COALESCE(?3, summary), ended_at = ?4 WHERE id = ?5 AND status <> {RUN_ENDED}"
            ),
            params![end.outcome, end.error, end.summary, now, end.run_id],
        )?;
    }
    let c = &t.changes;
    let mut sets: Vec<(&str, SqlValue)> =
        vec![("status", SqlValue::Text(t.to.as_str().into())), ("updated_at", SqlValue::Integer(now))];
    let text = |v: &Option<String>| v.clone().map_or(SqlValue::Null, SqlValue::Text);
    if let Some(result) = &c.result {
        sets.push(("result", text(result)));
    }
    if c.completed {
        sets.push(("completed_at", SqlValue::Integer(now)));
    }
    for (column, value) in [
        ("consecutive_failures", c.failures),
        ("protocol_violations", c.violations),
        ("stale_reclaims", c.stale_reclaims),
    ] {
        if let Some(v) = value {
            sets.push((column, SqlValue::Integer(v)));
        }
    }
    if let Some(error) = &c.last_failure_error {
        sets.push(("last_failure_error", text(error)));
    }
    if let Some(block) = &c.block {
        let (kind, reason, sticky) = match block {
            Some(b) => (text(&b.kind), text(&b.reason), b.sticky),
            None => (SqlValue::Null, SqlValue::Null, false),
        };
        sets.extend([("block_kind", kind), ("block_reason", reason), ("block_sticky", sticky.into())]);
    }
    if c.clear_claim {
        for column in ["claim_lock", "claim_host", "claim_expires", "worker_pid", "current_run_id"] {
            sets.push((column, SqlValue::Null));
        }
    }
    if let Some(assignee) = &c.assignee {
        sets.push(("assignee", text(assignee)));
    }
    if let Some(reviewer) = &c.reviewer {
        sets.push(("reviewer", text(reviewer)));
    }
    if let Some(waived) = c.parents_waived {
        sets.push(("parents_waived", waived.into()));
    }
    let assignments: Vec<String> =
        sets.iter().enumerate().map(|(i, (col, _))| format!("{col} = ?{}", i + 1)).collect();
    let n = sets.len();
    let sql = format!(
        "UPDATE tasks SET {} WHERE id = ?{} AND status = ?{} AND current_run_id IS NOT DISTINCT FROM ?{}",
        assignments.join(", "),
        n + 1,
        n + 2,
        n + 3
    );
    let mut values: Vec<SqlValue> = sets.into_iter().map(|(_, v)| v).collect();
    values.push(SqlValue::Text(task.id.clone()));
    values.push(SqlValue::Text(task.status.as_str().into()));
    values.push(task.current_run_id.map_or(SqlValue::Null, SqlValue::Integer));
    let values: Vec<&dyn rusqlite::ToSql> = values.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
    if tx.execute(&sql, &values)? != 1 {
        return Err(StoreError::Refused(format!("card {} changed concurrently; try again", task.id)));
    }
    for e in &t.events {
        append_event(
            tx,
            Some(&task.id),
            if e.on_run { run_id } else { None },
            e.kind,
            e.payload.clone(),
            now,
        )?;
    }
    if t.release_children { release_children(tx, &task.id, now) } else { Ok(Vec::new()) }
}

// Reads shared by the single-item methods and [`Store::task_detail`] (one snapshot).

fn related_tasks(tx: &Tx, id: &str, ids_sql: &str) -> Result<Vec<Task>> {
    let sql =
        format!("SELECT {} FROM tasks WHERE id IN ({ids_sql}) ORDER BY created_at, id", rows::task_columns());
    Ok(query_all!(tx, TaskReader, sql, params![id]))
}

fn parents_of(tx: &Tx, id: &str) -> Result<Vec<Task>> {
    related_tasks(tx, id, "SELECT parent_id FROM task_links WHERE child_id = ?1")
}

fn children_of(tx: &Tx, id: &str) -> Result<Vec<Task>> {
    related_tasks(tx, id, "SELECT child_id FROM task_links WHERE parent_id = ?1")
}

pub(crate) fn comments_of(tx: &Tx, id: &str, newest: Option<i64>) -> Result<Vec<Comment>> {
    let cols = rows::comment_columns();
    let mut comments = match newest {
        Some(limit) => query_all!(
            tx,
            CommentReader,
            format!("SELECT {cols} FROM task_comments WHERE task_id = ?1 ORDER BY id DESC LIMIT ?2"),
            params![id, limit]
        ),
        None => {
            query_all!(
                tx,
                CommentReader,
                format!("SELECT {cols} FROM task_comments WHERE task_id = ?1 ORDER BY id"),
                params![id]
            )
        }
    };
    if newest.is_some() {
        comments.reverse();
    }
    Ok(comments)
}

pub(crate) fn events_of(tx: &Tx, task: Option<&str>, since: Option<i64>) -> Result<Vec<Event>> {
    // Two statements rather than `?1 IS NULL OR task_id = ?1`, which would defeat the index.
    let since = since.unwrap_or(0);
    let cols = rows::event_columns();
    Ok(match task {
        Some(task) => query_all!(
            tx,
            EventReader,
            format!("SELECT {cols} FROM task_events WHERE task_id = ?1 AND id > ?2 ORDER BY id"),
            params![task, since]
        ),
        None => query_all!(
            tx,
            EventReader,
            format!("SELECT {cols} FROM task_events WHERE id > ?1 ORDER BY id"),
            params![since]
        ),
    })
}

/// The newest `limit` events of a card, in id order.
pub(crate) fn newest_events_of(tx: &Tx, task: &str, limit: i64) -> Result<Vec<Event>> {
    let cols = rows::event_columns();
    let mut events = query_all!(
        tx,
        EventReader,
        format!("SELECT {cols} FROM task_events WHERE task_id = ?1 ORDER BY id DESC LIMIT ?2"),
        params![task, limit]
    );
    events.reverse();
    Ok(events)
}

/// A card's runs in id order, or with `newest`, only the newest that many, newest first.
pub(crate) fn runs_of(tx: &Tx, id: &str, newest: Option<i64>) -> Result<Vec<Run>> {
    let cols = rows::run_columns();
    Ok(match newest {
        Some(limit) => query_all!(
            tx,
            RunReader,
            format!("SELECT {cols} FROM task_runs WHERE task_id = ?1 ORDER BY id DESC LIMIT ?2"),
            params![id, limit]
        ),
        None => query_all!(
            tx,
            RunReader,
            format!("SELECT {cols} FROM task_runs WHERE task_id = ?1 ORDER BY id"),
            params![id]
        ),
    })
}

fn attachments_of(tx: &Tx, id: &str) -> Result<Vec<Attachment>> {
    let sql =
        format!("SELECT {} FROM task_attachments WHERE task_id = ?1 ORDER BY id", rows::attachment_columns());
    Ok(query_all!(tx, AttachmentReader, sql, params![id]))
}

pub(crate) fn insert_with_fresh_id(
    tx: &Tx,
    new: &NewTask,
    title: &str,
    kind: WorkspaceKind,
    status: Status,
    now: i64,
) -> Result<String> {
    // A random 32-bit id can collide on a big board; the primary key catches it and we draw again.
    for _ in 0..16 {
        let id = new_task_id();
        let inserted = tx.execute(
            "INSERT INTO tasks (id, title, body, status, assignee, priority, tenant, created_by, created_at,
                updated_at, started_at, workspace_kind, workspace_path, branch_name, idempotency_key,
                max_runtime_seconds, max_retries, goal_mode, goal_max_turns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
             ON CONFLICT DO NOTHING",
            params![
                id,
                title,
                new.body,
                status,
                new.assignee,
                new.priority,
                new.tenant,
                new.created_by,
                now,
                (status == Status::Running).then_some(now),
                kind,
                new.workspace_path,
                new.branch_name,
                new.idempotency_key,
                new.max_runtime_seconds,
                new.max_retries,
                new.goal_mode,
                new.goal_max_turns,
            ],
        )?;
        if inserted == 1 {
            return Ok(id);
        }
    }
    Err(StoreError::Refused("could not draw a free card id after 16 tries".into()))
}

/// The rules every new card obeys, checked before its transaction opens; returns the trimmed title.
/// [`Store::create_task`] and [`Store::create_batch`] both run it, so one card and a batch cannot differ.
/// (The command line's parser checks most of these first, with the flag's name.)
pub(crate) fn check_new(new: &NewTask) -> Result<String> {
    let title = non_blank(&new.title, "title")?;
    if let Some(key) = &new.idempotency_key {
        non_blank(key, "idempotency key")?;
    }
    if let Some(s) = new.initial_status
        && !matches!(s, Status::Running | Status::Blocked)
    {
        return Err(StoreError::Invalid(format!("initial status must be running or blocked, not '{s}'")));
    }
    let invalid = |message: String| Err(StoreError::Invalid(message));
    if new.triage && new.initial_status.is_some() {
        return invalid("a card cannot start both in triage and with an initial status".into());
    }
    if let Some(n) = new.max_retries
        && n < 0
    {
        return invalid(format!("max_retries must be at least 0, got {n}"));
    }
    if let Some(n) = new.goal_max_turns {
        if n < 1 {
            return invalid(format!("goal_max_turns must be at least 1, got {n}"));
        }
        if !new.goal_mode {
            return invalid("goal_max_turns is for goal cards only (goal mode is off)".into());
        }
    }
    if let Some(secs) = new.max_runtime_seconds
        && !(1..=crate::clock::MAX_DURATION_SECONDS).contains(&secs)
    {
        return invalid(format!("max_runtime must be more than 0 seconds and at most 100 years, got {secs}"));
    }
    Ok(title)
}

/// The card that holds an idempotency key: the one that is not archived (archiving frees a key).
fn holder_of_key(tx: &Tx, key: Option<&str>) -> Result<Option<Task>> {
    let Some(key) = key else { return Ok(None) };
    let sql = format!(
        "SELECT {} FROM tasks WHERE idempotency_key = ?1 AND status <> {ARCHIVED}",
        rows::task_columns()
    );
    Ok(query_one!(tx, TaskReader, sql, params![key]))
}

/// A card's status; not found when there is no such card.
fn status_of(tx: &Tx, id: &str) -> Result<Status> {
    tx.query_opt("SELECT status FROM tasks WHERE id = ?1", params![id], |r| r.get(0))?
        .ok_or_else(|| StoreError::NotFound(format!("card {id}")))
}

/// The one creation path: write a checked card (its trimmed `title` from [`check_new`]) that waits on
/// `parents` (ids with their statuses, already read), with its links and its `created` event. Its status
/// is `triage` when asked, else the initial status asked for, else `todo` while a parent is open, else
/// `ready`. Returns the new id and that status.
fn insert_card(
    tx: &Tx,
    new: &NewTask,
    title: &str,
    parents: &[(String, Status)],
    now: i64,
) -> Result<(String, Status)> {
    let status = if new.triage {
        Status::Triage
    } else if let Some(s) = new.initial_status {
        s
    } else if parents.iter().any(|(_, s)| !s.is_closed()) {
        Status::Todo
    } else {
        Status::Ready
    };
    let kind = new.workspace_kind.unwrap_or(WorkspaceKind::Scratch);
    let id = insert_with_fresh_id(tx, new, title, kind, status, now)?;
    // A parent named twice (by id and by key, say) is one link, and is listed once.
    let mut parent_ids: Vec<&str> = Vec::with_capacity(parents.len());
    for (parent, _) in parents {
        if !parent_ids.contains(&parent.as_str()) {
            parent_ids.push(parent);
        }
    }
    for parent in &parent_ids {
        insert_link(tx, parent, &id, now)?;
    }
    append_event(
        tx,
        Some(&id),
        None,
        EventKind::Created,
        json!({"status": status, "assignee": new.assignee, "parents": parent_ids, "created_by": new.created_by}),
        now,
    )?;
    if status == Status::Running {
        let task = load(tx, &id)?;
        open_run(tx, &task, crate::model::Lane::Work, new.assignee.as_deref(), None, now)?;
    }
    if status == Status::Blocked {
        tx.execute(
            "UPDATE tasks SET block_sticky = 1, block_reason = 'created blocked' WHERE id = ?1",
            params![id],
        )?;
    }
    Ok((id, status))
}

/// Create one card in the caller's transaction exactly as [`Store::create_task`] does (the same rules, the
/// same `created` event), for a writer whose own change must commit with the card (a recurring schedule
/// advancing past the occurrence it created). Returns the card and whether it is new.
pub(crate) fn create_in(tx: &Tx, new: &NewTask, now: i64) -> Result<(Task, bool)> {
    let title = check_new(new)?;
    create_checked(tx, new, &title, now)
}

fn create_checked(tx: &Tx, new: &NewTask, title: &str, now: i64) -> Result<(Task, bool)> {
    if let Some(task) = holder_of_key(tx, new.idempotency_key.as_deref())? {
        return Ok((task, false));
    }
    let parents =
        new.parents.iter().map(|p| Ok((p.clone(), status_of(tx, p)?))).collect::<Result<Vec<_>>>()?;
    let (id, _) = insert_card(tx, new, title, &parents, now)?;
    Ok((load(tx, &id)?, true))
}

/// Open a run for a card that is (now) running, and point the card at it.
pub(crate) fn open_run(
    tx: &Tx,
    task: &Task,
    lane: crate::model::Lane,
    profile: Option<&str>,
    claim: Option<&super::Claim>,
    now: i64,
) -> Result<i64> {
    let run_id: i64 = tx.query_row(
        &format!(
            "INSERT INTO task_runs (task_id, profile, status, claim_lock, host_id, lane, started_at)
             VALUES (?1, ?2, {RUN_RUNNING}, ?3, ?4, ?5, ?6) RETURNING id"
        ),
        params![task.id, profile, claim.map(|c| &c.lock), claim.map(|c| &c.host), lane, now],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE tasks SET current_run_id = ?1, started_at = COALESCE(started_at, ?2), updated_at = ?2 WHERE id = ?3",
        params![run_id, now, task.id],
    )?;
    append_event(
        tx,
        Some(&task.id),
        Some(run_id),
        EventKind::RunStarted,
        json!({"profile": profile, "claim_lock": claim.map(|c| &c.lock), "lane": lane}),
        now,
    )?;
    Ok(run_id)
}

// ---------------------------------------------------------------------------------------------------------
// Operations.

impl Store {
    /// Create a card. Returns the card and whether it is new: an idempotency key already held by a card that
    /// is not archived returns that card unchanged.
    pub fn create_task(&mut self, new: &NewTask, now: i64) -> Result<(Task, bool)> {
        let title = check_new(new)?;
        self.write(|tx| create_checked(tx, new, &title, now))
    }

    /// Create many cards in one transaction, each exactly as [`Store::create_task`] would (the same rules,
    /// the same `created` event), with one commit for the lot. For benchmarks and seeding; parents by id
    /// only. See [`Store::create_batch`] for parents named by key or by their place in the batch.
    pub fn create_tasks(&mut self, batch: &[NewTask], now: i64) -> Result<Vec<String>> {
        let batch: Vec<BatchCard> = batch
            .iter()
            .map(|new| {
                let mut card = new.clone();
                let parents = std::mem::take(&mut card.parents).into_iter().map(ParentRef::Id).collect();
                BatchCard { card, parents }
            })
            .collect();
        let created = self.create_batch(&batch, now, &mut |_| {}).map_err(|e| e.error)?;
        Ok(created.into_iter().map(|c| c.id).collect())
    }

    /// Create a batch of cards all or nothing: every card is checked by the rules of
    /// [`Store::create_task`] before the transaction opens, then each is created in order in one
    /// transaction, so a card may wait on an earlier card of the batch. A card whose idempotency key is
    /// already held by a card that is not archived (on the board, or an earlier card of the batch) gives
    /// that card, unchanged, as `create_task` does. On any error nothing is written, and the error says
    /// which card caused it. `progress` is told how many cards are written so far.
    pub fn create_batch(
        &mut self,
        batch: &[BatchCard],
        now: i64,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Created>, BatchError> {
        let mut titles = Vec::with_capacity(batch.len());
        for (i, item) in batch.iter().enumerate() {
            let title = if item.card.parents.is_empty() {
                check_new(&item.card)
            } else {
                Err(StoreError::Invalid("a card of a batch names its parents in `BatchCard::parents`".into()))
            };
            titles.push(title.map_err(|error| BatchError { index: Some(i), field: None, error })?);
        }
        // Which card (and field) the transaction was at when it failed.
        let mut at: Option<(usize, Option<&'static str>)> = None;
        let written = self.write(|tx| {
            let mut done: Vec<Created> = Vec::with_capacity(batch.len());
            for (i, (item, title)) in batch.iter().zip(&titles).enumerate() {
                at = Some((i, None));
                if let Some(task) = holder_of_key(tx, item.card.idempotency_key.as_deref())? {
                    done.push(Created { id: task.id, status: task.status, created: false });
                    progress(i + 1);
                    continue;
                }
                at = Some((i, Some("parents")));
                let mut parents = Vec::with_capacity(item.parents.len());
                for parent in &item.parents {
                    parents.push(match parent {
                        ParentRef::Id(id) => (id.clone(), status_of(tx, id)?),
                        ParentRef::Key(key) => match holder_of_key(tx, Some(key))? {
                            Some(task) => (task.id, task.status),
                            None => {
                                return Err(StoreError::NotFound(format!(
                                    "card with idempotency key '{key}'"
                                )));
                            }
                        },
                        ParentRef::Earlier(j) => match done.get(*j) {
                            Some(earlier) if *j < i => (earlier.id.clone(), earlier.status),
                            _ => {
                                return Err(StoreError::Invalid(format!(
                                    "card {j} of the batch is not an earlier card than card {i}"
                                )));
                            }
                        },
                    });
                }
                at = Some((i, None));
                let (id, status) = insert_card(tx, &item.card, title, &parents, now)?;
                done.push(Created { id, status, created: true });
                progress(i + 1);
            }
            at = None;
            Ok(done)
        });
        written.map_err(|error| {
            // A card is named only for its own fault, not for the database's (a full disk, a lock).
            let own =
                matches!(error, StoreError::Invalid(_) | StoreError::NotFound(_) | StoreError::Refused(_));
            let at = at.filter(|_| own);
            BatchError { index: at.map(|(i, _)| i), field: at.and_then(|(_, f)| f), error }
        })
    }

    pub fn get_task(&mut self, id: &str) -> Result<Task> {
        self.read(|tx| load(tx, id))
    }

    pub fn get_run(&mut self, id: i64) -> Result<Run> {
        self.read(|tx| load_run(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("run {id}"))))
    }

    fn list_sql(filter: &TaskFilter) -> (String, Vec<String>) {
        let mut sql = format!("SELECT {} FROM tasks WHERE 1 = 1", rows::task_columns());
        let mut args: Vec<String> = Vec::new();
        if let Some(status) = filter.status {
            args.push(status.as_str().to_string());
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        } else if !filter.include_archived {
            sql.push_str(&format!(" AND status <> {ARCHIVED}"));
        }
        match filter.assignee.as_deref() {
            Some("none") => sql.push_str(" AND assignee IS NULL"),
            Some(a) => {
                args.push(a.to_string());
                sql.push_str(&format!(" AND assignee = ?{}", args.len()));
            }
            None => {}
        }
        if let Some(tenant) = &filter.tenant {
            args.push(tenant.clone());
            sql.push_str(&format!(" AND tenant = ?{}", args.len()));
        }
        let status_rank = Status::ALL
            .iter()
            .enumerate()
            .map(|(i, s)| format!("WHEN '{s}' THEN {i}"))
            .collect::<Vec<_>>()
            .join(" ");
        match filter.sort {
            // rowid keeps insertion order among cards created in the same second (ids are random).
            ListSort::Created => sql.push_str(" ORDER BY created_at, rowid"),
            ListSort::Priority => sql.push_str(" ORDER BY priority DESC, created_at, rowid"),
            ListSort::Assignee => sql.push_str(" ORDER BY assignee IS NULL, assignee, created_at, id"),
            // `lower` on both engines (SQLite's NOCASE collation is its own): ASCII case folded alike.
            ListSort::Title => sql.push_str(" ORDER BY lower(title), created_at, id"),
            ListSort::Updated => sql.push_str(" ORDER BY updated_at DESC, created_at, id"),
            ListSort::Status => {
                sql.push_str(&format!(" ORDER BY CASE status {status_rank} ELSE 99 END, created_at, id"))
            }
        }
        (sql, args)
    }

    pub fn list_tasks(&mut self, filter: &TaskFilter) -> Result<Vec<Task>> {
        let mut out = Vec::new();
        self.for_each_task(filter, |t| {
            out.push(t);
            Ok(())
        })?;
        Ok(out)
    }

    /// Stream the cards a filter selects, in its order, without collecting them (a big board's listing
    /// goes straight to the writer). An error from `each` stops the listing and is returned.
    pub fn for_each_task(
        &mut self,
        filter: &TaskFilter,
        mut each: impl FnMut(Task) -> std::result::Result<(), StoreError>,
    ) -> Result<()> {
        let (sql, args) = Self::list_sql(filter);
        self.read(|tx| {
            let args: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a as &dyn rusqlite::ToSql).collect();
            tx.for_each(&sql, &args, rows::TaskReader::new, |reader, row| each(reader.read(row)?))
        })
    }

    pub fn parents(&mut self, id: &str) -> Result<Vec<Task>> {
        self.read(|tx| parents_of(tx, id))
    }

    pub fn children(&mut self, id: &str) -> Result<Vec<Task>> {
        self.read(|tx| children_of(tx, id))
    }

    /// For each of `parents` that has children: (children done, children) (the tiles' "N/M children done").
    pub fn child_counts(&mut self, parents: &[String]) -> Result<BTreeMap<String, (usize, usize)>> {
        let mut counts = BTreeMap::new();
        self.read(|tx| {
            let sql = format!(
                "SELECT count(*), coalesce(sum(CASE WHEN c.status = {DONE} THEN 1 ELSE 0 END), 0) FROM task_links l
                 JOIN tasks c ON c.id = l.child_id WHERE l.parent_id = ?1"
            );
            for parent in parents {
                let (total, done): (i64, i64) =
                    tx.query_row(&sql, params![parent], |r| Ok((r.get(0)?, r.get(1)?)))?;
                if total > 0 {
                    counts.insert(
                        parent.clone(),
                        (usize::try_from(done).unwrap_or(0), usize::try_from(total).unwrap_or(0)),
                    );
                }
            }
            Ok(())
        })?;
        Ok(counts)
    }

    /// Cards in `status` whose newest event is a respawn guard's deferral (`deferred`), with that event's
    /// policy and reason: the cards a guard is holding back right now.
    pub fn deferred_cards(&mut self, status: Status) -> Result<Vec<Event>> {
        let cols = rows::event_columns();
        let sql = format!(
            "SELECT {cols} FROM task_events WHERE id IN (
               SELECT (SELECT max(e.id) FROM task_events e WHERE e.task_id = t.id) FROM tasks t WHERE t.status = ?1)
             AND kind = 'deferred' ORDER BY id"
        );
        self.read(|tx| Ok(query_all!(tx, EventReader, sql, params![status.as_str()])))
    }

    pub fn comments(&mut self, id: &str) -> Result<Vec<Comment>> {
        self.read(|tx| comments_of(tx, id, None))
    }

    /// Events in id order, optionally for one card and after a given event id.
    pub fn events(&mut self, task: Option<&str>, since: Option<i64>) -> Result<Vec<Event>> {
        self.read(|tx| events_of(tx, task, since))
    }

    /// At most `limit` events after event id `since`, in id order, optionally for one card: a reader that
    /// pages with the last id it got walks any number of events in bounded memory.
    pub fn events_page(&mut self, task: Option<&str>, since: i64, limit: usize) -> Result<Vec<Event>> {
        let cols = rows::event_columns();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|tx| {
            Ok(match task {
                Some(task) => query_all!(
                    tx,
                    EventReader,
                    format!(
                        "SELECT {cols} FROM task_events WHERE task_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                    ),
                    params![task, since, limit]
                ),
                None => query_all!(
                    tx,
                    EventReader,
                    format!("SELECT {cols} FROM task_events WHERE id > ?1 ORDER BY id LIMIT ?2"),
                    params![since, limit]
                ),
            })
        })
    }

    /// How many events of each kind came after event id `since`, split by whether they are about a run
    /// (`run_id` set): what `/metrics` counts, without reading the events themselves.
    pub fn event_tally(&mut self, since: i64) -> Result<EventTally> {
        self.read(|tx| {
            let mut tally = EventTally { last: since, counts: Vec::new() };
            let rows = tx.query_map(
                "SELECT kind, run_id IS NOT NULL, count(*), max(id) FROM task_events WHERE id > ?1 GROUP BY 1, 2",
                params![since],
                |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?, r.get::<i64>(2)?, r.get::<i64>(3)?)),
            )?;
            for (kind, on_run, n, last) in rows {
                tally.last = tally.last.max(last);
                tally.counts.push((kind, on_run, n as u64));
            }
            Ok(tally)
        })
    }

    /// The board's events of `kinds` from `since` (a time) on, in id order: the decisions `kanban policy
    /// replay` asks a candidate policy about again.
    pub fn events_of_kinds(&mut self, kinds: &[EventKind], since: i64) -> Result<Vec<Event>> {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let kinds = serde_json::to_string(&kinds).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let cols = rows::event_columns();
        self.read(|tx| {
            Ok(query_all!(
                tx,
                EventReader,
                format!(
                    "SELECT {cols} FROM task_events
                     WHERE kind IN (SELECT value FROM json_each(?1)) AND created_at >= ?2 ORDER BY id"
                ),
                params![kinds, since]
            ))
        })
    }

    /// Every run of the board, in id order: what was running when.
    pub fn run_spans(&mut self) -> Result<Vec<RunSpan>> {
        self.read(|tx| {
            tx.query_map("SELECT id, profile, started_at, ended_at FROM task_runs ORDER BY id", &[], |r| {
                Ok(RunSpan { id: r.get(0)?, profile: r.get(1)?, started_at: r.get(2)?, ended_at: r.get(3)? })
            })
        })
    }

    /// The id of the newest event (0 on an empty board).
    pub fn last_event_id(&mut self) -> Result<i64> {
        self.read(|tx| tx.query_row("SELECT COALESCE(max(id), 0) FROM task_events", &[], |r| r.get(0)))
    }

    pub fn runs(&mut self, id: &str) -> Result<Vec<Run>> {
        self.read(|tx| runs_of(tx, id, None))
    }

    pub fn attachments(&mut self, id: &str) -> Result<Vec<Attachment>> {
        self.read(|tx| attachments_of(tx, id))
    }

    /// A card with everything around it, in one read transaction.
    pub fn task_detail(&mut self, id: &str) -> Result<TaskDetail> {
        self.read(|tx| {
            Ok(TaskDetail {
                task: load(tx, id)?,
                parents: parents_of(tx, id)?,
                children: children_of(tx, id)?,
                comments: comments_of(tx, id, None)?,
                events: events_of(tx, Some(id), None)?,
                runs: runs_of(tx, id, None)?,
                attachments: attachments_of(tx, id)?,
            })
        })
    }

    /// What a policy may know about a card, in one snapshot bounded by `LIMIT`s: the newest `runs` runs,
    /// `events` events and `comments` comments, and the parents.
    pub fn card_facts(&mut self, id: &str, runs: i64, events: i64, comments: i64) -> Result<CardFacts> {
        self.read(|tx| {
            Ok(CardFacts {
                task: load(tx, id)?,
                runs: runs_of(tx, id, Some(runs))?,
                events: newest_events_of(tx, id, events)?,
                comments: comments_of(tx, id, Some(comments))?,
                parents: parents_of(tx, id)?,
            })
        })
    }

    /// The history half of [`Store::card_facts`] for many cards at once (a tick's candidates, whose rows
    /// it already holds), in one snapshot and four queries whatever their number: the newest `runs`,
    /// `events` and `comments` of each card, and its parents. Every id gets an entry.
    pub fn card_histories(
        &mut self,
        ids: &[String],
        runs: i64,
        events: i64,
        comments: i64,
    ) -> Result<HashMap<String, CardHistory>> {
        const IDS: &str = "SELECT value FROM json_each(?1)";
        let ids_json = serde_json::to_string(ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut facts: HashMap<String, CardHistory> =
            ids.iter().map(|id| (id.clone(), CardHistory::default())).collect();
        self.read(|tx| {
            // The newest `limit` rows of each card: a correlated LIMIT per card over the (task_id, id)
            // index, so a card with a long history costs `limit` rows, not its whole history. PostgreSQL
            // says it with a lateral join (its planner runs the `IN (subquery)` form per row pair).
            let lateral = tx.is_postgres();
            let newest = |table: &str, columns: &str, limit: i64, order: &str| {
                let per_card = format!(
                    "FROM {table} AS x WHERE x.task_id = wanted.card ORDER BY x.id DESC LIMIT {limit}"
                );
                let rows = if lateral {
                    format!("CROSS JOIN LATERAL (SELECT x.* {per_card}) AS {table}")
                } else {
                    format!("JOIN {table} ON {table}.id IN (SELECT x.id {per_card})")
                };
                format!(
                    "SELECT {columns} FROM (SELECT value AS card FROM json_each(?1)) AS wanted {rows}
                     ORDER BY task_id, id {order}"
                )
            };
            let sql = newest("task_runs", rows::run_columns(), runs, "DESC");
            for run in query_all!(tx, RunReader, sql, params![&ids_json]) {
                if let Some(f) = facts.get_mut(&run.task_id) {
                    f.runs.push(run);
                }
            }
            let sql = newest("task_events", rows::event_columns(), events, "ASC");
            for event in query_all!(tx, EventReader, sql, params![&ids_json]) {
                if let Some(f) = event.task_id.as_ref().and_then(|t| facts.get_mut(t)) {
                    f.events.push(event);
                }
            }
            let sql = newest("task_comments", rows::comment_columns(), comments, "ASC");
            for comment in query_all!(tx, CommentReader, sql, params![&ids_json]) {
                if let Some(f) = facts.get_mut(&comment.task_id) {
                    f.comments.push(comment);
                }
            }
            let sql = format!(
                "SELECT l.child_id AS child_of, p.* FROM task_links l JOIN tasks p ON p.id = l.parent_id
                 WHERE l.child_id IN ({IDS}) ORDER BY p.created_at, p.id"
            );
            let start = |names: &[&str]| -> rusqlite::Result<(rows::TaskReader, usize)> {
                let child = names
                    .iter()
                    .position(|n| *n == "child_of")
                    .ok_or_else(|| rusqlite::Error::InvalidColumnName("child_of".into()))?;
                Ok((rows::TaskReader::new(names)?, child))
            };
            tx.for_each(&sql, params![ids_json], start, |(reader, child), row| {
                let of: String = row.get(*child)?;
                if let Some(f) = facts.get_mut(&of) {
                    f.parents.push(reader.read(row)?);
                }
                Ok(())
            })?;
            Ok(facts)
        })
    }

    pub fn require_task(&mut self, id: &str) -> Result<()> {
        self.get_task(id).map(|_| ())
    }

    /// A card's status, or `None` when no such card exists (never created, or deleted for good).
    pub fn task_status(&mut self, id: &str) -> Result<Option<Status>> {
        self.read(|tx| tx.query_opt("SELECT status FROM tasks WHERE id = ?1", params![id], |r| r.get(0)))
    }

    /// The one write path of the lifecycle: load the card and its facts, ask the transition table, and
    /// write its answer by compare-and-set with its events, in one transaction.
    pub fn apply(
        &mut self,
        id: &str,
        actor: Actor,
        action: &Action,
        limits: BreakerLimits,
        now: i64,
    ) -> Result<Applied> {
        self.write(|tx| {
            let task = load(tx, id)?;
            let transition = decide(tx, &task, actor, action, limits)?;
            let released = write_transition(tx, &task, &transition, now)?;
            Ok(Applied { task: load(tx, id)?, transition, released })
        })
    }

    /// What [`Store::apply`] would do, without writing: the same checks, refused the same way.
    pub fn check(
        &mut self,
        id: &str,
        actor: Actor,
        action: &Action,
        limits: BreakerLimits,
    ) -> Result<Transition> {
        self.read(|tx| {
            let task = load(tx, id)?;
            decide(tx, &task, actor, action, limits)
        })
    }

    /// Assign an unassigned dispatchable card on a routing policy's decision, recording which policy chose.
    /// `false` when the card changed meanwhile (assigned, or no longer dispatchable).
    pub fn assign_by_policy(&mut self, id: &str, profile: &str, policy: &str, now: i64) -> Result<bool> {
        self.write(|tx| {
            let task = load(tx, id)?;
            if task.assignee.is_some() || !task.status.is_dispatchable() {
                return Ok(false);
            }
            let action = Action::Assign { assignee: Some(profile.to_string()), source: policy.to_string() };
            let t = decide(tx, &task, Actor::Operator, &action, BreakerLimits::default())?;
            write_transition(tx, &task, &t, now)?;
            Ok(true)
        })
    }

    /// Record a tick's respawn-guard deferrals, `(card, policy, reason, retry_after)`, in one transaction:
    /// a `deferred` event on each card whose newest event is not already a deferral by the same policy
    /// (a card deferred tick after tick gets one event per streak, not one per tick). Cards gone or no
    /// longer dispatchable are skipped. Returns how many events were written.
    pub fn record_deferrals(
        &mut self,
        deferred: &[(&str, &str, &str, Option<i64>)],
        now: i64,
    ) -> Result<usize> {
        if deferred.is_empty() {
            return Ok(0);
        }
        self.write(|tx| {
            let policy_of = if tx.is_postgres() {
                "payload::json ->> 'policy'"
            } else {
                "json_extract(payload, '$.policy')"
            };
            let newest_sql = format!(
                "SELECT kind, {policy_of} FROM task_events WHERE task_id = ?1 ORDER BY id DESC LIMIT 1"
            );
            let mut written = 0;
            for &(id, policy, reason, retry_after) in deferred {
                let Some(task) = load(tx, id).ok().filter(|t| t.status.is_dispatchable()) else {
                    continue;
                };
                let newest: Option<(String, Option<String>)> =
                    tx.query_opt(&newest_sql, params![id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                if newest.is_some_and(|(kind, by)| {
                    kind == EventKind::Deferred.as_str() && by.as_deref() == Some(policy)
                }) {
                    continue;
                }
                let payload = json!({
                    "policy": policy,
                    "reason": reason,
                    "retry_after": retry_after,
                    "status": task.status,
                    "assignee": task.assignee,
                });
                append_event(tx, Some(id), None, EventKind::Deferred, payload, now)?;
                written += 1;
            }
            Ok(written)
        })
    }

    /// Block a dispatchable card on a respawn guard's decision (not counted as a failure; sticky until
    /// `unblock`). `false` when the card is no longer dispatchable.
    pub fn block_by_policy(&mut self, id: &str, reason: &str, policy: &str, now: i64) -> Result<bool> {
        self.write(|tx| {
            let task = load(tx, id)?;
            if !task.status.is_dispatchable() {
                return Ok(false);
            }
            let action =
                Action::Block { reason: Some(reason.to_string()), kind: Some("policy".into()), sticky: true };
            let mut t = decide(tx, &task, Actor::Operator, &action, BreakerLimits::default())?;
            t.events[0].payload["policy"] = json!(policy);
            write_transition(tx, &task, &t, now)?;
            Ok(true)
        })
    }

    pub fn add_comment(&mut self, id: &str, author: Option<&str>, body: &str, now: i64) -> Result<Comment> {
        let body = non_blank(body, "comment")?;
        self.write(|tx| {
            load(tx, id)?;
            let comment_id: i64 = tx.query_row(
                "INSERT INTO task_comments (task_id, author, body, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                params![id, author, body, now],
                |r| r.get(0),
            )?;
            append_event(
                tx,
                Some(id),
                None,
                EventKind::Commented,
                json!({"comment_id": comment_id, "author": author}),
                now,
            )?;
            Ok(Comment {
                id: comment_id,
                task_id: id.to_string(),
                author: author.map(str::to_string),
                body,
                created_at: now,
            })
        })
    }

    pub fn link(&mut self, parent: &str, child: &str, now: i64) -> Result<()> {
        if parent == child {
            return Err(StoreError::Refused(format!("cannot link card {parent} to itself")));
        }
        self.write(|tx| {
            let parent_task = load(tx, parent)?;
            let child_task = load(tx, child)?;
            if !parent_task.is_closed() && (child_task.status == Status::Running || child_task.is_closed()) {
                return Err(StoreError::Refused(format!(
                    "card {child} is {}; it cannot start waiting on the open parent {parent}",
                    child_task.status
                )));
            }
            if reaches(tx, child, parent)? {
                return Err(StoreError::Refused(format!(
                    "linking {parent} -> {child} would make a cycle ({child} already leads to {parent})"
                )));
            }
            if insert_link(tx, parent, child, now)? == 0 {
                return Err(StoreError::Refused(format!("{parent} is already a parent of {child}")));
            }
            append_event(tx, Some(child), None, EventKind::Linked, json!({"parent": parent}), now)?;
            if child_task.status == Status::Ready && !parent_task.is_closed() && !child_task.parents_waived {
                set_status(tx, &child_task, Status::Todo, now)?;
                append_event(
                    tx,
                    Some(child),
                    None,
                    EventKind::Waiting,
                    json!({"from": Status::Ready, "parent": parent}),
                    now,
                )?;
            }
            Ok(())
        })
    }

    pub fn unlink(&mut self, parent: &str, child: &str, now: i64) -> Result<()> {
        self.write(|tx| {
            load(tx, parent)?;
            let child_task = load(tx, child)?;
            let removed = tx.execute(
                "DELETE FROM task_links WHERE parent_id = ?1 AND child_id = ?2",
                params![parent, child],
            )?;
            if removed == 0 {
                return Err(StoreError::Refused(format!("{parent} is not a parent of {child}")));
            }
            append_event(tx, Some(child), None, EventKind::Unlinked, json!({"parent": parent}), now)?;
            if child_task.status == Status::Todo && open_parent_ids(tx, child)?.is_empty() {
                set_status(tx, &child_task, Status::Ready, now)?;
                append_event(
                    tx,
                    Some(child),
                    None,
                    EventKind::Ready,
                    json!({"from": Status::Todo, "reason": "unlinked"}),
                    now,
                )?;
            }
            Ok(())
        })
    }

    pub fn edit(&mut self, id: &str, edit: &EditTask, now: i64) -> Result<Task> {
        let title = edit.title.as_deref().map(|t| non_blank(t, "title")).transpose()?;
        self.write(|tx| {
            let task = load(tx, id)?;
            let mut changed = serde_json::Map::new();
            if let Some(title) = &title {
                tx.execute("UPDATE tasks SET title = ?1 WHERE id = ?2", params![title, id])?;
                changed.insert("title".into(), json!(title));
            }
            if let Some(body) = &edit.body {
                tx.execute("UPDATE tasks SET body = ?1 WHERE id = ?2", params![body, id])?;
                changed.insert("body".into(), json!(true));
            }
            if let Some(priority) = edit.priority {
                tx.execute("UPDATE tasks SET priority = ?1 WHERE id = ?2", params![priority, id])?;
                changed.insert("priority".into(), json!(priority));
            }
            if edit.reset_failures {
                tx.execute(
                    "UPDATE tasks SET consecutive_failures = 0, protocol_violations = 0, stale_reclaims = 0 WHERE id = ?1",
                    params![id],
                )?;
                changed.insert("reset_failures".into(), json!(task.consecutive_failures));
            }
            if changed.is_empty() {
                return Err(StoreError::Invalid(
                    "nothing to edit: pass --title, --body, --priority or --reset-failures".into(),
                ));
            }
            tx.execute("UPDATE tasks SET updated_at = ?1 WHERE id = ?2", params![now, id])?;
            append_event(tx, Some(id), None, EventKind::Edited, Value::Object(changed), now)?;
            load(tx, id)
        })
    }

    /// Delete an archived card for good, with its links, comments, runs and attachment rows. Returns the
    /// attachments so the caller can remove their files after the commit.
    pub fn delete_archived(&mut self, id: &str, now: i64) -> Result<Vec<Attachment>> {
        self.write(|tx| {
            let task = load(tx, id)?;
            if task.status != Status::Archived {
                return Err(StoreError::Refused(format!(
                    "card {id} is {}; only archived cards can be deleted",
                    task.status
                )));
            }
            let attachments = attachments_of(tx, id)?;
            let children: Vec<String> =
                tx.query_map("SELECT child_id FROM task_links WHERE parent_id = ?1", params![id], |r| {
                    r.get(0)
                })?;
            for sql in [
                "DELETE FROM task_links WHERE parent_id = ?1 OR child_id = ?1",
                "DELETE FROM task_comments WHERE task_id = ?1",
                "DELETE FROM task_runs WHERE task_id = ?1",
                "DELETE FROM task_attachments WHERE task_id = ?1",
                "DELETE FROM task_findings WHERE task_id = ?1",
                "DELETE FROM tasks WHERE id = ?1",
            ] {
                tx.execute(sql, params![id])?;
            }
            append_event(
                tx,
                Some(id),
                None,
                EventKind::Deleted,
                json!({"title": task.title, "children": children}),
                now,
            )?;
            Ok(attachments)
        })
    }

    /// A worker's heartbeat on its run: stamps the card and run and extends the claim.
    pub fn heartbeat(
        &mut self,
        id: &str,
        note: Option<&str>,
        claim_ttl: i64,
        attempt: Option<i64>,
        now: i64,
    ) -> Result<Task> {
        self.write(|tx| {
            let task = load(tx, id)?;
            if let Some(run) = attempt {
                let (_, current) = facts_of(tx, &task)?;
                lifecycle::check_attempt(&task, current.as_ref(), run).map_err(refusal)?;
            }
            if task.status != Status::Running {
                return Err(StoreError::Refused(format!(
                    "cannot heartbeat card {id} while it is {}",
                    task.status
                )));
            }
            let n = tx.execute(
                &format!(
                    "UPDATE tasks SET last_heartbeat_at = ?1, claim_expires = ?2, updated_at = ?1
                 WHERE id = ?3 AND status = {RUNNING} AND current_run_id IS NOT DISTINCT FROM ?4"
                ),
                params![now, now + claim_ttl, id, task.current_run_id],
            )?;
            if n != 1 {
                return Err(StoreError::Refused(format!("card {id} changed concurrently; try again")));
            }
            if let Some(run) = task.current_run_id {
                tx.execute("UPDATE task_runs SET last_heartbeat_at = ?1 WHERE id = ?2", params![now, run])?;
            }
            append_event(
                tx,
                Some(id),
                task.current_run_id,
                EventKind::Heartbeat,
                json!({"note": note}),
                now,
            )?;
            load(tx, id)
        })
    }

    /// Record an attachment whose file is already in place under `stored_name`.
    pub fn add_attachment(
        &mut self,
        id: &str,
        name: &str,
        stored_name: &str,
        size: i64,
        sha256: &str,
        now: i64,
    ) -> Result<Attachment> {
        self.write(|tx| {
            load(tx, id)?;
            let att_id: i64 = tx.query_row(
                "INSERT INTO task_attachments (task_id, name, stored_name, size, sha256, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                params![id, name, stored_name, size, sha256, now],
                |r| r.get(0),
            )?;
            append_event(
                tx,
                Some(id),
                None,
                EventKind::Attached,
                json!({"attachment_id": att_id, "name": stored_name, "size": size}),
                now,
            )?;
            Ok(Attachment {
                id: att_id,
                task_id: id.into(),
                name: name.into(),
                stored_name: stored_name.into(),
                size,
                sha256: sha256.into(),
                created_at: now,
            })
        })
    }

    /// Remove an attachment row; returns it so the caller can delete the file after the commit.
    /// `only_task` (a worker's scope) refuses attachments of any other card.
    pub fn remove_attachment(
        &mut self,
        attachment_id: i64,
        only_task: Option<&str>,
        now: i64,
    ) -> Result<Attachment> {
        self.write(|tx| {
            let sql = format!("SELECT {} FROM task_attachments WHERE id = ?1", rows::attachment_columns());
            let att = query_one!(tx, AttachmentReader, sql, params![attachment_id])
                .ok_or_else(|| StoreError::NotFound(format!("attachment {attachment_id}")))?;
            if let Some(task) = only_task
                && att.task_id != task
            {
                return Err(StoreError::Refused(format!(
                    "worker is scoped to task {task}; refusing to modify {} (attachment {attachment_id})",
                    att.task_id
                )));
            }
            tx.execute("DELETE FROM task_attachments WHERE id = ?1", params![attachment_id])?;
            append_event(
                tx,
                Some(&att.task_id),
                None,
                EventKind::AttachmentRemoved,
                json!({"attachment_id": attachment_id, "name": att.stored_name}),
                now,
            )?;
            Ok(att)
        })
    }

    pub fn stats(&mut self) -> Result<Stats> {
        self.read(|tx| {
            let group = |sql: &str| -> Result<BTreeMap<String, i64>> {
                let rows = tx.query_map(sql, &[], |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)))?;
                Ok(rows.into_iter().collect())
            };
            let by_status = group("SELECT status, count(*) FROM tasks GROUP BY status")?;
            Ok(Stats {
                total: by_status.values().sum(),
                by_status,
                by_assignee: group(
                    &format!("SELECT COALESCE(assignee, 'none'), count(*) FROM tasks WHERE status <> {ARCHIVED} GROUP BY 1"),
                )?,
                events: tx.query_row("SELECT count(*) FROM task_events", &[], |r| r.get(0))?,
                runs: tx.query_row("SELECT count(*) FROM task_runs", &[], |r| r.get(0))?,
                runs_by_outcome: group("SELECT COALESCE(outcome, status), count(*) FROM task_runs GROUP BY 1")?,
            })
        })
    }

    /// Recompute what is ready: `todo` cards whose parents are all closed become `ready`, and `blocked`
    /// cards recover when their block is not sticky and their failure count is below the limit (the card's
    /// `max_retries`, else `board_failure_limit`, else the default). Recovery never resets the counter.
    /// Returns the ids that changed, in the order they changed.
    pub fn recompute_ready(&mut self, board_failure_limit: Option<i64>, now: i64) -> Result<Vec<String>> {
        self.write(|tx| {
            let mut changed = Vec::new();
            let sql = format!(
                "SELECT {} FROM tasks t WHERE status = {TODO} AND NOT EXISTS (
                    SELECT 1 FROM task_links l JOIN tasks p ON p.id = l.parent_id
                    WHERE l.child_id = t.id AND p.status NOT IN ({DONE}, {ARCHIVED}))
                 ORDER BY created_at, id",
                rows::task_columns()
            );
            let todo: Vec<Task> = query_all!(tx, TaskReader, sql, &[]);
            for task in todo {
                set_status(tx, &task, Status::Ready, now)?;
                append_event(
                    tx,
                    Some(&task.id),
                    None,
                    EventKind::Ready,
                    json!({"from": Status::Todo, "reason": "parents_done"}),
                    now,
                )?;
                changed.push(task.id);
            }
            let sql = format!(
                "SELECT {} FROM tasks WHERE status = {BLOCKED} AND block_sticky = 0 ORDER BY created_at, id",
                rows::task_columns()
            );
            let blocked: Vec<Task> = query_all!(tx, TaskReader, sql, &[]);
            for task in blocked {
                let limit = FailureLimit::resolve(task.max_retries, board_failure_limit);
                if task.consecutive_failures >= limit {
                    continue;
                }
                let to = if open_parent_ids(tx, &task.id)?.is_empty() || task.parents_waived {
                    Status::Ready
                } else {
                    Status::Todo
                };
                set_status(tx, &task, to, now)?;
                tx.execute(
                    "UPDATE tasks SET block_kind = NULL, block_reason = NULL WHERE id = ?1",
                    params![task.id],
                )?;
                append_event(
                    tx,
                    Some(&task.id),
                    None,
                    EventKind::Recovered,
                    json!({"to": to, "consecutive_failures": task.consecutive_failures, "limit": limit}),
                    now,
                )?;
                changed.push(task.id);
            }
            Ok(changed)
        })
    }

    /// Append a free-standing event (policy errors, tips, health warnings).
    pub fn record_event(
        &mut self,
        task_id: Option<&str>,
        kind: EventKind,
        payload: Value,
        now: i64,
    ) -> Result<i64> {
        self.write(|tx| append_event(tx, task_id, None, kind, payload, now))
    }

    /// Write many free-standing events in one transaction.
    pub fn record_events(&mut self, events: &[(Option<String>, EventKind, Value)], now: i64) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            for (task, kind, payload) in events {
                append_event(tx, task.as_deref(), None, *kind, payload.clone(), now)?;
            }
            Ok(())
        })
    }
}

/// Events counted by kind: see [`Store::event_tally`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTally {
    /// The newest event counted (`since` when there was none).
    pub last: i64,
    /// (kind, about a run, how many).
    pub counts: Vec<(String, bool, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_paged_in_id_order_and_tallied_by_kind() {
        let (_dir, mut store) = crate::store::testing::store();
        let new = |title: &str| NewTask { title: title.into(), ..NewTask::default() };
        let a = store.create_task(&new("a"), 1).unwrap().0.id;
        let b = store.create_task(&new("b"), 1).unwrap().0.id;
        for i in 0..7 {
            let card = if i % 2 == 0 { &a } else { &b };
            store.add_comment(card, None, &format!("comment {i}"), 2).unwrap();
        }
        let all = store.events(None, None).unwrap();
        assert!(all.len() >= 9);
        // Paging by the last id seen gives every event once, in order, never more than the limit at a time.
        let mut paged = Vec::new();
        let mut since = 0;
        loop {
            let page = store.events_page(None, since, 4).unwrap();
            assert!(page.len() <= 4);
            let Some(last) = page.last() else { break };
            since = last.id;
            paged.extend(page);
        }
        assert_eq!(paged, all);
        // One card's pages hold only its events.
        let of_a = store.events_page(Some(&a), 0, 100).unwrap();
        assert_eq!(of_a, store.events(Some(&a), None).unwrap());
        assert_eq!(store.events_page(Some(&a), 0, 2).unwrap(), of_a[..2]);
        assert!(store.events_page(None, all.last().unwrap().id, 10).unwrap().is_empty());
        // The tally counts what came after `since`, by kind.
        let tally = store.event_tally(0).unwrap();
        assert_eq!(tally.last, all.last().unwrap().id);
        let count = |t: &EventTally, kind: &str| {
            t.counts.iter().filter(|(k, _, _)| k == kind).map(|(_, _, n)| n).sum::<u64>()
        };
        assert_eq!(count(&tally, "commented"), 7);
        assert_eq!(count(&tally, "created"), 2);
        let later = store.event_tally(all[all.len() - 3].id).unwrap();
        assert_eq!(count(&later, "commented"), 2);
        assert_eq!(store.event_tally(tally.last).unwrap(), EventTally { last: tally.last, counts: vec![] });
    }

    /// Reading the facts of many cards at once gives exactly what reading each one does.
    #[test]
    fn facts_of_many_cards_are_the_facts_of_each() {
        let (_dir, mut store) = crate::store::testing::store();
        let new = |title: &str| NewTask { title: title.into(), ..NewTask::default() };
        let parent = store.create_task(&new("parent"), 1).unwrap().0.id;
        let mut ids = Vec::new();
        for i in 0..5 {
            let card = NewTask {
                parents: if i % 2 == 0 { vec![parent.clone()] } else { vec![] },
                ..new(&format!("c{i}"))
            };
            let id = store.create_task(&card, 2).unwrap().0.id;
            for c in 0..i * 3 {
                store.add_comment(&id, None, &format!("comment {c}"), 3 + c as i64).unwrap();
            }
            ids.push(id);
        }
        let many = store.card_histories(&ids, 20, 4, 2).unwrap();
        assert_eq!(many.len(), 5);
        for id in &ids {
            let facts = CardFacts::new(store.get_task(id).unwrap(), many[id].clone());
            assert_eq!(facts, store.card_facts(id, 20, 4, 2).unwrap(), "{id}");
        }
    }
}
