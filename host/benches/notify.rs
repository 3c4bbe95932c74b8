//! Notification delivery: `cargo bench --bench notify`.
//!
//! A board routes `created` to a webhook on 127.0.0.1 (a receiver thread of the bench); N cards are created,
//! so N deliveries wait in the outbox; delivery passes (`ops::notify::deliver_due`, what the daemon's
//! notifier thread runs) drain it. Three endpoints: one that answers at once, a slow one (holds each request
//! `KANBAN_BENCH_SLOW_MS`, default 50 ms), and a failing one (HTTP 503: every attempt recorded and
//! rescheduled). Also the cost the outbox adds to appending an event (the trigger). Sizes:
//! `KANBAN_BENCH_CARDS` (default 1,000), `KANBAN_BENCH_RUNS`. Prints medians, writes docs/performance.md,
//! asserts nothing.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kanban::board::{Board, Home, write_atomic};
use kanban::ops::notify::deliver_due;
use kanban::store::NewTask;
use support::{Report, Stats, count, env_usize, time};

/// A webhook endpoint: answers `status` after holding each request `hold_ms`.
fn endpoint(status: u16, hold_ms: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let hold = hold_ms.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let mut len = 0usize;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                std::thread::sleep(Duration::from_millis(hold.load(Ordering::Relaxed)));
                let mut stream = stream;
                let _ =
                    write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            });
        }
    });
    url
}

fn board(home: &Home, slug: &str, url: &str) -> Board {
    let board = home.create_board(slug, None, None).unwrap();
    let toml = format!("[[notify]]\non = [\"created\"]\nwebhook = {url:?}\nmax_attempts = 100\n");
    write_atomic(&board.toml_path(), toml.as_bytes()).unwrap();
    let board = home.open_board(slug).unwrap();
    let mut store = board.open_store().unwrap();
    kanban::ops::notify::sync_routes(&board, &mut store).unwrap();
    board
}

/// Create `n` cards (so `n` deliveries wait), one transaction each, as `kanban create` would.
fn fill(board: &Board, n: usize, now: i64) -> Duration {
    let mut store = board.open_store().unwrap();
    time(|| {
        for i in 0..n {
            store.create_task(&NewTask { title: format!("card {i}"), ..NewTask::default() }, now).unwrap();
        }
    })
    .0
}

/// Drain the outbox at `now` with delivery passes; the deliveries each pass made.
fn drain(board: &Board, now: i64) -> (Duration, usize) {
    let mut store = board.open_store().unwrap();
    let mut attempts = 0;
    let (elapsed, ()) = time(|| {
        loop {
            let pass = deliver_due(board, &mut store, now).unwrap();
            let made = pass.delivered + pass.retrying + pass.failed;
            if made == 0 {
                break;
            }
            attempts += made;
        }
    });
    (elapsed, attempts)
}

fn main() {
    let cards = env_usize("KANBAN_BENCH_CARDS", 1000);
    let runs = env_usize("KANBAN_BENCH_RUNS", 5);
    let slow_ms = env_usize("KANBAN_BENCH_SLOW_MS", 50) as u64;
    let slow_cards = (cards / 20).max(5);
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
    let now = kanban::clock::now(); // deliver_due schedules retries on the same clock
    let mut report = Report::new(
        "notify",
        format!(
            "deliveries to a webhook on 127.0.0.1, {} per run ({} for the slow endpoint, held {slow_ms} ms each); {runs} runs",
            count(cards),
            count(slow_cards)
        ),
    );

    let fast = endpoint(200, Arc::new(AtomicU64::new(0)));
    let slow = endpoint(200, Arc::new(AtomicU64::new(slow_ms)));
    let failing = endpoint(503, Arc::new(AtomicU64::new(0)));
    let plain = home.create_board("plain", None, None).unwrap();

    // What the outbox adds to a write: creating cards on a board with and without a route for `created`.
    let mut with_route = Vec::new();
    let mut without = Vec::new();
    let mut per_delivery = Vec::new();
    let mut per_slow = Vec::new();
    let mut per_failure = Vec::new();
    for run in 0..runs {
        let b = board(&home, &format!("fast{run}"), &fast);
        with_route.push(fill(&b, cards, now) / cards as u32);
        without.push(fill(&plain, cards, now) / cards as u32);
        let (elapsed, delivered) = drain(&b, now);
        assert_eq!(delivered, cards, "every card's event delivered once");
        per_delivery.push(elapsed / cards as u32);

        let b = board(&home, &format!("slow{run}"), &slow);
        fill(&b, slow_cards, now);
        let (elapsed, delivered) = drain(&b, now);
        assert_eq!(delivered, slow_cards);
        per_slow.push(elapsed / slow_cards as u32);

        let b = board(&home, &format!("failing{run}"), &failing);
        fill(&b, cards, now);
        let (elapsed, attempted) = drain(&b, now); // one failed attempt each, then each waits for its retry
        assert_eq!(attempted, cards);
        per_failure.push(elapsed / cards as u32);
    }
    let per_second = |d: Duration| format!("{:.0} deliveries/s", 1.0 / d.as_secs_f64().max(1e-9));
    let with_route = Stats::of(with_route).median;
    let without = Stats::of(without).median;
    report.row(
        "creating a card, its `created` event routed to the outbox (per card, library)",
        format!("{} (without a route: {})", support::us(with_route), support::us(without)),
    );
    let fast = Stats::of(per_delivery).median;
    report.row(
        "delivering to an endpoint that answers at once (per delivery, one deliverer)",
        format!("{} ({})", support::ms(fast), per_second(fast)),
    );
    let slow = Stats::of(per_slow).median;
    report.row(
        format!("delivering to an endpoint that takes {slow_ms} ms (per delivery, one deliverer)"),
        format!("{} ({})", support::ms(slow), per_second(slow)),
    );
    let failing = Stats::of(per_failure).median;
    report.row(
        "a failing endpoint (HTTP 503): one attempt recorded and rescheduled (per delivery)",
        format!("{} ({})", support::ms(failing), per_second(failing)),
    );
    report.row(
        "from an event to its delivery under the daemon",
        "at most the notifier's pause (the daemon's `--interval`, clamped to 0.1-1 s) plus one delivery",
    );
    report.publish();
}
