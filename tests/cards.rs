//! Black-box tests for the card commands (contract: "Cards").

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TASK_KEYS: &[&str] = &[
    "id",
    "title",
    "body",
    "status",
    "assignee",
    "priority",
    "tenant",
    "created_by",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "workspace_kind",
    "workspace_path",
    "branch_name",
    "idempotency_key",
    "max_runtime_seconds",
    "max_retries",
    "consecutive_failures",
    "last_failure_error",
    "goal_mode",
    "goal_max_turns",
    "result",
    "claim_lock",
    "claim_expires",
    "worker_pid",
    "last_heartbeat_at",
    "current_run_id",
    "block_kind",
    "block_reason",
    "block_sticky",
];
const EVENT_KEYS: &[&str] = &["id", "task_id", "run_id", "kind", "payload", "created_at"];
const RUN_KEYS: &[&str] = &[
    "id",
    "task_id",
    "profile",
    "status",
    "outcome",
    "error",
    "summary",
    "metadata",
    "exit_code",
    "started_at",
    "ended_at",
];
const COMMENT_KEYS: &[&str] = &["id", "task_id", "author", "body", "created_at"];
const ATTACHMENT_KEYS: &[&str] = &["id", "task_id", "name", "size", "sha256", "path", "created_at"];

const MIB: u64 = 1024 * 1024;

/// The `Created ...` line of a text-mode create.
fn created_line(out: &str) -> (String, String) {
    let line = out
        .lines()
        .find(|l| l.starts_with("Created "))
        .unwrap_or_else(|| panic!("no `Created ` line in:\n{out}"));
    let rest = &line["Created ".len()..];
    let (id, tail) = rest.split_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
    assert!(is_task_id(id), "bad id in {line:?}");
    (id.to_string(), tail.to_string())
}

fn runs(k: &Kanban, id: &str) -> Vec<Value> {
    k.json(&["runs", id, "--json"]).as_array().expect("runs --json is an array").clone()
}

fn attachments(k: &Kanban, id: &str) -> Vec<Value> {
    k.json(&["attachments", id, "--json"]).as_array().expect("attachments --json is an array").clone()
}

/// The file name an attachment was stored under (the last component of its `path`). The `name` key
/// echoes the name the caller asked for; the implementation adds `stored_name` for the file on disk.
fn stored_name(a: &Value) -> String {
    let path = Path::new(a["path"].as_str().unwrap_or_else(|| panic!("no path in {a}")));
    let name = path.file_name().expect("file name").to_str().expect("utf-8").to_string();
    if let Some(stored) = a.get("stored_name") {
        assert_eq!(*stored, json!(name), "stored_name agrees with path: {a}");
    }
    name
}

fn event_id(e: &Value) -> i64 {
    e["id"].as_i64().unwrap_or_else(|| panic!("event id is not an integer: {e}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every regular file below `dir` (recursively); empty if `dir` does not exist.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.display()))
}

/// A card in `running` with an open run, assigned to `coder`.
fn running_card(k: &Kanban, title: &str) -> String {
    k.create(title, &["--assignee", "coder", "--initial-status", "running"])
}

fn assert_unchanged(k: &Kanban, before: &str, what: &str) {
    assert_eq!(before, k.snapshot(), "{what} changed the board");
}

// ---------------------------------------------------------------------------------------------------------
// create

#[test]
fn create_prints_created_line() {
    let k = Kanban::new();
    let (id, tail) = created_line(&k.ok(&["create", "Write docs"]));
    assert_eq!(tail, "(ready, assignee=none)");
    assert_eq!(k.status(&id), "ready");

    let (id, tail) = created_line(&k.ok(&["create", "Fix bug", "--assignee", "coder"]));
    assert_eq!(tail, "(ready, assignee=coder)");
    assert_eq!(k.task(&id)["assignee"], "coder");

    let (_, tail) = created_line(&k.ok(&["create", "Raw idea", "--triage"]));
    assert_eq!(tail, "(triage, assignee=none)");
}

#[test]
fn create_with_all_flags_stores_them() {
    let k = Kanban::new();
    let wd = k.home().join("workdir");
    std::fs::create_dir_all(&wd).unwrap();
    let ws = format!("dir:{}", wd.display());
    let v = k.json(&[
        "create",
        "Full card",
        "--body",
        "Some *markdown*",
        "--assignee",
        "coder",
        "--priority",
        "7",
        "--tenant",
        "acme",
        "--workspace",
        &ws,
        "--branch",
        "feat/x",
        "--idempotency-key",
        "key-1",
        "--max-runtime",
        "2h",
        "--max-retries",
        "4",
        "--json",
    ]);
    assert_keys(&v, TASK_KEYS, "created task");
    let id = v["id"].as_str().unwrap();
    assert!(is_task_id(id));
    assert_eq!(v["title"], "Full card");
    assert_eq!(v["body"], "Some *markdown*");
    assert_eq!(v["status"], "ready");
    assert_eq!(v["assignee"], "coder");
    assert_eq!(v["priority"], 7);
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["workspace_kind"], "dir");
    assert_eq!(v["workspace_path"], wd.display().to_string());
    assert_eq!(v["branch_name"], "feat/x");
    assert_eq!(v["idempotency_key"], "key-1");
    assert_eq!(v["max_runtime_seconds"], 7200);
    assert_eq!(v["max_retries"], 4);
    assert_eq!(v["consecutive_failures"], 0);
    assert_eq!(v["goal_mode"], false);
    assert_eq!(v["block_sticky"], false);
    assert_eq!(v["created_at"], DEFAULT_NOW);
    assert_eq!(v["updated_at"], DEFAULT_NOW);
    for key in [
        "started_at",
        "completed_at",
        "result",
        "claim_lock",
        "worker_pid",
        "current_run_id",
        "last_heartbeat_at",
    ] {
        assert!(v[key].is_null(), "{key} should be null: {v}");
    }
    // `show` reports the same task object.
    assert_eq!(k.task(id), v);
    assert_eq!(k.event_kinds(id), ["created"]);
}

#[test]
fn create_goal_flags() {
    let k = Kanban::new();
    let v = k.json(&["create", "Goal card", "--goal", "--goal-max-turns", "5", "--json"]);
    assert_eq!(v["goal_mode"], true);
    assert_eq!(v["goal_max_turns"], 5);
    let plain = k.json(&["create", "Plain card", "--json"]);
    assert_eq!(plain["goal_mode"], false);
}

#[test]
fn create_workspace_kinds() {
    let k = Kanban::new();
    let repo = k.home().join("repo");
    std::fs::create_dir_all(&repo).unwrap();

    let default = k.json(&["create", "Default", "--json"]);
    assert_eq!(default["workspace_kind"], "scratch");
    let scratch = k.json(&["create", "Scratch", "--workspace", "scratch", "--json"]);
    assert_eq!(scratch["workspace_kind"], "scratch");
    let wt = k.json(&["create", "Worktree", "--workspace", "worktree", "--json"]);
    assert_eq!(wt["workspace_kind"], "worktree");
    let spec = format!("worktree:{}", repo.display());
    let wtp = k.json(&["create", "Worktree path", "--workspace", &spec, "--json"]);
    assert_eq!(wtp["workspace_kind"], "worktree");
    assert_eq!(wtp["workspace_path"], repo.display().to_string());

    let before = k.snapshot();
    k.fails(&["create", "Relative", "--workspace", "dir:relative/path"], 2);
    k.fails(&["create", "Bogus", "--workspace", "bogus"], 2);
    assert_unchanged(&k, &before, "a refused --workspace");
}

#[test]
fn create_status_rules() {
    let k = Kanban::new();
    let plain = k.create("Plain", &[]);
    assert_eq!(k.status(&plain), "ready");

    let triage = k.create("Idea", &["--triage"]);
    assert_eq!(k.status(&triage), "triage");

    let parent = k.create("Parent", &[]);
    let child = k.create("Child", &["--parent", &parent]);
    assert_eq!(k.status(&child), "todo");
    // --triage wins over open parents.
    let triage_child = k.create("Triage child", &["--parent", &parent, "--triage"]);
    assert_eq!(k.status(&triage_child), "triage");

    let done = k.create("Done parent", &[]);
    k.ok(&["complete", &done]);
    let after_done = k.create("After done", &["--parent", &done]);
    assert_eq!(k.status(&after_done), "ready");

    let archived = k.create("Archived parent", &[]);
    k.ok(&["archive", &archived]);
    let after_archived = k.create("After archived", &["--parent", &archived]);
    assert_eq!(k.status(&after_archived), "ready");

    // One open parent among closed ones is enough for todo.
    let mixed = k.create("Mixed", &["--parent", &done, "--parent", &parent, "--parent", &archived]);
    assert_eq!(k.status(&mixed), "todo");
    let show = k.show(&mixed);
    let mut parents = ids(&show["parents"]);
    parents.sort();
    let mut want = vec![done.clone(), parent.clone(), archived.clone()];
    want.sort();
    assert_eq!(parents, want);

    let blocked = k.create("Blocked", &["--initial-status", "blocked"]);
    assert_eq!(k.status(&blocked), "blocked");

    k.fails(&["create", "Ready?", "--initial-status", "ready"], 2);
}

#[test]
fn create_initial_status_running_opens_a_run() {
    let k = Kanban::new();
    let id = running_card(&k, "Running");
    let task = k.task(&id);
    assert_eq!(task["status"], "running");
    let runs = runs(&k, &id);
    assert_eq!(runs.len(), 1, "one run: {runs:?}");
    let run = &runs[0];
    assert_keys(run, RUN_KEYS, "run");
    assert_eq!(run["status"], "running");
    assert_eq!(run["task_id"], id.as_str());
    assert_eq!(run["profile"], "coder");
    assert_eq!(run["started_at"], DEFAULT_NOW);
    assert!(run["ended_at"].is_null());
    assert_eq!(task["current_run_id"], run["id"]);
    assert!(k.event_kinds(&id).iter().any(|x| x == "run_started"));
}

#[test]
fn create_idempotency_key() {
    let k = Kanban::new();
    let first = k.create("Once", &["--idempotency-key", "k-1"]);
    let again = k.create("Once (retry)", &["--idempotency-key", "k-1"]);
    assert_eq!(first, again, "same key returns the existing card");
    assert_eq!(k.list_ids(&["--archived"]), [first.as_str()]);
    assert_eq!(k.task(&first)["title"], "Once");

    // A different key is a different card.
    let other = k.create("Other", &["--idempotency-key", "k-2"]);
    assert_ne!(other, first);

    // Archiving frees the key.
    k.ok(&["archive", &first]);
    let fresh = k.create("Once more", &["--idempotency-key", "k-1"]);
    assert_ne!(fresh, first);
    assert_eq!(k.status(&fresh), "ready");
    assert_eq!(k.status(&first), "archived");
    let again = k.create("Once more (retry)", &["--idempotency-key", "k-1"]);
    assert_eq!(again, fresh);
    assert_eq!(k.list_ids(&["--archived"]).len(), 3);
}

#[test]
fn create_blank_title_is_a_usage_error() {
    let k = Kanban::new();
    k.ok(&["list"]);
    let before = k.snapshot();
    for title in ["", "   ", "\t \n"] {
        k.fails(&["create", title], 2);
    }
    assert_unchanged(&k, &before, "a blank-title create");
    assert!(k.list_ids(&["--archived"]).is_empty());
}

#[test]
fn create_max_runtime_durations() {
    let k = Kanban::new();
    for (dur, secs) in [("45", 45), ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400)] {
        let v = k.json(&["create", "Timed", "--max-runtime", dur, "--json"]);
        assert_eq!(v["max_runtime_seconds"], secs, "--max-runtime {dur}");
    }
}

