//! Store claims on both engines: `cargo bench --bench claims`.
//!
//! The store's side of a tick on SQLite (the board's file) and on PostgreSQL (a board schema in the
//! database at `KANBAN_TEST_DATABASE_URL`; `.ci/postgres start DIR` starts a throwaway one): claims per
//! second with one connection and with three claiming the same cards at once (three hosts' ticks, each
//! claiming in batches of 10 under the board's write lock), and the read of the dispatchable cards a tick
//! makes first, at each size of `KANBAN_BENCH_SIZES`. It asserts nothing; it writes its table into
//! `docs/performance.md`. The PostgreSQL rows need the server: without the URL the bench fails, saying so.

mod support;

use std::time::{Duration, Instant};

use kanban::store::{Claim, NewTask, Store};
use support::{Report, Stats, count, env_sizes, env_usize, time};

/// Where a board is opened again, once per connection.
#[derive(Clone)]
enum Engine {
    Sqlite(std::path::PathBuf),
    Postgres(String, String),
}

impl Engine {
    fn open(&self) -> Store {
        match self {
            Engine::Sqlite(path) => Store::open(path).unwrap(),
            Engine::Postgres(url, slug) => Store::open_postgres(url, slug).unwrap(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Engine::Sqlite(_) => "SQLite",
            Engine::Postgres(..) => "PostgreSQL",
        }
    }
}

/// A new board of `cards` ready cards for `coder` on the engine.
fn board(engine: &str, url: &str, dir: &std::path::Path, cards: usize) -> Engine {
    let mut id = [0u8; 6];
    getrandom::fill(&mut id).unwrap();
    let board = match engine {
        "sqlite" => Engine::Sqlite(dir.join(format!("{}.db", hex::encode(id)))),
        _ => Engine::Postgres(url.to_string(), format!("bench_{}", hex::encode(id))),
    };
    let batch: Vec<NewTask> = (0..cards)
        .map(|i| NewTask {
            title: format!("card {i}"),
            assignee: Some("coder".into()),
            priority: (i % 7) as i64,
            ..NewTask::default()
        })
        .collect();
    let mut store = board.open();
    for chunk in batch.chunks(5_000) {
        store.create_tasks(chunk, 1).unwrap();
    }
    board
}

/// Claim every card with `hosts` connections at once; claims per second.
fn claim_rate(board: &Engine, hosts: usize) -> f64 {
    let ids: Vec<String> = board.open().dispatch_candidates().unwrap().into_iter().map(|t| t.id).collect();
    let total = ids.len();
    let began = Instant::now();
    let claimers: Vec<_> = (0..hosts)
        .map(|n| {
            let (board, mut ids) = (board.clone(), ids.clone());
            std::thread::spawn(move || {
                let mut store = board.open();
                let claim = Claim { lock: format!("bench{n}:1"), host: format!("bench{n}") };
                let start = n * ids.len() / hosts;
                ids.rotate_left(start);
                let mut won = 0;
                for batch in ids.chunks(10) {
                    let cards: Vec<(String, String)> =
                        batch.iter().map(|id| (id.clone(), "coder".to_string())).collect();
                    won += store.claim_cards(&cards, &claim, 60, 2).unwrap().iter().flatten().count();
                }
                won
            })
        })
        .collect();
    let won: usize = claimers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(won, total, "every card claimed exactly once");
    total as f64 / began.elapsed().as_secs_f64()
}

fn main() {
    let cards = env_usize("KANBAN_BENCH_CARDS", 2_000);
    let sizes = env_sizes("KANBAN_BENCH_SIZES", &[1_000, 10_000, 100_000]);
    let runs = env_usize("KANBAN_BENCH_RUNS", 5);
    let url = support::database_url();
    let dir = tempfile::tempdir().unwrap();
    let mut report = Report::new(
        "claims",
        format!(
            "{} ready cards claimed in batches of 10; candidate reads at {} cards, {runs} runs; PostgreSQL \
             15 on 127.0.0.1 (`fsync=off`, as `.ci/postgres` starts it)",
            count(cards),
            sizes.iter().map(|n| count(*n)).collect::<Vec<_>>().join(" / ")
        ),
    );
    for (engine, hosts) in [("sqlite", 1), ("postgres", 1), ("postgres", 3)] {
        let board = board(engine, &url, dir.path(), cards);
        let rate = claim_rate(&board, hosts);
        let who =
            if hosts == 1 { "1 connection".to_string() } else { format!("{hosts} connections at once") };
        report.row(
            format!("{}: claims per second, {who} (library)", board.name()),
            format!("{rate:.0} claims/s"),
        );
    }
    for &size in &sizes {
        for engine in ["sqlite", "postgres"] {
            let board = board(engine, &url, dir.path(), size);
            let mut store = board.open();
            let samples: Vec<Duration> =
                (0..runs).map(|_| time(|| store.dispatch_candidates().unwrap()).0).collect();
            report.row(
                format!(
                    "{}: read the dispatchable cards of {} (a tick's first read)",
                    board.name(),
                    count(size)
                ),
                Stats::of(samples).ms(),
            );
        }
    }
    report.publish();
}
