//! Black-box tests for the board commands and board resolution (contract: "Boards").

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

fn board_list(k: &Kanban) -> Vec<Value> {
    k.json(&["board", "list", "--json"]).as_array().expect("board list --json is an array").clone()
}

fn slugs(k: &Kanban) -> Vec<String> {
    board_list(k).iter().map(|b| b["slug"].as_str().expect("slug").to_string()).collect()
}

fn current_slugs(k: &Kanban) -> Vec<String> {
    board_list(k)
        .iter()
        .filter(|b| b["current"] == true)
        .map(|b| b["slug"].as_str().unwrap().to_string())
        .collect()
}

fn same_path(got: &Value, want: &Path) {
    let got = PathBuf::from(got.as_str().unwrap_or_else(|| panic!("path is not a string: {got}")));
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    assert_eq!(canon(&got), canon(want), "{} vs {}", got.display(), want.display());
}

/// `list --json` ids with `KANBAN_BOARD` set (and optional extra global args before `list`).
fn list_with_env(k: &Kanban, env_board: Option<&str>, pre: &[&str]) -> Vec<String> {
    let mut args: Vec<&str> = pre.to_vec();
    args.extend(["list", "--json"]);
    let mut cmd = k.cmd(&args);
    if let Some(b) = env_board {
        cmd.env("KANBAN_BOARD", b);
    }
    let out = cmd.output().expect("spawn");
    let v = parse_json(&expect_ok(&out, &args), &args);
    ids(&v)
}

fn assert_layout(k: &Kanban, slug: &str) {
    let dir = k.board_dir(slug);
    assert!(dir.join("board.toml").is_file(), "{slug}: board.toml");
    assert!(dir.join("kanban.db").is_file(), "{slug}: kanban.db");
    for sub in ["workspaces", "attachments", "logs"] {
        assert!(dir.join(sub).is_dir(), "{slug}: {sub}/");
    }
}

fn comment_lines(text: &str) -> Vec<String> {
    text.lines().filter(|l| l.trim_start().starts_with('#')).map(str::to_string).collect()
}

#[test]
fn default_board_is_auto_created() {
    let k = Kanban::new();
    assert!(!k.board_dir("default").exists());
    k.ok(&["list"]);
    assert_layout(&k, "default");
    assert_eq!(slugs(&k), ["default"]);
    assert_eq!(current_slugs(&k), ["default"]);
    let id = k.create("Card", &[]);
    assert_eq!(k.list_ids(&[]), [id]);
}

#[test]
fn board_create_makes_layout() {
    let k = Kanban::new();
    k.ok(&["board", "create", "alpha", "--name", "Alpha Board"]);
    assert_layout(&k, "alpha");
    let show = k.json(&["board", "show", "alpha", "--json"]);
    assert_eq!(show["slug"], "alpha");
    assert_eq!(show["name"], "Alpha Board");
    assert!(show["default_workdir"].is_null());

    let wd = k.home().join("work");
    std::fs::create_dir_all(&wd).unwrap();
    k.ok(&["board", "create", "beta", "--default-workdir", wd.to_str().unwrap()]);
    let show = k.json(&["board", "show", "beta", "--json"]);
    same_path(&show["default_workdir"], &wd);
    k.ok(&["board", "check", "beta"]);

    // Existing slug: refused.
    k.fails(&["board", "create", "alpha"], 1);
    k.ok(&["list"]);
    k.fails(&["board", "create", "default"], 1);
    assert_eq!(k.json(&["board", "show", "alpha", "--json"])["name"], "Alpha Board");
}

#[test]
fn board_create_rejects_bad_slugs() {
    let k = Kanban::new();
    let long = "x".repeat(65);
    for slug in ["Upper", "-lead", "_lead", "a b", "a.b", "a/b", "../up", "", "ünï", &long] {
        k.fails(&["board", "create", slug], 2);
    }
    assert!(
        !k.home().join("boards").exists() || std::fs::read_dir(k.home().join("boards")).unwrap().count() == 0,
        "no board folder was created"
    );
    let max = "x".repeat(64);
    for slug in ["a", "0-x_y", "z9", &max] {
        k.ok(&["board", "create", slug]);
        assert_layout(&k, slug);
    }
}

