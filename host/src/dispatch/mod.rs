//! The dispatcher tick: turn ready cards into supervised workers, and keep flaky workers from wrecking the
//! board.
//!
//! One tick on one board, in this order (the order matters; see docs/dispatcher.md):
//! 1. reap zombie children (done by the caller before any board is opened);
//! 2. release stale claims: extend a live worker's claim while its heartbeat is fresh, reclaim the card of a
//!    dead worker or of one whose heartbeat went stale;
//! 3. detect crashed workers (supervisor and worker both gone) past the crash grace;
//! 4. classify finished workers by exit code;
//! 5. enforce `max_runtime`, and requeue running cards silent for the stale timeout;
//! 6. recompute ready (todo → ready, non-sticky blocked cards under the failure limit recover);
//! 7. plan spawns within the caps, asking the board's router and respawn guards; then, unless dry-run,
//!    claim each planned card and start its supervisor.
//!
//! A per-board lock file makes concurrent ticks on one board skip rather than race; the compare-and-set
//! in [`Store::claim_card`] means even two ticks that both ran could not spawn one card twice. The tick
//! never holds a transaction across a spawn or a policy call.

use std::collections::BTreeMap;
use std::fs::File;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

mod policies;

use crate::board::{Board, Home};
use crate::policy::{GuardDecision, PolicyRuntime};
use crate::process::ProcessId;
use crate::store::{BreakerLimits, Outcome, RunningCard, Settled, Settlement, Store};
use policies::TickPolicies;

