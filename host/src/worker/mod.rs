//! Spawning and supervising workers.
//!
//! The dispatcher never runs a worker directly. It starts a supervisor (this same binary, hidden
//! `supervise` command) in a new session; the supervisor starts the worker in its own process group with
//! stdin closed and output appended to the card's log, records the worker's pid and start time, waits, and
//! records the exit status into the run. A one-shot `kanban dispatch` can exit right after spawning and the
//! next tick still classifies the exit exactly. For goal cards the supervisor also runs the judge between
//! turns. It never decides an outcome: classification is the tick's job.

pub mod context;

use std::fs::{File, OpenOptions};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;

use crate::board::{Board, Home};
use crate::process::ProcessId;
use crate::store::{Store, Task};

/// A card's log is rotated (one backup kept) when it passes this size at the start of a turn.
pub const LOG_ROTATE_BYTES: u64 = 2 * 1024 * 1024;

pub fn log_path(board: &Board, task_id: &str) -> PathBuf {
    board.logs_dir().join(format!("{task_id}.log"))
}

pub fn context_path(board: &Board, task_id: &str) -> PathBuf {
    board.logs_dir().join(format!("{task_id}.context.md"))
}

/// Open the card's log for appending, rotating it first if it is over [`LOG_ROTATE_BYTES`].
pub fn open_log(board: &Board, task_id: &str) -> std::io::Result<File> {
    let path = log_path(board, task_id);
    if std::fs::metadata(&path).map(|m| m.len() > LOG_ROTATE_BYTES).unwrap_or(false) {
        std::fs::rename(&path, path.with_extension("log.1"))?;
    }
    std::fs::create_dir_all(board.logs_dir())?;
    OpenOptions::new().create(true).append(true).open(path)
}

/// Everything that goes into a worker's environment, built in one place.
pub struct WorkerEnv<'a> {
    pub home: &'a Home,
    pub board: &'a Board,
    pub task: &'a Task,
    pub run_id: i64,
    pub claim_lock: &'a str,
    pub workspace: &'a Path,
    pub context_file: &'a Path,
    pub goal_turn: Option<i64>,
    pub goal_feedback: Option<&'a str>,
}

impl WorkerEnv<'_> {
    pub fn vars(&self) -> Vec<(String, String)> {
        let t = self.task;
        let mut vars = vec![
            ("KANBAN_HOME".into(), self.home.root().display().to_string()),
            ("KANBAN_BOARD".into(), self.board.slug.clone()),
            ("KANBAN_DB".into(), self.board.db_path().display().to_string()),
            ("KANBAN_TASK".into(), t.id.clone()),
            ("KANBAN_RUN_ID".into(), self.run_id.to_string()),
            ("KANBAN_CLAIM_LOCK".into(), self.claim_lock.to_string()),
            ("KANBAN_WORKSPACE".into(), self.workspace.display().to_string()),
            ("KANBAN_CONTEXT".into(), self.context_file.display().to_string()),
        ];
        if t.workspace_kind == "worktree" {
            vars.push(("KANBAN_BRANCH".into(), crate::workspace::branch_for(t)));
        } else if let Some(branch) = &t.branch_name {
            vars.push(("KANBAN_BRANCH".into(), branch.clone()));
        }
        if t.goal_mode {
            vars.push(("KANBAN_GOAL_MODE".into(), "1".into()));
            vars.push(("KANBAN_GOAL_MAX_TURNS".into(), goal_max_turns(self.board, t).to_string()));
            vars.push(("KANBAN_GOAL_TURN".into(), self.goal_turn.unwrap_or(1).to_string()));
            if let Some(feedback) = self.goal_feedback {
                vars.push(("KANBAN_GOAL_FEEDBACK".into(), feedback.to_string()));
            }
        }
        vars
    }
}

pub fn goal_max_turns(board: &Board, task: &Task) -> i64 {
    task.goal_max_turns.unwrap_or(board.config.goal.max_turns)
}

/// Start the supervisor for a claimed run, in a new session, detached from the dispatcher's terminal.
pub fn spawn_supervisor(home: &Home, board: &Board, task_id: &str, run_id: i64) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let log = open_log(board, task_id)?;
    let mut cmd = Command::new(exe);
    cmd.arg("--home")
        .arg(home.root())
        .args(["--board", &board.slug, "supervise", task_id, "--run", &run_id.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
    }
    cmd.spawn()
}

/// Longest line kept from a failed worker's output.
pub const LAST_OUTPUT_CHARS: usize = 300;

