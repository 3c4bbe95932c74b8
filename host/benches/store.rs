//! Store benchmark: `cargo bench --bench store`.
//!
//! Creates 10,000 cards through the library (one transaction each, which gives the commit rate under
//! `synchronous=FULL`, and in one batch), then times `kanban show`, `heartbeat`, `complete` and `list` as
//! whole processes against that board, the way workers and scripts call them, then `kanban gc` over ten
//! old heartbeat events per card. Prints medians and p90s and
//! writes them into `docs/performance.md`; it asserts nothing (this machine is shared and noisy).
//! `KANBAN_BENCH_CARDS` and `KANBAN_BENCH_RUNS` shrink or grow it.

mod support;

use std::time::Duration;

use kanban::board::Home;
use kanban::store::{NewTask, TaskFilter};
use support::{Report, Stats, count, env_usize, ms, run_kanban, time};

fn main() {
    let cards = env_usize("KANBAN_BENCH_CARDS", 10_000);
    let runs = env_usize("KANBAN_BENCH_RUNS", 31);
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
    let board = home.create_board("bench", None, None).unwrap();
    let mut store = board.open_store().unwrap();
    let now = 1_800_000_000;
    let mut report =
        Report::new("store", format!("a board of {} cards, {runs} runs per command", count(cards)));

    let (per_tx, ()) = time(|| {
        for i in 0..cards {
            let new = NewTask {
                title: format!("card {i}"),
                body: "Benchmark card body.".into(),
                assignee: Some("coder".into()),
                priority: (i % 7) as i64,
                // Every 10th card is running so heartbeat/complete have realistic targets.
                initial_status: (i % 10 == 0).then_some(kanban::model::Status::Running),
                ..NewTask::default()
            };
            store.create_task(&new, now).unwrap();
        }
    });
    report.row(
        "SQLite commit rate, `synchronous=FULL` (one card and its event per transaction, library)",
        format!(
            "{:.0} commits/s ({:.0} µs each)",
            cards as f64 / per_tx.as_secs_f64(),
            per_tx.as_secs_f64() * 1e6 / cards as f64
        ),
    );
    report.row(
        format!("create {} cards, one transaction each (library)", count(cards)),
        format!("{:.2} s", per_tx.as_secs_f64()),
    );

    let batch: Vec<NewTask> =
        (0..cards).map(|i| NewTask { title: format!("batch card {i}"), ..NewTask::default() }).collect();
    let (batched, _) = time(|| store.create_tasks(&batch, now).unwrap());
    report.row(
        format!("create {} cards in one transaction (library)", count(cards)),
        format!("{:.2} s", batched.as_secs_f64()),
    );

    let (listing, listed) = time(|| store.list_tasks(&TaskFilter::default()).unwrap().len());
    report.row(format!("list all {} cards (library)", count(listed)), ms(listing));

    let running: Vec<String> = store
        .list_tasks(&TaskFilter { status: Some(kanban::model::Status::Running), ..TaskFilter::default() })
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
        ("`kanban show ID --json` (whole process)", show),
        ("`kanban heartbeat ID` (whole process)", heartbeat),
        ("`kanban complete ID` (whole process)", complete),
        ("`kanban list --status running --json` (whole process)", list),
    ] {
        report.row(name, Stats::of(samples).ms());
    }
    gc(&mut report, &board.db_path(), home, cards * 10, runs.min(5));
    report.publish();
}

/// `kanban gc` on the same board after `old` heartbeats from 40 days ago were added (ten per card by
/// default): the dry run, the real run that deletes them, and the nightly run that finds nothing.
fn gc(report: &mut Report, db: &std::path::Path, home: &std::path::Path, old: usize, runs: usize) {
    let real_now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO task_events (task_id, kind, payload, created_at) \
                 SELECT id, 'heartbeat', '{\"note\":null}', ?1 FROM tasks LIMIT 1 OFFSET ?2",
            )
            .unwrap();
        for i in 0..old {
            insert.execute(rusqlite::params![real_now - 40 * 86_400, (i % 1000) as i64]).unwrap();
        }
    }
    tx.commit().unwrap();
    conn.close().unwrap();

    let gc = ["--board", "bench", "gc", "--json"];
    let dry: Vec<Duration> =
        (0..runs).map(|_| run_kanban(home, &["--board", "bench", "gc", "--dry-run"])).collect();
    report.row(
        format!("`kanban gc --dry-run` with {} old events to prune (whole process)", count(old)),
        Stats::of(dry).ms(),
    );
    let real = run_kanban(home, &gc);
    report.row(format!("`kanban gc` deleting {} old events (whole process, once)", count(old)), ms(real));
    let idle: Vec<Duration> = (0..runs).map(|_| run_kanban(home, &gc)).collect();
    report.row("`kanban gc` with nothing to prune (whole process)", Stats::of(idle).ms());
}
