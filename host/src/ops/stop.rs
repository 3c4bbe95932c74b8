//! Stopping a card's worker: the one path every front end takes to end a running attempt.
//!
//! A stop has two steps. First its end is decided and recorded ([`crate::store::Store::request_stop`]):
//! the run becomes `stopping` with its outcome, so no concurrent tick can call it a crash and its worker's
//! reports are refused. Then its processes are stopped (SIGTERM to every process of the attempt's session,
//! the grace, SIGKILL, and a check that none is left), and only then does the card move on
//! ([`finish`]): a card is never requeued beside its old worker. If the processes cannot be confirmed
//! gone, the card waits, and a `stop_pending` event says so.
//!
//! Who drives the second step: an operator's command waits for it ([`stop_card`], a few seconds at
//! most); the run's supervisor, whose worker just got the SIGTERM, finishes it when its wait returns; and
//! the dispatcher, which never blocks, advances any stop still pending on each tick ([`advance`]),
//! escalating to SIGKILL once the grace has passed and killing a supervisor that is itself stuck.
//! Only processes of this host's claims are ever signalled.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use super::Desk;
use crate::board::Board;
use crate::lifecycle::Action;
use crate::model::{Run, RunStatus, Status, Task};
use crate::process::{ProcessId, ProcessTable, Session, Stopped};
use crate::store::{Applied, RunningCard};
use crate::workspace::{self, Cleanup};

/// How long past the grace a stop waits for a live supervisor to finish it before the supervisor is
/// considered stuck and killed too.
pub const SUPERVISOR_MARGIN: i64 = 10;

/// The processes of a run: the session its supervisor leads.
pub fn session_of(run: &Run) -> Option<Session> {
    ProcessId::from_parts(run.supervisor_pid, run.supervisor_start).map(|leader| Session { leader })
}

/// What an operator's stop came to.
#[derive(Debug)]
pub enum StopOutcome {
    /// The worker is gone and the action was applied: the card as it is now, and whether there was a
    /// worker to stop at all (a card created running by hand has none).
    Finished(Box<Task>, bool),
    /// The decision is recorded, but the worker's processes are not confirmed gone yet (another host's
    /// worker, or one that survived SIGKILL); the dispatcher finishes the stop.
    Pending { run_id: i64, why: String },
}

/// After a card's state changed: clean its workspace if it closed (done or archived), in every front end
/// alike. A running card is never cleaned here: its worker's supervisor does it once the worker is gone.
pub fn after_change(board: &Board, task: &Task) -> Cleanup {
    if task.status.is_closed() { workspace::cleanup(board, task) } else { Cleanup::Nothing }
}