#[test]
fn create_bad_duration_is_a_usage_error() {
    let k = Kanban::new();
    k.ok(&["list"]);
    let before = k.snapshot();
    for dur in ["abc", "5x", "1.5h", "", "m", "-5", "5 m"] {
        k.fails(&["create", "Timed", "--max-runtime", dur], 2);
    }
    assert_unchanged(&k, &before, "a bad --max-runtime");
}

#[test]
fn create_unknown_parent_is_refused() {
    let k = Kanban::new();
    let real = k.create("Real parent", &[]);
    let before = k.snapshot();
    k.fails(&["create", "Orphan", "--parent", "t_deadbeef"], 1);
    k.fails(&["create", "Orphan", "--parent", &real, "--parent", "t_deadbeef"], 1);
    assert_unchanged(&k, &before, "a create with an unknown parent");
}

#[test]
fn create_body_file() {
    let k = Kanban::new();
    let body = "# Heading\n\nline one\nline two\n";
    let path = k.write_file("body.md", body.as_bytes());
    let v = k.json(&["create", "From file", "--body-file", path.to_str().unwrap(), "--json"]);
    assert_eq!(v["body"], body);

    let out = k.run_stdin(&["create", "From stdin", "--body-file", "-", "--json"], b"piped body\n");
    let v = parse_json(&expect_ok(&out, &"create --body-file -"), &"create");
    assert_eq!(v["body"], "piped body\n");
}

