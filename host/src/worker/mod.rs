//! Starting worker processes: the supervisor (this same binary, hidden `supervise` command) in a session of
//! its own, the worker in its own process group inside that session, the goal judge with a deadline, the
//! worker's environment, its log, and the durable record of its exit.
//!
//! Mechanism only. What a run's end means for its card (and who stops what) is the commands layer's
//! (`crate::ops`), which the supervisor, the dispatcher and the CLI share.

pub mod context;

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::board::{Board, Home};
use crate::model::{Task, WorkspaceKind};

/// A card's log is rotated (one backup kept) when it passes this size at the start of a turn.
pub const LOG_ROTATE_BYTES: u64 = 2 * 1024 * 1024;

/// Open the card's log for appending, rotating it first if it is over [`LOG_ROTATE_BYTES`].
pub fn open_log(board: &Board, task_id: &str) -> std::io::Result<File> {
    let files = board.card_files(task_id);
    if std::fs::metadata(&files.log).map(|m| m.len() > LOG_ROTATE_BYTES).unwrap_or(false) {
        std::fs::rename(&files.log, &files.log_backup)?;
    }
    std::fs::create_dir_all(board.logs_dir())?;
    OpenOptions::new().create(true).append(true).open(files.log)
}

/// The path of this binary, stable across upgrades: the path it was started by (symlinks kept), not the
/// file the running image was loaded from. An upgrade that renames a new binary over the old one, or points
/// a symlink at a new version, changes what is at that path; supervisors and workers started by it run the
/// new version, and the daemon notices the change (see `dispatch::daemon`).
///
/// The path is read once, at the first call: `argv[0]` made absolute (or found on `PATH`), accepted when it
/// is this very program (same file as `/proc/self/exe`) or when the running image was replaced already.
/// Otherwise, `/proc/self/exe` without the kernel's ` (deleted)` suffix.
pub fn executable() -> std::io::Result<PathBuf> {
    static INVOKED: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    if let Some(path) = INVOKED.get_or_init(invoked_path) {
        return Ok(path.clone());
    }
    running_image()
}

/// `/proc/self/exe`, without ` (deleted)` when the file was replaced since.
fn running_image() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

fn invoked_path() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let arg0 = PathBuf::from(std::env::args_os().next()?);
    let candidate = if arg0.components().count() > 1 {
        std::path::absolute(&arg0).ok()?
    } else {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|dir| dir.join(&arg0)).find(|p| p.is_file())?
    };
    let found = std::fs::metadata(&candidate).ok()?;
    let running = std::fs::metadata("/proc/self/exe").ok();
    let replaced =
        std::fs::read_link("/proc/self/exe").is_ok_and(|l| l.to_string_lossy().ends_with(" (deleted)"));
    let same = running.is_some_and(|r| r.dev() == found.dev() && r.ino() == found.ino());
    (same || replaced).then_some(candidate)
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
    /// The run reviews the card (dispatched from the review lane).
    pub review: bool,
}

