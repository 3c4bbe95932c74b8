//! The chaos soak (issue 10): several daemons on one board, workers that misbehave in every way a worker
//! can, and for a while a chaos loop that `kill -9`s daemons (and restarts them), supervisors and workers at
//! random moments, reclaims random running cards by run, blocks and unblocks cards, and runs
//! `dispatch --dry-run` alongside. The board's time limits are a few seconds, so every path (claim
//! extension, stale heartbeat, stale timeout, max runtime, crash grace, kill grace) fires many times, on
//! the real clock.
//!
//! The workers, one profile per kind, misbehave on their first attempts and then succeed (and all of them
//! succeed once the drain starts): `succeed`; `crash` (exit 3); `tempfail` (exit 75); `hang`; `noterm`
//! (`trap '' TERM`); `orphan` (leaves `sleep 300 &` behind, then exits 0 or completes); `setm` (leaves a
//! sleep in another process group of its session, then crashes); `wedge` (heartbeats once, then hangs);
//! `termdone` (hangs, and tries to `complete` when told to stop); `blocker` (blocks its own card); `silent`
//! (exits 0 without a report). Every report a worker makes names its own run (`run=$KANBAN_RUN_ID` in its
//! result, reason or note), so a report accepted for another run shows in the event log. Everything runs a
//! copy of the binary under test, so a rebuild meanwhile cannot swap it under the daemons.
//!
//! Invariants, checked on samples during the chaos and the drain and once more at the end, from SQLite
//! (in one read transaction) and from `/proc`:
//! - no card with two open runs (`running`, `exited`, `stopping`), now or ever (a run starts only after
//!   its card's previous run ended in the event log); no running card without an open run; no open run
//!   whose card is not running on it; no claim without a run;
//! - running cards never exceed `max_in_progress`; no card lost; `PRAGMA integrity_check` is ok;
//! - no report accepted from a stale attempt: every `completed`, `blocked` and `heartbeat` a worker made
//!   is on the run it named, while that run was the card's current run and was not being stopped;
//! - a run ends once, on the card's current run, and a stopped run ends with the outcome its stop decided;
//! - no process of an attempt is alive once its run has ended: for every ended run whose supervisor (the
//!   session leader) is dead, no live process is in that session (session = `supervisor_pid`, start time
//!   at or after `supervisor_start`), allowing its supervisor's cleanup a few seconds;
//! - never two live workers for one card: live processes grouped by `KANBAN_TASK` and `KANBAN_RUN_ID`
//!   (from `/proc/<pid>/environ`) show at most one run per card, seen alive at the same instant; a pair
//!   involving a `stopping` run gets a short settle window and is checked again;
//! - a reclaim ends exactly the run it named and is never recorded as a crash: every manual `reclaimed`
//!   event is on a run that a `kanban reclaim ID --run RUN` of the chaos loop named, no `crashed` ends a
//!   run whose reclaim was decided, and every reclaim that succeeded ended its run `reclaimed`;
//! - a recorded exit always wins: no run holds exit 75 and outcome `crashed`, and no run with a
//!   `worker_exited` event is settled "without a recorded exit";
//! - event timestamps never go backwards by more than a second, and no run ends before it starts;
//! - a dry run claims nothing; the cards are created six at a time on a fresh home, and no such command
//!   fails;
//! - after the chaos, a daemon with `--until-idle` drains the board: every card is done or blocked, and no
//!   process of the home is left.
//!
//! The short version runs by default (`cargo test --test crash_consistency soak`: 80 cards, 3 daemons, 20 s of chaos); the
//! long variant is opt-in: `KANBAN_SOAK_SECONDS=240 KANBAN_SOAK_CARDS=500 cargo test --release --test crash_consistency soak`.
//! `KANBAN_SOAK_DAEMONS`, `KANBAN_SOAK_MAX_IN_PROGRESS` and `KANBAN_SOAK_SEED` change the rest. On a
//! violation the board's database and the daemons' logs are copied to a folder the summary names.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{self, Fleet};
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

/// Run statuses that are still open.
const OPEN: &str = "('running', 'exited', 'stopping')";
/// `kill_grace_seconds` of the board.
const KILL_GRACE: i64 = 1;
/// How long a process of an attempt may outlive its run's end (the supervisor stopping what its worker
/// left behind: SIGTERM, the grace, SIGKILL), in whole seconds of the run's `ended_at`.
const SETTLE_SECS: i64 = KILL_GRACE + 3;
/// How long a pair of live workers involving a `stopping` run may last before it counts.
const STOPPING_WINDOW: Duration = Duration::from_secs((KILL_GRACE + 3) as u64);

/// The kinds of worker, each a profile: (name, misbehaving attempts before it succeeds, max runtime on
/// every other card of the kind).
const KINDS: &[(&str, u32, bool)] = &[
    ("succeed", 0, false),
    ("crash", 2, false),
    ("tempfail", 3, false),
    ("hang", 2, true),
    ("noterm", 2, true),
    ("orphan", 3, false),
    ("setm", 2, false),
    ("wedge", 2, false),
    ("termdone", 2, true),
    ("blocker", 1, false),
    ("silent", 2, false),
];

/// The background cards' kind: below every other card in dispatch order (priority -1), they misbehave
/// until the drain (rate limits, after leaving a child in their group or in another group of the
/// session, and now and then a hang), so the board stays busy to the end of the chaos without ever holding
/// back the cards above. There are `max_in_progress + 2` of them.
const IDLER: (&str, u32, bool) = ("idler", 1_000_000_000, false);

const WORKER: &str = r#"
# $KIND misbehaves on its first $BAD attempts, then succeeds; after $OUT/drain appears, every attempt does.
dir="$OUT/attempts"
mkdir -p "$dir"
n=$(( $(cat "$dir/$KANBAN_TASK" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$dir/$KANBAN_TASK"
kind=$KIND
if [ -e "$OUT/drain" ] || [ "$n" -gt "$BAD" ]; then kind=succeed; fi
finish() { "$KANBAN_BIN" complete "$KANBAN_TASK" --result "run=$KANBAN_RUN_ID"; }
nap() { sleep 0.$(( $$ % 8 + 1 )); }
case "$kind" in
  succeed) nap; finish ;;
  crash) nap; exit 3 ;;
  tempfail) nap; exit 75 ;;
  hang) exec sleep 300 ;;
  noterm) trap '' TERM; sleep 300 ;;
  orphan) sleep 300 & nap; if [ $(( n % 2 )) = 1 ]; then exit 0; fi; finish ;;
  setm) (set -m; sleep 300 &); nap; exit 3 ;;
  wedge) "$KANBAN_BIN" heartbeat "$KANBAN_TASK" --note "run=$KANBAN_RUN_ID"; sleep 300 ;;
  termdone) trap 'finish; exit 0' TERM; sleep 300 & wait $! ;;
  blocker) nap; "$KANBAN_BIN" block "$KANBAN_TASK" "run=$KANBAN_RUN_ID" ;;
  silent) nap; exit 0 ;;
  idler)
    case $(( n % 4 )) in
      0) if [ $(( n % 8 )) = 0 ]; then exec sleep 300; fi; nap; exit 75 ;;
      1) sleep 300 & nap; exit 75 ;;
      2) (set -m; sleep 300 &); nap; exit 75 ;;
      *) trap '' TERM; nap; exit 75 ;;
    esac ;;