#[test]
fn create_body_file_unreadable_is_refused() {
    let k = Kanban::new();
    k.ok(&["list"]);
    let before = k.snapshot();
    let missing = k.home().join("no-such-file.md");
    let out = k.run(&["create", "Bad", "--body-file", missing.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "unreadable --body-file: expected exit 1 or 2, got {:?}\n{stderr}",
        out.status
    );
    assert!(stderr.starts_with("kanban: "), "stderr: {stderr}");

    // --body and --body-file are exclusive.
    let path = k.write_file("b.md", b"x");
    k.fails(&["create", "Both", "--body", "x", "--body-file", path.to_str().unwrap()], 2);
    assert_unchanged(&k, &before, "a refused --body-file");
}

// ---------------------------------------------------------------------------------------------------------
// list

#[test]
fn list_filters() {
    let k = Kanban::new();
    let a = k.create("A", &["--assignee", "coder", "--tenant", "acme"]);
    k.advance(10);
    let b = k.create("B", &["--assignee", "writer", "--tenant", "beta", "--triage"]);
    k.advance(10);
    let c = k.create("C", &["--assignee", "coder", "--initial-status", "blocked"]);
    k.advance(10);
    let d = k.create("D", &["--assignee", "coder", "--tenant", "acme"]);
    k.ok(&["archive", &d]);

    assert_eq!(k.list_ids(&[]), [a.clone(), b.clone(), c.clone()]);
    assert_eq!(k.list_ids(&["--status", "ready"]), [a.as_str()]);
    assert_eq!(k.list_ids(&["--status", "triage"]), [b.as_str()]);
    assert_eq!(k.list_ids(&["--status", "blocked"]), [c.as_str()]);
    assert_eq!(k.list_ids(&["--assignee", "coder"]), [a.clone(), c.clone()]);
    assert_eq!(k.list_ids(&["--assignee", "writer"]), [b.as_str()]);
    assert_eq!(k.list_ids(&["--tenant", "acme"]), [a.as_str()]);
    assert_eq!(k.list_ids(&["--assignee", "coder", "--status", "blocked"]), [c.as_str()]);
    assert!(k.list_ids(&["--assignee", "nobody"]).is_empty());
    assert_eq!(k.list_ids(&["--status", "archived"]), [d.as_str()]);
    assert!(k.list_ids(&["--archived"]).contains(&d));
    assert!(
        k.list_ids(&["--archived", "--tenant", "acme"]).contains(&d),
        "--archived combines with --tenant"
    );

    // Every listed item is a full task object.
    let all = k.json(&["list", "--json"]);
    for t in all.as_array().unwrap() {
        assert_keys(t, TASK_KEYS, "listed task");
    }
    k.ok(&["list"]);
    k.fails(&["list", "--status", "bogus"], 2);
}

#[test]
fn list_sort_created_is_default() {
    let k = Kanban::new();
    let x = k.create("zeta", &["--priority", "1"]);
    k.advance(1);
    let y = k.create("alpha", &["--priority", "9"]);
    k.advance(1);
    let z = k.create("mid", &["--priority", "5"]);
    let want = [x, y, z];
    assert_eq!(k.list_ids(&[]), want);
    assert_eq!(k.list_ids(&["--sort", "created"]), want);
}

#[test]
fn list_sort_priority() {
    let k = Kanban::new();
    let p1 = k.create("p1", &["--priority", "1"]);
    k.advance(1);
    let p5a = k.create("p5a", &["--priority", "5"]);
    k.advance(1);
    let p5b = k.create("p5b", &["--priority", "5"]);
    k.advance(1);
    let p3 = k.create("p3", &["--priority", "3"]);
    assert_eq!(k.list_ids(&["--sort", "priority"]), [p5a, p5b, p3, p1]);
}

#[test]
fn list_sort_title() {
    let k = Kanban::new();
    let banana = k.create("Banana", &[]);
    k.advance(1);
    let apple = k.create("apple", &[]);
    k.advance(1);
    let cherry = k.create("cherry", &[]);
    assert_eq!(k.list_ids(&["--sort", "title"]), [apple, banana, cherry]);
}

#[test]
fn list_sort_assignee() {
    let k = Kanban::new();
    let zed = k.create("one", &["--assignee", "zed"]);
    k.advance(1);
    let amy = k.create("two", &["--assignee", "amy"]);
    k.advance(1);
    let mike = k.create("three", &["--assignee", "mike"]);
    assert_eq!(k.list_ids(&["--sort", "assignee"]), [amy, mike, zed]);
}

#[test]
fn list_sort_status() {
    // The contract does not fix the status order: accept lifecycle order (triage, todo, scheduled, ready,
    // running, blocked, review, done, archived) or alphabetical.
    let k = Kanban::new();
    let ready = k.create("r", &[]);
    k.advance(1);
    let blocked = k.create("b", &["--initial-status", "blocked"]);
    k.advance(1);
    let triage = k.create("t", &["--triage"]);
    k.advance(1);
    let scheduled = k.create("s", &[]);
    k.ok(&["schedule", &scheduled]);
    let got = k.list_ids(&["--sort", "status"]);
    let lifecycle = [triage.clone(), scheduled.clone(), ready.clone(), blocked.clone()];
    let alphabetical = [blocked, ready, scheduled, triage];
    assert!(
        got == lifecycle || got == alphabetical,
        "--sort status: {got:?} is neither lifecycle {lifecycle:?} nor alphabetical {alphabetical:?}"
    );
}

#[test]
fn list_sort_updated() {
    // Direction is not fixed by the contract: accept ascending or descending updated_at.
    let k = Kanban::new();
    let a = k.create("a", &[]);
    k.advance(10);
    let b = k.create("b", &[]);
    k.advance(10);
    let c = k.create("c", &[]);
    k.advance(10);
    k.ok(&["edit", &a, "--title", "a2"]);
    assert_eq!(k.task(&a)["updated_at"], k.now());
    let got = k.list_ids(&["--sort", "updated"]);
    let asc = [b.clone(), c.clone(), a.clone()];
    let desc = [a, c, b];
    assert!(got == asc || got == desc, "--sort updated: {got:?} is neither {asc:?} nor {desc:?}");
    k.fails(&["list", "--sort", "bogus"], 2);
}

// ---------------------------------------------------------------------------------------------------------
// show

#[test]
fn show_json_shape() {
    let k = Kanban::new();
    let parent = k.create("Parent", &[]);
    let card = k.create("Card", &["--parent", &parent, "--body", "the body"]);
    let child = k.create("Child", &["--parent", &card]);
    k.ok(&["comment", &card, "a note", "--author", "alice"]);
    let file = k.write_file("notes.txt", b"notes");
    k.ok(&["attach", &card, file.to_str().unwrap()]);

    let show = k.show(&card);
    assert_keys(&show, &["task", "parents", "children", "comments", "events", "runs", "attachments"], "show");
    assert_keys(&show["task"], TASK_KEYS, "show.task");
    assert_eq!(show["task"]["id"], card.as_str());
    assert_eq!(show["task"]["body"], "the body");
    assert!(show["task"]["goal_mode"].is_boolean());
    assert!(show["task"]["block_sticky"].is_boolean());

    assert_eq!(ids(&show["parents"]), [parent.as_str()]);
    assert_keys(&show["parents"][0], TASK_KEYS, "show.parents[0]");
    assert_eq!(ids(&show["children"]), [child.as_str()]);
    assert_keys(&show["children"][0], TASK_KEYS, "show.children[0]");

    let comments = show["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 1);
    assert_keys(&comments[0], COMMENT_KEYS, "comment");

    let events = show["events"].as_array().unwrap();
    assert!(!events.is_empty());
    for e in events {
        assert_keys(e, EVENT_KEYS, "event");
        assert!(e["payload"].is_object(), "payload is an object: {e}");
        assert_eq!(e["task_id"], card.as_str());
    }
    assert_eq!(events[0]["kind"], "created");

    assert_eq!(show["runs"], json!([]));
    let atts = show["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 1);
    assert_keys(&atts[0], ATTACHMENT_KEYS, "attachment");

    // Runs in show carry the run keys.
    let running = running_card(&k, "Running");
    let show = k.show(&running);
    assert_eq!(show["runs"].as_array().unwrap().len(), 1);
    assert_keys(&show["runs"][0], RUN_KEYS, "show.runs[0]");

    let text = k.ok(&["show", &card]);
    assert!(text.contains(&card) && text.contains("Card"), "text show:\n{text}");
    k.fails(&["show", "t_00000000"], 1);
    k.fails(&["show", "t_00000000", "--json"], 1);
}

// ---------------------------------------------------------------------------------------------------------
// assign, comment

#[test]
fn assign_and_unassign() {
    let k = Kanban::new();
    let id = k.create("Card", &[]);
    k.advance(5);
    k.ok(&["assign", &id, "coder"]);
    let t = k.task(&id);
    assert_eq!(t["assignee"], "coder");
    assert_eq!(t["updated_at"], k.now());
    k.ok(&["assign", &id, "none"]);
    assert!(k.task(&id)["assignee"].is_null());
    let kinds = k.event_kinds(&id);
    assert_eq!(kinds.iter().filter(|x| *x == "assigned").count(), 2);

    let running = running_card(&k, "Busy");
    let before = k.snapshot();
    k.fails(&["assign", &running, "writer"], 1);
    k.fails(&["assign", "t_00000000", "coder"], 1);
    assert_unchanged(&k, &before, "a refused assign");
    assert_eq!(k.task(&running)["assignee"], "coder");
}

#[test]
fn comment_adds_comment_and_event() {
    let k = Kanban::new();
    let id = k.create("Card", &[]);
    k.advance(3);
    k.ok(&["comment", &id, "looks good", "--author", "alice"]);
    k.ok(&["comment", &id, "second"]);
    let comments = k.show(&id)["comments"].as_array().unwrap().clone();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[0]["body"], "looks good");
    assert_eq!(comments[0]["author"], "alice");
    assert_eq!(comments[0]["task_id"], id.as_str());
    assert_eq!(comments[0]["created_at"], k.now());
    assert_eq!(comments[1]["body"], "second");
    let kinds = k.event_kinds(&id);
    assert_eq!(kinds.iter().filter(|x| *x == "commented").count(), 2);
    k.fails(&["comment", "t_00000000", "x"], 1);
}

// ---------------------------------------------------------------------------------------------------------
// link, unlink

#[test]
fn link_and_unlink() {
    let k = Kanban::new();
    let parent = k.create("Parent", &[]);
    let child = k.create("Child", &[]);
    assert_eq!(k.status(&child), "ready");

    k.ok(&["link", &parent, &child]);
    assert_eq!(k.status(&child), "todo");
    assert_eq!(ids(&k.show(&child)["parents"]), [parent.as_str()]);
    assert_eq!(ids(&k.show(&parent)["children"]), [child.as_str()]);
    let kinds: Vec<String> = k.events().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
    assert!(kinds.contains(&"linked".to_string()), "{kinds:?}");

    k.ok(&["unlink", &parent, &child]);
    assert_eq!(k.status(&child), "ready");
    assert_eq!(k.show(&child)["parents"], json!([]));
    let kinds: Vec<String> = k.events().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
    assert!(kinds.contains(&"unlinked".to_string()), "{kinds:?}");

    // A closed parent does not hold the child back.
    let done = k.create("Done", &[]);
    k.ok(&["complete", &done]);
    k.ok(&["link", &done, &child]);
    assert_eq!(k.status(&child), "ready");

    // Unlinking one of two open parents keeps the child waiting.
    let p1 = k.create("P1", &[]);
    let p2 = k.create("P2", &[]);
    let c = k.create("C", &["--parent", &p1, "--parent", &p2]);
    k.ok(&["unlink", &p1, &c]);
    assert_eq!(k.status(&c), "todo");
    k.ok(&["unlink", &p2, &c]);
    assert_eq!(k.status(&c), "ready");

    k.fails(&["link", &parent, "t_00000000"], 1);
    k.fails(&["link", "t_00000000", &child], 1);
}

#[test]
fn link_refuses_self_links_and_cycles() {
    let k = Kanban::new();
    let a = k.create("A", &[]);
    let b = k.create("B", &[]);
    let c = k.create("C", &[]);
    let before = k.snapshot();
    k.fails(&["link", &a, &a], 1);
    assert_unchanged(&k, &before, "a self-link");

    k.ok(&["link", &a, &b]);
    let before = k.snapshot();
    k.fails(&["link", &b, &a], 1);
    assert_unchanged(&k, &before, "a 2-cycle link");

    k.ok(&["link", &b, &c]);
    let before = k.snapshot();
    k.fails(&["link", &c, &a], 1);
    assert_unchanged(&k, &before, "a 3-cycle link");
    assert_eq!(k.show(&a)["parents"], json!([]));
}

// ---------------------------------------------------------------------------------------------------------
// edit

#[test]
fn edit_fields_and_reset_failures() {
    let k = Kanban::new();
    let id = k.create("Old", &["--body", "old body", "--priority", "1"]);
    k.advance(60);
    k.ok(&["edit", &id, "--title", "New", "--body", "new body", "--priority", "9"]);
    let t = k.task(&id);
    assert_eq!(t["title"], "New");
    assert_eq!(t["body"], "new body");
    assert_eq!(t["priority"], 9);
    assert_eq!(t["updated_at"], k.now());
    assert_eq!(t["created_at"], DEFAULT_NOW);
    assert!(k.event_kinds(&id).contains(&"edited".to_string()));

    // Only the given fields change.
    k.ok(&["edit", &id, "--priority", "2"]);
    let t = k.task(&id);
    assert_eq!((t["title"].as_str(), t["priority"].as_i64()), (Some("New"), Some(2)));

    k.set_failures(&id, 2);
    assert_eq!(k.task(&id)["consecutive_failures"], 2);
    k.ok(&["edit", &id, "--reset-failures"]);
    assert_eq!(k.task(&id)["consecutive_failures"], 0);

    k.fails(&["edit", "t_00000000", "--title", "x"], 1);
}

// ---------------------------------------------------------------------------------------------------------
// block, unblock, schedule, promote

#[test]
fn block_kinds_and_stickiness() {
    let k = Kanban::new();
    let id = k.create("Plain block", &[]);
    k.ok(&["block", &id, "need credentials"]);
    let t = k.task(&id);
    assert_eq!(t["status"], "blocked");
    assert_eq!(t["block_reason"], "need credentials");
    assert_eq!(t["block_sticky"], true);
    assert!(k.event_kinds(&id).contains(&"blocked".to_string()));

    for kind in ["dependency", "capability"] {
        let id = k.create(kind, &[]);
        k.ok(&["block", &id, "why", "--kind", kind]);
        let t = k.task(&id);
        assert_eq!(t["status"], "blocked", "{kind}");
        assert_eq!(t["block_kind"], kind);
        assert_eq!(t["block_sticky"], true, "{kind} is sticky");
    }
    let id = k.create("transient", &[]);
    k.ok(&["block", &id, "--kind", "transient"]);
    let t = k.task(&id);
    assert_eq!(t["status"], "blocked");
    assert_eq!(t["block_kind"], "transient");
    assert_eq!(t["block_sticky"], false, "transient is not sticky");

    let other = k.create("Other", &[]);
    let before = k.snapshot();
    k.fails(&["block", &other, "x", "--kind", "bogus"], 2);
    k.fails(&["block", "t_00000000", "x"], 1);
    assert_unchanged(&k, &before, "a refused block");
}

#[test]
fn block_kind_needs_input_as_spelled_in_the_contract() {
    let k = Kanban::new();
    let id = k.create("Needs input", &[]);
    k.ok(&["block", &id, "which API key?", "--kind", "needs_input"]);
    let t = k.task(&id);
    assert_eq!(t["status"], "blocked");
    assert_eq!(t["block_kind"], "needs_input");
    assert_eq!(t["block_sticky"], true);
}

#[test]
fn block_running_card_ends_its_run() {
    let k = Kanban::new();
    let id = running_card(&k, "Busy");
    k.advance(30);
    k.ok(&["block", &id, "stuck", "--kind", "dependency"]);
    let t = k.task(&id);
    assert_eq!(t["status"], "blocked");
    assert!(t["current_run_id"].is_null(), "{t}");
    let runs = runs(&k, &id);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "ended");
    assert_eq!(runs[0]["ended_at"], k.now());
}

#[test]
fn unblock_resets_failures_and_refuses_non_blocked() {
    let k = Kanban::new();
    let id = k.create("Card", &[]);
    k.ok(&["block", &id, "broken"]);
    k.set_failures(&id, 2);
    k.ok(&["unblock", &id, "--reason", "fixed"]);
    let t = k.task(&id);
    assert_eq!(t["status"], "ready");
    assert_eq!(t["consecutive_failures"], 0);
    assert!(k.event_kinds(&id).contains(&"unblocked".to_string()));

    // Open parents: unblock goes to todo.
    let parent = k.create("Parent", &[]);
    let child = k.create("Child", &["--parent", &parent]);
    k.ok(&["block", &child]);
    assert_eq!(k.status(&child), "blocked");
    k.ok(&["unblock", &child]);
    assert_eq!(k.status(&child), "todo");

    // Not blocked: refused, nothing changes.
    let before = k.snapshot();
    k.fails(&["unblock", &id], 1);
    assert_unchanged(&k, &before, "unblocking a ready card");

    // Bulk: apply what can be applied, exit 1.
    let b1 = k.create("B1", &[]);
    let b2 = k.create("B2", &[]);
    k.ok(&["block", &b1]);
    k.ok(&["block", &b2]);
    let stderr = k.fails(&["unblock", &b1, &id, &b2], 1);
    assert!(stderr.contains(&id), "failure names the card: {stderr}");
    assert_eq!(k.status(&b1), "ready");
    assert_eq!(k.status(&b2), "ready");
}

#[test]
fn schedule_parks_a_card() {
    let k = Kanban::new();
    let id = k.create("Later", &[]);
    k.ok(&["schedule", &id, "next sprint"]);
    assert_eq!(k.status(&id), "scheduled");
    assert!(k.event_kinds(&id).contains(&"scheduled".to_string()));
    assert_eq!(k.list_ids(&["--status", "scheduled"]), [id.as_str()]);
    let other = k.create("Now", &[]);
    k.ok(&["schedule", &other]);
    assert_eq!(k.status(&other), "scheduled");
    k.fails(&["schedule", "t_00000000"], 1);
}

#[test]
fn promote_moves_cards_to_ready() {
    let k = Kanban::new();
    let triage = k.create("Triage", &["--triage"]);
    let scheduled = k.create("Scheduled", &[]);
    k.ok(&["schedule", &scheduled]);
    k.ok(&["promote", &triage, &scheduled]);
    assert_eq!(k.status(&triage), "ready");
    assert_eq!(k.status(&scheduled), "ready");
    assert!(k.event_kinds(&triage).contains(&"promoted".to_string()));

    let parent = k.create("Parent", &[]);
    let child = k.create("Child", &["--parent", &parent]);
    let before = k.snapshot();
    k.fails(&["promote", &child], 1);
    assert_unchanged(&k, &before, "promoting a todo card with open parents");
    assert_eq!(k.status(&child), "todo");
    k.ok(&["promote", &child, "--force"]);
    assert_eq!(k.status(&child), "ready");
}

#[test]
fn promote_json_shape_and_partial_failure() {
    let k = Kanban::new();
    let triage = k.create("Triage", &["--triage"]);
    let parent = k.create("Parent", &[]);
    let child = k.create("Child", &["--parent", &parent]);
    let out = k.run(&["promote", &triage, &child, "--json"]);
    assert_eq!(out.status.code(), Some(1), "partial promote exits 1");
    let v = parse_json(&String::from_utf8_lossy(&out.stdout), &"promote --json");
    assert_keys(&v, &["promoted", "failed", "dry_run"], "promote --json");
    assert_eq!(v["promoted"], json!([triage]));
    assert_eq!(v["dry_run"], false);
    let failed = v["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], child.as_str());
    assert!(failed[0]["error"].is_string());
    assert_eq!(k.status(&triage), "ready");
    assert_eq!(k.status(&child), "todo");
}

#[test]
fn promote_dry_run_changes_nothing() {
    let k = Kanban::new();
    let triage = k.create("Triage", &["--triage"]);
    let scheduled = k.create("Scheduled", &[]);
    k.ok(&["schedule", &scheduled]);
    let before = k.snapshot();
    let v = k.json(&["promote", &triage, &scheduled, "--dry-run", "--json"]);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["promoted"], json!([triage, scheduled]));
    assert_eq!(v["failed"], json!([]));
    k.ok(&["promote", &triage, "--dry-run"]);
    assert_unchanged(&k, &before, "promote --dry-run");
    assert_eq!(k.status(&triage), "triage");
    assert_eq!(k.status(&scheduled), "scheduled");
}

// ---------------------------------------------------------------------------------------------------------
// complete

#[test]
fn complete_sets_done_result_and_resets_failures() {
    let k = Kanban::new();
    let id = k.create("Card", &[]);
    k.set_failures(&id, 3);
    k.advance(100);
    k.ok(&["complete", &id, "--result", "shipped", "--summary", "did it"]);
    let t = k.task(&id);
    assert_eq!(t["status"], "done");
    assert_eq!(t["completed_at"], k.now());
    assert_eq!(t["result"], "shipped");
    assert_eq!(t["consecutive_failures"], 0);
    assert!(k.event_kinds(&id).contains(&"completed".to_string()));

    let before = k.snapshot();
    k.fails(&["complete", &id], 1);
    assert_unchanged(&k, &before, "completing a done card");
    let archived = k.create("Archived", &[]);
    k.ok(&["archive", &archived]);
    let before = k.snapshot();
    k.fails(&["complete", &archived], 1);
    assert_unchanged(&k, &before, "completing an archived card");
}

#[test]
fn complete_running_card_ends_run_with_summary() {
    let k = Kanban::new();
    let id = running_card(&k, "Busy");
    k.advance(50);
    k.ok(&["complete", &id, "--summary", "all green", "--result", "ok"]);
    let t = k.task(&id);
    assert_eq!(t["status"], "done");
    assert!(t["current_run_id"].is_null());
    let runs = runs(&k, &id);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "ended");
    assert_eq!(runs[0]["summary"], "all green");
    assert_eq!(runs[0]["ended_at"], k.now());
}

