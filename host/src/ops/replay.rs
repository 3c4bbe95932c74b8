//! `kanban policy replay`: ask a candidate policy about the decisions the board actually made, each with
//! the card rebuilt as it stood at that moment ([`crate::history`]), and report where it would have
//! decided differently. Nothing is written: the board, its quarantine and its events stay as they are.
//!
//! The decisions, by the candidate's kind:
//! - respawn guard: every claim (the board let the spawn happen), every deferral (`deferred` events, one
//!   per streak) and every block by a guard (`blocked` events naming a policy);
//! - routing: every assignment made by a routing policy (`assigned` events whose source is a policy, not a
//!   person's front end, `cli` or `web`);
//! - diagnostics: every card as it stood at one moment (`--at`), asked of the candidate and of the board's
//!   own diagnostics policies, compared by the findings' rules.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};

use super::Desk;
use super::policies::Candidate;
use crate::board::Home;
use crate::history::{self, Inexact};
use crate::model::{EventKind, PolicyKind, Status};
use crate::store::{RunSpan, TaskDetail};

/// One decision the board made and what the candidate says about it.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    /// The event that records the decision.
    pub event_id: i64,
    pub at: i64,
    pub task_id: String,
    /// What the board did: `{"decision": "allow" | "defer" | "block", "policy": ...}` for a guard,
    /// `{"assignee": ..., "policy": ...}` for routing.
    pub actual: Value,
    /// What the candidate decided, in `kanban plugin run`'s shape, or `{"error": ...}` when it failed.
    pub replayed: Value,
    /// `same`, or how it differs: `would_defer`, `would_block`, `would_allow` (guards), `would_assign`
    /// (routing, another or no profile), or `error`.
    pub verdict: String,
    /// Fields of the rebuilt card that may differ from what the board saw (see `history`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inexact: Vec<Inexact>,
    /// The context record the candidate was handed (with `--contexts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<crate::policy::PolicyContext>,
}

/// What to list besides the counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listing {
    /// Every decision, not only those the candidate would change.
    pub all: bool,
    /// Each listed decision with the context the candidate was handed.
    pub contexts: bool,
}

/// The whole replay.
#[derive(Debug, Serialize)]
pub struct Report {
    pub board: String,
    pub plugin: String,
    pub sha256: String,
    pub kind: PolicyKind,
    /// Guards and routers: the start of the window replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Diagnostics: the moment the cards were rebuilt at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
    /// Decisions replayed (diagnostics: cards asked about).
    pub decisions: usize,
    /// Decisions by what the board did (`allow`, `defer`, `block`; `assign` for routing).
    pub actual: BTreeMap<String, usize>,
    /// Decisions by verdict (`same`, `would_defer`, ...).
    pub verdicts: BTreeMap<String, usize>,
    /// Rebuilt cards with a field that may differ, by field.
    pub inexact: BTreeMap<String, usize>,
    /// Every decision whose verdict is not `same` (every decision with `--all`), in the order the board
    /// made them.
    pub listed: Vec<Replayed>,
}

/// What to replay: the candidate, its config, the window (guards, routers) or moment (diagnostics), the
/// kind it must be, and what to list.
pub struct Request<'a> {
    pub plugin: &'a str,
    pub config: &'a Value,
    /// Guards and routers: decisions from this time on.
    pub since: i64,
    /// Diagnostics: the cards as they stood at this time.
    pub at: i64,
    pub expected: Option<PolicyKind>,
    pub listing: Listing,
}

