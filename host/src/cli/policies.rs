//! Policy commands: the plugin store, diagnostics, decomposition, and board check's config validation.
//! These are the only card-level commands that build a wasmtime engine.

use anyhow::Context as _;
use serde::Serialize;

use super::{Invocation, NewArgs, PluginCommand, PluginLang, PolicyCommand, UsageError, render};
use crate::board::Board;
use crate::clock;
use crate::model::{Finding, Severity, Status};
use crate::ops::{self, Desk};
use crate::policy::plugins::{self, Installed};
use crate::policy::{Loaded, PolicyError, PolicyRuntime};
use crate::store::TaskFilter;

/// `kanban plugin new`: write the project, list its files and the commands to run next.
pub fn plugin_new(args: NewArgs) -> anyhow::Result<()> {
    use crate::ops::scaffold::{self, Lang};
    let lang = match args.lang {
        PluginLang::Rust => Lang::Rust,
        PluginLang::Python => Lang::Python,
        PluginLang::Js => Lang::Js,
    };
    let usage = |err: scaffold::ScaffoldError| -> anyhow::Error {
        if err.is_usage() { UsageError(err.to_string()).into() } else { err.into() }
    };
    let project = scaffold::project(&args.name, args.kind, lang).map_err(usage)?;
    let dir = args.dir.unwrap_or_else(|| std::path::PathBuf::from(&args.name));
    scaffold::write(&project, &dir).map_err(|err| match err.is_usage() {
        true => usage(err),
        false => anyhow::Error::new(err).context(format!("cannot write the project to {}", dir.display())),
    })?;
    println!("Wrote {} to {}:", project.describe(), dir.display());
    let mut vendored = 0;
    for file in &project.files {
        if file.path.starts_with("vendor/kanban-policy/") {
            vendored += 1;
        } else {
            println!("  {}", file.path);
        }
    }
    if vendored > 0 {
        println!("  vendor/kanban-policy/ (the Rust guest SDK, {vendored} files)");
    }
    println!("Next:");
    let mut commands = vec![(format!("cd {}", dir.display()), "")];
    commands.extend(project.next_commands());
    // Comments line up after the short commands; a long one gets its comment on the line above.
    let width = commands.iter().map(|(command, _)| command.len()).filter(|&n| n <= 50).max().unwrap_or(0);
    for (command, why) in commands {
        match (why, command.len() <= width) {
            ("", _) => println!("  {command}"),
            (_, true) => println!("  {command:<width$}  # {why}"),
            (_, false) => println!("  # {why}\n  {command}"),
        }
    }
    Ok(())
}

