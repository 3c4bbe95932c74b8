//! A board whose cards live in PostgreSQL (`kanban board create SLUG --database URL`), on a real server:
//! `KANBAN_TEST_DATABASE_URL` names it (`.ci/run` starts a throwaway one with `.ci/postgres`). Without it
//! these tests fail saying so; they are never skipped. Each test makes boards of its own (a fresh slug is
//! a fresh schema), so they share the one database.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};

use crate::common::*;

pub(crate) fn database_url() -> String {
    std::env::var("KANBAN_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "these tests need a PostgreSQL server: set KANBAN_TEST_DATABASE_URL (`.ci/postgres start DIR` \
             starts a throwaway one and prints its URL; `bash .ci/run` does it for the whole suite)"
        )
    })
}

/// A slug no other test (or earlier run against the same server) uses.
pub(crate) fn fresh_slug() -> String {
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).unwrap();
    format!("pg-{}", hex::encode(bytes))
}

/// `kanban --home HOME --board SLUG ARGS` on the real clock (claims and heartbeats are real).
fn kanban(home: &std::path::Path, slug: &str, args: &[&str]) -> std::process::Output {
    clean_cmd().arg("--home").arg(home).args(["--board", slug]).args(args).output().unwrap()
}

fn ok(home: &std::path::Path, slug: &str, args: &[&str]) -> String {
    expect_ok(&kanban(home, slug, args), &args)
}

#[test]
fn hosts_that_create_the_board_with_one_url_share_its_cards() {
    let url = database_url();
    let slug = fresh_slug();
    let (a, b) = (Fleet::new(), Fleet::new());
    let made = expect_ok(&a.run(&["board", "create", &slug, "--database", &url]), &"create on a");
    assert!(made.contains("cards in postgres://"), "{made}");
    // The second host joins the board the first one made; the URL may come from the environment.
    let joined = b.cmd(&["board", "create", &slug]).env("KANBAN_DATABASE_URL", &url).output().unwrap();
    expect_ok(&joined, &"create on b");

    let created = parse_json(&ok(a.home(), &slug, &["create", "written on a", "--json"]), &"create");
    let id = created["id"].as_str().unwrap().to_string();
    ok(b.home(), &slug, &["comment", &id, "seen on b"]);
    let shown = parse_json(&ok(a.home(), &slug, &["show", &id, "--json"]), &"show");
    assert_eq!(shown["task"]["title"], "written on a");
    assert_eq!(shown["comments"][0]["body"], "seen on b", "{shown}");

    // The folder names the database, readable by its owner only; `board show` names it too.
    let file = a.board_dir(&slug).join("database.url");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!a.board_dir(&slug).join("kanban.db").exists(), "no SQLite file for a PostgreSQL board");
    let board = parse_json(&expect_ok(&a.run(&["board", "show", &slug, "--json"]), &"show"), &"board show");
    assert!(board["db"].as_str().unwrap().starts_with("postgres://"), "{board}");
    assert_eq!(board["counts"]["ready"], 1, "{board}");
}

#[test]
fn a_bad_or_unreachable_database_is_refused_and_leaves_no_board() {
    let k = Fleet::new();
    let err = k.fails(&["board", "create", "web", "--database", "mysql://db/kanban"], 2);
    assert!(err.contains("--database must be a postgres:// or postgresql:// URL"), "{err}");
    assert!(err.contains("mysql://db/kanban"), "{err}");
    // Port 1 on loopback: nothing listens there.
    let err =
        k.fails(&["board", "create", "web", "--database", "postgres://kanban:secret@127.0.0.1:1/kanban"], 1);
    assert!(err.contains("error connecting to server"), "{err}");
    assert!(!err.contains("secret"), "the password is never printed: {err}");
    assert!(!k.board_dir("web").exists(), "nothing half-made is left behind");
}

/// A daemon on the real clock, its log in `<home>/daemon.log`.
fn daemon(home: &std::path::Path, slug: &str) -> Child {
    let log = std::fs::File::create(home.join("daemon.log")).unwrap();
    clean_cmd()
        .arg("--home")
        .arg(home)
        .args(["--board", slug, "daemon", "--interval", "0.1"])
        .env("KANBAN_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn a daemon")
}

