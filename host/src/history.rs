//! A card as it stood at a past moment, rebuilt from its event log: the facts a policy would have been
//! handed just before a given event (`kanban policy replay`). Pure: the caller reads the card's whole
//! history once ([`crate::store::TaskDetail`]) and asks about as many moments as it likes.
//!
//! What is exact and what is not (docs/plugins.md, "Replaying history", says the same):
//! - exact: the events before the moment, the runs started before it (a run still open then is shown
//!   `running`, without its outcome), the comments written before it, the status the decision saw, the
//!   assignee, the failure counter and last counted error, the block, and `updated_at` (the time of the
//!   card's last change before the moment);
//! - exact unless edited since: the title and priority (an `edited` event records the new value, not the
//!   old one, so a card edited after the moment and never before shows its creation-time value only if it
//!   was recorded; otherwise today's value, flagged) and the body (only the fact of a body edit is recorded:
//!   flagged when edited after the moment);
//! - today's values: the parents and their statuses (flagged when the card has parents), the fields no
//!   command changes after creation (tenant, workspace, max retries), and the board's config.

use std::collections::HashMap;

use serde_json::Value;

use crate::model::{
    CardFacts, Comment, Event, EventKind, Outcome, Run, RunStatus, Status, Task, WorkspaceKind,
};
use crate::policy::context::{COMMENTS, EVENTS, RUNS};

/// A field of the rebuilt card that may differ from what the decision saw.
pub type Inexact = &'static str;

/// The card's facts just before event `cut` (which happened at `at`), as a policy saw them, with the
/// fields that may differ.
pub struct AsOf {
    pub facts: CardFacts,
    pub inexact: Vec<Inexact>,
}

/// Rebuild `task` (as it is now), with its whole history (`events`, `runs`, `comments` in id order, and
/// today's `parents`), as it stood just before event `cut`, when the decision being replayed saw it in
/// status `status`. `events`, `runs` and `comments` are bounded to what a live context holds.
pub fn card_as_of(
    task: &Task,
    events: &[Event],
    runs: &[Run],
    comments: &[Comment],
    parents: &[Task],
    cut: i64,
    status: Status,
) -> AsOf {
    let before: Vec<&Event> = events.iter().filter(|e| e.id < cut).collect();
    let after: Vec<&Event> = events.iter().filter(|e| e.id >= cut).collect();
    let mut inexact = Vec::new();
    let mut card = task.clone();
    card.status = status;
    fold_fields(&mut card, &before);
    // Title and priority: the newest edit before the moment, else today's value when nothing changed it
    // since; else the value from before that first later edit is unrecorded.
    for (field, flag) in [("title", "title"), ("priority", "priority")] {
        let set_before = before.iter().rev().find_map(|e| edited(e, field));
        let set_after = after.iter().any(|e| edited(e, field).is_some());
        match (set_before, field) {
            (Some(v), "title") => card.title = v.as_str().unwrap_or(&card.title).to_string(),
            (Some(v), _) => card.priority = v.as_i64().unwrap_or(card.priority),
            (None, _) if set_after => inexact.push(flag),
            (None, _) => {}
        }
    }
    if after.iter().any(|e| edited(e, "body").is_some()) {
        inexact.push("body");
    }
    // A scratch folder's path is recorded on the card when its first worker starts.
    if card.workspace_kind == WorkspaceKind::Scratch
        && !before.iter().any(|e| e.kind == EventKind::WorkerStarted.as_str())
    {
        card.workspace_path = None;
    }
    if !parents.is_empty() {
        inexact.push("parents");
    }
    // Runs: those claimed before the moment, as they stood then.
    let claimed_at: HashMap<i64, i64> = events
        .iter()
        .filter(|e| e.kind == EventKind::Claimed.as_str())
        .filter_map(|e| Some((e.run_id?, e.id)))
        .collect();
    let settled_at: HashMap<i64, i64> = events
        .iter()
        .filter(|e| Outcome::parse(&e.kind).is_some())
        .filter_map(|e| Some((e.run_id?, e.id)))
        .fold(HashMap::new(), |mut m, (run, id)| {
            m.entry(run).or_insert(id);
            m
        });
    let mut then_runs: Vec<Run> = runs
        .iter()
        .filter(|r| claimed_at.get(&r.id).map_or(r.started_at < before_time(&before), |&id| id < cut))
        .map(|r| match settled_at.get(&r.id) {
            Some(&id) if id < cut => r.clone(),
            _ => Run {
                status: RunStatus::Running,
                outcome: None,
                error: None,
                exit_code: None,
                ended_at: None,
                ..r.clone()
            },
        })
        .collect();
    then_runs.reverse(); // newest first, as a live context holds them
    then_runs.truncate(RUNS as usize);
    // Comments: each has one `commented` event naming it.
    let written: Vec<i64> = before
        .iter()
        .filter(|e| e.kind == EventKind::Commented.as_str())
        .filter_map(|e| e.payload.get("comment_id").and_then(Value::as_i64))
        .collect();
    let then_comments: Vec<Comment> = comments.iter().filter(|c| written.contains(&c.id)).cloned().collect();
    let skip = then_comments.len().saturating_sub(COMMENTS as usize);
    let skip_events = before.len().saturating_sub(EVENTS as usize);
    AsOf {
        facts: CardFacts {
            task: card,
            runs: then_runs,
            events: before[skip_events..].iter().map(|e| (*e).clone()).collect(),
            comments: then_comments[skip..].to_vec(),
            parents: parents.to_vec(),
        },
        inexact,
    }
}

