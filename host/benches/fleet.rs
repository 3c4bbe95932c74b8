//! Fleet benchmark: `cargo bench --bench fleet`.
//!
//! One board of `KANBAN_BENCH_CARDS` ready cards (default 1,000) whose worker completes its card at once
//! (`exec kanban complete`), `max_in_progress` 8. First one host's `kanban daemon --interval 0.05` works
//! them all; then as many new cards are worked by three hosts at once (three homes, each with its own host id,
//! sharing the board's folder, as the fleet tests do). Measures cards claimed, run and completed per second,
//! and each daemon's resident memory while busy and once idle. Then the same on a board kept in PostgreSQL
//! (the server at `KANBAN_TEST_DATABASE_URL`; each host's home joins the board with the URL). Asserts only
//! that every card was done once.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kanban::board::{Board, Home, write_atomic};
use kanban::store::NewTask;
use support::{Report, count, env_usize, memory_kib};

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// `N per second (C cards in S s)`.
fn rate(cards: usize, took: Duration) -> String {
    format!(
        "{:.1} ({} cards in {:.1} s)",
        cards as f64 / took.as_secs_f64(),
        count(cards),
        took.as_secs_f64()
    )
}

fn daemon(home: &Path, slug: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kanban"))
        .arg("--home")
        .arg(home)
        .args(["--board", slug, "daemon", "--interval", "0.05"])
        .env_remove("KANBAN_BOARD")
        .env_remove("KANBAN_NOW")
        .env_remove("KANBAN_HOME")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a daemon")
}

/// A count over the board's cards, through a connection of the bench's own.
fn count_cards(board: &Board, sql: &str) -> i64 {
    match &board.database {
        Some(url) => support::pg_board(url, &board.slug).query_one(sql, &[]).unwrap().get(0),
        None => {
            let conn = rusqlite::Connection::open(board.db_path()).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            conn.query_row(sql, [], |r| r.get(0)).unwrap()
        }
    }
}

fn done(board: &Board) -> i64 {
    count_cards(board, "SELECT count(*) FROM tasks WHERE status = 'done'")
}

/// Start `hosts` daemons and wait until `target` cards are done; the elapsed time and each daemon's peak
/// resident memory while working.
fn work(homes: &[&Path], board: &Board, target: i64) -> (Duration, Vec<Child>, Vec<u64>) {
    let started = Instant::now();
    let daemons: Vec<Child> = homes.iter().map(|h| daemon(h, &board.slug)).collect();
    let mut busy = vec![0u64; daemons.len()];
    let limit = started + Duration::from_secs(600);
    while done(board) < target {
        assert!(Instant::now() < limit, "the cards were not all done in 10 minutes");
        for (d, most) in daemons.iter().zip(&mut busy) {
            if let Some((rss, _)) = memory_kib(d.id()) {
                *most = (*most).max(rss);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (started.elapsed(), daemons, busy)
}

fn stop(daemons: Vec<Child>) -> Vec<u64> {
    std::thread::sleep(Duration::from_secs(1)); // idle ticks
    let idle = daemons.iter().map(|d| memory_kib(d.id()).map(|(rss, _)| rss).unwrap_or(0)).collect();
    for mut d in daemons {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(d.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        d.wait().unwrap();
    }
    idle
}

fn add_cards(board: &Board, cards: usize, batch: usize) {
    let mut store = board.open_store().unwrap();
    let tasks: Vec<NewTask> = (0..cards)
        .map(|i| NewTask {
            title: format!("batch {batch} card {i}"),
            assignee: Some("coder".into()),
            ..NewTask::default()
        })
        .collect();
    store.create_tasks(&tasks, kanban::clock::now()).unwrap();
    store.close().unwrap();
}

fn main() {
    let cards = env_usize("KANBAN_BENCH_CARDS", 1_000);
    let url = support::database_url();
    let mut report = Report::new(
        "fleet",
        format!(
            "{} ready cards a phase whose worker completes at once, `max_in_progress` 8, `kanban daemon \
             --interval 0.05` on 1 host, then on 3 hosts (homes of their own): a SQLite board whose folder \
             they share, then a board kept in PostgreSQL 15 on 127.0.0.1 (`fsync=off`, as `.ci/postgres` \
             starts it)",
            count(cards)
        ),
    );
    for engine in [None, Some(url.as_str())] {
        let name = if engine.is_some() { "PostgreSQL" } else { "SQLite" };
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let homes: Vec<Home> =
            dirs.iter().map(|d| Home::resolve(Some(d.path().to_path_buf())).unwrap()).collect();
        let slug = match engine {
            Some(_) => support::fresh_slug("bench"),
            None => "bench".to_string(),
        };
        let board = homes[0].create_board_in(&slug, None, None, engine).unwrap();
        let toml = format!(
            "[dispatch]\nmax_in_progress = 8\n\n\
             [profiles.coder]\ncommand = [\"sh\", \"-c\", \"exec \\\"$KANBAN_BIN\\\" complete \\\"$KANBAN_TASK\\\" > /dev/null\"]\n\
             env = {{ KANBAN_BIN = {:?} }}\n",
            env!("CARGO_BIN_EXE_kanban")
        );
        write_atomic(&board.toml_path(), toml.as_bytes()).unwrap();
        // The edit reaches the database at the board's next load (a PostgreSQL board's hosts take it there).
        let board = homes[0].open_board(&slug).unwrap();
        for (dir, home) in dirs.iter().zip(&homes).skip(1) {
            match engine {
                Some(_) => drop(home.create_board_in(&slug, None, None, engine).unwrap()),
                None => {
                    std::fs::create_dir_all(dir.path().join("boards")).unwrap();
                    std::os::unix::fs::symlink(&board.dir, dir.path().join("boards").join(&slug)).unwrap();
                }
            }
        }

        add_cards(&board, cards, 1);
        let (one, daemons, busy) = work(&[dirs[0].path()], &board, cards as i64);
        let idle = stop(daemons);
        report.row(format!("cards claimed, run and completed per second, {name}, 1 host"), rate(cards, one));
        report.row(
            format!("daemon resident memory, {name}, 1 host, busy (peak) / idle"),
            format!("{} / {}", mib(busy[0]), mib(idle[0])),
        );

        add_cards(&board, cards, 2);
        let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
        let (three, daemons, busy) = work(&paths, &board, 2 * cards as i64);
        let idle = stop(daemons);
        report
            .row(format!("cards claimed, run and completed per second, {name}, 3 hosts"), rate(cards, three));
        let most = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
        report.row(
            format!(
                "daemon resident memory per host, {name}, 3 hosts, busy (peak) / idle (largest of the three)"
            ),
            format!("{} / {}", mib(most(&busy)), mib(most(&idle))),
        );
        let runs = count_cards(&board, "SELECT count(*) FROM task_runs");
        assert_eq!(runs, 2 * cards as i64, "every card ran exactly once");
    }
    report.publish();
}
