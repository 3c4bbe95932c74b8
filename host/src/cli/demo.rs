//! `kanban demo`: a board whose workers tell the dispatcher's story in under a minute. One worker
//! succeeds, one hits a rate limit (exit 75) and succeeds after the cooldown, one crashes until the breaker
//! trips, and one wedges (heartbeats once, then hangs) and is reclaimed, then finishes on its second run.
//! Everything is real: a board in the home, shell workers, supervisors, the same tick the daemon runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::board::{Home, write_atomic};
use crate::clock;
use crate::dispatch::{TickOptions, tick};
use crate::store::{NewTask, TaskFilter};

const WORKERS: &[(&str, &str)] = &[
    (
        "steady",
        r#"echo "steady: working on $KANBAN_TASK"
"$KANBAN_BIN" heartbeat "$KANBAN_TASK" --note "halfway"
sleep 1
"$KANBAN_BIN" complete "$KANBAN_TASK" --result "release notes written""#,
    ),
    (
        "throttled",
        r#"mark="$DEMO_DIR/rate-limited-$KANBAN_TASK"
if [ ! -e "$mark" ]; then
  touch "$mark"
  echo "throttled: 429 Too Many Requests; backing off" >&2
  exit 75
fi
"$KANBAN_BIN" complete "$KANBAN_TASK" --result "summary done after the cooldown""#,
    ),
    (
        "flaky",
        r#"echo "flaky: segmentation fault (core dumped)" >&2
exit 139"#,
    ),
    (
        "wedged",
        r#"mark="$DEMO_DIR/wedged-$KANBAN_TASK"
if [ ! -e "$mark" ]; then
  touch "$mark"
  "$KANBAN_BIN" heartbeat "$KANBAN_TASK" --note "starting a long index"
  echo "wedged: stuck in a lock, never heartbeats again" >&2
  sleep 600
fi
"$KANBAN_BIN" complete "$KANBAN_TASK" --result "index built on the second try""#,
    ),
];

const CARDS: &[(&str, &str)] = &[
    ("Write the release notes", "steady"),
    ("Summarise the API docs", "throttled"),
    ("Migrate the flaky service", "flaky"),
    ("Index the monorepo", "wedged"),
];

pub fn run(home: &Home) -> anyhow::Result<()> {
    let slug = (1..)
        .map(|n| if n == 1 { "demo".to_string() } else { format!("demo-{n}") })
        .find(|s| !home.board_dir(s).exists())
        .expect("some demo slug is free");
    let board = home.create_board(&slug, Some("Demo"), None)?;
    let workers_dir = board.dir.join("demo-workers");
    std::fs::create_dir_all(&workers_dir)?;
    let exe = crate::worker::executable().context("cannot find the kanban binary")?;
    let mut profiles = String::new();
    for (name, script) in WORKERS {
        let path = workers_dir.join(format!("{name}.sh"));
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n"))?;
        profiles.push_str(&format!(
            "[profiles.{name}]\ncommand = [\"sh\", {path:?}]\nenv = {{ KANBAN_BIN = {exe:?}, DEMO_DIR = {dir:?} }}\n\n",
            path = path.display().to_string(),
            exe = exe.display().to_string(),
            dir = workers_dir.display().to_string(),
        ));
    }
    let toml = format!(
        r#"## The demo board: short timeouts so the whole story fits in under a minute.
[board]
name = "Demo"

[dispatch]
failure_limit = 2            # the flaky worker trips the breaker on its second crash
claim_ttl_seconds = 2        # claims are short, so the wedged worker is noticed quickly
heartbeat_stale_seconds = 4  # a live worker silent for 4 s is reclaimed
crash_grace_seconds = 1

{profiles}[[policies]]
kind = "respawn-guard"
plugin = "builtin:respawn-guard"
[policies.config]
rate_limit_cooldown_seconds = 3
"#
    );
    write_atomic(&board.toml_path(), toml.as_bytes())?;
    let board = home.open_board(&slug)?;
    let mut store = board.open_store()?;
    let start = clock::now();
    let mut titles = BTreeMap::new();
    for (title, profile) in CARDS {
        let (task, _) = store.create_task(
            &NewTask { title: title.to_string(), assignee: Some(profile.to_string()), ..NewTask::default() },
            start,
        )?;
        titles.insert(task.id.clone(), title.to_string());
    }
    println!("Demo board '{slug}' at {}", board.dir.display());
    println!("Four cards, four workers: steady, throttled (exit 75), flaky (crashes), wedged (hangs).\n");
    let began = Instant::now();
    // The demo tells the scratch-workspace tip as part of its story, not as a log line in the middle of it.
    let marker = home.root().join(".scratch-tip-shown");
    if !marker.exists() {
        let _ = std::fs::write(&marker, b"shown\n");
        println!("(Each card works in a scratch folder, deleted when the card completes.)\n");
    }
    let mut runtime = crate::policy::PolicyRuntime::new(home);
    for n in 1..=120 {
        let report = tick(home, &board, &mut runtime, TickOptions::default())?;
        let mut said = Vec::new();
        for s in &report.spawned {
            said.push(format!("spawned {} ({})", titles[&s.task_id], s.assignee));
        }
        let lists = [
            ("rate limited", &report.rate_limited),
            ("crashed", &report.crashed),
            ("reclaimed", &report.reclaimed),
            ("breaker tripped", &report.auto_blocked),
        ];
        for (label, ids) in lists {
            for id in ids {
                said.push(format!("{label}: {}", titles[id]));
            }
        }
        for g in &report.respawn_guarded {
            let why = g.reason.split([';', '(']).next().unwrap_or(&g.reason).trim();
            let when = g
                .retry_after
                .map(|t| format!(", retry in {}", clock::span(t - clock::now())))
                .unwrap_or_default();
            said.push(format!("deferred {}: {why}{when}", titles[&g.task_id]));
        }
        if !said.is_empty() {
            println!("tick {n:>3} (+{:>2}s)  {}", began.elapsed().as_secs(), said.join("; "));
        }
        if report.is_idle() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    println!("\nBoard after {}s:\n", began.elapsed().as_secs());
    print!("{}", super::render::task_header());
    for task in store.list_tasks(&TaskFilter::default())? {
        println!("{}", super::render::task_line(&task));
    }
    println!("\nTimeline:\n");
    for event in store.events(None, None)? {
        let Some(task) = &event.task_id else { continue };
        if matches!(event.kind.as_str(), "claim_extended" | "worker_started" | "run_started" | "tip") {
            continue;
        }
        let detail = event
            .payload
            .get("error")
            .or_else(|| event.payload.get("reason"))
            .or_else(|| event.payload.get("note"))
            .or_else(|| event.payload.get("result"))
            .and_then(|v| v.as_str())
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        println!(
            "  +{:>2}s  {:<26} {}{}",
            event.created_at - start,
            titles.get(task).map(String::as_str).unwrap_or(task),
            event.kind,
            detail
        );
    }
    println!(
        "\nInspect it: kanban --board {slug} show ID   |   kanban --board {slug} log ID   |   kanban --board {slug} events"
    );
    Ok(())
}
