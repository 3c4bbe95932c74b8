//! The dispatcher tick: turn dispatchable cards into supervised workers, and keep flaky workers from
//! wrecking the board.
//!
//! One tick on one board reads like `docs/dispatcher.md`:
//! 1. reap zombie children (done by the caller before any board is opened);
//! 2. **assess** every running card from one read of the running cards and one snapshot of the
//!    processes ([`liveness::assess`], pure), then **act** on each verdict: extend a claim, request or
//!    advance a stop (never waiting for one: stops escalate across ticks and in the supervisor), classify a
//!    recorded exit, settle a vanished attempt;
//! 3. recompute ready (todo → ready, non-sticky blocked cards under the failure limit recover);
//! 4. create the cards of due recurring occurrences ([`ops::recurring::run_due`]; a dry run reports them);
//! 5. **plan** the spawns within the board's pauses and caps, asking the board's router and respawn guards
//!    ([`plan::plan`]), then **act**: claim each planned card and start its supervisor (a dry run stops
//!    after the plan). A pause touches only this step: steps 2 and 3 run on a paused board as on any other.
//!
//! Every write takes the time at which it happens. A per-board lock file makes concurrent ticks on one
//! board skip rather than race; the compare-and-set claim means even two ticks that both ran could not
//! spawn one card twice. The tick never holds a transaction across a spawn or a policy call, and never
//! signals a process of another host's claim.

pub mod daemon;
pub mod liveness;
pub mod plan;

use std::collections::BTreeMap;
use std::fs::File;

use nix::sys::signal::Signal;
use serde::Serialize;

use crate::board::{Board, Home, HostConfig};
use crate::clock;
use crate::lifecycle::{self, Action};
use crate::model::{GuardDecision, Lane, Outcome, Pause, PolicyKind, Status, Task, WorkspaceKind};
use crate::ops::{self, Desk};
use crate::policies::{PolicyFailure, PolicyHost};
use crate::policy::{PolicyContext, PolicyRuntime};
use crate::process::{ProcessId, ProcessTable};
use crate::store::{HostSign, Occurrence, RunningCard, Settled, Store};
use liveness::{Assessment, Observed, Sweep};
pub use plan::{AutoAssigned, Capped, Guarded, PauseScope, PausedCard, Unfit};

#[derive(Debug, Clone, Serialize)]
pub struct Spawned {
    pub task_id: String,
    pub assignee: String,
    pub workspace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    /// `work` (from ready) or `review` (from review).
    pub lane: Lane,
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
    /// Cards whose worker the host could not start (its own fault: requeued, not counted).
    pub host_errors: Vec<String>,
    pub spawn_failed: Vec<SpawnFailure>,
    pub auto_blocked: Vec<String>,
    /// Cards whose worker this tick decided to stop (they move on once it is gone).
    pub stopping: Vec<String>,
    pub respawn_guarded: Vec<Guarded>,
    pub auto_assigned: Vec<AutoAssigned>,
    pub skipped_unassigned: Vec<String>,
    pub skipped_nonspawnable: Vec<String>,
    /// Review cards with no reviewer profile: they wait for a person.
    pub awaiting_review: Vec<String>,
    pub skipped_per_profile_capped: Vec<Capped>,
    /// Ready cards left for a later tick because the board-wide `max_in_progress` is reached.
    pub skipped_board_capped: Vec<String>,
    /// Cards left waiting because this host runs its `[host] max_workers` already.
    pub skipped_host_capped: Vec<String>,
    /// Cards whose profile requires labels this host lacks: left to hosts that have them.
    pub skipped_unfit: Vec<Unfit>,
    /// Cards a pause of the board or of their profile held back (not counted in `pending`).
    pub paused: Vec<PausedCard>,
    /// The board's pauses, as this tick read them (`kanban pause`).
    pub pauses: Vec<Pause>,
    /// Cards this tick created for due occurrences of recurring schedules (`kanban recurring`).
    pub recurring_created: Vec<Occurrence>,
    /// Due occurrences this tick skipped, each with why (`skipped`).
    pub recurring_skipped: Vec<Occurrence>,
    /// A dry run only: the due occurrences a real tick would create (or skip, with why); nothing written.
    pub recurring_due: Vec<Occurrence>,
    pub skipped_locked: bool,
    pub policy_errors: Vec<PolicyFailure>,
    pub dry_run: bool,
    /// Running cards after the tick.
    pub running: usize,
    /// Spawnable cards still waiting (capped or deferred) after the tick.
    pub pending: usize,
}

