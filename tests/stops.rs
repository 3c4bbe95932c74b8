//! Failure semantics (issue 10): every stop really stops (a whole attempt, whatever its processes do, and
//! only then does the card move on), every operator action on a running card stops its worker first,
//! every verdict hits its own attempt, time limits fire however far apart ticks are, wedged workers and
//! rate limits meet the breaker the way docs/dispatcher.md says, and a worker may do only what the worker
//! scope allows. Real worker scripts; the clock moves only through `KANBAN_NOW`; asynchronous effects are
//! polled, never timed.

use serde_json::Value;

use crate::common::*;

/// Hangs until killed.
const HANG: &str = "echo $$ > \"$OUT/pid-$KANBAN_RUN_ID\"\nsleep 600";

/// A board with one profile `p` running `body`, plus `extra` TOML (a `[dispatch]` table, ...). The kill
/// grace is one second, so a stop that needs SIGKILL does not hold a test for five.
fn board(f: &Fleet, body: &str, extra: &str) {
    let script = f.script("worker.sh", body);
    let extra = if extra.contains("[dispatch]") {
        extra.replace("[dispatch]", "[dispatch]\nkill_grace_seconds = 1")
    } else {
        format!("[dispatch]\nkill_grace_seconds = 1\n{extra}")
    };
    f.write_board(&format!("{extra}\n{}", f.profile("p", &script, &[])));
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn run_of(f: &Fleet, id: &str, run: i64) -> Value {
    f.runs(id).into_iter().find(|r| r["id"] == run).unwrap_or_else(|| panic!("no run {run} of {id}"))
}

/// Wait until the card leaves `running` (a stop finishes once the attempt's processes are gone).
fn wait_moved_on(f: &Fleet, id: &str) {
    wait_for(&format!("{id} to leave running"), || f.status(id) != "running");
}

/// Every process of run `run` is gone (the worker and all it started).
fn assert_attempt_gone(f: &Fleet, run: i64, what: &str) {
    let left = run_processes(f.home(), run);
    assert!(left.is_empty(), "{what}: processes of run {run} outlived it: {left:?}");
}

// ---------------------------------------------------------------------------------------------------------
// 1. Stopping means the whole attempt is gone, confirmed, before the card moves on.

/// The worker's child ignores SIGTERM and leaves the worker's process group: the timeout still stops it,
/// and the card is requeued only once nothing of the attempt is left.
#[test]
fn a_timed_out_worker_whose_child_ignores_sigterm_leaves_nothing_behind() {
    let f = Fleet::new();
    let body = "(trap '' TERM; exec sleep 120) &\n(set -m; sleep 121 &)\nwait";
    board(&f, body, "");
    let id = f.create("stubborn child", &["--assignee", "p", "--max-runtime", "2"]);
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    wait_for("the attempt's three processes", || run_processes(f.home(), i(&run["id"])).len() >= 3);
    f.set_now(i(&run["started_at"]) + 3);
    let report = f.dispatch(&[]);
    assert_eq!(report["timed_out"], serde_json::json!([id]), "{report}");
    // The card stays running on its stopping run until every process of the attempt is gone.
    assert_eq!(f.status(&id), "running");
    assert_eq!(run_of(&f, &id, i(&run["id"]))["status"], "stopping");
    wait_moved_on(&f, &id);
    assert_attempt_gone(&f, i(&run["id"]), "timed out");
    assert_eq!(run_of(&f, &id, i(&run["id"]))["outcome"], "timed_out");
    // Respawned (past the crash backoff), it runs alone: only the new run's processes exist.
    f.advance(300);
    let report = f.dispatch(&[]);
    assert_eq!(task_ids(&report["spawned"]), vec![id.clone()], "{report}");
    let second = f.wait_worker(&id);
    assert_ne!(second["id"], run["id"]);
    assert_attempt_gone(&f, i(&run["id"]), "after the respawn");
}

/// A worker whose group leader crashed but left a child running: the child goes before the card is
/// requeued.
#[test]
fn a_crash_of_the_group_leader_takes_its_leftover_children_with_it() {
    let f = Fleet::new();
    board(&f, "sleep 300 &\n(set -m; sleep 301 &)\necho dying >&2\nexit 3", "");
    let id = f.create("leaky", &["--assignee", "p"]);
    let report = f.dispatch(&["--wait"]);
    assert_eq!(report["crashed"], serde_json::json!([id]), "{report}");
    let run = f.runs(&id)[0].clone();
    assert_eq!(run["exit_code"], 3);
    assert_attempt_gone(&f, i(&run["id"]), "a crashed attempt");
}

/// Is `pid` a live process (not a zombie)?
fn pid_alive(pid: i64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')').is_some_and(|at| !stat[at + 1..].trim_start().starts_with(['Z', 'X']))
}

