//! The records the host keeps: a card, one attempt at it, an audit event, a comment, an attachment. Plain
//! data; the store maps them to and from rows, the CLI and the API render them through their views.

use serde::{Deserialize, Serialize};

use super::{CatchUp, Lane, Outcome, RunStatus, Status, WorkspaceKind};

/// A card, as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub body: String,
    pub status: Status,
    pub assignee: Option<String>,
    pub priority: i64,
    pub tenant: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub workspace_kind: WorkspaceKind,
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
    /// The host id of the dispatcher holding the claim (see `board::Home::host_id`). Internal: not shown.
    #[serde(skip_serializing)]
    pub claim_host: Option<String>,
    pub claim_expires: Option<i64>,
    pub worker_pid: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    pub current_run_id: Option<i64>,
    pub block_kind: Option<String>,
    pub block_reason: Option<String>,
    pub block_sticky: bool,
    /// Exits 0 without a terminal call, in a row (rate-limited runs between them do not break the streak).
    pub protocol_violations: i64,
    /// Runs requeued for a silent (wedged) worker, in a row.
    pub stale_reclaims: i64,
    /// The profile the review lane dispatches this card to.
    pub reviewer: Option<String>,
    /// `promote --force` waived the open-parent check for this card (its completion too).
    pub parents_waived: bool,
}

impl Task {
    pub fn is_closed(&self) -> bool {
        self.status.is_closed()
    }
}

/// One attempt at a card.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub id: i64,
    pub task_id: String,
    pub profile: Option<String>,
    pub status: RunStatus,
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub exit_code: Option<i64>,
    pub claim_lock: Option<String>,
    pub worker_pid: Option<i64>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    pub supervisor_pid: Option<i64>,
    pub supervisor_start: Option<i64>,
    pub worker_start: Option<i64>,
    pub exit_signal: Option<i64>,
    pub exited_at: Option<i64>,
    /// Goal-mode turn (1 for ordinary cards).
    pub turn: i64,
    /// The lane the run was dispatched from.
    pub lane: Lane,
    /// The directory the worker ran in.
    pub workspace: Option<String>,
    /// The host that claimed it.
    pub host_id: Option<String>,
    /// When a stop was requested (real wall-clock seconds; the grace before SIGKILL counts from here).
    /// Internal: not shown.
    #[serde(skip_serializing)]
    pub stop_requested_at: Option<i64>,
    /// What the card does once the stopped attempt's processes are gone (a lifecycle action, as JSON).
    /// Internal: not shown.
    #[serde(skip_serializing)]
    pub stop_action: Option<serde_json::Value>,
    /// When the tick stopped watching the ended attempt's session for leftovers. Internal: not shown.
    #[serde(skip_serializing)]
    pub swept_at: Option<i64>,
}

impl Run {
    /// A recorded exit: the supervisor saw the worker end.
    pub fn exit(&self) -> Option<(Option<i64>, Option<i64>)> {
        (self.exit_code.is_some() || self.exit_signal.is_some()).then_some((self.exit_code, self.exit_signal))
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

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comment {
    pub id: i64,
    pub task_id: String,
    pub author: Option<String>,
    pub body: String,
    pub created_at: i64,
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

/// A pause (`kanban pause`): the whole board (`profile` none) or one of its profiles spawns nothing new
/// until it is resumed. Running workers finish, and the tick settles them as usual.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Pause {
    /// The paused profile; none for the whole board.
    pub profile: Option<String>,
    pub reason: Option<String>,
    /// Since when: a pause whose reason is updated keeps the time it started.
    pub paused_at: i64,
    pub paused_by: Option<String>,
}

impl Pause {
    /// What is paused, for people: `board web` or `profile coder`.
    pub fn scope(&self, board: &str) -> String {
        match &self.profile {
            None => format!("board {board}"),
            Some(profile) => format!("profile {profile}"),
        }
    }
}

/// A recurring schedule (`kanban recurring add`): a card made from `card` at every occurrence of `cron` in
/// the zone `tz`. `next_at` is the next occurrence the tick waits for (none: the expression never fires
/// again); `last_task_id` the card of the newest occurrence created.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Schedule {
    pub id: i64,
    pub cron: String,
    pub tz: String,
    pub catch_up: CatchUp,
    pub skip_if_open: bool,
    pub next_at: Option<i64>,
    pub last_occurrence: Option<i64>,
    pub last_task_id: Option<String>,
    pub created_at: i64,
    pub created_by: Option<String>,
    pub card: Template,
}

/// The card a schedule creates at each occurrence: the fields of `kanban create` it takes, stored as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Template {
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub workspace_kind: Option<WorkspaceKind>,
    #[serde(default)]
    pub workspace_path: Option<String>,
    #[serde(default)]
    pub max_runtime_seconds: Option<i64>,
    #[serde(default)]
    pub max_retries: Option<i64>,
    #[serde(default)]
    pub goal_mode: bool,
    #[serde(default)]
    pub goal_max_turns: Option<i64>,
}

/// What a policy may know about a card: the card, its newest runs (newest first), its newest events and
/// comments (in id order) and its parents. Read by the store in one bounded snapshot (`LIMIT`s, never the
/// whole history) and turned into the policy's context record once per card per tick.
#[derive(Debug, Clone, PartialEq)]
pub struct CardFacts {
    pub task: Task,
    pub runs: Vec<Run>,
    pub events: Vec<Event>,
    pub comments: Vec<Comment>,
    pub parents: Vec<Task>,
}

impl CardFacts {
    pub fn new(task: Task, history: CardHistory) -> CardFacts {
        let CardHistory { runs, events, comments, parents } = history;
        CardFacts { task, runs, events, comments, parents }
    }
}

/// [`CardFacts`] without the card: what a tick reads ahead for cards it already holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardHistory {
    pub runs: Vec<Run>,
    pub events: Vec<Event>,
    pub comments: Vec<Comment>,
    pub parents: Vec<Task>,
}
