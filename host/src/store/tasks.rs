//! Card operations. Each public method is one transaction: load, check, compare-and-set, event, commit.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::{Value, json};

use super::model::*;
use super::{Result, Store, StoreError};
use crate::breaker::FailureLimit;

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
    /// `scratch`, `dir` or `worktree`; empty means `scratch`.
    pub workspace_kind: String,
    pub workspace_path: Option<String>,
    pub branch_name: Option<String>,
    pub idempotency_key: Option<String>,
    pub max_runtime_seconds: Option<i64>,
    pub max_retries: Option<i64>,
    pub goal_mode: bool,
    pub goal_max_turns: Option<i64>,
    /// `running` or `blocked` to create a card already in that state.
    pub initial_status: Option<String>,
    pub created_by: Option<String>,
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
    pub status: Option<String>,
    /// `Some("none")` selects unassigned cards.
    pub assignee: Option<String>,
    pub tenant: Option<String>,
    pub include_archived: bool,
    pub sort: ListSort,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PromoteOutcome {
    pub id: String,
    pub from: String,
    pub to: String,
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

/// `t_` + 8 lowercase hex from the OS random source.
pub fn new_task_id() -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("t_{}", hex::encode(bytes))
}

// ---------------------------------------------------------------------------------------------------------
// Helpers used inside transactions.

pub(crate) fn load(tx: &Transaction, id: &str) -> Result<Task> {
    tx.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
        .query_row([id], Task::from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("card {id}")))
}

