//! Store operations for policies: each policy's health on the board (failing ticks in a row, quarantine),
//! the latest diagnostics findings, and applying a decomposition.

use rusqlite::params;
use serde_json::json;

use super::cards::{append_event, insert_link, load};
use super::db::Tx;
use super::{Result, Store, StoreError};
use crate::model::EventKind;
use crate::model::{ChildSpec, Finding, PolicyKey, Status, Task, WorkspaceKind};

// Statuses in SQL, spelled by the vocabulary.
const TODO: &str = Status::Todo.sql();
const TRIAGE: &str = Status::Triage.sql();

/// A policy quarantined on a board.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub key: PolicyKey,
    pub failures: i64,
    pub since: i64,
    pub last_error: Option<String>,
    /// The board.toml it was quarantined under; an edited board no longer holds it.
    pub config_hash: String,
}

/// One policy's result for one tick: `None` when every call succeeded, else the first error.
#[derive(Debug, Clone)]
pub struct PolicyTick {
    pub key: PolicyKey,
    pub error: Option<String>,
}

impl Store {
    /// Is the policy under `key` quarantined on this board? A quarantine set under another board.toml (the
    /// board was edited since) no longer holds; with `lift` it is also deleted (a dry run passes false and
    /// changes nothing).
    pub fn policy_quarantined(
        &mut self,
        key: &PolicyKey,
        config_hash: &str,
        lift: bool,
    ) -> Result<Option<i64>> {
        let id = key.id();
        let read = |tx: &Tx| -> Result<Option<(i64, Option<i64>, String)>> {
            tx.query_opt(
                "SELECT failures, quarantined_at, config_hash FROM policy_health WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        };
        let row = self.read(read)?;
        match row {
            Some((failures, Some(_), hash)) if hash == config_hash => Ok(Some(failures)),
            Some((_, Some(_), _)) if lift => self.write(|tx| {
                tx.execute(
                    "DELETE FROM policy_health WHERE id = ?1 AND config_hash <> ?2",
                    params![id, config_hash],
                )?;
                Ok(None)
            }),
            _ => Ok(None),
        }
    }

    /// Record one tick's result for each policy asked, in one transaction. After `limit` failing ticks in a
    /// row a policy is quarantined, with a `policy_quarantined` event. Returns the keys quarantined now.
    pub fn record_policy_ticks(
        &mut self,
        ticks: &[PolicyTick],
        limit: i64,
        config_hash: &str,
        now: i64,
    ) -> Result<Vec<PolicyKey>> {
        if ticks.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let mut quarantined = Vec::new();
            for PolicyTick { key, error } in ticks {
                let id = key.id();
                let Some(error) = error else {
                    tx.execute("DELETE FROM policy_health WHERE id = ?1 AND quarantined_at IS NULL", params![id])?;
                    continue;
                };
                tx.execute(
                    "INSERT INTO policy_health (id, failures, config_hash, last_error, updated_at, entry, reference, sha256)
                     VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(id) DO UPDATE SET failures = policy_health.failures + 1, config_hash = ?2, last_error = ?3, updated_at = ?4",
                    params![id, config_hash, error, now, key.entry.map(|e| e as i64), key.reference, key.sha256],
                )?;
                let failures: i64 =
                    tx.query_row("SELECT failures FROM policy_health WHERE id = ?1", params![id], |r| r.get(0))?;
                if failures >= limit {
                    let n = tx.execute(
                        "UPDATE policy_health SET quarantined_at = ?1 WHERE id = ?2 AND quarantined_at IS NULL",
                        params![now, id],
                    )?;
                    if n == 1 {
                        append_event(
                            tx,
                            None,
                            None,
                            EventKind::PolicyQuarantined,
                            json!({"policy": key.reference, "key": id, "failures": failures, "last_error": error}),
                            now,
                        )?;
                        quarantined.push(key.clone());
                    }
                }
            }
            Ok(quarantined)
        })
    }

