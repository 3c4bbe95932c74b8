//! Text and JSON rendering for people and scripts. JSON shapes are the contract in `docs/cli.md`.

use std::io::Write;

use serde::Serialize;

use crate::model::{Attachment, Event, Finding, Run, Status, Task};
use crate::store::TaskDetail;

/// Print one JSON document on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    // Buffered: stdout alone is line-buffered, a write per line of a big document.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// UTC `YYYY-MM-DD HH:MM:SS` for a unix timestamp.
pub fn time(ts: i64) -> String {
    crate::clock::utc(ts)
}

pub fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

pub fn task_line(task: &Task) -> String {
    format!(
        "{}  {:<9}  {:>4}  {:<12}  {}",
        task.id,
        task.status,
        task.priority,
        task.assignee.as_deref().unwrap_or("-"),
        task.title
    )
}

pub fn task_header() -> String {
    format!("{:<10}  {:<9}  {:>4}  {:<12}  {}\n", "ID", "STATUS", "PRI", "ASSIGNEE", "TITLE")
}

/// `kanban show` for people.
pub fn show(detail: &TaskDetail, findings: &[Finding]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let t = &detail.task;
    let _ = writeln!(out, "{}  {}", t.id, t.title);
    let block = match (&t.block_reason, t.status) {
        (Some(r), Status::Blocked) => format!(" ({r}{})", if t.block_sticky { ", sticky" } else { "" }),
        _ => String::new(),
    };
    let _ = writeln!(out, "  status     {}{block}", t.status);
    let _ = writeln!(out, "  assignee   {}", opt(&t.assignee));
    if let Some(reviewer) = &t.reviewer {
        let _ = writeln!(out, "  reviewer   {reviewer}");
    }
    let _ = writeln!(out, "  priority   {}", t.priority);
    let _ = writeln!(
        out,
        "  workspace  {}{}",
        t.workspace_kind,
        t.workspace_path.as_deref().map(|p| format!(":{p}")).unwrap_or_default()
    );
    let _ = writeln!(out, "  created    {} by {}", time(t.created_at), opt(&t.created_by));
    if t.consecutive_failures > 0 {
        let _ =
            writeln!(out, "  failures   {} (last: {})", t.consecutive_failures, opt(&t.last_failure_error));
    }
    if let Some(result) = &t.result {
        let _ = writeln!(out, "  result     {result}");
    }
    if !t.body.trim().is_empty() {
        let _ = writeln!(out, "\n{}\n", t.body.trim_end());
    }
    for p in &detail.parents {
        let _ = writeln!(out, "  parent     {}", task_line(p));
    }
    for c in &detail.children {
        let _ = writeln!(out, "  child      {}", task_line(c));
    }
    for c in &detail.comments {
        let _ = writeln!(out, "  comment    {} {}: {}", time(c.created_at), opt(&c.author), c.body);
    }
    for r in &detail.runs {
        let _ = writeln!(out, "  {}", run_line(r));
    }
    for a in &detail.attachments {
        let _ = writeln!(out, "  attachment {}", attachment_line(a));
    }
    for f in findings {
        let _ = writeln!(out, "  finding    {} {}: {} [{}]", f.severity, f.policy, f.title, f.rule);
    }
    let _ = writeln!(out, "  events:");
    for e in &detail.events {
        let _ = writeln!(out, "    {}", event_line(e));
    }
    out
}

pub fn event_line(event: &Event) -> String {
    let payload = match &event.payload {
        serde_json::Value::Object(map) if map.is_empty() => String::new(),
        other => format!(" {other}"),
    };
    format!(
        "#{:<6} {}  {:<10}  {}{}",
        event.id,
        time(event.created_at),
        event.task_id.as_deref().unwrap_or("-"),
        event.kind,
        payload
    )
}

pub fn run_line(run: &Run) -> String {
    format!(
        "run {:<5} {}  {:<8}  {:<18}  profile={}  exit={}{}",
        run.id,
        time(run.started_at),
        run.status,
        run.outcome.map_or("-", |o| o.as_str()),
        opt(&run.profile),
        run.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        run.error.as_deref().map(|e| format!("  error={e}")).unwrap_or_default(),
    )
}

pub fn attachment_line(att: &Attachment) -> String {
    format!(
        "{:<5} {:<32} {:>10} bytes  sha256:{}",
        att.id,
        att.stored_name,
        att.size,
        &att.sha256[..att.sha256.len().min(16)]
    )
}
