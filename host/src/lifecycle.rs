//! The card's lifecycle as a pure function: which status may go where, under which action and by whom,
//! what the card's columns become, whether its run ends (and how), and which events record it.
//!
//! [`transition`] is the one transition table. Every store backend loads the card and the facts around
//! it, asks this function, then compare-and-sets the result, appends the events and commits: no backend
//! writes a rule of its own. The breaker's arithmetic is [`crate::breaker::judge`]. Nothing here touches
//! a database, a process or a file.
//!
//! Who acts matters for a running card. Its own worker (or supervisor, or goal judge) acts as
//! [`Actor::Attempt`] naming its run, and is refused once that run is no longer current or is being
//! stopped. A person (CLI, web) acts as [`Actor::Operator`] and may not take a running card out of
//! `running` directly: the commands layer first stops the card's worker (`ops::stop`), which ends the run
//! and then applies the same action as [`Actor::Stop`]. So no front end can leave a worker behind.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::breaker::{self, BreakerLimits};
use crate::model::{ChildSpec, EventKind, Lane, Outcome, Run, RunStatus, Status, Task, WorkspaceKind};

/// A change someone asks of a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Complete {
        result: Option<String>,
        summary: Option<String>,
    },
    Block {
        reason: Option<String>,
        kind: Option<String>,
        sticky: bool,
    },
    Unblock {
        reason: Option<String>,
    },
    Schedule {
        reason: Option<String>,
    },
    Promote {
        force: bool,
    },
    Archive,
    /// Requeue a running card by hand (or on reassignment): its run ends `reclaimed`, failures reset.
    Reclaim {
        reason: String,
    },
    /// Give the card to another profile; a running card is requeued first.
    Reassign {
        profile: String,
    },
    /// Set or clear the assignee (not while running). `source` is `cli` or the routing policy's name.
    Assign {
        assignee: Option<String>,
        source: String,
    },
    /// Send the card to the review lane (a worker finishing its turn, or a person).
    Review {
        reviewer: Option<String>,
        summary: Option<String>,
    },
    /// The reviewer sends the card back to its implementer.
    RequestChanges {
        reason: String,
    },
    /// The dispatcher ends the current run with an outcome and applies the breaker. `wedged` marks a live
    /// worker that went silent (stale heartbeat or stale timeout).
    Settle {
        outcome: Outcome,
        error: Option<String>,
        detail: Value,
        wedged: bool,
    },
}

impl Action {
    /// The verb used in refusals ("cannot unblock card ...").
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Complete { .. } => "complete",
            Action::Block { .. } => "block",
            Action::Unblock { .. } => "unblock",
            Action::Schedule { .. } => "schedule",
            Action::Promote { .. } => "promote",
            Action::Archive => "archive",
            Action::Reclaim { .. } => "reclaim",
            Action::Reassign { .. } => "reassign",
            Action::Assign { .. } => "assign",
            Action::Review { .. } => "send to review",
            Action::RequestChanges { .. } => "request changes on",
            Action::Settle { .. } => "settle",
        }
    }

    /// How the card's run ends when this action takes a running card out of `running`.
    pub fn run_outcome(&self) -> Option<Outcome> {
        Some(match self {
            Action::Complete { .. } => Outcome::Completed,
            Action::Block { .. } => Outcome::Blocked,
            Action::Archive => Outcome::Archived,
            Action::Reclaim { .. } | Action::Reassign { .. } => Outcome::Reclaimed,
            Action::Review { .. } => Outcome::ReviewRequested,
            Action::RequestChanges { .. } => Outcome::ChangesRequested,
            Action::Settle { outcome, .. } => *outcome,
            Action::Unblock { .. }
            | Action::Schedule { .. }
            | Action::Promote { .. }
            | Action::Assign { .. } => {
                return None;
            }
        })
    }
}