#[test]
fn board_create_relative_workdir_is_usage_error() {
    let k = Kanban::new();
    k.fails(&["board", "create", "rel", "--default-workdir", "relative/dir"], 2);
    assert!(!k.board_dir("rel").exists());
}

#[test]
fn board_list_json() {
    let k = Kanban::new();
    k.ok(&["board", "create", "one", "--name", "One"]);
    k.ok(&["board", "create", "two"]);
    let list = board_list(&k);
    for b in &list {
        assert_keys(b, &["slug", "name", "path", "current"], "board list item");
        assert!(b["current"].is_boolean());
    }
    let one = list.iter().find(|b| b["slug"] == "one").expect("one listed");
    assert_eq!(one["name"], "One");
    same_path(&one["path"], &k.board_dir("one"));
    assert!(list.iter().any(|b| b["slug"] == "two"));
    k.ok(&["board", "list"]);
}

#[test]
fn board_show_json_and_counts() {
    let k = Kanban::new();
    k.ok(&["board", "create", "proj"]);
    k.ok(&["--board", "proj", "create", "r1"]);
    k.ok(&["--board", "proj", "create", "r2"]);
    k.ok(&["--board", "proj", "create", "t1", "--triage"]);
    let show = k.json(&["board", "show", "proj", "--json"]);
    assert_keys(&show, &["slug", "name", "path", "db", "default_workdir", "counts"], "board show");
    assert_eq!(show["slug"], "proj");
    same_path(&show["path"], &k.board_dir("proj"));
    same_path(&show["db"], &k.db_path("proj"));
    let count = |s: &str| show["counts"].get(s).and_then(Value::as_i64).unwrap_or(0);
    assert_eq!(count("ready"), 2);
    assert_eq!(count("triage"), 1);
    assert_eq!(count("done"), 0);

    // Without a slug: the current board.
    k.ok(&["list"]);
    let cur = k.json(&["board", "show", "--json"]);
    assert_eq!(cur["slug"], "default");
    k.ok(&["board", "show", "proj"]);
    k.fails(&["board", "show", "nope"], 1);
}

#[test]
fn board_switch_changes_current() {
    let k = Kanban::new();
    k.ok(&["board", "create", "other"]);
    let in_default = k.create("In default", &[]);
    k.ok(&["board", "switch", "other"]);
    let cur = std::fs::read_to_string(k.home().join("current")).expect("<home>/current");
    assert_eq!(cur.trim(), "other");
    assert_eq!(current_slugs(&k), ["other"]);
    assert!(k.list_ids(&[]).is_empty());
    let in_other = k.create("In other", &[]);
    assert_eq!(k.list_ids(&[]), [in_other.as_str()]);
    assert_eq!(k.json(&["board", "show", "--json"])["slug"], "other");

    k.fails(&["board", "switch", "missing"], 1);
    assert_eq!(std::fs::read_to_string(k.home().join("current")).unwrap().trim(), "other");
    k.ok(&["board", "switch", "default"]);
    assert_eq!(k.list_ids(&[]), [in_default]);
}

#[test]
fn board_resolution_precedence() {
    let k = Kanban::new();
    let mut cards = std::collections::HashMap::new();
    cards.insert("default", k.create("d", &[]));
    for slug in ["a", "b", "c"] {
        k.ok(&["board", "create", slug]);
        let out = k.ok(&["--board", slug, "create", slug, "--json"]);
        let v = parse_json(&out, &slug);
        cards.insert(slug, v["id"].as_str().unwrap().to_string());
    }
    let one = |slug: &str| vec![cards[slug].clone()];

    // Nothing set: default.
    assert_eq!(list_with_env(&k, None, &[]), one("default"));
    // --board wins over everything.
    assert_eq!(list_with_env(&k, None, &["--board", "a"]), one("a"));

    // The current board.
    k.ok(&["board", "switch", "c"]);
    assert_eq!(list_with_env(&k, None, &[]), one("c"));
    // $KANBAN_BOARD beats the current board.
    assert_eq!(list_with_env(&k, Some("b"), &[]), one("b"));
    // --board beats $KANBAN_BOARD.
    assert_eq!(list_with_env(&k, Some("b"), &["--board", "a"]), one("a"));

    // A missing board named by $KANBAN_BOARD is refused, not created.
    let mut cmd = k.cmd(&["list"]);
    cmd.env("KANBAN_BOARD", "ghost");
    let err = expect_fail(&cmd.output().unwrap(), &"KANBAN_BOARD=ghost list", 1);
    assert!(err.contains("ghost"), "{err}");
    assert!(!k.board_dir("ghost").exists());
}

