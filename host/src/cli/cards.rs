//! Card commands: create, inspect and move cards through their lifecycle.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::render;
use super::{BulkFailure, Command, Context, CreateArgs, ListArgs, SortKey, UsageError};
use crate::board::Board;
use crate::clock;
use crate::store::{Attachment, Comment, EditTask, Event, ListSort, NewTask, Run, Store, Task, TaskFilter};

/// Largest file `kanban attach` accepts.
pub const MAX_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;

/// Inside a worker (`KANBAN_TASK` set) the CLI acts for that one card: mutating another card is refused,
/// and `KANBAN_RUN_ID` ties complete/block/heartbeat to the worker's own attempt.
pub(super) struct WorkerScope {
    task: String,
    run: Option<i64>,
}

impl WorkerScope {
    fn from_env() -> Option<WorkerScope> {
        let task = std::env::var("KANBAN_TASK").ok().filter(|t| !t.is_empty())?;
        let run = std::env::var("KANBAN_RUN_ID").ok().and_then(|r| r.parse().ok());
        Some(WorkerScope { task, run })
    }

    fn check(&self, ids: &[&str]) -> anyhow::Result<()> {
        match ids.iter().find(|id| **id != self.task) {
            Some(other) => bail!("worker is scoped to task {}; refusing to modify {other}", self.task),
            None => Ok(()),
        }
    }

    /// Refuse a board-wide change (`gc`, `decompose --all`): it would touch cards other than the worker's.
    fn refuse_board_wide(&self, what: &str) -> anyhow::Result<()> {
        bail!("worker is scoped to task {}; refusing `{what}`, which changes other cards", self.task)
    }

    /// The one check of every command line against the worker's scope, run by [`super::run`] before any
    /// command group's handler.
    pub(super) fn check_command(command: &Command) -> anyhow::Result<()> {
        let Some(scope) = WorkerScope::from_env() else { return Ok(()) };
        match command {
            Command::Gc { .. } => scope.refuse_board_wide("gc"),
            Command::Decompose { id: None, .. } => scope.refuse_board_wide("decompose --all"),
            Command::Decompose { id: Some(id), .. } => scope.check(&[id.as_str()]),
            other => scope.check(&mutated_ids(other)),
        }
    }

    /// The run id a terminal call from this worker must match.
    fn attempt(&self, id: &str) -> Option<i64> {
        if id == self.task { self.run } else { None }
    }
}

