//! Card commands with their side effects: each front end calls these, never the store's lifecycle writes
//! directly, so none of them can forget to stop a worker or clean a workspace.

use serde_json::json;

use super::Desk;
use super::stop::{self, StopOutcome};
use crate::board::Board;
use crate::lifecycle::{Action, Actor};
use crate::model::{Comment, EventKind, Status, Task, WorkspaceKind};
use crate::store::{BatchCard, BatchError, Created, EditTask, NewTask, StoreError};
use crate::workspace::Cleanup;

/// Who asks for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// A person (CLI, web board).
    Operator,
    /// A card's own worker, reporting on its run (`KANBAN_RUN_ID`).
    Worker { run: i64 },
}

/// What a card command did.
#[derive(Debug)]
pub struct Acted {
    /// The card as it is now.
    pub task: Task,
    /// The card's worker was stopped first.
    pub stopped_worker: bool,
    /// The card's worker could not be confirmed gone yet (the dispatcher finishes the stop); the card is
    /// still running on its stopping run.
    pub pending: Option<String>,
    /// What happened to the card's workspace.
    pub cleanup: Cleanup,
}

impl Acted {
    fn of(task: Task, cleanup: Cleanup) -> Acted {
        Acted { task, stopped_worker: false, pending: None, cleanup }
    }
}

/// Apply `action` to card `id` as `by`, with every side effect: a person's action on a running card stops
/// its worker first (and waits for it to be gone); a card that closed has its workspace cleaned. A worker's
/// own report ends its run at once; its supervisor cleans up once the worker has exited, so no worker is
/// left standing in a deleted folder.
pub fn act(desk: &mut Desk, id: &str, by: By, action: Action) -> anyhow::Result<Acted> {
    let now = crate::clock::now();
    let limits = desk.board.config.dispatch.limits();
    if let By::Worker { run } = by {
        let applied = desk.store.apply(id, Actor::Attempt(run), &action, limits, now)?;
        return Ok(Acted::of(applied.task, Cleanup::Nothing));
    }
    let task = desk.store.get_task(id)?;
    if task.status == Status::Running && action.run_outcome().is_some() {
        let reason = stop_reason(&action);
        let stopped = stop::stop_card(desk, id, None, action, &reason)?;
        return stopped_acted(desk, id, stopped);
    }
    let applied = desk.store.apply(id, Actor::Operator, &action, limits, now)?;
    let cleanup = stop::after_change(desk.board, &applied.task);
    Ok(Acted::of(applied.task, cleanup))
}

/// What an action that had to stop the card's worker came to, for the front end to report.
fn stopped_acted(desk: &mut Desk, id: &str, stopped: StopOutcome) -> anyhow::Result<Acted> {
    Ok(match stopped {
        StopOutcome::Finished(task, had_worker) => {
            Acted { task: *task, stopped_worker: had_worker, pending: None, cleanup: Cleanup::Nothing }
        }
        StopOutcome::Pending { why, .. } => Acted {
            task: desk.store.get_task(id)?,
            stopped_worker: false,
            pending: Some(why),
            cleanup: Cleanup::Nothing,
        },
    })
}

/// Requeue a running card by hand, stopping exactly the run named (`run`, else the one current when the
/// card is read): ends it `reclaimed` before any signal, so no concurrent tick can call it a crash.
pub fn reclaim(desk: &mut Desk, id: &str, run: Option<i64>, reason: Option<&str>) -> anyhow::Result<Acted> {
    let reason = reason.unwrap_or("manual").to_string();
    let task = desk.store.get_task(id)?;
    if task.status != Status::Running {
        return Err(
            StoreError::Refused(format!("cannot reclaim card {id} while it is {}", task.status)).into()
        );
    }
    let action = Action::Reclaim { reason: reason.clone() };
    let stopped = stop::stop_card(desk, id, run.or(task.current_run_id), action, &reason)?;
    stopped_acted(desk, id, stopped)
}

/// Give a card to another profile. A running card is requeued (its worker stopped) only when `reclaim` says
/// so; otherwise it is refused, so nobody stops a worker by accident.
pub fn reassign(desk: &mut Desk, id: &str, profile: String, reclaim: bool) -> anyhow::Result<Acted> {
    if desk.store.get_task(id)?.status == Status::Running && !reclaim {
        return Err(StoreError::Refused(format!(
            "card {id} is running; pass --reclaim to requeue it to {profile}"
        ))
        .into());
    }
    act(desk, id, By::Operator, Action::Reassign { profile })
}

fn stop_reason(action: &Action) -> String {
    match action {
        Action::Complete { .. } => "completed by an operator".into(),
        Action::Block { reason, .. } => reason.clone().unwrap_or_else(|| "blocked by an operator".into()),
        Action::Archive => "archived by an operator".into(),
        Action::Reclaim { reason } => reason.clone(),
        Action::Reassign { profile } => format!("reassigned to {profile}"),
        Action::Review { .. } => "sent to review by an operator".into(),
        Action::RequestChanges { reason } => reason.clone(),
        other => other.verb().to_string(),
    }
}

/// Block a card. A worker's own block is always sticky (it needs a person), whatever its kind; a person's
/// `transient` block may recover by itself.
pub fn block(
    desk: &mut Desk,
    id: &str,
    by: By,
    reason: Option<&str>,
    kind: Option<&str>,
) -> anyhow::Result<Acted> {
    let sticky = matches!(by, By::Worker { .. }) || kind != Some("transient");
    act(
        desk,
        id,
        by,
        Action::Block { reason: reason.map(str::to_string), kind: kind.map(str::to_string), sticky },
    )
}