/// A worker that reports and leaves a child running, whose supervisor is killed before it can stop that
/// child (kill -9, the OOM killer): the next ticks stop what is left of the ended attempt, SIGTERM within
/// the kill grace and SIGKILL after it (found by the chaos soak).
#[test]
fn leftovers_of_an_ended_attempt_whose_supervisor_died_are_stopped_by_the_tick() {
    let f = Fleet::new();
    let body =
        "(trap '' TERM; exec sleep 300) &\n\"$KANBAN_BIN\" complete \"$KANBAN_TASK\"\nkill -9 $PPID\nexit 0";
    board(&f, body, "");
    let id = f.create("reports and leaves a child", &["--assignee", "p"]);
    f.dispatch(&[]);
    wait_for("the card to be done", || f.status(&id) == "done");
    let run = f.runs(&id)[0].clone();
    let supervisor = i(&run["supervisor_pid"]);
    wait_for("the supervisor to be killed", || !pid_alive(supervisor));
    let left = run_processes(f.home(), i(&run["id"]));
    assert_eq!(left.len(), 1, "the child outlived its supervisor: {left:?}");

    // Within the grace: SIGTERM, which this child ignores.
    f.dispatch(&[]);
    assert_eq!(run_processes(f.home(), i(&run["id"])), left, "SIGTERM is ignored, the child lives on");
    // Past the grace: SIGKILL.
    f.advance(2);
    f.dispatch(&[]);
    wait_for("the leftover to be killed", || run_processes(f.home(), i(&run["id"])).is_empty());
}

/// A manual reclaim and a stale heartbeat stop the whole attempt too.
#[test]
fn a_reclaim_and_a_stale_heartbeat_stop_every_process_of_the_attempt() {
    let f = Fleet::new();
    let body = "\"$KANBAN_BIN\" heartbeat \"$KANBAN_TASK\"\n(trap '' TERM; exec sleep 120) &\nwait";
    board(&f, body, "");
    let id = f.create("reclaimed by hand", &["--assignee", "p"]);
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    wait_for("the heartbeat", || f.task(&id)["last_heartbeat_at"].is_i64());
    let out = f.run(&["reclaim", &id]);
    let stderr = expect_ok(&out, &"reclaim");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped the worker"), "{stderr}");
    assert_eq!(f.status(&id), "ready", "reclaim returns once the worker is gone");
    assert_attempt_gone(&f, i(&run["id"]), "reclaimed");

    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    wait_for("the heartbeat", || f.task(&id)["last_heartbeat_at"] == f.now());
    f.advance(3601);
    let report = f.dispatch(&[]);
    assert_eq!(report["reclaimed"], serde_json::json!([id]), "{report}");
    wait_moved_on(&f, &id);
    assert_attempt_gone(&f, i(&run["id"]), "heartbeat stale");
}

// ---------------------------------------------------------------------------------------------------------
// 2. A person's action on a running card stops its worker first, through one path.