#[test]
fn two_hosts_work_one_postgres_board_and_never_run_a_card_twice() {
    let url = database_url();
    let slug = fresh_slug();
    let hosts = [Fleet::new(), Fleet::new()];
    let cards = 40;
    for host in &hosts {
        expect_ok(&host.run(&["board", "create", &slug, "--database", &url]), &"create");
        // The board's config is shared; each host runs the profile with a command of its own (its home's
        // config.toml), writing into its own folder.
        let script = host.script(
            "worker.sh",
            r#"echo "$KANBAN_TASK" >> "$OUT/ran"
"$KANBAN_BIN" complete "$KANBAN_TASK" --result "from $KANBAN_HOME" > /dev/null"#,
        );
        std::fs::write(host.home().join("config.toml"), host.profile("coder", &script, &[])).unwrap();
    }
    // One host sets the board's cap and profile; its next command publishes them to the other.
    let toml = "[dispatch]\nmax_in_progress = 3\n\n[profiles.coder]\ncommand = [\"false\"]\n";
    std::fs::write(hosts[0].board_dir(&slug).join("board.toml"), toml).unwrap();
    ok(hosts[0].home(), &slug, &["board", "check", &slug]);
    let batch: String =
        (0..cards).map(|i| format!("{{\"title\": \"card {i}\", \"assignee\": \"coder\"}}\n")).collect();
    let imported = clean_cmd()
        .arg("--home")
        .arg(hosts[0].home())
        .args(["--board", &slug, "import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(batch.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    expect_ok(&imported, &"import");

    let mut daemons: Vec<Child> = hosts.iter().map(|h| daemon(h.home(), &slug)).collect();
    let mut most_running = 0;
    wait_for("every card done", || {
        let running = ok(hosts[0].home(), &slug, &["list", "--status", "running", "--json"]);
        most_running = most_running.max(parse_json(&running, &"list").as_array().unwrap().len());
        let done = ok(hosts[1].home(), &slug, &["list", "--status", "done", "--json"]);
        parse_json(&done, &"list").as_array().unwrap().len() == cards
    });
    for d in &mut daemons {
        let _ = d.kill();
        let _ = d.wait();
    }

    // Each card ran once, on one host: one line per card across both hosts' workers.
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    for host in &hosts {
        for line in host.out("ran").lines() {
            *ran.entry(line.to_string()).or_default() += 1;
        }
    }
    assert_eq!(ran.len(), cards, "{ran:?}");
    assert!(ran.values().all(|n| *n == 1), "a card ran twice: {ran:?}");
    assert!(most_running <= 3, "the board's cap held across hosts (saw {most_running} running)");
    let hosts_seen = parse_json(&ok(hosts[0].home(), &slug, &["hosts", "--json"]), &"hosts");
    assert_eq!(hosts_seen.as_array().unwrap().len(), 2, "both hosts worked the board: {hosts_seen}");
}

/// The sha256 of plugin `name` as `plugin list --json` shows it on host `k`.
fn plugin_sha(k: &Kanban, name: &str) -> Option<String> {
    k.json(&["plugin", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["sha256"].as_str().unwrap().to_string())
}

/// A shared board's `board.toml` and the plugins it names travel through the database: what one host
/// publishes, every other host runs at its next command, plugins checked by sha256; a later install wins;
/// two hosts' conflicting edits keep the fleet's and set the other aside; a broken edit is never published.
#[test]
fn the_config_and_plugins_of_a_board_travel_through_the_database() {
    let url = database_url();
    let slug = fresh_slug();
    let (a, b) = (Fleet::new(), Fleet::new());
    expect_ok(&a.run(&["board", "create", &slug, "--database", &url]), &"create on a");
    expect_ok(&b.run(&["board", "create", &slug, "--database", &url]), &"join on b");

    // `a` installs a plugin and names it in the board's config; its next command publishes both.
    let router = test_plugin("routing-v011");
    a.ok(&["plugin", "install", router.to_str().unwrap(), "--name", "router"]);
    let toml =
        "[profiles.w]\ncommand = [\"true\"]\n\n[[policies]]\nkind = \"routing\"\nplugin = \"router\"\n";
    std::fs::write(a.toml_path(&slug), toml).unwrap();
    a.ok(&["board", "check", &slug]);
    // `b` never installed it: its next command takes the config and the plugin, and loads it.
    assert_eq!(plugin_sha(&b, "router"), None);
    b.ok(&["board", "check", &slug]);
    assert_eq!(std::fs::read_to_string(b.toml_path(&slug)).unwrap(), toml);
    assert_eq!(plugin_sha(&b, "router"), plugin_sha(&a, "router"), "the same bytes on both hosts");
    let kinds: Vec<String> =
        b.json_lines(&["--board", &slug, "events", "--json"]).iter().map(|e| e["kind"].to_string()).collect();
    assert!(kinds.contains(&"\"config_published\"".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"\"plugin_published\"".to_string()), "{kinds:?}");

    // A later install of the name on `b` is published from there and taken by `a`.
    b.k.advance(60);
    b.ok(&["plugin", "install", test_plugin("rejecting").to_str().unwrap(), "--name", "router"]);
    let newer = plugin_sha(&b, "router");
    assert_ne!(newer, plugin_sha(&a, "router"));
    b.ok(&["--board", &slug, "list"]);
    a.ok(&["--board", &slug, "list"]);
    assert_eq!(plugin_sha(&a, "router"), newer, "the later install runs on every host");

    // Both hosts edit: `a` publishes first; `b`'s edit is set aside, never lost, and `b` runs the fleet's.
    let from_a = format!("{toml}# edited on a\n");
    std::fs::write(a.toml_path(&slug), &from_a).unwrap();
    a.ok(&["--board", &slug, "list"]);
    let from_b = format!("{toml}# edited on b\n");
    std::fs::write(b.toml_path(&slug), &from_b).unwrap();
    let out = b.run(&["--board", &slug, "list"]);
    let warned = expect_ok(&out, &"list on b");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("changed on this host and in the fleet"), "{warned}{stderr}");
    assert_eq!(std::fs::read_to_string(b.toml_path(&slug)).unwrap(), from_a);
    let kept: Vec<_> = std::fs::read_dir(b.board_dir(&slug))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("board.toml.local-"))
        .collect();
    assert_eq!(kept.len(), 1, "b's edit is kept aside");
    assert_eq!(std::fs::read_to_string(kept[0].path()).unwrap(), from_b);

    // A broken edit is refused where it was made, naming the file, and never reaches the fleet.
    std::fs::write(b.toml_path(&slug), "[dispatch\n").unwrap();
    let err = b.fails(&["--board", &slug, "list"], 2);
    assert!(err.contains(&b.toml_path(&slug).display().to_string()), "{err}");
    a.ok(&["--board", &slug, "list"]);
    assert_eq!(std::fs::read_to_string(a.toml_path(&slug)).unwrap(), from_a, "the fleet's copy is untouched");
}

/// A TCP relay in front of the server that the test can cut, as a network partition would: every
/// connection through it is dropped and new ones are refused until it is restored.
struct Relay {
    addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn new(upstream: String) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let relay = Relay { addr, cut: Default::default(), open: Default::default() };
        let (cut, open) = (relay.cut.clone(), relay.open.clone());
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { continue };
                if cut.load(Ordering::SeqCst) {
                    let _ = down.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(up) = std::net::TcpStream::connect(&upstream) else { continue };
                let mut open = open.lock().unwrap();
                open.push(down.try_clone().unwrap());
                open.push(up.try_clone().unwrap());
                for (mut from, mut to) in [(down.try_clone().unwrap(), up.try_clone().unwrap()), (up, down)] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        relay
    }

    /// The URL of `url`'s database through this relay.
    fn url(&self, url: &str) -> String {
        url.replacen(&upstream_of(url), &self.addr.to_string(), 1)
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn upstream_of(url: &str) -> String {
    let rest = url.split_once('@').map_or(url, |(_, rest)| rest);
    let rest = rest.split_once("://").map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap().to_string()
}

/// A host cut off from the database mid-run (its daemon between ticks, its worker's supervisor holding a
/// connection) backs off, says so in its log, and resumes when the database is back: the card finishes
/// on its one attempt, and nothing of the outage counts against it.
#[test]
fn a_host_that_loses_the_database_backs_off_and_counts_nothing_against_the_card() {
    let url = database_url();
    let relay = Relay::new(upstream_of(&url));
    let via = relay.url(&url);
    let slug = fresh_slug();
    let f = Fleet::new();
    expect_ok(&f.run(&["board", "create", &slug, "--database", &via]), &"create");
    // The worker says it started, waits for the test's word, then reports.
    let script = f.script(
        "worker.sh",
        r#"touch "$OUT/started"
while [ ! -e "$OUT/go" ]; do sleep 0.1; done
"$KANBAN_BIN" complete "$KANBAN_TASK" --result "after the outage" > /dev/null"#,
    );
    std::fs::write(f.board_dir(&slug).join("board.toml"), f.profile("coder", &script, &[])).unwrap();
    let id = parse_json(
        &ok(f.home(), &slug, &["create", "through the outage", "--assignee", "coder", "--json"]),
        &"create",
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut d = daemon(f.home(), &slug);
    wait_for("the worker to start", || f.out_dir().join("started").exists());

    relay.cut();
    let log = || std::fs::read_to_string(f.home().join("daemon.log")).unwrap_or_default();
    wait_for("the daemon to back off", || log().contains("tick failed; backing off"));
    relay.restore();
    std::fs::write(f.out_dir().join("go"), "").unwrap();

    let deadline = std::time::Instant::now() + POLL_LIMIT;
    while parse_json(&ok(f.home(), &slug, &["show", &id, "--json"]), &"show")["task"]["status"] != "done" {
        assert!(
            std::time::Instant::now() < deadline,
            "the card is not done: {}\n{}",
            ok(f.home(), &slug, &["show", &id, "--json"]),
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    wait_for("the daemon to say it ticks again", || log().contains("the board ticks again"));
    let _ = d.kill();
    let _ = d.wait();
    let shown = parse_json(&ok(f.home(), &slug, &["show", &id, "--json"]), &"show");
    assert_eq!(shown["task"]["consecutive_failures"], 0, "{shown}");
    assert_eq!(shown["task"]["result"], "after the outage", "{shown}");
    let runs = shown["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "one attempt, never reclaimed or retried: {shown}");
    assert_eq!(runs[0]["outcome"], "completed", "{shown}");
}

/// `events --follow` on a board kept in PostgreSQL is woken by the database when another host appends
/// events (`LISTEN`/`NOTIFY`), not by polling: it logs each push.
#[test]
fn new_events_are_pushed_to_a_follower_on_another_host() {
    use std::io::BufRead;
    let url = database_url();
    let slug = fresh_slug();
    let (a, b) = (Fleet::new(), Fleet::new());
    expect_ok(&a.run(&["board", "create", &slug, "--database", &url]), &"create on a");
    expect_ok(&b.run(&["board", "create", &slug, "--database", &url]), &"join on b");
    let log = b.home().join("follow.log");
    let mut follow = clean_cmd()
        .arg("--home")
        .arg(b.home())
        .args(["--board", &slug, "events", "--follow", "--json"])
        .env("KANBAN_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let (lines, seen) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });
    let wait_for_event = |kind: &str, id: &str| loop {
        let event =
            seen.recv_timeout(POLL_LIMIT).unwrap_or_else(|_| panic!("no {kind} event of {id} followed"));
        if event["kind"] == kind && event["task_id"] == id {
            return;
        }
    };
    // The first card is followed once the follower listens (pushed, or read again after a while); the
    // comment after it can only arrive pushed.
    let id = parse_json(&ok(a.home(), &slug, &["create", "followed", "--json"]), &"create")["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for_event("created", &id);
    ok(a.home(), &slug, &["comment", &id, "seen from afar"]);
    wait_for_event("commented", &id);
    let _ = follow.kill();
    let _ = follow.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("new events pushed"), "{logged}");
}