#[test]
fn unknown_board_is_refused() {
    let k = Kanban::new();
    let err = k.fails(&["--board", "nope", "list"], 1);
    assert!(err.contains("board 'nope' not found"), "{err}");
    k.fails(&["--board", "nope", "create", "x"], 1);
    assert!(!k.board_dir("nope").exists(), "a missing board is not created");
}

#[test]
fn board_rm_moves_to_archive() {
    let k = Kanban::new();
    k.ok(&["list"]);
    k.ok(&["board", "create", "old"]);
    k.ok(&["--board", "old", "create", "keep me"]);
    k.ok(&["board", "rm", "old"]);
    assert!(!k.board_dir("old").exists());
    assert!(!slugs(&k).contains(&"old".to_string()));
    let archive = k.home().join("archive");
    let entries: Vec<PathBuf> =
        std::fs::read_dir(&archive).expect("<home>/archive exists").map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].join("board.toml").is_file());
    assert!(entries[0].join("kanban.db").is_file());
    k.fails(&["--board", "old", "list"], 1);
    k.fails(&["board", "rm", "old"], 1);
    k.fails(&["board", "rm", "never"], 1);
}

#[test]
fn board_rm_delete_removes_folder() {
    let k = Kanban::new();
    k.ok(&["list"]);
    k.ok(&["board", "create", "gone"]);
    k.ok(&["--board", "gone", "create", "bye"]);
    k.ok(&["board", "rm", "gone", "--delete"]);
    assert!(!k.board_dir("gone").exists());
    assert!(!slugs(&k).contains(&"gone".to_string()));
    let archive = k.home().join("archive");
    let archived = std::fs::read_dir(&archive).map(|rd| rd.count()).unwrap_or(0);
    assert_eq!(archived, 0, "--delete does not archive");
    k.fails(&["board", "rm", "gone", "--delete"], 1);
}

#[test]
fn set_default_workdir_keeps_comments() {
    let k = Kanban::new();
    k.ok(&["board", "create", "w"]);
    let toml_path = k.toml_path("w");
    let mut text = std::fs::read_to_string(&toml_path).unwrap();
    text.push_str("\n# operator note: keep me\n");
    std::fs::write(&toml_path, &text).unwrap();
    let comments = comment_lines(&text);
    assert!(!comments.is_empty());

    let wd = k.home().join("wd");
    std::fs::create_dir_all(&wd).unwrap();
    k.ok(&["board", "set-default-workdir", "w", wd.to_str().unwrap()]);
    let after = std::fs::read_to_string(&toml_path).unwrap();
    for c in &comments {
        assert!(after.contains(c.as_str()), "comment {c:?} lost:\n{after}");
    }
    let parsed: toml::Table = after.parse().expect("board.toml still parses");
    assert_eq!(parsed["board"]["default_workdir"].as_str(), Some(wd.to_str().unwrap()));
    same_path(&k.json(&["board", "show", "w", "--json"])["default_workdir"], &wd);
    k.ok(&["board", "check", "w"]);

    // No PATH clears it.
    k.ok(&["board", "set-default-workdir", "w"]);
    let cleared = std::fs::read_to_string(&toml_path).unwrap();
    for c in &comments {
        assert!(cleared.contains(c.as_str()), "comment {c:?} lost:\n{cleared}");
    }
    let parsed: toml::Table = cleared.parse().expect("board.toml still parses");
    assert!(parsed["board"].get("default_workdir").is_none(), "{cleared}");
    assert!(k.json(&["board", "show", "w", "--json"])["default_workdir"].is_null());
    k.ok(&["board", "check", "w"]);

    k.fails(&["board", "set-default-workdir", "missing", "/tmp"], 1);
}

#[test]
fn set_default_workdir_relative_is_usage_error() {
    let k = Kanban::new();
    k.ok(&["board", "create", "w"]);
    let before = std::fs::read_to_string(k.toml_path("w")).unwrap();
    k.fails(&["board", "set-default-workdir", "w", "relative/dir"], 2);
    assert_eq!(std::fs::read_to_string(k.toml_path("w")).unwrap(), before);
}

