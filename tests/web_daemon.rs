//! `kanban daemon --serve`: the web server inside the daemon. The API answers beside the ticks, a card the
//! ticks dispatch is seen moving on the event stream, `/metrics` counts ticks, spawns, outcomes, breaker
//! trips and policy calls, errors and quarantines, the server survives the daemon's re-exec on the same
//! port, and it stops with the daemon.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// The worker: completes its card.
const COMPLETE: &str = r#""$KANBAN_BIN" complete "$KANBAN_TASK" --result ok"#;
/// The worker: crashes.
const CRASH: &str = "exit 3";

/// A running `kanban daemon --serve` (or `kanban serve`), stopped (SIGTERM, then waited for) when dropped.
struct Daemon {
    child: Child,
    /// Its stdout, past the URL's line.
    out: BufReader<ChildStdout>,
    /// `127.0.0.1:PORT`
    addr: String,
    agent: ureq::Agent,
}

impl Daemon {
    fn start(k: &Kanban, args: &[&str]) -> Daemon {
        let mut child = k.cmd(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn");
        let mut first = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut first).expect("read the URL");
        let url = first.split_whitespace().next().unwrap_or_else(|| panic!("no URL in {first:?}"));
        let addr = url
            .strip_prefix("http://")
            .and_then(|u| u.strip_suffix("/api/v1/"))
            .unwrap_or_else(|| panic!("not the API's URL: {first:?}"))
            .to_string();
        let agent = http_agent();
        Daemon { child, out, addr, agent }
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    fn get_text(&self, path: &str) -> (u16, String) {
        match self.agent.get(format!("http://{}{path}", self.addr)).call() {
            Ok(mut response) => {
                (response.status().as_u16(), response.body_mut().read_to_string().expect("read body"))
            }
            Err(e) => (0, e.to_string()),
        }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get_text(path);
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The value of the one series `series` (name and labels, as printed) in `/metrics`.
    fn metric(&self, series: &str) -> Option<f64> {
        let (status, text) = self.get_text("/metrics");
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map(|v| v.parse().expect("a number"))
    }

    fn wait_for_metric(&self, series: &str, check: impl Fn(f64) -> bool) -> f64 {
        let mut last = None;
        wait_for(series, || {
            last = self.metric(series);
            last.is_some_and(&check)
        });
        last.unwrap()
    }

    /// Board `default`'s event stream, from `since` when given.
    fn stream(&self, last_event_id: Option<i64>) -> Live {
        let id = last_event_id.map(|id| id.to_string());
        let headers: Vec<(&str, &str)> = id.iter().map(|id| ("Last-Event-ID", id.as_str())).collect();
        Live(Sse::open(&self.addr, "/api/v1/boards/default/events/stream", &headers))
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("signal");
    }

    /// SIGTERM, and the exit code.
    fn stop(&mut self) -> Option<i32> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let mut status = None;
        wait_for("the process to exit after SIGTERM", || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status.unwrap().code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Board `default`'s event stream, read as event data.
struct Live(Sse);

impl Live {
    /// The next event's data, waiting at most `limit`.
    fn next_event(&mut self, limit: Duration) -> Option<Value> {
        self.0.next_event(limit).map(|(_, data)| data)
    }

    /// The kinds of `card`'s events, read until one of kind `until`.
    fn kinds_until(&mut self, card: &str, until: &str) -> Vec<String> {
        let mut kinds = Vec::new();
        while !kinds.iter().any(|k| k == until) {
            let event =
                self.next_event(POLL_LIMIT).unwrap_or_else(|| panic!("no {until} event; saw {kinds:?}"));
            if event["task_id"] == card {
                kinds.push(event["kind"].as_str().unwrap().to_string());
            }
        }
        kinds
    }
}

fn board(f: &Fleet, profiles: &[(&str, &str)], extra: &str) {
    let mut text = format!("{extra}\n");
    for (name, body) in profiles {
        let script = f.script(&format!("{name}.sh"), body);
        text.push_str(&f.profile(name, &script, &[]));
    }
    f.write_board_unchecked(&text);
}

#[test]
fn daemon_serve_answers_beside_the_ticks_streams_their_moves_and_survives_a_reexec() {
    let f = Fleet::new();
    board(&f, &[("p", COMPLETE)], "");
    let mut d =
        Daemon::start(&f, &["--board", "default", "daemon", "--interval", "0.1", "--serve", "127.0.0.1:0"]);
    let (status, boards) = d.get("/api/v1/boards");
    assert_eq!(status, 200, "{boards}");
    assert_eq!(boards[0]["slug"], "default", "only the daemon's board: {boards}");

    // A card made by the CLI is dispatched by the daemon's ticks; the stream shows it move to done.
    let mut live = d.stream(None);
    let id = f.create("for the daemon", &["--assignee", "p"]);
    let kinds = live.kinds_until(&id, "completed");
    let at = |kind: &str| kinds.iter().position(|k| k == kind).unwrap_or_else(|| panic!("{kind}: {kinds:?}"));
    assert!(at("created") < at("worker_started") && at("worker_started") < at("completed"), "{kinds:?}");
    let (_, card) = d.get(&format!("/api/v1/boards/default/cards/{id}"));
    assert_eq!(card["task"]["status"], "done", "{card}");

    let ticks = d.wait_for_metric("kanban_ticks_total", |n| n >= 1.0);
    assert!(d.metric("kanban_tick_duration_seconds_bucket{le=\"+Inf\"}").unwrap() >= ticks);
    assert_eq!(d.metric("kanban_spawns_total{board=\"default\"}"), Some(1.0));
    assert_eq!(d.metric("kanban_run_outcomes_total{board=\"default\",kind=\"completed\"}"), Some(1.0));
    assert_eq!(d.metric("kanban_sse_clients"), Some(1.0));

    // SIGHUP: the daemon re-executes itself (same pid) and the new image serves on the same port; the
    // stream ends with the old image and resumes with Last-Event-ID.
    let last = f.json_lines(&["events", "--json"]).last().unwrap()["id"].as_i64().unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let started = Instant::now();
    while live.next_event(POLL_LIMIT).is_some() {}
    assert!(started.elapsed() < POLL_LIMIT, "the old image ends its streams");
    let mut again = String::new();
    d.out.read_line(&mut again).expect("the new image's URL");
    assert_eq!(
        again.split_whitespace().next(),
        Some(format!("http://{}/api/v1/", d.addr).as_str()),
        "{again}"
    );
    assert!(d.child.try_wait().unwrap().is_none(), "same process");
    let (status, _) = d.get("/api/v1/boards");
    assert_eq!(status, 200);
    let mut resumed = d.stream(Some(last));
    let second = f.create("after the restart", &["--assignee", "p"]);
    let kinds = resumed.kinds_until(&second, "completed");
    assert!(kinds.contains(&"worker_started".to_string()), "{kinds:?}");

    // SIGTERM stops the ticks and the server together.
    assert_eq!(d.stop(), Some(0));
    assert!(TcpStream::connect(&d.addr).is_err(), "the port is closed");
}

/// Every family of `/metrics` that counts: the daemon's ticks, their durations and its policy calls; spawns,
/// run outcomes by kind, breaker trips, policy errors and quarantines from the board's events since the
/// server started (a run settled before it is not counted).
#[test]
fn daemon_serve_metrics_count_ticks_spawns_outcomes_breaker_trips_and_policy_failures() {
    let f = Fleet::new();
    // A router that names no profile: every tick asks it about the unassigned card and records a
    // bad_output policy error; the third in a row quarantines it.
    let router = "[[policies]]\nkind = \"routing\"\nplugin = \"builtin:default-assignee\"\n\
                  [policies.config]\nassignee = \"ghost\"\n";
    board(&f, &[("ok", COMPLETE), ("bad", CRASH)], router);
    let before = f.create("done before the server", &["--assignee", "ok"]);
    f.dispatch_wait();
    assert_eq!(f.status(&before), "done");

    let crashing = f.create("crashes once, then the breaker", &["--assignee", "bad", "--max-retries", "1"]);
    f.create("nobody's", &[]);
    let d = Daemon::start(&f, &["daemon", "--interval", "0.1", "--serve", "127.0.0.1:0"]);
    let board = "{board=\"default\"}";
    d.wait_for_metric(&format!("kanban_breaker_trips_total{board}"), |n| n == 1.0);
    d.wait_for_metric(&format!("kanban_policy_quarantines_total{board}"), |n| n == 1.0);
    assert_eq!(f.status(&crashing), "blocked");
    let outcome =
        |kind: &str| d.metric(&format!("kanban_run_outcomes_total{{board=\"default\",kind=\"{kind}\"}}"));
    assert_eq!(outcome("crashed"), Some(1.0));
    assert_eq!(outcome("completed"), Some(0.0), "the run settled before the server started is not counted");
    assert_eq!(d.metric(&format!("kanban_spawns_total{board}")), Some(1.0));
    assert_eq!(d.metric(&format!("kanban_policy_errors_total{board}")), Some(3.0));
    assert!(d.metric("kanban_policy_calls_total").unwrap() >= 3.0);
    let ticks = d.wait_for_metric("kanban_ticks_total", |n| n >= 4.0);
    let count = d.metric("kanban_tick_duration_seconds_count").unwrap();
    assert!(count >= ticks, "{count} {ticks}");
    let (_, text) = d.get_text("/metrics");
    assert!(text.contains("# TYPE kanban_tick_duration_seconds histogram"), "{text}");
    // Cumulative buckets: never fewer ticks under a larger bound.
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("kanban_tick_duration_seconds_bucket"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 13, "{text}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(d.metric("kanban_sse_clients"), Some(0.0));
    let _stream = d.stream(None);
    assert_eq!(d.metric("kanban_sse_clients"), Some(1.0));
}

/// Plain `kanban serve` has no daemon loop: no tick families, the event-counted ones still there.
#[test]
fn serve_alone_has_no_tick_metrics() {
    let k = Kanban::new();
    k.create("card", &[]);
    let s = Daemon::start(&k, &["serve", "--listen", "127.0.0.1:0"]);
    let (status, text) = s.get_text("/metrics");
    assert_eq!(status, 200);
    for absent in ["kanban_ticks_total", "kanban_tick_duration_seconds", "kanban_policy_calls_total"] {
        assert!(!text.contains(absent), "{absent}: {text}");
    }
    assert_eq!(s.metric("kanban_spawns_total{board=\"default\"}"), Some(0.0));
    assert_eq!(s.metric("kanban_run_outcomes_total{board=\"default\",kind=\"crashed\"}"), Some(0.0));
}

/// `--token-file` and `--read-only` need `--serve`.
#[test]
fn daemon_serve_flags_need_serve() {
    let k = Kanban::new();
    let err = k.fails(&["daemon", "--read-only", "--max-ticks", "1"], 2);
    assert!(err.contains("--serve"), "{err}");
}
