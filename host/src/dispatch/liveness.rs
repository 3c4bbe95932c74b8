//! What the tick does with one running card, as a pure function of what it observed: [`assess`].
//!
//! Every running card gets every check on every tick, in the order of `docs/dispatcher.md`: a stop in
//! progress is advanced; another host's claim is left alone unless that host is lost; a recorded exit is
//! classified (once nothing of the attempt is left); a live attempt is held to its time limits (max
//! runtime, a stale heartbeat, the stale timeout) before its claim is extended; a dead one is a crash, a
//! reclaim or a lost spawn once past the crash grace. Extending a claim never skips the time limits.

use serde_json::json;

use crate::board::DispatchConfig;
use crate::lifecycle::Action;
use crate::model::{Outcome, Run, RunStatus, Task};

/// What the tick saw of a running card's attempt, outside the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// The claim is this host's (only then are its processes looked at, or signalled).
    pub local: bool,
    /// Another host holds the claim, the claim has expired, and that host has shown no sign of life
    /// since.
    pub host_lost: bool,
    /// The run recorded its supervisor.
    pub supervisor_known: bool,
    pub supervisor_alive: bool,
    /// Processes of the attempt's session other than the supervisor (the worker, its children, a judge).
    pub workers_alive: bool,
    /// The worker's exit is in its exit file (written by the supervisor before it told the store).
    pub exit_file: bool,
}

/// The tick's decision for one running card.
#[derive(Debug, Clone, PartialEq)]
pub enum Assessment {
    /// Nothing to do this tick.
    Nothing,
    /// Live and within its limits, but the claim expired: extend it.
    Extend,
    /// A stop is in progress: advance it (escalate, or finish once nothing is left).
    Advance,
    /// The worker exited but left processes behind and its supervisor is gone: stop them first.
    StopLeftovers,
    /// The exit is only in the exit file: record it, then classify it.
    RecoverExit,
    /// The recorded exit decides.
    Classify,
    /// Stop the live attempt, then settle it with this verdict.
    Stop { verdict: Action, reason: String },
    /// Nothing of the attempt is alive: settle now. `unless_exited`: an exit recorded meanwhile wins.
    Settle { verdict: Action, unless_exited: bool },
}

fn verdict(outcome: Outcome, error: String, detail: serde_json::Value, wedged: bool) -> Action {
    Action::Settle { outcome, error: Some(error), detail, wedged }
}

/// Decide what to do with `task`, running on `run`, given what was observed and the board's limits.
pub fn assess(task: &Task, run: &Run, seen: &Observed, d: &DispatchConfig, now: i64) -> Assessment {
    if run.status == RunStatus::Stopping {
        return Assessment::Advance;
    }
    if !seen.local {
        // Never a process of another host; its claim is requeued only when the host is gone.
        return if seen.host_lost {
            let error =
                "its host stopped working the board (no sign of life since the claim expired)".to_string();
            Assessment::Settle {
                verdict: verdict(
                    Outcome::Reclaimed,
                    error,
                    json!({"host_lost": true, "claim_lock": task.claim_lock}),
                    false,
                ),
                unless_exited: true,
            }
        } else {
            Assessment::Nothing
        };
    }
    if run.status == RunStatus::Exited || seen.exit_file {
        if seen.workers_alive {
            return if seen.supervisor_alive { Assessment::Nothing } else { Assessment::StopLeftovers };
        }
        return if run.status == RunStatus::Exited { Assessment::Classify } else { Assessment::RecoverExit };
    }
    let started = run.started_at;
    let claim_expired = task.claim_expires.is_some_and(|exp| exp < now);
    if seen.supervisor_alive || seen.workers_alive {
        if let Some(max) = task.max_runtime_seconds
            && now - started > max
        {
            return Assessment::Stop {
                verdict: verdict(
                    Outcome::TimedOut,
                    format!("ran longer than max_runtime ({max}s)"),
                    json!({"max_runtime_seconds": max, "ran_seconds": now - started}),
                    false,
                ),
                reason: "max_runtime".into(),
            };
        }
        let heartbeat_age = task.last_heartbeat_at.map(|hb| now - hb);
        if let Some(age) = heartbeat_age.filter(|age| *age > d.heartbeat_stale_seconds) {
            return Assessment::Stop {
                verdict: verdict(
                    Outcome::Reclaimed,
                    "heartbeat stale".into(),
                    json!({"heartbeat_stale": true, "worker_alive": true, "heartbeat_age": age}),
                    true,
                ),
                reason: "heartbeat stale".into(),
            };
        }
        let silent = now - task.last_heartbeat_at.unwrap_or(started);
        if d.stale_timeout_seconds > 0 && silent > d.stale_timeout_seconds {
            return Assessment::Stop {
                verdict: verdict(
                    Outcome::Stale,
                    format!("no heartbeat for {silent}s"),
                    json!({"silent_seconds": silent, "stale_timeout_seconds": d.stale_timeout_seconds}),
                    true,
                ),
                reason: "stale".into(),
            };
        }
        return if claim_expired { Assessment::Extend } else { Assessment::Nothing };
    }
    // Nothing of the attempt is alive, and no exit was recorded anywhere.
    if now - started < d.crash_grace_seconds {
        return Assessment::Nothing;
    }
    let settle = |v| Assessment::Settle { verdict: v, unless_exited: true };
    if !seen.supervisor_known {
        return settle(verdict(
            Outcome::SpawnLost,
            "the dispatcher stopped before the supervisor started".into(),
            json!({}),
            false,
        ));
    }
    if claim_expired {
        let age = task.last_heartbeat_at.map(|hb| now - hb);
        return settle(verdict(
            Outcome::Reclaimed,
            "worker gone".into(),
            json!({"heartbeat_stale": false, "worker_alive": false, "heartbeat_age": age}),
            false,
        ));
    }
    settle(verdict(
        Outcome::Crashed,
        "the worker and its supervisor are gone without a recorded exit".into(),
        json!({"supervisor_pid": run.supervisor_pid, "worker_pid": run.worker_pid}),
        false,
    ))
}

