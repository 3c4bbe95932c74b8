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

/// The binary with every `KANBAN_*` variable and `RUST_LOG` removed and stdin closed: no home, real clock.
pub fn clean_cmd() -> Command {
    let mut cmd = Command::new(bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KANBAN_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

/// A temporary kanban home plus a pinned clock.
pub struct Kanban {
    dir: tempfile::TempDir,
    now: Cell<i64>,
    /// With `KANBAN_TEST_STORE=postgres`, a database of this home's own on the server at
    /// `KANBAN_TEST_DATABASE_URL`: the boards its commands make (the default board too) live there.
    database: Option<TestDatabase>,
}

/// A database made for one test home, dropped with it.
struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// `Some` when `KANBAN_TEST_STORE=postgres`; then `KANBAN_TEST_DATABASE_URL` must name the server.
    fn for_this_run() -> Option<TestDatabase> {
        match std::env::var("KANBAN_TEST_STORE").as_deref() {
            Ok("postgres") => {}
            Ok("sqlite") | Err(_) => return None,
            Ok(other) => panic!("KANBAN_TEST_STORE must be sqlite or postgres, not {other:?}"),
        }
        let server = std::env::var("KANBAN_TEST_DATABASE_URL").expect(
            "KANBAN_TEST_STORE=postgres needs KANBAN_TEST_DATABASE_URL (`.ci/postgres start DIR` prints one)",
        );
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!("kanban_test_{}", hex::encode(bytes));
        let mut client =
            postgres::Client::connect(&server, postgres::NoTls).expect("connect to the test server");
        client.batch_execute(&format!("CREATE DATABASE {name}")).expect("create a test database");
        let (base, _) = server.rsplit_once('/').expect("a URL ending in /DATABASE");
        Some(TestDatabase { url: format!("{base}/{name}"), server, name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

impl Default for Kanban {
    fn default() -> Self {
        Self::new()
    }
}

impl Kanban {
    pub fn new() -> Self {
        Kanban {
            dir: tempfile::tempdir().expect("create temp home"),
            now: Cell::new(DEFAULT_NOW),
            database: TestDatabase::for_this_run(),
        }
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
        let mut cmd = clean_cmd();
        cmd.env("KANBAN_NOW", self.now().to_string()).arg("--home").arg(self.home()).args(args);
        if let Some(db) = &self.database {
            cmd.env("KANBAN_DATABASE_URL", &db.url);
        }
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
        if let Some(db) = &self.database {
            let mut client = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
            let changed = client
                .execute(
                    "UPDATE kanban_default.tasks SET consecutive_failures = $1 WHERE id = $2",
                    &[&n, &id],
                )
                .expect("update consecutive_failures");
            assert_eq!(changed, 1, "no tasks row for {id}");
            return;
        }
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

/// Where compiled test plugins go: under the build's target directory, shared by every test binary.
fn plugin_target_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("test-plugins")
}

/// Build a wasm32-wasip2 workspace once per test process and return its release output folder.
fn build_wasm_workspace(manifest: &Path) -> PathBuf {
    let target_dir = plugin_target_dir();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("run cargo for the test plugins");
    assert!(status.success(), "building {} for wasm32-wasip2 failed", manifest.display());
    target_dir.join("wasm32-wasip2").join("release")
}

/// A test plugin from tests/plugins (e.g. "hostile" → kanban_test_hostile.wasm), built on first use.
pub fn test_plugin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        build_wasm_workspace(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/plugins/Cargo.toml"))
    });
    let path = dir.join(format!("kanban_test_{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The plugin guide's example (docs/examples/hold-guard), built as a user would.
pub fn hold_guard_plugin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            build_wasm_workspace(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/hold-guard/Cargo.toml"),
            )
            .join("hold_guard.wasm")
        })
        .clone()
}

// ---------------------------------------------------------------------------------------------------------
// Dispatcher and worker helpers (used by tests/dispatch.rs and tests/workers.rs).
// ---------------------------------------------------------------------------------------------------------

/// How long a bounded polling loop waits before it gives up.
pub const POLL_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Poll `check` every 50 ms until it returns true; panic naming `what` after [`POLL_LIMIT`].
pub fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + POLL_LIMIT;
    loop {
        if check() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The strings of a JSON array (panics on anything else).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")).to_string())
        .collect()
}

/// The `task_id`s of a JSON array of objects (e.g. a dispatch report's `spawned`).
pub fn task_ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|o| o["task_id"].as_str().unwrap_or_else(|| panic!("no task_id in {o}")).to_string())
        .collect()
}

/// `/proc/<pid>/stat` fields after the command name: `(state, ppid, pgrp)`.
fn proc_stat(pid: i32) -> Option<(char, i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(1)?.parse().ok()?, fields.get(2)?.parse().ok()?))
}

