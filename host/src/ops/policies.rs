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
    Ok(load_of(&desk.store.running_cards()?))
}

/// How many of `running` each profile runs.
pub fn load_of(running: &[crate::store::RunningCard]) -> BTreeMap<String, usize> {
    let mut load = BTreeMap::new();
    for profile in running.iter().filter_map(|card| card.run.profile.as_ref()) {
        *load.entry(profile.clone()).or_default() += 1;
    }
    load
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

/// What `kanban plugin run` found: the plugin's kind, its decision as JSON, and what the call cost.
#[derive(Debug, Serialize)]
pub struct PluginRun {
    pub plugin: String,
    pub sha256: String,
    pub kind: PolicyKind,
    pub decision: serde_json::Value,
    /// Wall time of the call, instantiation (and config validation) included, in microseconds.
    pub micros: u64,
    pub fuel_used: u64,
    pub fuel_limit: u64,
    /// The largest linear memory of the instance, in bytes.
    pub peak_memory: usize,
}

/// A plugin outside any board, with its config, called as a tick would call it (the same sandbox, fuel
/// and memory; nothing is recorded): `kanban plugin run` calls it once, `kanban policy replay` once per
/// decision it replays, on the same instance.
pub struct Candidate {
    runtime: PolicyRuntime,
    loaded: crate::policy::Loaded,
    pub plugin: String,
    pub sha256: String,
    pub kind: PolicyKind,
}

impl Candidate {
    /// `plugin` is a path to a component, or a reference as board.toml writes it (`builtin:NAME`, an
    /// installed name, `sha256:HEX`); `config` (a JSON object) is its `[policies.config]`.
    pub fn open(home: &Home, plugin: &str, config: &serde_json::Value) -> anyhow::Result<Candidate> {
        use crate::policy::{Loaded, plugins};
        use anyhow::Context as _;
        let path = std::path::Path::new(plugin);
        let (sha256, bytes) = if path.is_file() {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            (crate::digest::sha256_hex(&bytes), plugins::PluginBytes::InMemory(bytes))
        } else {
            plugins::resolve(home, plugin)
                .map_err(|e| anyhow::anyhow!("plugin '{plugin}' is not a file, and {e}"))?
        };
        if !config.is_object() {
            anyhow::bail!("--config must be a JSON object, got {config}");
        }
        let mut runtime = PolicyRuntime::new(home);
        let engine = runtime.engine()?;
        let component = engine.component(&sha256, &bytes)?;
        let kind = engine.shape(&component)?.kind;
        let mut loaded = Loaded::from_component(component, &sha256, kind, plugin, None);
        match &mut loaded {
            Loaded::Guard(p) => p.set_config(config.to_string()),
            Loaded::Router(p) => p.set_config(config.to_string()),
            Loaded::Diagnoser(p) => p.set_config(config.to_string()),
            Loaded::Decomposer(p) => p.set_config(config.to_string()),
        }
        Ok(Candidate { runtime, loaded, plugin: plugin.to_string(), sha256, kind })
    }

    /// The engine the candidate runs in (to load other policies beside it).
    pub fn engine(
        &mut self,
    ) -> Result<&mut crate::policy::runtime::PolicyEngine, crate::policy::PolicyError> {
        self.runtime.engine()
    }

    /// Ask the plugin about `ctx`: its decision as JSON (`{"decision": "allow" | "defer" | "block", ...}`,
    /// `{"assignee": ...}`, `{"findings": [...]}`, `{"children": [...]}` or `{"leave": ...}`) and the call's
    /// cost.
    pub fn ask(
        &mut self,
        ctx: &mut crate::policy::PolicyContext,
    ) -> Result<(serde_json::Value, Option<crate::policy::CallCost>), crate::policy::PolicyError> {
        use crate::model::GuardDecision;
        use crate::policy::Loaded;
        use serde_json::json;
        let engine = self.runtime.engine()?;
        Ok(match &mut self.loaded {
            Loaded::Guard(p) => {
                let decision = match p.decide(engine, ctx)? {
                    GuardDecision::Allow => json!({"decision": "allow"}),
                    GuardDecision::Defer { reason, retry_after } => {
                        json!({"decision": "defer", "reason": reason, "retry_after": retry_after})
                    }
                    GuardDecision::Block { reason } => json!({"decision": "block", "reason": reason}),
                };
                (decision, p.last_cost())
            }
            Loaded::Router(p) => {
                let assignee = p.route(engine, ctx)?;
                (json!({"assignee": assignee}), p.last_cost())
            }
            Loaded::Diagnoser(p) => {
                let findings = p.diagnose(engine, ctx)?;
                (json!({"findings": findings}), p.last_cost())
            }
            Loaded::Decomposer(p) => {
                let decision = match p.decompose(engine, ctx)? {
                    DecomposePlan::Leave(reason) => json!({"leave": reason}),
                    DecomposePlan::Children(children) => json!({"children": children
                    .iter()
                    .map(|c| json!({
                        "title": c.title, "body": c.body, "assignee": c.assignee, "priority": c.priority,
                        "workspace": c.workspace.as_ref().map(|(k, p)| json!({"kind": k.as_str(), "path": p})),
                        "depends_on": c.depends_on,
                    }))
                    .collect::<Vec<_>>()}),
                };
                (decision, p.last_cost())
            }
        })
    }
}

/// Call a plugin once on a context (see [`Candidate`]).
pub fn run_plugin(
    home: &Home,
    plugin: &str,
    mut ctx: crate::policy::PolicyContext,
    config: &serde_json::Value,
) -> anyhow::Result<PluginRun> {
    let mut candidate = Candidate::open(home, plugin, config)?;
    let started = std::time::Instant::now();
    let (decision, cost) = candidate.ask(&mut ctx).map_err(|e| anyhow::anyhow!("{plugin}: {e}"))?;
    let micros = started.elapsed().as_micros() as u64;
    let cost = cost.unwrap_or(crate::policy::CallCost { fuel_used: 0, fuel_limit: 0, peak_memory: 0 });
    let Candidate { plugin, sha256, kind, .. } = candidate;
    Ok(PluginRun {
        plugin,
        sha256,
        kind,
        decision,
        micros,
        fuel_used: cost.fuel_used,
        fuel_limit: cost.fuel_limit,
        peak_memory: cost.peak_memory,
    })
}
