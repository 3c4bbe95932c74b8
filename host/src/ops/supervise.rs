//! The supervisor: the hidden `supervise` command that runs the worker of one claimed run.
//!
//! It is started by the dispatcher as a session leader, so its pid names the attempt's session. It records
//! itself (and refuses to start anything if the run ended or is being stopped meanwhile), writes the
//! worker's context, starts the worker in its own process group, waits, and for goal cards runs the judge
//! between turns. When the worker has ended it writes the exit next to the log, stops whatever the worker
//! left running in the session, records the exit in the store (retrying with backoff: a lost exit must
//! never read as a crash), finishes a stop that was requested meanwhile, and cleans a finished card's
//! workspace. It never classifies an exit: that is the tick's job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use super::Desk;
use super::stop;
use crate::board::Home;
use crate::lifecycle::Action;
use crate::model::{Lane, Outcome, RunStatus, Status};
use crate::process::{ProcessId, Session, Stopped};
use crate::worker::{self, Exit, Verdict, WorkerEnv};

/// How long the supervisor keeps retrying to record an exit before leaving it to the exit file.
const RECORD_RETRIES: u32 = 6;

/// Run (and for goal cards, re-run) the worker of run `run_id` of card `task_id`.
pub fn supervise(home: &Home, desk: &mut Desk, task_id: &str, run_id: i64) -> anyhow::Result<()> {
    let me = ProcessId::current();
    listen_for_stops();
    let now = crate::clock::now();
    if !desk.store.record_supervision(run_id, Some((i64::from(me.pid), me.start as i64)), None, now)? {
        return Ok(()); // the run ended or is being stopped before it began: start nothing
    }
    let board = desk.board;
    // This host's own commands for the board's profiles, if it has any.
    let host_profiles = home.config()?.profiles;
    let mut feedback: Option<String> = None;
    let mut turn = 1;
    let mut exit: Option<Exit> = None;
    loop {
        let task = desk.store.get_task(task_id)?;
        let run = desk.store.get_run(run_id)?;
        if task.status != Status::Running
            || task.current_run_id != Some(run_id)
            || run.status != RunStatus::Running
        {
            break; // reclaimed, stopped or settled meanwhile: nothing (more) to run
        }
        let review = run.lane == Lane::Review;
        let profile_name = if review { task.reviewer.as_deref() } else { task.assignee.as_deref() };
        let Some(profile) = profile_name.and_then(|a| board.config.profiles.get(a)) else {
            let why = format!("card {task_id} has no spawnable profile ({})", profile_name.unwrap_or("none"));
            exit = Some(Exit { code: Some(127), signal: None, last_output: Some(why) });
            break;
        };
        let workspace = crate::workspace::path_for(board, &task)?;
        if turn == 1 {
            let branch = (task.workspace_kind == crate::model::WorkspaceKind::Worktree)
                .then(|| crate::workspace::branch_for(&task));
            desk.store.record_workspace(run_id, &workspace.display().to_string(), branch.as_deref())?;
        }
        let files = board.card_files(task_id);
        std::fs::write(&files.context, worker::context::render(board, desk.store, task_id, review)?)
            .with_context(|| format!("cannot write {}", files.context.display()))?;
        let claim_lock = task.claim_lock.clone().unwrap_or_default();
        let env = WorkerEnv {
            home,
            board,
            task: &task,
            run_id,
            claim_lock: &claim_lock,
            workspace: &workspace,
            context_file: &files.context,
            goal_turn: Some(turn),
            goal_feedback: feedback.as_deref(),
            review,
        };
        let own = profile_name.and_then(|name| host_profiles.get(name));
        let command = own.map_or(&profile.command, |own| &own.command);
        let mut profile_env = profile.env.clone();
        profile_env.extend(own.iter().flat_map(|own| own.env.clone()));
        let profile_env: Vec<(String, String)> = profile_env.into_iter().collect();
        let log = worker::open_log(board, task_id).context("cannot open the card's log")?;
        // Where this turn's output begins (after any rotation open_log did).
        let offset = log.metadata().map_or(0, |m| m.len());
        let mut child = match worker::start_worker(command, &profile_env, &env, log) {
            Ok(child) => child,
            Err(e) => {
                eprintln!("kanban supervise: {e:#}");
                let why = worker::last_output_line(&files.log, offset).or_else(|| Some(format!("{e:#}")));
                exit = Some(Exit { code: Some(127), signal: None, last_output: why });
                break;
            }
        };
        // Best effort: the worker is findable through the session whether or not this is recorded.
        if let Some(w) = ProcessId::of_child(&child) {
            let recorded = desk.store.record_supervision(
                run_id,
                None,
                Some((i64::from(w.pid), w.start as i64)),
                crate::clock::now(),
            );
            if let Err(e) = recorded {
                tracing::warn!(task = %task_id, error = %e, "could not record the worker's pid");
            }
        }
        let mut ended = wait_watching(desk, &mut child, me, run_id)?;
        if ended.code != Some(0) {
            ended.last_output = worker::last_output_line(&files.log, offset);
        }
        let Some((after, after_run)) = read_after_exit(desk, task_id, run_id) else {
            exit = Some(ended); // recorded (or left in the exit file) like any exit
            break;
        };
        let no_terminal_call = after.status == Status::Running
            && after.current_run_id == Some(run_id)
            && after_run.status == RunStatus::Running;
        if task.goal_mode && !review && no_terminal_call && ended.code == Some(0) {
            let judge = board.config.goal.judge.clone();
            let mut log = worker::open_log(board, task_id)?;
            let deadline = Duration::from_secs(board.config.goal.judge_timeout_seconds.max(1) as u64);
            let verdict = match &judge {
                Some(judge) => worker::run_judge(judge, &profile_env, &env, &mut log, deadline),
                None => Verdict::Blocked("goal card, but the board has no [goal] judge configured".into()),
            };
            match apply_verdict(desk, &task, run_id, turn, verdict) {
                Ok(Some(next)) => {
                    turn += 1;
                    feedback = Some(next);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(task = %task_id, run = run_id, error = %e, "the judge's verdict was not applied")
                }
            }
        }
        exit = Some(ended);
        break;
    }
    finish_run(desk, me, task_id, run_id, exit)
}

