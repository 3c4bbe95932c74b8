//! Black-box tests for `kanban gc`: what goes, what stays, and that nothing outside the board's own
//! folders is touched.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;
use serde_json::Value;

const DAY: i64 = 86_400;

/// A clock for `gc` well after both the pinned test clock and the real one, so that files the test
/// creates (whose times the test does not set, like a symlink's) are old to it.
fn gc_now() -> i64 {
    let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    real.max(DEFAULT_NOW) + 60 * DAY
}

fn set_mtime(path: &Path, secs: i64) {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.set_modified(UNIX_EPOCH + Duration::from_secs(secs as u64)).unwrap();
}

fn events_of(k: &Kanban, id: &str) -> Vec<String> {
    k.event_kinds(id)
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn tasks_of(v: &Value, key: &str) -> Vec<String> {
    v[key].as_array().unwrap().iter().map(|r| r["task"].as_str().unwrap().to_string()).collect()
}

#[test]
fn gc_prunes_old_noise_and_deleted_cards_and_keeps_every_cards_history() {
    let k = Kanban::new();
    let running = k.create("running", &["--initial-status", "running"]);
    for _ in 0..3 {
        k.ok(&["heartbeat", &running]);
    }
    let gone = k.create("gone", &[]);
    k.ok(&["archive", &gone]);
    k.ok(&["archive", "--rm", &gone]);
    let done = k.create("done", &[]);
    k.ok(&["comment", &done, "a note"]);
    k.ok(&["complete", &done, "--result", "ok"]);
    let done_events = events_of(&k, &done);
    let gone_before = events_of(&k, &gone);
    assert!(gone_before.len() >= 3, "{gone_before:?}");

    k.set_now(gc_now() - DAY);
    k.ok(&["heartbeat", &running, "--note", "recent"]);
    k.set_now(gc_now());
    let before = k.events();

    let dry = k.json(&["gc", "--dry-run", "--json"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["older_than_seconds"], 30 * DAY);
    assert_eq!(dry["events_by_kind"]["heartbeat"], 3, "{dry}");
    // Every event of the deleted card but its tombstone.
    assert_eq!(count(&dry, "events_deleted"), 3 + gone_before.len() as u64 - 1, "{dry}");
    assert_eq!(k.events(), before, "a dry run changes nothing");

    let real = k.json(&["gc", "--json"]);
    assert_eq!(real["dry_run"], false);
    assert_eq!(real["events_by_kind"], dry["events_by_kind"]);
    assert_eq!(real["events_deleted"], dry["events_deleted"]);

    let mut kept = events_of(&k, &running);
    assert_eq!(kept.pop().as_deref(), Some("heartbeat"), "the recent heartbeat stays");
    assert!(!kept.contains(&"heartbeat".to_string()), "{kept:?}");
    assert!(kept.contains(&"created".to_string()), "{kept:?}");
    assert_eq!(events_of(&k, &gone), ["deleted"], "the tombstone stays");
    assert_eq!(events_of(&k, &done), done_events, "a card's state changes are kept, however old");

    let last = k.events().pop().unwrap();
    assert_eq!(last["kind"], "gc", "{last}");
    assert_eq!(last["payload"]["events_deleted"], real["events_deleted"], "{last}");
    assert!(last["task_id"].is_null(), "{last}");

    // A second run finds nothing, and keeps the first run's (recent) record.
    let again = k.json(&["gc", "--json"]);
    assert_eq!(again["events_deleted"], 0, "{again}");
    assert_eq!(k.events().iter().filter(|e| e["kind"] == "gc").count(), 2);
}

#[test]
fn gc_removes_logs_and_scratch_workspaces_of_finished_cards_only() {
    let k = Kanban::new();
    let done = k.create("done", &[]);
    k.ok(&["complete", &done]);
    let recent = k.create("done recently", &[]);
    k.ok(&["complete", &recent]);
    let linked = k.create("done, its files are symlinks", &[]);
    k.ok(&["complete", &linked]);
    let running = k.create("running", &["--initial-status", "running"]);
    let ready = k.create("ready", &[]);
    let gone = k.create("deleted", &[]);
    k.ok(&["archive", &gone]);
    k.ok(&["archive", "--rm", &gone]);
    let outside = tempfile::tempdir().unwrap();
    let dir_card = k.create("dir card", &["--workspace", &format!("dir:{}", outside.path().display())]);
    k.ok(&["complete", &dir_card]);

    let board = k.board_dir("default");
    let logs = board.join("logs");
    let spaces = board.join("workspaces");
    fs::create_dir_all(&logs).unwrap();
    let old = gc_now() - 45 * DAY;
    let log = |name: String, mtime: i64| {
        let path = logs.join(name);
        fs::write(&path, vec![b'x'; 100]).unwrap();
        set_mtime(&path, mtime);
        path
    };
    let space = |id: &str| {
        let path = spaces.join(id);
        fs::create_dir_all(path.join("src")).unwrap();
        fs::write(path.join("src/main.rs"), vec![b'y'; 1000]).unwrap();
        set_mtime(&path, old);
        path
    };
    let done_logs = [
        log(format!("{done}.log"), old),
        log(format!("{done}.log.1"), old),
        log(format!("{done}.context.md"), old),
    ];
    let gone_log = log(format!("{gone}.log"), old);
    let kept_logs = [
        log(format!("{recent}.log"), gc_now() - DAY),
        log(format!("{running}.log"), old),
        log(format!("{ready}.log"), old),
        log(format!("{done}.log.2"), old),
        log("notes.txt".into(), old),
    ];
    let done_space = space(&done);
    let gone_space = space(&gone);
    let kept_spaces = [space(&running), space(&ready), space(&dir_card)];
    let notes = spaces.join("notes");
    fs::create_dir_all(&notes).unwrap();
    set_mtime(&notes, old);
    // Symlinks named like the finished card's files, pointing at the user's own files.
    let precious_file = outside.path().join("precious.log");
    fs::write(&precious_file, "mine").unwrap();
    std::os::unix::fs::symlink(&precious_file, logs.join(format!("{linked}.log"))).unwrap();
    std::os::unix::fs::symlink(outside.path(), spaces.join(&linked)).unwrap();
    fs::write(outside.path().join("keep.txt"), "mine").unwrap();

    k.set_now(gc_now());
    let dry = k.json(&["gc", "--dry-run", "--json"]);
    for path in done_logs.iter().chain([&gone_log, &done_space, &gone_space]) {
        assert!(path.exists(), "dry run removed {}", path.display());
    }
    let real = k.json(&["gc", "--json"]);
    for key in ["logs", "workspaces", "bytes_freed"] {
        assert_eq!(real[key], dry[key], "{key}: dry run and real run disagree");
    }

    let mut want_logs = vec![done.clone(); 3];
    want_logs.push(gone.clone());
    let mut got_logs = tasks_of(&real, "logs");
    got_logs.sort();
    want_logs.sort();
    assert_eq!(got_logs, want_logs, "{real}");
    let mut got_spaces = tasks_of(&real, "workspaces");
    got_spaces.sort();
    let mut want_spaces = vec![done.clone(), gone.clone()];
    want_spaces.sort();
    assert_eq!(got_spaces, want_spaces, "{real}");
    assert_eq!(count(&real, "bytes_freed"), 4 * 100 + 2 * 1000, "{real}");

    for path in done_logs.iter().chain([&gone_log, &done_space, &gone_space]) {
        assert!(!path.exists(), "{} should be gone", path.display());
    }
    for path in kept_logs.iter().chain(&kept_spaces).chain([&notes]) {
        assert!(path.exists(), "{} should stay", path.display());
    }
    assert_eq!(fs::read_to_string(&precious_file).unwrap(), "mine");
    assert_eq!(fs::read_to_string(outside.path().join("keep.txt")).unwrap(), "mine");
    assert!(fs::symlink_metadata(spaces.join(&linked)).is_ok(), "the symlink itself is left alone");

    let kept = real["kept"].as_array().unwrap();
    let reason = |name: &str| {
        kept.iter()
            .find(|k| k["path"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in kept: {real}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason(&format!("{linked}.log")).contains("not a regular file"));
    assert!(reason(&format!("workspaces/{linked}")).contains("symlink"));
    assert!(reason(&format!("workspaces/{dir_card}")).contains("not scratch"));

    let text = k.ok(&["gc", "--dry-run"]);
    assert!(text.starts_with("Would remove 0 events"), "{text}");
}

#[test]
fn gc_refuses_a_bad_age_and_leaves_the_board_alone() {
    let k = Kanban::new();
    let id = k.create("x", &["--initial-status", "running"]);
    k.ok(&["heartbeat", &id]);
    let before = k.events();
    for bad in ["0", "-1d", "5x", "200000d"] {
        let err = k.fails(&["gc", &format!("--older-than={bad}")], 2);
        assert!(err.contains("--older-than"), "{bad}: {err}");
    }
    assert_eq!(k.events(), before);
    // The default keeps anything younger than 30 days.
    k.advance(29 * DAY);
    let v = k.json(&["gc", "--json"]);
    assert_eq!(v["events_deleted"], 0, "{v}");
}
