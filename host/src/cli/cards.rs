//! Card commands: create, inspect and move cards through their lifecycle. Parse, call the commands layer
//! (`crate::ops`), render; nothing else.

use std::fs;
use std::io::{Read, Write};

use anyhow::Context as _;

use super::render;
use super::scope::WorkerScope;
use super::{BulkFailure, Command, CreateArgs, Invocation, ListArgs, SortKey};
use crate::board::Board;
use crate::lifecycle::Action;
use crate::model::{Status, WorkspaceKind};
use crate::ops::cards::{self, Acted, By};
use crate::ops::{self, Desk};
use crate::store::{EditTask, ListSort, NewTask, Store, TaskFilter};
use crate::views::{AttachmentView, CardPage};
use crate::workspace::Cleanup;

pub fn run(inv: &Invocation, command: Command) -> anyhow::Result<()> {
    // The command line was checked against the worker's scope in `super::run`.
    let scope = WorkerScope::from_env();
    let by = |id: &str| match scope.as_ref().and_then(|s| s.attempt(id)) {
        Some(run) => By::Worker { run },
        None => By::Operator,
    };
    // The worker protocol must get through even if board.toml was broken after the worker started.
    let report = matches!(
        command,
        Command::Complete { .. }
            | Command::Block { .. }
            | Command::Heartbeat { .. }
            | Command::Comment { .. }
            | Command::Review { .. }
            | Command::RequestChanges { .. }
    );
    let (board, mut store) = if report { inv.open_for_report()? } else { inv.open()? };
    let host_id = inv.home.host_id()?;
    let mut desk = Desk::new(&board, &mut store, &host_id);
    let desk = &mut desk;
    match command {
        Command::Log { id, tail } => {
            desk.store.require_task(&id)?;
            print_log(&board, &id, tail)
        }
        Command::Context { id } => {
            desk.store.require_task(&id)?;
            print!("{}", crate::worker::context::render(&board, desk.store, &id, false)?);
            Ok(())
        }
        Command::Create(args) => create(desk, *args),
        Command::List(args) => list(desk.store, args),
        Command::Show { id, json } => show(&board, desk.store, &id, json),
        Command::Assign { id, profile } => {
            let action = Action::Assign { assignee: Some(profile), source: "cli".into() };
            let task = cards::act(desk, &id, By::Operator, action)?.task;
            warn_unknown_profile(&board, task.assignee.as_deref());
            println!("Assigned {} to {}", task.id, task.assignee.as_deref().unwrap_or("none"));
            Ok(())
        }
        Command::Comment { id, text, author } => {
            let author = author.or_else(default_author);
            let comment = cards::comment(desk, &id, author.as_deref(), &text)?;
            println!("Commented on {} (comment {})", id, comment.id);
            Ok(())
        }
        Command::Link { parent, child } => {
            cards::link(desk, &parent, &child)?;
            println!("Linked {parent} -> {child}");
            Ok(())
        }
        Command::Unlink { parent, child } => {
            cards::unlink(desk, &parent, &child)?;
            println!("Unlinked {parent} -> {child}");
            Ok(())
        }
        Command::Edit(args) => {
            let edit = EditTask {
                title: args.title,
                body: args.body,
                priority: args.priority,
                reset_failures: args.reset_failures,
            };
            let task = cards::edit(desk, &args.id, &edit)?;
            println!("Edited {}", task.id);
            Ok(())
        }
        Command::Block { id, reason, kind } => {
            let acted = cards::block(desk, &id, by(&id), reason.as_deref(), kind.map(|k| k.as_str()))?;
            let transient = !acted.task.block_sticky && acted.task.status == Status::Blocked;
            say(&acted, &format!("Blocked {}{}", acted.task.id, if transient { " (transient)" } else { "" }));
            Ok(())
        }
        Command::Unblock { ids, reason } => bulk(&ids, |id| {
            let acted = cards::act(desk, id, By::Operator, Action::Unblock { reason: reason.clone() })?;
            println!("Unblocked {} ({})", acted.task.id, acted.task.status);
            Ok(())
        }),
        Command::Schedule { id, reason } => {
            let acted = cards::act(desk, &id, By::Operator, Action::Schedule { reason })?;
            println!("Scheduled {}", acted.task.id);
            Ok(())
        }
        Command::Promote { ids, force, dry_run, json } => promote(desk, &ids, force, dry_run, json),
        Command::Complete { ids, result, summary } => bulk(&ids, |id| {
            let action = Action::Complete { result: result.clone(), summary: summary.clone() };
            let acted = cards::act(desk, id, by(id), action)?;
            say(&acted, &format!("Completed {}", acted.task.id));
            Ok(())
        }),
        Command::Archive { ids, rm } => bulk(&ids, |id| {
            if rm {
                cards::delete(desk, id)?;
                println!("Deleted {id}");
            } else {
                let acted = cards::act(desk, id, By::Operator, Action::Archive)?;
                say(&acted, &format!("Archived {id}"));
            }
            Ok(())
        }),
        Command::Reclaim { id, reason, run } => {
            let acted = cards::reclaim(desk, &id, run, reason.as_deref())?;
            say(&acted, &format!("Reclaimed {} ({})", acted.task.id, acted.task.status));
            Ok(())
        }
        Command::Reassign { id, profile, reclaim } => {
            let acted = cards::reassign(desk, &id, profile, reclaim)?;
            warn_unknown_profile(&board, acted.task.assignee.as_deref());
            say(
                &acted,
                &format!(
                    "Reassigned {} to {}",
                    acted.task.id,
                    acted.task.assignee.as_deref().unwrap_or("none")
                ),
            );
            Ok(())
        }
        Command::Review { id, reviewer, summary } => {
            let acted = cards::act(desk, &id, by(&id), Action::Review { reviewer, summary })?;
            let reviewer = acted.task.reviewer.clone().or_else(|| board.config.review.reviewer.clone());
            warn_unknown_profile(&board, reviewer.as_deref());
            let who = reviewer.map(|r| format!("reviewer {r}")).unwrap_or_else(|| "a person".into());
            say(&acted, &format!("Sent {} to review ({who})", acted.task.id));
            Ok(())
        }
        Command::RequestChanges { id, reason } => {
            let acted = cards::act(desk, &id, by(&id), Action::RequestChanges { reason })?;
            say(&acted, &format!("Sent {} back for changes ({})", acted.task.id, acted.task.status));
            Ok(())
        }
        Command::Attach { id, path, name } => {
            let att = ops::attachments::attach_file(desk, &id, &path, name.as_deref())?;
            println!("Attached {} to {id} as {} ({} bytes)", path.display(), att.stored_name, att.size);
            Ok(())
        }
        Command::Attachments { id, json } => {
            desk.store.require_task(&id)?;
            let atts = desk.store.attachments(&id)?;
            if json {
                let rows: Vec<AttachmentView> = atts.iter().map(|a| AttachmentView::new(&board, a)).collect();
                return render::json(&rows);
            }
            if atts.is_empty() {
                println!("no attachments");
            }
            for att in &atts {
                println!("{}", render::attachment_line(att));
            }
            Ok(())
        }
        Command::AttachRm { attachment_id } => {
            ops::attachments::remove(desk, attachment_id, scope.as_ref().map(|s| s.task.as_str()))?;
            println!("Removed attachment {attachment_id}");
            Ok(())
        }
        Command::Events { id, since, follow, json } => events(desk.store, id.as_deref(), since, follow, json),
        Command::Runs { id, json } => {
            desk.store.require_task(&id)?;
            let runs = desk.store.runs(&id)?;
            if json {
                return render::json(&runs);
            }
            if runs.is_empty() {
                println!("no runs");
            }
            for run in &runs {
                println!("{}", render::run_line(run));
            }
            Ok(())
        }
        Command::Hosts { json } => {
            let hosts = desk.store.hosts()?;
            if json {
                return render::json(&hosts);
            }
            if hosts.is_empty() {
                println!("no host has ticked this board");
            }
            let now = crate::clock::now();
            for h in &hosts {
                let cap = h.max_workers.map(|m| format!("/{m}")).unwrap_or_default();
                let labels = if h.labels.is_empty() { "-".to_string() } else { h.labels.join(",") };
                let this = if h.id == host_id { "  (this host)" } else { "" };
                println!(
                    "{}  {:<16} seen {} ago  running {}{cap}  labels {labels}{this}",
                    h.id,
                    h.hostname,
                    crate::clock::span(now - h.last_seen),
                    h.running,
                );
            }
            Ok(())
        }
        Command::Stats { json } => {
            let stats = desk.store.stats()?;
            if json {
                return render::json(&stats);
            }
            println!("{} cards", stats.total);
            for (status, n) in &stats.by_status {
                println!("  {status:<10} {n}");
            }
            println!("by assignee (not archived):");
            for (who, n) in &stats.by_assignee {
                println!("  {who:<12} {n}");
            }
            println!("{} runs, {} events", stats.runs, stats.events);
            Ok(())
        }
        Command::Heartbeat { id, note } => {
            let task = cards::heartbeat(desk, &id, by(&id), note.as_deref())?;
            println!("Heartbeat {} (claim until {})", task.id, task.claim_expires.unwrap_or_default());
            Ok(())
        }
        other => unreachable!("{other:?} is routed by cli::run"),
    }
}

