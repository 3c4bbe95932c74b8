//! Web server benchmark: `cargo bench --bench web`.
//!
//! A `kanban serve` over one board of `KANBAN_BENCH_CARDS` cards (default 10,000, imported, spread over
//! four profiles and the statuses `triage`, `ready`, `blocked`, `done`), spoken to over HTTP from this process:
//!
//! - `GET /api/v1/boards/bench/cards`: the first page (100 cards), and a filtered query (one assignee, a
//!   text search, sorted by priority), `KANBAN_BENCH_RUNS` times each (default 30);
//! - the time from starting a CLI `kanban complete` to its `completed` event reaching an SSE client, over
//!   `KANBAN_BENCH_COMPLETIONS` completions (default 200; the target is 250 ms at the 99th percentile);
//! - the server's resident memory (VmRSS from `/proc`) idle, and with `KANBAN_BENCH_CLIENTS` (default
//!   1,000) event streams open at once (plain TCP sockets), with `kanban_sse_clients` read back from
//!   `/metrics` to show they were all connected.
//!
//! Writes its rows into `docs/performance.md`; asserts nothing.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Report, Stats, count, env_usize, memory_kib, ms};

const BOARD: &str = "bench";
const PROFILES: [&str; 4] = ["coder", "writer", "reviewer", "tester"];

