//! Rows as the rest of the host sees them, with the JSON shapes of the CLI contract (`docs/cli.md`).

use rusqlite::Row;
use serde::Serialize;

/// Card statuses, in lifecycle order (the `status` sort uses this order).
pub const STATUSES: &[&str] =
    &["triage", "todo", "scheduled", "ready", "running", "blocked", "review", "done", "archived"];

/// A parent in one of these statuses no longer holds its children back.
pub const CLOSED_STATUSES: &[&str] = &["done", "archived"];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub body: String,
    pub status: String,
    pub assignee: Option<String>,
    pub priority: i64,
    pub tenant: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub workspace_kind: String,
    pub workspace_path: Option<String>,
    pub branch_name: Option<String>,
    pub idempotency_key: Option<String>,
    pub max_runtime_seconds: Option<i64>,
    pub max_retries: Option<i64>,
    pub consecutive_failures: i64,
    pub last_failure_error: Option<String>,
    pub goal_mode: bool,
    pub goal_max_turns: Option<i64>,
    pub goal_turn: i64,
    pub session_id: Option<String>,
    pub result: Option<String>,
    pub claim_lock: Option<String>,
    pub claim_expires: Option<i64>,
    pub worker_pid: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    pub current_run_id: Option<i64>,
    pub block_kind: Option<String>,
    pub block_reason: Option<String>,
    pub block_sticky: bool,
    pub protocol_violations: i64,
}

/// The column list matching [`Task::from_row`]; every task query selects exactly this.
pub const TASK_COLUMNS: &str = "id, title, body, status, assignee, priority, tenant, created_by, created_at, \
    updated_at, started_at, completed_at, workspace_kind, workspace_path, branch_name, idempotency_key, \
    max_runtime_seconds, max_retries, consecutive_failures, last_failure_error, goal_mode, goal_max_turns, \
    goal_turn, session_id, result, claim_lock, claim_expires, worker_pid, last_heartbeat_at, current_run_id, \
    block_kind, block_reason, block_sticky, protocol_violations";

impl Task {
    pub fn from_row(r: &Row) -> rusqlite::Result<Task> {
        Ok(Task {
            id: r.get(0)?,
            title: r.get(1)?,
            body: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            status: r.get(3)?,
            assignee: r.get(4)?,
            priority: r.get(5)?,
            tenant: r.get(6)?,
            created_by: r.get(7)?,
            created_at: r.get(8)?,
            updated_at: r.get(9)?,
            started_at: r.get(10)?,
            completed_at: r.get(11)?,
            workspace_kind: r.get(12)?,
            workspace_path: r.get(13)?,
            branch_name: r.get(14)?,
            idempotency_key: r.get(15)?,
            max_runtime_seconds: r.get(16)?,
            max_retries: r.get(17)?,
            consecutive_failures: r.get(18)?,
            last_failure_error: r.get(19)?,
            goal_mode: r.get(20)?,
            goal_max_turns: r.get(21)?,
            goal_turn: r.get(22)?,
            session_id: r.get(23)?,
            result: r.get(24)?,
            claim_lock: r.get(25)?,
            claim_expires: r.get(26)?,
            worker_pid: r.get(27)?,
            last_heartbeat_at: r.get(28)?,
            current_run_id: r.get(29)?,
            block_kind: r.get(30)?,
            block_reason: r.get(31)?,
            block_sticky: r.get(32)?,
            protocol_violations: r.get(33)?,
        })
    }

    pub fn is_closed(&self) -> bool {
        CLOSED_STATUSES.contains(&self.status.as_str())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub id: i64,
    pub task_id: Option<String>,
    pub run_id: Option<i64>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
}

pub const EVENT_COLUMNS: &str = "id, task_id, run_id, kind, payload, created_at";

impl Event {
    pub fn from_row(r: &Row) -> rusqlite::Result<Event> {
        let raw: String = r.get(4)?;
        // Legacy rows may hold plain text; keep it visible rather than failing the whole listing.
        let payload = serde_json::from_str(&raw).unwrap_or(serde_json::Value::String(raw));
        Ok(Event {
            id: r.get(0)?,
            task_id: r.get(1)?,
            run_id: r.get(2)?,
            kind: r.get(3)?,
            payload,
            created_at: r.get(5)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub id: i64,
    pub task_id: String,
    pub profile: Option<String>,
    pub status: String,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub exit_code: Option<i64>,
    pub claim_lock: Option<String>,
    pub worker_pid: Option<i64>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    /// Supervision facts: pid plus start time identify a process across pid reuse.
    pub supervisor_pid: Option<i64>,
    pub supervisor_start: Option<i64>,
    pub worker_start: Option<i64>,
    pub exit_signal: Option<i64>,
    pub exited_at: Option<i64>,
    /// Goal-mode turn (1 for ordinary cards).
    pub turn: i64,
}

pub const RUN_COLUMNS: &str = "id, task_id, profile, status, outcome, error, summary, metadata, exit_code, \
    claim_lock, worker_pid, started_at, ended_at, last_heartbeat_at, supervisor_pid, supervisor_start, \
    worker_start, exit_signal, exited_at, turn";

impl Run {
    pub fn from_row(r: &Row) -> rusqlite::Result<Run> {
        let metadata: Option<String> = r.get(7)?;
        Ok(Run {
            id: r.get(0)?,
            task_id: r.get(1)?,
            profile: r.get(2)?,
            status: r.get(3)?,
            outcome: r.get(4)?,
            error: r.get(5)?,
            summary: r.get(6)?,
            metadata: metadata.map(|m| serde_json::from_str(&m).unwrap_or(serde_json::Value::String(m))),
            exit_code: r.get(8)?,
            claim_lock: r.get(9)?,
            worker_pid: r.get(10)?,
            started_at: r.get(11)?,
            ended_at: r.get(12)?,
            last_heartbeat_at: r.get(13)?,
            supervisor_pid: r.get(14)?,
            supervisor_start: r.get(15)?,
            worker_start: r.get(16)?,
            exit_signal: r.get(17)?,
            exited_at: r.get(18)?,
            turn: r.get(19)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comment {
    pub id: i64,
    pub task_id: String,
    pub author: Option<String>,
    pub body: String,
    pub created_at: i64,
}

impl Comment {
    pub fn from_row(r: &Row) -> rusqlite::Result<Comment> {
        Ok(Comment {
            id: r.get(0)?,
            task_id: r.get(1)?,
            author: r.get(2)?,
            body: r.get(3)?,
            created_at: r.get(4)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attachment {
    pub id: i64,
    pub task_id: String,
    pub name: String,
    /// File name inside the card's attachments folder (the `name` made safe and unique).
    pub stored_name: String,
    pub size: i64,
    pub sha256: String,
    pub created_at: i64,
}

impl Attachment {
    pub fn from_row(r: &Row) -> rusqlite::Result<Attachment> {
        Ok(Attachment {
            id: r.get(0)?,
            task_id: r.get(1)?,
            name: r.get(2)?,
            stored_name: r.get(3)?,
            size: r.get(4)?,
            sha256: r.get(5)?,
            created_at: r.get(6)?,
        })
    }
}