/// Who is acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A person, through the CLI or the web board.
    Operator,
    /// The worker of this run (or its supervisor or goal judge), reporting on its own attempt.
    Attempt(i64),
    /// The dispatcher, settling this run.
    Dispatcher(i64),
    /// The stop of this run, finishing: its processes are confirmed gone.
    Stop(i64),
}

/// What the table needs to know besides the card: its open parents and its current run.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Ids of the card's parents that are not done or archived.
    pub open_parents: &'a [String],
    /// The card's current run, if it has one.
    pub run: Option<&'a Run>,
}

/// A block as set on the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub sticky: bool,
}

/// Columns a transition sets on the card; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub result: Option<Option<String>>,
    /// Stamp `completed_at` with the time of the write.
    pub completed: bool,
    pub failures: Option<i64>,
    pub violations: Option<i64>,
    pub stale_reclaims: Option<i64>,
    pub last_failure_error: Option<Option<String>>,
    /// `Some(None)` clears the block.
    pub block: Option<Option<Block>>,
    /// Release the claim: no claim, no worker pid, no current run.
    pub clear_claim: bool,
    pub assignee: Option<Option<String>>,
    pub reviewer: Option<Option<String>>,
    pub parents_waived: Option<bool>,
}

/// How the card's current run ends.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    pub run_id: i64,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub summary: Option<String>,
}

/// An audit event the transition appends.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSpec {
    pub kind: EventKind,
    pub payload: Value,
    /// Tied to the run that ended (if any).
    pub on_run: bool,
}

/// What [`transition`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    pub changes: Changes,
    pub end_run: Option<RunEnd>,
    pub events: Vec<EventSpec>,
    /// The card closed: `todo` children with no open parent left become ready.
    pub release_children: bool,
    /// Only for [`Action::Settle`]: the breaker's verdict.
    pub judgement: Option<breaker::Judgement>,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The card's state does not allow it (exit 1).
    Refused(String),
    /// The request itself is bad (exit 2).
    Invalid(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Refused(m) | Refusal::Invalid(m) => m,
        }
    }
}

fn refused<T>(message: String) -> Result<T, Refusal> {
    Err(Refusal::Refused(message))
}

/// Statuses an action may start from (a running card is judged separately, by who is acting).
fn allowed_from(action: &Action) -> &'static [Status] {
    use Status::*;
    match action {
        Action::Complete { .. } => &[Triage, Todo, Scheduled, Ready, Running, Blocked, Review],
        Action::Block { .. } => &[Triage, Todo, Scheduled, Ready, Running, Review],
        Action::Unblock { .. } => &[Blocked],
        Action::Schedule { .. } => &[Triage, Todo, Ready, Blocked, Review],
        Action::Promote { .. } => &[Triage, Todo, Scheduled],
        Action::Archive => &[Triage, Todo, Scheduled, Ready, Running, Blocked, Review, Done],
        Action::Reclaim { .. } | Action::Settle { .. } => &[Running],
        Action::Reassign { .. } => &[Triage, Todo, Scheduled, Ready, Running, Blocked, Review, Done],
        Action::Assign { .. } => &[Triage, Todo, Scheduled, Ready, Blocked, Review, Done, Archived],
        Action::Review { .. } => &[Ready, Running, Blocked],
        Action::RequestChanges { .. } => &[Review, Running],
    }
}

/// A worker reporting on run `attempt` may only touch the card while that run is its current one and is
/// not being stopped: a stale attempt (an old worker of a card that was reclaimed and respawned) cannot
/// complete, block or heartbeat a newer run.
pub fn check_attempt(task: &Task, current: Option<&Run>, attempt: i64) -> Result<(), Refusal> {
    if task.current_run_id != Some(attempt) {
        return refused(format!(
            "stale attempt: run {attempt} is no longer the current run of card {} ({})",
            task.id,
            task.current_run_id
                .map(|r| format!("current run {r}"))
                .unwrap_or_else(|| format!("now {}", task.status))
        ));
    }
    if let Some(run) = current.filter(|r| r.status == RunStatus::Stopping) {
        let why = run.outcome.map(|o| format!(" ({o})")).unwrap_or_default();
        return refused(format!("stale attempt: run {attempt} of card {} is being stopped{why}", task.id));
    }
    Ok(())
}