/// Print a command's result line, with what happened to the card's worker and workspace.
fn say(acted: &Acted, line: &str) {
    if acted.stopped_worker {
        eprintln!("kanban: stopped the worker of {}", acted.task.id);
    }
    if let Some(why) = &acted.pending {
        eprintln!(
            "kanban: warning: card {} stays running until its worker is gone: {why}; the dispatcher finishes the stop",
            acted.task.id
        );
    }
    if let Cleanup::Kept { path, reason } = &acted.cleanup
        && acted.task.workspace_kind != WorkspaceKind::Dir
    {
        eprintln!("kanban: kept workspace {}: {reason}", path.display());
    }
    println!("{line}");
}

/// Who a comment or card is from when not given: the worker's card inside a worker, else the OS user.
pub(super) fn default_author() -> Option<String> {
    if let Ok(task) = std::env::var("KANBAN_TASK")
        && !task.is_empty()
    {
        return Some(format!("worker:{task}"));
    }
    std::env::var("USER").ok().filter(|u| !u.is_empty())
}

pub(super) fn warn_unknown_profile(board: &Board, assignee: Option<&str>) {
    if let Some(warning) = board.unknown_profile(assignee) {
        eprintln!("kanban: warning: {warning}; the card will not be dispatched");
    }
}

/// Apply `op` to every id, report each failure on stderr, and fail at the end if any did. With one id the
/// error itself is returned, so a single-card command reads like any other.
fn bulk(ids: &[String], mut op: impl FnMut(&str) -> anyhow::Result<()>) -> anyhow::Result<()> {
    if let [id] = ids {
        return op(id);
    }
    let mut failed = 0;
    for id in ids {
        if let Err(err) = op(id) {
            eprintln!("kanban: {err:#}");
            failed += 1;
        }
    }
    if failed == 0 { Ok(()) } else { Err(BulkFailure { failed, total: ids.len() }.into()) }
}

