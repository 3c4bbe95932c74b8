//! Store benchmark: `cargo bench --bench store`.
//!
//! Creates 10,000 cards through the library (one transaction each, and in one batch), then times `kanban
//! show`, `heartbeat`, `complete` and `list` as whole processes against that board, the way workers and
//! scripts call them. Prints medians and p90s; it asserts nothing (this machine is shared and noisy).
//! `KANBAN_BENCH_CARDS` and `KANBAN_BENCH_RUNS` shrink or grow it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kanban::board::Home;
use kanban::store::{NewTask, TaskFilter};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 9 / 10])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn run_kanban(home: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kanban"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("KANBAN_BOARD")
        .output()
        .expect("run kanban");
    let elapsed = start.elapsed();
    assert!(out.status.success(), "kanban {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    elapsed
}

fn main() {
    let cards = env_usize("KANBAN_BENCH_CARDS", 10_000);
    let runs = env_usize("KANBAN_BENCH_RUNS", 31);
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
    let board = home.create_board("bench", None, None).unwrap();
    let mut store = board.open_store().unwrap();
    let now = 1_800_000_000;

    println!("kanban store benchmark: {cards} cards, {runs} runs per command\n");
    println!("| measurement | result |");
    println!("|---|---|");

    let start = Instant::now();
    for i in 0..cards {
        let new = NewTask {
            title: format!("card {i}"),
            body: "Benchmark card body.".into(),
            assignee: Some("coder".into()),
            priority: (i % 7) as i64,
            // Every 10th card is running so heartbeat/complete have realistic targets.
            initial_status: (i % 10 == 0).then(|| "running".to_string()),
            ..NewTask::default()
        };
        store.create_task(&new, now).unwrap();
    }
    let per_tx = start.elapsed();
    println!(
        "| create {cards} cards, one transaction each (library) | {:.2} s ({:.0} µs/card) |",
        per_tx.as_secs_f64(),
        per_tx.as_secs_f64() * 1e6 / cards as f64
    );

    let batch: Vec<NewTask> =
        (0..cards).map(|i| NewTask { title: format!("batch card {i}"), ..NewTask::default() }).collect();
    let start = Instant::now();
    store.create_tasks(&batch, now).unwrap();
    let batched = start.elapsed();
    println!("| create {cards} cards in one transaction (library) | {:.2} s |", batched.as_secs_f64());

    let start = Instant::now();
    let listed = store.list_tasks(&TaskFilter::default()).unwrap().len();
    println!("| list {listed} cards (library) | {} |", ms(start.elapsed()));

    let running: Vec<String> = store
        .list_tasks(&TaskFilter { status: Some("running".into()), ..TaskFilter::default() })
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    store.close().unwrap();
    let home = dir.path();
    let target = running[0].clone();

    let show: Vec<Duration> =
        (0..runs).map(|_| run_kanban(home, &["--board", "bench", "show", &target, "--json"])).collect();
    let heartbeat: Vec<Duration> =
        (0..runs).map(|_| run_kanban(home, &["--board", "bench", "heartbeat", &target])).collect();
    let complete: Vec<Duration> = running
        .iter()
        .skip(1)
        .take(runs)
        .map(|id| run_kanban(home, &["--board", "bench", "complete", id]))
        .collect();
    let list: Vec<Duration> = (0..5.min(runs))
        .map(|_| run_kanban(home, &["--board", "bench", "list", "--status", "running", "--json"]))
        .collect();
    for (name, samples) in [
        ("kanban show (process)", show),
        ("kanban heartbeat (process)", heartbeat),
        ("kanban complete (process)", complete),
        ("kanban list --status running --json (process)", list),
    ] {
        let (median, p90) = stats(samples);
        println!("| {name} | median {}, p90 {} |", ms(median), ms(p90));
    }
}
