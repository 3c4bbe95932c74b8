//! Commands that ask the board's policies about cards: diagnostics over the board (stored, so `show`
//! prints them without running a policy) and the decomposition of triage cards. The asking, safe defaults
//! and quarantine are the policy host's; this file decides which cards and stores the results.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Desk;
use crate::board::Home;
use crate::model::{DecomposePlan, Finding, PolicyKind, Status};
use crate::policies::{Decomposed, PolicyHost};
use crate::policy::PolicyRuntime;
use crate::store::TaskFilter;

/// Running cards per profile (what policies see as each profile's load).
pub fn running_counts(desk: &mut Desk) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut running = BTreeMap::new();
    for card in desk.store.running_cards()? {
        if let Some(profile) = card.run.profile {
            *running.entry(profile).or_default() += 1;
        }
    }
    Ok(running)
}

/// The context record a policy would be handed about card `id` now (with an empty `config`: each policy
/// gets its own `[policies.config]`), built exactly as a tick builds it: one bounded read of the card's
/// history, the board's facts and the running counts.
pub fn context_of(desk: &mut Desk, id: &str, now: i64) -> anyhow::Result<crate::policy::PolicyContext> {
    let running = running_counts(desk)?;
    let facts = desk.store.card_facts(
        id,
        crate::policy::context::RUNS,
        crate::policy::context::EVENTS,
        crate::policy::context::COMMENTS,
    )?;
    Ok(crate::policy::context::record(desk.board, facts, &running, now))
}

/// Run the board's diagnostics over one card, or every card not archived, and store the findings
/// (replacing the previous ones of those cards, and the board-level ones on a whole-board run). The host
/// adds its own board-level findings: quarantined plugins (through the policy host) and pauses.
pub fn diagnose(
    desk: &mut Desk,
    home: &Home,
    runtime: &mut PolicyRuntime,
    task: Option<&str>,
) -> anyhow::Result<Vec<Finding>> {
    let ids: Vec<String> = match task {
        Some(id) => {
            desk.store.require_task(id)?;
            vec![id.to_string()]
        }
        None => desk.store.list_tasks(&TaskFilter::default())?.into_iter().map(|t| t.id).collect(),
    };
    let running = running_counts(desk)?;
    let now = crate::clock::now();
    let kinds = [PolicyKind::Diagnostics];
    let mut host = PolicyHost::new(runtime, home, desk.board, &kinds, false);
    let mut findings = host.board_findings(desk.store)?;
    findings.extend(super::pause::findings(&desk.board.slug, &desk.store.pauses()?));
    for id in &ids {
        let mut ctx = host.context(desk.store, id, &running, now)?;
        findings.extend(host.diagnose(desk.store, &mut ctx)?);
    }
    host.finish(desk.store, now)?;
    desk.store.replace_findings(&ids, task.is_none(), &findings, now)?;
    Ok(findings)
}

/// What became of one card asked to decompose.
#[derive(Debug, Clone, Serialize)]
pub struct DecomposeResult {
    pub task_id: String,
    pub policy: String,
    /// Child ids when split; empty when left in triage.
    pub children: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<String>,
}

/// Decompose triage cards with the board's decomposition policy. A card that is not in triage is an
/// error for that card; a policy that fails, declines or plans what cannot be applied leaves the card in
/// triage with the reason (a `decompose_left` event).
pub fn decompose(
    desk: &mut Desk,
    home: &Home,
    runtime: &mut PolicyRuntime,
    ids: &[String],
) -> anyhow::Result<Vec<Result<DecomposeResult, String>>> {
    let running = running_counts(desk)?;
    let kinds = [PolicyKind::Decompose];
    let mut host = PolicyHost::new(runtime, home, desk.board, &kinds, false);
    let mut results = Vec::new();
    for id in ids {
        let task = desk.store.get_task(id)?;
        if task.status != Status::Triage {
            results.push(Err(format!("card {id} is {}; only triage cards are decomposed", task.status)));
            continue;
        }
        let now = crate::clock::now();
        let mut ctx = host.context(desk.store, id, &running, now)?;
        let (outcome, policy) = match host.decompose(desk.store, &mut ctx)? {
            Decomposed::Plan { plan: DecomposePlan::Children(children), policy } => (
                desk.store.apply_decomposition(id, &children, &policy, now).map_err(|e| e.to_string()),
                policy,
            ),
            Decomposed::Plan { plan: DecomposePlan::Leave(reason), policy } => (Err(reason), policy),
            Decomposed::Failed { reason, policy } => (Err(reason), policy),
        };
        results.push(Ok(match outcome {
            Ok(children) => DecomposeResult { task_id: id.clone(), policy, children, left: None },
            Err(reason) => {
                desk.store.record_decompose_left(id, &reason, &policy, now)?;
                DecomposeResult { task_id: id.clone(), policy, children: Vec::new(), left: Some(reason) }
            }
        }));
    }
    host.finish(desk.store, crate::clock::now())?;
    Ok(results)
}
