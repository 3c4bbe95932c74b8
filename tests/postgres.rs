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
        // Each host's board.toml names its own worker (the file stays per host).
        let script = host.script(
            "worker.sh",
            r#"echo "$KANBAN_TASK" >> "$OUT/ran"
"$KANBAN_BIN" complete "$KANBAN_TASK" --result "from $KANBAN_HOME" > /dev/null"#,
        );
        let toml = format!("[dispatch]\nmax_in_progress = 3\n\n{}", host.profile("coder", &script, &[]));
        std::fs::write(host.board_dir(&slug).join("board.toml"), toml).unwrap();
    }
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