/// Apply the goal judge's verdict on turn `turn` of run `run_id`: complete, block, or record the next turn
/// (whose feedback is returned, for the loop to run it).
fn apply_verdict(
    desk: &mut Desk,
    task: &crate::model::Task,
    run_id: i64,
    turn: i64,
    verdict: Verdict,
) -> anyhow::Result<Option<String>> {
    let board = desk.board;
    let task_id = task.id.as_str();
    // Every write names this run: a judge of an older attempt can never touch a newer one.
    let by = super::cards::By::Worker { run: run_id };
    let action = match verdict {
        Verdict::Done(result) => {
            let result = (!result.is_empty()).then_some(result);
            Action::Complete { result, summary: Some("goal judge ruled done".into()) }
        }
        Verdict::Continue(next) => {
            let budget = worker::goal_max_turns(board, task);
            if turn < budget {
                desk.store.record_goal_turn(task_id, run_id, turn + 1, &next, crate::clock::now())?;
                return Ok(Some(next));
            }
            let reason = format!(
                "goal turn budget exhausted: {turn} of {budget} turns used without the judge ruling done; review needed"
            );
            Action::Block { reason: Some(reason), kind: Some("goal_budget".into()), sticky: true }
        }
        Verdict::Blocked(reason) => {
            Action::Block { reason: Some(reason), kind: Some("goal_judge".into()), sticky: true }
        }
    };
    super::cards::act(desk, task_id, by, action)?;
    Ok(None)
}

/// Set by SIGUSR1: whoever requests a stop of this run says so (see [`super::stop::notify`]).
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: nix::libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::Relaxed);
}

/// Listen for stop requests (SIGUSR1) for the rest of this process.
fn listen_for_stops() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(SigHandler::Handler(on_stop_signal), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    if let Err(e) = unsafe { sigaction(Signal::SIGUSR1, &action) } {
        tracing::warn!(error = %e, "cannot listen for stop requests; falling back to polling the store");
    }
}

