//! Daemon memory benchmark: `cargo bench --bench daemon`.
//!
//! Five boards of `KANBAN_BENCH_CARDS` cards each (default 2,000, all done), each with a worker profile and
//! the built-in respawn guard and router turned on. A `kanban daemon --interval 0.1` ticks them all for
//! `KANBAN_BENCH_SECONDS` (default 5 s) while the bench samples its resident memory from `/proc`. Then one
//! card is made ready on every board, so each board's tick loads the policy engine and spawns a worker, and
//! the daemon idles again. Writes resident (VmRSS) and peak (VmHWM) memory into `docs/performance.md`.
//! The target is under 50 MiB idle. Asserts nothing.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kanban::board::{Home, write_atomic};
use kanban::store::NewTask;
use support::{Report, count, env_usize, memory_kib};

const BOARDS: usize = 5;

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Sample the daemon's memory every 100 ms for `seconds`; the last resident value and the peak.
fn watch(daemon: &Child, seconds: usize) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let mut last = (0, 0);
    while Instant::now() < deadline {
        last = memory_kib(daemon.id()).expect("the daemon exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

fn main() {
    let cards = env_usize("KANBAN_BENCH_CARDS", 2_000);
    let seconds = env_usize("KANBAN_BENCH_SECONDS", 5);
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
    let now = 1_800_000_000;
    let toml = format!(
        "[profiles.coder]\ncommand = [\"sh\", \"-c\", \"exec \\\"$KANBAN_BIN\\\" complete \\\"$KANBAN_TASK\\\"\"]\n\
         env = {{ KANBAN_BIN = {:?} }}\n\n\
         [[policies]]\nkind = \"respawn-guard\"\nplugin = \"builtin:respawn-guard\"\n\n\
         [[policies]]\nkind = \"routing\"\nplugin = \"builtin:default-assignee\"\n[policies.config]\nassignee = \"coder\"\n",
        env!("CARGO_BIN_EXE_kanban")
    );
    let mut dbs = Vec::new();
    for b in 0..BOARDS {
        let slug = format!("board-{b}");
        let board = home.create_board(&slug, None, None).unwrap();
        write_atomic(&board.toml_path(), toml.as_bytes()).unwrap();
        let board = home.open_board(&slug).unwrap();
        let mut store = board.open_store().unwrap();
        let batch: Vec<NewTask> = (0..cards)
            .map(|i| NewTask {
                title: format!("card {i}"),
                assignee: Some("coder".into()),
                ..NewTask::default()
            })
            .collect();
        store.create_tasks(&batch, now).unwrap();
        store.close().unwrap();
        let conn = rusqlite::Connection::open(board.db_path()).unwrap();
        conn.execute_batch("UPDATE tasks SET status = 'done'").unwrap();
        dbs.push(board.db_path());
    }
    let mut report = Report::new(
        "daemon",
        format!(
            "`kanban daemon --interval 0.1` over {BOARDS} boards of {} done cards each, built-in guard and \
             router on; memory sampled every 100 ms for {seconds} s per phase",
            count(cards)
        ),
    );
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_kanban"))
        .arg("--home")
        .arg(dir.path())
        .args(["daemon", "--interval", "0.1"])
        .env_remove("KANBAN_BOARD")
        .env_remove("KANBAN_NOW")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let (rss, peak) = watch(&daemon, seconds);
    report.row(format!("daemon resident memory, {BOARDS} boards idle (target under 50 MiB)"), mib(rss));
    report.row(format!("daemon peak resident memory, {BOARDS} boards idle"), mib(peak));

    // One ready card per board: each board's tick now builds policy contexts, runs the guard and spawns.
    for db in &dbs {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("UPDATE tasks SET status = 'ready' WHERE rowid = 1").unwrap();
    }
    let (rss, peak) = watch(&daemon, seconds);
    report.row(
        "daemon resident memory after each board dispatched a card (policy engine loaded), then idle",
        mib(rss),
    );
    report.row("daemon peak resident memory, including those ticks", mib(peak));
    for db in &dbs {
        let conn = rusqlite::Connection::open(db).unwrap();
        let open: i64 =
            conn.query_row("SELECT count(*) FROM tasks WHERE status <> 'done'", [], |r| r.get(0)).unwrap();
        assert_eq!(open, 0, "every ready card should have been dispatched and completed");
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    daemon.wait().unwrap();
    report.publish();
}
