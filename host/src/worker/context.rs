//! The worker's context file (`KANBAN_CONTEXT`, also `kanban context ID`): the card's body, attachments,
//! prior attempts, parent results and comments, each capped so a long history cannot blow up a prompt. A
//! reviewer's context adds the implementer's result; an implementer sent back from review gets the
//! reviewer's request.

use std::fmt::Write;

use crate::board::Board;
use crate::model::{RunStatus, Status};
use crate::store::{Store, StoreError, TaskDetail};

/// Longest single item (a body, a comment, a result) kept in the context.
pub const ITEM_CAP: usize = 4000;
/// Most prior attempts and comments listed (the newest are kept).
pub const LIST_CAP: usize = 10;

fn capped(text: &str) -> String {
    if text.len() <= ITEM_CAP {
        return text.to_string();
    }
    let mut end = ITEM_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} more bytes cut]", &text[..end], text.len() - end)
}

/// The context of card `id`, read in one snapshot. `review` is true for a reviewer's run.
pub fn render(board: &Board, store: &mut Store, id: &str, review: bool) -> Result<String, StoreError> {
    let TaskDetail { task, parents, comments, events, runs, attachments, .. } = store.task_detail(id)?;
    let mut out = String::new();
    let _ = writeln!(out, "# {} ({})\n", task.title, task.id);
    let _ =
        writeln!(out, "Board: {}. Status: {}. Workspace: {}.", board.slug, task.status, task.workspace_kind);
    if review {
        let _ = writeln!(
            out,
            "You are reviewing this card. Approve with `kanban complete {id} --result ...`, or send it back with \
             `kanban request-changes {id} REASON`.\n",
            id = task.id
        );
        if let Some(result) = &task.result {
            let _ = writeln!(out, "## The implementer's result\n\n{}\n", capped(result));
        }
    } else {
        let _ = writeln!(
            out,
            "Report back with `kanban heartbeat {id}` while busy and end with exactly one of `kanban complete {id} --result ...`, `kanban block {id} REASON` or `kanban review {id} --summary ...`.\n",
            id = task.id
        );
        let changes = events.iter().rev().find(|e| e.kind == "changes_requested");
        if let Some(e) = changes
            && task.status != Status::Review
        {
            let reason = e.payload["reason"].as_str().unwrap_or_default();
            let _ = writeln!(out, "## Changes requested by review\n\n{}\n", capped(reason));
        }
    }
    if !task.body.trim().is_empty() {
        let _ = writeln!(out, "## Body\n\n{}\n", capped(task.body.trim()));
    }
    if !attachments.is_empty() {
        let _ = writeln!(out, "## Attachments\n");
        for a in &attachments {
            let path = board.card_files(&task.id).attachments.join(&a.stored_name);
            let _ = writeln!(out, "- {} ({} bytes): {}", a.stored_name, a.size, path.display());
        }
        out.push('\n');
    }
    if !parents.is_empty() {
        let _ = writeln!(out, "## Parent results\n");
        for p in &parents {
            let _ = writeln!(
                out,
                "### {} ({}, {})\n\n{}\n",
                p.title,
                p.id,
                p.status,
                capped(p.result.as_deref().unwrap_or("(no result)"))
            );
        }
    }
    let prior: Vec<_> = runs.iter().filter(|r| r.status == RunStatus::Ended).collect();
    if !prior.is_empty() {
        let _ = writeln!(out, "## Prior attempts\n");
        for r in prior.iter().rev().take(LIST_CAP).rev() {
            let _ = writeln!(
                out,
                "- run {}: {}{}{}",
                r.id,
                r.outcome.map_or("?", |o| o.as_str()),
                r.error.as_deref().map(|e| format!(", error: {}", capped(e))).unwrap_or_default(),
                r.summary.as_deref().map(|s| format!(", summary: {}", capped(s))).unwrap_or_default(),
            );
        }
        out.push('\n');
    }
    if !comments.is_empty() {
        let _ = writeln!(out, "## Comments\n");
        for c in comments.iter().rev().take(LIST_CAP).rev() {
            let _ = writeln!(out, "- {}: {}", c.author.as_deref().unwrap_or("?"), capped(&c.body));
        }
    }
    Ok(out)
}
