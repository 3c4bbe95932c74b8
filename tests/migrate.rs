//! `kanban board migrate` (docs/cli.md "board migrate"): a SQLite board copied into PostgreSQL and back,
//! on the real server `KANBAN_TEST_DATABASE_URL` names (see tests/postgres.rs). Every read command's JSON
//! must be the same before and after each hop; the store left behind is kept; a busy board or a
//! destination that holds a board is refused with nothing changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;
use crate::postgres::{database_url, fresh_slug};

/// A worker that completes its card.
const COMPLETE: &str = r#""$KANBAN_BIN" complete "$KANBAN_TASK" --result "done by the worker" > /dev/null"#;

/// Everything a person or a script reads of the current board, as JSON: each card's `show` (archived ones
/// included), `list` and `list --archived`, every event, each card's runs and attachments, the recurring
/// schedules, the notification log and the pauses.
fn state(k: &Kanban) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let all = k.json(&["list", "--archived", "--json"]);
    for card in all.as_array().unwrap() {
        let id = card["id"].as_str().unwrap();
        out.insert(format!("show {id}"), k.json(&["show", id, "--json"]));
        out.insert(format!("runs {id}"), k.json(&["runs", id, "--json"]));
        out.insert(format!("attachments {id}"), k.json(&["attachments", id, "--json"]));
    }
    out.insert("list --archived".into(), all);
    out.insert("list".into(), k.json(&["list", "--json"]));
    out.insert("events".into(), Value::Array(k.json_lines(&["events", "--json"])));
    out.insert("recurring".into(), k.json(&["recurring", "list", "--json"]));
    out.insert("notify log".into(), k.json(&["notify", "log", "--json"]));
    let mut board = k.json(&["board", "show", "--json"]);
    board.as_object_mut().unwrap().remove("db"); // names the engine: the one thing that changes
    out.insert("board show".into(), board);
    out
}

#[track_caller]
fn assert_same(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>, hop: &str) {
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "{hop}: the same reads");
    for (what, value) in before {
        assert_eq!(&after[what], value, "{hop}: `{what}` changed");
    }
}

