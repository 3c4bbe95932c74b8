//! Store operations for policy results: applying a decomposition, and keeping the latest findings.

use rusqlite::params;
use serde_json::json;

use super::model::Task;
use super::tasks::{append_event, insert_child, insert_link, load};
use super::{Result, Store, StoreError};
use crate::policy::{ChildSpec, Finding};

impl Store {
    /// Split a triage card into children in one transaction: each child is created (inheriting the
    /// root's workspace kind and path unless it overrides them; an override keeps the root's path only
    /// when the kinds match), sibling dependencies are linked, and the root moves to `todo`, waiting on
    /// every child. Returns the children's ids in order.
    pub fn apply_decomposition(
        &mut self,
        root_id: &str,
        children: &[ChildSpec],
        policy: &str,
        now: i64,
    ) -> Result<Vec<String>> {
        self.write(|tx| {
            let root: Task = load(tx, root_id)?;
            if root.status != "triage" {
                return Err(StoreError::Refused(format!("card {root_id} is {}; only triage cards are decomposed", root.status)));
            }
            let mut ids: Vec<String> = Vec::with_capacity(children.len());
            for (i, child) in children.iter().enumerate() {
                let (kind, path) = match &child.workspace {
                    None => (root.workspace_kind.clone(), root.workspace_path.clone()),
                    Some((kind, Some(path))) => (kind.clone(), Some(path.clone())),
                    Some((kind, None)) if *kind == root.workspace_kind => (kind.clone(), root.workspace_path.clone()),
                    Some((kind, None)) => (kind.clone(), None),
                };
                if kind == "dir" && path.is_none() {
                    return Err(StoreError::Invalid(format!("child {i} asks for a dir workspace without a path")));
                }
                let status = if child.depends_on.is_empty() { "ready" } else { "todo" };
                let id = insert_child(tx, &root, child, &kind, path.as_deref(), status, now)?;
                for dep in &child.depends_on {
                    insert_link(tx, &ids[*dep], &id, now)?;
                }
                append_event(
                    tx,
                    Some(&id),
                    None,
                    "created",
                    json!({"status": status, "assignee": child.assignee, "decomposed_from": root_id, "policy": policy}),
                    now,
                )?;
                ids.push(id);
            }
            for id in &ids {
                insert_link(tx, id, root_id, now)?;
            }
            let n = tx.execute(
                "UPDATE tasks SET status = 'todo', updated_at = ?1 WHERE id = ?2 AND status = 'triage'",
                params![now, root_id],
            )?;
            if n != 1 {
                return Err(StoreError::Refused(format!("card {root_id} changed concurrently; try again")));
            }
            append_event(tx, Some(root_id), None, "decomposed", json!({"children": ids, "policy": policy}), now)?;
            Ok(ids)
        })
    }

    /// Record why a triage card was left as it is.
    pub fn record_decompose_left(
        &mut self,
        root_id: &str,
        reason: &str,
        policy: &str,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            load(tx, root_id)?;
            append_event(
                tx,
                Some(root_id),
                None,
                "decompose_left",
                json!({"reason": reason, "policy": policy}),
                now,
            )?;
            Ok(())
        })
    }

    /// Replace the stored findings of the given cards (and board-level ones when `board_level`).
    pub fn replace_findings(
        &mut self,
        task_ids: &[String],
        board_level: bool,
        findings: &[Finding],
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            for id in task_ids {
                tx.execute("DELETE FROM task_findings WHERE task_id = ?1", [id])?;
            }
            if board_level {
                tx.execute("DELETE FROM task_findings WHERE task_id IS NULL", [])?;
            }
            for f in findings {
                tx.execute(
                    "INSERT INTO task_findings (task_id, policy, rule, severity, title, detail, actions, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![f.task_id, f.policy, f.rule, f.severity, f.title, f.detail, json!(f.actions).to_string(), now],
                )?;
            }
            Ok(())
        })
    }

    /// The stored findings of a card, from its latest diagnostics run.
    pub fn findings(&mut self, task_id: &str) -> Result<Vec<Finding>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT task_id, policy, rule, severity, title, detail, actions FROM task_findings WHERE task_id = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([task_id], |r| {
                    let actions: String = r.get(6)?;
                    Ok(Finding {
                        task_id: r.get(0)?,
                        policy: r.get(1)?,
                        rule: r.get(2)?,
                        severity: r.get(3)?,
                        title: r.get(4)?,
                        detail: r.get(5)?,
                        actions: serde_json::from_str(&actions).unwrap_or_default(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }
}