/// The last non-blank line written to `log` after byte `offset` (where this turn's output began), with
/// colour codes and control characters dropped and capped at [`LAST_OUTPUT_CHARS`]: why a worker failed,
/// in its own words ("HTTP 401 Unauthorized", "cannot open ./worker.sh"). `None` if the turn wrote nothing.
pub fn last_output_line(log: &Path, offset: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(log).ok()?;
    let len = file.metadata().ok()?.len();
    let start = offset.max(len.saturating_sub(8192));
    if start >= len {
        return None;
    }
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    file.take(len - start).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().map(printable).rfind(|l| !l.trim().is_empty())?;
    let line = line.trim();
    Some(match line.char_indices().nth(LAST_OUTPUT_CHARS) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_string(),
    })
}

/// A line without terminal colour codes (`ESC [ ... letter`) and other control characters.
fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            // A CSI sequence ends at its first byte in '@'..='~' after the '['.
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub code: Option<i64>,
    pub signal: Option<i64>,
}

/// Start one worker turn: the profile's argv in the workspace, own process group, stdin closed, stdout and
/// stderr appended to `log` (the card's log, from [`open_log`]).
pub fn start_worker(
    argv: &[String],
    profile_env: &[(String, String)],
    env: &WorkerEnv,
    log: File,
) -> anyhow::Result<Child> {
    let log2 = log.try_clone()?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(env.workspace)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .envs(profile_env.iter().cloned())
        .envs(env.vars());
    cmd.spawn().with_context(|| format!("cannot start worker {:?} in {}", argv, env.workspace.display()))
}

pub fn wait_worker(child: &mut Child) -> std::io::Result<Exit> {
    let status = child.wait()?;
    Ok(Exit { code: status.code().map(i64::from), signal: status.signal().map(i64::from) })
}

/// The judge's verdict on a goal turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done(String),
    Continue(String),
    Blocked(String),
}

/// Parse the judge's stdout: the first word is `done`, `continue` or `blocked`; the rest of the output is
/// the result, the feedback for the next turn, or the reason.
pub fn parse_verdict(stdout: &str) -> Option<Verdict> {
    let text = stdout.trim();
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let rest = rest.trim_start_matches([':', ' ']).trim().to_string();
    match word.trim_end_matches(':').to_ascii_lowercase().as_str() {
        "done" => Some(Verdict::Done(rest)),
        "continue" => Some(Verdict::Continue(rest)),
        "blocked" => Some(Verdict::Blocked(rest)),
        _ => None,
    }
}