#[test]
fn blocking_a_running_card_stops_its_worker_so_unblock_and_dispatch_run_one_worker() {
    let f = Fleet::new();
    board(&f, HANG, "");
    let id = f.create("blocked by hand", &["--assignee", "p"]);
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    let out = f.run(&["block", &id, "needs a decision"]);
    expect_ok(&out, &"block");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped the worker"));
    assert_eq!(f.status(&id), "blocked");
    assert_attempt_gone(&f, i(&run["id"]), "blocked");
    assert_eq!(run_of(&f, &id, i(&run["id"]))["outcome"], "blocked");
    f.ok(&["unblock", &id]);
    f.dispatch(&[]);
    let second = f.wait_worker(&id);
    // One worker for the card: the second run's.
    let live: Vec<i64> = f
        .runs(&id)
        .iter()
        .map(|r| i(&r["id"]))
        .filter(|run| !run_processes(f.home(), *run).is_empty())
        .collect();
    assert_eq!(live, vec![i(&second["id"])]);
}

#[test]
fn completing_a_running_card_stops_its_worker_before_its_scratch_workspace_is_deleted() {
    let f = Fleet::new();
    // The worker notes every second that it is still in its workspace.
    board(&f, "echo $$ > \"$OUT/pid\"\nwhile :; do date > here; sleep 1; done", "");
    let id = f.create("done by hand", &["--assignee", "p"]);
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    let workspace = f.board_dir("default").join("workspaces").join(&id);
    wait_for("the worker to write in its workspace", || workspace.join("here").exists());
    f.ok(&["complete", &id, "--result", "the human did it"]);
    assert_eq!(f.status(&id), "done");
    assert_attempt_gone(&f, i(&run["id"]), "completed by hand");
    assert!(!workspace.exists(), "the scratch workspace is removed once the worker is gone");
    let ended = run_of(&f, &id, i(&run["id"]));
    assert_eq!((ended["status"].as_str(), ended["outcome"].as_str()), (Some("ended"), Some("completed")));
    assert_eq!(f.task(&id)["result"], "the human did it");
}

#[test]
fn archiving_and_reassigning_a_running_card_stop_its_worker() {
    let f = Fleet::new();
    let script = f.script("worker.sh", HANG);
    f.write_board(&format!(
        "[dispatch]\nkill_grace_seconds = 1\n{}\n{}",
        f.profile("p", &script, &[]),
        f.profile("q", &script, &[])
    ));
    let a = f.create("archived while running", &["--assignee", "p"]);
    let b = f.create("reassigned while running", &["--assignee", "p"]);
    f.dispatch(&[]);
    let (run_a, run_b) = (f.wait_worker(&a), f.wait_worker(&b));
    f.ok(&["archive", &a]);
    assert_eq!(f.status(&a), "archived");
    assert_attempt_gone(&f, i(&run_a["id"]), "archived");
    assert_eq!(run_of(&f, &a, i(&run_a["id"]))["outcome"], "archived");
    // Without --reclaim a running card is refused, its worker untouched.
    f.fails(&["reassign", &b, "q"], 1);
    assert!(!run_processes(f.home(), i(&run_b["id"])).is_empty());
    f.ok(&["reassign", &b, "q", "--reclaim"]);
    assert_attempt_gone(&f, i(&run_b["id"]), "reassigned");
    let task = f.task(&b);
    assert_eq!((task["status"].as_str(), task["assignee"].as_str()), (Some("ready"), Some("q")));
}

// ---------------------------------------------------------------------------------------------------------
// 3, 21. A reclaim ends its own run first, as reclaimed, and only that run.

