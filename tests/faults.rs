//! Fault injection: the host under a read-only board, a full disk, a held database lock, a deleted
//! workspace and a worker that ignores SIGTERM. Each fault gives a clear error (non-zero exit, `kanban: `,
//! the file named) or a recorded outcome, and nothing committed is lost.
//!
//! Tests run as root here and in CI, where `chmod` cannot make anything read-only, so the storage faults
//! run in a private user and mount namespace (`unshare -rm`): a read-only bind mount and a small tmpfs are
//! real to root too, and vanish with the namespace. A machine without user namespaces fails those tests
//! with a message saying so, unless `KANBAN_TEST_NO_USERNS=1` is set, which skips them.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{Fleet, Kanban, bin, expect_fail, expect_ok, group_members, process_alive, wait_for};
use rusqlite::Connection;

/// Run `script` with `sh` in a private user+mount namespace with `K` (this binary), `H` (the home) and `O`
/// (an output folder outside any mount the script makes) in its environment. `None` when user namespaces
/// are unavailable and `KANBAN_TEST_NO_USERNS=1` allows skipping.
fn in_namespace(home: &Path, out: &Path, script: &str) -> Option<()> {
    let probe = Command::new("unshare").args(["-rm", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        if std::env::var("KANBAN_TEST_NO_USERNS").is_ok_and(|v| v == "1") {
            eprintln!("skipped: `unshare -rm` (user and mount namespaces) is unavailable");
            return None;
        }
        panic!(
            "this test needs `unshare -rm` (unprivileged user and mount namespaces, util-linux) to mount a \
             read-only or full file system; set KANBAN_TEST_NO_USERNS=1 to skip it on this machine"
        );
    }
    std::fs::create_dir_all(out).unwrap();
    let prelude = r#"set -u
run() { name=$1; shift; "$K" --home "$H" "$@" >"$O/$name.out" 2>"$O/$name.err"; echo $? >"$O/$name.rc"; }
"#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", &format!("{prelude}{script}")]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KANBAN_") {
            cmd.env_remove(&key);
        }
    }
    let output =
        cmd.env("K", bin()).env("H", home).env("O", out).stdin(Stdio::null()).output().expect("run unshare");
    assert!(
        output.status.success(),
        "namespace script failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(())
}

/// The exit code, stdout and stderr a `run NAME ...` line of a namespace script recorded.
fn result(out: &Path, name: &str) -> (i32, String, String) {
    let read = |ext: &str| std::fs::read_to_string(out.join(format!("{name}.{ext}"))).unwrap_or_default();
    let rc = read("rc").trim().parse().unwrap_or_else(|_| panic!("{name} did not run"));
    (rc, read("out"), read("err"))
}

/// Assert the named command failed with exit 1, a `kanban: ` error that names `db` and contains `needle`.
fn failed_naming(out: &Path, name: &str, db: &Path, needle: &str) {
    let (rc, _, err) = result(out, name);
    assert_eq!(rc, 1, "{name} should fail with exit 1: {err}");
    assert!(err.starts_with("kanban: "), "{name}: {err}");
    assert!(err.contains(&db.display().to_string()), "{name} should name the database: {err}");
    assert!(err.contains(needle), "{name} should say '{needle}': {err}");
}