/// Ids of the cards a card command would change (none for reads and for `create`).
fn mutated_ids(command: &Command) -> Vec<&str> {
    match command {
        Command::Assign { id, .. }
        | Command::Comment { id, .. }
        | Command::Block { id, .. }
        | Command::Schedule { id, .. }
        | Command::Reclaim { id, .. }
        | Command::Reassign { id, .. }
        | Command::Attach { id, .. }
        | Command::Heartbeat { id, .. } => vec![id.as_str()],
        Command::Edit(args) => vec![args.id.as_str()],
        Command::Link { parent, child } | Command::Unlink { parent, child } => {
            vec![parent.as_str(), child.as_str()]
        }
        Command::Unblock { ids, .. } | Command::Complete { ids, .. } | Command::Archive { ids, .. } => {
            ids.iter().map(String::as_str).collect()
        }
        Command::Promote { ids, dry_run: false, .. } => ids.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<()> {
    let now = clock::now();
    // The command line was checked against the worker's scope in `super::run`.
    let scope = WorkerScope::from_env();
    let attempt = |id: &str| scope.as_ref().and_then(|s| s.attempt(id));
    // The worker protocol must get through even if board.toml was broken after the worker started.
    let report = matches!(
        command,
        Command::Complete { .. }
            | Command::Block { .. }
            | Command::Heartbeat { .. }
            | Command::Comment { .. }
    );
    let (board, mut store) = if report { ctx.open_for_report()? } else { ctx.open()? };
    let store = &mut store;
    match command {
        Command::Log { id, tail } => {
            store.require_task(&id)?;
            print_log(&board, &id, tail)
        }
        Command::Context { id } => {
            let task = store.get_task(&id)?;
            print!("{}", crate::worker::context::render(&board, store, &task)?);
            Ok(())
        }
        Command::Board(_)
        | Command::Plugin(_)
        | Command::Diagnostics { .. }
        | Command::Decompose { .. }
        | Command::Gc { .. }
        | Command::Dispatch { .. }
        | Command::Daemon { .. }
        | Command::Demo
        | Command::Supervise { .. } => unreachable!("routed elsewhere by cli::run"),
        Command::Create(args) => create(&board, store, *args, now),
        Command::List(args) => list(store, args),
        Command::Show { id, json } => show(&board, store, &id, json),
        Command::Assign { id, profile } => {
            let task = store.assign(&id, Some(&profile), now)?;
            warn_unknown_profile(&board, task.assignee.as_deref());
            println!("Assigned {} to {}", task.id, task.assignee.as_deref().unwrap_or("none"));
            Ok(())
        }
        Command::Comment { id, text, author } => {
            let author = author.or_else(default_author);
            let comment = store.add_comment(&id, author.as_deref(), &text, now)?;
            println!("Commented on {} (comment {})", id, comment.id);
            Ok(())
        }
        Command::Link { parent, child } => {
            store.link(&parent, &child, now)?;
            println!("Linked {parent} -> {child}");
            Ok(())
        }
        Command::Unlink { parent, child } => {
            store.unlink(&parent, &child, now)?;
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
            let task = store.edit(&args.id, &edit, now)?;
            println!("Edited {}", task.id);
            Ok(())
        }
        Command::Block { id, reason, kind } => {
            // A worker's or operator's block is sticky until `unblock`; a transient one may recover by itself.
            let sticky = !matches!(kind, Some(super::BlockKind::Transient));
            let task =
                store.block(&id, reason.as_deref(), kind.map(|k| k.as_str()), sticky, attempt(&id), now)?;
            println!("Blocked {}{}", task.id, if sticky { "" } else { " (transient)" });
            Ok(())
        }
        Command::Unblock { ids, reason } => bulk(&ids, |id| {
            let task = store.unblock(id, reason.as_deref(), now)?;
            println!("Unblocked {} ({})", task.id, task.status);
            Ok(())
        }),
        Command::Schedule { id, reason } => {
            let task = store.schedule(&id, reason.as_deref(), now)?;
            println!("Scheduled {}", task.id);
            Ok(())
        }
        Command::Promote { ids, force, dry_run, json } => promote(store, &ids, force, dry_run, json, now),
        Command::Complete { ids, result, summary } => bulk(&ids, |id| {
            let task = store.complete(id, result.as_deref(), summary.as_deref(), attempt(id), now)?;
            report_cleanup(&board, &task);
            println!("Completed {}", task.id);
            Ok(())
        }),
        Command::Archive { ids, rm } => bulk(&ids, |id| {
            if rm {
                let attachments = store.delete_archived(id, now)?;
                remove_attachment_files(&board, id, &attachments);
                println!("Deleted {id}");
            } else {
                let task = store.archive(id, now)?;
                report_cleanup(&board, &task);
                println!("Archived {id}");
            }
            Ok(())
        }),
        Command::Reclaim { id, reason } => {
            stop_worker(store, &id)?;
            let task = store.reclaim(&id, reason.as_deref(), now)?;
            println!("Reclaimed {} ({})", task.id, task.status);
            Ok(())
        }
        Command::Reassign { id, profile, reclaim } => {
            if reclaim {
                stop_worker(store, &id)?;
            }
            let task = store.reassign(&id, &profile, reclaim, now)?;
            warn_unknown_profile(&board, task.assignee.as_deref());
            println!("Reassigned {} to {}", task.id, task.assignee.as_deref().unwrap_or("none"));
            Ok(())
        }
        Command::Attach { id, path, name } => attach(&board, store, &id, &path, name.as_deref(), now),
        Command::Attachments { id, json } => {
            store.require_task(&id)?;
            let atts = store.attachments(&id)?;
            if json {
                let rows: Vec<AttachmentJson> = atts.iter().map(|a| AttachmentJson::new(&board, a)).collect();
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
            let att = store.remove_attachment(attachment_id, scope.as_ref().map(|s| s.task.as_str()), now)?;
            remove_attachment_files(&board, &att.task_id.clone(), &[att]);
            println!("Removed attachment {attachment_id}");
            Ok(())
        }
        Command::Events { id, since, follow, json } => events(store, id.as_deref(), since, follow, json),
        Command::Runs { id, json } => {
            store.require_task(&id)?;
            let runs = store.runs(&id)?;
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
        Command::Stats { json } => {
            let stats = store.stats()?;
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
            let task = store.heartbeat(
                &id,
                note.as_deref(),
                board.config.dispatch.claim_ttl_seconds,
                attempt(&id),
                now,
            )?;
            println!("Heartbeat {} (claim until {})", task.id, task.claim_expires.unwrap_or(now));
            Ok(())
        }
    }
}

/// Who a comment or card is from when not given: the worker's card inside a worker, else the OS user.
fn default_author() -> Option<String> {
    if let Ok(task) = std::env::var("KANBAN_TASK")
        && !task.is_empty()
    {
        return Some(format!("worker:{task}"));
    }
    std::env::var("USER").ok().filter(|u| !u.is_empty())
}

fn warn_unknown_profile(board: &Board, assignee: Option<&str>) {
    if let Some(name) = assignee
        && !board.config.profiles.contains_key(name)
    {
        let known = board.config.profile_names().join(", ");
        eprintln!(
            "kanban: warning: board '{}' has no profile '{name}' (defined: {}); the card will not be dispatched",
            board.slug,
            if known.is_empty() { "none" } else { &known }
        );
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

fn create(board: &Board, store: &mut Store, args: CreateArgs, now: i64) -> anyhow::Result<()> {
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
    let (workspace_kind, mut workspace_path) = match &args.workspace {
        Some(spec) => (spec.kind.clone(), spec.path.clone()),
        None => ("scratch".to_string(), None),
    };
    // The board's default workdir is inherited by dir and worktree cards only, never by scratch.
    if workspace_path.is_none() && workspace_kind != "scratch" {
        workspace_path = board.config.board.default_workdir.clone();
    }
    if workspace_kind == "dir" && workspace_path.is_none() {
        return Err(UsageError(
            "--workspace dir needs a path (dir:/abs/path) or a board default_workdir".into(),
        )
        .into());
    }
    let new = NewTask {
        title: args.title,
        body,
        assignee: args.assignee.filter(|a| !a.trim().is_empty() && a != "none"),
        priority: args.priority,
        parents: args.parents,
        triage: args.triage,
        tenant: args.tenant,
        workspace_kind,
        workspace_path: workspace_path.map(|p| p.display().to_string()),
        branch_name: args.branch,
        idempotency_key: args.idempotency_key,
        max_runtime_seconds: args.max_runtime,
        max_retries: args.max_retries,
        goal_mode: args.goal,
        goal_max_turns: args.goal_max_turns,
        initial_status: args.initial_status.map(|s| match s {
            super::InitialStatus::Running => "running".to_string(),
            super::InitialStatus::Blocked => "blocked".to_string(),
        }),
        created_by: default_author(),
    };
    let (task, created) = store.create_task(&new, now)?;
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
    let tasks = store.list_tasks(&filter)?;
    if args.json {
        return render::json(&tasks);
    }
    print!("{}", render::task_table(&tasks));
    Ok(())
}

#[derive(Serialize)]
struct AttachmentJson<'a> {
    #[serde(flatten)]
    attachment: &'a Attachment,
    path: PathBuf,
}

impl<'a> AttachmentJson<'a> {
    fn new(board: &Board, attachment: &'a Attachment) -> Self {
        AttachmentJson {
            path: attachment_path(board, &attachment.task_id, &attachment.stored_name),
            attachment,
        }
    }
}

#[derive(Serialize)]
struct ShowJson<'a> {
    task: &'a Task,
    parents: &'a [Task],
    children: &'a [Task],
    comments: &'a [Comment],
    events: &'a [Event],
    runs: &'a [Run],
    attachments: Vec<AttachmentJson<'a>>,
    /// From the latest `kanban diagnostics` run (stored; `show` never runs a policy itself).
    findings: &'a [crate::policy::Finding],
}

fn show(board: &Board, store: &mut Store, id: &str, json: bool) -> anyhow::Result<()> {
    let crate::store::TaskDetail { task, parents, children, comments, events, runs, attachments: atts } =
        store.task_detail(id)?;
    let findings = store.findings(id)?;
    if json {
        return render::json(&ShowJson {
            task: &task,
            parents: &parents,
            children: &children,
            comments: &comments,
            events: &events,
            runs: &runs,
            attachments: atts.iter().map(|a| AttachmentJson::new(board, a)).collect(),
            findings: &findings,
        });
    }
    let mut out = String::new();
    use std::fmt::Write as _;
    let t = &task;
    let _ = writeln!(out, "{}  {}", t.id, t.title);
    let _ = writeln!(
        out,
        "  status     {}{}",
        t.status,
        match (&t.block_reason, t.status.as_str()) {
            (Some(r), "blocked") => format!(" ({r}{})", if t.block_sticky { ", sticky" } else { "" }),
            _ => String::new(),
        }
    );
    let _ = writeln!(out, "  assignee   {}", render::opt(&t.assignee));
    let _ = writeln!(out, "  priority   {}", t.priority);
    let _ = writeln!(
        out,
        "  workspace  {}{}",
        t.workspace_kind,
        t.workspace_path.as_deref().map(|p| format!(":{p}")).unwrap_or_default()
    );
    let _ = writeln!(out, "  created    {} by {}", render::time(t.created_at), render::opt(&t.created_by));
    if t.consecutive_failures > 0 {
        let _ = writeln!(
            out,
            "  failures   {} (last: {})",
            t.consecutive_failures,
            render::opt(&t.last_failure_error)
        );
    }
    if let Some(result) = &t.result {
        let _ = writeln!(out, "  result     {result}");
    }
    if !t.body.trim().is_empty() {
        let _ = writeln!(out, "\n{}\n", t.body.trim_end());
    }
    for p in &parents {
        let _ = writeln!(out, "  parent     {}", render::task_line(p));
    }
    for c in &children {
        let _ = writeln!(out, "  child      {}", render::task_line(c));
    }
    for c in &comments {
        let _ = writeln!(
            out,
            "  comment    {} {}: {}",
            render::time(c.created_at),
            render::opt(&c.author),
            c.body
        );
    }
    for r in &runs {
        let _ = writeln!(out, "  {}", render::run_line(r));
    }
    for a in &atts {
        let _ = writeln!(out, "  attachment {}", render::attachment_line(a));
    }
    for f in &findings {
        let _ = writeln!(out, "  finding    {} {}: {} [{}]", f.severity, f.policy, f.title, f.rule);
    }
    let _ = writeln!(out, "  events:");
    for e in &events {
        let _ = writeln!(out, "    {}", render::event_line(e));
    }
    print!("{out}");
    Ok(())
}

#[derive(Serialize)]
struct PromoteJson {
    promoted: Vec<String>,
    failed: Vec<PromoteFailure>,
    dry_run: bool,
}

#[derive(Serialize)]
struct PromoteFailure {
    id: String,
    error: String,
}

fn promote(
    store: &mut Store,
    ids: &[String],
    force: bool,
    dry_run: bool,
    json: bool,
    now: i64,
) -> anyhow::Result<()> {
    let mut report = PromoteJson { promoted: Vec::new(), failed: Vec::new(), dry_run };
    for id in ids {
        match store.promote(id, force, dry_run, now) {
            Ok(outcome) => {
                if !json {
                    let verb = if dry_run { "Would promote" } else { "Promoted" };
                    println!("{verb} {} ({} -> {})", outcome.id, outcome.from, outcome.to);
                }
                report.promoted.push(outcome.id);
            }
            Err(err) => {
                if ids.len() > 1 || json {
                    eprintln!("kanban: {err}");
                } else {
                    return Err(err.into());
                }
                report.failed.push(PromoteFailure { id: id.clone(), error: err.to_string() });
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
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn attachment_path(board: &Board, task_id: &str, stored_name: &str) -> PathBuf {
    board.attachments_dir().join(task_id).join(stored_name)
}

/// Reduce a user-supplied name to one safe file name: the last path component, with anything but letters,
/// digits, `.`, `-`, `_` and spaces replaced. `..`, `.` and empty names are refused.
pub fn safe_attachment_name(name: &str) -> Result<String, UsageError> {
    let last = name.rsplit(['/', '\\']).find(|part| !part.is_empty()).unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') { c } else { '_' })
        .take(200)
        .collect();
    let cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        return Err(UsageError(format!("'{name}' is not a usable attachment name")));
    }
    Ok(cleaned)
}

/// `report.txt`, then `report-1.txt`, `report-2.txt`, ...
fn suffixed(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}-{n}.{ext}"),
        _ => format!("{name}-{n}"),
    }
}

fn attach(
    board: &Board,
    store: &mut Store,
    id: &str,
    path: &Path,
    name: Option<&str>,
    now: i64,
) -> anyhow::Result<()> {
    store.require_task(id)?;
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    if meta.len() > MAX_ATTACHMENT_BYTES {
        bail!(
            "{} is {} bytes; attachments are capped at 25 MiB ({MAX_ATTACHMENT_BYTES} bytes)",
            path.display(),
            meta.len()
        );
    }
    let wanted = name
        .map(str::to_string)
        .unwrap_or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let safe = safe_attachment_name(&wanted)?;
    let dir = board.attachments_dir().join(id);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // create_new claims a free name atomically, so two concurrent attaches never overwrite each other.
    let (stored_name, mut file) = (0..10_000)
        .find_map(|n| {
            let candidate = suffixed(&safe, n);
            match fs::OpenOptions::new().write(true).create_new(true).open(dir.join(&candidate)) {
                Ok(f) => Some(Ok((candidate, f))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(e)),
            }
        })
        .ok_or_else(|| anyhow::anyhow!("no free name for {safe} in {}", dir.display()))?
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let target = dir.join(&stored_name);
    let copied = (|| -> anyhow::Result<(u64, String)> {
        let source = fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        // Read at most one byte past the cap: the file may have grown since it was measured.
        let mut limited = source.take(MAX_ATTACHMENT_BYTES + 1);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = limited.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > MAX_ATTACHMENT_BYTES {
                bail!("{} grew past the 25 MiB attachment cap while being copied", path.display());
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
        }
        file.sync_all()?;
        Ok((size, hex::encode(hasher.finalize())))
    })();
    let recorded = copied.and_then(|(size, sha)| {
        Ok(store.add_attachment(id, &wanted, &stored_name, size as i64, &sha, now)?)
    });
    match recorded {
        Ok(att) => {
            println!("Attached {} to {id} as {} ({} bytes)", path.display(), att.stored_name, att.size);
            Ok(())
        }
        Err(err) => {
            let _ = fs::remove_file(&target); // created above by create_new: ours to remove
            Err(err)
        }
    }
}

/// Remove attachment files after their rows are gone. Only names inside the card's own attachments folder
/// are touched; a name that would leave it (it cannot, by construction) is skipped with a warning.
fn remove_attachment_files(board: &Board, task_id: &str, attachments: &[Attachment]) {
    let dir = board.attachments_dir().join(task_id);
    for att in attachments {
        if safe_attachment_name(&att.stored_name).ok().as_deref() != Some(att.stored_name.as_str()) {
            tracing::warn!(name = %att.stored_name, "not removing an attachment with an unsafe stored name");
            continue;
        }
        let path = dir.join(&att.stored_name);
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("kanban: warning: cannot remove {}: {e}", path.display());
        }
    }
    let _ = fs::remove_dir(&dir); // only succeeds when empty
}

/// Before a manual reclaim: stop the card's worker, as the dispatcher does, so the requeued card can never
/// run twice at once. (A worker on another host is left alone; its stale attempt is refused when it
/// reports.)
fn stop_worker(store: &mut Store, id: &str) -> anyhow::Result<()> {
    if let Some(card) = store.running_cards()?.into_iter().find(|c| c.task.id == id)
        && crate::dispatch::terminate_worker(&card)
    {
        eprintln!("kanban: stopped the worker of {id}");
    }
    Ok(())
}

/// After a card completed or was archived: clean its workspace and say what happened to it.
fn report_cleanup(board: &Board, task: &Task) {
    match crate::workspace::cleanup(board, task) {
        crate::workspace::Cleanup::Deleted(path) => {
            tracing::info!(path = %path.display(), "workspace removed")
        }
        crate::workspace::Cleanup::Kept { path, reason } if task.workspace_kind != "dir" => {
            eprintln!("kanban: kept workspace {}: {reason}", path.display())
        }
        _ => {}
    }
}

fn print_log(board: &Board, id: &str, tail: Option<u64>) -> anyhow::Result<()> {
    use std::io::{Seek, SeekFrom};
    let path = crate::worker::log_path(board, id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_cannot_escape() {
        assert_eq!(safe_attachment_name("../../evil.txt").unwrap(), "evil.txt");
        assert_eq!(safe_attachment_name("/etc/passwd").unwrap(), "passwd");
        assert_eq!(safe_attachment_name("a\\b\\c.md").unwrap(), "c.md");
        assert_eq!(safe_attachment_name("we$ird name?.txt").unwrap(), "we_ird name_.txt");
        for bad in ["..", ".", "", "/", "../.."] {
            assert!(safe_attachment_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn collision_suffixes() {
        assert_eq!(suffixed("report.txt", 0), "report.txt");
        assert_eq!(suffixed("report.txt", 1), "report-1.txt");
        assert_eq!(suffixed("README", 2), "README-2");
        assert_eq!(suffixed(".env", 1), ".env-1");
    }
}