#[test]
fn complete_refused_while_parent_open() {
    let k = Kanban::new();
    let parent = k.create("Parent", &[]);
    let child = k.create("Child", &["--parent", &parent]);
    assert_eq!(k.status(&child), "todo");
    let before = k.snapshot();
    let err = k.fails(&["complete", &child], 1);
    assert!(err.contains(&format!("card {child} has open parent(s) {parent}")), "{err}");
    assert_unchanged(&k, &before, "completing a card with an open parent");
}

/// `promote --force` sends a card to work past its open parents, so it waives the parent check for that
/// card's completion too: the work a worker then does is never lost to a refused `complete`.
#[test]
fn a_forced_promotion_waives_the_parent_check_for_completion() {
    let k = Kanban::new();
    let parent = k.create("Parent", &[]);
    let child = k.create("Child", &["--parent", &parent]);
    k.ok(&["promote", &child, "--force"]);
    assert_eq!(k.status(&child), "ready");
    assert_eq!(k.task(&child)["parents_waived"], true);
    k.ok(&["complete", &child, "--result", "done anyway"]);
    assert_eq!(k.status(&child), "done");
    assert_eq!(k.status(&parent), "ready", "the parent is untouched");
}

#[test]
fn completing_last_parent_makes_child_ready() {
    let k = Kanban::new();
    let p1 = k.create("P1", &[]);
    let p2 = k.create("P2", &[]);
    let child = k.create("Child", &["--parent", &p1, "--parent", &p2]);
    assert_eq!(k.status(&child), "todo");
    k.ok(&["complete", &p1]);
    assert_eq!(k.status(&child), "todo");
    k.ok(&["complete", &p2]);
    assert_eq!(k.status(&child), "ready");
    assert!(k.event_kinds(&child).contains(&"ready".to_string()), "{:?}", k.event_kinds(&child));
}