esac
"#;

// The invariants, as the summary names them.
const INV_TWO_OPEN: &str = "no card with two open runs";
const INV_RUNNING_NO_RUN: &str = "no running card without an open run";
const INV_STRAY_RUN: &str = "no open run whose card is not running on it";
const INV_CLAIM: &str = "no claim without a run";
const INV_CAP: &str = "running cards within max_in_progress";
const INV_LOST: &str = "no card lost";
const INV_INTEGRITY: &str = "integrity_check ok";
const INV_STALE: &str = "no report accepted from a stale attempt";
const INV_ENDS_ONCE: &str = "a run ends once, on its card's current run, as its stop decided";
const INV_SESSION: &str = "no process of an attempt alive once its run has ended";
const INV_TWO_WORKERS: &str = "never two live workers for one card";
const INV_RECLAIM: &str = "a reclaim ends exactly the run it named, never as a crash";
const INV_EXIT_WINS: &str = "a recorded exit always wins";
const INV_TIME: &str = "timestamps never go backwards";
const INV_DRY_RUN: &str = "a dry run claims nothing";
const INV_REST: &str = "every card at rest after the drain (done or blocked)";
const INV_COMMANDS: &str = "concurrent commands on a fresh home succeed";
const INV_LEFT: &str = "no process of the home left at the end";
const INVARIANTS: &[&str] = &[
    INV_TWO_OPEN,
    INV_RUNNING_NO_RUN,
    INV_STRAY_RUN,
    INV_CLAIM,
    INV_CAP,
    INV_LOST,
    INV_INTEGRITY,
    INV_STALE,
    INV_ENDS_ONCE,
    INV_SESSION,
    INV_TWO_WORKERS,
    INV_RECLAIM,
    INV_EXIT_WINS,
    INV_TIME,
    INV_DRY_RUN,
    INV_REST,
    INV_LEFT,
    INV_COMMANDS,
];

/// Event kinds that end a run (written in the same transaction as the run's end).
const ENDINGS: &[&str] = &[
    "completed",
    "blocked",
    "reclaimed",
    "crashed",
    "timed_out",
    "stale",
    "protocol_violation",
    "rate_limited",
    "config_error",
    "spawn_failed",
    "spawn_lost",
    "host_error",
    "archived",
    "review_requested",
    "changes_requested",
];

/// `kanban --home HOME` run by `bin`, with every `KANBAN_*` variable and `RUST_LOG` removed (the real
/// clock) and stdin closed.
fn kanban(bin: &std::path::Path, home: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KANBAN_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("RUST_LOG").stdin(Stdio::null()).arg("--home").arg(home);
    cmd
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn wall_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// xorshift64*: reproducible from the seed the summary prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() { None } else { items.get(self.below(items.len())) }
    }
}

// ---------------------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------------------

/// One process as `/proc` showed it.
#[derive(Debug, Clone)]
struct Proc {
    pid: i32,
    state: char,
    session: i32,
    /// Start time, clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    start: u64,
    /// `KANBAN_TASK` and `KANBAN_RUN_ID`, for a process of this home's workers.
    task: Option<String>,
    run: Option<i64>,
    cmdline: String,
}

impl Proc {
    fn live(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// `(state, session, start)` from `/proc/<pid>/stat`, fields counted from the last `)`.
fn stat(pid: i32) -> Option<(char, i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(3)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Is the process `pid` that started at `start` still alive (same process, not a zombie)?
fn alive(pid: i32, start: u64) -> bool {
    matches!(stat(pid), Some((state, _, s)) if s == start && state != 'Z' && state != 'X')
}

/// SIGKILL `pid` if it is still the process that started at `start`.
fn kill_verified(pid: i32, start: u64) -> bool {
    alive(pid, start)
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).is_ok()
}

/// Every process, with the worker identity of those whose environment names `home`.
fn scan(home: &str) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut procs = Vec::new();
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let Some((state, session, start)) = stat(pid) else { continue };
        let mut proc = Proc { pid, state, session, start, task: None, run: None, cmdline: String::new() };
        if let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) {
            let mut ours = false;
            for var in environ.split(|b| *b == 0) {
                let var = String::from_utf8_lossy(var);
                if let Some(v) = var.strip_prefix("KANBAN_HOME=") {
                    ours = v == home;
                } else if let Some(v) = var.strip_prefix("KANBAN_TASK=") {
                    proc.task = Some(v.to_string());
                } else if let Some(v) = var.strip_prefix("KANBAN_RUN_ID=") {
                    proc.run = v.parse().ok();
                }
            }
            if !ours {
                proc.task = None;
                proc.run = None;
            }
        }
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            proc.cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_string();
        }
        // Only a process that still is the same one counts (the pid may have been recycled while we read).
        if stat(pid).is_some_and(|(_, _, s)| s == start) {
            procs.push(proc);
        }
    }
    procs
}

// ---------------------------------------------------------------------------------------------------------
// Violations
// ---------------------------------------------------------------------------------------------------------

/// One violation: what, and the card it is about (its history is printed for the first examples).
#[derive(Debug, Clone)]
struct Found {
    detail: String,
    card: Option<String>,
}

#[derive(Default)]
struct Violations {
    /// invariant -> key -> first sighting. Keys dedupe what several samples see.
    by: BTreeMap<&'static str, BTreeMap<String, Found>>,
}

impl Violations {
    fn add(&mut self, invariant: &'static str, key: String, card: Option<&str>, detail: String) {
        let entry = self.by.entry(invariant).or_default();
        if let std::collections::btree_map::Entry::Vacant(slot) = entry.entry(key) {
            eprintln!("soak: VIOLATION [{invariant}] {detail}");
            slot.insert(Found { detail, card: card.map(str::to_string) });
        }
    }

    fn count(&self, invariant: &str) -> usize {
        self.by.get(invariant).map_or(0, BTreeMap::len)
    }

    fn total(&self) -> usize {
        self.by.values().map(BTreeMap::len).sum()
    }
}

// ---------------------------------------------------------------------------------------------------------
// The event log, read incrementally
// ---------------------------------------------------------------------------------------------------------

/// What the event log said so far, folded event by event (ids are assigned in commit order, since SQLite
/// has one writer at a time, so every read sees a prefix).
#[derive(Default)]
struct History {
    last_id: i64,
    max_created: i64,
    /// card -> its latest run (by `run_started`).
    current: HashMap<String, i64>,
    /// run -> the event that ended it (id, kind).
    ended: HashMap<i64, (i64, String)>,
    /// run -> the outcome its stop decided.
    stopping: HashMap<i64, String>,
    /// Runs whose worker's exit was recorded (`worker_exited`).
    exited: HashSet<i64>,
    /// Runs settled `crashed` "without a recorded exit".
    gone_without_exit: HashSet<i64>,
    kinds: BTreeMap<String, u64>,
    /// Ending outcomes with a detail worth counting (manual reclaims, stale heartbeats, ...).
    paths: BTreeMap<&'static str, u64>,
}