impl WorkerEnv<'_> {
    /// The `KANBAN_*` variables, plus `PATH` with this binary's folder first so `kanban complete` works
    /// however the dispatcher was started. `base_path` is the `PATH` the worker would otherwise get.
    pub fn vars(&self, base_path: Option<&str>) -> Vec<(String, String)> {
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
        if let Ok(exe) = executable() {
            if let Some(dir) = exe.parent() {
                let path = match base_path.filter(|p| !p.is_empty()) {
                    Some(base) => format!("{}:{base}", dir.display()),
                    None => dir.display().to_string(),
                };
                vars.push(("PATH".into(), path));
            }
            vars.push(("KANBAN_BIN".into(), exe.display().to_string()));
        }
        if t.workspace_kind == WorkspaceKind::Worktree {
            vars.push(("KANBAN_BRANCH".into(), crate::workspace::branch_for(t)));
        } else if let Some(branch) = &t.branch_name {
            vars.push(("KANBAN_BRANCH".into(), branch.clone()));
        }
        if self.review {
            vars.push(("KANBAN_REVIEW".into(), "1".into()));
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

/// Start the supervisor for a claimed run; it makes itself the leader of a new session (its pid names the
/// attempt's session), detached from the dispatcher's terminal. The binary is started by its stable path,
/// so a daemon that outlived an upgrade starts the new version.
pub fn spawn_supervisor(
    home: &Home,
    board: &Board,
    task_id: &str,
    run_id: i64,
    gate: &StartGate,
) -> std::io::Result<Child> {
    let exe = executable()?;
    let log = open_log(board, task_id)?;
    let mut cmd = Command::new(exe);
    cmd.arg("--home")
        .arg(home.root())
        .args(["--board", &board.slug, "supervise", task_id, "--run", &run_id.to_string()])
        // A dispatcher started from inside a worker must not pass that worker's scope on.
        .env_remove("KANBAN_TASK")
        .env_remove("KANBAN_RUN_ID")
        .stdin(gate.stdin()?)
        .stdout(Stdio::null())
        .stderr(log);
    // The supervisor calls setsid itself, first thing (see `become_session_leader`): without a pre_exec
    // hook, std starts it with posix_spawn instead of fork, which a dispatcher holding compiled plugins
    // and a page cache does in a fraction of the time.
    cmd.spawn()
}

/// The gate a tick's supervisors wait at before they touch the board: a pipe whose read end is each
/// supervisor's stdin, and whose write end the dispatcher holds until it has started and recorded them all.
/// Dropping the gate (or the dispatcher dying) closes the write end, and every supervisor reads end-of-file
/// and goes on. So a tick that starts a hundred workers does not compete for the CPU and the write lock
/// with the hundred supervisors it has just started.
pub struct StartGate {
    read: std::os::fd::OwnedFd,
    _write: std::os::fd::OwnedFd,
}

impl StartGate {
    pub fn new() -> std::io::Result<StartGate> {
        // Close-on-exec both ends: the read end reaches a supervisor only as its stdin (dup2 clears the
        // flag there), the write end never leaves the dispatcher.
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        Ok(StartGate { read, _write: write })
    }

    fn stdin(&self) -> std::io::Result<Stdio> {
        Ok(Stdio::from(self.read.try_clone()?))
    }

    /// Let the supervisors go.
    pub fn open(self) {}
}

/// Wait at the dispatcher's [`StartGate`], if stdin is one (a pipe): read until end-of-file. Anything else
/// on stdin (a terminal, `/dev/null`) is not waited on.
pub fn wait_at_gate() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let stdin = std::io::stdin();
    let Ok(meta) = std::fs::metadata("/dev/stdin") else { return };
    if !meta.file_type().is_fifo() {
        return;
    }
    let mut sink = [0u8; 64];
    let mut lock = stdin.lock();
    while matches!(lock.read(&mut sink), Ok(n) if n > 0) {}
}

/// Make the current process (a supervisor) the leader of a new session, so its pid names the attempt's
/// session and a stop reaches every process the worker starts. Started by the dispatcher, a supervisor is
/// never a process-group leader, so this cannot fail; started by hand from a shell it may be, and then
/// it refuses rather than supervise a worker it could not stop.
pub fn become_session_leader() -> std::io::Result<()> {
    nix::unistd::setsid().map(|_| ()).map_err(|e| {
        std::io::Error::other(format!(
            "cannot start a new session ({e}): `kanban supervise` is started by the dispatcher, not by hand"
        ))
    })
}

/// Longest line kept from a failed worker's output.
pub const LAST_OUTPUT_CHARS: usize = 300;

/// The last non-blank line written to `log` after byte `offset` (where this turn's output began), with
/// colour codes and control characters dropped and capped at [`LAST_OUTPUT_CHARS`]: why a worker failed,
/// in its own words ("HTTP 401 Unauthorized", "cannot open ./worker.sh"). `None` if the turn wrote nothing.
pub fn last_output_line(log: &Path, offset: u64) -> Option<String> {
    use std::io::{Seek, SeekFrom};
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

/// How a worker process ended, as kept in the run's exit file and in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: Option<i64>,
    pub signal: Option<i64>,
    /// The last line a failed worker wrote (see [`last_output_line`]).
    #[serde(default)]
    pub last_output: Option<String>,
}

/// Write a run's exit next to its log, atomically, before the store is told: if the store cannot be
/// reached (or the supervisor dies right after), the next tick reads it here instead of calling the run a
/// crash.
pub fn write_exit_file(board: &Board, task_id: &str, run_id: i64, exit: &Exit) -> anyhow::Result<()> {
    let path = board.exit_file(task_id, run_id);
    let text = serde_json::to_string(exit).expect("an exit serializes");
    crate::board::write_atomic(&path, text.as_bytes())?;
    Ok(())
}

/// A run's exit as its supervisor wrote it, if it did.
pub fn read_exit_file(board: &Board, task_id: &str, run_id: i64) -> Option<Exit> {
    let text = std::fs::read_to_string(board.exit_file(task_id, run_id)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn remove_exit_file(board: &Board, task_id: &str, run_id: i64) {
    let _ = std::fs::remove_file(board.exit_file(task_id, run_id));
}

/// Start one worker turn: the profile's argv in the workspace, in its own process group (inside the
/// supervisor's session), stdin closed, stdout and stderr appended to `log` (the card's log).
pub fn start_worker(
    argv: &[String],
    profile_env: &[(String, String)],
    env: &WorkerEnv,
    log: File,
) -> anyhow::Result<Child> {
    let log2 = log.try_clone()?;
    let base_path = profile_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("PATH").ok());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(env.workspace)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .envs(profile_env.iter().cloned())
        .envs(env.vars(base_path.as_deref()));
    cmd.spawn().with_context(|| format!("cannot start worker {:?} in {}", argv, env.workspace.display()))
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

/// Most bytes of the judge's stdout read (the verdict and its detail).
const JUDGE_OUTPUT_CAP: u64 = 64 * 1024;

/// Run the board's judge for a goal card, within `deadline`. Its environment is the worker's (the
/// profile's `env` plus the `KANBAN_*` variables); its stdin is the card's title and body. Any failure is
/// a `Blocked` verdict naming it, a judge past its deadline included (it is killed, its whole process
/// group): a goal card never ends silently, and never waits forever.
pub fn run_judge(
    judge: &[String],
    profile_env: &[(String, String)],
    env: &WorkerEnv,
    log: &mut File,
    deadline: Duration,
) -> Verdict {
    use std::io::Write;
    let spawned = Command::new(&judge[0])
        .args(&judge[1..])
        .current_dir(env.workspace)
        .envs(profile_env.iter().cloned())
        .envs(env.vars(std::env::var("PATH").ok().as_deref()))
        .process_group(0)
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
    // Read both pipes on threads so a chatty judge never blocks on a full pipe while we wait.
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(JUDGE_OUTPUT_CAP).read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(25)),
            Err(e) => return Verdict::Blocked(format!("the goal judge failed: {e}")),
        }
    };
    let Some(status) = status else {
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        return Verdict::Blocked(format!(
            "the goal judge did not rule within {}s (goal.judge_timeout_seconds); it was stopped",
            deadline.as_secs()
        ));
    };
    let _ = log.write_all(&stderr.join().unwrap_or_default());
    let stdout = String::from_utf8_lossy(&stdout.join().unwrap_or_default()).into_owned();
    if !status.success() {
        return Verdict::Blocked(format!("the goal judge exited with {status}"));
    }
    parse_verdict(&stdout).unwrap_or_else(|| {
        Verdict::Blocked(format!(
            "the goal judge answered neither done, continue nor blocked: {:?}",
            stdout.trim()
        ))
    })
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

    #[test]
    fn the_binary_is_started_by_the_path_it_was_invoked_by() {
        let exe = executable().unwrap();
        assert!(!exe.to_string_lossy().ends_with(" (deleted)"));
        assert!(exe.is_absolute() && exe.is_file(), "{}", exe.display());
    }

    /// A child whose stdin is the gate reads nothing and waits until the gate opens; then it goes on.
    #[test]
    fn supervisors_wait_at_the_gate_until_it_opens() {
        let gate = StartGate::new().unwrap();
        let mut child = Command::new("sh")
            .args(["-c", "cat > /dev/null; echo through"])
            .stdin(gate.stdin().unwrap())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "went through a closed gate");
        gate.open();
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "through\n");
    }
}