#[test]
fn complete_bulk_partial_failure() {
    let k = Kanban::new();
    let a = k.create("A", &[]);
    let done = k.create("Done", &[]);
    k.ok(&["complete", &done]);
    let c = k.create("C", &[]);
    let stderr = k.fails(&["complete", &a, "t_00000000", &done, &c], 1);
    // One `kanban: ` line per failure, each naming its card. (The implementation adds one summary line,
    // `kanban: 2 of 4 failed`, which is tolerated.)
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("kanban: ")).collect();
    for bad in ["t_00000000", done.as_str()] {
        assert_eq!(lines.iter().filter(|l| l.contains(bad)).count(), 1, "one line for {bad}:\n{stderr}");
    }
    assert!(lines.len() <= 3, "one line per failure (plus at most a summary):\n{stderr}");
    assert_eq!(k.status(&a), "done");
    assert_eq!(k.status(&c), "done");
}

// ---------------------------------------------------------------------------------------------------------
// archive

#[test]
fn archive_and_archive_rm() {
    let k = Kanban::new();
    let a = k.create("A", &[]);
    k.ok(&["archive", &a]);
    assert_eq!(k.status(&a), "archived");
    assert!(!k.list_ids(&[]).contains(&a));
    assert!(k.event_kinds(&a).contains(&"archived".to_string()));

    // Archiving a parent counts as closed for its children.
    let parent = k.create("Parent", &[]);
    let child = k.create("Child", &["--parent", &parent]);
    k.ok(&["archive", &parent]);
    assert_eq!(k.status(&child), "ready");

    // A running card is archived once its worker is stopped (this one has none): its run ends `archived`.
    let running = running_card(&k, "Busy");
    k.ok(&["archive", &running]);
    assert_eq!(k.status(&running), "archived");
    let runs = runs(&k, &running);
    assert_eq!((runs[0]["status"].as_str(), runs[0]["outcome"].as_str()), (Some("ended"), Some("archived")));

    // --rm only deletes archived cards.
    let before = k.snapshot();
    k.fails(&["archive", "--rm", &child], 1);
    assert_unchanged(&k, &before, "archive --rm of a live card");
    k.ok(&["archive", "--rm", &a]);
    k.fails(&["show", &a], 1);
    assert!(!k.list_ids(&["--archived"]).contains(&a));
}