/// Check who may act on a running card (and refuse a stale attempt on any card).
fn check_actor(task: &Task, facts: &Facts, actor: Actor, action: &Action) -> Result<(), Refusal> {
    let current = task.current_run_id;
    let run_status = facts.run.map(|r| r.status);
    match actor {
        Actor::Attempt(run) => check_attempt(task, facts.run, run)?,
        Actor::Dispatcher(run) | Actor::Stop(run) => {
            if task.status != Status::Running || current != Some(run) {
                return refused(format!("card {} is no longer running on run {run}", task.id));
            }
            let stopping = run_status == Some(RunStatus::Stopping);
            match actor {
                Actor::Stop(_) if !stopping => {
                    return refused(format!("run {run} of card {} is not being stopped", task.id));
                }
                // A stop already decided how the run ends; only finishing it may settle it.
                Actor::Dispatcher(_) if stopping => {
                    return refused(format!("run {run} of card {} is being stopped", task.id));
                }
                _ => {}
            }
        }
        Actor::Operator => {
            if task.status == Status::Running && action.run_outcome().is_some() {
                return refused(format!(
                    "card {} is running; its worker must be stopped first (kanban reclaim, block, complete \
                     and archive do that)",
                    task.id
                ));
            }
        }
    }
    if matches!(action, Action::Settle { .. }) && matches!(actor, Actor::Operator | Actor::Attempt(_)) {
        return refused(format!("only the dispatcher settles a run of card {}", task.id));
    }
    Ok(())
}

