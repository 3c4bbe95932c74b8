//! Shared helpers for the black-box tests: every test gets its own temporary home and drives the built
//! `kanban` binary through `std::process::Command`.

#![allow(dead_code)]

use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The pinned clock every command sees unless a test moves it.
pub const DEFAULT_NOW: i64 = 1_800_000_000;

/// The `kanban` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kanban")
}

/// A temporary kanban home plus a pinned clock.
pub struct Kanban {
    dir: tempfile::TempDir,
    now: Cell<i64>,
}

impl Default for Kanban {
    fn default() -> Self {
        Self::new()
    }
}

impl Kanban {
    pub fn new() -> Self {
        Kanban { dir: tempfile::tempdir().expect("create temp home"), now: Cell::new(DEFAULT_NOW) }
    }

    /// The home directory passed as `--home`.
    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// `<home>/boards/<slug>`.
    pub fn board_dir(&self, slug: &str) -> PathBuf {
        self.home().join("boards").join(slug)
    }

    /// `<home>/boards/<slug>/kanban.db`.
    pub fn db_path(&self, slug: &str) -> PathBuf {
        self.board_dir(slug).join("kanban.db")
    }

    /// `<home>/boards/<slug>/board.toml`.
    pub fn toml_path(&self, slug: &str) -> PathBuf {
        self.board_dir(slug).join("board.toml")
    }

    /// Current pinned clock (unix seconds).
    pub fn now(&self) -> i64 {
        self.now.get()
    }

    /// Move the pinned clock for every later command.
    pub fn set_now(&self, secs: i64) {
        self.now.set(secs);
    }

    /// Move the pinned clock forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.now.set(self.now.get() + secs);
    }

    /// A command for the binary with `--home <tmp>` and `KANBAN_NOW` set and every other `KANBAN_*`
    /// variable (and `RUST_LOG`) removed from the environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KANBAN_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env_remove("RUST_LOG")
            .env("KANBAN_NOW", self.now().to_string())
            .arg("--home")
            .arg(self.home())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Run and collect the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn kanban")
    }

    /// Run with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kanban");
        child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
        child.wait_with_output().expect("wait kanban")
    }

    /// Run, assert exit 0, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        expect_ok(&self.run(args), &args)
    }

    /// Run, assert exit `code` and a `kanban: ` stderr, return stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        expect_fail(&self.run(args), &args, code)
    }

    /// Run, assert exit 0, parse stdout as one JSON document.
    pub fn json(&self, args: &[&str]) -> Value {
        parse_json(&self.ok(args), &args)
    }

    /// Run, assert exit 0, parse stdout as JSON lines (blank lines skipped).
    pub fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        parse_json_lines(&self.ok(args), &args)
    }

    /// `create TITLE <extra> --json`, returns the new card's id.
    pub fn create(&self, title: &str, extra: &[&str]) -> String {
        let mut args = vec!["create", title];
        args.extend_from_slice(extra);
        args.push("--json");
        let v = self.json(&args);
        let id = v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}"));
        assert!(is_task_id(id), "bad task id {id:?}");
        id.to_string()
    }

    /// `show ID --json`.
    pub fn show(&self, id: &str) -> Value {
        self.json(&["show", id, "--json"])
    }

    /// `show ID --json` -> `.task`.
    pub fn task(&self, id: &str) -> Value {
        self.show(id)["task"].clone()
    }

    /// The card's status string.
    pub fn status(&self, id: &str) -> String {
        let task = self.task(id);
        task["status"].as_str().unwrap_or_else(|| panic!("no status in {task}")).to_string()
    }

    /// `list --json <extra>`, the ids in output order.
    pub fn list_ids(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["list", "--json"];
        args.extend_from_slice(extra);
        let v = self.json(&args);
        v.as_array()
            .unwrap_or_else(|| panic!("list --json is not an array: {v}"))
            .iter()
            .map(|t| t["id"].as_str().expect("id").to_string())
            .collect()
    }

    /// Every event on the current board (`events --json`).
    pub fn events(&self) -> Vec<Value> {
        self.json_lines(&["events", "--json"])
    }

    /// The events of one card (`events ID --json`).
    pub fn task_events(&self, id: &str) -> Vec<Value> {
        self.json_lines(&["events", id, "--json"])
    }

    /// The kinds of one card's events, in order.
    pub fn event_kinds(&self, id: &str) -> Vec<String> {
        self.task_events(id).iter().map(|e| e["kind"].as_str().expect("kind").to_string()).collect()
    }

    /// A snapshot of the default board's visible state: all cards (archived included) and all events.
    pub fn snapshot(&self) -> String {
        let cards = self.ok(&["list", "--archived", "--json"]);
        let events = self.ok(&["events", "--json"]);
        format!("{cards}\n---\n{events}")
    }

    /// Poke a card's `consecutive_failures` straight into the store (no CLI path sets it without a
    /// dispatcher). Assumes the cards live in a `tasks` table.
    pub fn set_failures(&self, id: &str, n: i64) {
        let conn = rusqlite::Connection::open(self.db_path("default")).expect("open db");
        conn.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
        let changed = conn
            .execute("UPDATE tasks SET consecutive_failures = ?1 WHERE id = ?2", rusqlite::params![n, id])
            .expect("update consecutive_failures");
        assert_eq!(changed, 1, "no tasks row for {id}");
    }

    /// Write a file under the temp home (outside the boards folder) and return its path.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.home().join("files");
        std::fs::create_dir_all(&dir).expect("mkdir files");
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write file");
        path
    }
}

/// Assert `out` exited 0, return stdout.
pub fn expect_ok(out: &Output, what: &dyn std::fmt::Debug) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kanban {what:?} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// Assert `out` exited with `code` and a stderr starting `kanban: `, return stderr.
pub fn expect_fail(out: &Output, what: &dyn std::fmt::Debug, code: i32) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "kanban {what:?}: expected exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.starts_with("kanban: "),
        "kanban {what:?}: stderr does not start with `kanban: `:\n{stderr}"
    );
    stderr
}

pub fn parse_json(text: &str, what: &dyn std::fmt::Debug) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("kanban {what:?}: bad JSON ({e}):\n{text}"))
}

pub fn parse_json_lines(text: &str, what: &dyn std::fmt::Debug) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| parse_json(l, what)).collect()
}

/// `t_` + 8 lowercase hex.
pub fn is_task_id(id: &str) -> bool {
    id.len() == 10
        && id.starts_with("t_")
        && id[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A JSON id (number or string) as a command-line argument.
pub fn id_arg(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not an id: {other}"),
    }
}

/// Ids of a JSON array of tasks.
pub fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_string())
        .collect()
}

/// Assert `obj` is an object holding every key in `keys`.
pub fn assert_keys(obj: &Value, keys: &[&str], what: &str) {
    let map = obj.as_object().unwrap_or_else(|| panic!("{what} is not an object: {obj}"));
    let missing: Vec<_> = keys.iter().filter(|k| !map.contains_key(**k)).collect();
    assert!(missing.is_empty(), "{what} lacks keys {missing:?}: {obj}");
}
