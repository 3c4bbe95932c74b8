//! Dispatcher tick benchmark: `cargo bench --bench dispatch`.
//!
//! For each board size in `KANBAN_BENCH_SIZES` (default 1,000, 10,000 and 100,000 cards), a board where every
//! tenth card is ready and assigned to a profile and the rest are done, with the built-in respawn guard and
//! default-assignee router turned on. Times:
//! - a dry-run tick in process (the whole tick: running-card walk, ready recomputation, spawn planning with
//!   caps and the respawn guard);
//! - `kanban dispatch --dry-run --json` as a whole process;
//! - `kanban dispatch --json` for real as a whole process: it spawns 8 supervised workers (each runs
//!   `kanban complete` and exits; the bench waits for them between samples, outside the timing).
//!
//! Then the same on boards kept in PostgreSQL (the server at `KANBAN_TEST_DATABASE_URL`; without it the
//! bench fails, saying so).
//!
//! Prints medians and p90s and writes them into `docs/performance.md`; asserts nothing.

mod support;

use std::time::{Duration, Instant};

use kanban::board::{Home, write_atomic};
use kanban::dispatch::{TickOptions, tick};
use kanban::store::NewTask;
use support::{Report, Stats, count, env_sizes, env_usize, run_kanban, time};

/// Where a board's cards are, and a connection of the bench's own to them (the bench must not disturb
/// what it measures).
enum Cards {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

impl Cards {
    fn of(board: &kanban::board::Board) -> Cards {
        match &board.database {
            Some(url) => Cards::Postgres(support::pg_board(url, &board.slug)),
            None => Cards::Sqlite(rusqlite::Connection::open(board.db_path()).unwrap()),
        }
    }

    fn execute(&mut self, sql: &str) {
        match self {
            Cards::Sqlite(conn) => conn.execute_batch(sql).unwrap(),
            Cards::Postgres(client) => client.batch_execute(sql).unwrap(),
        }
    }

    fn count(&mut self, sql: &str) -> i64 {
        match self {
            Cards::Sqlite(conn) => conn.query_row(sql, [], |r| r.get(0)).unwrap(),
            Cards::Postgres(client) => client.query_one(sql, &[]).unwrap().get(0),
        }
    }

    fn running(&mut self) -> i64 {
        self.count("SELECT count(*) FROM tasks WHERE status = 'running'")
    }
}

/// Workers that have not completed their cards within a minute: print what their logs say, then fail.
fn stuck(board: &kanban::board::Board) -> ! {
    let mut store = board.open_store().unwrap();
    let filter =
        kanban::store::TaskFilter { status: Some(kanban::model::Status::Running), ..Default::default() };
    let ids: Vec<String> = store.list_tasks(&filter).unwrap().into_iter().map(|t| t.id).collect();
    for id in &ids {
        let log =
            std::fs::read_to_string(board.dir.join("logs").join(format!("{id}.log"))).unwrap_or_default();
        eprintln!("== {id} is still running; its log:\n{log}");
    }
    panic!("{} workers did not complete their cards within 60 s", ids.len());
}

/// Board config: one profile whose worker completes its card, the built-in guard and router.
fn board_toml() -> String {
    format!(
        "[profiles.coder]\ncommand = [\"sh\", \"-c\", \"exec \\\"$KANBAN_BIN\\\" complete \\\"$KANBAN_TASK\\\" --result ok\"]\n\
         env = {{ KANBAN_BIN = {:?} }}\n\n\
         [[policies]]\nkind = \"respawn-guard\"\nplugin = \"builtin:respawn-guard\"\n\n\
         [[policies]]\nkind = \"routing\"\nplugin = \"builtin:default-assignee\"\n[policies.config]\nassignee = \"coder\"\n",
        env!("CARGO_BIN_EXE_kanban")
    )
}

fn main() {
    let sizes = env_sizes("KANBAN_BENCH_SIZES", &[1_000, 10_000, 100_000]);
    let runs = env_usize("KANBAN_BENCH_RUNS", 21);
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
    let now = 1_800_000_000;
    let url = support::database_url();
    let mut report = Report::new(
        "dispatch",
        format!(
            "boards of {} cards, a tenth of them ready and assigned, the rest done; built-in respawn guard and \
             router on; `max_in_progress` 8; {runs} runs in process, {} as processes; on SQLite, then on \
             PostgreSQL 15 on 127.0.0.1 (`fsync=off`, as `.ci/postgres` starts it)",
            sizes.iter().map(|s| count(*s)).collect::<Vec<_>>().join(" / "),
            runs.min(11)
        ),
    );
    for (engine, &total) in
        [None, Some(url.as_str())].into_iter().flat_map(|e| sizes.iter().map(move |s| (e, s)))
    {
        // The SQLite rows keep their names; the PostgreSQL rows say so.
        let on = if engine.is_some() { "PostgreSQL: " } else { "" };
        let slug = match engine {
            Some(_) => support::fresh_slug(&format!("b{total}")),
            None => format!("b{total}"),
        };
        let board = home.create_board_in(&slug, None, None, engine).unwrap();
        write_atomic(&board.toml_path(), board_toml().as_bytes()).unwrap();
        let board = home.open_board(&slug).unwrap();
        let mut store = board.open_store().unwrap();
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
        let mut cards = Cards::of(&board);
        cards.execute("UPDATE tasks SET status = 'done' WHERE rowid % 10 <> 0");
        eprintln!("{on}board of {total} cards set up in {:.1} s", setup.elapsed().as_secs_f64());

        let options = TickOptions { dry_run: true, wait: false };
        let mut runtime = kanban::policy::PolicyRuntime::new(&home);
        // The first tick compiles the built-in components; it is not what a daemon pays per tick.
        tick(&home, &board, &mut runtime, options).unwrap();
        let in_process: Vec<Duration> = (0..runs)
            .map(|_| {
                let (elapsed, report) = time(|| tick(&home, &board, &mut runtime, options).unwrap());
                assert_eq!(report.spawned.len(), 8, "max_in_progress defaults to 8");
                elapsed
            })
            .collect();
        report
            .row(format!("{on}dry-run tick, in process, {} cards", count(total)), Stats::of(in_process).ms());

        let args = ["--board", slug.as_str(), "dispatch", "--dry-run", "--json"];
        let dry: Vec<Duration> = (0..runs.min(11)).map(|_| run_kanban(dir.path(), &args)).collect();
        report.row(
            format!("{on}`kanban dispatch --dry-run --json`, {} cards", count(total)),
            Stats::of(dry).ms(),
        );

        let args = ["--board", slug.as_str(), "dispatch", "--json"];
        let real: Vec<Duration> = (0..runs.min(11))
            .map(|_| {
                let elapsed = run_kanban(dir.path(), &args);
                // Wait (untimed) for the 8 workers to complete their cards, so every sample settles 8 and
                // spawns 8.
                let deadline = Instant::now() + Duration::from_secs(60);
                while cards.running() > 0 {
                    if Instant::now() > deadline {
                        stuck(&board);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                elapsed
            })
            .collect();
        report.row(
            format!(
                "{on}`kanban dispatch --json` for real (spawns 8 supervised workers), {} cards",
                count(total)
            ),
            Stats::of(real).ms(),
        );
    }
    report.publish();
}
