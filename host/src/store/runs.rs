//! Runs: claim a card, record what its supervisor saw (its own process, the worker's, the exit), extend
//! the claim, settle the run's outcome, and stop it in two steps (request, then finish once its processes
//! are gone). Each is one transaction with its event; the rules come from [`crate::lifecycle`].

use std::collections::HashMap;

use rusqlite::params;
use serde_json::json;

use super::cards::{Applied, append_event, decide, load, load_run, open_run, write_transition};
use super::db::Tx;
use super::rows::{self, query_all};
use super::{Claim, Result, Store, StoreError};
use crate::breaker::BreakerLimits;
use crate::lifecycle::{self, Action, Actor};
use crate::model::EventKind;
use crate::model::{Lane, Outcome, Run, RunStatus, Status, Task, WorkspaceKind};

// Statuses in SQL, spelled by the vocabulary.
const READY: &str = Status::Ready.sql();
const REVIEW: &str = Status::Review.sql();
const REVIEW_LANE: &str = Lane::Review.sql();
const RUNNING: &str = Status::Running.sql();
const RUN_ENDED: &str = RunStatus::Ended.sql();
const RUN_EXITED: &str = RunStatus::Exited.sql();
const RUN_RUNNING: &str = RunStatus::Running.sql();
const RUN_STOPPING: &str = RunStatus::Stopping.sql();
const SCRATCH: &str = WorkspaceKind::Scratch.sql();

/// A running card with its current run.
#[derive(Debug, Clone)]
pub struct RunningCard {
    pub task: Task,
    pub run: Run,
}

/// What settlement did to the card.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub task_id: String,
    pub run_id: i64,
    pub outcome: Outcome,
    /// Where the card went; `None` if it had moved on (the run was only closed).
    pub status: Option<Status>,
    pub gave_up: bool,
}

impl Settled {
    fn from_applied(task_id: &str, run_id: i64, outcome: Outcome, applied: &Applied) -> Settled {
        Settled {
            task_id: task_id.to_string(),
            run_id,
            outcome,
            status: Some(applied.transition.to),
            gave_up: applied.transition.judgement.as_ref().is_some_and(|j| j.gave_up),
        }
    }
}

/// A host working this board, and its last sign of life.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HostSeen {
    pub id: String,
    pub hostname: String,
    pub pid: Option<i64>,
    pub started_at: i64,
    pub last_seen: i64,
    /// This board's cards running on it now.
    pub running: usize,
    /// Its `[host] max_workers` and `labels` as of its last tick.
    pub max_workers: Option<i64>,
    pub labels: Vec<String>,
}

/// What a host says of itself at each tick (see [`Store::touch_host`]).
#[derive(Debug, Clone, Copy)]
pub struct HostSign<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    pub pid: i64,
    pub labels: &'a [String],
    pub max_workers: Option<u32>,
}

impl Store {
    /// Every running card with its current run, oldest first: two queries, whatever the count.
    pub fn running_cards(&mut self) -> Result<Vec<RunningCard>> {
        self.read(|tx| {
            let sql = format!(
                "SELECT {} FROM tasks WHERE status = {RUNNING} AND current_run_id IS NOT NULL ORDER BY started_at, id",
                rows::task_columns()
            );
            let tasks: Vec<Task> = query_all!(tx, TaskReader, sql, &[]);
            let sql = format!(
                "SELECT {} FROM task_runs WHERE id IN (SELECT current_run_id FROM tasks WHERE status = {RUNNING})",
                rows::run_columns()
            );
            let mut runs: HashMap<i64, Run> =
                query_all!(tx, RunReader, sql, &[]).into_iter().map(|r: Run| (r.id, r)).collect();
            Ok(tasks
                .into_iter()
                .filter_map(|task| {
                    let run = runs.remove(&task.current_run_id?)?;
                    Some(RunningCard { task, run })
                })
                .collect())
        })
    }

