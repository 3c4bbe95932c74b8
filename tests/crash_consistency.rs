//! Crash consistency: `kill -9` the daemon at random moments while workers run, many times, then check the
//! board's invariants straight from SQLite: no card, committed event or run lost; no running card without
//! an open run (`running`, `exited` or `stopping`); no card with two; no claim without a run; no run
//! without its audit event; no worker left after a daemon settles, and no process of an ended attempt (a
//! requeued card's earlier runs included) alive in its session. `KANBAN_KILL_ITERATIONS` sets how many
//! kills (default 40; the long variant is `KANBAN_KILL_ITERATIONS=300 cargo test --release --test
//! crash_consistency kill_dash_nine`).

mod common;
/// The chaos soak: several daemons on one board under kill -9 (a module here, so the long suites share one
/// test binary).
mod soak;

/// The long suites load the machine; they run one at a time.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Kanban;
use rusqlite::Connection;

const CARDS: usize = 24;

fn invariants(db: &std::path::Path, when: &str) {
    let conn = Connection::open(db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM tasks"), CARDS as i64, "{when}: cards were lost");
    assert_eq!(
        count(
            "SELECT count(*) FROM tasks t WHERE t.status = 'running' AND NOT EXISTS (
               SELECT 1 FROM task_runs r WHERE r.id = t.current_run_id AND r.task_id = t.id
                 AND r.status IN ('running', 'exited', 'stopping'))"
        ),
        0,
        "{when}: a running card has no open run"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM (SELECT task_id FROM task_runs WHERE status IN ('running', 'exited', 'stopping')
               GROUP BY task_id HAVING count(*) > 1)"
        ),
        0,
        "{when}: a card has two open runs"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM task_runs r WHERE r.status IN ('running', 'exited', 'stopping') AND NOT EXISTS (
               SELECT 1 FROM tasks t WHERE t.current_run_id = r.id AND t.status = 'running')"
        ),
        0,
        "{when}: an open run belongs to no running card"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM tasks WHERE claim_lock IS NOT NULL AND (status <> 'running' OR current_run_id IS NULL)"
        ),
        0,
        "{when}: a claim without a run"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM tasks t WHERE NOT EXISTS (
               SELECT 1 FROM task_events e WHERE e.task_id = t.id AND e.kind = 'created')"
        ),
        0,
        "{when}: a card lost its created event"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM task_runs r WHERE NOT EXISTS (
               SELECT 1 FROM task_events e WHERE e.run_id = r.id AND e.kind = 'claimed')"
        ),
        0,
        "{when}: a run has no claimed event (a state change committed without its audit event)"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM task_events e WHERE e.kind = 'claimed' AND NOT EXISTS (
               SELECT 1 FROM task_runs r WHERE r.id = e.run_id AND r.task_id = e.task_id)"
        ),
        0,
        "{when}: a claimed event's run was lost"
    );
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok", "{when}: integrity check");
}

/// The audit log as of a moment: how many events, the highest id, and a digest of their content.
#[derive(Debug, PartialEq)]
struct EventLog {
    count: i64,
    max_id: i64,
    digest: String,
}

impl EventLog {
    fn read(db: &std::path::Path, up_to: Option<i64>) -> EventLog {
        let conn = Connection::open(db).unwrap();
        let up_to = up_to.unwrap_or(i64::MAX);
        conn.query_row(
            "SELECT count(*), coalesce(max(id), 0),
                    coalesce(group_concat(id || ':' || coalesce(task_id, '') || ':' || kind || ':' || payload, '|'), '')
               FROM (SELECT * FROM task_events WHERE id <= ?1 ORDER BY id)",
            [up_to],
            |r| Ok(EventLog { count: r.get(0)?, max_id: r.get(1)?, digest: r.get(2)? }),
        )
        .unwrap()
    }

    /// Every event committed before the kill is still there, unchanged.
    fn assert_kept(&self, db: &std::path::Path, when: &str) {
        let now = EventLog::read(db, Some(self.max_id));
        assert_eq!(now.count, self.count, "{when}: committed events were lost");
        assert!(now.digest == self.digest, "{when}: committed events changed");
    }
}

/// Worker processes of this test still alive (found by their script path in /proc/*/cmdline).
fn live_workers(marker: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(marker) {
            pids.push(pid);
        }
    }
    pids
}