#[test]
fn new_board_toml_is_valid_and_documents_every_section() {
    let k = Kanban::new();
    k.ok(&["list"]);
    k.ok(&["board", "create", "fresh", "--name", "Fresh"]);
    for slug in ["default", "fresh"] {
        k.ok(&["board", "check", slug]);
        let text = std::fs::read_to_string(k.toml_path(slug)).unwrap();
        let _: toml::Table = text.parse().expect("board.toml parses as TOML");
        for section in ["[board]", "[dispatch]", "[profiles", "[goal]", "[[policies]]"] {
            assert!(text.contains(section), "{slug}: board.toml lacks {section}:\n{text}");
        }
    }
    // No slug: the current board.
    k.ok(&["board", "check"]);
    k.fails(&["board", "check", "missing"], 1);
}

const MINIMAL: &str = "[board]\nname = \"Min\"\n";

#[test]
fn board_check_accepts_minimal_toml() {
    let k = Kanban::new();
    k.ok(&["board", "create", "min"]);
    std::fs::write(k.toml_path("min"), MINIMAL).unwrap();
    k.ok(&["board", "check", "min"]);
    k.ok(&["--board", "min", "list"]);
}

#[test]
fn board_check_names_unknown_key() {
    let k = Kanban::new();
    k.ok(&["board", "create", "bad"]);
    std::fs::write(k.toml_path("bad"), format!("{MINIMAL}\n[dispatch]\nmax_in_progres = 3\n")).unwrap();
    let err = k.fails(&["board", "check", "bad"], 2);
    assert!(err.contains("max_in_progres"), "{err}");
    let err = k.fails(&["--board", "bad", "list"], 2);
    assert!(err.contains("max_in_progres"), "{err}");
    let err = k.fails(&["--board", "bad", "create", "x"], 2);
    assert!(err.contains("max_in_progres"), "{err}");

    // An unknown top-level table is named too.
    std::fs::write(k.toml_path("bad"), format!("{MINIMAL}\n[dispatchh]\nx = 1\n")).unwrap();
    let err = k.fails(&["board", "check", "bad"], 2);
    assert!(err.contains("dispatchh"), "{err}");
}

#[test]
fn board_check_names_wrongly_typed_key() {
    let k = Kanban::new();
    k.ok(&["board", "create", "typed"]);
    std::fs::write(k.toml_path("typed"), format!("{MINIMAL}\n[dispatch]\nfailure_limit = \"x\"\n")).unwrap();
    let err = k.fails(&["board", "check", "typed"], 2);
    assert!(err.contains("failure_limit"), "{err}");
    let err = k.fails(&["--board", "typed", "list"], 2);
    assert!(err.contains("failure_limit"), "{err}");
}

#[test]
fn bad_default_board_toml_breaks_card_commands() {
    let k = Kanban::new();
    let id = k.create("Card", &[]);
    std::fs::write(k.toml_path("default"), format!("{MINIMAL}\n[dispatch]\nmax_in_progres = 3\n")).unwrap();
    for args in [vec!["list"], vec!["show", id.as_str()], vec!["create", "another"], vec!["board", "check"]] {
        let err = k.fails(&args, 2);
        assert!(err.contains("max_in_progres"), "{args:?}: {err}");
    }
    // Fixing the file brings the board back.
    std::fs::write(k.toml_path("default"), MINIMAL).unwrap();
    assert_eq!(k.list_ids(&[]), [id]);
}

#[test]
fn board_list_marks_the_homes_current_board_not_the_flag() {
    let k = Kanban::new();
    k.ok(&["board", "create", "a"]);
    k.ok(&["board", "create", "b"]);
    k.ok(&["board", "switch", "a"]);
    let rows = k.json(&["--board", "b", "board", "list", "--json"]);
    let current: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["current"] == true)
        .map(|r| r["slug"].as_str().unwrap())
        .collect();
    assert_eq!(current, ["a"]);
}

#[test]
fn an_empty_kanban_home_or_board_means_unset() {
    let k = Kanban::new();
    let out = k.cmd(&["list"]).env("KANBAN_BOARD", "").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // With an empty KANBAN_HOME and no --home, the platform data dir under $HOME is used.
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::common::bin())
        .arg("list")
        .env("KANBAN_HOME", "")
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .env_remove("KANBAN_BOARD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(home.path().join(".local/share/kanban/boards/default/kanban.db").exists());
}
