//! Policy commands: the plugin store, diagnostics, decomposition, and board check's config validation.
//! These are the only card-level commands that build a wasmtime engine.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::Serialize;

use super::{Context, PluginCommand, UsageError, render};
use crate::board::{Board, PolicyKind, PolicySpec};
use crate::clock;
use crate::policy::plugins::{self, Installed};
use crate::policy::{
    BoardPolicies, DecomposePlan, Finding, LoadedPolicy, PolicyError, PolicyRuntime, builtins, context,
};
use crate::store::{Store, TaskFilter};

pub fn plugin(ctx: &Context, command: PluginCommand) -> anyhow::Result<()> {
    let home = &ctx.home;
    match command {
        PluginCommand::Install { path, name } => {
            let mut runtime = PolicyRuntime::new(home);
            let engine = runtime.engine()?;
            let p = plugins::install(engine, home, &path, name.as_deref(), clock::now())?;
            println!(
                "Installed {} ({} plugin {}, built against kanban:policy@{}) sha256:{}",
                p.name, p.kind, p.version, p.wit_version, p.sha256
            );
            Ok(())
        }
        PluginCommand::List { json } => {
            let list = plugins::list(home)?;
            if json {
                return render::json(&list);
            }
            if list.is_empty() {
                println!("no plugins installed (built in: {})", builtin_names());
            }
            for p in &list {
                println!("{:<24} {:<14} {:<8} sha256:{}", p.name, p.kind, p.version, &p.sha256[..16]);
            }
            Ok(())
        }
        PluginCommand::Show { name, json } => {
            let p = plugins::show(home, &name)?;
            if json {
                return render::json(&p);
            }
            print_installed(&p);
            Ok(())
        }
        PluginCommand::Rm { name } => {
            let p = plugins::remove(home, &name)?;
            println!("Removed plugin {} (sha256:{})", p.name, p.sha256);
            Ok(())
        }
        PluginCommand::Verify { json } => {
            let results = plugins::verify(home)?;
            let bad = results.iter().filter(|r| r.status != "ok").count();
            if json {
                render::json(&results)?;
            } else {
                for r in &results {
                    match &r.actual_sha256 {
                        Some(actual) => println!(
                            "{:<24} {} (expected sha256:{}, found sha256:{actual})",
                            r.name, r.status, r.sha256
                        ),
                        None => println!("{:<24} {}", r.name, r.status),
                    }
                }
                if results.is_empty() {
                    println!("no plugins installed");
                }
            }
            if bad > 0 {
                anyhow::bail!("{bad} installed plugin(s) failed verification; reinstall them");
            }
            Ok(())
        }
    }
}

fn builtin_names() -> String {
    builtins::BUILTINS.iter().map(|(n, _, _)| format!("builtin:{n}")).collect::<Vec<_>>().join(", ")
}

fn print_installed(p: &Installed) {
    println!("{}", p.name);
    println!("  kind         {}", p.kind);
    println!("  version      {}", p.version);
    println!("  built for    kanban:policy@{}", p.wit_version);
    println!("  sha256       {}", p.sha256);
    println!("  size         {} bytes", p.size);
    println!("  installed    {}", render::time(p.installed_at));
}

/// `board check`: load every policy of the board and run its `validate-config`. The first failure is a
/// config error naming the entry and the plugin's message (exit 2).
pub fn check_policies(ctx: &Context, board: &Board) -> anyhow::Result<usize> {
    let mut runtime = PolicyRuntime::new(&ctx.home);
    let engine = runtime.engine()?;
    let now = clock::now();
    for (i, spec) in board.config.policies.iter().enumerate() {
        let fail = |e: PolicyError| crate::board::ConfigError {
            path: board.toml_path(),
            message: format!("policies[{i}] ({}): {e}", spec.plugin),
        };
        let mut policy = LoadedPolicy::load(engine, &ctx.home, Some(i), spec).map_err(fail)?;
        policy.validate_config(engine, now).map_err(fail)?;
    }
    Ok(board.config.policies.len())
}

#[derive(Serialize)]
struct DiagnosticsJson<'a> {
    board: &'a str,
    findings: &'a [Finding],
}

const SEVERITIES: &[&str] = &["info", "warning", "error", "critical"];