/// Run the board's judge for a goal card. Its environment is the worker's (the profile's `env` plus the
/// `KANBAN_*` variables); its stdin is the card's title
/// and body. Any failure is a `Blocked` verdict naming it: a goal card never ends silently.
pub fn run_judge(
    judge: &[String],
    profile_env: &[(String, String)],
    env: &WorkerEnv,
    log: &mut File,
) -> Verdict {
    use std::io::Write;
    let spawned = Command::new(&judge[0])
        .args(&judge[1..])
        .current_dir(env.workspace)
        .envs(profile_env.iter().cloned())
        .envs(env.vars())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return Verdict::Blocked(format!("the goal judge {judge:?} could not start: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = write!(stdin, "{}\n\n{}\n", env.task.title, env.task.body);
    }
    let out = match child.wait_with_output() {
        Ok(out) => out,
        Err(e) => return Verdict::Blocked(format!("the goal judge failed: {e}")),
    };
    let _ = log.write_all(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Verdict::Blocked(format!("the goal judge exited with {}", out.status));
    }
    parse_verdict(&stdout).unwrap_or_else(|| {
        Verdict::Blocked(format!(
            "the goal judge answered neither done, continue nor blocked: {:?}",
            stdout.trim()
        ))
    })
}

/// The hidden `supervise` command: run (and for goal cards, re-run) the worker of one claimed run.
pub fn supervise(
    home: &Home,
    board: &Board,
    store: &mut Store,
    task_id: &str,
    run_id: i64,
) -> anyhow::Result<()> {
    let me = ProcessId::current();
    store.record_supervision(
        run_id,
        Some((i64::from(me.pid), me.start as i64)),
        None,
        crate::clock::now(),
    )?;
    let mut feedback: Option<String> = None;
    let mut turn = 1;
    loop {
        let task = store.get_task(task_id)?;
        if task.status != "running" || task.current_run_id != Some(run_id) {
            return Ok(()); // reclaimed or settled while we were starting: nothing to run
        }
        let claim_lock = task.claim_lock.clone().unwrap_or_default();
        let Some(profile) = task.assignee.as_ref().and_then(|a| board.config.profiles.get(a)) else {
            store.record_exit(run_id, Some(127), None, None, crate::clock::now())?;
            anyhow::bail!("card {task_id} has no spawnable profile");
        };
        let workspace = crate::workspace::path_for(board, &task)?;
        let context_file = context_path(board, task_id);
        std::fs::write(&context_file, context::render(board, store, &task)?)
            .with_context(|| format!("cannot write {}", context_file.display()))?;
        let env = WorkerEnv {
            home,
            board,
            task: &task,
            run_id,
            claim_lock: &claim_lock,
            workspace: &workspace,
            context_file: &context_file,
            goal_turn: Some(turn),
            goal_feedback: feedback.as_deref(),
        };
        let profile_env: Vec<(String, String)> = profile.env.clone().into_iter().collect();
        let log = open_log(board, task_id).context("cannot open the card's log")?;
        // Where this turn's output begins (after any rotation open_log did).
        let offset = log.metadata().map_or(0, |m| m.len());
        let mut child = match start_worker(&profile.command, &profile_env, &env, log) {
            Ok(child) => child,
            Err(e) => {
                eprintln!("kanban supervise: {e:#}");
                let why = last_output_line(&log_path(board, task_id), offset);
                store.record_exit(run_id, Some(127), None, why.as_deref(), crate::clock::now())?;
                return Ok(());
            }
        };
        if let Some(worker) = ProcessId::of(child.id() as i32) {
            store.record_supervision(
                run_id,
                None,
                Some((i64::from(worker.pid), worker.start as i64)),
                crate::clock::now(),
            )?;
        }
        let exit = wait_worker(&mut child)?;
        let now = crate::clock::now();
        let after = store.get_task(task_id)?;
        let no_terminal_call = after.status == "running" && after.current_run_id == Some(run_id);
        if task.goal_mode && no_terminal_call && exit.code == Some(0) {
            let judge = board.config.goal.judge.clone();
            let mut log = open_log(board, task_id)?;
            let verdict = match &judge {
                Some(judge) => run_judge(judge, &profile_env, &env, &mut log),
                None => Verdict::Blocked("goal card, but the board has no [goal] judge configured".into()),
            };
            match verdict {
                Verdict::Done(result) => {
                    let result = (!result.is_empty()).then_some(result);
                    store.complete(task_id, result.as_deref(), Some("goal judge ruled done"), None, now)?;
                }
                Verdict::Continue(next) => {
                    let budget = goal_max_turns(board, &task);
                    if turn >= budget {
                        let reason = format!(
                            "goal turn budget exhausted: {turn} of {budget} turns used without the judge ruling done; review needed"
                        );
                        store.block(task_id, Some(&reason), Some("goal_budget"), true, None, now)?;
                    } else {
                        turn += 1;
                        store.record_goal_turn(task_id, run_id, turn, &next, now)?;
                        feedback = Some(next);
                        continue;
                    }
                }
                Verdict::Blocked(reason) => {
                    store.block(task_id, Some(&reason), Some("goal_judge"), true, None, now)?;
                }
            }
        }
        let why =
            (exit.code != Some(0)).then(|| last_output_line(&log_path(board, task_id), offset)).flatten();
        store.record_exit(run_id, exit.code, exit.signal, why.as_deref(), now)?;
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_output_line_reads_only_this_turns_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        std::fs::write(&log, "earlier run: fatal\n").unwrap();
        let offset = std::fs::metadata(&log).unwrap().len();
        assert_eq!(last_output_line(&log, offset), None, "nothing written since the offset");
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        use std::io::Write;
        write!(f, "step 1\n  \x1b[31mquota exceeded\x1b[0m \r\n\n   \n").unwrap();
        assert_eq!(last_output_line(&log, offset).as_deref(), Some("quota exceeded"));
        assert_eq!(printable("\x1b[1;31mred\x1b[0m plain\x07 \x1b(B"), "red plain (B");
        writeln!(f, "{}", "é".repeat(LAST_OUTPUT_CHARS + 10)).unwrap();
        let long = last_output_line(&log, offset).unwrap();
        assert_eq!(long, format!("{}...", "é".repeat(LAST_OUTPUT_CHARS)));
        assert_eq!(last_output_line(&log, u64::MAX), None);
        assert_eq!(last_output_line(&dir.path().join("missing.log"), 0), None);
    }

    #[test]
    fn verdicts() {
        assert_eq!(parse_verdict("done"), Some(Verdict::Done(String::new())));
        assert_eq!(parse_verdict("DONE: shipped it\n"), Some(Verdict::Done("shipped it".into())));
        assert_eq!(parse_verdict("continue add tests"), Some(Verdict::Continue("add tests".into())));
        assert_eq!(parse_verdict("blocked: needs a key"), Some(Verdict::Blocked("needs a key".into())));
        assert_eq!(parse_verdict("maybe"), None);
        assert_eq!(parse_verdict(""), None);
    }
}