/// The one transition table. `limits` feeds the breaker for [`Action::Settle`].
pub fn transition(
    task: &Task,
    facts: &Facts,
    actor: Actor,
    action: &Action,
    limits: BreakerLimits,
) -> Result<Transition, Refusal> {
    check_actor(task, facts, actor, action)?;
    let from = task.status;
    let id = &task.id;
    if from == Status::Archived && matches!(action, Action::Archive) {
        return refused(format!("card {id} is already archived"));
    }
    if !allowed_from(action).contains(&from) {
        return refused(match action {
            Action::Assign { .. } if from == Status::Running => {
                format!("card {id} is running; use `kanban reassign {id} PROFILE --reclaim`")
            }
            Action::RequestChanges { .. } => {
                format!(
                    "cannot request changes on card {id} while it is {from}; only cards in review can be sent back"
                )
            }
            _ => format!("cannot {} card {id} while it is {from}", action.verb()),
        });
    }
    if from == Status::Running
        && matches!(action, Action::RequestChanges { .. })
        && facts.run.map(|r| r.lane) != Some(Lane::Review)
    {
        return refused(format!(
            "cannot request changes on card {id}: its worker is implementing it, not reviewing it"
        ));
    }
    let open = facts.open_parents;
    let parents_block = !open.is_empty() && !task.parents_waived;
    // Where a card waits when it goes back to a queue: its run's lane, else todo while a parent is open.
    let waiting = |lane: Option<Lane>| match lane {
        Some(Lane::Review) => Status::Review,
        _ if parents_block => Status::Todo,
        _ => Status::Ready,
    };
    let run_lane = facts.run.map(|r| r.lane);
    let running = from == Status::Running;
    let mut t = Transition {
        from,
        to: from,
        changes: Changes::default(),
        end_run: None,
        events: Vec::new(),
        release_children: false,
        judgement: None,
    };
    let reset_counters = |c: &mut Changes| {
        c.failures = Some(0);
        c.violations = Some(0);
        c.stale_reclaims = Some(0);
    };
    match action {
        Action::Complete { result, summary } => {
            if parents_block {
                return refused(format!(
                    "card {id} has open parent(s) {}; complete them first",
                    open.join(", ")
                ));
            }
            t.to = Status::Done;
            t.changes.result = Some(result.clone().or_else(|| task.result.clone()));
            t.changes.completed = true;
            reset_counters(&mut t.changes);
            t.changes.last_failure_error = Some(None);
            t.changes.block = Some(None);
            t.events.push(event(
                EventKind::Completed,
                json!({"result": result, "summary": summary, "from": from}),
            ));
            t.release_children = true;
        }
        Action::Block { reason, kind, sticky } => {
            t.to = Status::Blocked;
            t.changes.block =
                Some(Some(Block { kind: kind.clone(), reason: reason.clone(), sticky: *sticky }));
            t.events.push(event(
                EventKind::Blocked,
                json!({"reason": reason, "kind": kind, "sticky": sticky, "from": from}),
            ));
        }
        Action::Unblock { reason } => {
            t.to = waiting(None);
            t.changes.block = Some(None);
            reset_counters(&mut t.changes);
            t.events.push(event(
                EventKind::Unblocked,
                json!({"reason": reason, "to": t.to, "failures_reset": task.consecutive_failures}),
            ));
        }
        Action::Schedule { reason } => {
            t.to = Status::Scheduled;
            t.changes.block = Some(None);
            t.events.push(event(EventKind::Scheduled, json!({"reason": reason, "from": from})));
        }
        Action::Promote { force } => {
            if !open.is_empty() && !force {
                return refused(format!(
                    "card {id} waits on open parent(s) {}; pass --force to promote anyway",
                    open.join(", ")
                ));
            }
            t.to = Status::Ready;
            if !open.is_empty() {
                // Forcing past an open parent waives the parent check for this card's completion too: a
                // card sent to work before its parents closed must be able to finish.
                t.changes.parents_waived = Some(true);
            }
            t.events.push(event(EventKind::Promoted, json!({"from": from, "force": force})));
        }
        Action::Archive => {
            t.to = Status::Archived;
            t.events.push(event(EventKind::Archived, json!({"from": from})));
            t.release_children = true;
        }
        Action::Reclaim { reason } => {
            t.to = waiting(run_lane);
            reset_counters(&mut t.changes);
            t.events.push(event(EventKind::Reclaimed, json!({"reason": reason, "manual": true, "to": t.to})));
        }
        Action::Reassign { profile } => {
            let profile = profile.trim();
            if profile.is_empty() || profile == "none" {
                return Err(Refusal::Invalid("reassign needs a profile name".into()));
            }
            if running {
                t.to = waiting(run_lane);
                reset_counters(&mut t.changes);
                t.events.push(event(
                    EventKind::Reclaimed,
                    json!({"reason": "reassigned", "manual": true, "to": t.to}),
                ));
            }
            assign(task, &mut t, Some(profile), EventKind::Reassigned, json!({}));
        }
        Action::Assign { assignee, source } => {
            let assignee = assignee.as_deref().map(str::trim).filter(|a| !a.is_empty() && *a != "none");
            assign(task, &mut t, assignee, EventKind::Assigned, json!({"source": source}));
        }
        Action::Review { reviewer, summary } => {
            let reviewer = reviewer.as_deref().map(str::trim).filter(|r| !r.is_empty());
            t.to = Status::Review;
            t.changes.block = Some(None);
            reset_counters(&mut t.changes);
            if let Some(r) = reviewer {
                t.changes.reviewer = Some(Some(r.to_string()));
            }
            if summary.is_some() {
                t.changes.result = Some(summary.clone());
            }
            let reviewer = reviewer.map(str::to_string).or_else(|| task.reviewer.clone());
            t.events.push(event(
                EventKind::ReviewRequested,
                json!({"reviewer": reviewer, "summary": summary, "from": from}),
            ));
        }
        Action::RequestChanges { reason } => {
            if reason.trim().is_empty() {
                return Err(Refusal::Invalid("request-changes needs a reason for the implementer".into()));
            }
            t.to = if parents_block { Status::Todo } else { Status::Ready };
            t.events.push(event(EventKind::ChangesRequested, json!({"reason": reason, "from": from})));
        }
        Action::Settle { outcome, error, detail, wedged } => {
            let message = error.clone().unwrap_or_else(|| outcome.as_str().to_string());
            let j = breaker::judge(task, *outcome, *wedged, &message, limits);
            t.to = if j.gave_up { Status::Blocked } else { waiting(run_lane) };
            t.changes.failures = Some(j.failures);
            t.changes.violations = Some(j.violations);
            t.changes.stale_reclaims = Some(j.stale_reclaims);
            if j.counted {
                t.changes.last_failure_error = Some(Some(message.clone()));
            }
            let mut payload = json!({
                "outcome": outcome,
                "error": error,
                "counted": j.counted,
                "consecutive_failures": j.failures,
                "to": t.to,
            });
            if let (Value::Object(p), Value::Object(extra)) = (&mut payload, detail.clone()) {
                p.extend(extra);
            }
            t.events.push(EventSpec { kind: EventKind::of_outcome(*outcome), payload, on_run: true });
            if let Some(reason) = &j.reason {
                t.changes.block = Some(Some(Block {
                    kind: Some("gave_up".into()),
                    reason: Some(reason.clone()),
                    sticky: j.sticky,
                }));
                t.events.push(EventSpec {
                    kind: EventKind::GaveUp,
                    payload: json!({
                        "reason": reason,
                        "outcome": outcome,
                        "consecutive_failures": j.failures,
                        "limit": j.limit,
                        "sticky": j.sticky,
                    }),
                    on_run: true,
                });
            }
            t.judgement = Some(j);
        }
    }
    if running && let Some(outcome) = action.run_outcome() {
        let run_id = task.current_run_id.expect("a running card has a current run");
        let (error, summary) = match action {
            Action::Complete { summary, .. } | Action::Review { summary, .. } => (None, summary.clone()),
            Action::Block { reason, .. } => (reason.clone(), None),
            Action::Reclaim { reason } => (Some(reason.clone()), None),
            Action::Reassign { .. } => (Some("reassigned".to_string()), None),
            Action::RequestChanges { reason } => (Some(reason.clone()), None),
            Action::Settle { outcome, error, .. } => {
                (Some(error.clone().unwrap_or_else(|| outcome.as_str().to_string())), None)
            }
            _ => (None, None),
        };
        t.end_run = Some(RunEnd { run_id, outcome, error, summary });
        t.changes.clear_claim = true;
        if let Some(first) = t.events.first_mut() {
            first.on_run = true;
        }
    }
    Ok(t)
}