/// With a daemon ticking fast beside it, a reclaim is never settled as a crash: its run's end is recorded
/// before any signal, so the tick cannot see a dead worker without a recorded verdict.
#[test]
fn a_reclaim_beside_a_ticking_daemon_is_never_a_counted_crash() {
    let f = Fleet::new();
    board(&f, HANG, "[dispatch]\ncrash_grace_seconds = 0\n");
    let id = f.create("reclaimed ten times", &["--assignee", "p"]);
    let mut daemon =
        f.cmd(&["daemon", "--interval", "0.02"]).stderr(std::process::Stdio::null()).spawn().expect("daemon");
    for _ in 0..10 {
        let run = f.wait_worker(&id);
        let out = f.run(&["reclaim", &id, "--run", &i(&run["id"]).to_string()]);
        // A refusal is allowed only for a run the daemon settled first (it cannot have: the worker hangs).
        expect_ok(&out, &"reclaim");
        let ended = run_of(&f, &id, i(&run["id"]));
        assert_eq!(ended["outcome"], "reclaimed", "{ended}");
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(f.events_of(&id, "crashed").is_empty(), "a reclaim was recorded as a crash");
    assert_eq!(f.task(&id)["consecutive_failures"], 0);
    let manual = f.events_of(&id, "reclaimed");
    assert_eq!(manual.len(), 10, "{manual:?}");
}

#[test]
fn a_reclaim_names_the_run_it_stops_and_refuses_a_run_that_already_ended() {
    let f = Fleet::new();
    board(&f, HANG, "");
    let id = f.create("moved on", &["--assignee", "p"]);
    f.dispatch(&[]);
    let first = f.wait_worker(&id);
    f.ok(&["reclaim", &id]);
    f.dispatch(&[]);
    let second = f.wait_worker(&id);
    let err = f.fails(&["reclaim", &id, "--run", &i(&first["id"]).to_string()], 1);
    assert!(err.contains("no longer current"), "{err}");
    assert!(!run_processes(f.home(), i(&second["id"])).is_empty(), "the newer run's worker was touched");
    assert_eq!(run_of(&f, &id, i(&second["id"]))["status"], "running");
}

// ---------------------------------------------------------------------------------------------------------
// 22. A worker whose pid was never recorded is found through its session.

#[test]
fn a_worker_whose_pid_was_never_recorded_is_not_declared_dead_while_it_runs() {
    let f = Fleet::new();
    board(&f, HANG, "");
    let id = f.create("unrecorded", &["--assignee", "p"]);
    let t0 = f.now();
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    let worker = i(&run["worker_pid"]);
    // The supervisor dies, and the worker's pid is as if it had never been recorded.
    kill9(i(&run["supervisor_pid"]));
    wait_for("the supervisor to die", || !process_alive(i(&run["supervisor_pid"])));
    let conn = rusqlite::Connection::open(f.db_path("default")).unwrap();
    conn.execute(
        "UPDATE task_runs SET worker_pid = NULL, worker_start = NULL WHERE id = ?1",
        [run["id"].clone().as_i64()],
    )
    .unwrap();
    conn.execute("UPDATE tasks SET worker_pid = NULL WHERE id = ?1", [&id]).unwrap();
    f.set_now(t0 + 31);
    let report = f.dispatch(&[]);
    assert!(report["crashed"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(f.status(&id), "running");
    assert!(process_alive(worker), "the running worker was left alone");
    // Once it really is gone (its whole group: the shell and its sleep), it is a crash.
    kill9_group(worker);
    wait_for("the worker to die", || group_members(worker).is_empty());
    let report = f.dispatch(&[]);
    assert_eq!(report["crashed"], serde_json::json!([id]), "{report}");
}

// ---------------------------------------------------------------------------------------------------------
// 23. The tick never waits for a kill; every write takes its own time.

/// Real clock: a worker that ignores SIGTERM times out; the tick returns at once with the run `stopping`,
/// and the events of the whole story never go back in time.
#[test]
fn a_tick_hands_a_stubborn_kill_to_the_supervisor_and_event_times_never_go_back() {
    let f = Fleet::new();
    let script = f.script("w.sh", "trap '' TERM\necho $$ > \"$OUT/pid\"\nwhile :; do sleep 1; done");
    f.write_board(&format!("[dispatch]\nkill_grace_seconds = 2\n\n{}", f.profile("p", &script, &[])));
    let real = |args: &[&str]| {
        let mut cmd = f.cmd(args);
        cmd.env_remove("KANBAN_NOW");
        parse_json(&expect_ok(&cmd.output().unwrap(), &args), &args)
    };
    let id = real(&["create", "stubborn", "--assignee", "p", "--max-runtime", "1", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    real(&["dispatch", "--json"]);
    let run = f.wait_worker(&id);
    wait_for("the worker to ignore SIGTERM", || !f.out("pid").is_empty());
    std::thread::sleep(std::time::Duration::from_millis(2100)); // past max_runtime on the real clock
    let report = real(&["dispatch", "--json"]);
    assert_eq!(report["timed_out"], serde_json::json!([id]), "{report}");
    assert_eq!(run_of(&f, &id, i(&run["id"]))["status"], "stopping", "the tick did not wait for the kill");
    wait_moved_on(&f, &id);
    assert_attempt_gone(&f, i(&run["id"]), "after SIGKILL");
    let mut cmd = f.cmd(&["events", &id, "--json"]);
    cmd.env_remove("KANBAN_NOW");
    let events = parse_json_lines(&expect_ok(&cmd.output().unwrap(), &"events"), &"events");
    let times: Vec<i64> = events.iter().map(|e| i(&e["created_at"])).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "event times went back: {times:?}");
}

// ---------------------------------------------------------------------------------------------------------
// 4, 5, 6. Time limits that always fire.

/// Ticks farther apart than the claim TTL (a 15-minute cron with a 30-minute max runtime): extending the
/// expired claim must not skip the time limits.
#[test]
fn max_runtime_fires_when_ticks_are_farther_apart_than_the_claim_ttl() {
    let f = Fleet::new();
    board(&f, HANG, "");
    let id = f.create("long", &["--assignee", "p", "--max-runtime", "30m"]);
    let t0 = f.now();
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    f.set_now(t0 + 900 + 60);
    let report = f.dispatch(&[]);
    assert_eq!(report["claims_extended"], serde_json::json!([id]), "{report}");
    f.set_now(t0 + 1800 + 120);
    let report = f.dispatch(&[]);
    assert_eq!(report["timed_out"], serde_json::json!([id]), "{report}");
    wait_moved_on(&f, &id);
    assert_attempt_gone(&f, i(&run["id"]), "timed out");
}

/// A goal board: profile `p` runs `worker`, `[goal] judge` runs `judge`, plus `goal_extra` in `[goal]`.
fn goal_board(f: &Fleet, worker: &str, judge: &str, goal_extra: &str) {
    let worker = f.script("worker.sh", worker);
    let judge = f.script("judge.sh", judge);
    f.write_board(&format!(
        "[dispatch]\nkill_grace_seconds = 1\n\n[goal]\njudge = [\"sh\", {judge:?}]\n{goal_extra}\n\n{}",
        f.profile("p", &worker, &[])
    ));
}

#[test]
fn a_hung_goal_judge_is_stopped_at_its_deadline_and_the_card_blocked_saying_so() {
    let f = Fleet::new();
    goal_board(&f, "exit 0", "sleep 120", "judge_timeout_seconds = 1");
    let id = f.create("judged", &["--assignee", "p", "--goal"]);
    f.dispatch(&["--wait"]);
    assert_eq!(f.status(&id), "blocked");
    let reason = f.task(&id)["block_reason"].as_str().unwrap().to_string();
    assert!(reason.contains("did not rule within 1s"), "{reason}");
    let run = f.runs(&id)[0].clone();
    assert_attempt_gone(&f, i(&run["id"]), "the judge");
}

/// The worker is gone but its supervisor is alive (judging): the run is still held to max_runtime.
#[test]
fn a_run_whose_judge_hangs_is_still_held_to_max_runtime() {
    let f = Fleet::new();
    goal_board(&f, "exit 0", "echo $$ > \"$OUT/judge\"\nsleep 120", "");
    let id = f.create("judged slowly", &["--assignee", "p", "--goal", "--max-runtime", "60"]);
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    wait_for("the judge to start", || !f.out("judge").is_empty());
    f.set_now(i(&run["started_at"]) + 61);
    let report = f.dispatch(&[]);
    assert_eq!(report["timed_out"], serde_json::json!([id]), "{report}");
    wait_moved_on(&f, &id);
    let judge: i64 = f.out("judge").trim().parse().unwrap();
    assert!(!process_alive(judge), "the hung judge outlived its run");
}

/// A worker that heartbeats once and hangs is reclaimed; three such reclaims in a row trip the breaker.
#[test]
fn a_wedged_worker_trips_the_breaker_after_three_silent_reclaims_in_a_row() {
    let f = Fleet::new();
    board(&f, &format!("\"$KANBAN_BIN\" heartbeat \"$KANBAN_TASK\"\n{HANG}"), "");
    let id = f.create("wedged", &["--assignee", "p"]);
    for round in 1..=3 {
        f.dispatch(&[]);
        let run = f.wait_worker(&id);
        wait_for("the heartbeat", || f.task(&id)["last_heartbeat_at"] == f.now());
        f.advance(3601);
        let report = f.dispatch(&[]);
        assert_eq!(report["reclaimed"], serde_json::json!([id]), "round {round}: {report}");
        wait_moved_on(&f, &id);
        assert_attempt_gone(&f, i(&run["id"]), "a wedged attempt");
        f.advance(1);
    }
    let task = f.task(&id);
    assert_eq!(
        (task["status"].as_str(), task["block_kind"].as_str()),
        (Some("blocked"), Some("gave_up")),
        "{task}"
    );
    assert_eq!(task["block_sticky"], true);
    assert_eq!(task["stale_reclaims"], 3);
    let reason = task["block_reason"].as_str().unwrap();
    assert!(reason.starts_with("3 requeues of a silent worker in a row"), "{reason}");
}

// ---------------------------------------------------------------------------------------------------------
// 7, 8, 9. Verdicts hit their own attempt.

/// Run 1's judge is slow; the card is reclaimed and respawned as run 2; run 1's judge must never complete
/// run 2. (It is stopped with its attempt, and every write a supervisor makes names its run.)
#[test]
fn an_old_attempts_judge_never_completes_the_newer_attempt() {
    let f = Fleet::new();
    // The first run exits 0 at once; later runs hang.
    let worker = "if [ ! -e \"$OUT/ran\" ]; then touch \"$OUT/ran\"; exit 0; fi\nsleep 600";
    goal_board(&f, worker, "echo $$ > \"$OUT/judge\"\nsleep 3\necho done with run 1's result", "");
    let id = f.create("judged late", &["--assignee", "p", "--goal"]);
    f.dispatch(&[]);
    let first = f.wait_worker(&id);
    wait_for("the first judge to start", || !f.out("judge").is_empty());
    f.ok(&["reclaim", &id]);
    f.dispatch(&[]);
    let second = f.wait_worker(&id);
    assert_ne!(second["id"], first["id"]);
    // Past the first judge's three seconds: the second run is untouched.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let task = f.task(&id);
    assert_eq!(task["status"], "running", "{task}");
    assert_eq!(task["current_run_id"], second["id"], "{task}");
    assert!(task["result"].is_null(), "{task}");
    assert_eq!(run_of(&f, &id, i(&second["id"]))["status"], "running");
}

#[test]
fn a_goal_card_completed_by_its_judge_loses_its_scratch_workspace() {
    let f = Fleet::new();
    goal_board(&f, "date > artefact\nexit 0", "echo done", "");
    let id = f.create("judged done", &["--assignee", "p", "--goal"]);
    f.dispatch(&["--wait"]);
    assert_eq!(f.status(&id), "done");
    let workspace = f.board_dir("default").join("workspaces").join(&id);
    assert!(!workspace.exists(), "the judge's completion left the scratch workspace behind");
}

/// Exits 0, 75, 0, 75, 0: rate-limited runs are skipped over, so the three protocol violations are in a row
/// and the breaker trips.
#[test]
fn rate_limits_between_protocol_violations_do_not_reset_the_streak() {
    let f = Fleet::new();
    let worker = "n=$(cat \"$OUT/n\" 2>/dev/null || echo 0)\necho $((n + 1)) > \"$OUT/n\"\nif [ $((n % 2)) -eq 1 ]; then exit 75; fi\nexit 0";
    board(
        &f,
        worker,
        "[[policies]]\nkind = \"respawn-guard\"\nplugin = \"builtin:respawn-guard\"\n[policies.config]\nrate_limit_cooldown_seconds = 0\n",
    );
    let id = f.create("forgetful", &["--assignee", "p"]);
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let report = f.dispatch(&["--wait"]);
        for key in ["protocol_violations", "rate_limited"] {
            if report[key].as_array().unwrap().iter().any(|v| v == &Value::from(id.clone())) {
                outcomes.push(key);
            }
        }
        f.advance(1);
    }
    assert_eq!(
        outcomes,
        ["protocol_violations", "rate_limited", "protocol_violations", "rate_limited", "protocol_violations"]
    );
    let task = f.task(&id);
    assert_eq!(
        (task["status"].as_str(), task["block_kind"].as_str()),
        (Some("blocked"), Some("gave_up")),
        "{task}"
    );
    assert_eq!(task["protocol_violations"], 3);
}

// ---------------------------------------------------------------------------------------------------------
// 14, 15, 16. What a worker may do.

/// Inside a worker, only reading, creating cards and reporting on its own card are allowed.
#[test]
fn a_worker_cannot_delete_its_board_or_run_commands_outside_its_scope() {
    let f = Fleet::new();
    board(&f, HANG, "");
    let id = f.create("mine", &["--assignee", "p", "--initial-status", "running"]);
    let as_worker = |args: &[&str]| {
        let mut cmd = f.cmd(args);
        cmd.env("KANBAN_TASK", &id);
        cmd.output().unwrap()
    };
    for args in [
        vec!["board", "rm", "default", "--delete"],
        vec!["plugin", "rm", "anything"],
        vec!["dispatch"],
        vec!["dispatch", "--dry-run"],
        vec!["daemon", "--max-ticks", "1"],
        vec!["serve", "--listen", "127.0.0.1:0"],
        vec!["board", "set-default-workdir", "default", "/tmp"],
        vec!["gc"],
        vec!["edit", &id, "--title", "renamed"],
        vec!["unblock", &id],
    ] {
        let out = as_worker(&args);
        let err = expect_fail(&out, &args, 1);
        assert!(err.contains(&format!("worker is scoped to task {id}")), "{args:?}: {err}");
    }
    assert!(f.toml_path("default").exists(), "the board is still there");
    // Allowed: reading, creating, and its own card's reports.
    for args in
        [vec!["show", &id], vec!["list"], vec!["create", "a follow-up"], vec!["comment", &id, "working"]]
    {
        expect_ok(&as_worker(&args), &args);
    }
}

/// A worker's own block is sticky (it needs a person), even with `--kind transient`: never respawned by
/// itself, tick after tick.
#[test]
fn a_workers_transient_block_is_sticky_and_never_respawned_by_itself() {
    let f = Fleet::new();
    board(&f, "\"$KANBAN_BIN\" block \"$KANBAN_TASK\" \"flaky network\" --kind transient", "");
    let id = f.create("blocks itself", &["--assignee", "p"]);
    f.dispatch(&["--wait"]);
    let task = f.task(&id);
    assert_eq!(
        (task["status"].as_str(), task["block_sticky"].as_bool()),
        (Some("blocked"), Some(true)),
        "{task}"
    );
    for _ in 0..3 {
        f.advance(60);
        let report = f.dispatch(&["--wait"]);
        assert!(report["spawned"].as_array().unwrap().is_empty(), "{report}");
    }
    assert_eq!(f.runs(&id).len(), 1);
    // A person's transient block may still recover by itself.
    let other = f.create("parked by a person", &[]);
    f.ok(&["block", &other, "--kind", "transient"]);
    assert_eq!(f.task(&other)["block_sticky"], false);
}

/// `promote --force` sends a card to work past an open parent; its worker's completion is then accepted.
#[test]
fn a_force_promoted_cards_worker_can_complete_it() {
    let f = Fleet::new();
    board(&f, "\"$KANBAN_BIN\" complete \"$KANBAN_TASK\" --result shipped", "");
    let parent = f.create("parent", &[]);
    let child = f.create("child", &["--assignee", "p", "--parent", &parent]);
    f.ok(&["promote", &child, "--force"]);
    let report = f.dispatch(&["--wait"]);
    assert!(report["protocol_violations"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(f.status(&child), "done");
    assert_eq!(f.task(&child)["result"], "shipped");
}
