//! Portable boards: `kanban board export` and `kanban board import` (docs/cli.md "board export").

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{Fleet, Kanban, test_plugin};

/// A worker that completes its card.
const COMPLETE: &str = r#""$KANBAN_BIN" complete "$KANBAN_TASK" --result ok"#;

fn export(k: &Kanban, slug: &str, file: &Path) -> Value {
    k.json(&["board", "export", slug, "-o", file.to_str().unwrap(), "--json"])
}

fn import(k: &Kanban, file: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["board", "import", file.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    k.json(&args)
}

/// Every entry under `<home>/boards/` (hidden staging folders included).
fn board_entries(k: &Kanban) -> Vec<String> {
    match std::fs::read_dir(k.home().join("boards")) {
        Ok(entries) => {
            let mut names: Vec<String> =
                entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}

/// The members of a tar archive, in order, with their bytes.
fn members(file: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(file).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_str().unwrap().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Write `members` as a tar archive at `file`.
fn write_members(file: &Path, members: &[(String, Vec<u8>)]) {
    let mut builder = tar::Builder::new(std::fs::File::create(file).unwrap());
    for (path, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, bytes.as_slice()).unwrap();
    }
    builder.finish().unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn card_ids(k: &Kanban, board: &str) -> Vec<String> {
    let list = k.json(&["--board", board, "list", "--archived", "--json"]);
    let mut ids: Vec<String> =
        list.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

#[test]
fn export_then_import_round_trips_the_board_its_attachments_and_its_plugin() {
    let f = Fleet::new();
    let script = f.script("worker.sh", COMPLETE);
    let profile = f.profile("p", &script, &[]);
    f.write_board(&profile);
    let parent = f.create("parent", &["--assignee", "p"]);
    let child = f.create("child", &[]);
    f.ok(&["link", &parent, &child]);
    f.ok(&["comment", &child, "a comment that travels"]);
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let file = f.write_file("blob.bin", &payload);
    f.ok(&["attach", &child, file.to_str().unwrap()]);
    f.dispatch_wait();
    assert_eq!(f.status(&parent), "done");
    // An installed plugin the board names, and a built-in (not carried).
    f.ok(&["plugin", "install", test_plugin("probe").to_str().unwrap(), "--name", "probe"]);
    f.write_board(&format!(
        "{profile}\n[[policies]]\nkind = \"respawn-guard\"\nplugin = \"probe\"\n\n[[policies]]\nkind = \"diagnostics\"\nplugin = \"builtin:diagnostics\"\n"
    ));
    let toml = std::fs::read(f.toml_path("default")).unwrap();

    let archive = f.home().join("default.kanban");
    let done = export(&f, "default", &archive);
    assert_eq!(done["cards"], 2);
    assert_eq!(done["format_version"], 1);
    assert_eq!(done["plugins"], serde_json::json!(["probe"]));
    let bytes = std::fs::read(&archive).unwrap();
    assert_eq!(done["bytes"], bytes.len() as u64);
    assert_eq!(done["sha256"], sha256(&bytes));
    let listed = members(&archive);
    assert_eq!(listed[0].0, "manifest.json");
    let manifest: Value = serde_json::from_slice(&listed[0].1).unwrap();
    assert_eq!(manifest["format"], "kanban-board");
    for (path, body) in &listed[1..] {
        let entry = manifest["files"].as_array().unwrap().iter().find(|e| e["path"] == *path).unwrap();
        assert_eq!(entry["size"], body.len() as u64, "{path}");
        assert_eq!(entry["sha256"], sha256(body), "{path}");
    }
    assert!(
        !listed.iter().any(|(p, _)| p.contains("logs/") || p.contains("workspaces/")),
        "no logs, no workspaces"
    );

    let there = Kanban::new();
    let done = import(&there, &archive, &[]);
    assert_eq!(done["slug"], "default");
    assert_eq!(done["cards"], 2);
    assert_eq!(done["plugins"][0]["status"], "installed");
    let keys: std::collections::BTreeSet<String> =
        done["plugins"][0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, crate::contract::documented_keys("Imported plugin"));
    assert_eq!(there.snapshot(), f.snapshot(), "cards, links and events are the same");
    assert_eq!(there.json(&["runs", &parent, "--json"]), f.json(&["runs", &parent, "--json"]));
    assert_eq!(
        there.json(&["show", &child, "--json"])["comments"],
        f.json(&["show", &child, "--json"])["comments"]
    );
    assert_eq!(std::fs::read(there.toml_path("default")).unwrap(), toml);
    let atts = there.json(&["attachments", &child, "--json"]);
    let att = &atts.as_array().unwrap()[0];
    let stored = PathBuf::from(att["path"].as_str().unwrap());
    assert!(stored.starts_with(there.board_dir("default")), "{att}");
    assert_eq!(std::fs::read(stored).unwrap(), payload, "the attachment's bytes are equal");
    let plugin = there.json(&["plugin", "show", "probe", "--json"]);
    assert_eq!(plugin["sha256"], sha256(&std::fs::read(test_plugin("probe")).unwrap()));
    there.ok(&["board", "check", "default"]);
}

#[test]
fn export_refuses_an_existing_file_unless_forced_and_leaves_no_temporary_file() {
    let k = Kanban::new();
    k.ok(&["board", "create", "b"]);
    let out = k.home().join("b.kanban");
    std::fs::write(&out, b"keep me").unwrap();
    let err = k.fails(&["board", "export", "b", "-o", out.to_str().unwrap()], 1);
    assert!(err.contains("already exists") && err.contains("b.kanban"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let text = k.ok(&["board", "export", "b", "-o", out.to_str().unwrap(), "--force"]);
    assert!(text.starts_with("Exported board b: 0 card(s), 2 file(s)"), "{text}");
    assert_eq!(members(&out)[0].0, "manifest.json");
    let leftovers: Vec<_> = std::fs::read_dir(k.home())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    k.fails(&["board", "export", "nope", "-o", k.home().join("x").to_str().unwrap()], 1);
    assert!(!k.home().join("x").exists());
}

#[test]
fn export_takes_a_consistent_snapshot_while_another_process_writes() {
    let k = Kanban::new();
    k.ok(&["board", "create", "b"]);
    let id = k.create("card", &["--board", "b"]);
    // Another connection holds a write transaction open across the whole export: its row is not committed,
    // so it must not be in the snapshot, and the export must not wait for it.
    let holder = rusqlite::Connection::open(k.db_path("b")).unwrap();
    holder
        .execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO task_comments (task_id, body) VALUES ('x', 'uncommitted');",
        )
        .unwrap();
    // And other processes keep committing.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let home = k.home().to_path_buf();
        let id = id.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 200 {
                let _ = crate::common::clean_cmd()
                    .arg("--home")
                    .arg(&home)
                    .args(["--board", "b", "comment", &id, &format!("comment {n}")])
                    .env("KANBAN_BUSY_TIMEOUT_MS", "30000")
                    .output();
                n += 1;
            }
        })
    };
    let archive = k.home().join("b.kanban");
    let started = std::time::Instant::now();
    let out = k
        .cmd(&["board", "export", "b", "-o", archive.to_str().unwrap()])
        .env("KANBAN_BUSY_TIMEOUT_MS", "500")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    holder.execute_batch("ROLLBACK").unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();

    let there = Kanban::new();
    import(&there, &archive, &[]);
    let db = rusqlite::Connection::open(there.db_path("b")).unwrap();
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let uncommitted: i64 = db
        .query_row("SELECT count(*) FROM task_comments WHERE body = 'uncommitted'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(uncommitted, 0, "an uncommitted write is not in the snapshot");
    assert_eq!(there.json(&["--board", "b", "show", &id, "--json"])["task"]["title"], "card");
}

#[test]
fn a_tampered_archive_is_refused_before_anything_is_written() {
    let k = Kanban::new();
    k.ok(&["board", "create", "b"]);
    let id = k.create("card", &["--board", "b"]);
    let file = k.write_file("note.txt", b"ATTACHMENT-PAYLOAD-0123456789");
    k.ok(&["--board", "b", "attach", &id, file.to_str().unwrap()]);
    let archive = k.home().join("b.kanban");
    export(&k, "b", &archive);
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.windows(19).position(|w| w == b"ATTACHMENT-PAYLOAD-").unwrap();
    bytes[at + 20] ^= 1; // one byte of one file
    let tampered = k.home().join("tampered.kanban");
    std::fs::write(&tampered, &bytes).unwrap();

    let there = Kanban::new();
    let err = there.fails(&["board", "import", tampered.to_str().unwrap()], 1);
    assert!(err.contains("board/attachments/") && err.contains("does not match"), "{err}");
    assert!(board_entries(&there).is_empty(), "{:?}", board_entries(&there));
    assert!(!there.home().join("plugins").exists());

    // A truncated archive too.
    let cut = k.home().join("cut.kanban");
    std::fs::write(&cut, &std::fs::read(&archive).unwrap()[..3000]).unwrap();
    there.fails(&["board", "import", cut.to_str().unwrap()], 1);
    assert!(board_entries(&there).is_empty());
}

/// Rewrite an exported archive with `db` as its database (manifest updated to match, so only the database
/// differs), written to `<home>/<name>`.
fn with_database(k: &Kanban, archive: &Path, db: &[u8], name: &str) -> PathBuf {
    let mut list = members(archive);
    let at = list.iter().position(|(p, _)| p == "board/kanban.db").unwrap();
    list[at].1 = db.to_vec();
    let version = i64::from(i32::from_be_bytes(db[60..64].try_into().unwrap()));
    let mut manifest: Value = serde_json::from_slice(&list[0].1).unwrap();
    manifest["schema_version"] = version.into();
    for entry in manifest["files"].as_array_mut().unwrap() {
        if entry["path"] == "board/kanban.db" {
            entry["size"] = (db.len() as u64).into();
            entry["sha256"] = sha256(db).into();
        }
    }
    list[0].1 = serde_json::to_vec(&manifest).unwrap();
    let out = k.home().join(name);
    write_members(&out, &list);
    out
}

/// Rewrite an exported archive with its database's `user_version` set to `version`.
fn with_schema(k: &Kanban, archive: &Path, version: i64) -> PathBuf {
    let list = members(archive);
    let db_path = k.home().join(format!("scratch-{version}.db"));
    let db = list.iter().find(|(p, _)| p == "board/kanban.db").unwrap();
    std::fs::write(&db_path, &db.1).unwrap();
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
    conn.close().unwrap();
    with_database(k, archive, &std::fs::read(&db_path).unwrap(), &format!("schema-{version}.kanban"))
}

#[test]
fn an_archive_with_a_newer_schema_is_refused() {
    let k = Kanban::new();
    k.ok(&["board", "create", "b"]);
    let archive = k.home().join("b.kanban");
    export(&k, "b", &archive);
    let newer = with_schema(&k, &archive, kanban::store::SCHEMA_VERSION + 1);
    let there = Kanban::new();
    let err = there.fails(&["board", "import", newer.to_str().unwrap()], 1);
    assert!(err.contains("newer than this kanban understands"), "{err}");
    assert!(board_entries(&there).is_empty());
    // The same archive rebuilt at the current version imports: the refusal was the schema's.
    let same = with_schema(&k, &archive, kanban::store::SCHEMA_VERSION);
    import(&there, &same, &[]);
}

#[test]
fn an_archive_with_an_older_schema_is_migrated_as_opening_a_board_does() {
    let k = Kanban::new();
    k.ok(&["board", "create", "b"]);
    let archive = k.home().join("b.kanban");
    export(&k, "b", &archive);
    let legacy_path = k.home().join("legacy.db");
    let conn = rusqlite::Connection::open(&legacy_path).unwrap();
    conn.execute_batch(include_str!("fixtures/legacy-v1.sql")).unwrap();
    conn.close().unwrap();
    let legacy = std::fs::read(&legacy_path).unwrap();
    let old = with_database(&k, &archive, &legacy, "legacy.kanban");

    let there = Kanban::new();
    let done = import(&there, &old, &[]);
    assert!(done["schema_version"].as_i64().unwrap() < kanban::store::SCHEMA_VERSION, "{done}");
    let db = rusqlite::Connection::open(there.db_path("b")).unwrap();
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, kanban::store::SCHEMA_VERSION);
    assert_eq!(done["cards"].as_i64().unwrap(), card_ids(&there, "b").len() as i64);
}

#[test]
fn import_never_replaces_a_board_unless_forced_and_as_renames() {
    let k = Kanban::new();
    k.ok(&["board", "create", "b"]);
    let id = k.create("exported card", &["--board", "b"]);
    let archive = k.home().join("b.kanban");
    export(&k, "b", &archive);

    let there = Kanban::new();
    there.ok(&["board", "create", "b"]);
    let local = there.create("local card", &["--board", "b"]);
    let err = there.fails(&["board", "import", archive.to_str().unwrap()], 1);
    assert!(err.contains("board 'b' already exists") && err.contains("--as"), "{err}");
    assert_eq!(card_ids(&there, "b"), vec![local.clone()], "the existing board is untouched");

    let done = import(&there, &archive, &["--as", "copy"]);
    assert_eq!(done["slug"], "copy");
    assert_eq!(done["source_slug"], "b");
    assert_eq!(card_ids(&there, "copy"), vec![id.clone()]);
    there.fails(&["board", "import", archive.to_str().unwrap(), "--as", "Bad Slug"], 2);

    there.ok(&["board", "switch", "b"]);
    let done = import(&there, &archive, &["--force"]);
    assert_eq!(
        std::fs::read_to_string(there.home().join("current")).unwrap().trim(),
        "b",
        "still the current board"
    );
    let moved = PathBuf::from(done["replaced"].as_str().unwrap());
    assert!(moved.starts_with(there.home().join("archive")) && moved.join("kanban.db").exists(), "{done}");
    assert_eq!(card_ids(&there, "b"), vec![id]);
    assert_eq!(board_entries(&there), vec!["b".to_string(), "copy".to_string()], "no staging left behind");
}

#[test]
fn a_card_running_in_the_snapshot_is_requeued_on_import_without_a_counted_failure() {
    let f = Fleet::new();
    let script = f.script("worker.sh", "sleep 600");
    f.write_board(&f.profile("p", &script, &[]));
    let id = f.create("long job", &["--assignee", "p"]);
    f.dispatch(&[]);
    f.wait_worker(&id);
    assert_eq!(f.status(&id), "running");
    let archive = f.home().join("default.kanban");
    export(&f, "default", &archive);
    assert_eq!(f.status(&id), "running", "exporting does not disturb the running card");

    let there = Kanban::new();
    let done = import(&there, &archive, &[]);
    assert_eq!(done["released"][0]["id"], id.as_str());
    assert_eq!(done["released"][0]["status"], "ready");
    let keys: std::collections::BTreeSet<String> =
        done["released"][0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, crate::contract::documented_keys("Released card"));
    let task = there.task(&id);
    assert_eq!(task["status"], "ready");
    assert_eq!(task["consecutive_failures"], 0, "{task}");
    let runs = there.json(&["runs", &id, "--json"]);
    assert_eq!(runs[0]["outcome"], "reclaimed", "{runs}");
}

#[test]
fn a_worker_cannot_export_or_import() {
    let k = Kanban::new();
    k.ok(&["board", "create", "b"]);
    let archive = k.home().join("b.kanban");
    export(&k, "b", &archive);
    for (args, name) in [
        (vec!["board", "export", "b", "-o", "/tmp/never.kanban"], "kanban board export"),
        (vec!["board", "import", archive.to_str().unwrap(), "--as", "c"], "kanban board import"),
    ] {
        let out = k.cmd(&args).env("KANBAN_TASK", "t_00000000").output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name), "{err}");
    }
    assert!(!Path::new("/tmp/never.kanban").exists());
    assert!(!k.board_dir("c").exists());
}

#[test]
fn import_never_replaces_a_different_plugin_of_the_same_name() {
    let k = Kanban::new();
    k.ok(&["board", "create", "b"]);
    k.ok(&["plugin", "install", test_plugin("probe").to_str().unwrap(), "--name", "guard"]);
    std::fs::write(k.toml_path("b"), "[[policies]]\nkind = \"respawn-guard\"\nplugin = \"guard\"\n").unwrap();
    let archive = k.home().join("b.kanban");
    export(&k, "b", &archive);

    let there = Kanban::new();
    there.ok(&["plugin", "install", test_plugin("hostile").to_str().unwrap(), "--name", "guard"]);
    let before = there.json(&["plugin", "show", "guard", "--json"]);
    let err = there.fails(&["board", "import", archive.to_str().unwrap()], 1);
    assert!(err.contains("plugin 'guard'") && err.contains("refusing to replace"), "{err}");
    assert!(board_entries(&there).is_empty());
    assert_eq!(there.json(&["plugin", "show", "guard", "--json"]), before);

    // The same plugin already installed is simply present.
    let same = Kanban::new();
    same.ok(&["plugin", "install", test_plugin("probe").to_str().unwrap(), "--name", "guard"]);
    assert_eq!(import(&same, &archive, &[])["plugins"][0]["status"], "present");
}
