//! Several hosts working one board: three daemons, each with a home of its own (and so a host id, labels and
//! a capacity of its own), work one board, on either store: a SQLite board whose folder they share (a
//! symlink in the second and third homes, as hosts on one machine or a shared disk would), and a board
//! kept in PostgreSQL (each host's own folder names the database; the config travels through it). The
//! same rules must hold whichever host ticks: no card claimed twice, the board's and each host's caps never
//! exceeded, a profile's cards only on hosts with its labels, a dead host's cards requeued by the others,
//! and a host frozen past its claims unable to finish a card another host now runs.
//!
//! `KANBAN_FLEET_CARDS` sets the race's size (default 240; the issue's long variant is 2,000). The
//! PostgreSQL variants need `KANBAN_TEST_DATABASE_URL` (see `tests/postgres.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;

use crate::common::*;
use crate::postgres::{database_url, fresh_slug};

/// Where the board lives.
#[derive(Clone, Copy, PartialEq)]
enum Store {
    Sqlite,
    Postgres,
}

/// A connection of the test's own to the board's store, to watch it from outside every host.
enum Db {
    Lite(Connection),
    Pg(postgres::Client),
}

impl Db {
    fn count(&mut self, sql: &str) -> i64 {
        match self {
            Db::Lite(conn) => conn.query_row(sql, [], |r| r.get(0)).unwrap(),
            Db::Pg(client) => client.query_one(sql, &[]).unwrap().get(0),
        }
    }

    fn text(&mut self, sql: &str) -> String {
        match self {
            Db::Lite(conn) => conn.query_row(sql, [], |r| r.get(0)).unwrap(),
            Db::Pg(client) => client.query_one(sql, &[]).unwrap().get(0),
        }
    }

    /// The cards running now, on the board and per host id, in one snapshot.
    fn running(&mut self) -> (i64, Vec<(String, i64)>) {
        const BOARD: &str = "SELECT COUNT(*) FROM tasks WHERE status = 'running'";
        const PER_HOST: &str =
            "SELECT r.host_id, COUNT(*) FROM tasks t JOIN task_runs r ON r.id = t.current_run_id
                                 WHERE t.status = 'running' GROUP BY r.host_id";
        match self {
            Db::Lite(conn) => {
                let tx = conn.unchecked_transaction().unwrap();
                let board = tx.query_row(BOARD, [], |r| r.get(0)).unwrap();
                let mut stmt = tx.prepare(PER_HOST).unwrap();
                let hosts = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .unwrap()
                    .map(|row| row.unwrap())
                    .collect();
                drop(stmt);
                tx.commit().unwrap();
                (board, hosts)
            }
            Db::Pg(client) => {
                let mut tx = client
                    .build_transaction()
                    .isolation_level(postgres::IsolationLevel::RepeatableRead)
                    .start()
                    .unwrap();
                let board = tx.query_one(BOARD, &[]).unwrap().get(0);
                let hosts = tx.query(PER_HOST, &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
                tx.commit().unwrap();
                (board, hosts)
            }
        }
    }
}

const BOARD_CAP: i64 = 6;

/// One host: a home of its own whose `boards/web` is the first host's board.
struct Host {
    fleet: Fleet,
    name: &'static str,
    slug: String,
    daemon: Option<Child>,
}

impl Host {
    /// A host whose home has `config`; with `shared`, its `boards/SLUG` is that folder.
    fn new(name: &'static str, config: &str, slug: &str, shared: Option<&Path>) -> Host {
        let fleet = Fleet::new();
        std::fs::write(fleet.home().join("config.toml"), config).unwrap();
        if let Some(board) = shared {
            std::fs::create_dir_all(fleet.home().join("boards")).unwrap();
            std::os::unix::fs::symlink(board, fleet.board_dir(slug)).unwrap();
        }
        Host { fleet, name, slug: slug.to_string(), daemon: None }
    }

    fn id(&self) -> String {
        std::fs::read_to_string(self.fleet.home().join("host-id")).unwrap().trim().to_string()
    }