fn create(desk: &mut Desk, args: CreateArgs) -> anyhow::Result<()> {
    let board = desk.board;
    let body = match &args.body_file {
        Some(path) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read the body from stdin")?;
            text
        }
        Some(path) => {
            fs::read_to_string(path).with_context(|| format!("cannot read body file {}", path.display()))?
        }
        None => args.body.clone().unwrap_or_default(),
    };
    let new = NewTask {
        title: args.title,
        body,
        assignee: args.card.assignee,
        priority: args.card.priority,
        parents: args.parents,
        triage: args.triage,
        tenant: args.card.tenant,
        workspace_kind: args.card.workspace.as_ref().map(|w| w.kind),
        workspace_path: args.card.workspace.and_then(|w| w.path).map(|p| p.display().to_string()),
        branch_name: args.branch,
        idempotency_key: args.idempotency_key,
        max_runtime_seconds: args.card.max_runtime,
        max_retries: args.card.max_retries,
        goal_mode: args.card.goal,
        goal_max_turns: args.card.goal_max_turns,
        initial_status: args.initial_status.map(super::InitialStatus::status),
        created_by: default_author(),
    };
    let (task, created) = cards::create(desk, new)?;
    if created {
        warn_unknown_profile(board, task.assignee.as_deref());
        if task.goal_mode && board.config.goal.judge.is_none() {
            eprintln!(
                "kanban: warning: board '{}' has no [goal] judge; goal card {} will be blocked after its first turn",
                board.slug, task.id
            );
        }
    }
    if args.json {
        return render::json(&task);
    }
    let verb = if created { "Created" } else { "Exists" };
    println!("{verb} {} ({}, assignee={})", task.id, task.status, task.assignee.as_deref().unwrap_or("none"));
    Ok(())
}

