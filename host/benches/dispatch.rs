//! Dispatcher tick benchmark: `cargo bench --bench dispatch`.
//!
//! A board with `KANBAN_BENCH_TOTAL` cards (default 100,000), of which every tenth (10,000) is ready and
//! assigned to a profile, the rest done. Times a dry-run tick (the whole tick: running-card walk, ready
//! recomputation, spawn planning with caps and the respawn guard) in-process, and `kanban dispatch
//! --dry-run --json` as a whole process. Prints medians; asserts nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use kanban::board::{Home, write_atomic};
use kanban::dispatch::{TickOptions, tick};
use kanban::store::NewTask;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let total = env_usize("KANBAN_BENCH_TOTAL", 100_000);
    let runs = env_usize("KANBAN_BENCH_RUNS", 21);
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
    let board = home.create_board("bench", None, None).unwrap();
    write_atomic(&board.toml_path(), b"[profiles.coder]\ncommand = [\"true\"]\n").unwrap();
    let board = home.open_board("bench").unwrap();
    let mut store = board.open_store().unwrap();
    let now = 1_800_000_000;
    let setup = Instant::now();
    for chunk in (0..total).collect::<Vec<_>>().chunks(10_000) {
        let batch: Vec<NewTask> = chunk
            .iter()
            .map(|i| NewTask {
                title: format!("card {i}"),
                assignee: Some("coder".into()),
                priority: (*i % 5) as i64,
                ..NewTask::default()
            })
            .collect();
        store.create_tasks(&batch, now).unwrap();
    }
    store.close().unwrap();
    // Leave every tenth card ready; the rest are done.
    let conn = rusqlite::Connection::open(board.db_path()).unwrap();
    conn.execute_batch("UPDATE tasks SET status = 'done' WHERE rowid % 10 <> 0").unwrap();
    drop(conn);
    println!(
        "dispatch benchmark: {total} cards, {} ready (setup {:.1} s)\n",
        total / 10,
        setup.elapsed().as_secs_f64()
    );
    println!("| measurement | median |");
    println!("|---|---|");

    let options = TickOptions { dry_run: true, wait: false };
    let mut runtime = kanban::policy::PolicyRuntime::new(&home);
    let in_process: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let report = tick(&home, &board, &mut runtime, options, now).unwrap();
            assert_eq!(report.spawned.len(), 8, "max_in_progress defaults to 8");
            start.elapsed()
        })
        .collect();
    println!("| dry-run tick, in process | {:.1} ms |", median(in_process).as_secs_f64() * 1000.0);

    let process: Vec<Duration> = (0..runs.min(11))
        .map(|_| {
            let start = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_kanban"))
                .arg("--home")
                .arg(dir.path())
                .args(["--board", "bench", "dispatch", "--dry-run", "--json"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            start.elapsed()
        })
        .collect();
    println!(
        "| kanban dispatch --dry-run --json (process) | {:.1} ms |",
        median(process).as_secs_f64() * 1000.0
    );
}