/// `(state, session, start time)` of a process, from `/proc/<pid>/stat` (fields counted from the last `)`).
fn proc_stat(pid: i32) -> Option<(char, i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(3)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Live processes of attempts whose run has ended, as `(run, card, pid)`. An attempt is the session its
/// supervisor leads: the session number is the supervisor's pid (`task_runs.supervisor_pid`), and its
/// members started at or after the supervisor (`supervisor_start`, clock ticks since boot). A live process
/// holding that pid under another start time means the number was recycled: the session is gone.
fn ended_attempt_processes(db: &std::path::Path) -> Vec<(i64, String, i32)> {
    let conn = Connection::open(db).unwrap();
    let runs: Vec<(i64, String, i64, i64)> = conn
        .prepare(
            "SELECT id, task_id, supervisor_pid, supervisor_start FROM task_runs
             WHERE status = 'ended' AND supervisor_pid IS NOT NULL AND supervisor_start IS NOT NULL",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let mut live: Vec<(i32, i32, u64)> = Vec::new(); // (pid, session, start)
    let mut starts = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Some((state, session, start)) = proc_stat(pid) else { continue };
        starts.insert(pid, start);
        if state != 'Z' && state != 'X' {
            live.push((pid, session, start));
        }
    }
    let mut found = Vec::new();
    for (run, card, leader, leader_start) in runs {
        let (leader, leader_start) = (leader as i32, leader_start as u64);
        if starts.get(&leader).is_some_and(|s| *s != leader_start) {
            continue;
        }
        for (pid, session, start) in &live {
            if *session == leader && *start >= leader_start {
                found.push((run, card.clone(), *pid));
            }
        }
    }
    found
}

#[test]
fn kill_dash_nine_of_the_daemon_never_leaves_the_board_inconsistent() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let iterations: usize =
        std::env::var("KANBAN_KILL_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let k = Kanban::new();
    k.ok(&["board", "create", "b"]);
    let scripts = tempfile::tempdir().unwrap();
    let worker = scripts.path().join("kill-test-worker.sh");
    // Mostly quick successes, some crashes and rate limits, so every settlement path runs under the kills.
    std::fs::write(
        &worker,
        r#"sleep 0.$(( $$ % 4 ))
case $(( $$ % 5 )) in
  0) exit 3 ;;
  1) exit 75 ;;
esac
"$KANBAN_BIN" complete "$KANBAN_TASK" --result ok
"#,
    )
    .unwrap();
    std::fs::write(
        k.toml_path("b"),
        format!(
            "[dispatch]\nmax_in_progress = 6\nfailure_limit = 50\ncrash_grace_seconds = 0\n\n\
             [profiles.w]\ncommand = [\"sh\", {:?}]\nenv = {{ KANBAN_BIN = {:?} }}\n\n\
             [[policies]]\nkind = \"respawn-guard\"\nplugin = \"builtin:respawn-guard\"\n\
             [policies.config]\nrate_limit_cooldown_seconds = 0\n",
            worker.display().to_string(),
            common::bin()
        ),
    )
    .unwrap();
    for i in 0..CARDS {
        k.ok(&["--board", "b", "create", &format!("card {i}"), "--assignee", "w"]);
    }
    let db = k.db_path("b");
    // The daemon reads the real clock here: workers run for real, so time must pass for real.
    let daemon = || {
        let mut cmd = Command::new(common::bin());
        cmd.arg("--home").arg(k.home()).args(["--board", "b", "daemon", "--interval", "0.02"]);
        cmd.env_remove("KANBAN_NOW").env_remove("KANBAN_BOARD").stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    };
    let mut log = EventLog::read(&db, None);
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
    for i in 0..iterations {
        let mut child = daemon().spawn().unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(5 + seed % 150));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let when = format!("after kill {i}");
        invariants(&db, &when);
        log.assert_kept(&db, &when);
        log = EventLog::read(&db, None);
    }
    // Let one daemon finish the work; its ticks settle whatever the kills left behind.
    let status = daemon().args(["--until-idle", "--max-ticks", "3000"]).status().unwrap();
    assert!(status.success());
    invariants(&db, "after settling");
    log.assert_kept(&db, "after settling");
    let conn = Connection::open(&db).unwrap();
    let open: i64 = conn
        .query_row("SELECT count(*) FROM tasks WHERE status NOT IN ('done', 'blocked')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(open, 0, "every card reached done (or blocked) once a daemon could finish");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !live_workers("kill-test-worker.sh").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(live_workers("kill-test-worker.sh"), Vec::<i32>::new(), "a worker outlived its card");
    // No process of an earlier attempt of a requeued card (nor of any ended run) is alive: its session,
    // which holds the worker and everything it started, is empty.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ended_attempt_processes(&db).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = ended_attempt_processes(&db);
    let requeued: i64 = conn
        .query_row(
            "SELECT count(*) FROM task_runs r WHERE EXISTS (
               SELECT 1 FROM task_runs n WHERE n.task_id = r.task_id AND n.id > r.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(requeued > 0, "the kills requeued no card; the check below would prove nothing");
    assert_eq!(left, Vec::new(), "processes of ended attempts (run, card, pid) are alive after the drain");
}
