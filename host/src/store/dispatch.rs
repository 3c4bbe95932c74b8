//! Store operations the dispatcher and supervisors use: claim, record supervision facts, record an exit,
//! and settle a run's outcome with the circuit breaker. Each is one transaction with its event.

use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use super::model::*;
use super::tasks::{append_event, load, open_run};
use super::{Result, Store, StoreError};
use crate::breaker::FailureLimit;

/// A running card with its current run.
#[derive(Debug, Clone)]
pub struct RunningCard {
    pub task: Task,
    pub run: Run,
}

/// How a run ended, as the dispatcher or supervisor saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0 without `complete` or `block`.
    ProtocolViolation,
    /// Exit 75 (EX_TEMPFAIL): a rate limit or quota wall. Requeued; no failure counted.
    RateLimited,
    /// Exit 78 (EX_CONFIG): bad credentials or model. The breaker trips at once, sticky.
    ConfigError,
    /// Any other exit code or a signal.
    Crashed,
    /// Killed for running past `max_runtime`.
    TimedOut,
    /// Requeued: no heartbeat for the stale timeout.
    Stale,
    /// Requeued by the dispatcher: the worker died or its heartbeat went stale after the claim expired.
    Reclaimed,
    /// The worker could not be started (workspace or exec failure).
    SpawnFailed,
    /// The dispatcher claimed the card but died before a supervisor started.
    SpawnLost,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::ProtocolViolation => "protocol_violation",
            Outcome::RateLimited => "rate_limited",
            Outcome::ConfigError => "config_error",
            Outcome::Crashed => "crashed",
            Outcome::TimedOut => "timed_out",
            Outcome::Stale => "stale",
            Outcome::Reclaimed => "reclaimed",
            Outcome::SpawnFailed => "spawn_failed",
            Outcome::SpawnLost => "spawn_lost",
        }
    }

    /// Does this outcome count toward the breaker by itself? (A protocol violation counts only at its own
    /// limit; see [`Store::settle_run`].)
    fn counts(self) -> bool {
        matches!(self, Outcome::Crashed | Outcome::TimedOut | Outcome::SpawnFailed | Outcome::ConfigError)
    }

    /// Classify a recorded exit of a run whose card is still running on it (no terminal call was made).
    pub fn from_exit(exit_code: Option<i64>, signal: Option<i64>) -> Outcome {
        match (exit_code, signal) {
            (Some(0), None) => Outcome::ProtocolViolation,
            (Some(75), None) => Outcome::RateLimited,
            (Some(78), None) => Outcome::ConfigError,
            _ => Outcome::Crashed,
        }
    }
}

/// The limits settlement needs, from board.toml.
#[derive(Debug, Clone, Copy)]
pub struct BreakerLimits {
    pub board_failure_limit: i64,
    pub protocol_violation_limit: i64,
}

/// A run's end as the dispatcher saw it, for [`Store::settle_run`].
#[derive(Debug, Clone)]
pub struct Settlement {
    pub outcome: Outcome,
    pub error: Option<String>,
    /// Extra keys for the outcome's event payload.
    pub detail: Value,
}

impl Settlement {
    pub fn new(outcome: Outcome, error: impl Into<String>, detail: Value) -> Settlement {
        Settlement { outcome, error: Some(error.into()), detail }
    }
}

/// A policy quarantined on a board.
#[derive(Debug, Clone)]
pub struct Quarantined {
    /// `<entry>:<reference>:<sha256>` (see `LoadedPolicy::health_key`).
    pub key: String,
    pub failures: i64,
    pub since: i64,
    pub last_error: Option<String>,
}

/// What settlement did to the card.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub task_id: String,
    pub outcome: Outcome,
    /// `ready`/`todo` when requeued, `blocked` when the breaker tripped; `None` if the card had moved on.
    pub status: Option<String>,
    pub gave_up: bool,
}