    /// The dispatchable cards (ready and review) in dispatch order: priority first, then oldest.
    pub fn dispatch_candidates(&mut self) -> Result<Vec<Task>> {
        self.read(|tx| {
            // Each lane read in the order of its index (status, priority DESC, created_at; rowid breaks
            // ties) and merged: no sort of the full rows.
            let columns = rows::task_columns();
            let sql = format!(
                "SELECT rowid AS tie, {columns} FROM tasks WHERE status = {READY}
                 UNION ALL
                 SELECT rowid AS tie, {columns} FROM tasks WHERE status = {REVIEW}
                 ORDER BY priority DESC, created_at, tie"
            );
            Ok(query_all!(tx, TaskReader, sql, &[]))
        })
    }

    /// Claim a dispatchable card for a worker: compare-and-set on its status, its assignee (or reviewer, in
    /// the review lane) and on there being no claim, in the same transaction that opens its run. Returns the
    /// run id, or `None` if someone else got it or the card changed.
    pub fn claim_card(
        &mut self,
        task_id: &str,
        profile: &str,
        claim: &Claim,
        ttl: i64,
        now: i64,
    ) -> Result<Option<i64>> {
        self.write(|tx| claim_in(tx, task_id, profile, claim, ttl, now))
    }

    /// [`Store::claim_card`] for many cards, `(card, profile)`, in one transaction (one commit for a whole
    /// tick's claims). Each claim is the same compare-and-set and opens its run with its event; the result
    /// lines up with `cards`.
    pub fn claim_cards(
        &mut self,
        cards: &[(String, String)],
        claim: &Claim,
        ttl: i64,
        now: i64,
    ) -> Result<Vec<Option<i64>>> {
        if cards.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            cards.iter().map(|(task_id, profile)| claim_in(tx, task_id, profile, claim, ttl, now)).collect()
        })
    }

    /// The dispatcher's record of the supervisors it just started, `(run, (pid, start))`, in one
    /// transaction. Runs that ended meanwhile are left alone.
    pub fn record_supervisors(&mut self, started: &[(i64, (i64, i64))]) -> Result<()> {
        if started.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let sql = format!(
                "UPDATE task_runs SET supervisor_pid = ?1, supervisor_start = ?2 WHERE id = ?3 AND status <> {RUN_ENDED}"
            );
            for (run_id, (pid, start)) in started {
                tx.execute(&sql, params![pid, start, run_id])?;
            }
            Ok(())
        })
    }

    /// Record that a supervisor (and, once started, its worker) is running this run. `false` when the run
    /// has ended meanwhile (settled or stopped before it began): the supervisor then starts nothing.
    pub fn record_supervision(
        &mut self,
        run_id: i64,
        supervisor: Option<(i64, i64)>,
        worker: Option<(i64, i64)>,
        now: i64,
    ) -> Result<bool> {
        self.write(|tx| {
            let Some(run) = load_run(tx, run_id)? else { return Ok(false) };
            if run.status == RunStatus::Ended {
                return Ok(false);
            }
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
                    &format!("UPDATE tasks SET worker_pid = ?1, updated_at = ?2 WHERE current_run_id = ?3 AND status = {RUNNING}"),
                    params![pid, now, run_id],
                )?;
                append_event(tx, Some(&run.task_id), Some(run_id), EventKind::WorkerStarted, json!({"pid": pid}), now)?;
            }
            Ok(run.status != RunStatus::Stopping)
        })
    }

    /// Ended attempts whose sessions the tick still watches (see [`Store::mark_swept`]), on this host (or
    /// from before host ids), ended at or after `since`, oldest first, at most `limit`.
    /// Also says whether any ended attempt older than `since` is still unswept (for [`Store::mark_swept`]).
    pub fn unswept_attempts(&mut self, host_id: &str, since: i64, limit: usize) -> Result<(Vec<Run>, bool)> {
        self.read(|tx| {
            let sql = format!(
                "SELECT {} FROM task_runs WHERE status = {RUN_ENDED} AND swept_at IS NULL AND ended_at >= ?1
                   AND supervisor_pid IS NOT NULL AND (host_id = ?2 OR host_id IS NULL)
                 ORDER BY ended_at LIMIT ?3",
                rows::run_columns()
            );
            let runs = query_all!(tx, RunReader, sql, params![since, host_id, limit as i64]);
            let old: bool = tx.query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM task_runs
                       WHERE status = {RUN_ENDED} AND swept_at IS NULL AND ended_at < ?1)"
                ),
                params![since],
                |r| r.get(0),
            )?;
            Ok((runs, old))
        })
    }

    /// Stop watching the sessions of `runs` (confirmed empty), and of every ended attempt that ended
    /// before `since` (too old to watch), in one transaction.
    pub fn mark_swept(&mut self, runs: &[i64], since: i64, now: i64) -> Result<()> {
        self.write(|tx| {
            for run in runs {
                tx.execute("UPDATE task_runs SET swept_at = ?1 WHERE id = ?2", params![now, run])?;
            }
            tx.execute(
                &format!(
                    "UPDATE task_runs SET swept_at = ?1 WHERE status = {RUN_ENDED} AND swept_at IS NULL AND ended_at < ?2"
                ),
                params![now, since],
            )?;
            Ok(())
        })
    }

    /// Record where a run's worker works: the run's directory, and on the card the scratch path or the
    /// worktree branch it really used.
    pub fn record_workspace(&mut self, run_id: i64, dir: &str, branch: Option<&str>) -> Result<()> {
        self.write(|tx| {
            tx.execute("UPDATE task_runs SET workspace = ?1 WHERE id = ?2", params![dir, run_id])?;
            tx.execute(
                &format!(
                    "UPDATE tasks SET
                    workspace_path = CASE WHEN workspace_kind = {SCRATCH} THEN ?1 ELSE workspace_path END,
                    branch_name = COALESCE(?2, branch_name)
                 WHERE current_run_id = ?3"
                ),
                params![dir, branch, run_id],
            )?;
            Ok(())
        })
    }

    /// Record how the worker of a run ended. The run moves to `exited` (the tick classifies it) unless it
    /// already ended or is being stopped, in which case only the exit status is kept. `last_output` is the
    /// last line it wrote (for a failed exit), kept in the run's metadata. Returns false for an unknown run.
    pub fn record_exit(
        &mut self,
        run_id: i64,
        exit_code: Option<i64>,
        signal: Option<i64>,
        last_output: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        self.write(|tx| {
            let task: Option<String> =
                tx.query_opt("SELECT task_id FROM task_runs WHERE id = ?1", params![run_id], |r| r.get(0))?;
            let Some(task) = task else { return Ok(false) };
            // The one JSON edit the store makes, in each engine's JSON functions.
            let set_output = if tx.is_postgres() {
                "jsonb_set(COALESCE(metadata, '{}')::jsonb, '{last_output}', to_jsonb(?5::text))::text"
            } else {
                "json_set(COALESCE(metadata, '{}'), '$.last_output', ?5)"
            };
            tx.execute(
                &format!("UPDATE task_runs SET exit_code = ?1, exit_signal = ?2, exited_at = COALESCE(exited_at, ?3),
                    status = CASE WHEN status = {RUN_RUNNING} THEN {RUN_EXITED} ELSE status END,
                    metadata = CASE WHEN CAST(?5 AS TEXT) IS NULL THEN metadata ELSE {set_output} END
                 WHERE id = ?4"),
                params![exit_code, signal, now, run_id, last_output],
            )?;
            let mut payload = json!({"exit_code": exit_code, "signal": signal});
            if let Some(line) = last_output {
                payload["last_output"] = json!(line);
            }
            append_event(tx, Some(&task), Some(run_id), EventKind::WorkerExited, payload, now)?;
            Ok(true)
        })
    }

    /// Mark the start of another goal-mode turn on the same run. Refused unless the run is still the card's
    /// current, live run.
    pub fn record_goal_turn(
        &mut self,
        task_id: &str,
        run_id: i64,
        turn: i64,
        feedback: &str,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            let task = load(tx, task_id)?;
            let run = load_run(tx, run_id)?;
            lifecycle::check_attempt(&task, run.as_ref(), run_id)
                .map_err(|r| StoreError::Refused(r.message().into()))?;
            if task.status != Status::Running {
                return Err(StoreError::Refused(format!("card {task_id} is {}; no next turn", task.status)));
            }
            tx.execute("UPDATE task_runs SET turn = ?1 WHERE id = ?2", params![turn, run_id])?;
            tx.execute(
                "UPDATE tasks SET goal_turn = ?1, updated_at = ?2 WHERE id = ?3",
                params![turn, now, task_id],
            )?;
            append_event(
                tx,
                Some(task_id),
                Some(run_id),
                EventKind::GoalContinue,
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
                &format!("UPDATE tasks SET claim_expires = ?1 WHERE id = ?2 AND status = {RUNNING} AND current_run_id = ?3"),
                params![until, task_id, run_id],
            )?;
            if n == 1 {
                append_event(tx, Some(task_id), Some(run_id), EventKind::ClaimExtended, json!({"until": until}), now)?;
            }
            Ok(n == 1)
        })
    }

    /// Settle a run with the dispatcher's verdict (an [`Action::Settle`]): end it, apply the breaker, and
    /// requeue or block the card, all in one transaction.
    ///
    /// The verdict was reached on a snapshot; this re-reads the run. With `unless_exited` (a verdict that
    /// presumes the worker never reported an exit: gone, crashed, lost), an exit recorded meanwhile wins and
    /// the run is classified by it instead. A run that is being stopped is left to its stop; a run that is no
    /// longer the card's current one is only closed.
    pub fn settle(
        &mut self,
        task_id: &str,
        run_id: i64,
        verdict: Action,
        unless_exited: bool,
        limits: BreakerLimits,
        now: i64,
    ) -> Result<Option<Settled>> {
        self.write(|tx| {
            let task = load(tx, task_id)?;
            let Some(run) = load_run(tx, run_id)? else { return Ok(None) };
            let mut verdict = verdict;
            if unless_exited && run.exit().is_some() {
                verdict = lifecycle::settle_exit(&run);
            }
            let Some(outcome) = verdict.run_outcome() else {
                return Err(StoreError::Invalid("settle takes a settle action".into()));
            };
            let current = task.status == Status::Running && task.current_run_id == Some(run_id);
            if !current {
                if run.status.is_open() && run.status != RunStatus::Stopping {
                    tx.execute(
                        &format!("UPDATE task_runs SET status = {RUN_ENDED}, outcome = COALESCE(outcome, ?1), ended_at = ?2
                         WHERE id = ?3 AND status <> {RUN_ENDED}"),
                        params![outcome, now, run_id],
                    )?;
                }
                return Ok(None);
            }
            if run.status == RunStatus::Stopping {
                return Ok(None);
            }
            let t = decide(tx, &task, Actor::Dispatcher(run_id), &verdict, limits)?;
            let released = write_transition(tx, &task, &t, now)?;
            let applied = Applied { task: load(tx, task_id)?, transition: t, released };
            Ok(Some(Settled::from_applied(task_id, run_id, outcome, &applied)))
        })
    }

    /// First step of stopping a run: decide how it ends. The run becomes `stopping` with the outcome of
    /// `action` (so no concurrent tick can call it a crash, and its worker's reports are refused), and the
    /// action is kept on the run for [`Store::finish_stop`]. Refused, writing nothing, unless `run_id` is the
    /// card's current, live run and `action` would be allowed once the run is stopped.
    pub fn request_stop(
        &mut self,
        task_id: &str,
        run_id: i64,
        action: &Action,
        reason: &str,
        requested_at: i64,
        now: i64,
    ) -> Result<Run> {
        let Some(outcome) = action.run_outcome() else {
            return Err(StoreError::Invalid(format!("{} does not end a run", action.verb())));
        };
        self.write(|tx| {
            let task = load(tx, task_id)?;
            let Some(mut run) = load_run(tx, run_id)? else {
                return Err(StoreError::NotFound(format!("run {run_id}")));
            };
            if task.status != Status::Running || task.current_run_id != Some(run_id) {
                return Err(StoreError::Refused(format!(
                    "run {run_id} of card {task_id} is no longer current ({}); nothing was stopped",
                    task.current_run_id
                        .map(|r| format!("card is on run {r}"))
                        .unwrap_or_else(|| format!("card is {}", task.status))
                )));
            }
            if run.status == RunStatus::Stopping {
                return Err(StoreError::Refused(format!(
                    "run {run_id} of card {task_id} is already being stopped ({})",
                    run.outcome.map_or("?", |o| o.as_str())
                )));
            }
            // Would the action be allowed once the run is stopped? Check before any signal is sent.
            let mut stopping = run.clone();
            stopping.status = RunStatus::Stopping;
            let open = super::cards::open_parent_ids(tx, task_id)?;
            lifecycle::transition(
                &task,
                &lifecycle::Facts { open_parents: &open, run: Some(&stopping) },
                Actor::Stop(run_id),
                action,
                BreakerLimits::default(),
            )
            .map_err(|r| match r {
                lifecycle::Refusal::Refused(m) => StoreError::Refused(m),
                lifecycle::Refusal::Invalid(m) => StoreError::Invalid(m),
            })?;
            let stored = serde_json::to_string(action).map_err(|e| StoreError::Invalid(e.to_string()))?;
            tx.execute(
                &format!(
                    "UPDATE task_runs SET status = {RUN_STOPPING}, outcome = ?1, error = COALESCE(error, ?2),
                    stop_requested_at = ?3, stop_action = ?4
                 WHERE id = ?5 AND status IN ({RUN_RUNNING}, {RUN_EXITED})"
                ),
                params![outcome, reason, requested_at, stored, run_id],
            )?;
            append_event(
                tx,
                Some(task_id),
                Some(run_id),
                EventKind::StopRequested,
                json!({"outcome": outcome, "reason": reason, "action": action.verb()}),
                now,
            )?;
            run.status = RunStatus::Stopping;
            run.outcome = Some(outcome);
            run.stop_requested_at = Some(requested_at);
            Ok(run)
        })
    }

    /// Second step: the run's processes are confirmed gone; apply the action kept on it. If the action is
    /// refused by then (the card's parents changed, say), the card is requeued instead, uncounted, and the
    /// refusal is the run's error.
    pub fn finish_stop(
        &mut self,
        task_id: &str,
        run_id: i64,
        limits: BreakerLimits,
        now: i64,
    ) -> Result<Option<Applied>> {
        self.write(|tx| {
            let task = load(tx, task_id)?;
            let Some(run) = load_run(tx, run_id)? else { return Ok(None) };
            if run.status != RunStatus::Stopping || task.current_run_id != Some(run_id) {
                return Ok(None);
            }
            let action: Action = run
                .stop_action
                .clone()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or(Action::Reclaim { reason: "stopped".into() });
            let t = match decide(tx, &task, Actor::Stop(run_id), &action, limits) {
                Ok(t) => t,
                Err(StoreError::Refused(why) | StoreError::Invalid(why)) => {
                    let fallback = Action::Settle {
                        outcome: Outcome::Reclaimed,
                        error: Some(format!("{} was refused once the worker stopped: {why}", action.verb())),
                        detail: json!({"refused": action.verb()}),
                        wedged: false,
                    };
                    decide(tx, &task, Actor::Stop(run_id), &fallback, limits)?
                }
                Err(other) => return Err(other),
            };
            let released = write_transition(tx, &task, &t, now)?;
            append_event(tx, Some(task_id), Some(run_id), EventKind::Stopped, json!({"to": t.to}), now)?;
            Ok(Some(Applied { task: load(tx, task_id)?, transition: t, released }))
        })
    }

    /// Record (once per stop) that a stopped run's processes could not be confirmed gone, so the card waits.
    pub fn record_stop_pending(
        &mut self,
        task_id: &str,
        run_id: i64,
        detail: serde_json::Value,
        now: i64,
    ) -> Result<bool> {
        self.write(|tx| {
            let already: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM task_events WHERE run_id = ?1 AND kind = 'stop_pending')",
                params![run_id],
                |r| r.get(0),
            )?;
            if !already {
                append_event(tx, Some(task_id), Some(run_id), EventKind::StopPending, detail, now)?;
            }
            Ok(!already)
        })
    }

    /// This host is alive and working the board, with its labels and capacity.
    pub fn touch_host(&mut self, host: HostSign, now: i64) -> Result<()> {
        let labels = host.labels.join(" ");
        self.write(|tx| {
            tx.execute(
                "INSERT INTO hosts (id, hostname, pid, started_at, last_seen, labels, max_workers)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET hostname = ?2, pid = ?3, last_seen = ?4, labels = ?5, max_workers = ?6",
                params![host.id, host.hostname, host.pid, now, labels, host.max_workers],
            )?;
            Ok(())
        })
    }

    /// The hosts that worked this board, most recently seen first, each with the board's cards it runs.
    pub fn hosts(&mut self) -> Result<Vec<HostSeen>> {
        self.read(|tx| {
            let sql = format!(
                "SELECT h.id, h.hostname, h.pid, h.started_at, h.last_seen, h.labels, h.max_workers,
                        (SELECT COUNT(*) FROM tasks t JOIN task_runs r ON r.id = t.current_run_id
                          WHERE t.status = {RUNNING} AND r.host_id = h.id)
                   FROM hosts h ORDER BY h.last_seen DESC, h.id"
            );
            tx.query_map(&sql, &[], |r| {
                let labels: String = r.get(5)?;
                Ok(HostSeen {
                    id: r.get(0)?,
                    hostname: r.get(1)?,
                    pid: r.get(2)?,
                    started_at: r.get(3)?,
                    last_seen: r.get(4)?,
                    labels: labels.split_whitespace().map(str::to_string).collect(),
                    max_workers: r.get(6)?,
                    running: r.get::<i64>(7)? as usize,
                })
            })
        })
    }

    /// How many of this board's cards run on host `id` now.
    pub fn running_on_host(&mut self, id: &str) -> Result<usize> {
        self.read(|tx| {
            let sql = format!(
                "SELECT COUNT(*) FROM tasks t JOIN task_runs r ON r.id = t.current_run_id
                  WHERE t.status = {RUNNING} AND r.host_id = ?1"
            );
            let n: i64 = tx.query_row(&sql, params![id], |r| r.get(0))?;
            Ok(n as usize)
        })
    }
}

