//! The tick's recurring step (issue 15, item 3): `cargo bench --bench recurring`.
//!
//! A board with 1,000 hourly schedules, in process, through the step the tick runs
//! ([`kanban::ops::recurring::run_due`]): with none due (every tick of every board pays this; one probe of
//! the `next_at` index), and with all 1,000 due at once (1,000 cards created, each schedule advanced, in one
//! transaction). Every hour the schedules are all due again, so one board serves every run; the cards pile
//! up as they would on a real board.
//!
//! Sizes (schedules) with `KANBAN_BENCH_SIZES`, runs with `KANBAN_BENCH_RUNS`. Prints medians and p90s,
//! writes docs/performance.md (unless `KANBAN_BENCH_DOCS=0`), asserts only that each run did what it
//! measures.

mod support;

use kanban::board::Home;
use kanban::model::{CatchUp, Template};
use kanban::ops::Desk;
use kanban::store::NewSchedule;
use support::{Report, Stats, count, env_sizes, env_usize, time, us};

const HOUR: i64 = 3600;
const START: i64 = 1_800_000_000 - 1_800_000_000 % HOUR;

fn main() {
    let sizes = env_sizes("KANBAN_BENCH_SIZES", &[1_000]);
    let runs = env_usize("KANBAN_BENCH_RUNS", 10);
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().join("home"))).unwrap();
    let mut report = Report::new(
        "recurring",
        format!(
            "boards of {} hourly schedules, the tick's recurring step in process; {runs} runs",
            sizes.iter().map(|s| count(*s)).collect::<Vec<_>>().join(" / ")
        ),
    );
    for &schedules in &sizes {
        let board = home.create_board(&format!("recurring-{schedules}"), None, None).unwrap();
        let mut store = board.open_store().unwrap();
        for i in 0..schedules {
            let new = NewSchedule {
                cron: "0 * * * *".into(),
                tz: "Europe/Berlin".into(),
                catch_up: CatchUp::Latest,
                skip_if_open: i % 2 == 0,
                card: Template {
                    title: format!("hourly {i}"),
                    priority: (i % 5) as i64,
                    ..Template::default()
                },
                next_at: START + HOUR,
                created_by: None,
            };
            store.add_schedule(&new, START).unwrap();
        }
        let mut desk = Desk::new(&board, &mut store, "bench-host");
        let (mut idle, mut due) = (Vec::new(), Vec::new());
        for run in 0..runs as i64 {
            let hour = START + (run + 1) * HOUR;
            let (elapsed, none) =
                time(|| kanban::ops::recurring::run_due(&mut desk, hour - 60, false).unwrap());
            assert!(none.is_empty());
            idle.push(elapsed);
            let (elapsed, fired) = time(|| kanban::ops::recurring::run_due(&mut desk, hour, false).unwrap());
            assert_eq!(fired.len(), schedules);
            due.push(elapsed);
        }
        let (idle, due) = (Stats::of(idle), Stats::of(due));
        report.row(
            format!("recurring step, {} schedules, none due", count(schedules)),
            format!("median {}, p90 {}", us(idle.median), us(idle.p90)),
        );
        report.row(
            format!(
                "recurring step, {} schedules, all due ({} cards created)",
                count(schedules),
                count(schedules)
            ),
            due.ms(),
        );
    }
    report.publish();
}