fn list(store: &mut Store, args: ListArgs) -> anyhow::Result<()> {
    let filter = TaskFilter {
        include_archived: args.archived,
        status: args.status,
        assignee: args.assignee,
        tenant: args.tenant,
        sort: match args.sort {
            SortKey::Created => ListSort::Created,
            SortKey::Priority => ListSort::Priority,
            SortKey::Status => ListSort::Status,
            SortKey::Assignee => ListSort::Assignee,
            SortKey::Title => ListSort::Title,
            SortKey::Updated => ListSort::Updated,
        },
    };
    // Rows stream straight to the writer (the same output as printing the whole list at once): a big board
    // is never held in memory.
    let out = std::io::BufWriter::with_capacity(1 << 18, std::io::stdout().lock());
    if args.json {
        use serde::ser::{SerializeSeq, Serializer as _};
        let mut ser = serde_json::Serializer::with_formatter(out, serde_json::ser::PrettyFormatter::new());
        let mut seq = ser.serialize_seq(None)?;
        let json = |e: serde_json::Error| crate::store::StoreError::Io {
            context: "cannot write the listing".into(),
            error: e.into(),
        };
        store.for_each_task(&filter, |task| seq.serialize_element(&task).map_err(json))?;
        seq.end()?;
        let mut out = ser.into_inner();
        writeln!(out)?;
        out.flush()?;
        return Ok(());
    }
    let mut out = out;
    let mut count = 0usize;
    let io = |e: std::io::Error| crate::store::StoreError::Io {
        context: "cannot write the listing".into(),
        error: e,
    };
    store.for_each_task(&filter, |task| {
        if count == 0 {
            out.write_all(render::task_header().as_bytes()).map_err(io)?;
        }
        writeln!(out, "{}", render::task_line(&task)).map_err(io)?;
        count += 1;
        Ok(())
    })?;
    if count == 0 {
        out.write_all(b"no cards\n")?;
    }
    out.flush()?;
    Ok(())
}

fn show(board: &Board, store: &mut Store, id: &str, json: bool) -> anyhow::Result<()> {
    let page = CardPage::read(store, id)?;
    if json {
        return render::json(&page.view(board));
    }
    print!("{}", render::show(&page.detail, &page.findings));
    Ok(())
}

#[derive(serde::Serialize)]
struct PromoteJson {
    promoted: Vec<String>,
    failed: Vec<PromoteFailure>,
    dry_run: bool,
}

#[derive(serde::Serialize)]
struct PromoteFailure {
    id: String,
    error: String,
}

fn promote(desk: &mut Desk, ids: &[String], force: bool, dry_run: bool, json: bool) -> anyhow::Result<()> {
    let mut report = PromoteJson { promoted: Vec::new(), failed: Vec::new(), dry_run };
    for id in ids {
        match cards::promote(desk, id, force, dry_run) {
            Ok((from, to)) => {
                if !json {
                    let verb = if dry_run { "Would promote" } else { "Promoted" };
                    println!("{verb} {id} ({from} -> {to})");
                }
                report.promoted.push(id.clone());
            }
            Err(err) => {
                if ids.len() > 1 || json {
                    eprintln!("kanban: {err:#}");
                } else {
                    return Err(err);
                }
                report.failed.push(PromoteFailure { id: id.clone(), error: format!("{err:#}") });
            }
        }
    }
    if json {
        render::json(&report)?;
    }
    match (report.failed.len(), ids.len()) {
        (0, _) => Ok(()),
        // One card: its error was printed above; fail without a "1 of 1 failed" summary.
        (_, 1) => Err(BulkFailure { failed: 1, total: 1 }.into()),
        (failed, total) => Err(BulkFailure { failed, total }.into()),
    }
}

fn events(
    store: &mut Store,
    id: Option<&str>,
    since: Option<i64>,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    // A card deleted with `archive --rm` keeps its events in the log: accept its id if it has any.
    if let Some(id) = id
        && store.require_task(id).is_err()
        && store.events(Some(id), None)?.is_empty()
    {
        store.require_task(id)?;
    }
    let mut last = since.unwrap_or(0);
    let mut out = std::io::stdout().lock();
    loop {
        for event in store.events(id, Some(last))? {
            if json {
                serde_json::to_writer(&mut out, &event)?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", render::event_line(&event))?;
            }
            last = event.id;
        }
        if !follow {
            return Ok(());
        }
        out.flush()?;
        if store.wait_for_events(std::time::Duration::from_millis(250))? {
            tracing::debug!("new events pushed");
        }
    }
}

fn print_log(board: &Board, id: &str, tail: Option<u64>) -> anyhow::Result<()> {
    use std::io::{Seek, SeekFrom};
    let path = board.card_files(id).log;
    let mut file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("kanban: no log yet for {id} ({})", path.display());
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if let Some(tail) = tail {
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(tail)))?;
    }
    std::io::copy(&mut file, &mut std::io::stdout().lock())?;
    Ok(())
}