pub fn plugin(inv: &Invocation, command: PluginCommand) -> anyhow::Result<()> {
    let home = &inv.home;
    match command {
        PluginCommand::New(args) => plugin_new(args),
        PluginCommand::Context { id } => {
            let (board, mut store) = inv.open()?;
            let host_id = home.host_id()?;
            let mut desk = Desk::new(&board, &mut store, &host_id);
            let context = ops::policies::context_of(&mut desk, &id, clock::now())?;
            render::json(&context)
        }
        PluginCommand::Run { plugin, card, context, config, json } => {
            let config: serde_json::Value = serde_json::from_str(&config)
                .map_err(|e| UsageError(format!("--config is not JSON: {e}")))?;
            let ctx = match (card, context) {
                (Some(id), _) => {
                    let (board, mut store) = inv.open()?;
                    let host_id = home.host_id()?;
                    let mut desk = Desk::new(&board, &mut store, &host_id);
                    ops::policies::context_of(&mut desk, &id, clock::now())?
                }
                (None, Some(file)) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    serde_json::from_str(&text)
                        .map_err(|e| UsageError(format!("{} is not a context record: {e}", file.display())))?
                }
                (None, None) => unreachable!("clap requires --card or --context"),
            };
            let run = ops::policies::run_plugin(home, &plugin, ctx, &config)?;
            if json {
                return render::json(&run);
            }
            println!("{} {} (sha256:{})", run.kind, run.plugin, &run.sha256[..16]);
            println!("decision: {}", run.decision);
            println!("fuel:     {} of {}", run.fuel_used, run.fuel_limit);
            println!("time:     {:.2} ms (instantiation included)", run.micros as f64 / 1000.0);
            println!(
                "memory:   {:.1} MiB (largest linear memory)",
                run.peak_memory as f64 / (1 << 20) as f64
            );
            Ok(())
        }
        PluginCommand::Install { path, name } => {
            let mut runtime = PolicyRuntime::new(home);
            let engine = runtime.engine()?;
            let p = plugins::install(engine, home, &path, name.as_deref(), clock::now())?;
            println!(
                "Installed {} ({} plugin {}, built against kanban:policy@{}) sha256:{}",
                p.name, p.kind, p.version, p.wit_version, p.sha256
            );
            let compiled = engine.compiled(&p.sha256);
            let artifact = compiled
                .artifact_bytes
                .map(|b| format!("; its compiled artifact is {:.1} MB in the cache", b as f64 / 1e6))
                .unwrap_or_default();
            match compiled.compile_time {
                Some(t) => println!("compiled in {:.1} s{artifact}", t.as_secs_f64()),
                None => println!("already compiled{artifact}"),
            }
            Ok(())
        }
        PluginCommand::List { json } => {
            let list = plugins::list(home)?;
            if json {
                return render::json(&plugins::with_builtins(list));
            }
            let none_installed = list.is_empty();
            for p in plugins::with_builtins(list) {
                println!(
                    "{:<28} {:<14} {:<9} {:<8} sha256:{}",
                    p.name,
                    p.kind,
                    p.source,
                    p.version,
                    &p.sha256[..16]
                );
            }
            if none_installed {
                println!("no plugins installed");
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

/// `kanban policy ...`.
pub fn policy(inv: &Invocation, command: PolicyCommand) -> anyhow::Result<()> {
    let PolicyCommand::Replay { plugin, kind, since, at, config, all, contexts, json } = command;
    let config: serde_json::Value =
        serde_json::from_str(&config).map_err(|e| UsageError(format!("--config is not JSON: {e}")))?;
    let (board, mut store) = inv.open()?;
    let host_id = inv.home.host_id()?;
    let mut desk = Desk::new(&board, &mut store, &host_id);
    let now = clock::now();
    let (from, at) = (now - since, now - at.unwrap_or(0));
    let listing = ops::replay::Listing { all, contexts };
    let kind = kind.as_deref().and_then(crate::model::PolicyKind::parse);
    let report = ops::replay::replay(
        &mut desk,
        &inv.home,
        &ops::replay::Request { plugin: &plugin, config: &config, since: from, at, expected: kind, listing },
    )?;
    if json {
        return render::json(&report);
    }
    let window = match (report.since, report.at) {
        (_, Some(at)) => format!("card(s) of board {} as of {}", report.board, render::time(at)),
        (since, None) => format!(
            "decision(s) of board {} since {}",
            report.board,
            since.map(render::time).unwrap_or_default()
        ),
    };
    println!(
        "Replayed {} {} {window} with {} (sha256:{})",
        report.decisions,
        report.kind,
        report.plugin,
        &report.sha256[..16]
    );
    let counts = |m: &std::collections::BTreeMap<String, usize>| {
        m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    };
    println!("the board:     {}", counts(&report.actual));
    println!("the candidate: {}", counts(&report.verdicts));
    if !report.inexact.is_empty() {
        println!("rebuilt with today's value (may differ): {}", counts(&report.inexact));
    }
    for c in &report.listed {
        let what = |v: &serde_json::Value| match v.get("decision").and_then(|d| d.as_str()) {
            Some(d) => match v.get("reason").and_then(|r| r.as_str()) {
                Some(reason) => format!("{d} ({reason})"),
                None => d.to_string(),
            },
            None => match (v.get("error"), v.get("findings")) {
                (Some(e), _) => format!("error: {}", e.as_str().unwrap_or_default()),
                (None, Some(found)) => {
                    let rules: Vec<&str> = found
                        .as_array()
                        .map(|a| a.iter().filter_map(|f| f["rule"].as_str()).collect())
                        .unwrap_or_default();
                    if rules.is_empty() { "no findings".into() } else { rules.join(", ") }
                }
                (None, None) => format!("assign {}", v.get("assignee").unwrap_or(&serde_json::Value::Null)),
            },
        };
        println!(
            "{:<12} {} {:<11} board: {}; candidate: {}",
            c.verdict,
            render::time(c.at),
            c.task_id,
            what(&c.actual),
            what(&c.replayed)
        );
    }
    Ok(())
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
pub fn check_policies(inv: &Invocation, board: &Board) -> anyhow::Result<usize> {
    let mut runtime = PolicyRuntime::new(&inv.home);
    let engine = runtime.engine()?;
    let now = clock::now();
    for (i, spec) in board.config.policies.iter().enumerate() {
        let fail = |e: PolicyError| crate::board::ConfigError {
            path: board.toml_path(),
            message: format!("policies[{i}] ({}): {e}", spec.plugin),
        };
        let mut policy = Loaded::load(engine, &inv.home, Some(i), spec).map_err(fail)?;
        policy.validate_config(engine, now).map_err(fail)?;
    }
    Ok(board.config.policies.len())
}

#[derive(Serialize)]
struct DiagnosticsJson<'a> {
    board: &'a str,
    findings: &'a [Finding],
}

pub fn diagnostics(
    inv: &Invocation,
    task: Option<String>,
    min_severity: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let (board, mut store) = inv.open()?;
    let host_id = inv.home.host_id()?;
    let mut desk = Desk::new(&board, &mut store, &host_id);
    let mut runtime = PolicyRuntime::new(&inv.home);
    let findings = ops::policies::diagnose(&mut desk, &inv.home, &mut runtime, task.as_deref())?;
    let checked = match &task {
        Some(_) => 1,
        None => desk.store.list_tasks(&TaskFilter::default())?.len(),
    };
    let floor = min_severity.as_deref().and_then(Severity::parse).unwrap_or(Severity::Info);
    let shown: Vec<Finding> = findings.into_iter().filter(|f| f.severity >= floor).collect();
    if json {
        return render::json(&DiagnosticsJson { board: &board.slug, findings: &shown });
    }
    if shown.is_empty() {
        println!("no findings ({checked} card(s) checked)");
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

pub fn decompose(inv: &Invocation, id: Option<String>, all: bool, json: bool) -> anyhow::Result<()> {
    let (board, mut store) = inv.open()?;
    let host_id = inv.home.host_id()?;
    let mut desk = Desk::new(&board, &mut store, &host_id);
    let ids: Vec<String> = match (id, all) {
        (Some(id), false) => vec![id],
        (None, true) => desk
            .store
            .list_tasks(&TaskFilter { status: Some(Status::Triage), ..TaskFilter::default() })?
            .into_iter()
            .map(|t| t.id)
            .collect(),
        _ => return Err(UsageError("give a card id or --all (not both)".into()).into()),
    };
    let mut runtime = PolicyRuntime::new(&inv.home);
    let outcomes = ops::policies::decompose(&mut desk, &inv.home, &mut runtime, &ids)?;
    let mut results = Vec::new();
    let mut failed = 0;
    for outcome in outcomes {
        match outcome {
            Err(message) => {
                eprintln!("kanban: {message}");
                failed += 1;
            }
            Ok(result) => {
                if !json {
                    match &result.left {
                        None => println!(
                            "Decomposed {} into {} card(s): {}",
                            result.task_id,
                            result.children.len(),
                            result.children.join(" ")
                        ),
                        Some(reason) => println!("Left {} in triage: {reason}", result.task_id),
                    }
                }
                results.push(result);
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
