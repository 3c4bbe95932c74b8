//! The host's own faults are not the card's (issue 10, items 10 to 13): an upgrade of the binary under a
//! running daemon is picked up and blocks no card, a supervisor that cannot be started is requeued uncounted
//! as a `host_error`, a claim of a host that is gone is requeued once it expires (and no process of
//! another host is ever signalled), a home keeps its host identity across a hostname change, workers reach
//! the binary however the dispatcher was started, and a worker's exit that could not be recorded in the store
//! is recovered from its exit file instead of reading as a crash.
//!
//! Every test runs the real binary (sometimes a copy of it under the test home, so it can be replaced or
//! removed like an installed one) on a pinned `KANBAN_NOW`; asynchronous effects are polled, never timed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rusqlite::{Connection, params};
use serde_json::Value;

use crate::common::{
    Fleet, bin, expect_ok, group_members, kill9, kill9_group, parse_json, process_alive, strings, task_ids,
    wait_for,
};

/// Completes its card and exits 0.
const COMPLETE: &str = r#""$KANBAN_BIN" complete "$KANBAN_TASK" --result ok"#;

/// A board with one profile `p` running `body`, after `extra` TOML.
fn board(f: &Fleet, body: &str, extra: &str) {
    let script = f.script("worker.sh", body);
    f.write_board(&format!("{extra}\n{}", f.profile("p", &script, &[])));
}

/// Where a test keeps a copy of the binary, like an installed `kanban`: `<home>/bin/kanban`.
fn installed_path(f: &Fleet) -> PathBuf {
    f.home().join("bin").join("kanban")
}