pub(crate) fn append_event(
    tx: &Transaction,
    task_id: Option<&str>,
    run_id: Option<i64>,
    kind: &str,
    payload: Value,
    now: i64,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO task_events (task_id, run_id, kind, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![task_id, run_id, kind, payload.to_string(), now],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Move a card from the status it was read in to `to`. The `status = from` guard is the compare-and-set:
/// if anything changed the card since it was read, nothing is written and the caller is refused.
fn set_status(tx: &Transaction, task: &Task, to: &str, now: i64) -> Result<()> {
    let n = tx.execute(
        "UPDATE tasks SET status = ?1, updated_at = ?2 WHERE id = ?3 AND status = ?4",
        params![to, now, task.id, task.status],
    )?;
    if n != 1 {
        return Err(StoreError::Refused(format!("card {} changed concurrently; try again", task.id)));
    }
    Ok(())
}

pub(crate) fn open_parent_count(tx: &Transaction, id: &str) -> Result<i64> {
    Ok(tx.query_row(
        "SELECT count(*) FROM task_links l JOIN tasks p ON p.id = l.parent_id
         WHERE l.child_id = ?1 AND p.status NOT IN ('done', 'archived')",
        [id],
        |r| r.get(0),
    )?)
}

fn open_parent_ids(tx: &Transaction, id: &str) -> Result<Vec<String>> {
    let mut stmt = tx.prepare_cached(
        "SELECT p.id FROM task_links l JOIN tasks p ON p.id = l.parent_id
         WHERE l.child_id = ?1 AND p.status NOT IN ('done', 'archived') ORDER BY p.created_at, p.id",
    )?;
    let ids = stmt.query_map([id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Record `parent -> child`. Returns how many rows were added (0 if the link already existed).
pub(crate) fn insert_link(tx: &Transaction, parent: &str, child: &str, now: i64) -> Result<usize> {
    Ok(tx.execute(
        "INSERT OR IGNORE INTO task_links (parent_id, child_id, created_at) VALUES (?1, ?2, ?3)",
        params![parent, child, now],
    )?)
}

/// The status a card returns to when it leaves a parked state: `todo` while a parent is open, else `ready`.
fn waiting_status(tx: &Transaction, id: &str) -> Result<&'static str> {
    Ok(if open_parent_count(tx, id)? > 0 { "todo" } else { "ready" })
}

/// End the card's open run (if any) and clear its claim. Used by every path that takes a card out of
/// `running`, so no card is left with a dangling claim or an open run.
fn end_current_run(
    tx: &Transaction,
    task: &Task,
    outcome: &str,
    error: Option<&str>,
    summary: Option<&str>,
    now: i64,
) -> Result<Option<i64>> {
    let run_id = task.current_run_id;
    if let Some(run) = run_id {
        tx.execute(
            "UPDATE task_runs SET status = 'ended', outcome = ?1, error = ?2, summary = COALESCE(?3, summary),
             ended_at = ?4 WHERE id = ?5 AND status IN ('running', 'exited')",
            params![outcome, error, summary, now, run],
        )?;
    }
    tx.execute(
        "UPDATE tasks SET claim_lock = NULL, claim_expires = NULL, worker_pid = NULL, current_run_id = NULL,
         updated_at = ?1 WHERE id = ?2",
        params![now, task.id],
    )?;
    Ok(run_id)
}

/// After a parent closed: every `todo` child with no open parent left becomes `ready`.
fn release_children(tx: &Transaction, parent_id: &str, now: i64) -> Result<Vec<String>> {
    let mut stmt = tx.prepare_cached(
        "SELECT c.id FROM task_links l JOIN tasks c ON c.id = l.child_id
         WHERE l.parent_id = ?1 AND c.status = 'todo' ORDER BY c.created_at, c.id",
    )?;
    let children: Vec<String> =
        stmt.query_map([parent_id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let mut released = Vec::new();
    for child in children {
        if open_parent_count(tx, &child)? == 0 {
            let task = load(tx, &child)?;
            set_status(tx, &task, "ready", now)?;
            append_event(
                tx,
                Some(&child),
                None,
                "ready",
                json!({"from": "todo", "reason": "parents_done"}),
                now,
            )?;
            released.push(child);
        }
    }
    Ok(released)
}

/// Would linking `parent -> child` close a cycle? True when `parent` is already reachable from `child`.
fn reaches(tx: &Transaction, from: &str, target: &str) -> Result<bool> {
    Ok(tx.query_row(
        "WITH RECURSIVE down(id) AS (
            SELECT ?1
            UNION
            SELECT l.child_id FROM task_links l JOIN down d ON l.parent_id = d.id
         )
         SELECT EXISTS (SELECT 1 FROM down WHERE id = ?2)",
        params![from, target],
        |r| r.get(0),
    )?)
}

/// A worker reporting on run `attempt` may only touch the card while that run is its current one: a stale
/// attempt (an old worker of a card that was reclaimed and respawned) cannot complete or block a newer run.
fn check_attempt(task: &Task, attempt: Option<i64>) -> Result<()> {
    match attempt {
        Some(run) if task.current_run_id != Some(run) => Err(StoreError::Refused(format!(
            "stale attempt: run {run} is no longer the current run of card {} ({})",
            task.id,
            task.current_run_id
                .map(|r| format!("current run {r}"))
                .unwrap_or_else(|| format!("now {}", task.status))
        ))),
        _ => Ok(()),
    }
}

fn require_status(task: &Task, allowed: &[&str], action: &str) -> Result<()> {
    if allowed.contains(&task.status.as_str()) {
        Ok(())
    } else {
        Err(StoreError::Refused(format!("cannot {action} card {} while it is {}", task.id, task.status)))
    }
}

fn non_blank(value: &str, what: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        Err(StoreError::Invalid(format!("{what} must not be blank")))
    } else {
        Ok(trimmed.to_string())
    }
}

// Reads shared by the single-item methods and [`Store::task_detail`] (one snapshot).

fn related_tasks(tx: &Transaction, id: &str, ids_sql: &str) -> Result<Vec<Task>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE id IN ({ids_sql}) ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([id], Task::from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn parents_of(tx: &Transaction, id: &str) -> Result<Vec<Task>> {
    related_tasks(tx, id, "SELECT parent_id FROM task_links WHERE child_id = ?1")
}

fn children_of(tx: &Transaction, id: &str) -> Result<Vec<Task>> {
    related_tasks(tx, id, "SELECT child_id FROM task_links WHERE parent_id = ?1")
}

fn comments_of(tx: &Transaction, id: &str) -> Result<Vec<Comment>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, task_id, author, body, created_at FROM task_comments WHERE task_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([id], Comment::from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn events_of(tx: &Transaction, task: Option<&str>, since: Option<i64>) -> Result<Vec<Event>> {
    // Two statements rather than `?1 IS NULL OR task_id = ?1`, which would defeat the index.
    let since = since.unwrap_or(0);
    let rows = match task {
        Some(task) => tx
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM task_events WHERE task_id = ?1 AND id > ?2 ORDER BY id"
            ))?
            .query_map(params![task, since], Event::from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => tx
            .prepare(&format!("SELECT {EVENT_COLUMNS} FROM task_events WHERE id > ?1 ORDER BY id"))?
            .query_map(params![since], Event::from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    Ok(rows)
}

fn runs_of(tx: &Transaction, id: &str) -> Result<Vec<Run>> {
    let mut stmt =
        tx.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM task_runs WHERE task_id = ?1 ORDER BY id"))?;
    let rows = stmt.query_map([id], Run::from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn attachments_of(tx: &Transaction, id: &str) -> Result<Vec<Attachment>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, task_id, name, stored_name, size, sha256, created_at FROM task_attachments
         WHERE task_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([id], Attachment::from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Everything `kanban show` prints about a card, read in one snapshot.
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

// ---------------------------------------------------------------------------------------------------------
// Operations.

impl Store {
    /// Create a card. Returns the card and whether it is new: an idempotency key already held by a card that
    /// is not archived returns that card unchanged.
    pub fn create_task(&mut self, new: &NewTask, now: i64) -> Result<(Task, bool)> {
        let title = non_blank(&new.title, "title")?;
        if let Some(key) = &new.idempotency_key {
            non_blank(key, "idempotency key")?;
        }
        let kind = if new.workspace_kind.is_empty() { "scratch" } else { new.workspace_kind.as_str() };
        if !["scratch", "dir", "worktree"].contains(&kind) {
            return Err(StoreError::Invalid(format!("unknown workspace kind '{kind}'")));
        }
        if let Some(s) = &new.initial_status
            && !["running", "blocked"].contains(&s.as_str())
        {
            return Err(StoreError::Invalid(format!("initial status must be running or blocked, not '{s}'")));
        }
        self.write(|tx| {
            if let Some(key) = &new.idempotency_key {
                let existing = tx
                    .query_row(
                        &format!(
                            "SELECT {TASK_COLUMNS} FROM tasks WHERE idempotency_key = ?1 AND status <> 'archived'"
                        ),
                        [key],
                        Task::from_row,
                    )
                    .optional()?;
                if let Some(task) = existing {
                    return Ok((task, false));
                }
            }
            let mut open_parents = 0;
            for parent in &new.parents {
                if !load(tx, parent)?.is_closed() {
                    open_parents += 1;
                }
            }
            let status = if new.triage {
                "triage"
            } else if let Some(s) = &new.initial_status {
                s.as_str()
            } else if open_parents > 0 {
                "todo"
            } else {
                "ready"
            };
            let id = insert_with_fresh_id(tx, new, &title, kind, status, now)?;
            for parent in &new.parents {
                insert_link(tx, parent, &id, now)?;
            }
            append_event(
                tx,
                Some(&id),
                None,
                "created",
                json!({"status": status, "assignee": new.assignee, "parents": new.parents, "created_by": new.created_by}),
                now,
            )?;
            if status == "running" {
                open_run(tx, &id, new.assignee.as_deref(), None, None, now)?;
            }
            if status == "blocked" {
                tx.execute(
                    "UPDATE tasks SET block_sticky = 1, block_reason = 'created blocked' WHERE id = ?1",
                    [&id],
                )?;
            }
            Ok((load(tx, &id)?, true))
        })
    }

    /// Create many cards in one transaction (each with its own `created` event). For imports and
    /// benchmarks: one fsync for the lot instead of one per card. Idempotency keys are not supported here.
    pub fn create_tasks(&mut self, batch: &[NewTask], now: i64) -> Result<Vec<String>> {
        for new in batch {
            non_blank(&new.title, "title")?;
            if new.idempotency_key.is_some() || !new.parents.is_empty() || new.initial_status.is_some() {
                return Err(StoreError::Invalid(
                    "batch create takes plain cards only (no idempotency key, parents or initial status)"
                        .into(),
                ));
            }
        }
        self.write(|tx| {
            let mut ids = Vec::with_capacity(batch.len());
            for new in batch {
                let status = if new.triage { "triage" } else { "ready" };
                let kind =
                    if new.workspace_kind.is_empty() { "scratch" } else { new.workspace_kind.as_str() };
                let id = insert_with_fresh_id(tx, new, new.title.trim(), kind, status, now)?;
                append_event(
                    tx,
                    Some(&id),
                    None,
                    "created",
                    json!({"status": status, "assignee": new.assignee}),
                    now,
                )?;
                ids.push(id);
            }
            Ok(ids)
        })
    }

    pub fn get_task(&mut self, id: &str) -> Result<Task> {
        self.read(|tx| load(tx, id))
    }

    pub fn list_tasks(&mut self, filter: &TaskFilter) -> Result<Vec<Task>> {
        let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        if let Some(status) = &filter.status {
            args.push(status.clone());
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        } else if !filter.include_archived {
            sql.push_str(" AND status <> 'archived'");
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
        let status_rank = STATUSES
            .iter()
            .enumerate()
            .map(|(i, s)| format!("WHEN '{s}' THEN {i}"))
            .collect::<Vec<_>>()
            .join(" ");
        sql.push_str(match filter.sort {
            // rowid keeps insertion order among cards created in the same second (ids are random).
            ListSort::Created => " ORDER BY created_at, rowid",
            ListSort::Priority => " ORDER BY priority DESC, created_at, rowid",
            ListSort::Assignee => " ORDER BY assignee IS NULL, assignee, created_at, id",
            ListSort::Title => " ORDER BY title COLLATE NOCASE, created_at, id",
            ListSort::Updated => " ORDER BY updated_at DESC, created_at, id",
            ListSort::Status => "",
        });
        if filter.sort == ListSort::Status {
            sql.push_str(&format!(" ORDER BY CASE status {status_rank} ELSE 99 END, created_at, id"));
        }
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), Task::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    pub fn parents(&mut self, id: &str) -> Result<Vec<Task>> {
        self.read(|tx| parents_of(tx, id))
    }

    pub fn children(&mut self, id: &str) -> Result<Vec<Task>> {
        self.read(|tx| children_of(tx, id))
    }

    pub fn comments(&mut self, id: &str) -> Result<Vec<Comment>> {
        self.read(|tx| comments_of(tx, id))
    }

    /// Events in id order, optionally for one card and after a given event id.
    pub fn events(&mut self, task: Option<&str>, since: Option<i64>) -> Result<Vec<Event>> {
        self.read(|tx| events_of(tx, task, since))
    }

    pub fn runs(&mut self, id: &str) -> Result<Vec<Run>> {
        self.read(|tx| runs_of(tx, id))
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
                comments: comments_of(tx, id)?,
                events: events_of(tx, Some(id), None)?,
                runs: runs_of(tx, id)?,
                attachments: attachments_of(tx, id)?,
            })
        })
    }

    pub fn require_task(&mut self, id: &str) -> Result<()> {
        self.get_task(id).map(|_| ())
    }

    pub fn assign(&mut self, id: &str, assignee: Option<&str>, now: i64) -> Result<Task> {
        self.write(|tx| {
            let task = load(tx, id)?;
            if task.status == "running" {
                return Err(StoreError::Refused(format!(
                    "card {id} is running; use `kanban reassign {id} PROFILE --reclaim`"
                )));
            }
            change_assignee(tx, &task, assignee, "assigned", json!({"source": "cli"}), now)?;
            load(tx, id)
        })
    }

    pub fn reassign(&mut self, id: &str, profile: &str, reclaim: bool, now: i64) -> Result<Task> {
        self.write(|tx| {
            let mut task = load(tx, id)?;
            if task.status == "running" {
                if !reclaim {
                    return Err(StoreError::Refused(format!(
                        "card {id} is running; pass --reclaim to requeue it to {profile}"
                    )));
                }
                reclaim_in(tx, &task, "reassigned", now)?;
                task = load(tx, id)?;
            }
            change_assignee(tx, &task, Some(profile), "reassigned", json!({}), now)?;
            load(tx, id)
        })
    }

    pub fn add_comment(&mut self, id: &str, author: Option<&str>, body: &str, now: i64) -> Result<Comment> {
        let body = non_blank(body, "comment")?;
        self.write(|tx| {
            load(tx, id)?;
            tx.execute(
                "INSERT INTO task_comments (task_id, author, body, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, author, body, now],
            )?;
            let comment_id = tx.last_insert_rowid();
            append_event(
                tx,
                Some(id),
                None,
                "commented",
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
            if !parent_task.is_closed() && (child_task.status == "running" || child_task.is_closed()) {
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
            let added = insert_link(tx, parent, child, now)?;
            if added == 0 {
                return Err(StoreError::Refused(format!("{parent} is already a parent of {child}")));
            }
            append_event(tx, Some(child), None, "linked", json!({"parent": parent}), now)?;
            if child_task.status == "ready" && !parent_task.is_closed() {
                set_status(tx, &child_task, "todo", now)?;
                append_event(
                    tx,
                    Some(child),
                    None,
                    "waiting",
                    json!({"from": "ready", "parent": parent}),
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
            append_event(tx, Some(child), None, "unlinked", json!({"parent": parent}), now)?;
            if child_task.status == "todo" && open_parent_count(tx, child)? == 0 {
                set_status(tx, &child_task, "ready", now)?;
                append_event(
                    tx,
                    Some(child),
                    None,
                    "ready",
                    json!({"from": "todo", "reason": "unlinked"}),
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
                tx.execute("UPDATE tasks SET consecutive_failures = 0 WHERE id = ?1", [id])?;
                changed.insert("reset_failures".into(), json!(task.consecutive_failures));
            }
            if changed.is_empty() {
                return Err(StoreError::Invalid(
                    "nothing to edit: pass --title, --body, --priority or --reset-failures".into(),
                ));
            }
            tx.execute("UPDATE tasks SET updated_at = ?1 WHERE id = ?2", params![now, id])?;
            append_event(tx, Some(id), None, "edited", Value::Object(changed), now)?;
            load(tx, id)
        })
    }

    /// Block a card. `sticky` blocks stay until `unblock`; others may auto-recover (see [`Store::recompute_ready`]).
    pub fn block(
        &mut self,
        id: &str,
        reason: Option<&str>,
        kind: Option<&str>,
        sticky: bool,
        attempt: Option<i64>,
        now: i64,
    ) -> Result<Task> {
        self.write(|tx| {
            let task = load(tx, id)?;
            check_attempt(&task, attempt)?;
            require_status(&task, &["triage", "todo", "scheduled", "ready", "running", "review"], "block")?;
            let run = if task.status == "running" {
                end_current_run(tx, &task, "blocked", reason, None, now)?
            } else {
                None
            };
            set_status(tx, &task, "blocked", now)?;
            tx.execute(
                "UPDATE tasks SET block_kind = ?1, block_reason = ?2, block_sticky = ?3 WHERE id = ?4",
                params![kind, reason, sticky, id],
            )?;
            append_event(
                tx,
                Some(id),
                run,
                "blocked",
                json!({"reason": reason, "kind": kind, "sticky": sticky, "from": task.status}),
                now,
            )?;
            load(tx, id)
        })
    }

    /// Unblock: back to `ready` (or `todo` while a parent is open); the failure counter resets.
    pub fn unblock(&mut self, id: &str, reason: Option<&str>, now: i64) -> Result<Task> {
        self.write(|tx| {
            let task = load(tx, id)?;
            require_status(&task, &["blocked"], "unblock")?;
            let to = waiting_status(tx, id)?;
            set_status(tx, &task, to, now)?;
            tx.execute(
                "UPDATE tasks SET block_kind = NULL, block_reason = NULL, block_sticky = 0, consecutive_failures = 0,
                 protocol_violations = 0 WHERE id = ?1",
                [id],
            )?;
            append_event(tx, Some(id), None, "unblocked", json!({"reason": reason, "to": to, "failures_reset": task.consecutive_failures}), now)?;
            load(tx, id)
        })
    }

    pub fn schedule(&mut self, id: &str, reason: Option<&str>, now: i64) -> Result<Task> {
        self.write(|tx| {
            let task = load(tx, id)?;
            require_status(&task, &["triage", "todo", "ready", "blocked", "review"], "schedule")?;
            set_status(tx, &task, "scheduled", now)?;
            // A scheduled card is parked on purpose: whatever blocked it no longer describes it.
            tx.execute(
                "UPDATE tasks SET block_kind = NULL, block_reason = NULL, block_sticky = 0 WHERE id = ?1",
                [id],
            )?;
            append_event(
                tx,
                Some(id),
                None,
                "scheduled",
                json!({"reason": reason, "from": task.status}),
                now,
            )?;
            load(tx, id)
        })
    }

    /// Promote a parked card to `ready`. A `todo` card with an open parent needs `force`. With `dry_run` the
    /// same checks run and nothing is written.
    pub fn promote(&mut self, id: &str, force: bool, dry_run: bool, now: i64) -> Result<PromoteOutcome> {
        let check = |tx: &Transaction| -> Result<Task> {
            let task = load(tx, id)?;
            require_status(&task, &["triage", "todo", "scheduled"], "promote")?;
            if !force {
                let open = open_parent_ids(tx, id)?;
                if !open.is_empty() {
                    return Err(StoreError::Refused(format!(
                        "card {id} waits on open parent(s) {}; pass --force to promote anyway",
                        open.join(", ")
                    )));
                }
            }
            Ok(task)
        };
        if dry_run {
            let task = self.read(check)?;
            return Ok(PromoteOutcome { id: id.into(), from: task.status, to: "ready".into() });
        }
        self.write(|tx| {
            let task = check(tx)?;
            set_status(tx, &task, "ready", now)?;
            append_event(tx, Some(id), None, "promoted", json!({"from": task.status, "force": force}), now)?;
            Ok(PromoteOutcome { id: id.into(), from: task.status, to: "ready".into() })
        })
    }

    /// Complete a card: `done`, result stored, open run ended, failure counter reset, children released.
    pub fn complete(
        &mut self,
        id: &str,
        result: Option<&str>,
        summary: Option<&str>,
        attempt: Option<i64>,
        now: i64,
    ) -> Result<Task> {
        self.write(|tx| {
            let task = load(tx, id)?;
            check_attempt(&task, attempt)?;
            require_status(&task, &["triage", "todo", "scheduled", "ready", "running", "blocked", "review"], "complete")?;
            let open = open_parent_ids(tx, id)?;
            if !open.is_empty() {
                return Err(StoreError::Refused(format!(
                    "card {id} has open parent(s) {}; complete them first",
                    open.join(", ")
                )));
            }
            let run = if task.status == "running" { end_current_run(tx, &task, "completed", None, summary, now)? } else { None };
            set_status(tx, &task, "done", now)?;
            tx.execute(
                "UPDATE tasks SET result = ?1, completed_at = ?2, consecutive_failures = 0, protocol_violations = 0,
                 last_failure_error = NULL,
                 block_kind = NULL, block_reason = NULL, block_sticky = 0 WHERE id = ?3",
                params![result, now, id],
            )?;
            append_event(tx, Some(id), run, "completed", json!({"result": result, "summary": summary, "from": task.status}), now)?;
            release_children(tx, id, now)?;
            load(tx, id)
        })
    }

    /// Archive (soft-delete) a card. Its idempotency key is freed; as a parent it counts as closed.
    pub fn archive(&mut self, id: &str, now: i64) -> Result<Task> {
        self.write(|tx| {
            let task = load(tx, id)?;
            if task.status == "archived" {
                return Err(StoreError::Refused(format!("card {id} is already archived")));
            }
            if task.status == "running" {
                return Err(StoreError::Refused(format!(
                    "card {id} is running; reclaim it before archiving"
                )));
            }
            set_status(tx, &task, "archived", now)?;
            append_event(tx, Some(id), None, "archived", json!({"from": task.status}), now)?;
            release_children(tx, id, now)?;
            load(tx, id)
        })
    }

    /// Delete an archived card for good, with its links, comments, runs and attachment rows. Returns the
    /// attachments so the caller can remove their files after the commit.
    pub fn delete_archived(&mut self, id: &str, now: i64) -> Result<Vec<Attachment>> {
        let attachments = self.attachments(id)?;
        self.write(|tx| {
            let task = load(tx, id)?;
            if task.status != "archived" {
                return Err(StoreError::Refused(format!(
                    "card {id} is {}; only archived cards can be deleted",
                    task.status
                )));
            }
            let children: Vec<String> = {
                let mut stmt = tx.prepare_cached("SELECT child_id FROM task_links WHERE parent_id = ?1")?;
                stmt.query_map([id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
            };
            for sql in [
                "DELETE FROM task_links WHERE parent_id = ?1 OR child_id = ?1",
                "DELETE FROM task_comments WHERE task_id = ?1",
                "DELETE FROM task_runs WHERE task_id = ?1",
                "DELETE FROM task_attachments WHERE task_id = ?1",
                "DELETE FROM tasks WHERE id = ?1",
            ] {
                tx.execute(sql, [id])?;
            }
            append_event(
                tx,
                Some(id),
                None,
                "deleted",
                json!({"title": task.title, "children": children}),
                now,
            )?;
            Ok(attachments)
        })
    }

    /// Manual reclaim: a running card goes back to `ready`, its run ends `reclaimed`, failures reset.
    pub fn reclaim(&mut self, id: &str, reason: Option<&str>, now: i64) -> Result<Task> {
        self.write(|tx| {
            let task = load(tx, id)?;
            require_status(&task, &["running"], "reclaim")?;
            reclaim_in(tx, &task, reason.unwrap_or("manual"), now)?;
            load(tx, id)
        })
    }

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
            check_attempt(&task, attempt)?;
            require_status(&task, &["running"], "heartbeat")?;
            tx.execute(
                "UPDATE tasks SET last_heartbeat_at = ?1, claim_expires = ?2, updated_at = ?1 WHERE id = ?3 AND status = 'running'",
                params![now, now + claim_ttl, id],
            )?;
            if let Some(run) = task.current_run_id {
                tx.execute("UPDATE task_runs SET last_heartbeat_at = ?1 WHERE id = ?2", params![now, run])?;
            }
            append_event(tx, Some(id), task.current_run_id, "heartbeat", json!({"note": note}), now)?;
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
            tx.execute(
                "INSERT INTO task_attachments (task_id, name, stored_name, size, sha256, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, name, stored_name, size, sha256, now],
            )?;
            let att_id = tx.last_insert_rowid();
            append_event(
                tx,
                Some(id),
                None,
                "attached",
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
            let att = tx
                .query_row(
                    "SELECT id, task_id, name, stored_name, size, sha256, created_at FROM task_attachments WHERE id = ?1",
                    [attachment_id],
                    Attachment::from_row,
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("attachment {attachment_id}")))?;
            if let Some(task) = only_task
                && att.task_id != task
            {
                return Err(StoreError::Refused(format!(
                    "worker is scoped to task {task}; refusing to modify {} (attachment {attachment_id})",
                    att.task_id
                )));
            }
            tx.execute("DELETE FROM task_attachments WHERE id = ?1", [attachment_id])?;
            append_event(tx, Some(&att.task_id), None, "attachment_removed", json!({"attachment_id": attachment_id, "name": att.stored_name}), now)?;
            Ok(att)
        })
    }

    pub fn stats(&mut self) -> Result<Stats> {
        self.read(|tx| {
            let group = |sql: &str| -> Result<BTreeMap<String, i64>> {
                let mut stmt = tx.prepare_cached(sql)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            };
            let by_status = group("SELECT status, count(*) FROM tasks GROUP BY status")?;
            Ok(Stats {
                total: by_status.values().sum(),
                by_status,
                by_assignee: group(
                    "SELECT COALESCE(assignee, 'none'), count(*) FROM tasks WHERE status <> 'archived' GROUP BY 1",
                )?,
                events: tx.query_row("SELECT count(*) FROM task_events", [], |r| r.get(0))?,
                runs: tx.query_row("SELECT count(*) FROM task_runs", [], |r| r.get(0))?,
                runs_by_outcome: group(
                    "SELECT COALESCE(outcome, status), count(*) FROM task_runs GROUP BY 1",
                )?,
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
            let todo: Vec<Task> = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks t WHERE status = 'todo' AND NOT EXISTS (
                        SELECT 1 FROM task_links l JOIN tasks p ON p.id = l.parent_id
                        WHERE l.child_id = t.id AND p.status NOT IN ('done', 'archived'))
                     ORDER BY created_at, id"
                ))?;
                stmt.query_map([], Task::from_row)?.collect::<rusqlite::Result<_>>()?
            };
            for task in todo {
                set_status(tx, &task, "ready", now)?;
                append_event(tx, Some(&task.id), None, "ready", json!({"from": "todo", "reason": "parents_done"}), now)?;
                changed.push(task.id);
            }
            let blocked: Vec<Task> = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'blocked' AND block_sticky = 0 ORDER BY created_at, id"
                ))?;
                stmt.query_map([], Task::from_row)?.collect::<rusqlite::Result<_>>()?
            };
            for task in blocked {
                let limit = FailureLimit::resolve(task.max_retries, board_failure_limit);
                if task.consecutive_failures >= limit {
                    continue;
                }
                let to = waiting_status(tx, &task.id)?;
                set_status(tx, &task, to, now)?;
                tx.execute("UPDATE tasks SET block_kind = NULL, block_reason = NULL WHERE id = ?1", [&task.id])?;
                append_event(
                    tx,
                    Some(&task.id),
                    None,
                    "recovered",
                    json!({"to": to, "consecutive_failures": task.consecutive_failures, "limit": limit}),
                    now,
                )?;
                changed.push(task.id);
            }
            Ok(changed)
        })
    }
}

/// Insert a child card of a decomposition (fields from the policy, defaults from the root).
pub(crate) fn insert_child(
    tx: &Transaction,
    root: &Task,
    child: &crate::policy::ChildSpec,
    kind: &str,
    path: Option<&str>,
    status: &str,
    now: i64,
) -> Result<String> {
    let new = NewTask {
        title: child.title.clone(),
        body: child.body.clone(),
        assignee: child.assignee.clone().or_else(|| root.assignee.clone()),
        priority: child.priority,
        tenant: root.tenant.clone(),
        workspace_kind: kind.to_string(),
        workspace_path: path.map(str::to_string),
        branch_name: None,
        created_by: Some(format!("decompose:{}", root.id)),
        ..NewTask::default()
    };
    insert_with_fresh_id(tx, &new, &new.title, kind, status, now)
}

fn insert_with_fresh_id(
    tx: &Transaction,
    new: &NewTask,
    title: &str,
    kind: &str,
    status: &str,
    now: i64,
) -> Result<String> {
    // A random 32-bit id can collide on a big board; the primary key catches it and we draw again.
    for _ in 0..16 {
        let id = new_task_id();
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO tasks (id, title, body, status, assignee, priority, tenant, created_by, created_at,
                updated_at, started_at, workspace_kind, workspace_path, branch_name, idempotency_key,
                max_runtime_seconds, max_retries, goal_mode, goal_max_turns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
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
                (status == "running").then_some(now),
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

/// Open a run for a card that is (now) running, and point the card at it.
pub(crate) fn open_run(
    tx: &Transaction,
    task_id: &str,
    profile: Option<&str>,
    claim_lock: Option<&str>,
    worker_pid: Option<i64>,
    now: i64,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO task_runs (task_id, profile, status, claim_lock, worker_pid, started_at)
         VALUES (?1, ?2, 'running', ?3, ?4, ?5)",
        params![task_id, profile, claim_lock, worker_pid, now],
    )?;
    let run_id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE tasks SET current_run_id = ?1, started_at = COALESCE(started_at, ?2), updated_at = ?2 WHERE id = ?3",
        params![run_id, now, task_id],
    )?;
    append_event(
        tx,
        Some(task_id),
        Some(run_id),
        "run_started",
        json!({"profile": profile, "claim_lock": claim_lock}),
        now,
    )?;
    Ok(run_id)
}

fn reclaim_in(tx: &Transaction, task: &Task, reason: &str, now: i64) -> Result<()> {
    let run = end_current_run(tx, task, "reclaimed", Some(reason), None, now)?;
    let to = waiting_status(tx, &task.id)?;
    set_status(tx, task, to, now)?;
    tx.execute(
        "UPDATE tasks SET consecutive_failures = 0, protocol_violations = 0 WHERE id = ?1",
        [&task.id],
    )?;
    append_event(
        tx,
        Some(&task.id),
        run,
        "reclaimed",
        json!({"reason": reason, "manual": true, "to": to}),
        now,
    )?;
    Ok(())
}

/// Set the assignee; moving a card to a different profile resets its failure counter (the breaker's count
/// belongs to the profile that failed).
fn change_assignee(
    tx: &Transaction,
    task: &Task,
    assignee: Option<&str>,
    kind: &str,
    mut payload: Value,
    now: i64,
) -> Result<()> {
    let assignee = assignee.map(str::trim).filter(|a| !a.is_empty() && *a != "none");
    let changed = task.assignee.as_deref() != assignee;
    let reset = changed && assignee.is_some() && task.consecutive_failures > 0;
    tx.execute(
        "UPDATE tasks SET assignee = ?1, updated_at = ?2,
            consecutive_failures = CASE WHEN ?3 THEN 0 ELSE consecutive_failures END WHERE id = ?4",
        params![assignee, now, reset, task.id],
    )?;
    if let Value::Object(map) = &mut payload {
        map.insert("assignee".into(), json!(assignee));
        map.insert("previous".into(), json!(task.assignee));
        map.insert("failures_reset".into(), json!(reset));
    }
    append_event(tx, Some(&task.id), None, kind, payload, now)?;
    Ok(())
}