/// How long a worker gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default, Serialize)]
pub struct Spawned {
    pub task_id: String,
    pub assignee: String,
    pub workspace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Guarded {
    pub task_id: String,
    pub reason: String,
    pub policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AutoAssigned {
    pub task_id: String,
    pub assignee: String,
    pub policy: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capped {
    pub task_id: String,
    pub assignee: String,
    pub running: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyFailure {
    pub policy: String,
    /// The card being decided when the policy failed (none for a failure of the runtime itself).
    pub task_id: Option<String>,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpawnFailure {
    pub task_id: String,
    pub error: String,
}

/// What one tick did (or, with `dry_run`, would do in its spawn phase).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    pub board: String,
    pub spawned: Vec<Spawned>,
    pub promoted: Vec<String>,
    pub reclaimed: Vec<String>,
    pub claims_extended: Vec<String>,
    pub crashed: Vec<String>,
    pub protocol_violations: Vec<String>,
    pub rate_limited: Vec<String>,
    pub config_errors: Vec<String>,
    pub timed_out: Vec<String>,
    pub stale: Vec<String>,
    pub spawn_failed: Vec<SpawnFailure>,
    pub auto_blocked: Vec<String>,
    pub respawn_guarded: Vec<Guarded>,
    pub auto_assigned: Vec<AutoAssigned>,
    pub skipped_unassigned: Vec<String>,
    pub skipped_nonspawnable: Vec<String>,
    pub skipped_per_profile_capped: Vec<Capped>,
    /// Ready cards left for a later tick because the board-wide `max_in_progress` is reached.
    pub skipped_board_capped: Vec<String>,
    pub skipped_locked: bool,
    pub policy_errors: Vec<PolicyFailure>,
    pub dry_run: bool,
    /// Running cards after the tick.
    pub running: usize,
    /// Spawnable cards still waiting (capped or deferred) after the tick.
    pub pending: usize,
}

impl TickReport {
    fn record_settled(&mut self, settled: &Settled) {
        if settled.status.is_none() {
            return;
        }
        let id = settled.task_id.clone();
        match settled.outcome {
            Outcome::ProtocolViolation => self.protocol_violations.push(id.clone()),
            Outcome::RateLimited => self.rate_limited.push(id.clone()),
            Outcome::ConfigError => self.config_errors.push(id.clone()),
            Outcome::Crashed => self.crashed.push(id.clone()),
            Outcome::TimedOut => self.timed_out.push(id.clone()),
            Outcome::Stale => self.stale.push(id.clone()),
            Outcome::Reclaimed | Outcome::SpawnLost => self.reclaimed.push(id.clone()),
            Outcome::SpawnFailed => {}
        }
        if settled.gave_up {
            self.auto_blocked.push(id);
        }
    }

    /// Nothing is running and nothing is waiting to be spawned.
    pub fn is_idle(&self) -> bool {
        self.running == 0 && self.pending == 0 && self.spawned.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TickOptions {
    pub dry_run: bool,
    /// Wait for the workers this tick spawned and settle their outcome before returning.
    pub wait: bool,
}

/// Errors that stop a tick on one board (the daemon logs them and goes on with the next board).
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot lock {path}: {error}")]
    Lock { path: String, error: std::io::Error },
}

/// Take the board's tick lock without waiting. `None` if another dispatcher holds it.
fn try_lock(board: &Board) -> Result<Option<nix::fcntl::Flock<File>>, DispatchError> {
    let path = board.dir.join("dispatch.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| DispatchError::Lock { path: path.display().to_string(), error })?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => {
            Err(DispatchError::Lock { path: path.display().to_string(), error: std::io::Error::from(errno) })
        }
    }
}

/// The claim string of this dispatcher process: `<host>:<pid>`.
pub fn claim_lock() -> String {
    format!("{}:{}", crate::process::hostname(), std::process::id())
}

/// Terminate the worker of a running card (its whole process group: SIGTERM, grace, SIGKILL), if its
/// claim names this host and the recorded pid is still the process that was started. Used by the tick and
/// by a manual `kanban reclaim`, so a requeued card never keeps its old worker.
pub fn terminate_worker(card: &RunningCard) -> bool {
    if !is_local(card.task.claim_lock.as_deref()) {
        return false;
    }
    match worker_of(card) {
        Some(worker) if worker.is_alive() => worker.terminate_group(KILL_GRACE),
        _ => false,
    }
}

fn is_local(claim: Option<&str>) -> bool {
    let host = crate::process::hostname();
    claim.and_then(|c| c.rsplit_once(':')).map(|(h, _)| h == host).unwrap_or(false)
}

fn identity(pid: Option<i64>, start: Option<i64>) -> Option<ProcessId> {
    Some(ProcessId { pid: i32::try_from(pid?).ok()?, start: u64::try_from(start?).ok()? })
}

/// The worker's identity if recorded, else the supervisor's (a supervisor that has not started its worker
/// yet stands for it).
fn worker_of(card: &RunningCard) -> Option<ProcessId> {
    identity(card.run.worker_pid, card.run.worker_start)
        .or_else(|| identity(card.run.supervisor_pid, card.run.supervisor_start))
}

/// Run one tick on one board.
pub fn tick(
    home: &Home,
    board: &Board,
    runtime: &mut PolicyRuntime,
    options: TickOptions,
    now: i64,
) -> Result<TickReport, DispatchError> {
    let mut report =
        TickReport { board: board.slug.clone(), dry_run: options.dry_run, ..TickReport::default() };
    let Some(_lock) = try_lock(board)? else {
        report.skipped_locked = true;
        return Ok(report);
    };
    let mut store = board.open_store()?;
    let d = &board.config.dispatch;
    let limits = BreakerLimits {
        board_failure_limit: d.failure_limit,
        protocol_violation_limit: d.protocol_violation_limit,
    };

    // 2-5: walk the running cards once.
    for card in store.running_cards()? {
        let task_id = card.task.id.clone();
        let run_id = card.run.id;
        let local = is_local(card.task.claim_lock.as_deref());
        let exited = card.run.status == "exited";

        // 4. A recorded exit is classified first: it is the most precise fact we have.
        if exited {
            report.record_settled(&settle_exit(&mut store, &card, limits, now)?);
            continue;
        }
        let started = card.run.started_at;
        let supervisor = identity(card.run.supervisor_pid, card.run.supervisor_start);
        let worker = worker_of(&card);
        let alive = local && worker.is_some_and(|w| w.is_alive());

        // 2. Stale claims.
        if local && card.task.claim_expires.is_some_and(|exp| exp < now) {
            let heartbeat_age = card.task.last_heartbeat_at.map(|hb| now - hb);
            let heartbeat_stale = heartbeat_age.is_some_and(|age| age > d.heartbeat_stale_seconds);
            if alive && !heartbeat_stale {
                if store.extend_claim(&task_id, run_id, now + d.claim_ttl_seconds, now)? {
                    report.claims_extended.push(task_id);
                }
                continue;
            }
            if !alive && supervisor.is_some_and(|s| s.is_alive()) {
                continue; // the worker just ended; its supervisor is recording the exit for the next tick
            }
            if alive && let Some(w) = worker {
                w.terminate_group(KILL_GRACE);
            }
            // A claim lost before any supervisor was recorded (the dispatcher died mid-spawn) waits for the
            // crash grace below; everything else is reclaimed now.
            if supervisor.is_some() || worker.is_some() {
                let settled = store.settle_run(&task_id, run_id, Settlement::new(Outcome::Reclaimed, if alive { "heartbeat stale" } else { "worker gone" }, json!({"heartbeat_stale": heartbeat_stale, "worker_alive": alive, "heartbeat_age": heartbeat_age})), limits, now)?;
                report.record_settled(&settled);
                continue;
            }
        }

        // 3. Crash detection: supervisor and worker both gone, and the run is past its crash grace.
        if local && now - started >= d.crash_grace_seconds {
            let supervisor_alive = supervisor.is_some_and(|s| s.is_alive());
            if supervisor.is_none() && worker.is_none() {
                let settled = store.settle_run(
                    &task_id,
                    run_id,
                    Settlement::new(
                        Outcome::SpawnLost,
                        "the dispatcher stopped before the supervisor started",
                        json!({}),
                    ),
                    limits,
                    now,
                )?;
                report.record_settled(&settled);
                continue;
            }
            if !supervisor_alive && !alive {
                let settled = store.settle_run(
                    &task_id,
                    run_id,
                    Settlement::new(
                        Outcome::Crashed,
                        "the worker and its supervisor are gone without a recorded exit",
                        json!({"supervisor_pid": card.run.supervisor_pid, "worker_pid": card.run.worker_pid}),
                    ),
                    limits,
                    now,
                )?;
                report.record_settled(&settled);
                continue;
            }
        }

        // 5. max_runtime, then the stale-running requeue.
        if let Some(max) = card.task.max_runtime_seconds
            && now - started > max
        {
            if alive && let Some(w) = worker {
                w.terminate_group(KILL_GRACE);
            }
            let settled = store.settle_run(
                &task_id,
                run_id,
                Settlement::new(
                    Outcome::TimedOut,
                    format!("ran longer than max_runtime ({max}s)"),
                    json!({"max_runtime_seconds": max, "ran_seconds": now - started}),
                ),
                limits,
                now,
            )?;
            report.record_settled(&settled);
            continue;
        }
        let silent_since = card.task.last_heartbeat_at.unwrap_or(started);
        if d.stale_timeout_seconds > 0 && now - silent_since > d.stale_timeout_seconds {
            if alive && let Some(w) = worker {
                w.terminate_group(KILL_GRACE);
            }
            let settled = store.settle_run(&task_id, run_id, Settlement::new(Outcome::Stale, format!("no heartbeat for {}s", now - silent_since), json!({"silent_seconds": now - silent_since, "stale_timeout_seconds": d.stale_timeout_seconds})), limits, now)?;
            report.record_settled(&settled);
        }
    }

    // 6. Ready recomputation.
    report.promoted = store.recompute_ready(Some(d.failure_limit), now)?;

    // 7. Spawn within caps.
    let children = spawn_phase(home, board, runtime, &mut store, &mut report, options, now)?;
    if options.wait && !children.is_empty() {
        for (task_id, mut child) in children {
            if let Err(e) = child.wait() {
                tracing::warn!(task = %task_id, error = %e, "waiting for a supervisor failed");
            }
        }
        // Settle what the workers we waited for left behind (their supervisors recorded the exits).
        let waited = tick_settle_only(&mut store, limits, now)?;
        for settled in waited {
            report.record_settled(&settled);
        }
    }
    report.running = store.running_cards()?.len();
    Ok(report)
}

/// Classify every recorded exit (used after `--wait`).
fn tick_settle_only(
    store: &mut Store,
    limits: BreakerLimits,
    now: i64,
) -> Result<Vec<Settled>, DispatchError> {
    let mut out = Vec::new();
    for card in store.running_cards()? {
        if card.run.status == "exited" {
            out.push(settle_exit(store, &card, limits, now)?);
        }
    }
    Ok(out)
}

/// Settle a run whose supervisor recorded the worker's exit: the exit code decides the outcome.
fn settle_exit(
    store: &mut Store,
    card: &RunningCard,
    limits: BreakerLimits,
    now: i64,
) -> Result<Settled, DispatchError> {
    let (code, signal) = (card.run.exit_code, card.run.exit_signal);
    let outcome = Outcome::from_exit(code, signal);
    let detail = json!({"exit_code": code, "signal": signal});
    // The worker's last line says why it failed, in its own words; the auth/quota guard and `show` read it
    // in the error. A rate-limited exit already says why by its code (and has its own cooldown, which the
    // guard's longer auth window must not stretch): for it the line stays in the run's metadata and the
    // `worker_exited` event. An exit 0 did not fail; the supervisor records no line for it.
    let last_output = card.run.metadata.as_ref().and_then(|m| m["last_output"].as_str());
    let error = match last_output {
        Some(line) if matches!(outcome, Outcome::Crashed | Outcome::ConfigError) => {
            format!("{}: {line}", exit_error(outcome, code, signal))
        }
        _ => exit_error(outcome, code, signal),
    };
    let settlement = Settlement::new(outcome, error, detail);
    Ok(store.settle_run(&card.task.id, card.run.id, settlement, limits, now)?)
}

fn exit_error(outcome: Outcome, code: Option<i64>, signal: Option<i64>) -> String {
    match (outcome, code, signal) {
        (Outcome::ProtocolViolation, _, _) => "exited 0 without kanban complete or kanban block".into(),
        (Outcome::RateLimited, _, _) => "exit 75: rate limited (EX_TEMPFAIL)".into(),
        (Outcome::ConfigError, _, _) => "exit 78: configuration error (EX_CONFIG)".into(),
        (_, _, Some(sig)) => format!("killed by signal {sig}"),
        (_, Some(code), _) => format!("exit {code}"),
        _ => "unknown exit".into(),
    }
}

/// One card the spawn plan decided to start.
struct Planned {
    task: crate::store::Task,
    profile: String,
}

fn spawn_phase(
    home: &Home,
    board: &Board,
    runtime: &mut PolicyRuntime,
    store: &mut Store,
    report: &mut TickReport,
    options: TickOptions,
    now: i64,
) -> Result<Vec<(String, std::process::Child)>, DispatchError> {
    let d = &board.config.dispatch;
    let mut policies = TickPolicies::new(runtime, home);
    let running = store.running_cards()?;
    let mut total = running.len();
    let mut per_profile: BTreeMap<String, usize> = BTreeMap::new();
    for card in &running {
        if let Some(a) = &card.task.assignee {
            *per_profile.entry(a.clone()).or_default() += 1;
        }
    }
    let board_cap = d.max_in_progress as usize;
    let mut plan: Vec<Planned> = Vec::new();
    for (task_id, assignee) in store.dispatch_candidates()? {
        // The board cap comes first: a capped card is reported and costs nothing more (no routing writes,
        // no policy calls), which keeps a tick on a board with thousands of ready cards cheap.
        if total >= board_cap {
            report.skipped_board_capped.push(task_id);
            report.pending += 1;
            continue;
        }
        if let Some(a) = &assignee
            && !board.config.profiles.contains_key(a)
        {
            report.skipped_nonspawnable.push(task_id);
            continue;
        }
        let mut task = store.get_task(&task_id)?;
        // Routing: an unassigned card goes to the board's router.
        if task.assignee.is_none() {
            match policies.route(board, store, &task, &per_profile, report, now)? {
                Some((profile, policy)) => {
                    if !board.config.profiles.contains_key(&profile) {
                        report.policy_errors.push(PolicyFailure {
                            policy,
                            task_id: Some(task.id.clone()),
                            error: format!("routed to '{profile}', which is not a profile of this board"),
                        });
                        report.skipped_unassigned.push(task.id.clone());
                        continue;
                    }
                    if !options.dry_run && !store.assign_by_policy(&task.id, &profile, &policy, now)? {
                        continue; // changed under us; the next tick sees it fresh
                    }
                    report.auto_assigned.push(AutoAssigned {
                        task_id: task.id.clone(),
                        assignee: profile.clone(),
                        policy,
                    });
                    task.assignee = Some(profile);
                }
                None => {
                    report.skipped_unassigned.push(task.id.clone());
                    continue;
                }
            }
        }
        let profile = task.assignee.clone().unwrap_or_default();
        let Some(profile_cfg) = board.config.profiles.get(&profile) else {
            report.skipped_nonspawnable.push(task.id.clone());
            continue;
        };
        // Per-profile caps: running cards from before this tick count, and so do the ones planned so far.
        let cap = profile_cfg.max_in_progress.or(d.max_in_progress_per_profile).map(|c| c as usize);
        let running_here = per_profile.get(&profile).copied().unwrap_or(0);
        if cap.is_some_and(|c| running_here >= c) {
            report.skipped_per_profile_capped.push(Capped {
                task_id: task.id.clone(),
                assignee: profile,
                running: running_here,
            });
            report.pending += 1;
            continue;
        }
        // Respawn guards: any defer or block wins; a failing guard is reported and allows (or defers, if
        // the board made it fail closed).
        let (verdict, by) = policies.guard(board, store, &task, &per_profile, report, now)?;
        match verdict {
            GuardDecision::Allow => {}
            GuardDecision::Defer { reason, retry_after } => {
                report.respawn_guarded.push(Guarded {
                    task_id: task.id.clone(),
                    reason,
                    policy: by,
                    retry_after,
                });
                report.pending += 1;
                continue;
            }
            GuardDecision::Block { reason } => {
                if options.dry_run || store.block_by_policy(&task.id, &reason, &by, now)? {
                    report.auto_blocked.push(task.id.clone());
                }
                continue;
            }
        }
        total += 1;
        *per_profile.entry(profile.clone()).or_default() += 1;
        plan.push(Planned { task, profile });
    }

    policies.finish(board, store, now)?;
    let mut children = Vec::new();
    let lock = claim_lock();
    for Planned { task, profile } in plan {
        let workspace =
            crate::workspace::path_for(board, &task).map(|p| p.display().to_string()).unwrap_or_default();
        if options.dry_run {
            report.spawned.push(Spawned { task_id: task.id, assignee: profile, workspace, run_id: None });
            continue;
        }
        let Some(run_id) = store.claim_card(&task.id, &profile, &lock, d.claim_ttl_seconds, now)? else {
            continue; // another dispatcher got it first
        };
        match start(home, board, store, &task, run_id, now) {
            Ok((child, workspace)) => {
                report.spawned.push(Spawned {
                    task_id: task.id.clone(),
                    assignee: profile,
                    workspace: workspace.display().to_string(),
                    run_id: Some(run_id),
                });
                children.push((task.id, child));
            }
            Err(error) => {
                let limits = BreakerLimits {
                    board_failure_limit: d.failure_limit,
                    protocol_violation_limit: d.protocol_violation_limit,
                };
                let settled = store.settle_run(
                    &task.id,
                    run_id,
                    Settlement::new(Outcome::SpawnFailed, &error, json!({})),
                    limits,
                    now,
                )?;
                report.spawn_failed.push(SpawnFailure { task_id: task.id.clone(), error });
                report.record_settled(&settled);
            }
        }
    }
    Ok(children)
}

/// Prepare the workspace and start the supervisor for a claimed run.
fn start(
    home: &Home,
    board: &Board,
    store: &mut Store,
    task: &crate::store::Task,
    run_id: i64,
    now: i64,
) -> Result<(std::process::Child, std::path::PathBuf), String> {
    let workspace = crate::workspace::prepare(board, task).map_err(|e| e.to_string())?;
    if task.workspace_kind == "scratch" {
        scratch_tip(home, store, &task.id, now);
    }
    let child = crate::worker::spawn_supervisor(home, board, &task.id, run_id)
        .map_err(|e| format!("cannot start the supervisor: {e}"))?;
    // The supervisor records itself too; recording here as well closes the window in which a dispatcher
    // crash would leave a live supervisor unknown to the board.
    if let Some(id) = ProcessId::of(child.id() as i32) {
        let _ = store.record_supervision(run_id, Some((i64::from(id.pid), id.start as i64)), None, now);
    }
    Ok((child, workspace))
}

/// The first scratch card of an install gets a one-time tip: its workspace is deleted on completion.
fn scratch_tip(home: &Home, store: &mut Store, task_id: &str, now: i64) {
    let marker = home.root().join(".scratch-tip-shown");
    if marker.exists() {
        return;
    }
    if std::fs::write(&marker, b"shown\n").is_ok() {
        let tip = "scratch workspaces are deleted when the card completes or is archived; use --workspace dir:PATH or worktree to keep files";
        tracing::warn!(task = %task_id, "tip: {tip}");
        let _ = store.record_event(Some(task_id), "tip", json!({"tip": tip}), now);
    }
}