/// The card's status just before event `cut`, from the events that move it (`None` when no event before
/// the moment says: the card did not exist yet).
pub fn status_as_of(events: &[Event], cut: i64) -> Option<Status> {
    let mut status = None;
    for e in events.iter().filter(|e| e.id < cut) {
        let p = &e.payload;
        let named = |key: &str| p.get(key).and_then(Value::as_str).and_then(Status::parse);
        let next = match EventKind::parse(&e.kind) {
            Some(EventKind::Created) => named("status"),
            Some(EventKind::Claimed) => Some(Status::Running),
            Some(EventKind::Completed) => Some(Status::Done),
            Some(EventKind::Blocked | EventKind::GaveUp) => Some(Status::Blocked),
            Some(EventKind::Archived) => Some(Status::Archived),
            Some(EventKind::Scheduled) => Some(Status::Scheduled),
            Some(EventKind::ReviewRequested) => Some(Status::Review),
            Some(EventKind::Ready | EventKind::Promoted | EventKind::ChangesRequested) => Some(Status::Ready),
            Some(EventKind::Waiting) => Some(Status::Todo),
            // A settled run, an unblock, a reclaim, a recovery: they say where the card went.
            _ => named("to"),
        };
        if next.is_some() {
            status = next;
        }
    }
    status
}

/// The time of the newest event before the moment (0 when none).
fn before_time(before: &[&Event]) -> i64 {
    before.last().map_or(0, |e| e.created_at + 1)
}

/// The value an `edited` event set for `field`.
fn edited<'a>(e: &'a Event, field: &str) -> Option<&'a Value> {
    (e.kind == EventKind::Edited.as_str()).then(|| e.payload.get(field)).flatten()
}

/// Replay the fields the lifecycle changes, event by event, from the card's creation: assignee, failure
/// counter, last counted error, block, and the time of the last change.
fn fold_fields(card: &mut Task, before: &[&Event]) {
    card.consecutive_failures = 0;
    card.last_failure_error = None;
    card.block_kind = None;
    card.block_reason = None;
    card.block_sticky = false;
    card.updated_at = card.created_at;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    for e in before {
        let p = &e.payload;
        let Some(kind) = EventKind::parse(&e.kind) else { continue };
        if changes_the_card(kind) {
            card.updated_at = e.created_at;
        }
        match kind {
            EventKind::Created | EventKind::Assigned | EventKind::Reassigned => {
                if let Some(a) = p.get("assignee") {
                    card.assignee = a.as_str().map(str::to_string);
                }
                if p.get("failures_reset").and_then(Value::as_bool) == Some(true) {
                    card.consecutive_failures = 0;
                }
            }
            EventKind::Edited if p.get("reset_failures").is_some() => card.consecutive_failures = 0,
            EventKind::Blocked => {
                card.block_kind = text(p.get("kind"));
                card.block_reason = text(p.get("reason"));
                card.block_sticky = p.get("sticky").and_then(Value::as_bool).unwrap_or(false);
            }
            EventKind::GaveUp => {
                card.block_kind = Some("gave_up".into());
                card.block_reason = text(p.get("reason"));
                card.block_sticky = p.get("sticky").and_then(Value::as_bool).unwrap_or(false);
            }
            EventKind::Completed
            | EventKind::Unblocked
            | EventKind::ReviewRequested
            | EventKind::Scheduled => {
                if matches!(kind, EventKind::Completed) {
                    card.last_failure_error = None;
                }
                card.block_kind = None;
                card.block_reason = None;
                card.block_sticky = false;
            }
            _ => {}
        }
        // The counter: a settled run records it; a manual reclaim, an unblock, a completion and a request
        // for review reset it.
        match p.get("consecutive_failures").and_then(Value::as_i64) {
            Some(n) if Outcome::parse(&e.kind).is_some() || kind == EventKind::GaveUp => {
                card.consecutive_failures = n;
                if p.get("counted").and_then(Value::as_bool) == Some(true) {
                    card.last_failure_error = text(p.get("error")).or_else(|| Some(e.kind.clone()));
                }
            }
            _ if matches!(
                kind,
                EventKind::Completed
                    | EventKind::Unblocked
                    | EventKind::ReviewRequested
                    | EventKind::Reclaimed
            ) =>
            {
                card.consecutive_failures = 0
            }
            _ => {}
        }
    }
}

