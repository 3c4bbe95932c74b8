//! The worker's context file (`KANBAN_CONTEXT`, also `kanban context ID`): the card's body, attachments,
//! prior attempts, parent results and comments, each capped so a long history cannot blow up a prompt.

use std::fmt::Write;

use crate::board::Board;
use crate::store::{Store, StoreError, Task};

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

pub fn render(board: &Board, store: &mut Store, task: &Task) -> Result<String, StoreError> {
    let mut out = String::new();
    let _ = writeln!(out, "# {} ({})\n", task.title, task.id);
    let _ =
        writeln!(out, "Board: {}. Status: {}. Workspace: {}.", board.slug, task.status, task.workspace_kind);
    let _ = writeln!(
        out,
        "Report back with `kanban heartbeat {id}` while busy and end with exactly one of `kanban complete {id} --result ...` or `kanban block {id} REASON`.\n",
        id = task.id
    );
    if !task.body.trim().is_empty() {
        let _ = writeln!(out, "## Body\n\n{}\n", capped(task.body.trim()));
    }
    let attachments = store.attachments(&task.id)?;
    if !attachments.is_empty() {
        let _ = writeln!(out, "## Attachments\n");
        for a in &attachments {
            let path = board.attachments_dir().join(&task.id).join(&a.stored_name);
            let _ = writeln!(out, "- {} ({} bytes): {}", a.stored_name, a.size, path.display());
        }
        out.push('\n');
    }
    let parents = store.parents(&task.id)?;
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
    let runs = store.runs(&task.id)?;
    let prior: Vec<_> = runs.iter().filter(|r| r.status == "ended").collect();
    if !prior.is_empty() {
        let _ = writeln!(out, "## Prior attempts\n");
        for r in prior.iter().rev().take(LIST_CAP).rev() {
            let _ = writeln!(
                out,
                "- run {}: {}{}{}",
                r.id,
                r.outcome.as_deref().unwrap_or("?"),
                r.error.as_deref().map(|e| format!(", error: {}", capped(e))).unwrap_or_default(),
                r.summary.as_deref().map(|s| format!(", summary: {}", capped(s))).unwrap_or_default(),
            );
        }
        out.push('\n');
    }
    let comments = store.comments(&task.id)?;
    if !comments.is_empty() {
        let _ = writeln!(out, "## Comments\n");
        for c in comments.iter().rev().take(LIST_CAP).rev() {
            let _ = writeln!(out, "- {}: {}", c.author.as_deref().unwrap_or("?"), capped(&c.body));
        }
    }
    Ok(out)
}