struct Event {
    id: i64,
    task: Option<String>,
    run: Option<i64>,
    kind: String,
    payload: Value,
    created: i64,
}

impl History {
    /// Fold the events after the last one seen.
    fn update(
        &mut self,
        tx: &rusqlite::Transaction,
        asked: &HashMap<(String, i64), u32>,
        v: &mut Violations,
    ) -> rusqlite::Result<()> {
        let mut stmt = tx.prepare(
            "SELECT id, task_id, run_id, kind, payload, created_at FROM task_events WHERE id > ?1 ORDER BY id",
        )?;
        let events: Vec<Event> = stmt
            .query_map([self.last_id], |r| {
                let payload: String = r.get(4)?;
                Ok(Event {
                    id: r.get(0)?,
                    task: r.get(1)?,
                    run: r.get(2)?,
                    kind: r.get(3)?,
                    payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                    created: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        for e in events {
            self.fold(&e, asked, v);
            self.last_id = e.id;
        }
        Ok(())
    }

    fn fold(&mut self, e: &Event, asked: &HashMap<(String, i64), u32>, v: &mut Violations) {
        *self.kinds.entry(e.kind.clone()).or_default() += 1;
        if e.created < self.max_created - 1 {
            v.add(
                INV_TIME,
                format!("event {}", e.id),
                e.task.as_deref(),
                format!(
                    "event {} ({} of {:?}, run {:?}) is stamped {}, {} s before an earlier event",
                    e.id,
                    e.kind,
                    e.task,
                    e.run,
                    e.created,
                    self.max_created - e.created
                ),
            );
        }
        self.max_created = self.max_created.max(e.created);
        let (Some(card), Some(run)) = (e.task.as_deref(), e.run) else { return };
        let current = self.current.get(card).copied();
        // A worker's own report names its run: `run=N` in its result, reason or note.
        let said = ["result", "reason", "note"]
            .iter()
            .find_map(|k| e.payload[*k].as_str())
            .and_then(|s| s.strip_prefix("run="))
            .and_then(|s| s.parse::<i64>().ok());
        if let Some(named) = said
            && matches!(e.kind.as_str(), "completed" | "blocked" | "heartbeat")
        {
            let mut why = Vec::new();
            if named != run {
                why.push(format!("the worker of run {named} reported, and it was recorded on run {run}"));
            }
            if current != Some(run) {
                why.push(format!("run {run} was not the card's current run ({current:?})"));
            }
            if let Some(outcome) = self.stopping.get(&run) {
                why.push(format!("run {run} was being stopped ({outcome})"));
            }
            if let Some((id, kind)) = self.ended.get(&run) {
                why.push(format!("run {run} had ended ({kind}, event {id})"));
            }
            if !why.is_empty() {
                v.add(
                    INV_STALE,
                    format!("event {}", e.id),
                    Some(card),
                    format!("{} of card {card} (event {}) accepted: {}", e.kind, e.id, why.join("; ")),
                );
            }
        }
        match e.kind.as_str() {
            "run_started" => {
                if let Some(previous) = current
                    && !self.ended.contains_key(&previous)
                {
                    v.add(
                        INV_TWO_OPEN,
                        format!("run {run} started beside {previous}"),
                        Some(card),
                        format!(
                            "run {run} of card {card} started (event {}) while run {previous} had not ended",
                            e.id
                        ),
                    );
                }
                self.current.insert(card.to_string(), run);
            }
            "stop_requested" => {
                let outcome = e.payload["outcome"].as_str().unwrap_or("?").to_string();
                if current != Some(run) || self.ended.contains_key(&run) {
                    v.add(
                        INV_ENDS_ONCE,
                        format!("stop of run {run}"),
                        Some(card),
                        format!(
                            "a stop ({outcome}) was recorded on run {run} of card {card} (event {}), which was not the card's open current run ({current:?})",
                            e.id
                        ),
                    );
                }
                self.stopping.insert(run, outcome);
            }
            "worker_exited" => {
                if self.gone_without_exit.contains(&run) {
                    v.add(
                        INV_EXIT_WINS,
                        format!("run {run}"),
                        Some(card),
                        format!(
                            "run {run} of card {card} was settled crashed \"without a recorded exit\", then its supervisor recorded the exit {} (event {})",
                            e.payload, e.id
                        ),
                    );
                }
                self.exited.insert(run);
            }
            kind if ENDINGS.contains(&kind) => {
                if current != Some(run) {
                    v.add(
                        INV_ENDS_ONCE,
                        format!("run {run} ended off-current"),
                        Some(card),
                        format!(
                            "{kind} (event {}) ended run {run} of card {card}, whose current run was {current:?}",
                            e.id
                        ),
                    );
                }
                if let Some((id, first)) = self.ended.get(&run) {
                    v.add(
                        INV_ENDS_ONCE,
                        format!("run {run} ended twice"),
                        Some(card),
                        format!(
                            "run {run} of card {card} ended twice: {first} (event {id}), then {kind} (event {})",
                            e.id
                        ),
                    );
                }
                let manual = e.payload["manual"].as_bool() == Some(true);
                if let Some(decided) = self.stopping.get(&run) {
                    if kind == "crashed" && decided == "reclaimed" {
                        v.add(
                            INV_RECLAIM,
                            format!("run {run} crashed after its reclaim"),
                            Some(card),
                            format!(
                                "run {run} of card {card} was being reclaimed, and was settled crashed (event {})",
                                e.id
                            ),
                        );
                    } else if decided != kind && kind != "reclaimed" {
                        // (A stop whose action is refused once the worker is gone falls back to a reclaim.)
                        v.add(
                            INV_ENDS_ONCE,
                            format!("run {run} ended unlike its stop"),
                            Some(card),
                            format!(
                                "run {run} of card {card} was being stopped as {decided}, and ended {kind} (event {})",
                                e.id
                            ),
                        );
                    }
                }
                if kind == "reclaimed" && manual && !asked.contains_key(&(card.to_string(), run)) {
                    v.add(
                        INV_RECLAIM,
                        format!("run {run} reclaimed unasked"),
                        Some(card),
                        format!(
                            "a manual reclaim ended run {run} of card {card} (event {}), a run no reclaim named (asked of this card: {:?})",
                            e.id,
                            asked.keys().filter(|(c, _)| c == card).map(|(_, r)| *r).collect::<BTreeSet<_>>()
                        ),
                    );
                }
                if kind == "crashed" {
                    let error = e.payload["error"].as_str().unwrap_or("");
                    if error.contains("without a recorded exit") {
                        self.gone_without_exit.insert(run);
                        if self.exited.contains(&run) {
                            v.add(
                                INV_EXIT_WINS,
                                format!("run {run}"),
                                Some(card),
                                format!(
                                    "run {run} of card {card} had a worker_exited event, then was settled crashed \"{error}\" (event {})",
                                    e.id
                                ),
                            );
                        }
                    }
                }
                let path = match kind {
                    "reclaimed" if manual => Some("reclaimed (manual)"),
                    "reclaimed" if e.payload["heartbeat_stale"].as_bool() == Some(true) => {
                        Some("reclaimed (heartbeat stale)")
                    }
                    "reclaimed" if e.payload["worker_alive"].as_bool() == Some(false) => {
                        Some("reclaimed (worker gone)")
                    }
                    "crashed" if e.payload["signal"].is_i64() => Some("crashed (signal)"),
                    "crashed" if self.gone_without_exit.contains(&run) => Some("crashed (gone without exit)"),
                    _ => None,
                };
                if let Some(path) = path {
                    *self.paths.entry(path).or_default() += 1;
                }
                self.ended.insert(run, (e.id, kind.to_string()));
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The soak
// ---------------------------------------------------------------------------------------------------------

struct Config {
    cards: usize,
    seconds: u64,
    daemons: usize,
    max_in_progress: i64,
    seed: u64,
}

/// A command of the chaos loop still running.
struct Inflight {
    what: Op,
    child: Child,
    started: Instant,
    out: PathBuf,
    /// The highest event id when it started.
    events_before: i64,
}

#[derive(Debug, Clone)]
enum Op {
    Reclaim { card: String, run: i64 },
    DryRun,
    Block { card: String },
    Unblock { card: String },
}

/// Live processes `(pid, start time)` by run.
type RunPids = BTreeMap<i64, Vec<(i32, u64)>>;

/// A pair of live workers of one card involving a stopping run, checked again after the window.
struct Suspect {
    card: String,
    runs: RunPids,
    until: Instant,
}

#[derive(Default)]
struct Stats {
    kills: BTreeMap<&'static str, u64>,
    ops: BTreeMap<String, u64>,
    samples: u64,
    max_running: i64,
    max_live_workers: usize,
    dry_run_max: Duration,
    reclaim_max: Duration,
    stop_windows: u64,
    /// Real (not background) cards at rest when the chaos ended, and when all of them first were.
    at_rest_after_chaos: i64,
    all_at_rest: Option<Duration>,
    chaos_started: Option<Instant>,
}

struct Soak {
    fleet: Fleet,
    home: String,
    /// The copy of the binary under test that every command, daemon, supervisor and worker runs.
    bin: PathBuf,
    cfg: Config,
    rng: Rng,
    cards: BTreeSet<String>,
    daemons: Vec<Child>,
    daemon_logs: usize,
    inflight: Vec<Inflight>,
    ops_done: usize,
    /// (card, run) -> how many reclaims named it.
    asked: HashMap<(String, i64), u32>,
    /// Reclaims that succeeded (exit 0): the run each ended.
    reclaimed_ok: Vec<(String, i64)>,
    suspects: Vec<Suspect>,
    history: History,
    v: Violations,
    stats: Stats,
    conn: Connection,
}

impl Soak {
    /// A `kanban` command on this home, on the real clock.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = kanban(&self.bin, self.fleet.home());
        cmd.args(args);
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("spawn kanban");
        common::expect_ok(&out, &args)
    }

    fn setup(cfg: Config) -> Soak {
        let fleet = Fleet::new();
        let home = fleet.home().display().to_string();
        let db = fleet.db_path("default");
        // A copy of the binary under test: the daemons follow their binary (they re-execute when it is
        // replaced), so a rebuild while the soak runs must not swap it under them.
        let bin = fleet.home().join("bin").join("kanban");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(common::bin(), &bin).unwrap();
        let out = kanban(&bin, fleet.home()).args(["board", "create", "default"]).output().unwrap();
        common::expect_ok(&out, &"board create default");
        let script = fleet.script("soak-worker.sh", WORKER);
        let out_dir = fleet.out_dir().display().to_string();
        let mut toml = format!(
            "[dispatch]\nmax_in_progress = {}\nfailure_limit = 5\nclaim_ttl_seconds = 2\n\
             heartbeat_stale_seconds = 2\nstale_timeout_seconds = 4\ncrash_grace_seconds = 1\n\
             kill_grace_seconds = {KILL_GRACE}\nprotocol_violation_limit = 3\nstale_reclaim_limit = 3\n\n\
             [[policies]]\nkind = \"respawn-guard\"\nplugin = \"builtin:respawn-guard\"\n\
             [policies.config]\nrate_limit_cooldown_seconds = 0\n\n",
            cfg.max_in_progress
        );
        let mut seen = BTreeSet::new();
        for (kind, bad, _) in KINDS.iter().chain([&IDLER]) {
            if seen.insert(*kind) {
                toml.push_str(&format!(
                    "[profiles.{kind}]\ncommand = [\"sh\", {script:?}]\n\
                     env = {{ KANBAN_BIN = {:?}, OUT = {out_dir:?}, KIND = {kind:?}, BAD = \"{bad}\" }}\n\n",
                    bin.display().to_string()
                ));
            }
        }
        std::fs::write(fleet.toml_path("default"), toml).unwrap();
        let conn = Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        let seed = cfg.seed;
        let mut soak = Soak {
            fleet,
            home,
            bin,
            cfg,
            rng: Rng(seed | 1),
            cards: BTreeSet::new(),
            daemons: Vec::new(),
            daemon_logs: 0,
            inflight: Vec::new(),
            ops_done: 0,
            asked: HashMap::new(),
            reclaimed_ok: Vec::new(),
            suspects: Vec::new(),
            history: History::default(),
            v: Violations::default(),
            stats: Stats::default(),
            conn,
        };
        soak.ok(&["board", "check", "default"]);
        soak.create_cards();
        soak
    }

    /// The arguments that create card `i`, a background card from `real` on (idempotent: creating it
    /// again returns the same card).
    fn create_args(i: usize, real: usize) -> Vec<String> {
        let ((kind, _, limited), title) = if i < real {
            (KINDS[i % KINDS.len()], format!("card {i}"))
        } else {
            (IDLER, format!("background {}", i - real))
        };
        let mut args: Vec<String> =
            ["create", &format!("{title} ({kind})"), "--assignee", kind, "--json", "--idempotency-key"]
                .iter()
                .map(|a| a.to_string())
                .collect();
        args.push(format!("soak-{i}"));
        if limited && (i / KINDS.len()).is_multiple_of(2) {
            args.extend(["--max-runtime".to_string(), "3".to_string()]);
        }
        if i >= real {
            args.push("--priority=-1".to_string());
        }
        args
    }

    /// Create the cards, a few commands at a time, the first ones on a home that no command has used yet:
    /// concurrent commands must not trip over each other there either. A create that fails is a
    /// violation, and is retried alone so the soak goes on.
    fn create_cards(&mut self) {
        let mut batch: Vec<(usize, Child)> = Vec::new();
        let (real, total) = (self.cfg.cards, self.cfg.cards + self.background());
        for i in 0..total {
            let args = Self::create_args(i, real);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            batch.push((i, self.cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()));
            if batch.len() >= 6 || i + 1 == total {
                for (i, child) in std::mem::take(&mut batch) {
                    let out = child.wait_with_output().unwrap();
                    let out = if out.status.success() {
                        out
                    } else {
                        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
                        self.v.add(
                            INV_COMMANDS,
                            format!("create {i}"),
                            None,
                            format!("`kanban create` of card {i}, one of six at once, failed: {stderr}"),
                        );
                        let args = Self::create_args(i, real);
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        self.cmd(&args).output().unwrap()
                    };
                    let text = common::expect_ok(&out, &"create");
                    let v = common::parse_json(&text, &"create");
                    self.cards.insert(v["id"].as_str().expect("id").to_string());
                }
            }
        }
        assert_eq!(self.cards.len(), total, "every card was created");
    }

    /// How many background cards there are.
    fn background(&self) -> usize {
        self.cfg.max_in_progress.max(0) as usize + 2
    }

    fn spawn_daemon(&mut self, extra: &[&str]) -> Child {
        self.daemon_logs += 1;
        let log = self.fleet.home().join(format!("daemon-{}.log", self.daemon_logs));
        let log = std::fs::File::create(log).unwrap();
        let mut args = vec!["daemon", "--interval", "0.1"];
        args.extend_from_slice(extra);
        self.cmd(&args).env("KANBAN_LOG", "warn").stdout(Stdio::null()).stderr(log).spawn().unwrap()
    }

    // -----------------------------------------------------------------------------------------------------
    // Chaos
    // -----------------------------------------------------------------------------------------------------

    fn chaos(&mut self) {
        for _ in 0..self.cfg.daemons {
            let d = self.spawn_daemon(&[]);
            self.daemons.push(d);
        }
        self.stats.chaos_started = Some(Instant::now());
        let end = Instant::now() + Duration::from_secs(self.cfg.seconds);
        let mut next_sample = Instant::now() + Duration::from_millis(300);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50 + self.rng.below(250) as u64));
            self.reap_ops();
            match self.rng.below(100) {
                0..10 => self.kill_daemon(),
                10..28 => self.kill_supervisor(),
                28..46 => self.kill_worker(),
                46..70 => self.reclaim(),
                70..82 => self.start_op(Op::DryRun),
                82..86 => self.block_running(),
                86..94 => self.unblock(),
                _ => {} // a quiet moment: time limits fire on their own
            }
            if Instant::now() >= next_sample {
                self.sample("chaos");
                next_sample = Instant::now() + Duration::from_millis(400);
            }
        }
        self.stats.at_rest_after_chaos = self
            .conn
            .query_row(
                "SELECT count(*) FROM tasks WHERE status IN ('done', 'blocked') AND priority >= 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // Let the chaos loop's own commands finish (each is bounded by the host's stop waits).
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.inflight.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            self.reap_ops();
        }
        for op in &mut self.inflight {
            eprintln!("soak: {:?} still running after 60 s; killed", op.what);
            let _ = op.child.kill();
        }
        while !self.inflight.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
            self.reap_ops();
        }
    }

    fn kill_daemon(&mut self) {
        let i = self.rng.below(self.daemons.len());
        let _ = self.daemons[i].kill(); // SIGKILL
        let _ = self.daemons[i].wait();
        *self.stats.kills.entry("daemon").or_default() += 1;
        self.daemons[i] = self.spawn_daemon(&[]);
    }

    /// The supervisor of a random running card, if it still is that process.
    fn kill_supervisor(&mut self) {
        let runs: Vec<(i64, i64)> = self
            .conn
            .prepare(
                "SELECT r.supervisor_pid, r.supervisor_start FROM tasks t JOIN task_runs r ON r.id = t.current_run_id
                 WHERE t.status = 'running' AND r.supervisor_pid IS NOT NULL AND r.supervisor_start IS NOT NULL",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        if let Some((pid, start)) = self.rng.pick(&runs).copied()
            && kill_verified(pid as i32, start as u64)
        {
            *self.stats.kills.entry("supervisor").or_default() += 1;
        }
    }

    /// A random live process of a worker (the worker itself, a child it left, a `kanban` it runs).
    fn kill_worker(&mut self) {
        let workers: Vec<(i32, u64)> = scan(&self.home)
            .into_iter()
            .filter(|p| p.live() && p.task.is_some())
            .map(|p| (p.pid, p.start))
            .collect();
        if let Some((pid, start)) = self.rng.pick(&workers).copied()
            && kill_verified(pid, start)
        {
            *self.stats.kills.entry("worker").or_default() += 1;
        }
    }

    fn running_runs(&self) -> Vec<(String, i64)> {
        self.conn
            .prepare("SELECT id, current_run_id FROM tasks WHERE status = 'running' AND current_run_id IS NOT NULL")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// `kanban reclaim ID --run RUN` on a random running card, naming the run read just now.
    fn reclaim(&mut self) {
        let running = self.running_runs();
        if let Some((card, run)) = self.rng.pick(&running).cloned() {
            *self.asked.entry((card.clone(), run)).or_default() += 1;
            self.start_op(Op::Reclaim { card, run });
        }
    }

    fn block_running(&mut self) {
        let running = self.running_runs();
        if let Some((card, _)) = self.rng.pick(&running).cloned() {
            self.start_op(Op::Block { card });
        }
    }

    fn unblock(&mut self) {
        let blocked: Vec<String> = self
            .conn
            .prepare("SELECT id FROM tasks WHERE status = 'blocked'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        if let Some(card) = self.rng.pick(&blocked).cloned() {
            self.start_op(Op::Unblock { card });
        }
    }

    fn max_event_id(&self) -> i64 {
        self.conn.query_row("SELECT coalesce(max(id), 0) FROM task_events", [], |r| r.get(0)).unwrap()
    }

    fn start_op(&mut self, what: Op) {
        if self.inflight.len() >= 6 {
            return;
        }
        let run_arg;
        let args: Vec<&str> = match &what {
            Op::Reclaim { card, run } => {
                run_arg = run.to_string();
                vec!["reclaim", card, "--run", &run_arg, "--reason", "chaos"]
            }
            Op::DryRun => vec!["dispatch", "--dry-run", "--json"],
            Op::Block { card } => vec!["block", card, "chaos block"],
            Op::Unblock { card } => vec!["unblock", card, "--reason", "chaos unblock"],
        };
        self.ops_done += 1;
        let out = self.fleet.home().join(format!("op-{}.out", self.ops_done));
        let stdout = std::fs::File::create(&out).unwrap();
        let stderr = std::fs::File::create(out.with_extension("err")).unwrap();
        let events_before = self.max_event_id();
        let child = self.cmd(&args).stdout(stdout).stderr(stderr).spawn().unwrap();
        self.inflight.push(Inflight { what, child, started: Instant::now(), out, events_before });
    }

    /// Collect the chaos loop's finished commands and check what they did.
    fn reap_ops(&mut self) {
        let mut i = 0;
        while i < self.inflight.len() {
            let status = self.inflight[i].child.try_wait().unwrap();
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let op = self.inflight.swap_remove(i);
            self.finished(op, status);
        }
    }

    fn finished(&mut self, op: Inflight, status: ExitStatus) {
        let took = op.started.elapsed();
        let stdout = std::fs::read_to_string(&op.out).unwrap_or_default();
        let stderr = std::fs::read_to_string(op.out.with_extension("err")).unwrap_or_default();
        let verdict = if status.success() { "ok" } else { "refused" };
        let name = match &op.what {
            Op::Reclaim { .. } => "reclaim",
            Op::DryRun => "dry run",
            Op::Block { .. } => "block",
            Op::Unblock { .. } => "unblock",
        };
        *self.stats.ops.entry(format!("{name} {verdict}")).or_default() += 1;
        match &op.what {
            Op::Reclaim { card, run } => {
                self.stats.reclaim_max = self.stats.reclaim_max.max(took);
                if status.success() {
                    self.reclaimed_ok.push((card.clone(), *run));
                } else if status.code() != Some(1) {
                    eprintln!("soak: reclaim {card} --run {run}: {status}: {}", stderr.trim());
                }
            }
            Op::DryRun => {
                self.stats.dry_run_max = self.stats.dry_run_max.max(took);
                let pid = op.child.id();
                // The pid is free again only now that it was reaped, and nothing was started since.
                let claims: i64 = self
                    .conn
                    .query_row(
                        "SELECT count(*) FROM task_events WHERE id > ?1 AND kind = 'claimed'
                           AND json_extract(payload, '$.claim_lock') LIKE '%:' || ?2",
                        rusqlite::params![op.events_before, pid],
                        |r| r.get(0),
                    )
                    .unwrap();
                let report: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
                let started_runs = report["spawned"]
                    .as_array()
                    .map_or(0, |s| s.iter().filter(|s| !s["run_id"].is_null()).count());
                if !status.success() {
                    eprintln!("soak: dispatch --dry-run failed ({status}): {}", stderr.trim());
                } else if claims > 0 || started_runs > 0 || report["dry_run"] != Value::Bool(true) {
                    self.v.add(
                        INV_DRY_RUN,
                        format!("dry run {pid}"),
                        None,
                        format!("dispatch --dry-run (pid {pid}) claimed {claims} cards, reported {started_runs} runs"),
                    );
                }
            }
            Op::Block { .. } | Op::Unblock { .. } => {}
        }
    }

    // -----------------------------------------------------------------------------------------------------
    // Invariants
    // -----------------------------------------------------------------------------------------------------

    /// Check every invariant once: the store in one read transaction, then `/proc`.
    fn sample(&mut self, when: &str) {
        self.stats.samples += 1;
        let sample = self.stats.samples;
        let cap = self.cfg.max_in_progress;
        let now = wall_now();
        let tx = self.conn.transaction().unwrap();
        let strings = |sql: &str| -> Vec<(String, String)> {
            tx.prepare(sql)
                .unwrap()
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default()))
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        for (card, runs) in strings(&format!(
            "SELECT task_id, group_concat(id || ':' || status) FROM task_runs WHERE status IN {OPEN}
             GROUP BY task_id HAVING count(*) > 1"
        )) {
            self.v.add(
                INV_TWO_OPEN,
                format!("{card} {runs}"),
                Some(&card),
                format!("{when}: card {card} has open runs {runs}"),
            );
        }
        for (card, run) in strings(&format!(
            "SELECT t.id, t.current_run_id || '' FROM tasks t WHERE t.status = 'running' AND NOT EXISTS (
               SELECT 1 FROM task_runs r WHERE r.id = t.current_run_id AND r.task_id = t.id AND r.status IN {OPEN})"
        )) {
            self.v.add(
                INV_RUNNING_NO_RUN,
                format!("{card} {run}"),
                Some(&card),
                format!("{when}: card {card} is running, its current run ({run:?}) is not open"),
            );
        }
        for (card, run) in strings(&format!(
            "SELECT r.task_id, r.id || ' (' || r.status || ')' FROM task_runs r WHERE r.status IN {OPEN}
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = r.task_id AND t.current_run_id = r.id
                                 AND t.status = 'running')"
        )) {
            self.v.add(
                INV_STRAY_RUN,
                format!("{card} {run}"),
                Some(&card),
                format!("{when}: run {run} of card {card} is open, and its card is not running on it"),
            );
        }
        for (card, status) in strings(
            "SELECT id, status FROM tasks WHERE claim_lock IS NOT NULL AND (status <> 'running' OR current_run_id IS NULL)",
        ) {
            self.v.add(
                INV_CLAIM,
                format!("{card} {status}"),
                Some(&card),
                format!("{when}: card {card} holds a claim while {status}"),
            );
        }
        let running: i64 =
            tx.query_row("SELECT count(*) FROM tasks WHERE status = 'running'", [], |r| r.get(0)).unwrap();
        self.stats.max_running = self.stats.max_running.max(running);
        if running > cap {
            self.v.add(
                INV_CAP,
                format!("sample {sample}"),
                None,
                format!("{when}: {running} cards running, max_in_progress is {cap}"),
            );
        }
        let at_rest: i64 = tx
            .query_row(
                "SELECT count(*) FROM tasks WHERE status IN ('done', 'blocked') AND priority >= 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if at_rest == self.cfg.cards as i64 && self.stats.all_at_rest.is_none() {
            self.stats.all_at_rest = self.stats.chaos_started.map(|t| t.elapsed());
        }
        let ids: BTreeSet<String> =
            strings("SELECT id, NULL FROM tasks").into_iter().map(|(id, _)| id).collect();
        for lost in self.cards.difference(&ids) {
            self.v.add(INV_LOST, lost.clone(), Some(lost), format!("{when}: card {lost} is gone"));
        }
        if ids.len() != self.cards.len() {
            self.v.add(
                INV_LOST,
                format!("count {}", ids.len()),
                None,
                format!("{when}: {} cards in the store, {} created", ids.len(), self.cards.len()),
            );
        }
        let integrity: String = tx.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        if integrity != "ok" {
            self.v.add(
                INV_INTEGRITY,
                integrity.clone(),
                None,
                format!("{when}: integrity_check: {integrity}"),
            );
        }
        for (card, run) in
            strings("SELECT task_id, id || '' FROM task_runs WHERE exit_code = 75 AND outcome = 'crashed'")
        {
            self.v.add(
                INV_EXIT_WINS,
                format!("run {run}"),
                Some(&card),
                format!("run {run} of card {card} recorded exit 75 and was settled crashed"),
            );
        }
        for (card, run) in strings(
            "SELECT task_id, id || ': started ' || started_at || ', ended ' || ended_at FROM task_runs
             WHERE ended_at IS NOT NULL AND ended_at < started_at",
        ) {
            self.v.add(
                INV_TIME,
                format!("run {run}"),
                Some(&card),
                format!("run {run} of card {card} ends before it starts"),
            );
        }
        self.history.update(&tx, &self.asked, &mut self.v).unwrap();
        // Ended runs, for the session check (read before /proc is).
        let ended: Vec<(i64, String, i64, i64, i64, String)> = tx
            .prepare(
                "SELECT id, task_id, supervisor_pid, supervisor_start, ended_at, coalesce(outcome, '?') FROM task_runs
                 WHERE status = 'ended' AND supervisor_pid IS NOT NULL AND supervisor_start IS NOT NULL",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        tx.commit().unwrap();

        let procs = scan(&self.home);
        let by_pid: HashMap<i32, &Proc> = procs.iter().map(|p| (p.pid, p)).collect();
        let mut sessions: HashMap<i32, Vec<&Proc>> = HashMap::new();
        for p in procs.iter().filter(|p| p.live()) {
            sessions.entry(p.session).or_default().push(p);
        }
        for (run, card, leader, leader_start, ended_at, outcome) in &ended {
            if now - ended_at < SETTLE_SECS {
                continue;
            }
            let (leader, leader_start) = (*leader as i32, *leader_start as u64);
            if let Some(p) = by_pid.get(&leader)
                && (p.start != leader_start || p.live())
            {
                continue; // the supervisor is alive (it is in charge), or the number was recycled
            }
            for m in sessions.get(&leader).into_iter().flatten() {
                if m.pid != leader && m.start >= leader_start {
                    self.v.add(
                        INV_SESSION,
                        format!("run {run} pid {}", m.pid),
                        Some(card),
                        format!(
                            "{when}: run {run} of card {card} ended {} s ago ({outcome}), its supervisor {leader} is gone, and pid {} of its session lives: {} (KANBAN_RUN_ID {:?})",
                            now - ended_at,
                            m.pid,
                            m.cmdline,
                            m.run
                        ),
                    );
                }
            }
        }
        self.check_workers(&procs, when);
    }

    /// At most one run per card with live processes.
    fn check_workers(&mut self, procs: &[Proc], when: &str) {
        let mut by_card: BTreeMap<&str, RunPids> = BTreeMap::new();
        let mut live_workers = 0;
        for p in procs.iter().filter(|p| p.live()) {
            if let (Some(card), Some(run)) = (p.task.as_deref(), p.run) {
                by_card.entry(card).or_default().entry(run).or_default().push((p.pid, p.start));
                live_workers += 1;
            }
        }
        self.stats.max_live_workers = self.stats.max_live_workers.max(live_workers);
        let mut found = Vec::new();
        for (card, runs) in by_card {
            if runs.len() < 2 {
                continue;
            }
            // Seen alive after the whole scan: the runs' processes were alive at one instant.
            let both: RunPids = runs
                .into_iter()
                .filter_map(|(run, pids)| {
                    let live: Vec<(i32, u64)> = pids.into_iter().filter(|(p, s)| alive(*p, *s)).collect();
                    (!live.is_empty()).then_some((run, live))
                })
                .collect();
            if both.len() >= 2 {
                found.push((card.to_string(), both));
            }
        }
        for (card, runs) in found {
            let ids: Vec<i64> = runs.keys().copied().collect();
            let statuses: Vec<(i64, String)> = ids
                .iter()
                .map(|r| {
                    let s: Option<String> = self
                        .conn
                        .query_row("SELECT status FROM task_runs WHERE id = ?1", [r], |row| row.get(0))
                        .optional()
                        .unwrap();
                    (*r, s.unwrap_or_else(|| "?".into()))
                })
                .collect();
            if statuses.iter().any(|(_, s)| s == "stopping") {
                self.stats.stop_windows += 1;
                self.suspects.push(Suspect { card, runs, until: Instant::now() + STOPPING_WINDOW });
            } else {
                self.v.add(
                    INV_TWO_WORKERS,
                    format!("{card} {ids:?}"),
                    Some(&card),
                    format!("{when}: card {card} has live workers of runs {statuses:?}: {runs:?}"),
                );
            }
        }
        let now = Instant::now();
        let (due, waiting): (Vec<Suspect>, Vec<Suspect>) =
            std::mem::take(&mut self.suspects).into_iter().partition(|s| s.until <= now);
        self.suspects = waiting;
        for s in due {
            let still: RunPids = s
                .runs
                .iter()
                .filter_map(|(run, pids)| {
                    let live: Vec<(i32, u64)> =
                        pids.iter().copied().filter(|(p, st)| alive(*p, *st)).collect();
                    (!live.is_empty()).then_some((*run, live))
                })
                .collect();
            if still.len() >= 2 {
                let ids: Vec<i64> = still.keys().copied().collect();
                self.v.add(
                    INV_TWO_WORKERS,
                    format!("{} {ids:?}", s.card),
                    Some(&s.card),
                    format!(
                        "{when}: card {} has had live workers of runs {ids:?} for more than {STOPPING_WINDOW:?} (one stopping): {still:?}",
                        s.card
                    ),
                );
            }
        }
    }

    // -----------------------------------------------------------------------------------------------------
    // The drain and the end
    // -----------------------------------------------------------------------------------------------------

    /// Stop the daemons, let one daemon drain the board with `--until-idle`, sampling meanwhile. Returns how
    /// long the drain took.
    fn drain(&mut self) -> Duration {
        std::fs::write(self.fleet.out_dir().join("drain"), b"now\n").unwrap();
        for d in &self.daemons {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(d.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for mut d in std::mem::take(&mut self.daemons) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while d.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        let started = Instant::now();
        let limit = Duration::from_secs(60 + self.cfg.cards as u64 / 5);
        let mut drainer = self.spawn_daemon(&["--until-idle"]);
        let mut next_sample = Instant::now();
        let status = loop {
            if let Some(status) = drainer.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > limit {
                let _ = drainer.kill();
                let _ = drainer.wait();
                break None;
            }
            if Instant::now() >= next_sample {
                self.sample("drain");
                next_sample = Instant::now() + Duration::from_millis(500);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = started.elapsed();
        match status {
            Some(status) if status.success() => {}
            other => {
                let stuck: Vec<(String, String)> = self.restless();
                for (card, st) in stuck {
                    self.v.add(
                        INV_REST,
                        card.clone(),
                        Some(&card),
                        format!("the drain did not finish ({other:?} after {took:?}); card {card} is {st}"),
                    );
                }
            }
        }
        took
    }

    /// Cards neither done nor blocked, as `(id, status)`.
    fn restless(&self) -> Vec<(String, String)> {
        self.conn
            .prepare("SELECT id, status FROM tasks WHERE status NOT IN ('done', 'blocked')")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The final checks: every invariant once more, every card at rest, no process of the home left.
    fn finish(&mut self) {
        // Supervisors of the last runs exit once their cleanup is done; give them a moment.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !common::home_processes(self.fleet.home()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.sample("final");
        let restless: Vec<(String, String)> = self.restless();
        for (card, status) in restless {
            self.v.add(
                INV_REST,
                card.clone(),
                Some(&card),
                format!("after the drain card {card} is {status}"),
            );
        }
        for (card, run) in self.reclaimed_ok.clone() {
            let outcome: Option<String> = self
                .conn
                .query_row(
                    "SELECT outcome FROM task_runs WHERE id = ?1 AND task_id = ?2",
                    rusqlite::params![run, card],
                    |r| r.get(0),
                )
                .optional()
                .unwrap()
                .flatten();
            if outcome.as_deref() != Some("reclaimed") {
                self.v.add(
                    INV_RECLAIM,
                    format!("run {run} outcome"),
                    Some(&card),
                    format!("`reclaim {card} --run {run}` succeeded, and run {run} ended {outcome:?}"),
                );
            }
        }
        let procs = scan(&self.home);
        let sessions: HashMap<i32, i64> = self
            .conn
            .prepare("SELECT supervisor_pid, id FROM task_runs WHERE supervisor_pid IS NOT NULL")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for pid in common::home_processes(self.fleet.home()) {
            let p = procs.iter().find(|p| p.pid == pid);
            let cmdline = p.map(|p| p.cmdline.clone()).unwrap_or_default();
            let session = p.map(|p| p.session);
            let run = p.and_then(|p| p.run).or_else(|| session.and_then(|s| sessions.get(&s).copied()));
            let card = p.and_then(|p| p.task.clone());
            self.v.add(
                INV_LEFT,
                format!("pid {pid}"),
                card.as_deref(),
                format!("pid {pid} is left: {cmdline} (session {session:?}, run {run:?})"),
            );
        }
    }

    /// A card's runs and events, for a violation's example.
    fn describe(&self, card: &str) -> String {
        let mut text = String::new();
        let mut runs = self
            .conn
            .prepare(
                "SELECT id, status, coalesce(outcome, ''), started_at, ended_at, exit_code, exit_signal, supervisor_pid,
                        worker_pid, stop_requested_at, coalesce(error, '') FROM task_runs WHERE task_id = ?1 ORDER BY id",
            )
            .unwrap();
        let rows = runs
            .query_map([card], |r| {
                Ok(format!(
                    "    run {} {} {} started {} ended {:?} exit {:?} signal {:?} supervisor {:?} worker {:?} stop_requested {:?} error {:?}",
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                    r.get::<_, String>(10)?,
                ))
            })
            .unwrap();
        for row in rows {
            text.push_str(&row.unwrap());
            text.push('\n');
        }
        let mut events = self
            .conn
            .prepare("SELECT id, run_id, kind, payload, created_at FROM task_events WHERE task_id = ?1 ORDER BY id")
            .unwrap();
        let rows = events
            .query_map([card], |r| {
                Ok(format!(
                    "    event {} run {:?} {} {} at {}",
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .unwrap();
        for row in rows {
            text.push_str(&row.unwrap());
            text.push('\n');
        }
        text
    }

    /// Keep the evidence of a failed soak: the database and the daemons' logs.
    fn keep_evidence(&self) -> Option<PathBuf> {
        let dir = std::env::temp_dir().join(format!("kanban-soak-{}", self.cfg.seed));
        std::fs::create_dir_all(&dir).ok()?;
        let _ = self.conn.execute("VACUUM INTO ?1", [dir.join("kanban.db").display().to_string()]);
        for entry in std::fs::read_dir(self.fleet.home()).ok()?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("daemon-") {
                let _ = std::fs::copy(entry.path(), dir.join(&name));
            }
        }
        let logs = dir.join("logs");
        let _ = std::fs::create_dir_all(&logs);
        for entry in std::fs::read_dir(self.fleet.board_dir("default").join("logs")).ok()?.flatten() {
            let _ = std::fs::copy(entry.path(), logs.join(entry.file_name()));
        }
        Some(dir)
    }

    fn summary(&self, took: Duration, drain: Duration) {
        let cfg = &self.cfg;
        let count = |sql: &str| -> Vec<(String, i64)> {
            self.conn
                .prepare(sql)
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        eprintln!("\n=== chaos soak summary ===");
        eprintln!(
            "cards {} (+{} background), daemons {}, chaos {} s, max_in_progress {}, seed {}; took {:.1} s (drain {:.1} s)",
            cfg.cards,
            self.background(),
            cfg.daemons,
            cfg.seconds,
            cfg.max_in_progress,
            cfg.seed,
            took.as_secs_f64(),
            drain.as_secs_f64()
        );
        eprintln!("kills: {:?}", self.stats.kills);
        eprintln!(
            "operator commands: {:?}; reclaims asked {}, longest reclaim {:.1} s, longest dry run {:.1} s",
            self.stats.ops,
            self.asked.values().sum::<u32>(),
            self.stats.reclaim_max.as_secs_f64(),
            self.stats.dry_run_max.as_secs_f64()
        );
        eprintln!(
            "samples {}, most cards running at once {}, most live worker processes {}, stopping pairs re-checked {}",
            self.stats.samples, self.stats.max_running, self.stats.max_live_workers, self.stats.stop_windows
        );
        eprintln!(
            "cards at rest (done or blocked) when the chaos ended: {} of {}{}",
            self.stats.at_rest_after_chaos,
            cfg.cards,
            self.stats
                .all_at_rest
                .map(|t| format!(" (all of them {:.0} s after the chaos began)", t.as_secs_f64()))
                .unwrap_or_default()
        );
        eprintln!(
            "cards by status: {:?}",
            count("SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status")
        );
        eprintln!(
            "runs by outcome: {:?}",
            count("SELECT coalesce(outcome, status), count(*) FROM task_runs GROUP BY 1 ORDER BY 1")
        );
        eprintln!("ending paths: {:?}", self.history.paths);
        let kinds: Vec<String> = self.history.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        eprintln!("events: {}", kinds.join(", "));
        eprintln!("violations by invariant:");
        for inv in INVARIANTS {
            eprintln!("  {:>4}  {inv}", self.v.count(inv));
        }
        eprintln!("total violations: {}", self.v.total());
        if self.v.total() > 0 {
            for (inv, found) in &self.v.by {
                eprintln!("\n--- {inv}: {} ---", found.len());
                for f in found.values().take(8) {
                    eprintln!("  {}", f.detail);
                }
                if let Some(card) = found.values().find_map(|f| f.card.clone()) {
                    eprintln!("  example card {card}:\n{}", self.describe(&card));
                }
            }
            if let Some(dir) = self.keep_evidence() {
                eprintln!("evidence kept in {}", dir.display());
            }
        }
    }
}

#[test]
fn chaos_soak_of_several_daemons_keeps_every_invariant() {
    let _alone = crate::ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let seed = env_or("KANBAN_SOAK_SEED", {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as u64;
        nanos ^ (u64::from(std::process::id()) << 32)
    });
    let cfg = Config {
        cards: env_or("KANBAN_SOAK_CARDS", 80),
        seconds: env_or("KANBAN_SOAK_SECONDS", 20),
        daemons: env_or("KANBAN_SOAK_DAEMONS", 3).max(1),
        max_in_progress: env_or("KANBAN_SOAK_MAX_IN_PROGRESS", 10),
        seed,
    };
    eprintln!(
        "soak: {} cards, {} daemons, {} s of chaos, seed {} (KANBAN_SOAK_SEED to repeat)",
        cfg.cards, cfg.daemons, cfg.seconds, cfg.seed
    );
    let began = Instant::now();
    let mut soak = Soak::setup(cfg);
    soak.chaos();
    let drain = soak.drain();
    soak.finish();
    soak.summary(began.elapsed(), drain);
    let total = soak.v.total();
    drop(soak); // kills whatever is left of the home
    assert_eq!(total, 0, "the chaos soak found {total} invariant violations (see above)");
}