#[test]
fn archive_bulk_partial_failure() {
    let k = Kanban::new();
    let a = k.create("A", &[]);
    let archived = k.create("Archived", &[]);
    k.ok(&["archive", &archived]);
    let b = k.create("B", &[]);
    let stderr = k.fails(&["archive", &a, &archived, &b], 1);
    assert!(stderr.contains(&format!("card {archived} is already archived")), "{stderr}");
    assert_eq!(k.status(&a), "archived");
    assert_eq!(k.status(&b), "archived");

    let live = k.create("Live", &[]);
    k.fails(&["archive", "--rm", &a, &live, &b], 1);
    k.fails(&["show", &a], 1);
    k.fails(&["show", &b], 1);
    assert_eq!(k.status(&live), "ready");
}

// ---------------------------------------------------------------------------------------------------------
// reclaim, reassign

#[test]
fn reclaim_requeues_a_running_card() {
    let k = Kanban::new();
    let id = running_card(&k, "Busy");
    k.set_failures(&id, 2);
    k.advance(40);
    k.ok(&["reclaim", &id, "--reason", "stuck"]);
    let t = k.task(&id);
    assert_eq!(t["status"], "ready");
    assert_eq!(t["consecutive_failures"], 0);
    assert!(t["claim_lock"].is_null(), "{t}");
    assert!(t["current_run_id"].is_null(), "{t}");
    let runs = runs(&k, &id);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "ended");
    assert_eq!(runs[0]["outcome"], "reclaimed");
    assert_eq!(runs[0]["ended_at"], k.now());
    assert!(k.event_kinds(&id).contains(&"reclaimed".to_string()));

    let before = k.snapshot();
    k.fails(&["reclaim", &id], 1);
    k.fails(&["reclaim", "t_00000000"], 1);
    assert_unchanged(&k, &before, "reclaiming a non-running card");
}

#[test]
fn reassign_changes_profile_and_resets_failures() {
    let k = Kanban::new();
    let id = k.create("Card", &["--assignee", "coder"]);
    k.set_failures(&id, 2);
    k.ok(&["reassign", &id, "writer"]);
    let t = k.task(&id);
    assert_eq!(t["assignee"], "writer");
    assert_eq!(t["consecutive_failures"], 0);
    assert!(k.event_kinds(&id).contains(&"reassigned".to_string()));

    // Same profile: the failure count stays.
    let same = k.create("Same", &["--assignee", "coder"]);
    k.set_failures(&same, 2);
    k.ok(&["reassign", &same, "coder"]);
    assert_eq!(k.task(&same)["consecutive_failures"], 2);

    // Running: refused without --reclaim.
    let running = running_card(&k, "Busy");
    let before = k.snapshot();
    k.fails(&["reassign", &running, "writer"], 1);
    assert_unchanged(&k, &before, "reassigning a running card");
    k.ok(&["reassign", &running, "writer", "--reclaim"]);
    let t = k.task(&running);
    assert_eq!(t["assignee"], "writer");
    assert_eq!(t["status"], "ready");
    assert!(t["current_run_id"].is_null());
    assert_eq!(runs(&k, &running)[0]["status"], "ended");
}

// ---------------------------------------------------------------------------------------------------------
// attachments

#[test]
fn attach_copies_file() {
    let k = Kanban::new();
    let id = k.create("Card", &[]);
    let content = b"hello attachment\n";
    let file = k.write_file("report.txt", content);
    k.advance(7);
    k.ok(&["attach", &id, file.to_str().unwrap()]);
    let atts = attachments(&k, &id);
    assert_eq!(atts.len(), 1);
    let a = &atts[0];
    assert_keys(a, ATTACHMENT_KEYS, "attachment");
    assert_eq!(a["task_id"], id.as_str());
    assert_eq!(a["name"], "report.txt");
    assert_eq!(a["size"], content.len());
    assert_eq!(a["sha256"], sha256_hex(content));
    assert_eq!(a["created_at"], k.now());
    let stored = PathBuf::from(a["path"].as_str().unwrap());
    assert_eq!(std::fs::read(&stored).unwrap(), content);
    let dir = canonical(&k.board_dir("default").join("attachments").join(&id));
    assert_eq!(canonical(&stored), dir.join("report.txt"));
    assert!(k.event_kinds(&id).contains(&"attached".to_string()));

    k.ok(&["attach", &id, file.to_str().unwrap(), "--name", "other.md"]);
    let atts = attachments(&k, &id);
    assert_eq!(atts.len(), 2);
    assert_eq!(atts[1]["name"], "other.md");
    assert!(dir.join("other.md").is_file());

    k.ok(&["attachments", &id]);
    let missing = k.home().join("nope.txt");
    let before = k.snapshot();
    k.fails(&["attach", &id, missing.to_str().unwrap()], 1);
    k.fails(&["attach", "t_00000000", file.to_str().unwrap()], 1);
    assert_unchanged(&k, &before, "a refused attach");
}

#[test]
fn attach_name_collision_gets_suffix() {
    let k = Kanban::new();
    let id = k.create("Card", &[]);
    let file = k.write_file("report.txt", b"one");
    k.ok(&["attach", &id, file.to_str().unwrap()]);
    k.ok(&["attach", &id, file.to_str().unwrap()]);
    k.ok(&["attach", &id, file.to_str().unwrap()]);
    let names: Vec<String> = attachments(&k, &id).iter().map(stored_name).collect();
    assert_eq!(names[0], "report.txt");
    assert_eq!(names[1], "report-1.txt");
    assert_ne!(names[2], names[0]);
    assert_ne!(names[2], names[1]);
    let dir = k.board_dir("default").join("attachments").join(&id);
    for name in &names {
        assert!(dir.join(name).is_file(), "{name} stored");
    }
}