impl Store {
    /// Every running card with its current run, oldest first.
    pub fn running_cards(&mut self) -> Result<Vec<RunningCard>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'running' AND current_run_id IS NOT NULL
                 ORDER BY started_at, id"
            ))?;
            let tasks = stmt.query_map([], Task::from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            let mut run_stmt =
                tx.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM task_runs WHERE id = ?1"))?;
            let mut out = Vec::with_capacity(tasks.len());
            for task in tasks {
                let run = run_stmt.query_row([task.current_run_id], Run::from_row)?;
                out.push(RunningCard { task, run });
            }
            Ok(out)
        })
    }

    /// Ids and assignees of dispatchable cards (`ready` and the `review` lane) in dispatch order: priority,
    /// then age. Light on purpose: a big board has thousands, and most of them only get reported as capped.
    pub fn dispatch_candidates(&mut self) -> Result<Vec<(String, Option<String>)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT id, assignee FROM tasks WHERE status IN ('ready', 'review')
                 ORDER BY priority DESC, created_at, rowid",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Recent runs of a card, newest first (what policies see).
    pub fn recent_runs(&mut self, task_id: &str, limit: i64) -> Result<Vec<Run>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM task_runs WHERE task_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows =
                stmt.query_map(params![task_id, limit], Run::from_row)?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// Assign an unassigned card on a policy's decision, recording which policy chose.
    pub fn assign_by_policy(&mut self, task_id: &str, profile: &str, policy: &str, now: i64) -> Result<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE tasks SET assignee = ?1, updated_at = ?2 WHERE id = ?3 AND assignee IS NULL
                 AND status IN ('ready', 'review')",
                params![profile, now, task_id],
            )?;
            if n == 1 {
                append_event(
                    tx,
                    Some(task_id),
                    None,
                    "assigned",
                    json!({"assignee": profile, "source": policy}),
                    now,
                )?;
            }
            Ok(n == 1)
        })
    }

    /// Claim a dispatchable card for a worker: compare-and-set on its status and on there being no claim,
    /// in the same transaction that opens its run. Returns the run id, or `None` if someone else got it.
    pub fn claim_card(
        &mut self,
        task_id: &str,
        profile: &str,
        claim_lock: &str,
        ttl: i64,
        now: i64,
    ) -> Result<Option<i64>> {
        self.write(|tx| {
            let task = load(tx, task_id)?;
            let n = tx.execute(
                "UPDATE tasks SET status = 'running', claim_lock = ?1, claim_expires = ?2, updated_at = ?3,
                    last_heartbeat_at = NULL
                 WHERE id = ?4 AND status = ?5 AND status IN ('ready', 'review') AND claim_lock IS NULL
                   AND assignee = ?6",
                params![claim_lock, now + ttl, now, task_id, task.status, profile],
            )?;
            if n != 1 {
                return Ok(None);
            }
            let run_id = open_run(tx, task_id, Some(profile), Some(claim_lock), None, now)?;
            append_event(
                tx,
                Some(task_id),
                Some(run_id),
                "claimed",
                json!({"claim_lock": claim_lock, "from": task.status}),
                now,
            )?;
            Ok(Some(run_id))
        })
    }

    /// Record that a supervisor (and, once started, its worker) is running this run.
    pub fn record_supervision(
        &mut self,
        run_id: i64,
        supervisor: Option<(i64, i64)>,
        worker: Option<(i64, i64)>,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            if let Some((pid, start)) = supervisor {
                tx.execute(
                    "UPDATE task_runs SET supervisor_pid = ?1, supervisor_start = ?2 WHERE id = ?3",
                    params![pid, start, run_id],
                )?;
            }
            if let Some((pid, start)) = worker {
                tx.execute(
                    "UPDATE task_runs SET worker_pid = ?1, worker_start = ?2 WHERE id = ?3",
                    params![pid, start, run_id],
                )?;
                tx.execute(
                    "UPDATE tasks SET worker_pid = ?1, updated_at = ?2 WHERE current_run_id = ?3 AND status = 'running'",
                    params![pid, now, run_id],
                )?;
                let task: Option<String> =
                    tx.query_row("SELECT task_id FROM task_runs WHERE id = ?1", [run_id], |r| r.get(0)).optional()?;
                append_event(tx, task.as_deref(), Some(run_id), "worker_started", json!({"pid": pid}), now)?;
            }
            Ok(())
        })
    }

    /// A supervisor records its worker's exit. The run moves to `exited` (the tick classifies it) unless the
    /// worker already ended it with a terminal call, in which case only the exit status is kept.
    /// Record how the worker of a run ended. `last_output` is the last line it wrote (for a failed exit);
    /// it is kept in the run's metadata, where settlement adds it to the run's error.
    pub fn record_exit(
        &mut self,
        run_id: i64,
        exit_code: Option<i64>,
        signal: Option<i64>,
        last_output: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE task_runs SET exit_code = ?1, exit_signal = ?2, exited_at = ?3,
                    status = CASE WHEN status = 'running' THEN 'exited' ELSE status END,
                    metadata = CASE WHEN ?5 IS NULL THEN metadata
                               ELSE json_set(COALESCE(metadata, '{}'), '$.last_output', ?5) END
                 WHERE id = ?4",
                params![exit_code, signal, now, run_id, last_output],
            )?;
            let task: Option<String> = tx
                .query_row("SELECT task_id FROM task_runs WHERE id = ?1", [run_id], |r| r.get(0))
                .optional()?;
            let mut payload = json!({"exit_code": exit_code, "signal": signal});
            if let Some(line) = last_output {
                payload["last_output"] = json!(line);
            }
            append_event(tx, task.as_deref(), Some(run_id), "worker_exited", payload, now)?;
            Ok(())
        })
    }

    /// Mark the start of another goal-mode turn on the same run.
    pub fn record_goal_turn(
        &mut self,
        task_id: &str,
        run_id: i64,
        turn: i64,
        feedback: &str,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute("UPDATE task_runs SET turn = ?1 WHERE id = ?2", params![turn, run_id])?;
            tx.execute(
                "UPDATE tasks SET goal_turn = ?1, updated_at = ?2 WHERE id = ?3",
                params![turn, now, task_id],
            )?;
            append_event(
                tx,
                Some(task_id),
                Some(run_id),
                "goal_continue",
                json!({"turn": turn, "feedback": feedback}),
                now,
            )?;
            Ok(())
        })
    }

    /// Extend a live worker's claim (its heartbeat is fresh, or it has not sent one yet).
    pub fn extend_claim(&mut self, task_id: &str, run_id: i64, until: i64, now: i64) -> Result<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE tasks SET claim_expires = ?1 WHERE id = ?2 AND status = 'running' AND current_run_id = ?3",
                params![until, task_id, run_id],
            )?;
            if n == 1 {
                append_event(tx, Some(task_id), Some(run_id), "claim_extended", json!({"until": until}), now)?;
            }
            Ok(n == 1)
        })
    }

    /// Settle a run: end it with `outcome`, apply the failure accounting and the breaker, and requeue or
    /// block the card, all in one transaction. If the card is no longer running on this run (the worker
    /// completed or blocked it, or an operator reclaimed it), the run is just closed.
    pub fn settle_run(
        &mut self,
        task_id: &str,
        run_id: i64,
        settlement: Settlement,
        limits: BreakerLimits,
        now: i64,
    ) -> Result<Settled> {
        let Settlement { outcome, error, detail: extra } = settlement;
        let error = error.as_deref();
        self.write(|tx| {
            let task = load(tx, task_id)?;
            let current = task.status == "running" && task.current_run_id == Some(run_id);
            tx.execute(
                "UPDATE task_runs SET status = 'ended', outcome = COALESCE(outcome, ?1), error = COALESCE(error, ?2),
                    ended_at = COALESCE(ended_at, ?3) WHERE id = ?4",
                params![outcome.as_str(), error, now, run_id],
            )?;
            if !current {
                return Ok(Settled { task_id: task_id.into(), outcome, status: None, gave_up: false });
            }
            let mut violations = task.protocol_violations;
            let mut counts = outcome.counts();
            let mut sticky = outcome == Outcome::ConfigError;
            if outcome == Outcome::ProtocolViolation {
                violations += 1;
                if violations >= limits.protocol_violation_limit {
                    counts = true;
                    sticky = true;
                }
            } else {
                violations = 0;
            }
            let failures = task.consecutive_failures + i64::from(counts);
            let limit = FailureLimit::resolve(task.max_retries, Some(limits.board_failure_limit));
            let gave_up = sticky || (counts && failures >= limit);
            let to = if gave_up {
                "blocked"
            } else if super::tasks::open_parent_count(tx, task_id)? > 0 {
                "todo"
            } else {
                "ready"
            };
            let message = error.map(str::to_string).unwrap_or_else(|| outcome.as_str().to_string());
            let n = tx.execute(
                "UPDATE tasks SET status = ?1, updated_at = ?2, claim_lock = NULL, claim_expires = NULL,
                    worker_pid = NULL, current_run_id = NULL, consecutive_failures = ?3, protocol_violations = ?4,
                    last_failure_error = CASE WHEN ?5 THEN ?6 ELSE last_failure_error END
                 WHERE id = ?7 AND status = 'running' AND current_run_id = ?8",
                params![to, now, failures, violations, counts, message, task_id, run_id],
            )?;
            if n != 1 {
                return Err(StoreError::Refused(format!("card {task_id} changed concurrently; try again")));
            }
            let mut payload = json!({
                "outcome": outcome.as_str(),
                "error": error,
                "counted": counts,
                "consecutive_failures": failures,
                "to": to,
            });
            if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
                p.extend(e);
            }
            append_event(tx, Some(task_id), Some(run_id), outcome.as_str(), payload, now)?;
            if gave_up {
                let reason = if outcome == Outcome::ProtocolViolation {
                    format!("{violations} exits without complete or block in a row (limit {})", limits.protocol_violation_limit)
                } else if outcome == Outcome::ConfigError {
                    "the worker reported a configuration error (exit 78)".to_string()
                } else {
                    format!("{failures} consecutive failures (limit {limit}); last: {message}")
                };
                tx.execute(
                    "UPDATE tasks SET block_kind = 'gave_up', block_reason = ?1, block_sticky = ?2 WHERE id = ?3",
                    params![reason, sticky, task_id],
                )?;
                append_event(
                    tx,
                    Some(task_id),
                    Some(run_id),
                    "gave_up",
                    json!({"reason": reason, "outcome": outcome.as_str(), "consecutive_failures": failures, "limit": limit, "sticky": sticky}),
                    now,
                )?;
            }
            Ok(Settled { task_id: task_id.into(), outcome, status: Some(to.into()), gave_up })
        })
    }

    /// Block a card on a guard's decision (not counted as a failure; sticky until `unblock`).
    pub fn block_by_policy(&mut self, task_id: &str, reason: &str, policy: &str, now: i64) -> Result<bool> {
        self.write(|tx| {
            let task = load(tx, task_id)?;
            if !["ready", "review"].contains(&task.status.as_str()) {
                return Ok(false);
            }
            tx.execute(
                "UPDATE tasks SET status = 'blocked', block_kind = 'policy', block_reason = ?1, block_sticky = 1,
                    updated_at = ?2 WHERE id = ?3 AND status = ?4",
                params![reason, now, task_id, task.status],
            )?;
            append_event(tx, Some(task_id), None, "blocked", json!({"reason": reason, "policy": policy, "sticky": true}), now)?;
            Ok(true)
        })
    }

    /// Is the policy under `key` quarantined on this board? A quarantine set under another board.toml (the
    /// board was edited since) is lifted here.
    pub fn policy_quarantined(&mut self, key: &str, config_hash: &str) -> Result<Option<i64>> {
        self.write(|tx| {
            let row: Option<(i64, Option<i64>, String)> = tx
                .query_row(
                    "SELECT failures, quarantined_at, config_hash FROM policy_health WHERE id = ?1",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            match row {
                Some((failures, Some(_), hash)) if hash == config_hash => Ok(Some(failures)),
                Some((_, Some(_), _)) => {
                    tx.execute("DELETE FROM policy_health WHERE id = ?1", [key])?;
                    Ok(None)
                }
                _ => Ok(None),
            }
        })
    }

    /// Record one tick's result for a policy. After `limit` failing ticks in a row it is quarantined, with
    /// a `policy_quarantined` event. Returns true when this call quarantined it.
    pub fn record_policy_tick(
        &mut self,
        key: &str,
        reference: &str,
        error: Option<&str>,
        limit: i64,
        config_hash: &str,
        now: i64,
    ) -> Result<bool> {
        self.write(|tx| {
            let Some(error) = error else {
                tx.execute("DELETE FROM policy_health WHERE id = ?1 AND quarantined_at IS NULL", [key])?;
                return Ok(false);
            };
            tx.execute(
                "INSERT INTO policy_health (id, failures, config_hash, last_error, updated_at) VALUES (?1, 1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET failures = failures + 1, config_hash = ?2, last_error = ?3, updated_at = ?4",
                params![key, config_hash, error, now],
            )?;
            let failures: i64 = tx.query_row("SELECT failures FROM policy_health WHERE id = ?1", [key], |r| r.get(0))?;
            if failures >= limit {
                let n = tx.execute(
                    "UPDATE policy_health SET quarantined_at = ?1 WHERE id = ?2 AND quarantined_at IS NULL",
                    params![now, key],
                )?;
                if n == 1 {
                    append_event(
                        tx,
                        None,
                        None,
                        "policy_quarantined",
                        json!({"policy": reference, "key": key, "failures": failures, "last_error": error}),
                        now,
                    )?;
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Quarantined policies of this board.
    pub fn quarantined_policies(&mut self) -> Result<Vec<Quarantined>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT id, failures, quarantined_at, last_error FROM policy_health WHERE quarantined_at IS NOT NULL ORDER BY id",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Quarantined { key: r.get(0)?, failures: r.get(1)?, since: r.get(2)?, last_error: r.get(3)? })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// Append a free-standing event (policy errors, tips, health warnings).
    pub fn record_event(
        &mut self,
        task_id: Option<&str>,
        kind: &str,
        payload: Value,
        now: i64,
    ) -> Result<i64> {
        self.write(|tx| append_event(tx, task_id, None, kind, payload, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewTask;

    #[test]
    fn an_operator_ending_a_card_after_its_exit_was_recorded_leaves_no_open_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("kanban.db")).unwrap();
        for action in ["complete", "block", "reclaim"] {
            let new = NewTask {
                title: action.into(),
                initial_status: Some("running".into()),
                ..NewTask::default()
            };
            let (task, _) = store.create_task(&new, 1).unwrap();
            let run = task.current_run_id.unwrap();
            // The supervisor recorded the worker's exit; the tick has not classified it yet.
            store.record_exit(run, Some(0), None, None, 2).unwrap();
            match action {
                "complete" => drop(store.complete(&task.id, None, None, None, 3).unwrap()),
                "block" => drop(store.block(&task.id, Some("why"), None, true, None, 3).unwrap()),
                _ => drop(store.reclaim(&task.id, None, 3).unwrap()),
            }
            let runs = store.runs(&task.id).unwrap();
            assert_eq!(runs[0].status, "ended", "{action}: {runs:?}");
            assert!(store.running_cards().unwrap().iter().all(|c| c.task.id != task.id));
        }
    }
}