/// Promote a parked card to ready; with `dry_run` the same checks run and nothing is written.
pub fn promote(desk: &mut Desk, id: &str, force: bool, dry_run: bool) -> anyhow::Result<(Status, Status)> {
    let action = Action::Promote { force };
    let limits = desk.board.config.dispatch.limits();
    if dry_run {
        let t = desk.store.check(id, Actor::Operator, &action, limits)?;
        return Ok((t.from, t.to));
    }
    let applied = desk.store.apply(id, Actor::Operator, &action, limits, crate::clock::now())?;
    Ok((applied.transition.from, applied.transition.to))
}

/// Delete an archived card for good: its rows, then its files (attachments, log, context).
pub fn delete(desk: &mut Desk, id: &str) -> anyhow::Result<()> {
    let attachments = desk.store.delete_archived(id, crate::clock::now())?;
    super::attachments::remove_files(desk.board, id, &attachments);
    Ok(())
}

/// The board's part of a new card, the same for `create` and every card of `import`: an assignee of `none`
/// (or blank) is no assignee; a dir or worktree card without a path takes the board's `default_workdir`
/// (a scratch card never does); and a dir card must end up with a path.
pub fn with_board_defaults(board: &Board, mut new: NewTask) -> Result<NewTask, StoreError> {
    new.assignee = new.assignee.filter(|a| !a.trim().is_empty() && a != "none");
    let kind = new.workspace_kind.unwrap_or(WorkspaceKind::Scratch);
    if new.workspace_path.is_none() && kind != WorkspaceKind::Scratch {
        new.workspace_path = board.config.board.default_workdir.as_ref().map(|p| p.display().to_string());
    }
    if kind == WorkspaceKind::Dir && new.workspace_path.is_none() {
        return Err(StoreError::Invalid(
            "workspace 'dir' needs a path (dir:/abs/path) or a board default_workdir".into(),
        ));
    }
    Ok(new)
}

/// Create a card. Returns it and whether it is new (an idempotency key already held returns that card).
pub fn create(desk: &mut Desk, new: NewTask) -> anyhow::Result<(Task, bool)> {
    let new = with_board_defaults(desk.board, new)?;
    Ok(desk.store.create_task(&new, crate::clock::now())?)
}

/// Create a batch of cards all or nothing, each as [`create`] would, in one transaction
/// ([`crate::store::Store::create_batch`]). The board's defaults are applied to `batch` in place, so the
/// caller sees each card as it was created. `progress` is told how many cards are written so far.
pub fn create_batch(
    desk: &mut Desk,
    batch: &mut [BatchCard],
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Created>, BatchError> {
    for (i, item) in batch.iter_mut().enumerate() {
        item.card = with_board_defaults(desk.board, std::mem::take(&mut item.card))
            .map_err(|error| BatchError { index: Some(i), field: None, error })?;
    }
    desk.store.create_batch(batch, crate::clock::now(), progress)
}

pub fn edit(desk: &mut Desk, id: &str, edit: &EditTask) -> anyhow::Result<Task> {
    Ok(desk.store.edit(id, edit, crate::clock::now())?)
}

pub fn comment(desk: &mut Desk, id: &str, author: Option<&str>, text: &str) -> anyhow::Result<Comment> {
    Ok(desk.store.add_comment(id, author, text, crate::clock::now())?)
}

pub fn link(desk: &mut Desk, parent: &str, child: &str) -> anyhow::Result<()> {
    Ok(desk.store.link(parent, child, crate::clock::now())?)
}

pub fn unlink(desk: &mut Desk, parent: &str, child: &str) -> anyhow::Result<()> {
    Ok(desk.store.unlink(parent, child, crate::clock::now())?)
}

/// A worker's heartbeat on its run (or a person's, on a running card).
pub fn heartbeat(desk: &mut Desk, id: &str, by: By, note: Option<&str>) -> anyhow::Result<Task> {
    let attempt = match by {
        By::Worker { run } => Some(run),
        By::Operator => None,
    };
    let ttl = desk.board.config.dispatch.claim_ttl_seconds;
    Ok(desk.store.heartbeat(id, note, ttl, attempt, crate::clock::now())?)
}

/// Record a free-standing event about a card (tips, warnings): one line, no state change.
pub fn note(
    desk: &mut Desk,
    id: Option<&str>,
    kind: EventKind,
    payload: serde_json::Value,
) -> anyhow::Result<()> {
    desk.store.record_event(id, kind, payload, crate::clock::now())?;
    Ok(())
}

/// The tip the first scratch card of an install gets: its workspace is deleted on completion.
pub fn scratch_tip(desk: &mut Desk, home: &crate::board::Home, task_id: &str) {
    let marker = home.root().join(".scratch-tip-shown");
    if marker.exists() {
        return;
    }
    if std::fs::write(&marker, b"shown\n").is_ok() {
        let tip = "scratch workspaces are deleted when the card completes or is archived; use --workspace dir:PATH or worktree to keep files";
        tracing::warn!(task = %task_id, "tip: {tip}");
        let _ = note(desk, Some(task_id), EventKind::Tip, json!({"tip": tip}));
    }
}