/// Is `pid` a live process (present and not a zombie)?
pub fn process_alive(pid: i64) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    matches!(proc_stat(pid), Some((state, _, _)) if state != 'Z' && state != 'X')
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i64) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            matches!(proc_stat(*pid), Some((state, _, pgrp)) if i64::from(pgrp) == pgid && state != 'Z' && state != 'X')
        })
        .collect()
}

/// Send SIGKILL to one process (ignoring errors: it may be gone already).
pub fn kill9(pid: i64) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Send SIGKILL to a whole process group.
pub fn kill9_group(pgid: i64) {
    if let Ok(pgid) = i32::try_from(pgid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Live processes that belong to the test home `home`: its path appears in their command line (the
/// supervisors, `--home <home>`, and the worker scripts kept under it) or their environment (workers and
/// everything they start inherit `KANBAN_HOME=<home>`).
pub fn home_processes(home: &Path) -> Vec<i32> {
    let needle = home.as_os_str().as_encoded_bytes().to_vec();
    let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle.as_slice());
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| matches!(proc_stat(*pid), Some((state, _, _)) if state != 'Z' && state != 'X'))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            contains(&cmdline) || contains(&environ)
        })
        .collect()
}

/// Live processes of one run of a card under the test home: every process started for that attempt carries
/// `KANBAN_RUN_ID=<run>` in its environment (the worker and whatever it starts), whatever process group or
/// session it moved to.
pub fn run_processes(home: &Path, run_id: i64) -> Vec<i32> {
    let marker = format!("KANBAN_RUN_ID={run_id}");
    home_processes(home)
        .into_iter()
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            environ.split(|b| *b == 0).any(|var| var == marker.as_bytes())
        })
        .collect()
}