fn table_rows(done: &Value) -> BTreeMap<String, u64> {
    done["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["table"].as_str().unwrap().into(), t["rows"].as_u64().unwrap()))
        .collect()
}

/// The files in a folder, sorted (empty if it does not exist).
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn max_event_id(k: &Kanban) -> i64 {
    k.json_lines(&["events", "--json"]).iter().filter_map(|e| e["id"].as_i64()).max().unwrap()
}

#[test]
fn a_sqlite_board_moves_to_postgres_and_back_with_every_card_event_run_and_file() {
    let url = database_url();
    let slug = fresh_slug();
    let f = Fleet::new();
    f.ok(&["board", "create", &slug]);
    f.ok(&["board", "switch", &slug]);
    let script = f.script("worker.sh", COMPLETE);
    // A notify route, so events enter the outbox (by a trigger on both engines): the copy must carry the
    // outbox rows as they are, not add one per copied event.
    let toml = format!(
        "{}\n[[notify]]\non = [\"completed\", \"created\"]\ncommand = [\"true\"]\n",
        f.profile("p", &script, &[])
    );
    std::fs::write(f.toml_path(&slug), toml).unwrap();
    f.ok(&["board", "check", &slug]);

    let parent =
        f.create("parent", &["--assignee", "p", "--priority", "3", "--body", "the body\nwith lines"]);
    let child = f.create("child", &["--parent", &parent, "--tenant", "acme"]);
    let other = f.create("other", &["--initial-status", "blocked"]);
    f.ok(&["link", &other, &child]);
    f.ok(&["comment", &child, "a comment that travels", "--author", "alice"]);
    let payload: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let file = f.write_file("blob.bin", &payload);
    f.ok(&["attach", &child, file.to_str().unwrap()]);
    f.ok(&["recurring", "add", "nightly", "--cron", "0 3 * * *"]);
    let gone = f.create("gone", &[]);
    f.ok(&["archive", &gone]);
    // Cards created in the same second are listed in the order they were made: the rowid must travel.
    let same_second: Vec<String> = (0..5).map(|i| f.create(&format!("same second {i}"), &[])).collect();
    f.dispatch_wait();
    assert_eq!(f.status(&parent), "done");
    assert_eq!(f.runs(&parent).len(), 1);
    f.ok(&["pause", "--reason", "moving house"]);
    let before = state(&f);
    let outbox = before["notify log"].as_array().unwrap().len();
    assert!(outbox > 0, "events entered the outbox: {}", before["notify log"]);

    // To PostgreSQL, the URL from the environment as `board create --database` takes it.
    let out =
        f.cmd(&["board", "migrate", &slug, "--json"]).env("KANBAN_DATABASE_URL", &url).output().unwrap();
    let done = parse_json(&expect_ok(&out, &"migrate to postgres"), &"migrate");
    assert_eq!(done["from"], "sqlite");
    assert_eq!(done["to"], "postgresql");
    assert_eq!(done["verified"], true);
    assert_eq!(done["schema"], format!("kanban_{slug}"));
    assert_eq!(done["warnings"], serde_json::json!([]));
    let keys: std::collections::BTreeSet<String> = done.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, crate::contract::documented_keys("Board migrate"));
    let keys: std::collections::BTreeSet<String> =
        done["tables"][0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, crate::contract::documented_keys("Migrated table"));
    let rows = table_rows(&done);
    assert_eq!(rows["tasks"], 9);
    assert_eq!(rows["task_runs"], 1);
    assert_eq!(rows["task_links"], 2);
    assert_eq!(rows["task_comments"], 1);
    assert_eq!(rows["task_attachments"], 1);
    assert_eq!(rows["recurring"], 1);
    assert_eq!(rows["pauses"], 1);
    assert_eq!(rows["notify_outbox"], outbox as u64);
    // The folder now names the database; the SQLite file is archived and still opens.
    let dir = f.board_dir(&slug);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(dir.join("database.url")).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!dir.join("kanban.db").exists(), "the SQLite file left the board's folder");
    let archived = PathBuf::from(done["sqlite"].as_str().unwrap());
    let archive = PathBuf::from(done["archive"].as_str().unwrap());
    assert!(archived.starts_with(f.home().join("archive")) && archived.starts_with(&archive), "{done}");
    assert_eq!(files(&archive), ["kanban.db", "migrate.json", "original"]);
    assert_eq!(files(&archive.join("original")), ["kanban.db"]);
    let shown = f.json(&["board", "show", "--json"]);
    assert!(shown["db"].as_str().unwrap().starts_with("postgres://"), "{shown}");
    // Its first load in PostgreSQL published the board's config for the hosts that join it: one
    // board-level event, appended after every copied one.
    let mut after = state(&f);
    let events = after.get_mut("events").unwrap().as_array_mut().unwrap();
    let published = events.pop().unwrap();
    assert_eq!(published["kind"], "config_published", "{published}");
    assert_eq!(published["task_id"], Value::Null);
    assert_same(&before, &after, "to PostgreSQL");
    let elsewhere = Kanban::new();
    elsewhere.ok(&["board", "create", "copy"]);
    std::fs::copy(&archived, elsewhere.db_path("copy")).unwrap();
    assert_eq!(
        elsewhere.json(&["--board", "copy", "list", "--archived", "--json"]),
        before["list --archived"]
    );
    assert_eq!(
        Value::Array(elsewhere.json_lines(&["--board", "copy", "events", "--json"])),
        before["events"]
    );
    // Attachment files stay in the folder, and still read.
    let att = &f.json(&["attachments", &child, "--json"])[0];
    assert_eq!(std::fs::read(att["path"].as_str().unwrap()).unwrap(), payload);

    // New cards, events and comments get fresh ids on PostgreSQL, after the copied ones.
    let last_event = max_event_id(&f);
    f.ok(&["resume"]);
    let fresh = f.create("made on postgres", &[]);
    let ids = f.list_ids(&[]);
    assert_eq!(ids.last(), Some(&fresh), "a new card is listed after the copied ones made in its second");
    let positions: Vec<usize> =
        same_second.iter().map(|id| ids.iter().position(|i| i == id).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "same-second cards keep their order: {ids:?}");
    assert!(max_event_id(&f) > last_event);
    let comment = f.ok(&["comment", &fresh, "second comment"]);
    assert!(comment.contains("comment 2"), "{comment}");
    assert_eq!(
        f.json(&["notify", "log", "--json"]).as_array().unwrap().len(),
        outbox + 1,
        "the new card's event entered the outbox once: the trigger is back, and fired once"
    );
    f.dispatch_wait();

    // And back to SQLite (the text output this time).
    let before = state(&f);
    let text = f.ok(&["board", "migrate", &slug, "--to", "sqlite"]);
    assert!(text.starts_with(&format!("Migrated board {slug} from PostgreSQL ")), "{text}");
    assert!(
        text.contains(&format!("(schema kanban_{slug}) to SQLite {}", dir.join("kanban.db").display())),
        "{text}"
    );
    assert!(text.contains("  tasks") && text.contains("10 row(s)"), "{text}");
    assert!(text.contains("verified: every table's row count and sha256"), "{text}");
    assert!(text.contains(&format!("the schema kanban_{slug} is left intact")), "{text}");
    assert!(dir.join("kanban.db").is_file());
    assert!(!dir.join("database.url").exists());
    let archive: Vec<String> =
        files(&f.home().join("archive")).into_iter().filter(|n| n.ends_with(".postgres")).collect();
    assert_eq!(archive.len(), 1, "{archive:?}");
    let archive = f.home().join("archive").join(&archive[0]);
    assert_eq!(files(&archive), ["database.url", "migrate.json"]);
    assert_eq!(std::fs::read_to_string(archive.join("database.url")).unwrap().trim(), url);
    let record: Value =
        serde_json::from_slice(&std::fs::read(archive.join("migrate.json")).unwrap()).unwrap();
    assert_eq!(record["to"], "sqlite");
    assert_eq!(table_rows(&record)["tasks"], 10);
    assert!(files(&dir).iter().all(|n| !n.contains("migrating")), "{:?}", files(&dir));
    assert_same(&before, &state(&f), "back to SQLite");
    let last_event = max_event_id(&f);
    let again = f.create("made on sqlite again", &[]);
    assert_eq!(f.list_ids(&[]).last(), Some(&again));
    assert!(max_event_id(&f) > last_event);
    assert!(f.ok(&["comment", &again, "third"]).contains("comment 3"));

    // The schema was left as it was: another host that names it sees the board as it was migrated back.
    let other_host = Fleet::new();
    expect_ok(&other_host.run(&["board", "create", &slug, "--database", &url]), &"join");
    let there = other_host.json(&["--board", &slug, "list", "--archived", "--json"]);
    assert_eq!(there, before["list --archived"]);
}