pub fn diagnostics(
    ctx: &Context,
    task: Option<String>,
    min_severity: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let (board, mut store) = ctx.open()?;
    let now = clock::now();
    let ids: Vec<String> = match &task {
        Some(id) => {
            store.require_task(id)?;
            vec![id.clone()]
        }
        None => store.list_tasks(&TaskFilter::default())?.into_iter().map(|t| t.id).collect(),
    };
    let mut runtime = PolicyRuntime::new(&ctx.home);
    let engine = runtime.engine()?;
    let mut policies = BoardPolicies::load(engine, &ctx.home, &board, &[PolicyKind::Diagnostics]);
    let running = running_counts(&mut store)?;
    let mut findings: Vec<Finding> = Vec::new();
    // A policy that cannot even load is one error finding naming it.
    for failure in policies.failures.iter().filter(|f| f.kind == PolicyKind::Diagnostics) {
        findings.push(error_finding(None, &failure.reference, &failure.error));
    }
    for id in &ids {
        for policy in policies.of_kind(PolicyKind::Diagnostics) {
            let ctx_record = context::build(&board, &mut store, id, &running, policy.config_json(), now)?;
            match policy.diagnose(engine, &ctx_record) {
                Ok(found) => findings.extend(found),
                Err(error) => findings.push(error_finding(Some(id), policy.name(), &error)),
            }
        }
    }
    for crate::store::Quarantined { key, failures, since, last_error } in store.quarantined_policies()? {
        let reference = key.split(':').skip(1).collect::<Vec<_>>();
        let reference = reference[..reference.len().saturating_sub(1)].join(":");
        findings.push(Finding {
            task_id: None,
            policy: reference.clone(),
            rule: "plugin-quarantined".into(),
            severity: "error".into(),
            title: format!("plugin {reference} is quarantined on this board"),
            detail: format!(
                "it failed {failures} ticks in a row (since {}); last error: {}. The dispatcher applies its safe default until it is reinstalled or board.toml is edited.",
                render::time(since),
                last_error.unwrap_or_default()
            ),
            actions: vec![format!("kanban plugin install PATH --name {reference}"), "kanban board check".into()],
        });
    }
    store.replace_findings(&ids, task.is_none(), &findings, now)?;
    let floor = min_severity.as_deref().and_then(|s| SEVERITIES.iter().position(|x| *x == s)).unwrap_or(0);
    let shown: Vec<Finding> = findings
        .into_iter()
        .filter(|f| SEVERITIES.iter().position(|x| *x == f.severity).unwrap_or(0) >= floor)
        .collect();
    if json {
        return render::json(&DiagnosticsJson { board: &board.slug, findings: &shown });
    }
    if shown.is_empty() {
        println!("no findings ({} card(s) checked)", ids.len());
    }
    for f in &shown {
        println!(
            "{:<8} {:<10} {} [{}]",
            f.severity,
            f.task_id.as_deref().unwrap_or("board"),
            f.title,
            f.rule
        );
        if !f.detail.is_empty() {
            println!("         {}", f.detail);
        }
        for a in &f.actions {
            println!("         -> {a}");
        }
    }
    Ok(())
}

fn error_finding(task_id: Option<&String>, policy: &str, error: &PolicyError) -> Finding {
    Finding {
        task_id: task_id.cloned(),
        policy: policy.to_string(),
        rule: "policy-error".into(),
        severity: "error".into(),
        title: format!("diagnostics plugin {policy} failed"),
        detail: format!("{policy} {error}"),
        actions: vec!["kanban plugin verify".into(), "kanban board check".into()],
    }
}

fn running_counts(store: &mut Store) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut running = BTreeMap::new();
    for card in store.running_cards()? {
        if let Some(a) = card.task.assignee {
            *running.entry(a).or_default() += 1;
        }
    }
    Ok(running)
}

#[derive(Serialize)]
struct Decomposed {
    task_id: String,
    policy: String,
    /// Child ids when split; empty when left in triage.
    children: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    left: Option<String>,
}

pub fn decompose(ctx: &Context, id: Option<String>, all: bool, json: bool) -> anyhow::Result<()> {
    let (board, mut store) = ctx.open()?;
    let now = clock::now();
    let ids: Vec<String> = match (id, all) {
        (Some(id), false) => vec![id],
        (None, true) => store
            .list_tasks(&TaskFilter { status: Some("triage".into()), ..TaskFilter::default() })?
            .into_iter()
            .map(|t| t.id)
            .collect(),
        _ => return Err(UsageError("give a card id or --all (not both)".into()).into()),
    };
    let spec: PolicySpec = board
        .config
        .policies
        .iter()
        .find(|p| p.kind == PolicyKind::Decompose)
        .cloned()
        .unwrap_or_else(|| builtins::default_spec(PolicyKind::Decompose));
    let index = board.config.policies.iter().position(|p| p.kind == PolicyKind::Decompose);
    let mut runtime = PolicyRuntime::new(&ctx.home);
    let engine = runtime.engine()?;
    let mut policy = LoadedPolicy::load(engine, &ctx.home, index, &spec)
        .with_context(|| format!("cannot load the decomposition policy {}", spec.plugin))?;
    let running = running_counts(&mut store)?;
    let mut results = Vec::new();
    let mut failed = 0;
    for id in &ids {
        let task = store.get_task(id)?;
        if task.status != "triage" {
            eprintln!("kanban: card {id} is {}; only triage cards are decomposed", task.status);
            failed += 1;
            continue;
        }
        let record = context::build(&board, &mut store, id, &running, policy.config_json(), now)?;
        let outcome = match policy.decompose(engine, &record) {
            Ok(DecomposePlan::Children(children)) => {
                match store.apply_decomposition(id, &children, policy.name(), now) {
                    Ok(child_ids) => Ok(child_ids),
                    Err(e) => Err(e.to_string()),
                }
            }
            Ok(DecomposePlan::Leave(reason)) => Err(reason),
            Err(error) => {
                store.record_event(Some(id), "policy_error", serde_json::json!({"policy": policy.name(), "error_kind": error.kind(), "error": error.to_string()}), now)?;
                Err(format!("{} {error}", policy.name()))
            }
        };
        match outcome {
            Ok(children) => {
                if !json {
                    println!("Decomposed {id} into {} card(s): {}", children.len(), children.join(" "));
                }
                results.push(Decomposed {
                    task_id: id.clone(),
                    policy: policy.name().into(),
                    children,
                    left: None,
                });
            }
            Err(reason) => {
                store.record_decompose_left(id, &reason, policy.name(), now)?;
                if !json {
                    println!("Left {id} in triage: {reason}");
                }
                results.push(Decomposed {
                    task_id: id.clone(),
                    policy: policy.name().into(),
                    children: vec![],
                    left: Some(reason),
                });
            }
        }
    }
    if json {
        render::json(&results)?;
    }
    if failed > 0 {
        return Err(super::BulkFailure { failed, total: ids.len() }.into());
    }
    Ok(())
}