/// The dispatcher's verdict on a run whose supervisor recorded the worker's exit: the exit code decides the
/// outcome. The worker's last line says why it failed, in its own words; it joins the error of a crash or a
/// configuration error (the auth/quota guard and `show` read it there). A rate-limited exit already says
/// why by its code, and has its own cooldown that the guard's longer auth window must not stretch, so its
/// line stays in the run's metadata and the `worker_exited` event only.
pub fn settle_exit(run: &Run) -> Action {
    let (code, signal) = (run.exit_code, run.exit_signal);
    let outcome = breaker::outcome_of_exit(code, signal);
    let base = match (outcome, code, signal) {
        (Outcome::ProtocolViolation, _, _) => "exited 0 without kanban complete or kanban block".to_string(),
        (Outcome::RateLimited, _, _) => "exit 75: rate limited (EX_TEMPFAIL)".to_string(),
        (Outcome::ConfigError, _, _) => "exit 78: configuration error (EX_CONFIG)".to_string(),
        (_, _, Some(sig)) => format!("killed by signal {sig}"),
        (_, Some(code), _) => format!("exit {code}"),
        _ => "unknown exit".to_string(),
    };
    let last_output = run.metadata.as_ref().and_then(|m| m["last_output"].as_str());
    let error = match last_output {
        Some(line) if matches!(outcome, Outcome::Crashed | Outcome::ConfigError) => format!("{base}: {line}"),
        _ => base,
    };
    Action::Settle {
        outcome,
        error: Some(error),
        detail: json!({"exit_code": code, "signal": signal}),
        wedged: false,
    }
}