/// Copy the binary under test to `path` (its mode kept), the way an install or an upgrade writes it.
/// Start `cmd`, a copy of the binary this test just wrote. Linux refuses to exec a file that any process
/// holds open for writing (ETXTBSY), and a thread of this test binary that forks a child while the copy's
/// write descriptor is open hands that child the descriptor until its own exec closes it: retry briefly.
fn spawn_copy(cmd: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn install_binary(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(bin(), path).unwrap_or_else(|e| panic!("copy {} to {}: {e}", bin(), path.display()));
}

/// A command for the binary at `exe`, with the test's home and pinned clock and no other `KANBAN_*`
/// variable.
fn cmd_at(f: &Fleet, exe: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(exe);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KANBAN_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("RUST_LOG")
        .env("KANBAN_NOW", f.now().to_string())
        .stdin(Stdio::null())
        .arg("--home")
        .arg(f.home())
        .args(args);
    cmd
}

/// Start `exe --home H daemon --interval 0.2` with `KANBAN_LOG=info`, its stderr in `<home>/daemon.log`.
fn start_daemon(f: &Fleet, exe: &Path) -> Child {
    let log = File::create(daemon_log_path(f)).unwrap();
    spawn_copy(
        cmd_at(f, exe, &["daemon", "--interval", "0.2"])
            .env("KANBAN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log),
    )
    .expect("spawn the daemon")
}

fn daemon_log_path(f: &Fleet) -> PathBuf {
    f.home().join("daemon.log")
}

fn daemon_log(f: &Fleet) -> String {
    std::fs::read_to_string(daemon_log_path(f)).unwrap_or_default()
}

/// Stop a daemon with SIGTERM and wait (bounded) for it to exit 0.
fn stop_daemon(mut daemon: Child) {
    let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM the daemon");
    let mut status = None;
    wait_for("the daemon to exit after SIGTERM", || {
        status = daemon.try_wait().expect("try_wait");
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(0), "the daemon's exit: {status:?}");
}

/// What `/proc/<pid>/exe` points to.
fn exe_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.display().to_string()).unwrap_or_default()
}

/// A connection to the default board's database, for rewriting what only another host could have written.
fn db(f: &Fleet) -> Connection {
    let conn = Connection::open(f.db_path("default")).expect("open db");
    conn.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
    conn
}

/// Hold the board's write lock in this process (another process, as far as `kanban` is concerned).
fn hold_write_lock(f: &Fleet) -> Connection {
    let conn = Connection::open(f.db_path("default")).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conn
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Every event kind ever recorded on the default board.
fn all_event_kinds(f: &Fleet) -> Vec<String> {
    f.events().iter().map(|e| e["kind"].as_str().expect("kind").to_string()).collect()
}

/// Event kinds that must never appear when the only fault is the host's.
const CARD_FAULTS: &[&str] = &["gave_up", "host_error", "spawn_failed", "crashed", "blocked"];

/// Assert the card completed on the first try: done, one completed run, nothing counted or blocked.
fn assert_completed_cleanly(f: &Fleet, id: &str) {
    let task = f.task(id);
    assert_eq!(task["status"], "done", "{task}");
    assert_eq!(task["consecutive_failures"], 0, "{task}");
    let runs = f.runs(id);
    assert_eq!(runs.len(), 1, "{id}: {runs:?}");
    assert_eq!(runs[0]["outcome"], "completed", "{id}: {runs:?}");
    let kinds = f.event_kinds(id);
    for fault in CARD_FAULTS {
        assert!(!kinds.iter().any(|k| k == fault), "{id} has a {fault} event: {kinds:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Item 10: upgrading the binary under a running daemon; a supervisor that cannot be started.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn an_upgrade_by_rename_under_a_running_daemon_is_picked_up_and_blocks_no_card() {
    let f = Fleet::new();
    board(&f, COMPLETE, "");
    let exe = installed_path(&f);
    install_binary(&exe);
    let daemon = start_daemon(&f, &exe);
    let pid = daemon.id();
    let before: Vec<String> =
        (0..2).map(|n| f.create(&format!("before {n}"), &["--assignee", "p"])).collect();
    for id in &before {
        wait_for(&format!("{id} to be done before the upgrade"), || f.status(id) == "done");
    }
    assert_eq!(exe_of(pid), exe.display().to_string());

    // The upgrade: the new binary is written beside the old one and renamed over it, so the running daemon's
    // image is now a deleted file and its path holds the new binary.
    upgrade(&exe);
    let after: Vec<String> = (0..3).map(|n| f.create(&format!("after {n}"), &["--assignee", "p"])).collect();
    for id in &after {
        wait_for(&format!("{id} to be done after the upgrade"), || {
            f.status(id) != "running" && f.status(id) != "ready"
        });
    }
    for id in before.iter().chain(&after) {
        assert_completed_cleanly(&f, id);
    }
    let kinds = all_event_kinds(&f);
    for fault in CARD_FAULTS {
        assert!(!kinds.iter().any(|k| k == fault), "a {fault} event on the board: {kinds:?}");
    }
    // The daemon restarted itself on the new binary: the same process, now running the file at its path.
    wait_for("the daemon to run the new binary", || exe_of(pid) == exe.display().to_string());
    assert!(process_alive(i64::from(pid)), "the daemon is gone");
    let log = daemon_log(&f);
    assert!(log.contains("restarting"), "the daemon's log does not say it restarted:\n{log}");
    stop_daemon(daemon);
}

/// Run `dispatch --json <extra>` from a copy of the binary at [`installed_path`], and `change` that file while
/// the tick is held at its first write (the board's write lock is taken first), so everything the tick
/// starts is started after the change. Returns its report.
fn tick_while_the_binary_changes(f: &Fleet, extra: &[&str], change: impl FnOnce(&Path)) -> Value {
    let exe = installed_path(f);
    install_binary(&exe);
    let lock = hold_write_lock(f);
    let mut args = vec!["dispatch", "--json"];
    args.extend_from_slice(extra);
    let child = spawn_copy(
        cmd_at(f, &exe, &args)
            .env("KANBAN_BUSY_TIMEOUT_MS", "20000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .expect("spawn dispatch");
    // spawn() returns once the binary is executing; the tick then waits for the lock before it claims.
    change(&exe);
    drop(lock);
    let out = child.wait_with_output().expect("wait for dispatch");
    parse_json(&expect_ok(&out, &args), &args)
}

/// Replace the file at `exe` by rename, as an upgrade does.
fn upgrade(exe: &Path) {
    let staged = exe.with_file_name("kanban.new");
    install_binary(&staged);
    std::fs::rename(&staged, exe).unwrap();
}

#[test]
fn a_tick_whose_binary_is_replaced_under_it_starts_supervisors_from_the_file_at_its_path() {
    let f = Fleet::new();
    board(&f, COMPLETE, "");
    let id = f.create("after the upgrade", &["--assignee", "p"]);
    // The tick's own image is a deleted file by the time it spawns; the path holds the new binary.
    let report = tick_while_the_binary_changes(&f, &["--wait"], upgrade);
    assert_eq!(task_ids(&report["spawned"]), vec![id.clone()], "{report}");
    assert!(strings(&report["host_errors"]).is_empty(), "{report}");
    assert!(report["spawn_failed"].as_array().unwrap().is_empty(), "{report}");
    assert_completed_cleanly(&f, &id);
}

#[test]
fn a_supervisor_that_cannot_be_started_is_a_host_error_requeued_uncounted() {
    let f = Fleet::new();
    board(&f, COMPLETE, "[dispatch]\nfailure_limit = 1\n");
    let id = f.create("innocent", &["--assignee", "p"]);
    for tick in 1..=3 {
        let report = tick_while_the_binary_changes(&f, &[], |exe| std::fs::remove_file(exe).unwrap());
        assert_eq!(strings(&report["host_errors"]), vec![id.clone()], "tick {tick}: {report}");
        assert!(task_ids(&report["spawned"]).is_empty(), "tick {tick}: {report}");
        for key in ["crashed", "auto_blocked"] {
            assert!(strings(&report[key]).is_empty(), "tick {tick}: {key} in {report}");
        }
        let task = f.task(&id);
        assert_eq!(task["status"], "ready", "tick {tick}: {task}");
        assert_eq!(task["consecutive_failures"], 0, "tick {tick}: a host error counted: {task}");
        let runs = f.runs(&id);
        assert_eq!(runs.len(), tick, "{runs:?}");
        assert_eq!(runs[tick - 1]["outcome"], "host_error", "{runs:?}");
        assert!(
            runs[tick - 1]["error"].as_str().unwrap_or_default().contains("cannot start the supervisor"),
            "{runs:?}"
        );
    }
    let host_errors = f.events_of(&id, "host_error");
    assert_eq!(host_errors.len(), 3, "{host_errors:?}");
    assert!(host_errors.iter().all(|e| e["payload"]["counted"] == false), "{host_errors:?}");
    assert!(f.events_of(&id, "gave_up").is_empty());
    // failure_limit = 1: a single counted failure would have blocked it. With the binary back, it runs.
    f.dispatch_wait();
    assert_eq!(f.status(&id), "done");
    assert_eq!(f.task(&id)["consecutive_failures"], 0);
}

#[test]
fn a_daemon_whose_binary_was_removed_requeues_uncounted_and_says_so_loudly() {
    let f = Fleet::new();
    board(&f, COMPLETE, "");
    let exe = installed_path(&f);
    install_binary(&exe);
    let daemon = start_daemon(&f, &exe);
    wait_for("the daemon to start", || daemon_log(&f).contains("daemon started"));
    std::fs::remove_file(&exe).unwrap();
    let id = f.create("innocent", &["--assignee", "p"]);
    wait_for("several ticks to fail to start its supervisor", || f.runs(&id).len() >= 4);
    for _ in 0..3 {
        let task = f.task(&id);
        assert_eq!(task["consecutive_failures"], 0, "{task}");
        assert_ne!(task["status"], "blocked", "{task}");
    }
    stop_daemon(daemon);
    let task = f.task(&id);
    assert_eq!(task["status"], "ready", "{task}");
    assert_eq!(task["consecutive_failures"], 0, "{task}");
    let runs = f.runs(&id);
    assert!(runs.iter().all(|r| r["outcome"] == "host_error"), "{runs:?}");
    assert_eq!(f.events_of(&id, "host_error").len(), runs.len());
    assert!(f.events_of(&id, "gave_up").is_empty());
    let log = daemon_log(&f);
    assert!(log.contains("ERROR") && log.contains("could not start a worker"), "no loud error:\n{log}");
}

// ---------------------------------------------------------------------------------------------------------
// Item 11: an expired claim naming another host.
// ---------------------------------------------------------------------------------------------------------

/// The first run hangs; every later one completes.
const HANG_ONCE: &str = r#"if [ ! -e "$OUT/ran" ]; then touch "$OUT/ran"; exec sleep 600; fi
"$KANBAN_BIN" complete "$KANBAN_TASK" --result retried"#;

const FOREIGN_HOST: &str = "h_00000000deadbeef";

/// A process's start time (clock ticks since boot), from `/proc/<pid>/stat`: with its pid, its identity.
fn proc_start(pid: u32) -> i64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &text[text.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[19].parse().unwrap()
}

/// A live process standing in for one of another host's: a session leader (like a supervisor). Killed and
/// reaped when dropped.
struct StandIn {
    child: Child,
    pid: u32,
    start: i64,
}

impl StandIn {
    fn start() -> StandIn {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("sleep");
        cmd.arg("600").stdin(Stdio::null());
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
        }
        let child = cmd.spawn().expect("spawn sleep");
        let pid = child.id();
        StandIn { child, pid, start: proc_start(pid) }
    }

    /// Alive, not signalled by anyone (a killed child of this test stays a zombie until dropped).
    fn alive(&self) -> bool {
        process_alive(i64::from(self.pid))
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Dispatch the card, stop its real worker and supervisor ourselves, then make its claim look like another
/// host's: `claim_host` (none for a legacy claim), the run's `host_id`, the claim lock, and the run's
/// processes, which are `stand_in`, a live process here (a pid that another host recorded can name a live
/// process of this one). Returns the run.
fn make_claim_foreign(
    f: &Fleet,
    id: &str,
    claim_host: Option<&str>,
    lock: &str,
    stand_in: &StandIn,
) -> Value {
    f.dispatch(&[]);
    let run = f.wait_worker(id);
    let (supervisor, worker) = (i(&run["supervisor_pid"]), i(&run["worker_pid"]));
    kill9(supervisor);
    wait_for("the supervisor to die", || !process_alive(supervisor));
    kill9_group(worker);
    wait_for("the worker to die", || group_members(worker).is_empty());
    let conn = db(f);
    let (pid, start) = (i64::from(stand_in.pid), stand_in.start);
    let changed = conn
        .execute(
            "UPDATE tasks SET claim_host = ?1, claim_lock = ?2, worker_pid = ?3 WHERE id = ?4",
            params![claim_host, lock, pid, id],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let changed = conn
        .execute(
            "UPDATE task_runs SET host_id = ?1, claim_lock = ?2, supervisor_pid = ?3, supervisor_start = ?4,
             worker_pid = ?3, worker_start = ?4 WHERE id = ?5",
            params![claim_host, lock, pid, start, i(&run["id"])],
        )
        .unwrap();
    assert_eq!(changed, 1);
    run
}

/// What a tick must not do to a claim it does not own.
fn assert_left_alone(f: &Fleet, report: &Value, id: &str, run: &Value, stand_in: &StandIn, when: &str) {
    for key in ["reclaimed", "crashed", "stale", "timed_out", "stopping", "claims_extended"] {
        assert!(!strings(&report[key]).contains(&id.to_string()), "{when}: {key} in {report}");
    }
    let task = f.task(id);
    assert_eq!(task["status"], "running", "{when}: {task}");
    assert_eq!(task["current_run_id"], run["id"], "{when}: {task}");
    assert!(stand_in.alive(), "{when}: a process of another host's claim was signalled");
}

/// The card was requeued (uncounted, `host_lost`) from the run of a lost host, whose process survives, and
/// the retry runs here.
fn assert_requeued_from_lost_host(f: &Fleet, report: &Value, id: &str, run: &Value, stand_in: &StandIn) {
    assert_eq!(strings(&report["reclaimed"]), vec![id.to_string()], "{report}");
    assert!(strings(&report["crashed"]).is_empty(), "{report}");
    let reclaimed: Vec<Value> =
        f.events_of(id, "reclaimed").into_iter().filter(|e| e["run_id"] == run["id"]).collect();
    assert_eq!(reclaimed.len(), 1, "{reclaimed:?}");
    let payload = &reclaimed[0]["payload"];
    assert_eq!(payload["host_lost"], true, "{payload}");
    assert_eq!(payload["counted"], false, "{payload}");
    let first = f.runs(id).into_iter().find(|r| r["id"] == run["id"]).expect("the foreign run");
    assert_eq!(first["outcome"], "reclaimed", "{first}");
    assert!(stand_in.alive(), "the lost host's process was signalled");
    // Requeued (and, being ready, respawned by this tick): the retry completes here.
    wait_for("the retry to complete", || f.status(id) == "done");
    assert_eq!(f.task(id)["result"], "retried");
    assert_eq!(f.task(id)["consecutive_failures"], 0);
}

#[test]
fn an_expired_claim_of_a_lost_host_is_requeued_uncounted_and_its_processes_are_never_signalled() {
    let f = Fleet::new();
    board(&f, HANG_ONCE, "[dispatch]\nstale_timeout_seconds = 0\n");
    let id = f.create("orphaned", &["--assignee", "p"]);
    let t0 = f.now();
    let stand_in = StandIn::start();
    let run = make_claim_foreign(&f, &id, Some(FOREIGN_HOST), "old-name:42", &stand_in);
    let expires = i(&f.task(&id)["claim_expires"]);
    assert_eq!(expires, t0 + 900, "claim_ttl_seconds defaults to 900");
    // The other host was last seen when it claimed the card.
    db(&f)
        .execute(
            "INSERT INTO hosts (id, hostname, pid, started_at, last_seen) VALUES (?1, 'old-name', 42, ?2, ?2)",
            params![FOREIGN_HOST, t0],
        )
        .unwrap();

    // Before the claim expires (well past the crash grace) the tick leaves it running and signals nothing.
    f.set_now(expires - 1);
    let report = f.dispatch(&[]);
    assert_left_alone(&f, &report, &id, &run, &stand_in, "before the claim expired");

    // Expired, but the other host has shown a sign of life since: still its claim.
    db(&f)
        .execute("UPDATE hosts SET last_seen = ?1 WHERE id = ?2", params![expires + 5, FOREIGN_HOST])
        .unwrap();
    f.set_now(expires + 10);
    let report = f.dispatch(&[]);
    assert_left_alone(&f, &report, &id, &run, &stand_in, "expired, its host alive");

    // Expired with no sign of life from that host since: requeued, uncounted, nothing signalled.
    db(&f).execute("UPDATE hosts SET last_seen = ?1 WHERE id = ?2", params![t0, FOREIGN_HOST]).unwrap();
    f.set_now(expires + 20);
    let report = f.dispatch(&[]);
    assert_requeued_from_lost_host(&f, &report, &id, &run, &stand_in);
}

#[test]
fn an_expired_legacy_claim_naming_another_hostname_is_requeued_uncounted() {
    let f = Fleet::new();
    board(&f, HANG_ONCE, "[dispatch]\nstale_timeout_seconds = 0\n");
    let hostname = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let old_name = "container-before-restart";
    assert_ne!(hostname, old_name);
    let id = f.create("orphaned", &["--assignee", "p"]);
    let stand_in = StandIn::start();
    // A claim from before host ids: no claim_host, a lock naming the old hostname.
    let run = make_claim_foreign(&f, &id, None, &format!("{old_name}:42"), &stand_in);
    let expires = i(&f.task(&id)["claim_expires"]);

    f.set_now(expires - 1);
    let report = f.dispatch(&[]);
    assert_left_alone(&f, &report, &id, &run, &stand_in, "before the claim expired");

    f.set_now(expires + 1);
    let report = f.dispatch(&[]);
    assert_requeued_from_lost_host(&f, &report, &id, &run, &stand_in);
}

/// Run `kanban --home H dispatch --json` under a different hostname (a private user and UTS namespace), as
/// a container restarted under a new name would. `None` when namespaces are unavailable and
/// `KANBAN_TEST_NO_USERNS=1` allows skipping.
fn dispatch_as_host(f: &Fleet, hostname: &str) -> Option<Value> {
    let probe = Command::new("unshare").args(["-ru", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        if std::env::var("KANBAN_TEST_NO_USERNS").is_ok_and(|v| v == "1") {
            eprintln!("skipped: `unshare -ru` (user and UTS namespaces) is unavailable");
            return None;
        }
        panic!(
            "this test needs `unshare -ru` (unprivileged user and UTS namespaces, util-linux) to change the \
             hostname; set KANBAN_TEST_NO_USERNS=1 to skip it on this machine"
        );
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-ru", "sh", "-c", r#"hostname "$NEW_HOSTNAME" && exec "$K" --home "$H" dispatch --json"#]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KANBAN_") {
            cmd.env_remove(&key);
        }
    }
    let out = cmd
        .env("K", bin())
        .env("H", f.home())
        .env("NEW_HOSTNAME", hostname)
        .env("KANBAN_NOW", f.now().to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    Some(parse_json(&expect_ok(&out, &"dispatch --json under a new hostname"), &"dispatch --json"))
}

#[test]
fn a_home_keeps_its_host_id_across_a_hostname_change_and_its_claims_stay_its_own() {
    let f = Fleet::new();
    board(&f, "sleep 600", "[dispatch]\nstale_timeout_seconds = 0\n");
    let id = f.create("long", &["--assignee", "p"]);
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    let worker = i(&run["worker_pid"]);
    let host_id = std::fs::read_to_string(f.home().join("host-id")).expect("<home>/host-id");
    let host_id = host_id.trim();
    assert!(host_id.starts_with("h_") && host_id.len() == 18, "{host_id:?}");
    let (claim_host, run_host): (Option<String>, Option<String>) = db(&f)
        .query_row(
            "SELECT t.claim_host, r.host_id FROM tasks t JOIN task_runs r ON r.id = t.current_run_id WHERE t.id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(claim_host.as_deref(), Some(host_id), "the claim names the home's host id");
    assert_eq!(run_host.as_deref(), Some(host_id), "the run names the home's host id");

    // The same home after a restart under another hostname: past the claim's expiry, its live worker's claim
    // is extended as its own, not left alone as another host's.
    f.set_now(i(&f.task(&id)["claim_expires"]) + 1);
    let Some(report) = dispatch_as_host(&f, "renamed-container") else { return };
    assert_eq!(strings(&report["claims_extended"]), vec![id.clone()], "{report}");
    assert_eq!(f.status(&id), "running");
    assert!(process_alive(worker));
    assert_eq!(
        std::fs::read_to_string(f.home().join("host-id")).unwrap().trim(),
        host_id,
        "the id is stable"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Item 12: workers reach the binary when the dispatcher is not on PATH.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn workers_reach_the_binary_when_the_dispatcher_was_started_by_absolute_path_off_path() {
    let f = Fleet::new();
    let path = "/usr/bin:/bin";
    for dir in path.split(':') {
        assert!(!Path::new(dir).join("kanban").exists(), "a kanban in {dir} would make this test vacuous");
    }
    // Plain `kanban`, not $KANBAN_BIN; the board sets no KANBAN_BIN itself (unlike Fleet::profile).
    let script = f.script(
        "worker.sh",
        r#"printf '%s' "$KANBAN_BIN" > "$OUT/bin.$KANBAN_TASK"
kanban complete "$KANBAN_TASK" --result reached"#,
    );
    let out = f.out_dir().display().to_string();
    f.write_board(&format!(
        "[profiles.p]\ncommand = [\"sh\", {script:?}]\nenv = {{ OUT = {out:?} }}\n\n\
         [profiles.q]\ncommand = [\"sh\", {script:?}]\nenv = {{ OUT = {out:?}, PATH = {path:?} }}\n"
    ));
    let inherited = f.create("inherits PATH", &["--assignee", "p"]);
    let own_path = f.create("sets its own PATH", &["--assignee", "q"]);
    let output = f.cmd(&["dispatch", "--wait", "--json"]).env("PATH", path).output().unwrap();
    let report = parse_json(&expect_ok(&output, &"dispatch --wait --json"), &"dispatch");
    let binary = std::fs::canonicalize(bin()).unwrap().display().to_string();
    for id in [&inherited, &own_path] {
        let task = f.task(id);
        assert_eq!(task["status"], "done", "{id}: {task}\n{report}\nlog:\n{}", f.ok(&["log", id]));
        assert_eq!(task["result"], "reached", "{task}");
        assert_eq!(f.out(&format!("bin.{id}")), binary, "KANBAN_BIN is the dispatcher's binary");
    }
    assert!(strings(&report["crashed"]).is_empty(), "{report}");
}

// ---------------------------------------------------------------------------------------------------------
// Item 13: a lost exit record is not a crash.
// ---------------------------------------------------------------------------------------------------------

/// Waits for `$OUT/go`, then exits 75 (rate limited).
const RATE_LIMITED_ON_GO: &str = r#"while [ ! -e "$OUT/go" ]; do sleep 0.05; done
exit 75"#;

/// Dispatch the card with a short busy timeout (the supervisor inherits it), hold the board's write lock,
/// let the worker exit 75 and wait until its supervisor has written the exit file. Returns the run, the
/// exit file and the lock.
fn exit_while_locked(f: &Fleet, id: &str) -> (Value, PathBuf, Connection) {
    let out = f.cmd(&["dispatch", "--json"]).env("KANBAN_BUSY_TIMEOUT_MS", "200").output().unwrap();
    let report = parse_json(&expect_ok(&out, &"dispatch --json"), &"dispatch");
    assert_eq!(task_ids(&report["spawned"]), vec![id.to_string()], "{report}");
    let run = f.wait_worker(id);
    let exit_file = f.board_dir("default").join("logs").join(format!("{id}.run-{}.exit", i(&run["id"])));
    let lock = hold_write_lock(f);
    std::fs::write(f.out_dir().join("go"), "").unwrap();
    wait_for("the supervisor to write the exit file", || exit_file.exists());
    wait_for("the worker to be gone", || group_members(i(&run["worker_pid"])).is_empty());
    (run, exit_file, lock)
}

/// The run ended as `rate_limited` (exit 75), uncounted, not as a crash.
fn assert_rate_limited(f: &Fleet, report: &Value, id: &str, run: &Value) {
    assert_eq!(strings(&report["rate_limited"]), vec![id.to_string()], "{report}");
    assert!(strings(&report["crashed"]).is_empty(), "{report}");
    let first = f.runs(id).into_iter().find(|r| r["id"] == run["id"]).expect("the run");
    assert_eq!(first["outcome"], "rate_limited", "{first}");
    assert_eq!(first["exit_code"], 75, "{first}");
    let task = f.task(id);
    assert_eq!(task["status"], "ready", "{task}");
    assert_eq!(task["consecutive_failures"], 0, "{task}");
    assert!(f.events_of(id, "crashed").is_empty());
}

#[test]
fn an_exit_the_supervisor_could_not_record_before_it_died_is_read_from_its_exit_file_not_called_a_crash() {
    let f = Fleet::new();
    board(&f, RATE_LIMITED_ON_GO, "");
    let id = f.create("throttled", &["--assignee", "p"]);
    let (run, exit_file, lock) = exit_while_locked(&f, &id);
    // The supervisor is retrying against the held lock; it dies before it gets through.
    let supervisor = i(&run["supervisor_pid"]);
    kill9(supervisor);
    wait_for("the supervisor to die", || !process_alive(supervisor));
    drop(lock);
    assert!(exit_file.exists(), "the exit file is the only record of the exit");
    let unrecorded = f.runs(&id).into_iter().find(|r| r["id"] == run["id"]).unwrap();
    assert!(unrecorded["exit_code"].is_null(), "the store already had the exit: {unrecorded}");

    // Past the crash grace, with nothing of the attempt alive: the exit file decides, not the crash check.
    f.set_now(i(&run["started_at"]) + 31);
    let report = f.dispatch(&[]);
    assert_rate_limited(&f, &report, &id, &run);
    assert!(!exit_file.exists(), "the recovered exit file was left behind");
}

#[test]
fn an_exit_recorded_by_the_supervisors_retry_after_the_lock_is_released_is_classified_exactly() {
    let f = Fleet::new();
    board(&f, RATE_LIMITED_ON_GO, "");
    let id = f.create("throttled", &["--assignee", "p"]);
    let (run, exit_file, lock) = exit_while_locked(&f, &id);
    // Longer than the 200 ms busy timeout: the first attempt to record the exit has failed.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let unrecorded = f.runs(&id).into_iter().find(|r| r["id"] == run["id"]).unwrap();
    assert!(unrecorded["exit_code"].is_null(), "recorded under a held lock: {unrecorded}");
    drop(lock);
    let supervisor = i(&run["supervisor_pid"]);
    wait_for("the supervisor's retry to record the exit", || {
        let r = f.runs(&id).into_iter().find(|r| r["id"] == run["id"]).unwrap();
        r["exit_code"] == 75
    });
    wait_for("the supervisor to finish", || !process_alive(supervisor));
    assert!(!exit_file.exists(), "the exit file outlived the recorded exit");

    f.set_now(i(&run["started_at"]) + 31);
    let report = f.dispatch(&[]);
    assert_rate_limited(&f, &report, &id, &run);
}

// ---------------------------------------------------------------------------------------------------------
// Issue 12: a host that loses its database backs off and loses nothing.
// ---------------------------------------------------------------------------------------------------------

/// The board's database is gone from under a running daemon (a disk or a network mount that failed: here
/// its files are moved aside and a file that is no database takes their place). The daemon's ticks of the
/// board fail, and it tries again after a wait that doubles each time instead of every interval; once the
/// database is back it says so and finishes the waiting card, whose record shows nothing of the outage.
#[test]
fn a_daemon_that_loses_the_database_backs_off_and_counts_nothing_against_a_card() {
    let f = Fleet::new();
    board(&f, COMPLETE, "");
    let id = f.create("survive the outage", &["--assignee", "p"]);
    let dir = f.board_dir("default");
    let aside = f.home().join("aside");
    std::fs::create_dir_all(&aside).unwrap();
    let files = ["kanban.db", "kanban.db-wal", "kanban.db-shm"];
    for name in files {
        if dir.join(name).exists() {
            std::fs::rename(dir.join(name), aside.join(name)).unwrap();
        }
    }
    std::fs::write(dir.join("kanban.db"), vec![0x5a; 8192]).unwrap();

    let mut daemon = start_daemon(&f, Path::new(bin()));
    let retries = || -> Vec<u64> {
        daemon_log(&f)
            .lines()
            .filter(|l| l.contains("tick failed; backing off"))
            .filter_map(|l| l.split("retry_in_ms=").nth(1)?.split_whitespace().next()?.parse().ok())
            .collect()
    };
    wait_for("four failed ticks", || retries().len() >= 4);
    // (The daemon ticks every 200 ms.)
    assert_eq!(retries()[..4], [400, 800, 1600, 3200], "the wait doubles:\n{}", daemon_log(&f));
    let notifier = daemon_log(&f).lines().filter(|l| l.contains("notification delivery failed")).count();
    assert!(notifier <= retries().len() + 2, "the notifier backs off too:\n{}", daemon_log(&f));

    // The database comes back.
    std::fs::remove_file(dir.join("kanban.db")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("kanban.db.corrupt.") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    for name in files {
        if aside.join(name).exists() {
            std::fs::rename(aside.join(name), dir.join(name)).unwrap();
        }
    }
    wait_for("the card to be done once the database is back", || f.status(&id) == "done");
    assert!(daemon_log(&f).contains("the board ticks again"), "{}", daemon_log(&f));
    assert_completed_cleanly(&f, &id);
    let _ = daemon.kill();
    let _ = daemon.wait();
}