/// Replay the board's decisions with the candidate of `req`.
pub fn replay(desk: &mut Desk, home: &Home, req: &Request) -> anyhow::Result<Report> {
    let Request { plugin, config, since, at, expected, listing } = *req;
    let mut candidate = Candidate::open(home, plugin, config)?;
    if let Some(kind) = expected.filter(|k| *k != candidate.kind) {
        anyhow::bail!("--kind {kind}: {plugin} is a {} policy", candidate.kind);
    }
    let kinds: &[EventKind] = match candidate.kind {
        PolicyKind::RespawnGuard => &[EventKind::Claimed, EventKind::Deferred, EventKind::Blocked],
        PolicyKind::Routing => &[EventKind::Assigned],
        PolicyKind::Diagnostics => return diagnostics(desk, home, candidate, at, listing),
        PolicyKind::Decompose => anyhow::bail!(
            "{plugin} is a decompose policy; replay asks respawn guards, routers and diagnostics (a \
             decomposition is tried on a real triage card with `kanban plugin run PLUGIN --card ID`)"
        ),
    };
    let spans = desk.store.run_spans()?;
    let mut cards: HashMap<String, TaskDetail> = HashMap::new();
    let mut report = Report {
        board: desk.board.slug.clone(),
        plugin: candidate.plugin.clone(),
        sha256: candidate.sha256.clone(),
        kind: candidate.kind,
        since: Some(since),
        at: None,
        decisions: 0,
        actual: BTreeMap::new(),
        verdicts: BTreeMap::new(),
        inexact: BTreeMap::new(),
        listed: Vec::new(),
    };
    for event in desk.store.events_of_kinds(kinds, since)? {
        let Some(task_id) = event.task_id.clone() else { continue };
        let Some((actual, status)) = decision_of(&event) else { continue };
        if !cards.contains_key(&task_id) {
            let Ok(detail) = desk.store.task_detail(&task_id) else { continue }; // deleted for good
            cards.insert(task_id.clone(), detail);
        }
        let d = &cards[&task_id];
        // A claim opens its run first (`run_started`, then `claimed`, in one transaction): the guard was
        // asked before either.
        let cut = match (EventKind::parse(&event.kind), event.run_id) {
            (Some(EventKind::Claimed), Some(run)) => {
                d.events.iter().filter(|e| e.run_id == Some(run)).map(|e| e.id).min().unwrap_or(event.id)
            }
            _ => event.id,
        };
        let as_of = history::card_as_of(&d.task, &d.events, &d.runs, &d.comments, &d.parents, cut, status);
        let running = running_at(&spans, event.created_at, event.run_id);
        let mut ctx = crate::policy::context::record(desk.board, as_of.facts, &running, event.created_at);
        let replayed = match candidate.ask(&mut ctx) {
            Ok((decision, _)) => decision,
            Err(e) => json!({"error": e.to_string(), "error_kind": e.kind()}),
        };
        let verdict = verdict(candidate.kind, &actual, &replayed);
        report.decisions += 1;
        let did = actual.get("decision").and_then(Value::as_str).unwrap_or("assign").to_string();
        *report.actual.entry(did).or_default() += 1;
        *report.verdicts.entry(verdict.clone()).or_default() += 1;
        for field in &as_of.inexact {
            *report.inexact.entry(field.to_string()).or_default() += 1;
        }
        if listing.all || verdict != "same" {
            report.listed.push(Replayed {
                event_id: event.id,
                at: event.created_at,
                task_id,
                actual,
                replayed,
                verdict,
                inexact: as_of.inexact,
                context: listing.contexts.then_some(ctx),
            });
        }
    }
    Ok(report)
}