/// One claim inside a write transaction (see [`Store::claim_card`]).
fn claim_in(tx: &Tx, task_id: &str, profile: &str, claim: &Claim, ttl: i64, now: i64) -> Result<Option<i64>> {
    let task = load(tx, task_id)?;
    // The work lane goes to the assignee; the review lane to the reviewer (a card with none takes the
    // board's default reviewer, named by the caller, and keeps it).
    let (lane, allowed) = match task.status {
        Status::Ready => (Lane::Work, task.assignee.as_deref() == Some(profile)),
        Status::Review => (Lane::Review, task.reviewer.as_deref().is_none_or(|r| r == profile)),
        _ => return Ok(None),
    };
    if !allowed || task.claim_lock.is_some() {
        return Ok(None);
    }
    let n = tx.execute(
        &format!(
            "UPDATE tasks SET status = {RUNNING}, claim_lock = ?1, claim_host = ?2, claim_expires = ?3,
            updated_at = ?4, last_heartbeat_at = NULL,
            reviewer = CASE WHEN ?7 = {REVIEW_LANE} THEN ?8 ELSE reviewer END
         WHERE id = ?5 AND status = ?6 AND claim_lock IS NULL"
        ),
        params![claim.lock, claim.host, now + ttl, now, task_id, task.status, lane, profile],
    )?;
    if n != 1 {
        return Ok(None);
    }
    let run_id = open_run(tx, &task, lane, Some(profile), Some(claim), now)?;
    append_event(
        tx,
        Some(task_id),
        Some(run_id),
        EventKind::Claimed,
        json!({"claim_lock": claim.lock, "host_id": claim.host, "from": task.status}),
        now,
    )?;
    Ok(Some(run_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewTask;

    fn store() -> (tempfile::TempDir, Store) {
        crate::store::testing::store()
    }

    fn running(store: &mut Store, title: &str) -> (String, i64) {
        let new =
            NewTask { title: title.into(), initial_status: Some(Status::Running), ..NewTask::default() };
        let (task, _) = store.create_task(&new, 1).unwrap();
        (task.id, task.current_run_id.unwrap())
    }

    fn crashed_without_exit() -> Action {
        Action::Settle {
            outcome: Outcome::Crashed,
            error: Some("gone without a recorded exit".into()),
            detail: json!({}),
            wedged: false,
        }
    }

    /// Four connections (processes, or hosts on PostgreSQL) claim the same cards at once, each in
    /// batches as a tick does: every card is claimed exactly once, with exactly one run.
    #[test]
    fn concurrent_claimers_never_claim_a_card_twice() {
        let (_dir, board) = crate::store::testing::shared();
        let mut store = board.open();
        let ids: Vec<String> = (0..120)
            .map(|i| {
                let new = NewTask {
                    title: format!("card {i}"),
                    assignee: Some("coder".into()),
                    ..NewTask::default()
                };
                store.create_task(&new, 1).unwrap().0.id
            })
            .collect();
        let claimers: Vec<_> = (0..4)
            .map(|n| {
                let (board, ids) = (board.clone(), ids.clone());
                std::thread::spawn(move || {
                    let mut store = board.open();
                    let claim = Claim { lock: format!("host{n}:1"), host: format!("host{n}") };
                    // Each claimer walks the cards from its own starting point, so they collide.
                    let mut order = ids.clone();
                    order.rotate_left(n * 30);
                    let mut won = Vec::new();
                    for batch in order.chunks(10) {
                        let cards: Vec<(String, String)> =
                            batch.iter().map(|id| (id.clone(), "coder".to_string())).collect();
                        let runs = store.claim_cards(&cards, &claim, 60, 2).unwrap();
                        won.extend(batch.iter().zip(runs).filter_map(|(id, run)| run.map(|_| id.clone())));
                    }
                    won
                })
            })
            .collect();
        let mut won: Vec<String> = claimers.into_iter().flat_map(|c| c.join().unwrap()).collect();
        won.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(won, expected, "every card claimed once, by one claimer");
        for id in &ids {
            assert_eq!(store.runs(id).unwrap().len(), 1, "card {id} has one run");
            assert_eq!(store.get_task(id).unwrap().status, Status::Running);
        }
    }

    /// The crash check and the exit record race: the verdict "gone without an exit" was reached on a
    /// snapshot, but an exit recorded meanwhile wins, re-read in the settling transaction.
    #[test]
    fn a_recorded_exit_always_wins_over_a_crash_verdict_reached_before_it() {
        let (_dir, mut store) = store();
        let (id, run) = running(&mut store, "rate limited");
        store.record_exit(run, Some(75), None, None, 2).unwrap();
        let settled =
            store.settle(&id, run, crashed_without_exit(), true, BreakerLimits::default(), 3).unwrap();
        assert_eq!(settled.unwrap().outcome, Outcome::RateLimited);
        let task = store.get_task(&id).unwrap();
        assert_eq!((task.status, task.consecutive_failures), (Status::Ready, 0));
        assert_eq!(store.get_run(run).unwrap().outcome, Some(Outcome::RateLimited));
        // Without `unless_exited` (a verdict that does not presume a missing exit) the verdict stands.
        let (id, run) = running(&mut store, "timed out");
        store.record_exit(run, Some(75), None, None, 2).unwrap();
        let timed_out =
            Action::Settle { outcome: Outcome::TimedOut, error: None, detail: json!({}), wedged: false };
        let settled = store.settle(&id, run, timed_out, false, BreakerLimits::default(), 3).unwrap();
        assert_eq!(settled.unwrap().outcome, Outcome::TimedOut);
    }

    /// A run being stopped is its stop's to finish: a settlement reached meanwhile is ignored.
    #[test]
    fn a_stopping_run_is_never_settled_by_the_tick() {
        let (_dir, mut store) = store();
        let (id, run) = running(&mut store, "reclaimed");
        store.request_stop(&id, run, &Action::Reclaim { reason: "manual".into() }, "manual", 10, 2).unwrap();
        assert_eq!(
            store.settle(&id, run, crashed_without_exit(), true, BreakerLimits::default(), 3).unwrap(),
            None
        );
        assert!(store.events(Some(&id), None).unwrap().iter().all(|e| e.kind != "crashed"));
        let applied = store.finish_stop(&id, run, BreakerLimits::default(), 4).unwrap().unwrap();
        assert_eq!(applied.task.status, Status::Ready);
        assert_eq!(store.get_run(run).unwrap().outcome, Some(Outcome::Reclaimed));
    }

    /// A stop names its run: a request for a run that is no longer current is refused and writes nothing.
    #[test]
    fn a_stop_of_a_run_that_is_no_longer_current_is_refused() {
        let (_dir, mut store) = store();
        let (id, run) = running(&mut store, "moved on");
        store.request_stop(&id, run, &Action::Reclaim { reason: "first".into() }, "first", 10, 2).unwrap();
        let err = store.request_stop(&id, run, &Action::Reclaim { reason: "again".into() }, "again", 10, 2);
        assert!(err.unwrap_err().to_string().contains("already being stopped"));
        store.finish_stop(&id, run, BreakerLimits::default(), 3).unwrap();
        let err = store.request_stop(&id, run, &Action::Reclaim { reason: "late".into() }, "late", 10, 4);
        assert!(err.unwrap_err().to_string().contains("no longer current"));
    }

    /// An operator ending a card after its worker's exit was recorded (before the tick classified it) leaves
    /// no open run, whichever action it was.
    #[test]
    fn an_operator_ending_a_card_after_its_exit_was_recorded_leaves_no_open_run() {
        let (_dir, mut store) = store();
        let actions = [
            Action::Complete { result: None, summary: None },
            Action::Block { reason: Some("why".into()), kind: None, sticky: true },
            Action::Reclaim { reason: "manual".into() },
            Action::Archive,
        ];
        for action in actions {
            let (id, run) = running(&mut store, action.verb());
            store.record_exit(run, Some(0), None, None, 2).unwrap();
            store.request_stop(&id, run, &action, "by hand", 10, 3).unwrap();
            store.finish_stop(&id, run, BreakerLimits::default(), 4).unwrap();
            assert_eq!(store.get_run(run).unwrap().status, RunStatus::Ended, "{action:?}");
            assert!(store.running_cards().unwrap().iter().all(|c| c.task.id != id), "{action:?}");
        }
    }

    /// A tick's claims commit together, each still its own compare-and-set: a card that is not ready, or
    /// is someone else's, is skipped, and every claimed card gets its run and its `claimed` event.
    #[test]
    fn claiming_many_cards_at_once_claims_each_as_claiming_one_would() {
        let (_dir, mut store) = store();
        let ready = |store: &mut Store, title: &str, assignee: &str| {
            let new = NewTask { title: title.into(), assignee: Some(assignee.into()), ..NewTask::default() };
            store.create_task(&new, 1).unwrap().0.id
        };
        let a = ready(&mut store, "a", "coder");
        let b = ready(&mut store, "b", "coder");
        let other = ready(&mut store, "c", "reviewer");
        let (running, _) = running(&mut store, "d");
        let claim = Claim { lock: "host:1".into(), host: "h_test".into() };
        let asks: Vec<(String, String)> =
            [&a, &b, &other, &running].iter().map(|id| (id.to_string(), "coder".to_string())).collect();
        let runs = store.claim_cards(&asks, &claim, 60, 10).unwrap();
        assert!(runs[0].is_some() && runs[1].is_some(), "{runs:?}");
        assert_eq!(runs[2..], [None, None], "another profile's card and a running card are skipped");
        for (id, run) in [(&a, runs[0]), (&b, runs[1])] {
            let task = store.get_task(id).unwrap();
            assert_eq!((task.status, task.current_run_id), (Status::Running, run));
            assert_eq!(task.claim_lock.as_deref(), Some("host:1"));
            let kinds: Vec<String> =
                store.events(Some(id), None).unwrap().into_iter().map(|e| e.kind).collect();
            assert_eq!(kinds.last().map(String::as_str), Some("claimed"), "{kinds:?}");
        }
        assert_eq!(store.get_task(&other).unwrap().status, Status::Ready);
        assert_eq!(store.claim_cards(&asks, &claim, 60, 11).unwrap(), vec![None; 4], "nothing twice");
    }
}