/// Whether an event of `kind` changes the card's row (and so its `updated_at`); heartbeats and the
/// dispatcher's own notes do not count... see [`card_as_of`]'s test against live contexts.
fn changes_the_card(kind: EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Commented
            | EventKind::Deferred
            | EventKind::Tip
            | EventKind::PolicyError
            | EventKind::DispatcherHealth
            | EventKind::WorkerStarted
            | EventKind::ClaimExtended
            | EventKind::StopRequested
            | EventKind::StopPending
            | EventKind::Attached
            | EventKind::AttachmentRemoved
            | EventKind::Linked
            | EventKind::Unlinked
            | EventKind::Gc
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{run, task};
    use serde_json::json;

    fn ev(id: i64, kind: &str, run_id: Option<i64>, payload: Value, at: i64) -> Event {
        Event { id, task_id: Some("t".into()), run_id, kind: kind.into(), payload, created_at: at }
    }

    #[test]
    fn a_card_before_its_crash_has_the_counter_and_runs_it_had_then() {
        let mut now = task("t");
        now.consecutive_failures = 2;
        now.last_failure_error = Some("boom".into());
        let mut r1 = run(1, "t");
        r1.outcome = Some(Outcome::Crashed);
        r1.status = RunStatus::Ended;
        r1.ended_at = Some(20);
        let mut r2 = r1.clone();
        r2.id = 2;
        let events = vec![
            ev(1, "created", None, json!({"assignee": "coder", "status": "ready"}), 0),
            ev(2, "claimed", Some(1), json!({}), 10),
            ev(
                3,
                "crashed",
                Some(1),
                json!({"consecutive_failures": 1, "counted": true, "error": "boom"}),
                20,
            ),
            ev(4, "claimed", Some(2), json!({}), 30),
            ev(
                5,
                "crashed",
                Some(2),
                json!({"consecutive_failures": 2, "counted": true, "error": "boom"}),
                40,
            ),
        ];
        // Just before the second claim: one crash, one ended run.
        let at = card_as_of(&now, &events, &[r1.clone(), r2.clone()], &[], &[], 4, Status::Ready);
        assert_eq!(at.facts.task.consecutive_failures, 1);
        assert_eq!(at.facts.task.last_failure_error.as_deref(), Some("boom"));
        assert_eq!(at.facts.runs.iter().map(|r| r.id).collect::<Vec<_>>(), [1]);
        assert_eq!(at.facts.events.len(), 3);
        assert_eq!(at.facts.task.updated_at, 20);
        assert!(at.inexact.is_empty());
        // Just before the first claim: nothing failed yet.
        let at = card_as_of(&now, &events, &[r1, r2], &[], &[], 2, Status::Ready);
        assert_eq!(at.facts.task.consecutive_failures, 0);
        assert!(at.facts.runs.is_empty());
        assert_eq!(at.facts.task.assignee.as_deref(), Some("coder"));
    }

    #[test]
    fn the_status_as_of_a_moment_follows_the_events_that_move_the_card() {
        let events = vec![
            ev(1, "created", None, json!({"status": "ready"}), 0),
            ev(2, "claimed", Some(1), json!({}), 10),
            ev(3, "crashed", Some(1), json!({"to": "ready"}), 20),
            ev(4, "claimed", Some(2), json!({}), 30),
            ev(5, "crashed", Some(2), json!({"to": "blocked"}), 40),
            ev(6, "gave_up", Some(2), json!({}), 40),
            ev(7, "commented", None, json!({}), 50),
            ev(8, "unblocked", None, json!({"to": "ready"}), 60),
        ];
        let at = |cut| status_as_of(&events, cut);
        assert_eq!(at(1), None);
        assert_eq!(at(2), Some(Status::Ready));
        assert_eq!(at(3), Some(Status::Running));
        assert_eq!(at(4), Some(Status::Ready));
        assert_eq!(at(8), Some(Status::Blocked));
        assert_eq!(at(9), Some(Status::Ready));
    }

    #[test]
    fn a_run_settled_after_the_moment_is_shown_running_and_later_edits_are_flagged() {
        let now = task("t");
        let mut r1 = run(1, "t");
        r1.outcome = Some(Outcome::Completed);
        r1.status = RunStatus::Ended;
        let events = vec![
            ev(1, "created", None, json!({"assignee": null}), 0),
            ev(2, "claimed", Some(1), json!({}), 10),
            ev(3, "heartbeat", Some(1), json!({}), 11),
            ev(4, "edited", None, json!({"title": "new", "body": true}), 12),
            ev(5, "completed", Some(1), json!({}), 20),
        ];
        let at = card_as_of(&now, &events, &[r1], &[], &[], 4, Status::Running);
        assert_eq!(at.facts.runs[0].status, RunStatus::Running);
        assert_eq!(at.facts.runs[0].outcome, None);
        assert_eq!(at.inexact, ["title", "body"]);
    }
}