/// What the tick does about an ended attempt whose session it still watches: a worker can report
/// (`kanban complete`) and leave a child running; its supervisor stops such leftovers once the worker
/// exits, but a supervisor killed first (kill -9, the OOM killer) leaves them to the tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// The supervisor lives and does the cleanup; look again next tick.
    Wait,
    /// Nothing of the attempt is left: stop watching it.
    Done,
    /// Leftovers and no supervisor, within the kill grace since the run ended: SIGTERM.
    Terminate,
    /// Leftovers and no supervisor, past the grace: SIGKILL.
    Kill,
}

/// Pure: the sweep of one ended attempt, from what `/proc` showed.
pub fn sweep(ended_at: i64, supervisor_alive: bool, leftovers: bool, kill_grace: i64, now: i64) -> Sweep {
    match (supervisor_alive, leftovers) {
        (true, _) => Sweep::Wait,
        (false, false) => Sweep::Done,
        (false, true) if now - ended_at < kill_grace => Sweep::Terminate,
        (false, true) => Sweep::Kill,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{run, task};

    const NOW: i64 = 10_000;

    fn card() -> (Task, Run) {
        let mut t = task("t_00000001");
        t.status = crate::model::Status::Running;
        t.current_run_id = Some(1);
        t.claim_expires = Some(NOW + 100);
        let mut r = run(1, "t_00000001");
        r.started_at = NOW - 60;
        r.supervisor_pid = Some(100);
        r.supervisor_start = Some(1);
        (t, r)
    }

    fn alive() -> Observed {
        Observed {
            local: true,
            supervisor_known: true,
            supervisor_alive: true,
            workers_alive: true,
            ..Observed::default()
        }
    }

    fn dead() -> Observed {
        Observed { local: true, supervisor_known: true, ..Observed::default() }
    }

    fn outcome(a: &Assessment) -> Option<Outcome> {
        match a {
            Assessment::Stop { verdict, .. } | Assessment::Settle { verdict, .. } => verdict.run_outcome(),
            _ => None,
        }
    }

    /// One row per line of the tick order in docs/dispatcher.md.
    #[test]
    fn every_row_of_the_tick_order() {
        let d = DispatchConfig::default();
        let (t, r) = card();
        // A stop in progress is advanced, whatever else holds.
        let mut stopping = r.clone();
        stopping.status = RunStatus::Stopping;
        assert_eq!(assess(&t, &stopping, &alive(), &d, NOW), Assessment::Advance);
        // Another host's claim: never touched, until the host is lost.
        let foreign = Observed { local: false, ..alive() };
        assert_eq!(assess(&t, &r, &foreign, &d, NOW), Assessment::Nothing);
        let lost = Observed { local: false, host_lost: true, ..Observed::default() };
        assert_eq!(outcome(&assess(&t, &r, &lost, &d, NOW)), Some(Outcome::Reclaimed));
        // A recorded exit is classified, once the attempt's leftovers are gone.
        let mut exited = r.clone();
        exited.status = RunStatus::Exited;
        assert_eq!(assess(&t, &exited, &dead(), &d, NOW), Assessment::Classify);
        assert_eq!(
            assess(&t, &exited, &Observed { supervisor_alive: false, ..alive() }, &d, NOW),
            Assessment::StopLeftovers
        );
        assert_eq!(
            assess(&t, &exited, &alive(), &d, NOW),
            Assessment::Nothing,
            "its supervisor is stopping them"
        );
        // An exit only the exit file knows is recovered.
        let file = Observed { exit_file: true, ..dead() };
        assert_eq!(assess(&t, &r, &file, &d, NOW), Assessment::RecoverExit);
        // Live and within limits: nothing; its claim expired: extended.
        assert_eq!(assess(&t, &r, &alive(), &d, NOW), Assessment::Nothing);
        let mut expired = t.clone();
        expired.claim_expires = Some(NOW - 1);
        assert_eq!(assess(&expired, &r, &alive(), &d, NOW), Assessment::Extend);
        // Dead within the crash grace: nothing yet; past it: a crash, a reclaim (claim expired), or a lost
        // spawn (no supervisor ever recorded).
        let mut young = r.clone();
        young.started_at = NOW - 5;
        assert_eq!(assess(&t, &young, &dead(), &d, NOW), Assessment::Nothing);
        assert_eq!(outcome(&assess(&t, &r, &dead(), &d, NOW)), Some(Outcome::Crashed));
        assert_eq!(outcome(&assess(&expired, &r, &dead(), &d, NOW)), Some(Outcome::Reclaimed));
        let never = Observed { supervisor_known: false, ..dead() };
        assert_eq!(outcome(&assess(&t, &r, &never, &d, NOW)), Some(Outcome::SpawnLost));
    }

    #[test]
    fn time_limits_apply_even_when_the_claim_has_expired_and_to_a_worker_whose_supervisor_alone_lives() {
        let d = DispatchConfig::default();
        let (mut t, mut r) = card();
        t.claim_expires = Some(NOW - 2000); // ticks farther apart than the claim TTL
        t.max_runtime_seconds = Some(1800);
        r.started_at = NOW - 3800;
        t.last_heartbeat_at = Some(NOW - 10);
        assert_eq!(outcome(&assess(&t, &r, &alive(), &d, NOW)), Some(Outcome::TimedOut));
        // The worker is gone but its supervisor (running a hung goal judge) is not: still held to the limit.
        let judge_only = Observed { workers_alive: false, ..alive() };
        assert_eq!(outcome(&assess(&t, &r, &judge_only, &d, NOW)), Some(Outcome::TimedOut));
        // A heartbeat older than heartbeat_stale_seconds: stopped and requeued, marked wedged.
        t.max_runtime_seconds = None;
        t.last_heartbeat_at = Some(NOW - 3601);
        match assess(&t, &r, &alive(), &d, NOW) {
            Assessment::Stop { verdict: Action::Settle { outcome, wedged, .. }, .. } => {
                assert_eq!(outcome, Outcome::Reclaimed);
                assert!(wedged);
            }
            other => panic!("{other:?}"),
        }
        // No heartbeat ever, past the stale timeout: stale, wedged.
        t.last_heartbeat_at = None;
        r.started_at = NOW - 14_401;
        assert_eq!(outcome(&assess(&t, &r, &alive(), &d, NOW)), Some(Outcome::Stale));
    }

    #[test]
    fn an_ended_attempts_leftovers_are_left_to_a_live_supervisor_else_terminated_then_killed() {
        assert_eq!(sweep(NOW, true, true, 5, NOW + 60), Sweep::Wait, "its supervisor cleans up");
        assert_eq!(sweep(NOW, true, false, 5, NOW), Sweep::Wait, "its supervisor still runs");
        assert_eq!(sweep(NOW, false, false, 5, NOW), Sweep::Done);
        assert_eq!(sweep(NOW, false, true, 5, NOW + 4), Sweep::Terminate);
        assert_eq!(sweep(NOW, false, true, 5, NOW + 5), Sweep::Kill);
    }
}
