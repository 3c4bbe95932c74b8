//! Black-box tests for worker supervision (contract: "Workers", "Workspaces", docs/dispatcher.md): the
//! worker's environment, log, workspaces, the CLI's worker scope, goal mode and the context file. Workers are
//! small shell scripts that report what they saw into `$OUT`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use serde_json::Value;

const COMPLETE: &str = r#""$KANBAN_BIN" complete "$KANBAN_TASK""#;

fn board(f: &Fleet, body: &str, extra: &str, env: &[(&str, &str)]) {
    let script = f.script("worker.sh", body);
    f.write_board(&format!("{extra}\n{}", f.profile("p", &script, env)));
}

fn canon(p: impl AsRef<Path>) -> PathBuf {
    let p = p.as_ref();
    p.canonicalize().unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.display()))
}

fn spawned(report: &Value) -> Vec<String> {
    task_ids(&report["spawned"])
}

#[test]
fn the_worker_gets_its_environment_closed_stdin_and_its_own_process_group() {
    let f = Fleet::new();
    board(
        &f,
        r#"env > "$OUT/env.txt"
pwd > "$OUT/pwd.txt"
echo $$ > "$OUT/pid.txt"
cut -d' ' -f5 /proc/$$/stat > "$OUT/pgid.txt"
cat > "$OUT/stdin.txt"
cp "$KANBAN_CONTEXT" "$OUT/context.md"
"$KANBAN_BIN" complete "$KANBAN_TASK""#,
        "",
        &[("GREETING", "hello world")],
    );
    let id = f.create("Paint the shed", &["--assignee", "p", "--body", "Two coats, green."]);
    f.ok(&["comment", &id, "mind the window frames", "--author", "alice"]);

    // The dispatcher gets data on stdin; the worker must not see it.
    let mut child = f
        .cmd(&["dispatch", "--wait", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dispatch");
    let dispatcher_pid = child.id();
    child.stdin.take().unwrap().write_all(b"SECRET-ON-STDIN\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let report = parse_json(&expect_ok(&out, &"dispatch --wait"), &"dispatch --wait");
    assert_eq!(spawned(&report), vec![id.clone()], "{report}");
    assert_eq!(f.status(&id), "done", "the worker's complete went through");

    let env: BTreeMap<String, String> = f
        .out("env.txt")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let var =
        |key: &str| env.get(key).unwrap_or_else(|| panic!("{key} not in the worker's env: {env:?}")).clone();
    assert_eq!(canon(var("KANBAN_HOME")), canon(f.home()));
    assert_eq!(var("KANBAN_BOARD"), "default");
    assert_eq!(canon(var("KANBAN_DB")), canon(f.db_path("default")));
    assert_eq!(var("KANBAN_TASK"), id);
    let runs = f.runs(&id);
    assert_eq!(runs.len(), 1);
    assert_eq!(var("KANBAN_RUN_ID"), runs[0]["id"].to_string());
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(var("KANBAN_CLAIM_LOCK"), format!("{host}:{dispatcher_pid}"));
    assert_eq!(runs[0]["claim_lock"].as_str(), Some(var("KANBAN_CLAIM_LOCK").as_str()));
    let workspace = f.board_dir("default").join("workspaces").join(&id);
    assert_eq!(PathBuf::from(var("KANBAN_WORKSPACE")), workspace);
    assert_eq!(f.out("pwd.txt").trim(), workspace.display().to_string(), "the worker runs in its workspace");
    assert_eq!(var("GREETING"), "hello world", "profile env");
    assert!(!env.contains_key("KANBAN_GOAL_MODE"), "not a goal card: {env:?}");

    let context = f.out("context.md");
    for needle in ["Paint the shed", "Two coats, green.", "mind the window frames"] {
        assert!(context.contains(needle), "{needle:?} not in KANBAN_CONTEXT:\n{context}");
    }
    assert_eq!(f.out("stdin.txt"), "", "the worker's stdin is closed");
    let pid = f.out("pid.txt");
    assert!(!pid.trim().is_empty());
    assert_eq!(f.out("pgid.txt").trim(), pid.trim(), "the worker leads its own process group");
}

#[test]
fn worker_output_goes_to_the_card_log() {
    let f = Fleet::new();
    board(
        &f,
        r#"echo "said on stdout"
echo "said on stderr" >&2
"$KANBAN_BIN" complete "$KANBAN_TASK" > /dev/null
printf 'END-Z'"#,
        "",
        &[],
    );
    let id = f.create("chatty", &["--assignee", "p"]);
    f.dispatch_wait();
    let log = f.ok(&["log", &id]);
    assert!(log.contains("said on stdout"), "{log}");
    assert!(log.contains("said on stderr"), "{log}");
    assert!(log.ends_with("END-Z"), "{log}");
    assert_eq!(f.ok(&["log", &id, "--tail", "5"]), "END-Z");
    let on_disk =
        std::fs::read_to_string(f.board_dir("default").join("logs").join(format!("{id}.log"))).unwrap();
    assert_eq!(on_disk, log);
}

#[test]
fn a_scratch_workspace_is_created_for_the_worker_and_removed_when_it_completes() {
    let f = Fleet::new();
    board(
        &f,
        r#"pwd > "$OUT/pwd.txt"
echo data > made-here.txt
ls > "$OUT/ls.txt"
"$KANBAN_BIN" complete "$KANBAN_TASK""#,
        "",
        &[],
    );
    let id = f.create("scratchy", &["--assignee", "p"]);
    let workspace = f.board_dir("default").join("workspaces").join(&id);
    let report = f.dispatch_wait();
    assert_eq!(report["spawned"][0]["workspace"], workspace.display().to_string(), "{report}");
    assert_eq!(f.out("pwd.txt").trim(), workspace.display().to_string());
    assert!(f.out("ls.txt").contains("made-here.txt"));
    assert_eq!(f.status(&id), "done");
    assert!(!workspace.exists(), "the scratch workspace is deleted on completion");
    // The card records the folder its worker really ran in.
    assert_eq!(f.task(&id)["workspace_path"], workspace.display().to_string());
    assert!(f.board_dir("default").join("workspaces").is_dir(), "the managed root stays");
}

#[test]
fn a_dir_workspace_is_never_removed() {
    let f = Fleet::new();
    board(
        &f,
        r#"pwd > "$OUT/pwd.txt"
echo keep > kept.txt
"$KANBAN_BIN" complete "$KANBAN_TASK""#,
        "",
        &[],
    );
    let dir = f.home().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("existing.txt"), "old").unwrap();
    let id = f.create("in my dir", &["--assignee", "p", "--workspace", &format!("dir:{}", dir.display())]);
    f.dispatch_wait();
    assert_eq!(f.status(&id), "done");
    assert_eq!(f.out("pwd.txt").trim(), dir.display().to_string());
    assert_eq!(std::fs::read_to_string(dir.join("kept.txt")).unwrap(), "keep\n");
    assert_eq!(std::fs::read_to_string(dir.join("existing.txt")).unwrap(), "old");
}

#[test]
fn a_scratch_workspace_that_is_a_symlink_is_not_followed_on_completion() {
    let f = Fleet::new();
    board(&f, COMPLETE, "", &[]);
    let id = f.create("linked", &[]);
    let outside = f.home().join("precious");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("important.txt"), "do not delete").unwrap();
    let workspaces = f.board_dir("default").join("workspaces");
    std::fs::create_dir_all(&workspaces).unwrap();
    let link = workspaces.join(&id);
    std::os::unix::fs::symlink(&outside, &link).unwrap();

    let out = f.run(&["complete", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    expect_ok(&out, &"complete");
    assert_eq!(f.status(&id), "done");
    assert_eq!(std::fs::read_to_string(outside.join("important.txt")).unwrap(), "do not delete");
    assert!(std::fs::symlink_metadata(&link).is_ok(), "the link itself is left alone");
    assert!(stderr.contains("kept workspace") && stderr.contains("symlink"), "{stderr}");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_worktree_card_runs_on_its_branch_and_an_unclean_or_unpushed_worktree_is_kept() {
    let f = Fleet::new();
    board(
        &f,
        r#"pwd > "$OUT/$KANBAN_TASK.pwd"
echo "$KANBAN_BRANCH" > "$OUT/$KANBAN_TASK.branch"
git rev-parse --abbrev-ref HEAD > "$OUT/$KANBAN_TASK.head"
if [ "$(cat "$OUT/dirty")" = "$KANBAN_TASK" ]; then echo change > uncommitted.txt; fi
"$KANBAN_BIN" complete "$KANBAN_TASK""#,
        "",
        &[],
    );
    let repo = f.home().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README"), "hello\n").unwrap();
    git(&repo, &["add", "README"]);
    git(&repo, &["commit", "-q", "-m", "initial"]);

    let spec = format!("worktree:{}", repo.display());
    let dirty = f.create("dirty", &["--assignee", "p", "--workspace", &spec]);
    let clean = f.create("clean but unpushed", &["--assignee", "p", "--workspace", &spec]);
    std::fs::write(f.out_dir().join("dirty"), &dirty).unwrap();
    let report = f.dispatch_wait();
    assert_eq!(spawned(&report).len(), 2, "{report}");

    for id in [&dirty, &clean] {
        assert_eq!(f.status(id), "done", "{id}");
        let worktree = repo.join(".worktrees").join(id);
        assert_eq!(f.out(&format!("{id}.pwd")).trim(), worktree.display().to_string());
        assert_eq!(f.out(&format!("{id}.branch")).trim(), format!("wt/{id}"), "KANBAN_BRANCH");
        assert_eq!(f.out(&format!("{id}.head")).trim(), format!("wt/{id}"), "checked out branch");
        assert!(worktree.join("README").is_file(), "{id}: the worktree is kept");
        // The card records the branch its worker really ran on, and keeps its repository.
        let card = f.task(id);
        assert_eq!(card["branch_name"], format!("wt/{id}"), "{card}");
        assert_eq!(card["workspace_path"], repo.display().to_string(), "{card}");
    }
    assert!(repo.join(".worktrees").join(&dirty).join("uncommitted.txt").is_file());
    let dirty_log = f.ok(&["log", &dirty]);
    assert!(dirty_log.contains("uncommitted changes"), "{dirty_log}");
    let clean_log = f.ok(&["log", &clean]);
    assert!(clean_log.contains("never pushed"), "{clean_log}");
    let branches = git(&repo, &["branch", "--list", "wt/*"]);
    assert!(
        branches.contains(&format!("wt/{dirty}")) && branches.contains(&format!("wt/{clean}")),
        "{branches}"
    );
}

#[test]
fn a_worker_cannot_modify_another_card() {
    let f = Fleet::new();
    let other = f.create("someone else's", &[]);
    board(
        &f,
        r#""$KANBAN_BIN" complete "$OTHER" 2> "$OUT/complete.err"; echo $? > "$OUT/complete.rc"
"$KANBAN_BIN" comment "$OTHER" sneaky 2> "$OUT/comment.err"; echo $? > "$OUT/comment.rc"
"$KANBAN_BIN" gc --older-than 1s 2> "$OUT/gc.err"; echo $? > "$OUT/gc.rc"
"$KANBAN_BIN" decompose --all 2> "$OUT/decompose-all.err"; echo $? > "$OUT/decompose-all.rc"
"$KANBAN_BIN" decompose "$OTHER" 2> "$OUT/decompose.err"; echo $? > "$OUT/decompose.rc"
"$KANBAN_BIN" complete "$KANBAN_TASK""#,
        "",
        &[("OTHER", &other)],
    );
    let mine = f.create("mine", &["--assignee", "p"]);
    let report = f.dispatch_wait();
    assert_eq!(spawned(&report), vec![mine.clone()], "{report}");
    assert_eq!(f.status(&mine), "done");
    // Board-wide commands would reach other cards too: `gc` prunes their events, `decompose --all` splits them.
    for what in ["complete", "comment", "gc", "decompose-all", "decompose"] {
        assert_eq!(f.out(&format!("{what}.rc")).trim(), "1", "{what}");
        let err = f.out(&format!("{what}.err"));
        assert!(err.contains(&format!("worker is scoped to task {mine}")), "{what}: {err}");
    }
    let task = f.show(&other);
    assert_eq!(task["task"]["status"], "ready", "{task}");
    assert!(task["comments"].as_array().unwrap().is_empty(), "{task}");
    assert!(f.events_of(&other, "completed").is_empty());
    assert!(f.events().iter().all(|e| e["kind"] != "gc"), "gc ran inside a worker");
}

#[test]
fn a_stale_attempt_cannot_complete_or_heartbeat_the_newer_run() {
    let f = Fleet::new();
    board(&f, "sleep 600", "", &[]);
    let id = f.create("respawned", &["--assignee", "p"]);
    f.dispatch(&[]);
    let old = f.wait_worker(&id)["id"].as_i64().unwrap();
    f.ok(&["reclaim", &id, "--reason", "test"]);
    let report = f.dispatch(&[]);
    assert_eq!(spawned(&report), vec![id.clone()], "{report}");
    let new = f.wait_worker(&id)["id"].as_i64().unwrap();
    assert_ne!(old, new);

    let as_worker = |run: i64, args: &[&str]| {
        f.cmd(args).env("KANBAN_TASK", &id).env("KANBAN_RUN_ID", run.to_string()).output().unwrap()
    };
    for args in [&["complete", id.as_str()][..], &["heartbeat", id.as_str()][..]] {
        let err = expect_fail(&as_worker(old, args), &args, 1);
        assert!(err.contains("stale attempt"), "{args:?}: {err}");
    }
    let task = f.task(&id);
    assert_eq!(task["status"], "running", "{task}");
    assert_eq!(task["current_run_id"], new, "{task}");
    assert!(task["last_heartbeat_at"].is_null(), "{task}");

    // The current attempt may.
    expect_ok(&as_worker(new, &["complete", &id]), &"complete as the current attempt");
    assert_eq!(f.status(&id), "done");
}

/// A board whose judge answers with `script` and whose worker logs each turn and exits 0 without a
/// terminal call.
/// The judge counts its calls in `$OUT/judge-count`, keeps its stdin and the environment it saw, then runs
/// `verdict`. (`OUT` is set in the script itself: the judge does not get the profile's `env`.)
fn goal_board(f: &Fleet, verdict: &str) {
    let judge = f.script(
        "judge.sh",
        &format!(
            r#"OUT={out:?}
n=$(cat "$OUT/judge-count" 2>/dev/null || echo 0)
n=$((n + 1))
echo $n > "$OUT/judge-count"
cat > "$OUT/judge-stdin-$n.txt"
env > "$OUT/judge-env-$n.txt"
{verdict}"#,
            out = f.out_dir().display().to_string()
        ),
    );
    board(
        f,
        r#"echo "$KANBAN_GOAL_MODE|$KANBAN_GOAL_MAX_TURNS|$KANBAN_GOAL_TURN|${KANBAN_GOAL_FEEDBACK-}" >> "$OUT/turns.txt"
exit 0"#,
        &format!("[goal]\njudge = [\"sh\", {judge:?}]\n"),
        &[("GREETING", "hello judge")],
    );
}

#[test]
fn goal_mode_runs_turns_until_the_judge_rules_done() {
    let f = Fleet::new();
    goal_board(&f, "if [ $n -ge 2 ]; then echo 'done all good'; else echo 'continue more please'; fi");
    let id = f.create("Polish the docs", &["--assignee", "p", "--goal", "--body", "until they shine"]);
    let report = f.dispatch_wait();
    assert_eq!(spawned(&report), vec![id.clone()], "{report}");
    assert!(strings(&report["protocol_violations"]).is_empty(), "{report}");
    let task = f.task(&id);
    assert_eq!(task["status"], "done", "{task}");
    assert_eq!(task["result"], "all good", "{task}");
    assert_eq!(f.out("turns.txt"), "1|20|1|\n1|20|2|more please\n");
    let stdin = f.out("judge-stdin-1.txt");
    assert!(stdin.contains("Polish the docs") && stdin.contains("until they shine"), "{stdin}");
    let runs = f.runs(&id);
    assert_eq!(runs.len(), 1, "every turn is the same run: {runs:?}");
    assert_eq!(runs[0]["outcome"], "completed", "{runs:?}");
    let turns = f.events_of(&id, "goal_continue");
    assert_eq!(turns.len(), 1, "{turns:?}");
    assert_eq!(turns[0]["payload"]["feedback"], "more please", "{turns:?}");
    let judge_env = f.out("judge-env-1.txt");
    assert!(judge_env.contains(&format!("KANBAN_TASK={id}\n")), "{judge_env}");
    assert!(judge_env.contains("KANBAN_GOAL_TURN=1\n"), "{judge_env}");
}

/// docs/dispatcher.md: the judge "runs in the workspace with the worker's environment", and the worker's
/// environment is "the dispatcher's plus the profile's `env` plus" the KANBAN_* variables.
#[test]
fn the_goal_judge_sees_the_profile_env_like_the_worker() {
    let f = Fleet::new();
    goal_board(&f, "echo done");
    let id = f.create("Judge me", &["--assignee", "p", "--goal"]);
    f.dispatch_wait();
    assert_eq!(f.status(&id), "done");
    let judge_env = f.out("judge-env-1.txt");
    assert!(judge_env.contains("GREETING=hello judge\n"), "{judge_env}");
}

#[test]
fn goal_mode_blocks_the_card_when_the_turn_budget_runs_out() {
    let f = Fleet::new();
    goal_board(&f, "echo 'continue keep going'");
    let id = f.create("Endless", &["--assignee", "p", "--goal", "--goal-max-turns", "2"]);
    f.dispatch_wait();
    let task = f.task(&id);
    assert_eq!(task["status"], "blocked", "{task}");
    assert_eq!(task["block_sticky"], true, "{task}");
    let reason = task["block_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("turn budget"), "{task}");
    assert_eq!(f.out("turns.txt"), "1|2|1|\n1|2|2|keep going\n");
    assert_eq!(f.out("judge-count").trim(), "2");
    // Sticky: the next tick leaves it alone.
    let report = f.dispatch_wait();
    assert!(spawned(&report).is_empty(), "{report}");
    assert_eq!(f.status(&id), "blocked");
}

#[test]
fn context_shows_title_body_comments_and_prior_attempts() {
    let f = Fleet::new();
    board(&f, "exit 3", "", &[]);
    let id = f.create("Write the parser", &["--assignee", "p", "--body", "Handle nested brackets."]);
    f.ok(&["comment", &id, "remember the empty input", "--author", "bob"]);
    let report = f.dispatch_wait();
    assert_eq!(strings(&report["crashed"]), vec![id.clone()], "{report}");
    let context = f.ok(&["context", &id]);
    for needle in [
        "Write the parser",
        "Handle nested brackets.",
        "remember the empty input",
        "Prior attempts",
        "crashed",
        "exit 3",
    ] {
        assert!(context.contains(needle), "{needle:?} not in:\n{context}");
    }
}

#[test]
fn a_manual_reclaim_stops_the_cards_worker() {
    let f = Fleet::new();
    board(&f, "sleep 600", "", &[]);
    let id = f.create("stuck", &["--assignee", "p"]);
    f.dispatch(&[]);
    let run = f.wait_worker(&id);
    let pid = run["worker_pid"].as_i64().unwrap();
    assert!(process_alive(pid));
    let out = f.run(&["reclaim", &id, "--reason", "stuck"]);
    expect_ok(&out, &"reclaim");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped the worker"));
    wait_for("the reclaimed card's worker to exit", || !process_alive(pid));
    assert_eq!(f.status(&id), "ready");
}