/// The workspace of a decomposed child: the root's kind and path, unless the child overrides the kind; an
/// override keeps the root's path only when the kinds match (a path means something only for its kind). A
/// scratch workspace's path is the host's own and never carries over.
pub fn child_workspace(root: &Task, child: &ChildSpec) -> (WorkspaceKind, Option<String>) {
    let root_path =
        (root.workspace_kind != WorkspaceKind::Scratch).then(|| root.workspace_path.clone()).flatten();
    match &child.workspace {
        None => (root.workspace_kind, root_path),
        Some((kind, Some(path))) => (*kind, Some(path.clone())),
        Some((kind, None)) if *kind == root.workspace_kind => (*kind, root_path),
        Some((kind, None)) => (*kind, None),
    }
}

fn event(kind: EventKind, payload: Value) -> EventSpec {
    EventSpec { kind, payload, on_run: false }
}

/// Set the assignee; moving a card to a different profile resets its failure counter (the breaker's count
/// belongs to the profile that failed).
fn assign(task: &Task, t: &mut Transition, assignee: Option<&str>, kind: EventKind, mut payload: Value) {
    let changed = task.assignee.as_deref() != assignee;
    let reset = changed && assignee.is_some() && task.consecutive_failures > 0;
    t.changes.assignee = Some(assignee.map(str::to_string));
    if reset {
        t.changes.failures = Some(0);
    }
    if let Value::Object(map) = &mut payload {
        map.insert("assignee".into(), json!(assignee));
        map.insert("previous".into(), json!(task.assignee));
        map.insert("failures_reset".into(), json!(reset));
    }
    t.events.push(event(kind, payload));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{run, task};

    fn settle(outcome: Outcome) -> Action {
        Action::Settle { outcome, error: None, detail: json!({}), wedged: false }
    }

    fn actions() -> Vec<Action> {
        vec![
            Action::Complete { result: Some("r".into()), summary: None },
            Action::Block { reason: Some("why".into()), kind: None, sticky: true },
            Action::Unblock { reason: None },
            Action::Schedule { reason: None },
            Action::Promote { force: false },
            Action::Archive,
            Action::Reclaim { reason: "manual".into() },
            Action::Reassign { profile: "other".into() },
            Action::Assign { assignee: Some("other".into()), source: "cli".into() },
            Action::Review { reviewer: Some("rev".into()), summary: Some("did it".into()) },
            Action::RequestChanges { reason: "fix the tests".into() },
            settle(Outcome::Crashed),
        ]
    }

    /// The expected target of each action from each status, for a person acting on a card with no open
    /// parents (`None`: refused). Running cards are taken out of `running` only by the stop path, which is
    /// checked below.
    fn expected(action: &Action, from: Status) -> Option<Status> {
        use Status::*;
        if from == Running {
            return match action {
                Action::Unblock { .. } | Action::Schedule { .. } | Action::Promote { .. } => None,
                Action::Assign { .. } => None,
                // Refused for a person: the worker must be stopped first.
                _ => None,
            };
        }
        let to = match action {
            Action::Complete { .. } => Done,
            Action::Block { .. } => Blocked,
            Action::Unblock { .. } => Ready,
            Action::Schedule { .. } => Scheduled,
            Action::Promote { .. } => Ready,
            Action::Archive => Archived,
            Action::Reclaim { .. } | Action::Settle { .. } => return None,
            Action::Reassign { .. } | Action::Assign { .. } => from,
            Action::Review { .. } => Review,
            Action::RequestChanges { .. } => Ready,
        };
        let already_archived = matches!(action, Action::Archive) && from == Archived;
        allowed_from(action).contains(&from).then_some(to).filter(|_| !already_archived)
    }

    #[test]
    fn every_status_and_action_pair_for_a_person() {
        let mut checked = 0;
        for from in Status::ALL {
            for action in actions() {
                let mut card = task("t_0000000a");
                card.status = *from;
                let r = run(7, "t_0000000a");
                if *from == Status::Running {
                    card.current_run_id = Some(7);
                }
                let facts = Facts { open_parents: &[], run: (*from == Status::Running).then_some(&r) };
                let got = transition(&card, &facts, Actor::Operator, &action, BreakerLimits::default());
                let want = expected(&action, *from);
                match (got, want) {
                    (Ok(t), Some(to)) => assert_eq!(t.to, to, "{action:?} from {from}"),
                    (Err(_), None) => {}
                    (got, want) => panic!("{action:?} from {from}: got {got:?}, expected {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, Status::ALL.len() * actions().len());
    }

    #[test]
    fn a_running_card_leaves_running_only_through_its_stop_or_its_own_attempt() {
        let mut card = task("t_0000000b");
        card.status = Status::Running;
        card.current_run_id = Some(7);
        let mut r = run(7, "t_0000000b");
        let limits = BreakerLimits::default();
        for action in actions() {
            let facts = Facts { open_parents: &[], run: Some(&r) };
            // A person: refused for every action that would end the run.
            let by_person = transition(&card, &facts, Actor::Operator, &action, limits);
            assert!(by_person.is_err(), "{action:?} by a person");
        }
        // The worker's own report on its current run ends the run with the action's outcome.
        let facts = Facts { open_parents: &[], run: Some(&r) };
        let t = transition(
            &card,
            &facts,
            Actor::Attempt(7),
            &Action::Complete { result: None, summary: Some("s".into()) },
            limits,
        )
        .unwrap();
        assert_eq!(t.to, Status::Done);
        assert_eq!(t.end_run.as_ref().map(|e| e.outcome), Some(Outcome::Completed));
        assert!(t.changes.clear_claim && t.events[0].on_run);
        // An older attempt is refused, and so is the current one once its stop was requested.
        assert!(transition(&card, &facts, Actor::Attempt(6), &Action::Archive, limits).is_err());
        r.status = RunStatus::Stopping;
        r.outcome = Some(Outcome::Reclaimed);
        let facts = Facts { open_parents: &[], run: Some(&r) };
        let err = transition(&card, &facts, Actor::Attempt(7), &Action::Archive, limits).unwrap_err();
        assert!(err.message().contains("being stopped (reclaimed)"), "{err:?}");
        // The stop, finishing, applies any action.
        for action in actions() {
            let got = transition(&card, &facts, Actor::Stop(7), &action, limits);
            let ends_run = action.run_outcome().is_some() && !matches!(action, Action::RequestChanges { .. });
            assert_eq!(got.is_ok(), ends_run, "{action:?} by the stop: {got:?}");
            if let Ok(t) = got {
                assert!(t.end_run.is_some() && t.changes.clear_claim, "{action:?}");
            }
        }
    }

    #[test]
    fn a_settled_run_requeues_to_its_own_lane_or_todo_and_the_breaker_can_block() {
        let mut card = task("t_0000000c");
        card.status = Status::Running;
        card.current_run_id = Some(3);
        let mut r = run(3, "t_0000000c");
        let limits = BreakerLimits { board_failure_limit: 1, ..BreakerLimits::default() };
        let parents = ["t_0000000p".to_string()];
        let cases = [
            (Lane::Work, &parents[..0], Outcome::RateLimited, Status::Ready),
            (Lane::Work, &parents[..], Outcome::RateLimited, Status::Todo),
            (Lane::Review, &parents[..0], Outcome::ProtocolViolation, Status::Review),
            (Lane::Work, &parents[..0], Outcome::Crashed, Status::Blocked),
        ];
        for (lane, open, outcome, to) in cases {
            r.lane = lane;
            let facts = Facts { open_parents: open, run: Some(&r) };
            let t = transition(&card, &facts, Actor::Dispatcher(3), &settle(outcome), limits).unwrap();
            assert_eq!(t.to, to, "{lane} {outcome}");
            assert_eq!(t.events[0].kind, EventKind::of_outcome(outcome));
        }
        // Settling a run that is no longer current is refused.
        let facts = Facts { open_parents: &[], run: Some(&r) };
        assert!(transition(&card, &facts, Actor::Dispatcher(2), &settle(Outcome::Crashed), limits).is_err());
    }

    #[test]
    fn promote_force_waives_the_parent_check_for_completion() {
        let mut card = task("t_0000000d");
        card.status = Status::Todo;
        let open = ["t_0000000p".to_string()];
        let facts = Facts { open_parents: &open, run: None };
        let limits = BreakerLimits::default();
        let refused = transition(&card, &facts, Actor::Operator, &Action::Promote { force: false }, limits);
        assert!(refused.unwrap_err().message().contains("pass --force"));
        let t = transition(&card, &facts, Actor::Operator, &Action::Promote { force: true }, limits).unwrap();
        assert_eq!(t.changes.parents_waived, Some(true));
        let complete = Action::Complete { result: None, summary: None };
        card.status = Status::Ready;
        assert!(transition(&card, &facts, Actor::Operator, &complete, limits).is_err());
        card.parents_waived = true;
        assert_eq!(transition(&card, &facts, Actor::Operator, &complete, limits).unwrap().to, Status::Done);
    }

    #[test]
    fn review_and_request_changes() {
        let limits = BreakerLimits::default();
        let mut card = task("t_0000000e");
        card.status = Status::Running;
        card.current_run_id = Some(4);
        card.consecutive_failures = 1;
        let mut r = run(4, "t_0000000e");
        let facts = Facts { open_parents: &[], run: Some(&r) };
        let review = Action::Review { reviewer: Some("rev".into()), summary: Some("done, see PR".into()) };
        let t = transition(&card, &facts, Actor::Attempt(4), &review, limits).unwrap();
        assert_eq!(t.to, Status::Review);
        assert_eq!(t.changes.reviewer, Some(Some("rev".into())));
        assert_eq!(t.changes.result, Some(Some("done, see PR".into())));
        assert_eq!(t.events[0].kind, EventKind::ReviewRequested);
        // The implementer's worker cannot send its own card back; the reviewer's can.
        let back = Action::RequestChanges { reason: "add a test".into() };
        assert!(transition(&card, &facts, Actor::Attempt(4), &back, limits).is_err());
        r.lane = Lane::Review;
        let facts = Facts { open_parents: &[], run: Some(&r) };
        let t = transition(&card, &facts, Actor::Attempt(4), &back, limits).unwrap();
        assert_eq!(t.to, Status::Ready);
        assert_eq!(t.changes.failures, None, "the failure counter is untouched");
        assert_eq!(t.end_run.unwrap().outcome, Outcome::ChangesRequested);
        // A person approves with complete, or sends it back.
        card.status = Status::Review;
        card.current_run_id = None;
        let facts = Facts { open_parents: &[], run: None };
        assert_eq!(transition(&card, &facts, Actor::Operator, &back, limits).unwrap().to, Status::Ready);
        let blank = Action::RequestChanges { reason: " ".into() };
        assert!(matches!(
            transition(&card, &facts, Actor::Operator, &blank, limits),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn actions_round_trip_as_json_for_a_pending_stop() {
        for action in actions() {
            let text = serde_json::to_string(&action).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&text).unwrap(), action, "{text}");
        }
    }
}