    /// `kanban daemon --interval 0.1` on the real clock (claims must be able to expire), its log in
    /// `<home>/daemon.log`.
    fn start(&mut self) {
        let log = File::create(self.fleet.home().join("daemon.log")).unwrap();
        let mut cmd = clean_cmd();
        cmd.arg("--home")
            .arg(self.fleet.home())
            .args(["--board", &self.slug, "daemon", "--interval", "0.1"])
            .env("KANBAN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.daemon = Some(cmd.spawn().expect("spawn a daemon"));
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        for pid in home_processes(self.fleet.home()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.fleet.home().join("daemon.log")).unwrap_or_default()
    }

    /// `kanban --board SLUG ARGS` from this host's home, on the real clock.
    fn run(&self, args: &[&str]) -> std::process::Output {
        clean_cmd()
            .arg("--home")
            .arg(self.fleet.home())
            .args(["--board", &self.slug])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// Three hosts on one board: `a` (2 workers), `b` (2 workers), `c` (3 workers, label `gpu`). Worker scripts
/// and their output live outside every home, so that killing one host's processes touches no other host's.
struct Cluster {
    hosts: Vec<Host>,
    outside: tempfile::TempDir,
    store: Store,
    slug: String,
}

impl Cluster {
    fn new(store: Store, worker_body: &str, claim_ttl: i64) -> Cluster {
        let slug = match store {
            Store::Sqlite => "web".to_string(),
            Store::Postgres => fresh_slug(),
        };
        let configs = [
            ("a", "[host]\nmax_workers = 2\n"),
            ("b", "[host]\nmax_workers = 2\nlabels = [\"linux\"]\n"),
            ("c", "[host]\nmax_workers = 3\nlabels = [\"gpu\", \"linux\"]\n"),
        ];
        let a = Host::new(configs[0].0, configs[0].1, &slug, None);
        let mut create = vec!["board", "create", &slug];
        let url = if store == Store::Postgres { database_url() } else { String::new() };
        if store == Store::Postgres {
            create.extend(["--database", &url]);
        }
        let ok = a.fleet.k.run(&create);
        assert!(ok.status.success(), "{ok:?}");
        let board = a.fleet.board_dir(&slug);
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("out")).unwrap();
        let script = outside.path().join("worker.sh");
        std::fs::write(&script, format!("#!/bin/sh\n{worker_body}\n")).unwrap();
        let env = format!(
            "env = {{ KANBAN_BIN = {:?}, OUT = {:?} }}",
            bin(),
            outside.path().join("out").display().to_string()
        );
        let toml = format!(
            "[dispatch]\nmax_in_progress = {BOARD_CAP}\nclaim_ttl_seconds = {claim_ttl}\ncrash_grace_seconds = 1\n\n\
             [profiles.coder]\ncommand = [\"sh\", {script:?}]\n{env}\n\n\
             [profiles.trainer]\ncommand = [\"sh\", {script:?}]\n{env}\nrequires = [\"gpu\"]\n"
        );
        std::fs::write(board.join("board.toml"), toml).unwrap();
        // On PostgreSQL this publishes the edit to the fleet; the other hosts take it when they join.
        let check = a.run(&["board", "check", &slug]);
        assert!(check.status.success(), "{check:?}");
        let mut hosts = vec![a];
        for (name, config) in &configs[1..] {
            let host = match store {
                Store::Sqlite => Host::new(name, config, &slug, Some(&board)),
                Store::Postgres => {
                    let host = Host::new(name, config, &slug, None);
                    let joined = host.fleet.k.run(&create);
                    assert!(joined.status.success(), "{joined:?}");
                    host
                }
            };
            hosts.push(host);
        }
        Cluster { hosts, outside, store, slug }
    }

    fn out(&self) -> PathBuf {
        self.outside.path().join("out")
    }

    fn db(&self) -> Db {
        match self.store {
            Store::Sqlite => {
                let conn = Connection::open(self.hosts[0].fleet.db_path(&self.slug)).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                Db::Lite(conn)
            }
            Store::Postgres => {
                let mut client = postgres::Client::connect(&database_url(), postgres::NoTls).unwrap();
                client.batch_execute(&format!("SET search_path TO \"kanban_{}\"", self.slug)).unwrap();
                Db::Pg(client)
            }
        }
    }

    fn create(&self, n: usize, profile: &str) -> Vec<String> {
        let lines: String = (0..n)
            .map(|i| format!("{{\"title\": \"{profile} {i}\", \"assignee\": \"{profile}\"}}\n"))
            .collect();
        let out = clean_cmd()
            .arg("--home")
            .arg(self.hosts[0].fleet.home())
            .args(["--board", &self.slug, "import", "-", "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(lines.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<String> =
            v["cards"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len(), n, "{v}");
        ids
    }

    fn host_of(&self) -> BTreeMap<String, &'static str> {
        self.hosts.iter().map(|h| (h.id(), h.name)).collect()
    }
}

/// Sample the board until stopped: the most cards running at once, on the board and on each host.
fn sample(mut db: Db, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(i64, BTreeMap<String, i64>, usize)> {
    std::thread::spawn(move || {
        let (mut board, mut per_host, mut samples) = (0, BTreeMap::<String, i64>::new(), 0);
        while !stop.load(Ordering::Relaxed) {
            let (running, hosts) = db.running();
            board = board.max(running);
            for (host, n) in hosts {
                let most = per_host.entry(host).or_default();
                *most = (*most).max(n);
            }
            samples += 1;
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        (board, per_host, samples)
    })
}

#[test]
fn three_hosts_share_a_board_without_a_double_spawn_or_a_cap_exceeded() {
    race(Store::Sqlite);
}

#[test]
fn three_hosts_share_a_postgres_board_without_a_double_spawn_or_a_cap_exceeded() {
    race(Store::Postgres);
}

fn race(store: Store) {
    let cards: usize = std::env::var("KANBAN_FLEET_CARDS").ok().and_then(|n| n.parse().ok()).unwrap_or(240);
    let mut cluster = Cluster::new(
        store,
        r#"echo "$KANBAN_TASK $KANBAN_RUN_ID $KANBAN_HOME" >> "$OUT/spawns"
"$KANBAN_BIN" complete "$KANBAN_TASK" > /dev/null"#,
        900,
    );
    let gpu = cluster.create(cards / 8, "trainer");
    let plain = cluster.create(cards - cards / 8, "coder");
    let mut db = cluster.db();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(cluster.db(), stop.clone());
    for host in &mut cluster.hosts {
        host.start();
    }
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(60 + cards as u64 / 4);
    while db.count("SELECT COUNT(*) FROM tasks WHERE status = 'done'") < cards as i64 {
        assert!(
            std::time::Instant::now() < limit,
            "not every card was done in time: {:?}\n{}",
            cluster.hosts[0].run(&["stats"]),
            cluster.hosts.iter().map(|h| h.log()).collect::<Vec<_>>().join("\n----\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let (most_on_board, most_per_host, samples) = sampler.join().unwrap();

    // Every card ran exactly once: one run each, one worker start each.
    assert_eq!(db.count("SELECT COUNT(*) FROM task_runs"), cards as i64, "one run a card");
    assert_eq!(db.count("SELECT COUNT(*) FROM task_runs WHERE outcome = 'completed'"), cards as i64);
    let spawns = std::fs::read_to_string(cluster.out().join("spawns")).unwrap();
    let mut seen = BTreeSet::new();
    let mut by_home: BTreeMap<String, usize> = BTreeMap::new();
    let mut gpu_homes = BTreeSet::new();
    let gpu_set: BTreeSet<&String> = gpu.iter().collect();
    for line in spawns.lines() {
        let mut parts = line.split(' ');
        let (task, home) = (parts.next().unwrap().to_string(), parts.nth(1).unwrap().to_string());
        if gpu_set.contains(&task) {
            gpu_homes.insert(home.clone());
        }
        assert!(seen.insert(task.clone()), "{task} was started twice:\n{spawns}");
        *by_home.entry(home).or_default() += 1;
    }
    assert_eq!(seen.len(), cards, "every card's worker started once");
    assert_eq!(seen, gpu.iter().chain(&plain).cloned().collect());

    // The labels: the trainer's cards ran on the one host with `gpu`.
    let c_home = cluster.hosts[2].fleet.home().display().to_string();
    assert_eq!(gpu_homes, [c_home].into(), "trainer cards ran only on the gpu host");

    // The caps, at every sample.
    let host_of = cluster.host_of();
    let caps: BTreeMap<&str, i64> = [("a", 2), ("b", 2), ("c", 3)].into();
    assert!(most_on_board <= BOARD_CAP, "{most_on_board} running at once (cap {BOARD_CAP})");
    for (host, most) in &most_per_host {
        let name = host_of[host];
        assert!(*most <= caps[name], "host {name} ran {most} at once (max_workers {})", caps[name]);
    }
    let hosts = task_ids_by(&cluster.hosts[1].run(&["hosts", "--json"]));
    assert_eq!(hosts.len(), 3, "every host ticked the board: {hosts:?}");
    eprintln!(
        "fleet race: {cards} cards, 3 hosts, 0 double spawns, most running {most_on_board}/{BOARD_CAP}, per host {most_per_host:?} over {samples} samples, runs per home {by_home:?}"
    );
}

/// The ids of a `hosts --json` output.
fn task_ids_by(out: &std::process::Output) -> Vec<String> {
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

/// One host dies (its daemon and its workers, kill -9): the cards it held are requeued by the others once
/// its claims expire and it has shown no sign of life, uncounted, and finished there.
#[test]
fn a_dead_hosts_cards_are_requeued_by_the_others_and_finished() {
    dead_host(Store::Sqlite);
}

#[test]
fn a_dead_hosts_cards_on_a_postgres_board_are_requeued_by_the_others_and_finished() {
    dead_host(Store::Postgres);
}

fn dead_host(store: Store) {
    // Only the first host's workers hang (so it is sure to hold cards when it dies): its home holds a mark.
    let mut cluster = Cluster::new(
        store,
        r#"[ -e "$KANBAN_HOME/hang-here" ] && exec sleep 600
"$KANBAN_BIN" complete "$KANBAN_TASK" > /dev/null"#,
        2,
    );
    std::fs::write(cluster.hosts[0].fleet.home().join("hang-here"), "").unwrap();
    let ids = cluster.create(2, "coder");
    let mut db = cluster.db();
    cluster.hosts[0].start();
    let a = cluster.hosts[0].id();
    wait_for("the first host to run both cards", || {
        db.count(&format!(
                "SELECT COUNT(*) FROM tasks t JOIN task_runs r ON r.id = t.current_run_id WHERE t.status = 'running' AND r.host_id = '{a}'"
            ),
        ) == 2
    });
    cluster.hosts[0].signal(nix::sys::signal::Signal::SIGKILL);
    kill_home_processes(cluster.hosts[0].fleet.home());
    cluster.hosts[1].start();
    cluster.hosts[2].start();
    for id in &ids {
        let mut status = String::new();
        wait_for(&format!("{id} to be requeued and finished by another host"), || {
            let out = cluster.hosts[1].run(&["show", id, "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            status = v["task"]["status"].as_str().unwrap_or_default().to_string();
            status == "done"
        });
        let out = cluster.hosts[1].run(&["show", id, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["task"]["consecutive_failures"], 0, "a lost host is not the card's fault: {v}");
        let kinds: Vec<&str> =
            v["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"reclaimed"), "{kinds:?}");
        let runs: Vec<String> = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["outcome"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(runs.len(), 2, "the lost attempt and the one that finished: {runs:?}");
        assert_eq!(runs.last().unwrap(), "completed", "{runs:?}");
    }
}

/// A host frozen (SIGSTOP: daemon, supervisor and worker) past its claims' TTL loses its card to another
/// host. When it thaws, a report from its attempt is refused (the attempt is not the card's current one),
/// and its supervisor stops the worker whose card runs elsewhere now.
#[test]
fn a_host_frozen_past_its_claims_cannot_finish_a_card_another_host_now_runs() {
    frozen_host(Store::Sqlite);
}

#[test]
fn a_host_frozen_past_its_claims_on_a_postgres_board_cannot_finish_a_card_another_host_now_runs() {
    frozen_host(Store::Postgres);
}

fn frozen_host(store: Store) {
    // The first host's worker never reports (its home holds a mark); the others' report after a second.
    let mut cluster = Cluster::new(
        store,
        r#"[ -e "$KANBAN_HOME/hang-here" ] && exec sleep 600
sleep 1
"$KANBAN_BIN" complete "$KANBAN_TASK" --result "from $KANBAN_HOME" > /dev/null"#,
        2,
    );
    std::fs::write(cluster.hosts[0].fleet.home().join("hang-here"), "").unwrap();
    let id = cluster.create(1, "coder").remove(0);
    let mut db = cluster.db();
    cluster.hosts[0].start();
    let mut first_run = 0;
    wait_for("the first host to run the card", || {
        first_run = db.count("SELECT COALESCE(MAX(id), 0) FROM task_runs WHERE worker_pid IS NOT NULL");
        first_run > 0
    });
    // Freeze it between two ticks: a host frozen inside a tick would hold the board's tick lock (a file
    // lock on one machine, or the database's), and no other host could tick until it thawed (or, on
    // PostgreSQL, until its session timed out). Holding the host's own lock file here waits for the tick
    // under way to end, and keeps the next from starting until the host is frozen.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(cluster.hosts[0].fleet.board_dir(&cluster.slug).join("dispatch.lock"))
        .unwrap();
    let lock =
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
    cluster.hosts[0].signal(nix::sys::signal::Signal::SIGSTOP);
    drop(lock);
    cluster.hosts[1].start();
    wait_for("another host to take the card over", || {
        db.count(&format!("SELECT COUNT(*) FROM task_runs WHERE task_id = '{id}' AND id > {first_run}")) > 0
    });
    cluster.hosts[0].signal(nix::sys::signal::Signal::SIGCONT);

    // A report from the lost attempt, as its worker would send it, is refused.
    let stale = clean_cmd()
        .arg("--home")
        .arg(cluster.hosts[0].fleet.home())
        .args(["--board", &cluster.slug, "complete", &id, "--result", "from the frozen host"])
        .env("KANBAN_TASK", &id)
        .env("KANBAN_RUN_ID", first_run.to_string())
        .output()
        .unwrap();
    assert!(!stale.status.success(), "a stale attempt completed the card: {stale:?}");
    let why = String::from_utf8_lossy(&stale.stderr);
    assert!(why.contains(&format!("run {first_run}")), "the refusal names the attempt: {why}");

    wait_for("the card to be done by the second host", || {
        db.count(&format!("SELECT COUNT(*) FROM tasks WHERE id = '{id}' AND status = 'done'")) == 1
    });
    let result = db.text(&format!("SELECT result FROM tasks WHERE id = '{id}'"));
    assert_eq!(result, format!("from {}", cluster.hosts[1].fleet.home().display()));
    // The thawed host's supervisor stops the worker of the attempt it lost.
    wait_for("the first host's stale worker to be stopped", || {
        run_processes(cluster.hosts[0].fleet.home(), first_run).is_empty()
    });
    let kinds: Vec<String> = cluster.hosts[1]
        .fleet
        .k
        .json_lines(&["--board", &cluster.slug, "events", "--json"])
        .iter()
        .filter(|e| e["run_id"] == first_run)
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"reclaimed".to_string()), "{kinds:?}");
}