impl TickReport {
    /// File a decided outcome under its list (the report's lists are the outcomes, by name).
    fn record_outcome(&mut self, id: &str, outcome: Outcome, gave_up: bool) {
        let list = match outcome {
            Outcome::ProtocolViolation => &mut self.protocol_violations,
            Outcome::RateLimited => &mut self.rate_limited,
            Outcome::ConfigError => &mut self.config_errors,
            Outcome::Crashed => &mut self.crashed,
            Outcome::TimedOut => &mut self.timed_out,
            Outcome::Stale => &mut self.stale,
            Outcome::Reclaimed | Outcome::SpawnLost => &mut self.reclaimed,
            Outcome::HostError => &mut self.host_errors,
            _ => {
                if gave_up {
                    self.auto_blocked.push(id.to_string());
                }
                return;
            }
        };
        list.push(id.to_string());
        if gave_up {
            self.auto_blocked.push(id.to_string());
        }
    }

    fn record_settled(&mut self, settled: &Settled) {
        if settled.status.is_some() {
            self.record_outcome(&settled.task_id, settled.outcome, settled.gave_up);
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

/// The board's tick lock could not be taken or made.
#[derive(Debug, thiserror::Error)]
#[error("cannot lock {path}: {error}")]
pub struct LockError {
    pub path: String,
    pub error: std::io::Error,
}

/// Take the board's tick lock without waiting. `None` if another dispatcher holds it (or a `board migrate`,
/// which holds it so that no tick runs while the board changes stores).
pub(crate) fn try_lock(board: &Board) -> Result<Option<nix::fcntl::Flock<File>>, LockError> {
    let path = board.dir.join("dispatch.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| LockError { path: path.display().to_string(), error })?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => {
            Err(LockError { path: path.display().to_string(), error: std::io::Error::from(errno) })
        }
    }
}

/// Run one tick on one board.
///
/// The supervisors it starts (unless `options.wait`) are left to the caller's zombie reaper
/// ([`crate::process::reap_zombies`]); a caller without one uses [`tick_handing_back`].
pub fn tick(
    home: &Home,
    board: &Board,
    runtime: &mut PolicyRuntime,
    options: TickOptions,
) -> anyhow::Result<TickReport> {
    Ok(tick_handing_back(home, board, runtime, options)?.0)
}

/// A supervisor a tick started: the card it works and its process, which the caller must wait for.
pub type Started = (String, std::process::Child);

/// [`tick`], handing back the supervisors it started and did not wait for, so a caller that does not reap
/// every child of its process (`kanban serve`, whose threads run other commands) can wait for each one.
pub fn tick_handing_back(
    home: &Home,
    board: &Board,
    runtime: &mut PolicyRuntime,
    options: TickOptions,
) -> anyhow::Result<(TickReport, Vec<Started>)> {
    let mut report =
        TickReport { board: board.slug.clone(), dry_run: options.dry_run, ..TickReport::default() };
    let Some(_lock) = try_lock(board)? else {
        report.skipped_locked = true;
        return Ok((report, Vec::new()));
    };
    let mut store = board.open_store()?;
    // A shared board's hosts do not share its folder: its tick lock is the database's.
    if !store.try_tick_lock()? {
        report.skipped_locked = true;
        return Ok((report, Vec::new()));
    }
    let host_id = home.host_id()?;
    let host = home.config()?.host;
    let mut desk = Desk::new(board, &mut store, &host_id);
    desk.store.touch_host(
        HostSign {
            id: &host_id,
            hostname: &crate::process::hostname(),
            pid: i64::from(std::process::id()),
            labels: &host.labels,
            max_workers: host.max_workers,
        },
        clock::now(),
    )?;

    if !options.dry_run {
        // Events appended from here on reach the targets board.toml names now.
        ops::notify::sync_routes(board, desk.store)?;
    }
    let still_running = assess_running(&mut desk, &mut report)?;
    report.promoted = desk.store.recompute_ready(Some(board.config.dispatch.failure_limit), clock::now())?;
    let occurrences = ops::recurring::run_due(&mut desk, clock::now(), options.dry_run)?;
    if options.dry_run {
        report.recurring_due = occurrences;
    } else {
        (report.recurring_created, report.recurring_skipped) =
            occurrences.into_iter().partition(|o| o.task_id.is_some());
    }
    let mut children = spawn_phase(home, &host, &mut desk, runtime, &still_running, &mut report, options)?;

    if options.wait && !children.is_empty() {
        for (task_id, mut child) in std::mem::take(&mut children) {
            if let Err(e) = child.wait() {
                tracing::warn!(task = %task_id, error = %e, "waiting for a supervisor failed");
            }
        }
        // Settle what the workers we waited for left behind (their supervisors recorded the exits).
        let mut waited = TickReport::default();
        assess_running(&mut desk, &mut waited)?;
        for (theirs, ours) in [
            (&waited.crashed, &mut report.crashed),
            (&waited.protocol_violations, &mut report.protocol_violations),
            (&waited.rate_limited, &mut report.rate_limited),
            (&waited.config_errors, &mut report.config_errors),
            (&waited.timed_out, &mut report.timed_out),
            (&waited.stale, &mut report.stale),
            (&waited.reclaimed, &mut report.reclaimed),
            (&waited.auto_blocked, &mut report.auto_blocked),
        ] {
            ours.extend(theirs.iter().cloned());
        }
    }
    report.running = desk.store.running_cards()?.len();
    Ok((report, children))
}

/// Step 2: assess and act on every running card. Returns the cards still running, by profile.
fn assess_running(desk: &mut Desk, report: &mut TickReport) -> anyhow::Result<BTreeMap<String, usize>> {
    let d = &desk.board.config.dispatch;
    let limits = d.limits();
    let table = ProcessTable::snapshot();
    let hosts: BTreeMap<String, i64> = desk.store.hosts()?.into_iter().map(|h| (h.id, h.last_seen)).collect();
    let mut still_running: BTreeMap<String, usize> = BTreeMap::new();
    for card in desk.store.running_cards()? {
        let seen = observe(desk, &card, &table, &hosts);
        let now = clock::now();
        let id = card.task.id.clone();
        let mut left_running = false;
        match liveness::assess(&card.task, &card.run, &seen, d, now) {
            Assessment::Nothing => {}
            Assessment::Extend => {
                if desk.store.extend_claim(&id, card.run.id, now + d.claim_ttl_seconds, now)? {
                    report.claims_extended.push(id.clone());
                }
            }
            Assessment::Advance => {
                if let ops::stop::Advance::Finished(_) =
                    ops::stop::advance(desk, &card, &table, seen.host_lost)?
                {
                    left_running = true;
                }
            }
            Assessment::StopLeftovers => {
                // Its supervisor is gone and already gave them SIGTERM and the grace, or died trying.
                if let Some(session) = ops::stop::session_of(&card.run) {
                    crate::process::signal_all(&table.members(session.leader), Signal::SIGKILL);
                }
            }
            Assessment::RecoverExit => {
                ops::supervise::recover_exit(desk, &id, card.run.id)?;
                let run = desk.store.get_run(card.run.id)?;
                if let Some(settled) = desk.store.settle(
                    &id,
                    run.id,
                    lifecycle::settle_exit(&run),
                    false,
                    limits,
                    clock::now(),
                )? {
                    report.record_settled(&settled);
                    left_running = true;
                }
            }
            Assessment::Classify => {
                let verdict = lifecycle::settle_exit(&card.run);
                if let Some(settled) = desk.store.settle(&id, card.run.id, verdict, false, limits, now)? {
                    report.record_settled(&settled);
                    left_running = true;
                }
            }
            Assessment::Stop { verdict, reason } => {
                let outcome = verdict.run_outcome().unwrap_or(Outcome::Reclaimed);
                if ops::stop::request(desk, &card, verdict, &reason)? {
                    report.record_outcome(&id, outcome, false);
                    report.stopping.push(id.clone());
                }
            }
            Assessment::Settle { verdict, unless_exited } => {
                if let Some(settled) =
                    desk.store.settle(&id, card.run.id, verdict, unless_exited, limits, now)?
                {
                    report.record_settled(&settled);
                    left_running = true;
                }
            }
        }
        if !left_running && let Some(profile) = card.run.profile.clone() {
            *still_running.entry(profile).or_default() += 1;
        }
    }
    sweep_ended(desk, &table)?;
    Ok(still_running)
}

/// How long after its end an attempt's session is watched for leftovers, in seconds.
const SWEEP_WINDOW: i64 = 86_400;
/// The most ended attempts one tick looks at.
const SWEEP_BATCH: usize = 256;

/// Ended attempts: whatever a worker left running after it reported is stopped by its supervisor; if the
/// supervisor died first, here (see [`liveness::sweep`]). Only this host's attempts are signalled.
fn sweep_ended(desk: &mut Desk, table: &ProcessTable) -> anyhow::Result<()> {
    let now = clock::now();
    let since = now - SWEEP_WINDOW;
    let (runs, old) = desk.store.unswept_attempts(desk.host_id, since, SWEEP_BATCH)?;
    let grace = desk.board.config.dispatch.kill_grace_seconds;
    let mut swept = Vec::new();
    for run in &runs {
        let session = ops::stop::session_of(run);
        let Some(session) =
            session.filter(|_| desk.is_local(run.host_id.as_deref(), run.claim_lock.as_deref()))
        else {
            swept.push(run.id); // nothing this host may signal
            continue;
        };
        let members = table.members(session.leader);
        let signal = match liveness::sweep(
            run.ended_at.unwrap_or(now),
            table.is_alive(session.leader),
            !members.is_empty(),
            grace,
            now,
        ) {
            Sweep::Wait => continue,
            Sweep::Done => {
                swept.push(run.id);
                continue;
            }
            Sweep::Terminate => Signal::SIGTERM,
            Sweep::Kill => Signal::SIGKILL,
        };
        let pids: Vec<i32> = members.iter().map(|p| p.pid).collect();
        tracing::warn!(
            task = %run.task_id, run = run.id, ?pids, ?signal,
            "processes of an ended attempt outlived its supervisor; stopping them"
        );
        crate::process::signal_all(&members, signal);
    }
    if !swept.is_empty() || old {
        desk.store.mark_swept(&swept, since, now)?;
    }
    Ok(())
}

/// What the tick can see of a running card's attempt outside the store.
fn observe(desk: &Desk, card: &RunningCard, table: &ProcessTable, hosts: &BTreeMap<String, i64>) -> Observed {
    let run = &card.run;
    let claim_host = run.host_id.as_deref().or(card.task.claim_host.as_deref());
    let local = desk.is_local(claim_host, card.task.claim_lock.as_deref());
    let now = clock::now();
    let claim_expired = card.task.claim_expires.is_some_and(|exp| exp < now);
    let host_lost = !local
        && claim_expired
        && claim_host
            .and_then(|h| hosts.get(h))
            .is_none_or(|seen| *seen < card.task.claim_expires.unwrap_or(0));
    let supervisor = ProcessId::from_parts(run.supervisor_pid, run.supervisor_start);
    let (supervisor_alive, workers_alive) = match supervisor.filter(|_| local) {
        Some(leader) => {
            let members = table.members(leader);
            (members.contains(&leader), members.iter().any(|p| *p != leader))
        }
        None => (false, false),
    };
    Observed {
        local,
        host_lost,
        supervisor_known: supervisor.is_some(),
        supervisor_alive,
        workers_alive,
        exit_file: local
            && run.exit().is_none()
            && crate::worker::read_exit_file(desk.board, &card.task.id, run.id).is_some(),
    }
}

/// The plan's questions, answered by the board's policies; one context record per card serves both.
struct PolicyAsk<'h, 's> {
    host: PolicyHost<'h>,
    store: &'s mut Store,
    /// The context of the card asked about last (routing, then guarding, ask about the same card).
    cached: Option<PolicyContext>,
    /// The candidates in the order the plan asks about them, for reading their facts ahead in batches.
    order: Vec<String>,
}

/// How many cards' facts a tick reads in one batch.
const PREFETCH: usize = 256;

impl PolicyAsk<'_, '_> {
    fn context(
        &mut self,
        task: &Task,
        running: &BTreeMap<String, usize>,
    ) -> anyhow::Result<&mut PolicyContext> {
        let now = clock::now();
        if self.cached.as_ref().is_none_or(|c| c.card.id != task.id) {
            if !self.host.prefetched(&task.id) {
                // Read this card and the next ones the plan will ask about in one snapshot.
                let at = self.order.iter().position(|id| *id == task.id).unwrap_or(self.order.len());
                let batch = &self.order[at..(at + PREFETCH).min(self.order.len())];
                self.host.prefetch(self.store, batch)?;
            }
            self.cached = Some(self.host.context_of(self.store, task, running, now)?);
        }
        let ctx = self.cached.as_mut().expect("built above");
        // The plan may have routed the card this tick, and the profiles' loads change as it plans.
        self.host.refresh(ctx, task.assignee.as_deref(), running, now);
        Ok(ctx)
    }
}

impl plan::Ask for PolicyAsk<'_, '_> {
    fn route(
        &mut self,
        task: &Task,
        running: &BTreeMap<String, usize>,
    ) -> anyhow::Result<Option<(String, String)>> {
        if !self.host.has(PolicyKind::Routing) {
            return Ok(None);
        }
        self.context(task, running)?;
        let ctx = self.cached.as_mut().expect("built above");
        Ok(self.host.route(self.store, ctx)?)
    }

    fn guard(
        &mut self,
        task: &Task,
        running: &BTreeMap<String, usize>,
    ) -> anyhow::Result<(GuardDecision, String)> {
        self.context(task, running)?;
        let ctx = self.cached.as_mut().expect("built above");
        Ok(self.host.guard(self.store, ctx)?)
    }
}

/// Step 4: plan the spawns, then (unless dry-run) claim and start them.
fn spawn_phase(
    home: &Home,
    host: &HostConfig,
    desk: &mut Desk,
    runtime: &mut PolicyRuntime,
    running: &BTreeMap<String, usize>,
    report: &mut TickReport,
    options: TickOptions,
) -> anyhow::Result<Vec<Started>> {
    let board = desk.board;
    let candidates: Vec<plan::Candidate> = desk
        .store
        .dispatch_candidates()?
        .into_iter()
        .map(|task| {
            let (lane, profile) = match task.status {
                Status::Review => {
                    (Lane::Review, task.reviewer.clone().or_else(|| board.config.review.reviewer.clone()))
                }
                _ => (Lane::Work, task.assignee.clone()),
            };
            plan::Candidate { task, lane, profile }
        })
        .collect();
    let mut caps = plan::Caps::of(&board.config);
    caps.host = host_room(home, desk, host)?;
    // Read once a tick: a pause takes effect at the next tick after `kanban pause`, in every dispatcher.
    report.pauses = desk.store.pauses()?;
    let pauses = plan::Pauses::new(report.pauses.clone());
    let kinds = [PolicyKind::RespawnGuard, PolicyKind::Routing];
    let host = PolicyHost::new(runtime, home, board, &kinds, options.dry_run);
    let order = candidates.iter().map(|c| c.task.id.clone()).collect();
    let mut ask = PolicyAsk { host, store: desk.store, cached: None, order };
    let planned = plan::plan(candidates, running, &caps, &pauses, &mut ask)?;
    report.policy_errors = ask.host.finish(ask.store, clock::now())?;
    let plan::Plan {
        start: starts,
        auto_assigned,
        blocked,
        guarded,
        skipped_unassigned,
        skipped_nonspawnable,
        awaiting_review,
        skipped_per_profile_capped,
        skipped_board_capped,
        skipped_host_capped,
        skipped_unfit,
        paused,
        pending,
    } = planned;
    report.skipped_host_capped = skipped_host_capped;
    report.skipped_unfit = skipped_unfit;
    report.respawn_guarded = guarded;
    report.skipped_unassigned = skipped_unassigned;
    report.skipped_nonspawnable = skipped_nonspawnable;
    report.awaiting_review = awaiting_review;
    report.skipped_per_profile_capped = skipped_per_profile_capped;
    report.skipped_board_capped = skipped_board_capped;
    report.paused = paused;
    report.pending = pending;
    let mut unrouted = std::collections::BTreeSet::new();
    for a in auto_assigned {
        if options.dry_run || desk.store.assign_by_policy(&a.task_id, &a.assignee, &a.policy, clock::now())? {
            report.auto_assigned.push(a);
        } else {
            unrouted.insert(a.task_id); // the card changed under us; the next tick sees it fresh
        }
    }
    for (id, reason, policy) in blocked {
        if options.dry_run || desk.store.block_by_policy(&id, &reason, &policy, clock::now())? {
            report.auto_blocked.push(id);
        }
    }
    if !options.dry_run {
        // Recorded so `kanban policy replay` can ask a candidate guard about the spawns this board deferred.
        let deferred: Vec<_> = report
            .respawn_guarded
            .iter()
            .map(|g| (g.task_id.as_str(), g.policy.as_str(), g.reason.as_str(), g.retry_after))
            .collect();
        desk.store.record_deferrals(&deferred, clock::now())?;
    }
    let starts: Vec<plan::Start> = starts.into_iter().filter(|s| !unrouted.contains(&s.task.id)).collect();
    if options.dry_run {
        for plan::Start { task, lane, profile } in starts {
            let workspace =
                crate::workspace::path_for(board, &task).map(|p| p.display().to_string()).unwrap_or_default();
            report.spawned.push(Spawned {
                task_id: task.id,
                assignee: profile,
                workspace,
                run_id: None,
                lane,
            });
        }
        return Ok(Vec::new());
    }
    start_planned(home, desk, starts, report)
}

/// What this host may run: its labels, and when it has a `max_workers`, the workers it runs now on every
/// board of its home (the others read from their stores, a SQLite file or a PostgreSQL schema; one that
/// cannot be read is left out, with a warning, rather than stopping this board's tick).
fn host_room(home: &Home, desk: &mut Desk, host: &HostConfig) -> anyhow::Result<plan::HostRoom> {
    let mut room = plan::HostRoom {
        labels: host.labels.iter().cloned().collect(),
        max_workers: host.max_workers.map(|m| m as usize),
        running: 0,
    };
    if room.max_workers.is_none() {
        return Ok(room);
    }
    room.running = desk.store.running_on_host(desk.host_id)?;
    for slug in home.board_slugs()? {
        if slug == desk.board.slug {
            continue;
        }
        let counted = home.open_board_store(&slug).map_err(anyhow::Error::from).and_then(|store| {
            let Some(mut store) = store else { return Ok(0) };
            let n = store.running_on_host(desk.host_id)?;
            store.close()?;
            Ok(n)
        });
        match counted {
            Ok(n) => room.running += n,
            Err(e) => tracing::warn!(board = %slug, error = %e, "cannot count this host's workers there"),
        }
    }
    Ok(room)
}

/// Claim the planned cards and start their supervisors.
fn start_planned(
    home: &Home,
    desk: &mut Desk,
    starts: Vec<plan::Start>,
    report: &mut TickReport,
) -> anyhow::Result<Vec<Started>> {
    let d = &desk.board.config.dispatch;
    // All of the tick's claims commit together (each still a compare-and-set that opens its run), then the
    // supervisors start, then one transaction records them all: three commits a tick, not three a card.
    let gate =
        anyhow::Context::context(crate::worker::StartGate::new(), "cannot make the supervisors' start gate")?;
    let claim = desk.claim();
    let asks: Vec<(String, String)> = starts.iter().map(|s| (s.task.id.clone(), s.profile.clone())).collect();
    let run_ids = desk.store.claim_cards(&asks, &claim, d.claim_ttl_seconds, clock::now())?;
    let mut children = Vec::new();
    let mut supervisors = Vec::new();
    for (plan::Start { task, lane, profile }, run_id) in starts.into_iter().zip(run_ids) {
        let Some(run_id) = run_id else {
            continue; // another dispatcher got it first
        };
        match start(home, desk, &task, run_id, &gate) {
            Ok((child, workspace)) => {
                // The supervisor records itself too; recording here as well closes the window in which a
                // dispatcher crash would leave a live supervisor unknown to the board.
                if let Some(id) = ProcessId::of_child(&child) {
                    supervisors.push((run_id, (i64::from(id.pid), id.start as i64)));
                }
                report.spawned.push(Spawned {
                    task_id: task.id.clone(),
                    assignee: profile,
                    workspace: workspace.display().to_string(),
                    run_id: Some(run_id),
                    lane,
                });
                children.push((task.id, child));
            }
            Err((outcome, error)) => {
                if outcome == Outcome::HostError {
                    tracing::error!(task = %task.id, %error, "the host could not start a worker; the card is requeued uncounted");
                }
                let verdict = Action::Settle {
                    outcome,
                    error: Some(error.clone()),
                    detail: serde_json::json!({}),
                    wedged: false,
                };
                if let Some(settled) =
                    desk.store.settle(&task.id, run_id, verdict, false, d.limits(), clock::now())?
                {
                    report.record_settled(&settled);
                }
                report.spawn_failed.push(SpawnFailure { task_id: task.id.clone(), error });
            }
        }
    }
    if let Err(error) = desk.store.record_supervisors(&supervisors) {
        // Not fatal: each supervisor records itself before it starts its worker.
        tracing::warn!(%error, "could not record the supervisors this tick started");
    }
    gate.open();
    Ok(children)
}

/// Prepare the workspace and start the supervisor for a claimed run. A workspace that cannot be made is
/// the card's failure (`spawn_failed`, counted); a supervisor that cannot start is the host's
/// (`host_error`, not counted).
fn start(
    home: &Home,
    desk: &mut Desk,
    task: &Task,
    run_id: i64,
    gate: &crate::worker::StartGate,
) -> Result<(std::process::Child, std::path::PathBuf), (Outcome, String)> {
    let board = desk.board;
    let workspace =
        crate::workspace::prepare(board, task).map_err(|e| (Outcome::SpawnFailed, e.to_string()))?;
    if task.workspace_kind == WorkspaceKind::Scratch {
        ops::cards::scratch_tip(desk, home, &task.id);
    }
    let child = crate::worker::spawn_supervisor(home, board, &task.id, run_id, gate)
        .map_err(|e| (Outcome::HostError, format!("cannot start the supervisor: {e}")))?;
    Ok((child, workspace))
}
