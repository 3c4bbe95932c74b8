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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewTask;

    fn child(title: &str, workspace: Option<(&str, Option<&str>)>, depends_on: Vec<usize>) -> ChildSpec {
        ChildSpec {
            title: title.into(),
            body: String::new(),
            assignee: None,
            priority: 0,
            workspace: workspace.map(|(k, p)| (k.to_string(), p.map(str::to_string))),
            depends_on,
        }
    }

    #[test]
    fn children_inherit_the_workspace_and_an_override_keeps_the_path_only_when_kinds_match() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("kanban.db")).unwrap();
        let root = NewTask {
            title: "root".into(),
            triage: true,
            workspace_kind: "dir".into(),
            workspace_path: Some("/srv/app".into()),
            assignee: Some("coder".into()),
            ..NewTask::default()
        };
        let (root, _) = store.create_task(&root, 1).unwrap();
        let children = [
            child("inherits", None, vec![]),
            child("same kind, no path", Some(("dir", None)), vec![0]),
            child("own path", Some(("dir", Some("/srv/other"))), vec![]),
            child("other kind", Some(("worktree", None)), vec![]),
            child("scratch", Some(("scratch", None)), vec![]),
        ];
        let ids = store.apply_decomposition(&root.id, &children, "test", 2).unwrap();
        let got: Vec<(String, Option<String>, String)> = ids
            .iter()
            .map(|id| {
                let t = store.get_task(id).unwrap();
                (t.workspace_kind, t.workspace_path, t.status)
            })
            .collect();
        let want = [
            ("dir", Some("/srv/app"), "ready"),
            ("dir", Some("/srv/app"), "todo"),
            ("dir", Some("/srv/other"), "ready"),
            ("worktree", None, "ready"),
            ("scratch", None, "ready"),
        ];
        for (got, want) in got.iter().zip(want) {
            assert_eq!((got.0.as_str(), got.1.as_deref(), got.2.as_str()), want);
        }
        assert_eq!(
            store.get_task(&ids[0]).unwrap().assignee.as_deref(),
            Some("coder"),
            "inherits the assignee"
        );
        assert_eq!(store.parents(&ids[1]).unwrap()[0].id, ids[0], "sibling dependency");
        let root_after = store.get_task(&root.id).unwrap();
        assert_eq!(root_after.status, "todo");
        assert_eq!(store.parents(&root.id).unwrap().len(), 5, "the root waits on every child");
        // Not triage any more: a second decomposition is refused and changes nothing.
        assert!(store.apply_decomposition(&root.id, &children, "test", 3).is_err());
        assert_eq!(store.parents(&root.id).unwrap().len(), 5);
        assert_eq!(store.list_tasks(&crate::store::TaskFilter::default()).unwrap().len(), 6);
    }

    #[test]
    fn a_dir_child_without_any_path_refuses_the_whole_plan() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("kanban.db")).unwrap();
        let (root, _) = store
            .create_task(&NewTask { title: "root".into(), triage: true, ..NewTask::default() }, 1)
            .unwrap();
        let children = [child("fine", None, vec![]), child("no path", Some(("dir", None)), vec![])];
        assert!(store.apply_decomposition(&root.id, &children, "test", 2).is_err());
        assert_eq!(store.get_task(&root.id).unwrap().status, "triage");
        assert_eq!(
            store.list_tasks(&crate::store::TaskFilter::default()).unwrap().len(),
            1,
            "nothing half-written"
        );
    }
}