#[test]
fn a_busy_board_is_refused_either_way_and_nothing_changes() {
    let url = database_url();
    let slug = fresh_slug();
    let k = Kanban::new();
    k.ok(&["board", "create", &slug]);
    k.ok(&["board", "switch", &slug]);
    let running = k.create("running", &["--initial-status", "running"]);
    let quiet = k.create("quiet", &[]);
    let before = state(&k);
    let err = k.fails(&["board", "migrate", &slug, "--to", &url], 1);
    assert!(err.contains(&format!("board '{slug}' is not quiet")), "{err}");
    assert!(err.contains(&running) && !err.contains(&quiet), "{err}");
    assert!(err.contains("stop the daemons first"), "{err}");
    assert!(k.db_path(&slug).is_file());
    assert!(!k.board_dir(&slug).join("database.url").exists());
    assert_eq!(files(&k.home().join("archive")), Vec::<String>::new(), "no archive left behind");
    assert_same(&before, &state(&k), "refused");
    // The schema was not even made: a board created there now is empty.
    let other = Kanban::new();
    other.ok(&["board", "create", &slug, "--database", &url]);
    assert_eq!(other.json(&["--board", &slug, "list", "--json"]), serde_json::json!([]));

    // A PostgreSQL board with a running card stays where it is too.
    let pg = fresh_slug();
    k.ok(&["board", "create", &pg, "--database", &url]);
    let busy = k.create("busy", &["--board", &pg, "--initial-status", "running"]);
    let err = k.fails(&["board", "migrate", &pg, "--to", "sqlite"], 1);
    assert!(err.contains("is not quiet") && err.contains(&busy), "{err}");
    assert!(k.board_dir(&pg).join("database.url").is_file());
    assert_eq!(files(&k.board_dir(&pg)).iter().filter(|n| n.starts_with("kanban.db")).count(), 0);
    assert_eq!(k.json(&["--board", &pg, "show", &busy, "--json"])["task"]["status"], "running");
}

#[test]
fn a_destination_schema_that_holds_a_board_is_never_overwritten() {
    let url = database_url();
    let slug = fresh_slug();
    // Another host made the board in PostgreSQL already, with a card.
    let there = Kanban::new();
    there.ok(&["board", "create", &slug, "--database", &url]);
    let theirs = there.create("theirs", &["--board", &slug]);
    let their_state = there.json(&["--board", &slug, "list", "--json"]);

    let k = Kanban::new();
    k.ok(&["board", "create", &slug]);
    k.ok(&["board", "switch", &slug]);
    k.create("mine", &[]);
    let before = state(&k);
    let err = k.fails(&["board", "migrate", &slug, "--to", &url], 1);
    assert!(err.contains(&format!("board '{slug}' cannot move to")), "{err}");
    assert!(err.contains("already holds a board (tasks has 1 row(s))"), "{err}");
    assert!(err.contains(&format!("DROP SCHEMA \"kanban_{slug}\" CASCADE")), "{err}");
    assert!(k.db_path(&slug).is_file() && !k.board_dir(&slug).join("database.url").exists());
    assert_eq!(files(&k.home().join("archive")), Vec::<String>::new());
    assert_same(&before, &state(&k), "refused");
    assert_eq!(there.json(&["--board", &slug, "list", "--json"]), their_state);
    assert_eq!(there.json(&["--board", &slug, "show", &theirs, "--json"])["task"]["title"], "theirs");

    // Other refusals: the engine it is already in, a destination that is no engine.
    let err = k.fails(&["board", "migrate", &slug, "--to", "sqlite"], 1);
    assert!(err.contains(&format!("board '{slug}' is already in SQLite")), "{err}");
    let err = k.fails(&["board", "migrate", &slug, "--to", "mysql://u:secret@db/k"], 2);
    assert!(err.contains("--to must be a postgres:// or postgresql:// URL, or `sqlite`"), "{err}");
    assert!(!err.contains("secret"), "{err}");
    let err = there.fails(&["board", "migrate", &slug, "--to", &url], 1);
    assert!(err.contains("is already in PostgreSQL"), "{err}");
}