/// How often a supervisor looks at its run while its worker runs, in case a stop request's signal was lost.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Wait for the worker, watching for a stop of the run: once one is requested, the worker's processes
/// get SIGTERM, and after the board's grace (counted from the request) SIGKILL, until the worker is gone.
/// An attempt that ended under its worker without the worker's own report (another host requeued the
/// card while this one was frozen or cut off) is stopped the same way: its card runs elsewhere now.
fn wait_watching(
    desk: &mut Desk,
    child: &mut std::process::Child,
    me: ProcessId,
    run_id: i64,
) -> anyhow::Result<Exit> {
    let session = Session { leader: me };
    let grace = desk.board.config.dispatch.kill_grace_seconds;
    let mut stop: Option<i64> = None; // when the stop was requested (real seconds)
    let mut termed = false;
    let mut looked = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            use std::os::unix::process::ExitStatusExt;
            return Ok(Exit {
                code: status.code().map(i64::from),
                signal: status.signal().map(i64::from),
                last_output: None,
            });
        }
        if stop.is_none() && (STOP_REQUESTED.swap(false, Ordering::Relaxed) || looked.elapsed() >= POLL_EVERY)
        {
            looked = std::time::Instant::now();
            match desk.store.get_run(run_id) {
                Ok(run) if run.status == RunStatus::Stopping => {
                    stop = Some(run.stop_requested_at.unwrap_or_else(super::real_now))
                }
                Ok(run) if run.status == RunStatus::Ended && !run.outcome.is_some_and(Outcome::is_report) => {
                    tracing::warn!(
                        run = run_id,
                        outcome = run.outcome.map(Outcome::as_str).unwrap_or("none"),
                        "the attempt was ended under its worker (its card was requeued); stopping the worker"
                    );
                    stop = Some(super::real_now())
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(run = run_id, error = %e, "cannot read the run while waiting"),
            }
        }
        if let Some(requested) = stop {
            if !termed {
                session.signal(nix::sys::signal::Signal::SIGTERM, Some(me));
                termed = true;
            }
            if super::real_now() - requested >= grace {
                session.kill(Some(me));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// After the worker ended: make the exit durable, stop the attempt's leftovers, record the exit, and
/// finish whatever the card's new state asks for.
fn finish_run(
    desk: &mut Desk,
    me: ProcessId,
    task_id: &str,
    run_id: i64,
    exit: Option<Exit>,
) -> anyhow::Result<()> {
    let board = desk.board;
    if let Some(exit) = &exit
        && let Err(e) = worker::write_exit_file(board, task_id, run_id, exit)
    {
        tracing::warn!(task = %task_id, error = %e, "cannot write the exit file");
    }
    // No process of the attempt may outlive it: whatever the worker left in the session goes now, before
    // the card can be requeued beside it.
    let grace = Duration::from_secs(board.config.dispatch.kill_grace_seconds.max(0) as u64);
    let session = Session { leader: me };
    if let Stopped::Stuck(pids) = session.stop(grace, Some(me)) {
        tracing::error!(task = %task_id, ?pids, "processes of the attempt survived SIGKILL");
        desk.store.record_stop_pending(
            task_id,
            run_id,
            json!({"pids": pids, "reason": "alive after SIGKILL"}),
            crate::clock::now(),
        )?;
    }
    if let Some(exit) = &exit {
        record_exit_with_retry(desk, task_id, run_id, exit)?;
    }
    let run = desk.store.get_run(run_id)?;
    if run.status == RunStatus::Stopping {
        stop::finish(desk, task_id, run_id)?;
        return Ok(());
    }
    let task = desk.store.get_task(task_id)?;
    if task.current_run_id != Some(run_id) {
        // The worker (or the judge) ended the run with a terminal call: clean up now that it is gone.
        stop::report_cleanup(board, &task);
    }
    Ok(())
}

/// The card and the run as the worker left them, read with the same retries as recording an exit (the
/// store may be briefly unreachable when the worker ends); `None` when the store stayed out of reach.
fn read_after_exit(
    desk: &mut Desk,
    task_id: &str,
    run_id: i64,
) -> Option<(crate::model::Task, crate::model::Run)> {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=RECORD_RETRIES {
        match desk.store.get_task(task_id).and_then(|task| Ok((task, desk.store.get_run(run_id)?))) {
            Ok(read) => return Some(read),
            Err(e) if attempt < RECORD_RETRIES => {
                tracing::warn!(task = %task_id, run = run_id, error = %e, attempt, "cannot read the card after its worker ended; retrying");
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(task = %task_id, run = run_id, error = %e, "cannot read the card after its worker ended");
            }
        }
    }
    None
}

/// Record the exit, retrying with backoff (a locked or briefly unreachable store must not turn an exit
/// into a crash); the exit file stays until the store has it.
fn record_exit_with_retry(desk: &mut Desk, task_id: &str, run_id: i64, exit: &Exit) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match desk.store.record_exit(
            run_id,
            exit.code,
            exit.signal,
            exit.last_output.as_deref(),
            crate::clock::now(),
        ) {
            Ok(_) => {
                worker::remove_exit_file(desk.board, task_id, run_id);
                return Ok(());
            }
            Err(e) if attempt < RECORD_RETRIES => {
                tracing::warn!(task = %task_id, run = run_id, error = %e, attempt, "cannot record the exit yet; retrying");
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!(
                    "cannot record the exit of run {run_id}; it is kept in {} for the next tick",
                    desk.board.exit_file(task_id, run_id).display()
                )));
            }
        }
    }
}

/// Apply a verdict of the dispatcher on a run whose exit only the exit file knows (the supervisor died
/// before it could record it): record it, so the tick classifies it like any other.
pub fn recover_exit(desk: &mut Desk, task_id: &str, run_id: i64) -> anyhow::Result<bool> {
    let Some(exit) = worker::read_exit_file(desk.board, task_id, run_id) else { return Ok(false) };
    desk.store.record_exit(
        run_id,
        exit.code,
        exit.signal,
        exit.last_output.as_deref(),
        crate::clock::now(),
    )?;
    worker::remove_exit_file(desk.board, task_id, run_id);
    tracing::info!(task = %task_id, run = run_id, "recovered a worker's exit from its exit file");
    Ok(true)
}
