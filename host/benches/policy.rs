//! Policy runtime benchmark: `cargo bench --bench policy`.
//!
//! - one respawn-guard decision inside a tick (instance reused), per call;
//! - building a card's policy context: read alone, read alone with 10,000 events, and as a tick reads its
//!   candidates (256 together);
//! - plugin cold start: the first call in a fresh engine, with the compiled cache warm on disk and cold;
//! - `kanban dispatch --dry-run` as a whole process, warm and cold cache.
//!
//! Prints medians and writes them into `docs/performance.md`; asserts nothing.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kanban::board::{Board, Home, PolicyKind, write_atomic};
use kanban::model::{CardFacts, Task};
use kanban::policy::runtime::PolicyEngine;
use kanban::policy::{BoardPolicies, Guard, Policy, PolicyContext, context};
use kanban::store::{NewTask, Store, TaskFilter};
use support::{Report, Stats, run_kanban, us};

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
    let board = home.create_board("bench", None, None).unwrap();
    write_atomic(&board.toml_path(), b"[profiles.coder]\ncommand = [\"true\"]\n").unwrap();
    let board = home.open_board("bench").unwrap();
    let mut store = board.open_store().unwrap();
    let now = 1_800_000_000;
    let (task, _) = store
        .create_task(
            &NewTask { title: "bench".into(), assignee: Some("coder".into()), ..NewTask::default() },
            now,
        )
        .unwrap();
    for i in 0..5 {
        store.add_comment(&task.id, Some("bench"), &format!("comment {i}"), now).unwrap();
    }
    let cache = dir.path().join("cache/wasm");
    let mut report = Report::new("policy", "the built-in respawn guard on a board with one ready card");

    // Warm the disk cache, then time a fresh engine's first call against it.
    let mut cold_first = Vec::new();
    let mut warm_first = Vec::new();
    for round in 0..11 {
        if round % 2 == 0 {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let start = Instant::now();
        let mut engine = PolicyEngine::new(Some(cache.clone())).unwrap();
        let mut guard = guard_of(&mut engine, &home, &board);
        let mut ctx = record(&board, &mut store, &task.id, now);
        guard.decide(&engine, &mut ctx).unwrap();
        if round % 2 == 0 { cold_first.push(start.elapsed()) } else { warm_first.push(start.elapsed()) }
    }
    report.row(
        "plugin cold start: first guard call in a fresh engine, compiled cache warm",
        Stats::of(warm_first).ms(),
    );
    report.row(
        "plugin cold start: first guard call in a fresh engine, no cache (compiles)",
        Stats::of(cold_first).ms(),
    );

    // One decision with the instance reused, as inside a tick (context built once, as the tick does per card).
    let mut engine = PolicyEngine::new(Some(cache.clone())).unwrap();
    let mut guard = guard_of(&mut engine, &home, &board);
    let mut ctx = record(&board, &mut store, &task.id, now);
    guard.decide(&engine, &mut ctx).unwrap();
    let batches: Vec<Duration> = (0..21)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..1000 {
                guard.decide(&engine, &mut ctx).unwrap();
            }
            start.elapsed() / 1000
        })
        .collect();
    report.row(
        "policy call overhead: one guard decision, instance reused (per call)",
        us(Stats::of(batches).median),
    );
    // The context is one bounded read (newest 200 events, 20 runs, 50 comments by SQL LIMIT), so its cost
    // must not grow with a card's history: the same rows for a card with 10,000 events.
    let long =
        store.create_task(&NewTask { title: "long history".into(), ..NewTask::default() }, now).unwrap().0;
    {
        let conn = rusqlite::Connection::open(board.db_path()).unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
             INSERT INTO task_events (task_id, kind, payload, created_at) SELECT ?1, 'heartbeat', '{}', ?2 FROM n",
            rusqlite::params![long.id, now],
        )
        .unwrap();
    }
    let alone = |store: &mut Store, id: &str| -> Duration {
        let samples: Vec<Duration> = (0..21)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..100 {
                    record(&board, store, id, now);
                }
                start.elapsed() / 100
            })
            .collect();
        Stats::of(samples).median
    };
    report.row("building a card's policy context, read alone (per card)", us(alone(&mut store, &task.id)));
    report.row(
        "building a card's policy context, read alone, the card has 10,000 events (per card)",
        us(alone(&mut store, &long.id)),
    );
    // As a tick builds them: its candidates' histories read ahead together, 256 at a time.
    let batch: Vec<NewTask> =
        (0..254).map(|i| NewTask { title: format!("card {i}"), ..NewTask::default() }).collect();
    store.create_tasks(&batch, now).unwrap();
    let cards: Vec<Task> = store.list_tasks(&TaskFilter::default()).unwrap();
    let ids: Vec<String> = cards.iter().map(|t| t.id.clone()).collect();
    let together: Vec<Duration> = (0..21)
        .map(|_| {
            let start = Instant::now();
            let mut histories =
                store.card_histories(&ids, context::RUNS, context::EVENTS, context::COMMENTS).unwrap();
            for card in &cards {
                let history = histories.remove(&card.id).unwrap();
                context::record(&board, CardFacts::new(card.clone(), history), &BTreeMap::new(), now);
            }
            start.elapsed() / cards.len() as u32
        })
        .collect();
    report.row(
        format!(
            "building policy contexts as a tick does, {} cards read together, one with 10,000 events (per card)",
            cards.len()
        ),
        us(Stats::of(together).median),
    );
    store.close().unwrap();

    let dispatch = |clear: bool| -> Duration {
        if clear {
            let _ = std::fs::remove_dir_all(&cache);
        }
        run_kanban(dir.path(), &["--board", "bench", "dispatch", "--dry-run", "--json"])
    };
    dispatch(false);
    let warm: Vec<Duration> = (0..11).map(|_| dispatch(false)).collect();
    let cold: Vec<Duration> = (0..5).map(|_| dispatch(true)).collect();
    report
        .row("`kanban dispatch --dry-run`, one ready card, whole process, cache warm", Stats::of(warm).ms());
    report.row("`kanban dispatch --dry-run`, one ready card, whole process, no cache", Stats::of(cold).ms());
    report.publish();
}

/// The board's respawn guard (the built-in default), loaded.
fn guard_of(engine: &mut PolicyEngine, home: &Home, board: &Board) -> Policy<Guard> {
    BoardPolicies::load(engine, home, board, &[PolicyKind::RespawnGuard]).guards.remove(0)
}

/// A card's context record, from one bounded read, as the policy host builds it.
fn record(board: &Board, store: &mut Store, id: &str, now: i64) -> PolicyContext {
    let facts = store.card_facts(id, context::RUNS, context::EVENTS, context::COMMENTS).unwrap();
    context::record(board, facts, &BTreeMap::new(), now)
}