#[test]
fn attach_over_25_mib_is_refused() {
    let k = Kanban::new();
    let id = k.create("Card", &[]);
    let big = k.home().join("files").join("big.bin");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(25 * MIB + 1).unwrap();
    drop(f);
    let before = k.snapshot();
    k.fails(&["attach", &id, big.to_str().unwrap()], 1);
    assert_unchanged(&k, &before, "an oversized attach");
    assert!(attachments(&k, &id).is_empty());
    let att_root = k.board_dir("default").join("attachments");
    assert!(files_below(&att_root).is_empty(), "nothing stored: {:?}", files_below(&att_root));

    // Exactly 25 MiB is allowed.
    let f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
    f.set_len(25 * MIB).unwrap();
    drop(f);
    k.ok(&["attach", &id, big.to_str().unwrap()]);
    let atts = attachments(&k, &id);
    assert_eq!(atts.len(), 1);
    assert_eq!(atts[0]["size"], 25 * MIB);
}

#[test]
fn attach_name_traversal_stays_inside_attachments() {
    let k = Kanban::new();
    let id = k.create("Card", &[]);
    let file = k.write_file("payload.txt", b"payload");
    let task_dir = k.board_dir("default").join("attachments").join(&id);
    let absolute = format!("{}/abs-evil.txt", k.home().display());
    for name in ["../../evil.txt", "../../../../evil.txt", absolute.as_str(), "sub/dir/evil.txt"] {
        k.ok(&["attach", &id, file.to_str().unwrap(), "--name", name]);
    }
    let canon_dir = canonical(&task_dir);
    for a in attachments(&k, &id) {
        let name = stored_name(&a);
        assert!(
            !name.contains('/') && !name.contains('\\') && name != ".." && name != ".",
            "unsafe stored name {name:?}"
        );
        let stored = canonical(Path::new(a["path"].as_str().unwrap()));
        assert_eq!(stored.parent().unwrap(), canon_dir, "{name:?} stored at {}", stored.display());
        assert_eq!(std::fs::read(&stored).unwrap(), b"payload");
    }
    // No evil.txt anywhere in the home except inside the card's attachment folder.
    let stray: Vec<PathBuf> = files_below(k.home())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("evil"))
        .filter(|p| !canonical(p).starts_with(&canon_dir))
        .collect();
    assert!(stray.is_empty(), "written outside the attachments folder: {stray:?}");
    assert_eq!(attachments(&k, &id).len(), 4);
}

#[test]
fn attach_rm_removes_row_and_file() {
    let k = Kanban::new();
    let id = k.create("Card", &[]);
    let file = k.write_file("report.txt", b"data");
    k.ok(&["attach", &id, file.to_str().unwrap()]);
    let att = attachments(&k, &id)[0].clone();
    let stored = PathBuf::from(att["path"].as_str().unwrap());
    assert!(stored.is_file());
    let att_id = id_arg(&att["id"]);
    k.ok(&["attach-rm", &att_id]);
    assert!(attachments(&k, &id).is_empty());
    assert!(!stored.exists(), "file removed");
    assert!(k.event_kinds(&id).contains(&"attachment_removed".to_string()));
    let before = k.snapshot();
    k.fails(&["attach-rm", &att_id], 1);
    assert_unchanged(&k, &before, "removing a missing attachment");
}

// ---------------------------------------------------------------------------------------------------------
// events, runs, stats, heartbeat

#[test]
fn events_json_lines_filter_and_since() {
    let k = Kanban::new();
    let a = k.create("A", &[]);
    k.advance(1);
    k.ok(&["comment", &a, "hi"]);
    let b = k.create("B", &[]);
    k.ok(&["assign", &b, "coder"]);

    let all = k.events();
    assert!(all.len() >= 4, "{all:?}");
    for e in &all {
        assert_keys(e, EVENT_KEYS, "event");
        assert!(e["payload"].is_object(), "{e}");
    }
    let ids: Vec<i64> = all.iter().map(event_id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending: {ids:?}");
    let created: Vec<&Value> = all.iter().filter(|e| e["kind"] == "created").collect();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0]["task_id"], a.as_str());
    assert_eq!(created[0]["created_at"], DEFAULT_NOW);
    assert!(created[0]["run_id"].is_null());

    let for_a = k.task_events(&a);
    assert!(for_a.iter().all(|e| e["task_id"] == a.as_str()));
    let kinds: Vec<&str> = for_a.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "commented"]);

    let first = event_id(&all[0]);
    let since = k.json_lines(&["events", "--since", &first.to_string(), "--json"]);
    assert_eq!(since.len(), all.len() - 1);
    assert!(since.iter().all(|e| event_id(e) > first));
    let last = event_id(all.last().unwrap());
    assert!(k.json_lines(&["events", "--since", &last.to_string(), "--json"]).is_empty());
    let since_b = k.json_lines(&["events", &b, "--since", &first.to_string(), "--json"]);
    assert!(since_b.iter().all(|e| e["task_id"] == b.as_str()));
    assert_eq!(since_b.len(), 2);

    k.ok(&["events"]);
}

#[test]
fn events_follow_streams_new_events() {
    let k = Kanban::new();
    k.create("Before", &[]);
    let mut follower = k
        .cmd(&["events", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn follower");
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Keep filing cards (one per second at most) until the follower prints one of their `created`
    // events, so the test does not depend on whether --follow replays history or tails from "now".
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut filed: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut found = false;
    'outer: while Instant::now() < deadline {
        filed.push(k.create("While following", &[]));
        let tick = Instant::now() + Duration::from_secs(1);
        loop {
            let left = tick.min(deadline).saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("follow line is not JSON ({e}): {line}"));
                    seen.push(line);
                    if v["kind"] == "created" && filed.iter().any(|id| v["task_id"] == id.as_str()) {
                        found = true;
                        break 'outer;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => break 'outer,
            }
        }
    }
    follower.kill().expect("kill follower");
    follower.wait().expect("wait follower");
    reader.join().unwrap();
    assert!(found, "follower never printed the new card's event; saw {seen:?}");
}

#[test]
fn runs_lists_attempts() {
    let k = Kanban::new();
    let plain = k.create("Plain", &[]);
    assert_eq!(k.json(&["runs", &plain, "--json"]), json!([]));
    let id = running_card(&k, "Busy");
    k.advance(20);
    k.ok(&["reclaim", &id]);
    let runs = runs(&k, &id);
    assert_eq!(runs.len(), 1);
    assert_keys(&runs[0], RUN_KEYS, "run");
    assert_eq!(runs[0]["task_id"], id.as_str());
    assert_eq!(runs[0]["status"], "ended");
    assert_eq!(runs[0]["outcome"], "reclaimed");
    assert_eq!(runs[0]["started_at"], DEFAULT_NOW);
    assert_eq!(runs[0]["ended_at"], k.now());
    k.ok(&["runs", &id]);
    k.fails(&["runs", "t_00000000"], 1);
}

