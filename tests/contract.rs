//! The contract stated once and tested whole: every command and long flag clap defines is documented in
//! docs/cli.md; every JSON document has exactly the keys its table in docs/cli.md lists (a new column on a
//! record, or a row removed from the docs, fails here); every invalid board.toml under
//! `tests/ui/board-toml/` gives exactly the error beside it (`<case>.err`), and `maximal.toml`, which sets
//! every key, is accepted; the text outputs the docs show are compared whole.
//!
//! `KANBAN_BLESS=1 cargo test --test integration contract` rewrites the `.err` files from the current
//! output (review the diff before committing it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde_json::Value;

use crate::common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cli_md() -> String {
    std::fs::read_to_string(repo().join("docs/cli.md")).expect("read docs/cli.md")
}

/// The text of a `### heading` section of docs/cli.md, up to the next heading of any level.
fn section<'a>(doc: &'a str, heading: &str) -> Option<&'a str> {
    let start = doc.find(&format!("\n### {heading}\n"))? + 1;
    let body = &doc[start..];
    let end = body[4..].find("\n#").map(|e| e + 4).unwrap_or(body.len());
    Some(&body[..end])
}

/// The keys a JSON-shape section of docs/cli.md lists: the backticked names in its table's first column
/// (one row may name several, `` `a`, `b` ``).
pub fn documented_keys(heading: &str) -> BTreeSet<String> {
    let doc = cli_md();
    let text = section(&doc, heading).unwrap_or_else(|| panic!("docs/cli.md has no `### {heading}` section"));
    let mut keys = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or_default();
        for part in first.split(',') {
            let key = part.trim().trim_matches('`');
            if !key.is_empty() {
                keys.insert(key.to_string());
            }
        }
    }
    assert!(!keys.is_empty(), "no keys in docs/cli.md `### {heading}`");
    keys
}

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

/// Exactly the documented keys: none missing, none extra.
#[track_caller]
fn assert_documented(v: &Value, heading: &str) {
    let (got, want) = (keys_of(v), documented_keys(heading));
    let extra: Vec<_> = got.difference(&want).collect();
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "`{heading}` JSON and docs/cli.md disagree: undocumented keys {extra:?}, documented but absent {missing:?}"
    );
}

#[test]
fn every_json_document_has_exactly_the_keys_docs_cli_md_lists() {
    let f = Fleet::new();
    let script = f.script("w.sh", "\"$KANBAN_BIN\" complete \"$KANBAN_TASK\" --result ok");
    f.write_board(&f.profile("coder", &script, &[]));
    let parent = f.create("parent", &[]);
    let id = f.create("card", &["--assignee", "coder", "--parent", &parent]);
    f.ok(&["complete", &parent]);
    f.ok(&["comment", &id, "a note"]);
    let file = f.write_file("notes.txt", b"hello");
    f.ok(&["attach", &id, file.to_str().unwrap()]);
    f.dispatch(&["--wait"]);

    let show = f.show(&id);
    assert_documented(&show, "Show");
    assert_documented(&show["task"], "Task");
    assert_documented(&show["parents"][0], "Task");
    assert_documented(&show["runs"][0], "Run");
    assert_documented(&show["comments"][0], "Comment");
    assert_documented(&show["attachments"][0], "Attachment");
    for e in show["events"].as_array().unwrap() {
        assert_documented(e, "Event");
    }
    let created = f.json(&["create", "another", "--json"]);
    assert_documented(&created, "Task");
    assert_documented(&f.json(&["runs", &id, "--json"])[0], "Run");
    assert_documented(&f.json(&["attachments", &id, "--json"])[0], "Attachment");
    assert_documented(&f.json(&["stats", "--json"]), "Stats");
    let other = f.create("to promote", &["--triage"]);
    assert_documented(&f.json(&["promote", &other, "--json"]), "Promote");
    let cards = f.write_file("cards.jsonl", b"{\"title\": \"imported\"}\n");
    let imported = f.json(&["import", cards.to_str().unwrap(), "--json"]);
    assert_documented(&imported, "Import");
    assert_documented(&imported["cards"][0], "Imported card");
    assert_documented(&f.json(&["board", "list", "--json"])[0], "Board list");
    assert_documented(&f.json(&["board", "show", "--json"]), "Board show");
    assert_documented(&f.json(&["recurring", "add", "nightly", "--cron", "0 3 * * *", "--json"]), "Schedule");
    assert_documented(&f.json(&["recurring", "list", "--json"])[0], "Schedule");
    let archive = f.home().join("default.kanban");
    let exported = f.json(&["board", "export", "default", "-o", archive.to_str().unwrap(), "--json"]);
    assert_documented(&exported, "Board export");
    let elsewhere = crate::common::Kanban::new();
    let imported = elsewhere.json(&["board", "import", archive.to_str().unwrap(), "--json"]);
    assert_documented(&imported, "Board import");
    f.ok(&["pause", "--reason", "contract"]);
    assert_documented(&f.json(&["board", "show", "--json"])["pauses"][0], "Pause");
    assert_documented(&f.dispatch(&["--dry-run"])["pauses"][0], "Pause");
}