fn titles(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let mut stmt = conn.prepare("SELECT title FROM tasks ORDER BY rowid").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

#[test]
fn a_read_only_board_folder_gives_a_clear_error_and_loses_nothing() {
    let k = Kanban::new();
    let id = k.create("before", &[]);
    let board = k.board_dir("default");
    let db = k.db_path("default");
    let out = tempfile::tempdir().unwrap();
    let script = format!(
        r#"mount --bind {b:?} {b:?} && mount -o remount,bind,ro {b:?}
run list list
run create create "after"
run comment comment {id} "hello"
"#,
        b = board.display().to_string()
    );
    if in_namespace(k.home(), out.path(), &script).is_none() {
        return;
    }
    for name in ["list", "create", "comment"] {
        failed_naming(out.path(), name, &db, "cannot be written: the file system is mounted read-only");
        let (_, _, err) = result(out.path(), name);
        assert!(err.contains(&format!("so {} must be writable", board.display())), "{err}");
    }
    // Outside the namespace the folder is writable again: the card is there, nothing half-written.
    assert_eq!(titles(&db), vec!["before"]);
    k.ok(&["comment", &id, "works again"]);
}

#[test]
fn a_full_disk_refuses_writes_cleanly_and_the_board_survives() {
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let big = "x".repeat(120_000);
    std::fs::write(out.path().join("big.txt"), &big).unwrap();
    // The home is a 4 MiB tmpfs. Fill it completely, then leave 64 KiB: enough to open the board, not
    // enough for a 120 KB comment's pages in the write-ahead log.
    let script = r#"mount -t tmpfs -o size=4m tmpfs "$H"
run create1 create "one" --json
run create2 create "two"
ID=$("$K" --home "$H" list --json | sed -n 's/.*"id": *"\(t_[0-9a-f]*\)".*/\1/p' | head -n 1)
dd if=/dev/zero of="$H/filler" bs=64k 2>/dev/null
run full_create create "three"
run full_comment comment "$ID" "hello"
run full_attach attach "$ID" "$O/big.txt"
truncate -s -64k "$H/filler"
run slack_comment comment "$ID" "$(cat "$O/big.txt")"
rm "$H/filler"
run after_create create "four"
run after_list list --json
cp "$H/boards/default/kanban.db" "$O/kanban.db"
"#;
    if in_namespace(home.path(), out.path(), script).is_none() {
        return;
    }
    let db = home.path().join("boards/default/kanban.db");
    assert_eq!(result(out.path(), "create1").0, 0);
    for name in ["full_create", "full_comment", "full_attach", "slack_comment"] {
        failed_naming(out.path(), name, &db, "no space left on the device");
    }
    // Once space is back the board works, and holds exactly what was committed: no half-written card or
    // comment from the failed writes.
    let (rc, list, err) = result(out.path(), "after_list");
    assert_eq!(rc, 0, "{err}");
    assert!(list.contains("\"four\""), "{list}");
    let copy = out.path().join("kanban.db");
    assert_eq!(titles(&copy), vec!["one", "two", "four"]);
    let conn = Connection::open(&copy).unwrap();
    let comments: i64 = conn.query_row("SELECT count(*) FROM task_comments", [], |r| r.get(0)).unwrap();
    assert_eq!(comments, 0, "a failed comment left a row behind");
    let attachments: i64 = conn.query_row("SELECT count(*) FROM task_attachments", [], |r| r.get(0)).unwrap();
    assert_eq!(attachments, 0, "a failed attachment left a row behind");
}

/// Hold the board's write lock in this process (another process, as far as `kanban` is concerned).
fn hold_write_lock(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conn
}

#[test]
fn a_lock_held_past_the_busy_timeout_fails_clearly_and_writes_nothing() {
    let f = Fleet::new();
    f.write_board(&f.profile("p", &f.script("w.sh", "\"$KANBAN_BIN\" complete \"$KANBAN_TASK\""), &[]));
    let id = f.create("before", &["--assignee", "p"]);
    let db = f.db_path("default");
    let holder = hold_write_lock(&db);
    let fast = |args: &[&str]| f.cmd(args).env("KANBAN_BUSY_TIMEOUT_MS", "200").output().unwrap();

    for args in [&["create", "during"][..], &["comment", &id, "hi"], &["dispatch", "--json"]] {
        let err = expect_fail(&fast(args), &args, 1);
        assert!(err.contains("is locked by another process and stayed locked for 200 ms"), "{args:?}: {err}");
        assert!(err.contains(&db.display().to_string()), "{err}");
    }
    // Readers are not blocked by a writer (WAL): the board can still be inspected.
    let listed = expect_ok(&fast(&["list"]), &"list");
    assert!(listed.contains("before"), "{listed}");
    // The failed dispatch claimed nothing and started no worker.
    assert!(crate::common::home_processes(f.home()).is_empty(), "a worker was spawned under a failed tick");

    drop(holder); // rolls back and releases the lock
    assert_eq!(titles(&db), vec!["before"]);
    assert_eq!(f.status(&id), "ready", "the card was claimed by a tick that failed");
    f.dispatch_wait();
    assert_eq!(f.status(&id), "done");
}

#[test]
fn a_malformed_busy_timeout_override_is_a_usage_error() {
    let k = Kanban::new();
    let out = k.cmd(&["list"]).env("KANBAN_BUSY_TIMEOUT_MS", "soon").output().unwrap();
    let err = expect_fail(&out, &"list", 2);
    assert!(
        err.contains("KANBAN_BUSY_TIMEOUT_MS must be a whole number of milliseconds, not 'soon'"),
        "{err}"
    );
}

#[test]
fn a_workspace_deleted_under_a_running_worker_is_a_recorded_failure_and_the_retry_gets_a_fresh_one() {
    let f = Fleet::new();
    // The worker waits for the go-ahead, then works in its workspace; a missing workspace makes it fail.
    let script = f.script(
        "w.sh",
        r#"while [ ! -f "$OUT/go" ]; do sleep 0.05; done
cd "$KANBAN_WORKSPACE" || exit 3
echo "$KANBAN_RUN_ID" > work.txt
"$KANBAN_BIN" complete "$KANBAN_TASK""#,
    );
    f.write_board(&format!(
        "[dispatch]\nfailure_limit = 3\ncrash_grace_seconds = 0\n\n{}",
        f.profile("p", &script, &[])
    ));
    let id = f.create("fragile", &["--assignee", "p"]);
    let workspaces = f.board_dir("default").join("workspaces");
    let workspace = workspaces.join(&id);
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    assert!(workspace.is_dir());
    std::fs::remove_dir_all(&workspace).unwrap();
    std::fs::write(f.out_dir().join("go"), "").unwrap();
    wait_for("the worker to exit", || !process_alive(run["worker_pid"].as_i64().unwrap()));
    wait_for("its supervisor to record the exit", || {
        f.runs(&id).iter().any(|r| r["id"] == run["id"] && r["status"] == "exited")
    });

    // The next tick settles the failed run (cleanup finds nothing to delete and says nothing); once the
    // respawn guard's crash backoff has passed, a tick retries in a fresh workspace, where the worker
    // completes.
    let report = f.dispatch(&[]);
    assert_eq!(report["crashed"], serde_json::json!([id]), "{report}");
    f.advance(300);
    f.dispatch_wait();
    let runs = f.runs(&id);
    let first = runs.iter().find(|r| r["id"] == run["id"]).expect("first run");
    assert_eq!(first["outcome"], "crashed", "{first}");
    assert_eq!(first["exit_code"], 3, "{first}");
    assert_eq!(f.status(&id), "done", "{runs:?}");
    assert_eq!(f.task(&id)["consecutive_failures"], 0);
    assert!(!workspace.exists(), "the retry's workspace is removed on completion");
    assert!(workspaces.is_dir(), "the managed root stays");
}

#[test]
fn a_worker_that_ignores_sigterm_is_killed_after_the_grace_and_the_timeout_is_recorded() {
    let f = Fleet::new();
    // An ignored signal stays ignored across exec, so `sleep` ignores SIGTERM too.
    let script = f.script("w.sh", "trap '' TERM\necho $$ > \"$OUT/pid\"\nwhile :; do sleep 1; done");
    f.write_board(&format!("[dispatch]\nfailure_limit = 1\n\n{}", f.profile("p", &script, &[])));
    let id = f.create("stubborn", &["--assignee", "p", "--max-runtime", "60"]);
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    let worker = run["worker_pid"].as_i64().unwrap();
    wait_for("the worker to ignore SIGTERM", || !f.out("pid").is_empty());

    f.set_now(run["started_at"].as_i64().unwrap() + 61);
    let report = f.dispatch(&[]);
    assert_eq!(report["timed_out"], serde_json::json!([id]), "{report}");
    // The tick does not wait for the kill: the run is stopping, the card still running beside it.
    assert_eq!(f.runs(&id).iter().find(|r| r["id"] == run["id"]).unwrap()["status"], "stopping");
    // SIGTERM is ignored, so after the grace the supervisor sends SIGKILL; only then does the card move on.
    wait_for("the SIGTERM-ignoring worker to be killed", || !process_alive(worker));
    wait_for("the card to leave running", || f.status(&id) != "running");
    assert!(group_members(worker).is_empty(), "a process of the worker's group survived");
    let first = f.runs(&id).into_iter().find(|r| r["id"] == run["id"]).expect("run");
    assert_eq!(first["outcome"], "timed_out", "{first}");
    assert_eq!(f.status(&id), "blocked", "failure_limit 1 trips the breaker");
}