#[test]
fn stats_counts() {
    let k = Kanban::new();
    k.create("r1", &["--assignee", "coder"]);
    k.create("r2", &["--assignee", "coder"]);
    k.create("r3", &[]);
    k.create("t1", &["--assignee", "writer", "--triage"]);
    running_card(&k, "busy");
    let s = k.json(&["stats", "--json"]);
    assert_keys(&s, &["total", "by_status", "by_assignee", "events", "runs"], "stats");
    assert_eq!(s["total"], 5);
    assert_eq!(s["by_status"]["ready"], 3);
    assert_eq!(s["by_status"]["triage"], 1);
    assert_eq!(s["by_status"]["running"], 1);
    assert_eq!(s["by_assignee"]["coder"], 3);
    assert_eq!(s["by_assignee"]["writer"], 1);
    assert_eq!(s["events"], k.events().len());
    assert_eq!(s["runs"], 1);
    k.ok(&["stats"]);
}

#[test]
fn heartbeat_stamps_running_cards_only() {
    let k = Kanban::new();
    let id = running_card(&k, "Busy");
    k.advance(120);
    k.ok(&["heartbeat", &id, "--note", "halfway"]);
    let t = k.task(&id);
    assert_eq!(t["last_heartbeat_at"], k.now());
    assert_eq!(t["claim_expires"], k.now() + 900);
    assert!(k.event_kinds(&id).contains(&"heartbeat".to_string()));
    if let Some(hb) = runs(&k, &id)[0].get("last_heartbeat_at") {
        assert_eq!(*hb, json!(k.now()), "run heartbeat stamp");
    }

    k.advance(60);
    k.ok(&["heartbeat", &id]);
    let t = k.task(&id);
    assert_eq!(t["last_heartbeat_at"], k.now());
    assert_eq!(t["claim_expires"], k.now() + 900);

    let ready = k.create("Idle", &[]);
    let before = k.snapshot();
    k.fails(&["heartbeat", &ready], 1);
    k.fails(&["heartbeat", "t_00000000"], 1);
    assert_unchanged(&k, &before, "a refused heartbeat");
}

// ---------------------------------------------------------------------------------------------------------
// refusals

#[test]
fn refused_commands_change_nothing() {
    let k = Kanban::new();
    let parent = k.create("Parent", &[]);
    let child = k.create("Child", &["--parent", &parent]);
    let running = running_card(&k, "Busy");
    let ready = k.create("Ready", &[]);
    let big = k.home().join("big.bin");
    std::fs::File::create(&big).unwrap().set_len(25 * MIB + 1).unwrap();
    let before_show = k.show(&child);
    let before = k.snapshot();
    k.advance(1000);

    let refusals: Vec<(Vec<&str>, i32)> = vec![
        (vec!["complete", &child], 1),
        (vec!["link", &child, &parent], 1),
        (vec!["link", &ready, &ready], 1),
        (vec!["unblock", &ready], 1),
        (vec!["assign", &running, "writer"], 1),
        (vec!["archive", "--rm", &ready], 1),
        (vec!["reclaim", &ready], 1),
        (vec!["heartbeat", &ready], 1),
        (vec!["promote", &child], 1),
        (vec!["reassign", &running, "writer"], 1),
        (vec!["attach", &ready, big.to_str().unwrap()], 1),
        (vec!["create", " "], 2),
        (vec!["create", "x", "--max-runtime", "soon"], 2),
        (vec!["create", "x", "--parent", "t_00000000"], 1),
        (vec!["edit", "t_00000000", "--title", "x"], 1),
        (vec!["block", &ready, "--kind", "nope"], 2),
        (vec!["list", "--bogus-flag"], 2),
    ];
    for (args, code) in &refusals {
        k.fails(args, *code);
        assert_eq!(before, k.snapshot(), "refused {args:?} changed the board");
    }
    assert_eq!(before_show, k.show(&child));
}

// ---- Regressions from the documentation review ----------------------------------------------------------

#[test]
fn a_dir_workspace_without_a_path_takes_the_boards_default_workdir() {
    let k = Kanban::new();
    k.ok(&["board", "create", "w", "--default-workdir", "/srv/w"]);
    let id = k.create("x", &["--board", "w", "--workspace", "dir"]);
    let task = k.json(&["--board", "w", "show", &id, "--json"])["task"].clone();
    assert_eq!(task["workspace_kind"], "dir");
    assert_eq!(task["workspace_path"], "/srv/w");
    // Without a default workdir it is a usage error, and nothing is created.
    let before = k.snapshot();
    let err = k.fails(&["create", "y", "--workspace", "dir"], 2);
    assert!(err.contains("default_workdir"), "{err}");
    assert_eq!(before, k.snapshot());
}

#[test]
fn scheduling_a_blocked_card_clears_its_block() {
    let k = Kanban::new();
    let id = k.create("x", &[]);
    k.ok(&["block", &id, "why", "--kind", "needs_input"]);
    k.ok(&["schedule", &id]);
    k.ok(&["promote", &id]);
    let task = k.task(&id);
    assert_eq!(task["status"], "ready");
    assert_eq!(task["block_sticky"], false);
    assert!(task["block_kind"].is_null() && task["block_reason"].is_null(), "{task}");
}

#[test]
fn an_open_parent_cannot_be_linked_to_a_running_or_done_child() {
    let k = Kanban::new();
    let running = k.create("running", &["--initial-status", "running"]);
    let done = k.create("done", &[]);
    k.ok(&["complete", &done]);
    let parent = k.create("parent", &[]);
    for child in [&running, &done] {
        let before = k.snapshot();
        let err = k.fails(&["link", &parent, child], 1);
        assert!(err.contains("cannot start waiting"), "{err}");
        assert_eq!(before, k.snapshot());
    }
    // A closed parent may still be recorded as a dependency.
    let closed = k.create("closed parent", &[]);
    k.ok(&["complete", &closed]);
    k.ok(&["link", &closed, &running]);
}

#[test]
fn promoting_one_card_reports_one_error_line() {
    let k = Kanban::new();
    let id = k.create("ready already", &[]);
    let err = k.fails(&["promote", &id], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot promote"), "{err}");
}

#[test]
fn a_missing_attachment_is_named_as_an_attachment() {
    let k = Kanban::new();
    let err = k.fails(&["attach-rm", "99"], 1);
    assert_eq!(err.trim(), "kanban: attachment 99 not found");
}

#[test]
fn events_of_a_deleted_card_stay_readable() {
    let k = Kanban::new();
    let id = k.create("gone soon", &[]);
    k.ok(&["archive", &id]);
    k.ok(&["archive", "--rm", &id]);
    let kinds: Vec<String> = k
        .json_lines(&["events", &id, "--json"])
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["created", "archived", "deleted"]);
    k.fails(&["events", "t_00000000"], 1);
}

#[test]
fn a_worker_report_gets_through_a_broken_board_toml() {
    let k = Kanban::new();
    let id = k.create("x", &["--initial-status", "running"]);
    let toml = k.toml_path("default");
    std::fs::write(&toml, "[dispatch]\nnot_a_key = 1\n").unwrap();
    // Ordinary commands refuse the broken config...
    k.fails(&["list"], 2);
    // ...but the worker protocol records its report, with a warning naming the key.
    for args in [
        vec!["heartbeat", id.as_str()],
        vec!["comment", id.as_str(), "still here"],
        vec!["complete", id.as_str(), "--result", "ok"],
    ] {
        let out = k.run(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not_a_key"));
    }
    let conn = rusqlite::Connection::open(k.db_path("default")).unwrap();
    let status: String =
        conn.query_row("SELECT status FROM tasks WHERE id = ?1", [&id], |r| r.get(0)).unwrap();
    assert_eq!(status, "done");
}

#[test]
fn a_goal_card_without_a_judge_is_created_with_a_warning() {
    let k = Kanban::new();
    let out = k.run(&["create", "goal", "--goal"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [goal] judge"));
}