/// Every command clap defines (hidden ones aside) has its `### kanban ...` section in docs/cli.md, and
/// every long flag of it appears in that section.
#[test]
fn every_command_and_long_flag_is_documented_in_docs_cli_md() {
    let doc = cli_md();
    let mut missing = Vec::new();
    let mut stack: Vec<(String, clap::Command)> = vec![(String::new(), kanban::cli::Cli::command())];
    while let Some((prefix, cmd)) = stack.pop() {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let path = format!("{prefix}{}", sub.get_name()).trim().to_string();
            if sub.has_subcommands() {
                stack.push((format!("{path} "), sub.clone()));
                continue;
            }
            let heading = format!("`kanban {path}`");
            let Some(text) = section(&doc, &heading) else {
                missing.push(format!("no `### {heading}` section"));
                continue;
            };
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long()
                    && !["help", "version", "home", "board"].contains(&long)
                    && !text.contains(&format!("--{long}"))
                {
                    missing.push(format!("{heading} does not mention --{long}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "docs/cli.md is missing:\n{}", missing.join("\n"));
}

/// The `.err` beside each invalid board.toml is exactly what `kanban board check` prints for it.
#[test]
fn each_invalid_board_toml_gives_exactly_its_error() {
    let dir = repo().join("tests/ui/board-toml");
    let bless = std::env::var_os("KANBAN_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && !p.ends_with("maximal.toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for case in cases {
        let k = Kanban::new();
        k.ok(&["board", "create", "case"]);
        std::fs::copy(&case, k.toml_path("case")).unwrap();
        let err = k.fails(&["board", "check", "case"], 2);
        let err = err.replace(k.toml_path("case").to_str().unwrap(), "[BOARD_TOML]");
        let expected_path = case.with_extension("err");
        if bless {
            std::fs::write(&expected_path, &err).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no .err (run with KANBAN_BLESS=1)", case.display()));
        if err != expected {
            wrong.push(format!("{}:\n--- expected\n{expected}--- got\n{err}", case.display()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_maximal_board_toml_sets_every_key_and_is_accepted() {
    let k = Kanban::new();
    k.ok(&["board", "create", "web"]);
    std::fs::copy(repo().join("tests/ui/board-toml/maximal.toml"), k.toml_path("web")).unwrap();
    k.ok(&["board", "check", "web"]);
    // Every key of the config model appears in it: `board show --json` echoes the parsed config, and no
    // value in it is null (an unset optional key).
    let config = k.json(&["board", "show", "web", "--json"])["config"].clone();
    let mut nulls = Vec::new();
    fn walk(v: &Value, path: &str, nulls: &mut Vec<String>) {
        match v {
            Value::Null => nulls.push(path.to_string()),
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, &format!("{path}.{k}"), nulls)),
            Value::Array(items) => {
                items.iter().enumerate().for_each(|(i, v)| walk(v, &format!("{path}[{i}]"), nulls))
            }
            _ => {}
        }
    }
    walk(&config, "config", &mut nulls);
    // `on_error` belongs to respawn guards only; it stays unset on the other kinds.
    nulls.retain(|path| {
        let Some(i) = path.strip_prefix("config.policies[").and_then(|r| r.strip_suffix("].on_error")) else {
            return true;
        };
        config["policies"][i.parse::<usize>().unwrap()]["kind"] == "respawn-guard"
    });
    // A `[[notify]]` entry has a webhook or a command, never both.
    nulls.retain(|path| {
        !(path.starts_with("config.notify[") && (path.ends_with("].webhook") || path.ends_with("].command")))
    });
    assert_eq!(config["notify"].as_array().map(Vec::len), Some(2), "a webhook entry and a command entry");
    assert!(nulls.is_empty(), "maximal.toml leaves keys unset: {nulls:?}");
}

/// `kanban list` and `kanban show` as a person reads them, compared whole (ids and times replaced).
#[test]
fn list_and_show_text_output_is_exactly_the_documented_shape() {
    let k = Kanban::new();
    let parent = k.create("Write the README", &["--assignee", "coder", "--priority", "5"]);
    k.advance(60);
    let child = k.create("Publish the docs site", &["--assignee", "coder", "--parent", &parent]);
    k.advance(60);
    k.ok(&["comment", &parent, "Mention KANBAN_HOME", "--author", "bob"]);
    k.ok(&["complete", &parent, "--result", "README merged"]);
    let norm = |text: String| text.replace(&parent, "[PARENT]").replace(&child, "[CHILD]");
    assert_eq!(
        norm(k.ok(&["list", "--archived", "--sort", "status"])),
        "ID          STATUS      PRI  ASSIGNEE      TITLE\n\
         [CHILD]  ready         0  coder         Publish the docs site\n\
         [PARENT]  done          5  coder         Write the README\n"
    );
    assert_eq!(
        norm(k.ok(&["show", &parent])),
        "[PARENT]  Write the README\n\
         \x20 status     done\n\
         \x20 assignee   coder\n\
         \x20 priority   5\n\
         \x20 workspace  scratch\n\
         \x20 created    2027-01-15 08:00:00 by -\n\
         \x20 result     README merged\n\
         \x20 child      [CHILD]  ready         0  coder         Publish the docs site\n\
         \x20 comment    2027-01-15 08:02:00 bob: Mention KANBAN_HOME\n\
         \x20 events:\n\
         \x20   #1      2027-01-15 08:00:00  [PARENT]  created {\"assignee\":\"coder\",\"created_by\":null,\"parents\":[],\"status\":\"ready\"}\n\
         \x20   #3      2027-01-15 08:02:00  [PARENT]  commented {\"author\":\"bob\",\"comment_id\":1}\n\
         \x20   #4      2027-01-15 08:02:00  [PARENT]  completed {\"from\":\"ready\",\"result\":\"README merged\",\"summary\":null}\n"
    );
}