    /// Quarantined policies of this board.
    pub fn quarantined_policies(&mut self) -> Result<Vec<Quarantined>> {
        self.read(|tx| {
            tx.query_map(
                "SELECT entry, reference, sha256, failures, quarantined_at, last_error, config_hash FROM policy_health
                 WHERE quarantined_at IS NOT NULL ORDER BY id",
                &[],
                |r| {
                    Ok(Quarantined {
                        key: PolicyKey {
                            entry: r.get::<Option<i64>>(0)?.map(|e| e as usize),
                            reference: r.get(1)?,
                            sha256: r.get(2)?,
                        },
                        failures: r.get(3)?,
                        since: r.get(4)?,
                        last_error: r.get(5)?,
                        config_hash: r.get(6)?,
                    })
                },
            )
        })
    }

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
            if root.status != Status::Triage {
                return Err(StoreError::Refused(format!("card {root_id} is {}; only triage cards are decomposed", root.status)));
            }
            let mut ids: Vec<String> = Vec::with_capacity(children.len());
            for (i, child) in children.iter().enumerate() {
                let (kind, path) = crate::lifecycle::child_workspace(&root, child);
                if kind == WorkspaceKind::Dir && path.is_none() {
                    return Err(StoreError::Invalid(format!("child {i} asks for a dir workspace without a path")));
                }
                let status = if child.depends_on.is_empty() { Status::Ready } else { Status::Todo };
                let new = super::NewTask {
                    title: child.title.clone(),
                    body: child.body.clone(),
                    assignee: child.assignee.clone().or_else(|| root.assignee.clone()),
                    priority: child.priority,
                    tenant: root.tenant.clone(),
                    workspace_kind: Some(kind),
                    workspace_path: path,
                    created_by: Some(format!("decompose:{}", root.id)),
                    ..super::NewTask::default()
                };
                let id = super::cards::insert_with_fresh_id(tx, &new, &new.title, kind, status, now)?;
                for dep in &child.depends_on {
                    insert_link(tx, &ids[*dep], &id, now)?;
                }
                append_event(
                    tx,
                    Some(&id),
                    None,
                    EventKind::Created,
                    json!({"status": status, "assignee": new.assignee, "decomposed_from": root_id, "policy": policy}),
                    now,
                )?;
                ids.push(id);
            }
            for id in &ids {
                insert_link(tx, id, root_id, now)?;
            }
            let n = tx.execute(
                &format!("UPDATE tasks SET status = {TODO}, updated_at = ?1 WHERE id = ?2 AND status = {TRIAGE}"),
                params![now, root_id],
            )?;
            if n != 1 {
                return Err(StoreError::Refused(format!("card {root_id} changed concurrently; try again")));
            }
            append_event(tx, Some(root_id), None, EventKind::Decomposed, json!({"children": ids, "policy": policy}), now)?;
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
                EventKind::DecomposeLeft,
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
                tx.execute("DELETE FROM task_findings WHERE task_id = ?1", params![id])?;
            }
            if board_level {
                tx.execute("DELETE FROM task_findings WHERE task_id IS NULL", &[])?;
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
        self.read(|tx| findings_where(tx, "task_id = ?1", &[&task_id]))
    }

    /// Every stored finding of the board (the board-level ones, with no card, first), as the latest
    /// diagnostics runs left them.
    pub fn all_findings(&mut self) -> Result<Vec<Finding>> {
        self.read(|tx| findings_where(tx, "TRUE", &[]))
    }
}

fn findings_where(tx: &Tx, filter: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Finding>> {
    tx.query_map(
        &format!(
            "SELECT task_id, policy, rule, severity, title, detail, actions FROM task_findings WHERE {filter}
             ORDER BY task_id IS NOT NULL, id"
        ),
        args,
        |r| {
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
        },
    )
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
            workspace: workspace.map(|(k, p)| (WorkspaceKind::parse(k).unwrap(), p.map(str::to_string))),
            depends_on,
        }
    }

    #[test]
    fn children_inherit_the_workspace_and_an_override_keeps_the_path_only_when_kinds_match() {
        let (_dir, mut store) = crate::store::testing::store();
        let root = NewTask {
            title: "root".into(),
            triage: true,
            workspace_kind: Some(WorkspaceKind::Dir),
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
        let got: Vec<(&str, Option<String>, &str)> = ids
            .iter()
            .map(|id| {
                let t = store.get_task(id).unwrap();
                (t.workspace_kind.as_str(), t.workspace_path, t.status.as_str())
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
            assert_eq!((got.0, got.1.as_deref(), got.2), want);
        }
        assert_eq!(
            store.get_task(&ids[0]).unwrap().assignee.as_deref(),
            Some("coder"),
            "inherits the assignee"
        );
        assert_eq!(store.parents(&ids[1]).unwrap()[0].id, ids[0], "sibling dependency");
        let root_after = store.get_task(&root.id).unwrap();
        assert_eq!(root_after.status, Status::Todo);
        assert_eq!(store.parents(&root.id).unwrap().len(), 5, "the root waits on every child");
        // Not triage any more: a second decomposition is refused and changes nothing.
        assert!(store.apply_decomposition(&root.id, &children, "test", 3).is_err());
        assert_eq!(store.parents(&root.id).unwrap().len(), 5);
        assert_eq!(store.list_tasks(&crate::store::TaskFilter::default()).unwrap().len(), 6);
    }

    #[test]
    fn a_dir_child_without_any_path_refuses_the_whole_plan() {
        let (_dir, mut store) = crate::store::testing::store();
        let (root, _) = store
            .create_task(&NewTask { title: "root".into(), triage: true, ..NewTask::default() }, 1)
            .unwrap();
        let children = [child("fine", None, vec![]), child("no path", Some(("dir", None)), vec![])];
        assert!(store.apply_decomposition(&root.id, &children, "test", 2).is_err());
        assert_eq!(store.get_task(&root.id).unwrap().status, Status::Triage);
        assert_eq!(
            store.list_tasks(&crate::store::TaskFilter::default()).unwrap().len(),
            1,
            "nothing half-written"
        );
    }
}
