//! `kanban import` as a whole process (issue 15): `cargo bench --bench import`.
//!
//! Files of 10,000 and 100,000 cards, every card with a body, a priority and an idempotency key, and every
//! tenth card waiting on the card before it (by line) and on the one before that (by key), so parents are
//! resolved as well. Each sample imports the file into a fresh board, made (with its empty database) outside
//! the timing and removed after it.
//!
//! Sizes with `KANBAN_BENCH_SIZES`, runs with `KANBAN_BENCH_RUNS`. Prints medians and p90s, writes
//! docs/performance.md, asserts nothing.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};

use kanban::board::Home;
use support::{Report, Stats, count, env_sizes, env_usize, run_kanban};

/// A JSON Lines file of `cards` cards.
fn cards_file(dir: &Path, cards: usize) -> PathBuf {
    let path = dir.join(format!("cards-{cards}.jsonl"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for line in 1..=cards {
        let mut card = serde_json::json!({
            "title": format!("card {line}"),
            "body": "A card of the import benchmark, with a body of a sentence or two.",
            "priority": line % 5,
            "idempotency_key": format!("card-{line}"),
        });
        if line % 10 == 0 {
            card["parents"] = serde_json::json!([line - 1, format!("key:card-{}", line - 2)]);
        }
        writeln!(out, "{card}").unwrap();
    }
    out.flush().unwrap();
    path
}

fn main() {
    let sizes = env_sizes("KANBAN_BENCH_SIZES", &[10_000, 100_000]);
    let runs = env_usize("KANBAN_BENCH_RUNS", 5);
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().join("home"))).unwrap();
    let mut report = Report::new(
        "import",
        format!(
            "files of {} cards (a tenth of them with two parents, by line and by key); {runs} runs, each into a \
             fresh board",
            sizes.iter().map(|s| count(*s)).collect::<Vec<_>>().join(" / ")
        ),
    );
    for &cards in &sizes {
        let file = cards_file(dir.path(), cards);
        let samples = (0..runs)
            .map(|run| {
                let slug = format!("import-{cards}-{run}");
                let board = home.create_board(&slug, None, None).unwrap();
                board.open_store().unwrap().close().unwrap();
                let elapsed = run_kanban(home.root(), &["--board", &slug, "import", file.to_str().unwrap()]);
                std::fs::remove_dir_all(&board.dir).unwrap();
                elapsed
            })
            .collect();
        report.row(
            format!("`kanban import` of {} cards into a fresh board (whole process)", count(cards)),
            Stats::of(samples).ms(),
        );
    }
    report.publish();
}
