//! Schema migrations against a legacy database file (tests/fixtures/legacy-v1.sql).

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use serde_json::Value;

const LEGACY: &str = include_str!("fixtures/legacy-v1.sql");

/// A home whose board `legacy` holds the legacy database.
fn legacy_home(extra_sql: &str) -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::tempdir().unwrap();
    let board = home.path().join("boards/legacy");
    std::fs::create_dir_all(&board).unwrap();
    std::fs::write(board.join("board.toml"), "[board]\nname = \"Legacy\"\n").unwrap();
    let db = board.join("kanban.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(LEGACY).unwrap();
    conn.execute_batch(extra_sql).unwrap();
    drop(conn);
    (home, db)
}

fn kanban(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kanban"))
        .arg("--home")
        .arg(home)
        .args(["--board", "legacy"])
        .args(args)
        .env_remove("KANBAN_BOARD")
        .env_remove("KANBAN_TASK")
        .env("KANBAN_NOW", "1800000000")
        .output()
        .unwrap()
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn index_names(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

fn events_pk_type(db: &Path) -> String {
    let conn = Connection::open(db).unwrap();
    conn.query_row("SELECT type FROM pragma_table_info('task_events') WHERE pk = 1", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_legacy_board_migrates_with_its_data_and_indexes() {
    let (home, db) = legacy_home("");
    assert_eq!(events_pk_type(&db), "TEXT");

    let events = json_lines(&kanban(home.path(), &["events", "--json"]));
    // Every legacy event survives, in time order, under new integer ids.
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "created", "completed", "note"]);
    assert!(events.windows(2).all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()));
    assert_eq!(events[2]["payload"]["result"], "ok");
    assert_eq!(events[1]["payload"], serde_json::json!({}), "a NULL payload takes the column default");
    assert_eq!(events[3]["payload"], "plain text payload", "a non-JSON payload is kept as text");
    assert!(events.iter().all(|e| e["run_id"].is_null()));

    assert_eq!(events_pk_type(&db), "INTEGER");
    let indexes = index_names(&db);
    for wanted in ["task_events_run", "task_events_task", "tasks_idempotency_key", "tasks_dispatch_order"] {
        assert!(indexes.iter().any(|i| i == wanted), "missing index {wanted}: {indexes:?}");
    }
    let version: i64 =
        Connection::open(&db).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, kanban::store::SCHEMA_VERSION, "migrated to the current schema version");

    // Cards, links and new columns read back; the legacy card is fully usable.
    let out = kanban(home.path(), &["show", "t_0000000b", "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["task"]["title"], "Legacy child");
    assert_eq!(shown["task"]["consecutive_failures"], 0);
    assert_eq!(shown["parents"][0]["id"], "t_0000000a");
    let out = kanban(home.path(), &["show", "t_0000000a", "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["task"]["body"], "", "a NULL legacy body reads as empty");
    assert!(kanban(home.path(), &["comment", "t_0000000b", "works"]).status.success());
    // The legacy idempotency key is enforced by the new unique index.
    let out = kanban(home.path(), &["create", "Again", "--idempotency-key", "legacy-key", "--json"]);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["id"], "t_0000000a");
}

#[test]
fn migrating_twice_changes_nothing() {
    let (home, db) = legacy_home("");
    let first = json_lines(&kanban(home.path(), &["events", "--json"]));
    let schema_after_first: Vec<String> = {
        let conn = Connection::open(&db).unwrap();
        let mut stmt =
            conn.prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    // Force the migration to run again on an already-migrated file.
    Connection::open(&db).unwrap().execute_batch("PRAGMA user_version = 1").unwrap();
    let second = json_lines(&kanban(home.path(), &["events", "--json"]));
    assert_eq!(first, second);
    let conn = Connection::open(&db).unwrap();
    let mut stmt = conn.prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").unwrap();
    let schema_after_second: Vec<String> =
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(schema_after_first, schema_after_second);
}

#[test]
fn a_migration_that_fails_leaves_the_legacy_file_untouched() {
    // Two live cards share an idempotency key: the new unique index cannot be built, at the very end of the
    // migration. Because it is one transaction, the rebuilt events table and added columns roll back too.
    let (home, db) = legacy_home(
        "INSERT INTO tasks VALUES ('t_0000000c', 'Dup', '', 'ready', NULL, 0, 1700000500, 'legacy-key');",
    );
    let out = kanban(home.path(), &["list", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("kanban: "), "{stderr}");
    assert!(stderr.contains("kanban.db"), "the error names the database: {stderr}");
    assert_eq!(events_pk_type(&db), "TEXT", "the events table was not half-migrated");
    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 1);
    let has_updated_at: bool = conn
        .query_row("SELECT count(*) FROM pragma_table_info('tasks') WHERE name = 'updated_at'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!has_updated_at);
    assert!(!has_table(&db, "pauses"), "no table of a later version was left behind");
}

fn has_table(db: &Path, name: &str) -> bool {
    let conn = Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Schema version 7 added the `pauses` table: a board written by a version-6 build (which had none) gains
/// it on first open, keeps its cards, and can be paused.
#[test]
fn a_version_6_board_gains_the_pauses_table() {
    let (home, db) = legacy_home("");
    assert!(kanban(home.path(), &["list"]).status.success());
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("DROP TABLE pauses; PRAGMA user_version = 6").unwrap();
    drop(conn);
    assert!(!has_table(&db, "pauses"));
    let out = kanban(home.path(), &["pause", "--reason", "after the upgrade"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let version: i64 =
        Connection::open(&db).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, kanban::store::SCHEMA_VERSION);
    let out = kanban(home.path(), &["board", "show", "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["pauses"][0]["reason"], "after the upgrade");
    assert_eq!(shown["counts"]["done"], 1, "the cards are still there: {shown}");
}