/// Kill every process of the test home (see [`home_processes`]) and wait (bounded) until none is left.
pub fn kill_home_processes(home: &Path) {
    let deadline = std::time::Instant::now() + POLL_LIMIT;
    loop {
        let left = home_processes(home);
        if left.is_empty() || std::time::Instant::now() > deadline {
            return;
        }
        for pid in left {
            kill9(i64::from(pid));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A [`Kanban`] whose default board runs real workers. Dropping it kills every process the test started
/// under its home (hanging workers, their supervisors, a daemon), so no `sleep 600` outlives a test, even
/// one that panicked.
pub struct Fleet {
    pub k: Kanban,
}

impl std::ops::Deref for Fleet {
    type Target = Kanban;
    fn deref(&self) -> &Kanban {
        &self.k
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        kill_home_processes(self.k.home());
    }
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

impl Fleet {
    pub fn new() -> Self {
        let fleet = Fleet { k: Kanban::new() };
        std::fs::create_dir_all(fleet.out_dir()).expect("mkdir out");
        fleet
    }

    /// Where worker scripts leave what they saw (`$OUT` in every profile).
    pub fn out_dir(&self) -> PathBuf {
        self.k.home().join("out")
    }

    /// Read `<out>/<name>` (empty if missing).
    pub fn out(&self, name: &str) -> String {
        std::fs::read_to_string(self.out_dir().join(name)).unwrap_or_default()
    }

    /// Write a `sh` script under the home's `files/` folder; returns its absolute path.
    pub fn script(&self, name: &str, body: &str) -> String {
        let path = self.k.write_file(name, format!("#!/bin/sh\n{body}\n").as_bytes());
        path.display().to_string()
    }

    /// A `[profiles.NAME]` table running `sh SCRIPT`, with `KANBAN_BIN` (this binary), `OUT` and `extra_env`
    /// in its environment.
    pub fn profile(&self, name: &str, script: &str, extra_env: &[(&str, &str)]) -> String {
        let mut env = format!("KANBAN_BIN = {:?}, OUT = {:?}", bin(), self.out_dir().display().to_string());
        for (key, value) in extra_env {
            env.push_str(&format!(", {key} = {value:?}"));
        }
        format!("[profiles.{name}]\ncommand = [\"sh\", {script:?}]\nenv = {{ {env} }}\n")
    }

    /// Make sure the default board exists, then replace its `board.toml` with `text` (checked with
    /// `board check`).
    pub fn write_board(&self, text: &str) {
        self.write_board_unchecked(text);
        self.k.ok(&["board", "check", "default"]);
    }

    /// Like [`Fleet::write_board`], without the check (for a deliberately broken config).
    pub fn write_board_unchecked(&self, text: &str) {
        if !self.k.toml_path("default").exists() {
            self.k.ok(&["board", "create", "default"]);
        }
        std::fs::write(self.k.toml_path("default"), text).expect("write board.toml");
    }

    /// `dispatch --json <extra>`.
    pub fn dispatch(&self, extra: &[&str]) -> Value {
        let mut args = vec!["dispatch", "--json"];
        args.extend_from_slice(extra);
        self.k.json(&args)
    }

    /// `dispatch --wait --json`: spawn, wait for the workers and settle them.
    pub fn dispatch_wait(&self) -> Value {
        self.dispatch(&["--wait"])
    }

    /// `runs ID --json`.
    pub fn runs(&self, id: &str) -> Vec<Value> {
        self.k.json(&["runs", id, "--json"]).as_array().expect("runs --json is an array").clone()
    }

    /// Wait until the card's current run has recorded its worker; returns that run.
    pub fn wait_worker(&self, id: &str) -> Value {
        let mut found = Value::Null;
        wait_for(&format!("the worker of {id} to start"), || {
            let task = self.k.task(id);
            let Some(run_id) = task["current_run_id"].as_i64() else { return false };
            let run = self.runs(id).into_iter().find(|r| r["id"].as_i64() == Some(run_id));
            match run {
                Some(run) if run["worker_pid"].is_i64() && run["supervisor_pid"].is_i64() => {
                    found = run;
                    true
                }
                _ => false,
            }
        });
        found
    }

    /// Wait until the card's events include one of `kind`.
    pub fn wait_event(&self, id: &str, kind: &str) {
        wait_for(&format!("a {kind} event on {id}"), || self.k.event_kinds(id).iter().any(|k| k == kind));
    }

    /// The card's events of `kind`.
    pub fn events_of(&self, id: &str, kind: &str) -> Vec<Value> {
        self.k.task_events(id).into_iter().filter(|e| e["kind"] == kind).collect()
    }
}

// ---------------------------------------------------------------------------------------------------------
// `kanban serve` helpers (tests/web.rs, tests/web_daemon.rs).
// ---------------------------------------------------------------------------------------------------------

/// An HTTP client for `kanban serve`: every status is an answer (not an error), no proxy, a 30 s bound.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

/// SIGTERM `child`, wait for it to exit (up to [`POLL_LIMIT`]), then SIGKILL it if it did not.
pub fn terminate(child: &mut std::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = std::time::Instant::now() + POLL_LIMIT;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A raw Server-Sent Events connection to a board's stream (chunked transfer: the chunk-size lines are
/// skipped, they never start with a field).
pub struct Sse {
    reader: std::io::BufReader<std::net::TcpStream>,
    line: String,
}

impl Sse {
    /// `GET path` on `addr` with extra `headers`; panics unless the answer is 200.
    pub fn open(addr: &str, path: &str, headers: &[(&str, &str)]) -> Sse {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(std::time::Duration::from_millis(200))).expect("timeout");
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        let mut sse = Sse { reader: std::io::BufReader::new(stream), line: String::new() };
        let status = sse.line_within(POLL_LIMIT).expect("a status line");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        sse
    }

    /// The next line, waiting at most `limit`; `None` when nothing came or the stream ended.
    pub fn line_within(&mut self, limit: std::time::Duration) -> Option<String> {
        use std::io::BufRead;
        let deadline = std::time::Instant::now() + limit;
        loop {
            match self.reader.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) if self.line.ends_with('\n') => {
                    let line = self.line.trim_end().to_string();
                    self.line.clear();
                    return Some(line);
                }
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// The next event's id (if it carried one) and data, waiting at most `limit`.
    pub fn next_event(&mut self, limit: std::time::Duration) -> Option<(Option<i64>, Value)> {
        let deadline = std::time::Instant::now() + limit;
        let mut id = None;
        loop {
            let line = self.line_within(deadline.saturating_duration_since(std::time::Instant::now()))?;
            if let Some(value) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
                id = value.trim().parse().ok();
            } else if let Some(data) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                return Some((id, serde_json::from_str(data).expect("event JSON")));
            }
        }
    }
}