struct Server {
    child: Child,
    addr: String,
    agent: ureq::Agent,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Server {
    fn get(&self, path: &str) -> String {
        let mut response = self.agent.get(format!("http://{}{path}", self.addr)).call().expect("GET");
        assert_eq!(response.status(), 200, "{path}");
        response.body_mut().read_to_string().expect("body")
    }

    /// Open board `bench`'s event stream: the socket, once the response's headers are in.
    fn stream(&self) -> BufReader<TcpStream> {
        let mut socket = TcpStream::connect(&self.addr).expect("connect");
        let request =
            format!("GET /api/v1/boards/{BOARD}/events/stream HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        socket.write_all(request.as_bytes()).expect("send");
        let mut reader = BufReader::new(socket);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        assert!(line.contains(" 200 "), "{line}");
        while line.trim_end() != "" {
            line.clear();
            reader.read_line(&mut line).expect("header");
        }
        reader
    }

    fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

fn kanban(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kanban"));
    cmd.arg("--home").arg(home).env_remove("KANBAN_BOARD").env_remove("KANBAN_NOW");
    cmd
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The `q`-th quantile of sorted samples.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let cards = env_usize("KANBAN_BENCH_CARDS", 10_000);
    let runs = env_usize("KANBAN_BENCH_RUNS", 30);
    // An unoptimized smoke run (`cargo test --benches`) completes a handful; `cargo bench` the real number.
    let completions =
        env_usize("KANBAN_BENCH_COMPLETIONS", if cfg!(debug_assertions) { 10 } else { 200 }).min(cards / 4);
    let clients = env_usize("KANBAN_BENCH_CLIENTS", 1_000);
    // This process holds a socket per client too.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut toml = String::new();
    for p in PROFILES {
        toml.push_str(&format!("[profiles.{p}]\ncommand = [\"true\"]\n"));
    }
    let ok = kanban(home).args(["board", "create", BOARD]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    std::fs::write(home.join("boards").join(BOARD).join("board.toml"), toml).unwrap();
    // A quarter each in triage, ready, blocked and (completed below) done. The ready quarter is what the
    // latency measurement completes.
    let lines: String = (0..cards)
        .map(|i| {
            let status = match i % 4 {
                0 => ", \"triage\": true",
                2 => ", \"initial_status\": \"blocked\"",
                _ => "",
            };
            format!(
                "{{\"title\": \"card {i} of the web bench\", \"assignee\": \"{}\", \"priority\": {}{status}}}\n",
                PROFILES[i % PROFILES.len()],
                i % 5
            )
        })
        .collect();
    let mut import = kanban(home)
        .args(["--board", BOARD, "import", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    let out = import.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let imported: serde_json::Value = serde_json::from_slice(&out.stdout).expect("import --json");
    let ids: Vec<String> =
        imported["cards"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), cards, "import --json gave the ids");
    let done: Vec<&str> = ids.iter().skip(3).step_by(4).map(String::as_str).collect();
    for chunk in done.chunks(500) {
        let out = kanban(home).args(["--board", BOARD, "complete"]).args(chunk).output().unwrap();
        assert!(out.status.success(), "complete: {}", String::from_utf8_lossy(&out.stderr));
    }
    let ready: Vec<&String> = ids.iter().skip(1).step_by(4).collect();

    let mut child = kanban(home)
        .args(["--board", BOARD, "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let addr = first
        .split_whitespace()
        .next()
        .and_then(|u| u.strip_prefix("http://"))
        .and_then(|u| u.strip_suffix("/api/v1/"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let server = Server { child, addr, agent };

    let mut report = Report::new(
        "web",
        format!(
            "`kanban serve` over one board of {} cards (4 profiles; triage, ready, blocked and done), \
             {runs} requests per query, {completions} completions, {} event streams",
            count(cards),
            count(clients)
        ),
    );
    let cards_path = format!("/api/v1/boards/{BOARD}/cards");
    let time_get = |path: &str| {
        server.get(path);
        let samples: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                server.get(path);
                start.elapsed()
            })
            .collect();
        Stats::of(samples)
    };
    report.row(
        format!("`GET /api/v1/boards/{BOARD}/cards`, first page of 100 of {} cards", count(cards)),
        time_get(&cards_path).ms(),
    );
    report.row(
        format!("`GET .../cards?assignee=coder&q=7&sort=priority` (a filtered page, {} cards)", count(cards)),
        time_get(&format!("{cards_path}?assignee=coder&q=7&sort=priority")).ms(),
    );

    // Completion to event: one client reads the stream on its own thread and reports each completed card.
    let (seen_tx, seen_rx) = mpsc::channel::<(String, Instant)>();
    let mut reader = server.stream();
    let reader_socket = reader.get_ref().try_clone().unwrap();
    std::thread::spawn(move || {
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if let Some(data) = line.trim_end().strip_prefix("data: ")
                && let Ok(event) = serde_json::from_str::<serde_json::Value>(data)
                && event["kind"] == "completed"
                && let Some(task) = event["task_id"].as_str()
                && seen_tx.send((task.to_string(), Instant::now())).is_err()
            {
                return;
            }
            line.clear();
        }
    });
    let mut latencies = Vec::new();
    // Changes come at any moment, not just after the poller looked: wait a pseudo-random 0 to 250 ms
    // before each one, or every completion would start right after a poll and wait a whole period.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for id in ready.iter().take(completions) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 250));
        let start = Instant::now();
        let out = kanban(home).args(["--board", BOARD, "complete", id]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        loop {
            let (task, at) = seen_rx.recv_timeout(Duration::from_secs(10)).expect("the completed event");
            if &task == *id {
                latencies.push(at - start);
                break;
            }
        }
    }
    latencies.sort();
    report.row(
        format!(
            "CLI `kanban complete` to its SSE event at a client ({} completions; target p99 ≤ 250 ms)",
            latencies.len()
        ),
        format!(
            "p50 {}, p99 {}, max {}",
            ms(quantile(&latencies, 0.5)),
            ms(quantile(&latencies, 0.99)),
            ms(*latencies.last().unwrap())
        ),
    );

    // Memory: idle first (the one stream above is a client too: measured after it is gone).
    drop(seen_rx);
    let _ = reader_socket.shutdown(std::net::Shutdown::Both);
    std::thread::sleep(Duration::from_millis(500));
    let pid = server.child.id();
    let (idle, _) = memory_kib(pid).expect("server memory");
    let mut open = Vec::with_capacity(clients);
    let start = Instant::now();
    for _ in 0..clients {
        open.push(server.stream());
    }
    let connect_all = start.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let connected = server.metric("kanban_sse_clients");
    let (busy, peak) = memory_kib(pid).expect("server memory");
    report.row("server resident memory, idle (after the requests above)", mib(idle));
    report.row(
        format!(
            "server resident memory with {} event streams open (`kanban_sse_clients` {connected})",
            count(clients)
        ),
        format!(
            "{} (peak {}; {:.1} KiB per stream; all connected in {})",
            mib(busy),
            mib(peak),
            busy.saturating_sub(idle) as f64 / clients.max(1) as f64,
            ms(connect_all)
        ),
    );
    // With every stream open, one more completion still reaches them: time it at the first and last.
    if let Some(id) = ready.get(completions) {
        let start = Instant::now();
        let out = kanban(home).args(["--board", BOARD, "complete", id]).output().unwrap();
        assert!(out.status.success());
        let mut arrivals = Vec::new();
        for stream in open.iter_mut() {
            let mut line = String::new();
            stream.get_ref().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            while stream.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line.starts_with("data: ") && line.contains("\"completed\"") && line.contains(id.as_str())
                {
                    arrivals.push(start.elapsed());
                    break;
                }
                line.clear();
            }
        }
        if arrivals.len() == open.len() {
            arrivals.sort();
            report.row(
                format!("CLI `kanban complete` to its event read by all {} streams", count(clients)),
                format!("all read within {}", ms(*arrivals.last().unwrap())),
            );
        }
    }
    drop(open);
    report.publish();
}