/// Stop the running card `id` and apply `action` once its worker is gone. `expected_run` names the run to
/// stop (a command that read the card earlier); by default, the card's current run. Refused, stopping
/// nothing, if that run is no longer the card's current one.
pub fn stop_card(
    desk: &mut Desk,
    id: &str,
    expected_run: Option<i64>,
    action: Action,
    reason: &str,
) -> anyhow::Result<StopOutcome> {
    let task = desk.store.get_task(id)?;
    let Some(run_id) = expected_run.or(task.current_run_id).filter(|_| task.status == Status::Running) else {
        anyhow::bail!("card {id} is {}; it has no worker to stop", task.status);
    };
    let now = crate::clock::now();
    desk.store.request_stop(id, run_id, &action, reason, super::real_now(), now)?;
    let run = desk.store.get_run(run_id)?;
    // A card running under no claim at all (created running by hand) has no process anywhere to stop.
    let claimed = run.host_id.is_some() || task.claim_host.is_some() || task.claim_lock.is_some();
    let local =
        desk.is_local(run.host_id.as_deref().or(task.claim_host.as_deref()), task.claim_lock.as_deref());
    if claimed && !local {
        return Ok(StopOutcome::Pending {
            run_id,
            why: format!(
                "its worker runs on another host ({}); that host's dispatcher stops it",
                task.claim_lock.as_deref().unwrap_or("unknown")
            ),
        });
    }
    let grace = Duration::from_secs(desk.board.config.dispatch.kill_grace_seconds.max(0) as u64);
    if let Some(session) = session_of(&run) {
        let supervisor = session.leader.is_alive().then_some(session.leader);
        if let Some(supervisor) = supervisor {
            notify(supervisor);
        }
        if let Stopped::Stuck(pids) = session.stop(grace, supervisor) {
            desk.store.record_stop_pending(
                id,
                run_id,
                json!({"pids": pids, "reason": "alive after SIGKILL"}),
                now,
            )?;
            return Ok(StopOutcome::Pending { run_id, why: format!("processes {pids:?} survived SIGKILL") });
        }
        // The supervisor, whose worker just ended, finishes the stop itself; give it a moment.
        if let Some(supervisor) = supervisor {
            let deadline = Instant::now() + Duration::from_secs(3);
            while supervisor.is_alive() && Instant::now() < deadline {
                if desk.store.get_run(run_id)?.status == RunStatus::Ended {
                    return Ok(StopOutcome::Finished(Box::new(desk.store.get_task(id)?), true));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if supervisor.is_alive() {
                // A supervisor that does not finish its own stop is stuck: it goes too.
                session.kill(None);
            }
        }
    }
    let task = match finish(desk, id, run_id)? {
        Some(applied) => applied.task,
        None => desk.store.get_task(id)?, // the supervisor finished it after all
    };
    Ok(StopOutcome::Finished(Box::new(task), run.supervisor_pid.is_some()))
}

/// Finish a stop whose processes are gone: apply its action, then the side effects of the card's new
/// state. `None` if someone else finished it first.
pub fn finish(desk: &mut Desk, id: &str, run_id: i64) -> anyhow::Result<Option<Applied>> {
    let limits = desk.board.config.dispatch.limits();
    let Some(applied) = desk.store.finish_stop(id, run_id, limits, crate::clock::now())? else {
        return Ok(None);
    };
    report_cleanup(desk.board, &applied.task);
    Ok(Some(applied))
}

/// Clean up after a card changed and say what happened to a workspace that had to stay.
pub fn report_cleanup(board: &Board, task: &Task) {
    match after_change(board, task) {
        Cleanup::Deleted(path) => tracing::info!(path = %path.display(), "workspace removed"),
        Cleanup::Kept { path, reason } if task.workspace_kind != crate::model::WorkspaceKind::Dir => {
            tracing::warn!(task = %task.id, path = %path.display(), %reason, "workspace kept");
        }
        _ => {}
    }
}

/// The dispatcher's first step of a stop: record the decision and send SIGTERM to the attempt's processes
/// (its supervisor spared: it finishes the stop when its worker ends). Never waits.
pub fn request(desk: &mut Desk, card: &RunningCard, action: Action, reason: &str) -> anyhow::Result<bool> {
    let now = crate::clock::now();
    match desk.store.request_stop(&card.task.id, card.run.id, &action, reason, super::real_now(), now) {
        Ok(_) => {}
        Err(crate::store::StoreError::Refused(why)) => {
            tracing::debug!(task = %card.task.id, %why, "stop not requested");
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(session) = session_of(&card.run) {
        let supervisor = session.leader.is_alive().then_some(session.leader);
        session.signal(Signal::SIGTERM, supervisor);
        if let Some(supervisor) = supervisor {
            notify(supervisor); // it escalates after the grace, without waiting for a tick
        }
    }
    Ok(true)
}

/// What [`advance`] did for a stopping run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// Processes remain; they were signalled (or are left to their supervisor) and the next tick looks
    /// again.
    Waiting,
    /// The stop finished: the card moved on.
    Finished(Status),
    /// Someone else finished it meanwhile.
    Nothing,
}

/// The dispatcher's later steps of a stop, never blocking: while the grace runs the supervisor handles
/// its worker; past the grace every process but the supervisor gets SIGKILL; past the grace and
/// [`SUPERVISOR_MARGIN`] the supervisor too. Once no process is left, the stop finishes. A stop of another
/// host's worker is finished here only when that host has shown no sign of life since the claim expired.
pub fn advance(
    desk: &mut Desk,
    card: &RunningCard,
    table: &ProcessTable,
    host_lost: bool,
) -> anyhow::Result<Advance> {
    let run = &card.run;
    let local = desk.is_local(
        run.host_id.as_deref().or(card.task.claim_host.as_deref()),
        card.task.claim_lock.as_deref(),
    );
    if !local && !host_lost {
        return Ok(Advance::Waiting);
    }
    if local && let Some(session) = session_of(run) {
        let members = table.members(session.leader);
        if !members.is_empty() {
            let age = super::real_now() - run.stop_requested_at.unwrap_or(0);
            let grace = desk.board.config.dispatch.kill_grace_seconds;
            let supervisor_alive = table.is_alive(session.leader);
            let others: Vec<ProcessId> = members.iter().copied().filter(|p| *p != session.leader).collect();
            if age >= grace + SUPERVISOR_MARGIN {
                crate::process::signal_all(&members, Signal::SIGKILL);
            } else if age >= grace {
                crate::process::signal_all(&others, Signal::SIGKILL);
            } else if !supervisor_alive {
                crate::process::signal_all(&others, Signal::SIGTERM);
            }
            if age >= 3 * grace + SUPERVISOR_MARGIN {
                let pids: Vec<i32> = members.iter().map(|p| p.pid).collect();
                desk.store.record_stop_pending(
                    &card.task.id,
                    run.id,
                    json!({"pids": pids, "reason": "alive after SIGKILL"}),
                    crate::clock::now(),
                )?;
            }
            return Ok(Advance::Waiting);
        }
    }
    Ok(match finish(desk, &card.task.id, run.id)? {
        Some(applied) => Advance::Finished(applied.transition.to),
        None => Advance::Nothing,
    })
}

/// Tell the supervisor of a run that a stop was requested, so it escalates at once instead of at its next
/// look at the store.
pub fn notify(supervisor: ProcessId) {
    supervisor.signal(nix::sys::signal::Signal::SIGUSR1);
}