/// Diagnostics as of `at`: every card that existed then (and was not archived), rebuilt as it stood, asked
/// of the candidate and of the board's own diagnostics policies. The verdict compares the rules found:
/// `same`, `would_find` (the candidate finds rules the board's policies do not), `would_miss` (the other
/// way), `would_differ` (both), or `error`.
fn diagnostics(
    desk: &mut Desk,
    home: &Home,
    mut candidate: Candidate,
    at: i64,
    listing: Listing,
) -> anyhow::Result<Report> {
    let spans = desk.store.run_spans()?;
    let running = running_at(&spans, at, None);
    let engine = candidate.engine()?;
    let mut board = crate::policy::BoardPolicies::load(engine, home, desk.board, &[PolicyKind::Diagnostics]);
    let mut report = Report {
        board: desk.board.slug.clone(),
        plugin: candidate.plugin.clone(),
        sha256: candidate.sha256.clone(),
        kind: candidate.kind,
        since: None,
        at: Some(at),
        decisions: 0,
        actual: BTreeMap::new(),
        verdicts: BTreeMap::new(),
        inexact: BTreeMap::new(),
        listed: Vec::new(),
    };
    let filter = crate::store::TaskFilter { include_archived: true, ..Default::default() };
    for task in desk.store.list_tasks(&filter)? {
        if task.created_at > at {
            continue;
        }
        let d = desk.store.task_detail(&task.id)?;
        let cut = d.events.iter().find(|e| e.created_at > at).map_or(i64::MAX, |e| e.id);
        let Some(status) = history::status_as_of(&d.events, cut).filter(|s| *s != Status::Archived) else {
            continue;
        };
        let as_of = history::card_as_of(&d.task, &d.events, &d.runs, &d.comments, &d.parents, cut, status);
        let mut ctx = crate::policy::context::record(desk.board, as_of.facts, &running, at);
        let engine = candidate.engine()?;
        let mut found = Vec::new();
        for p in &mut board.diagnosers {
            match p.diagnose(engine, &mut ctx) {
                Ok(findings) => found.extend(findings),
                Err(e) => found.push(crate::model::Finding {
                    task_id: Some(task.id.clone()),
                    policy: p.name().to_string(),
                    rule: "policy-error".into(),
                    severity: crate::model::Severity::Error,
                    title: e.to_string(),
                    detail: String::new(),
                    actions: Vec::new(),
                }),
            }
        }
        let replayed = match candidate.ask(&mut ctx) {
            Ok((decision, _)) => decision,
            Err(e) => json!({"error": e.to_string(), "error_kind": e.kind()}),
        };
        let rules = |findings: &Value| -> std::collections::BTreeSet<String> {
            findings
                .as_array()
                .map(|a| a.iter().filter_map(|f| f["rule"].as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let actual = json!({"findings": found});
        let (theirs, ours) = (rules(&actual["findings"]), rules(&replayed["findings"]));
        let verdict = match (replayed.get("error"), ours.is_subset(&theirs), theirs.is_subset(&ours)) {
            (Some(_), ..) => "error",
            (None, true, true) => "same",
            (None, false, true) => "would_find",
            (None, true, false) => "would_miss",
            (None, false, false) => "would_differ",
        };
        report.decisions += 1;
        *report.actual.entry("findings".into()).or_default() += theirs.len();
        *report.verdicts.entry(verdict.into()).or_default() += 1;
        for field in &as_of.inexact {
            *report.inexact.entry(field.to_string()).or_default() += 1;
        }
        if listing.all || verdict != "same" {
            report.listed.push(Replayed {
                event_id: cut,
                at,
                task_id: task.id.clone(),
                actual,
                replayed,
                verdict: verdict.into(),
                inexact: as_of.inexact,
                context: listing.contexts.then_some(ctx),
            });
        }
    }
    Ok(report)
}

/// What the board decided at `event`, and the card's status then; `None` for an event that is no such
/// decision (a block by a person or a worker, an assignment from the command line).
fn decision_of(event: &crate::model::Event) -> Option<(Value, Status)> {
    let p = &event.payload;
    let status = |key: &str| p.get(key).and_then(Value::as_str).and_then(Status::parse);
    let policy = p.get("policy").cloned().unwrap_or(Value::Null);
    match EventKind::parse(&event.kind)? {
        EventKind::Claimed => Some((json!({"decision": "allow"}), status("from").unwrap_or(Status::Ready))),
        EventKind::Deferred => Some((
            json!({"decision": "defer", "policy": policy, "reason": p.get("reason")}),
            status("status").unwrap_or(Status::Ready),
        )),
        EventKind::Blocked if p.get("kind").and_then(Value::as_str) == Some("policy") => Some((
            json!({"decision": "block", "policy": policy, "reason": p.get("reason")}),
            status("from").unwrap_or(Status::Ready),
        )),
        EventKind::Assigned => {
            let source = p.get("source").and_then(Value::as_str)?;
            // A person's assignment comes from a front end; a policy's names the policy.
            (!matches!(source, "cli" | "web"))
                .then(|| (json!({"assignee": p.get("assignee"), "policy": source}), Status::Ready))
        }
        _ => None,
    }
}

/// The verdict on one decision.
fn verdict(kind: PolicyKind, actual: &Value, replayed: &Value) -> String {
    if replayed.get("error").is_some() {
        return "error".into();
    }
    match kind {
        PolicyKind::Routing => {
            let same = actual.get("assignee") == replayed.get("assignee");
            if same { "same" } else { "would_assign" }.into()
        }
        _ => {
            let did = actual.get("decision").and_then(Value::as_str);
            let would = replayed.get("decision").and_then(Value::as_str).unwrap_or("allow");
            if did == Some(would) { "same".into() } else { format!("would_{would}") }
        }
    }
}

/// Running cards per profile at time `at`, as a tick saw them just before the claim of run `own` (runs
/// claimed earlier in the same second count; runs settled in it do not).
fn running_at(spans: &[RunSpan], at: i64, own: Option<i64>) -> BTreeMap<String, usize> {
    let mut running = BTreeMap::new();
    for s in spans {
        // A run claimed earlier in the same tick was running when the plan reached this card, however
        // soon it ended; a run from before that ended in this second was settled before the plan.
        let same_tick = s.started_at == at && own.is_some_and(|own| s.id < own);
        let open = s.started_at < at && s.ended_at.is_none_or(|e| e > at);
        if let Some(p) = s.profile.as_ref().filter(|_| same_tick || open) {
            *running.entry(p.clone()).or_default() += 1;
        }
    }
    running
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_name_what_the_candidate_would_have_done_instead() {
        let allow = json!({"decision": "allow"});
        let defer = json!({"decision": "defer", "reason": "x"});
        let g = PolicyKind::RespawnGuard;
        assert_eq!(verdict(g, &allow, &allow), "same");
        assert_eq!(verdict(g, &allow, &defer), "would_defer");
        assert_eq!(verdict(g, &defer, &allow), "would_allow");
        assert_eq!(verdict(g, &allow, &json!({"error": "trap"})), "error");
        let r = PolicyKind::Routing;
        assert_eq!(verdict(r, &json!({"assignee": "a"}), &json!({"assignee": "a"})), "same");
        assert_eq!(verdict(r, &json!({"assignee": "a"}), &json!({"assignee": null})), "would_assign");
    }

    #[test]
    fn running_counts_include_earlier_claims_of_the_same_second_and_not_runs_that_ended_in_it() {
        let span = |id, started_at, ended_at| RunSpan { id, profile: Some("w".into()), started_at, ended_at };
        let spans = vec![span(1, 5, Some(10)), span(2, 10, Some(10)), span(3, 10, None), span(4, 10, None)];
        assert_eq!(running_at(&spans, 10, Some(3)).get("w"), Some(&1)); // run 2 only
        assert_eq!(running_at(&spans, 11, None).get("w"), Some(&2));
    }
}
