//! The rows issue 11 names: `cargo bench --bench house`.
//!
//! - `kanban list --json` as a whole process on boards of 10,000 and 100,000 cards (rows stream to the
//!   writer; no per-card queries);
//! - a dry-run tick on 100,000 cards with 10,000 ready and `max_in_progress = 10000`, so every ready card
//!   goes through the WASM respawn guard (the context built once per card from one bounded read), in
//!   process and as a whole process;
//! - a real tick that claims and starts 100 workers, as a whole process (the workers complete their cards;
//!   the bench waits for them and requeues the cards between samples, outside the timing).
//!
//! Sizes shrink with `KANBAN_BENCH_SIZES` (the list boards; the tick board uses the largest and a tenth of
//! it ready) and `KANBAN_BENCH_WORKERS`; runs with `KANBAN_BENCH_RUNS`. Prints medians and p90s, writes
//! docs/performance.md, asserts nothing.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use kanban::board::{Home, write_atomic};
use kanban::dispatch::{TickOptions, tick};
use kanban::store::NewTask;
use support::{Report, Stats, count, env_sizes, env_usize, run_kanban, time};

fn board_with(home: &Home, slug: &str, toml: &str, cards: usize, ready_every: usize) -> kanban::board::Board {
    let board = home.create_board(slug, None, None).unwrap();
    write_atomic(&board.toml_path(), toml.as_bytes()).unwrap();
    let board = home.open_board(slug).unwrap();
    let mut store = board.open_store().unwrap();
    for chunk in (0..cards).collect::<Vec<_>>().chunks(10_000) {
        let batch: Vec<NewTask> = chunk
            .iter()
            .map(|i| NewTask {
                title: format!("card {i}"),
                body: "A card of the benchmark board.".into(),
                assignee: Some("coder".into()),
                priority: (*i % 5) as i64,
                ..NewTask::default()
            })
            .collect();
        store.create_tasks(&batch, 1_800_000_000).unwrap();
    }
    store.close().unwrap();
    let conn = rusqlite::Connection::open(board.db_path()).unwrap();
    conn.execute(&format!("UPDATE tasks SET status = 'done' WHERE rowid % {ready_every} <> 0"), []).unwrap();
    board
}

fn running(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM tasks WHERE status = 'running'", [], |r| r.get(0)).unwrap()
}

const COMPLETES: &str =
    "command = [\"sh\", \"-c\", \"exec \\\"$KANBAN_BIN\\\" complete \\\"$KANBAN_TASK\\\"\"]";

fn main() {
    let sizes = env_sizes("KANBAN_BENCH_SIZES", &[10_000, 100_000]);
    let runs = env_usize("KANBAN_BENCH_RUNS", 11);
    let workers = env_usize("KANBAN_BENCH_WORKERS", 100);
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
    let largest = *sizes.iter().max().unwrap();
    let mut report = Report::new(
        "house",
        format!(
            "boards of {} cards; the tick board has {} cards with {} ready and `max_in_progress` {}; {runs} runs",
            sizes.iter().map(|s| count(*s)).collect::<Vec<_>>().join(" / "),
            count(largest),
            count(largest / 10),
            count(largest / 10)
        ),
    );

    for &total in &sizes {
        let slug = format!("list{total}");
        board_with(&home, &slug, "", total, 1);
        let samples: Vec<Duration> =
            (0..runs).map(|_| run_kanban(dir.path(), &["--board", &slug, "list", "--json"])).collect();
        report.row(
            format!("`kanban list --json`, {} cards (whole process)", count(total)),
            Stats::of(samples).ms(),
        );
    }

    // Every ready card through the guard: the cap is the number of ready cards.
    let ready = largest / 10;
    let toml = format!(
        "[dispatch]\nmax_in_progress = {ready}\n\n[profiles.coder]\n{COMPLETES}\nenv = {{ KANBAN_BIN = {:?} }}\n\n\
         [[policies]]\nkind = \"respawn-guard\"\nplugin = \"builtin:respawn-guard\"\n",
        env!("CARGO_BIN_EXE_kanban")
    );
    let board = board_with(&home, "tick", &toml, largest, 10);
    let mut runtime = kanban::policy::PolicyRuntime::new(&home);
    let options = TickOptions { dry_run: true, wait: false };
    tick(&home, &board, &mut runtime, options).unwrap(); // compiles the guard once
    let in_process: Vec<Duration> = (0..runs)
        .map(|_| {
            let (elapsed, report) = time(|| tick(&home, &board, &mut runtime, options).unwrap());
            assert_eq!(report.spawned.len(), ready, "every ready card is planned");
            elapsed
        })
        .collect();
    report.row(
        format!(
            "dry-run tick, {} cards, {} ready, each through the WASM guard (in process)",
            count(largest),
            count(ready)
        ),
        Stats::of(in_process).ms(),
    );
    let whole: Vec<Duration> = (0..runs)
        .map(|_| run_kanban(dir.path(), &["--board", "tick", "dispatch", "--dry-run", "--json"]))
        .collect();
    report.row(
        format!(
            "`kanban dispatch --dry-run --json`, {} cards, {} ready through the guard (whole process)",
            count(largest),
            count(ready)
        ),
        Stats::of(whole).ms(),
    );

    // A real tick that claims and starts `workers` workers.
    let toml = format!(
        "[dispatch]\nmax_in_progress = {workers}\n\n[profiles.coder]\n{COMPLETES}\nenv = {{ KANBAN_BIN = {:?} }}\n\n\
         [[policies]]\nkind = \"respawn-guard\"\nplugin = \"builtin:respawn-guard\"\n[policies.config]\nrecent_success_seconds = 0\n",
        env!("CARGO_BIN_EXE_kanban")
    );
    let board = board_with(&home, "spawn", &toml, workers, 1);
    let db = board.db_path();
    let real: Vec<Duration> = (0..runs)
        .map(|_| {
            let elapsed = run_kanban(dir.path(), &["--board", "spawn", "dispatch", "--json"]);
            let deadline = Instant::now() + Duration::from_secs(120);
            while running(&db) > 0 {
                assert!(Instant::now() < deadline, "workers did not finish within two minutes");
                std::thread::sleep(Duration::from_millis(20));
            }
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute("UPDATE tasks SET status = 'ready', result = NULL, completed_at = NULL", [])
                .unwrap();
            elapsed
        })
        .collect();
    report.row(
        format!("`kanban dispatch --json` claiming and starting {workers} workers (whole process)"),
        Stats::of(real).ms(),
    );
    report.publish();
    if std::env::var_os("KANBAN_BENCH_KEEP").is_some() {
        eprintln!("boards kept in {}", dir.keep().display()); // for profiling by hand
    }
}
