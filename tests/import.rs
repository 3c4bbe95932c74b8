//! Black-box tests for `kanban import` (docs/cli.md, "kanban import"): a JSON Lines file of cards, created
//! all or nothing, each exactly as `kanban create` would create it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::common::*;

/// A file of `lines` (each a JSON value, or a string written as it is) under the test home.
fn jsonl(k: &Kanban, name: &str, lines: &[Value]) -> String {
    let text: String = lines
        .iter()
        .map(|line| match line {
            Value::String(raw) => format!("{raw}\n"),
            card => format!("{card}\n"),
        })
        .collect();
    k.write_file(name, text.as_bytes()).display().to_string()
}

/// Run a command with `input` on stdin.
fn with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// `import FILE --json`: the ids, in line order.
fn import_ids(k: &Kanban, args: &[&str]) -> Vec<String> {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.push("--json");
    let report = k.json(&all);
    report["cards"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

/// A `show --json` document with card ids replaced by their place in `ids` (`#0`, `#1`, ...), so the same
/// cards on two boards compare equal. Parents and children are sorted by that (`show` orders cards made in
/// the same second by their random ids).
fn normalized(k: &Kanban, board: &str, id: &str, ids: &[String]) -> Value {
    let mut text = k.json(&["--board", board, "show", id, "--json"]).to_string();
    for (i, id) in ids.iter().enumerate() {
        text = text.replace(id.as_str(), &format!("#{i}"));
    }
    let mut show: Value = serde_json::from_str(&text).unwrap();
    for related in ["parents", "children"] {
        show[related].as_array_mut().unwrap().sort_by_key(|t| t["id"].as_str().unwrap().to_string());
    }
    show
}

#[test]
fn every_field_of_create_round_trips_through_import_exactly_as_create_stores_it() {
    let k = Kanban::new();
    k.ok(&["board", "create", "by-create"]);
    k.ok(&["board", "create", "by-import"]);
    let wd = k.home().join("workdir").display().to_string();
    // Each card through `create` on one board, and as a line of one file on the other.
    let cards: Vec<(Vec<String>, Value)> = vec![
        (
            vec!["base".into(), "--idempotency-key".into(), "base".into()],
            json!({"title": "base", "idempotency_key": "base"}),
        ),
        (
            [
                "Full card",
                "--body",
                "Some *markdown*\nover lines",
                "--assignee",
                "coder",
                "--priority",
                "-7",
                "--tenant",
                "acme",
                "--workspace",
                &format!("dir:{wd}"),
                "--branch",
                "feat/x",
                "--idempotency-key",
                "full",
                "--max-runtime",
                "2h",
                "--max-retries",
                "0",
                "--goal",
                "--goal-max-turns",
                "5",
                "--parent",
                "#0",
            ]
            .map(String::from)
            .to_vec(),
            json!({"title": "Full card", "body": "Some *markdown*\nover lines", "assignee": "coder",
                   "priority": -7, "tenant": "acme", "workspace": format!("dir:{wd}"), "branch": "feat/x",
                   "idempotency_key": "full", "max_runtime": "2h", "max_retries": 0, "goal": true,
                   "goal_max_turns": 5, "parents": ["key:base"]}),
        ),
        (
            ["Running", "--assignee", "coder", "--initial-status", "running", "--max-runtime", "90"]
                .map(String::from)
                .to_vec(),
            json!({"title": "Running", "assignee": "coder", "initial_status": "running", "max_runtime": 90}),
        ),
        (
            ["Blocked", "--initial-status", "blocked", "--workspace", "worktree:/srv/repo", "--parent", "#1"]
                .map(String::from)
                .to_vec(),
            json!({"title": "Blocked", "initial_status": "blocked", "workspace": "worktree:/srv/repo",
                   "parents": [2]}),
        ),
        (
            [
                "Idea",
                "--triage",
                "--assignee",
                "none",
                "--workspace",
                "scratch",
                "--parent",
                "#0",
                "--parent",
                "#3",
            ]
            .map(String::from)
            .to_vec(),
            json!({"title": "  Idea ", "triage": true, "assignee": "none", "workspace": "scratch",
                   "parents": [1, 4], "body": null, "tenant": null}),
        ),
    ];
    let mut created: Vec<String> = Vec::new();
    for (args, _) in &cards {
        let mut args: Vec<String> = args.clone();
        for arg in args.iter_mut() {
            if let Some(i) = arg.strip_prefix('#') {
                *arg = created[i.parse::<usize>().unwrap()].clone();
            }
        }
        let mut argv: Vec<&str> = vec!["--board", "by-create", "create"];
        argv.extend(args.iter().map(String::as_str));
        let id = k.json(&[&argv[..], &["--json"]].concat())["id"].as_str().unwrap().to_string();
        created.push(id);
    }
    let file = jsonl(&k, "cards.jsonl", &cards.iter().map(|(_, line)| line.clone()).collect::<Vec<_>>());
    let report = k.json(&["--board", "by-import", "import", &file, "--json"]);
    assert_eq!(
        (report["board"].as_str(), report["imported"].as_u64(), report["existing"].as_u64()),
        (Some("by-import"), Some(5), Some(0)),
        "{report}"
    );
    let imported: Vec<String> =
        report["cards"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    let lines: Vec<u64> =
        report["cards"].as_array().unwrap().iter().map(|c| c["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 2, 3, 4, 5]);

    for (i, (a, b)) in created.iter().zip(&imported).enumerate() {
        assert_eq!(
            normalized(&k, "by-create", a, &created),
            normalized(&k, "by-import", b, &imported),
            "card {i} differs between create and import"
        );
    }
    let full = k.json(&["--board", "by-import", "show", &imported[1], "--json"]);
    let task = &full["task"];
    assert_eq!(task["workspace_path"], wd.as_str(), "{task}");
    assert_eq!(
        (task["max_runtime_seconds"].as_i64(), task["goal_max_turns"].as_i64()),
        (Some(7200), Some(5))
    );
    assert_eq!(task["status"], "todo", "waits on its open parent: {task}");
    assert_eq!(ids_of(&full["parents"]), [imported[0].clone()]);
    let idea = k.json(&["--board", "by-import", "show", &imported[4], "--json"]);
    assert_eq!(
        (idea["task"]["title"].as_str(), idea["task"]["status"].as_str()),
        (Some("Idea"), Some("triage"))
    );
    assert!(idea["task"]["assignee"].is_null(), "`none` is no assignee");
    assert_eq!(idea["parents"].as_array().unwrap().len(), 2);
}

#[test]
fn parents_are_named_by_id_by_key_or_by_the_line_of_an_earlier_card() {
    let k = Kanban::new();
    let base = k.create("on the board", &["--idempotency-key", "base"]);
    let plain = k.create("plain", &[]);
    let file = jsonl(
        &k,
        "cards.jsonl",
        &[
            json!({"title": "one", "parents": ["key:base"]}),
            json!({"title": "two", "idempotency_key": "two", "parents": [plain]}),
            json!(""),
            json!({"title": "four", "parents": [2, "key:two", 1, "key:base"]}),
            json!({"title": "five", "parents": []}),
        ],
    );
    let report = k.json(&["import", &file, "--json"]);
    let cards = report["cards"].as_array().unwrap();
    let lines: Vec<u64> = cards.iter().map(|c| c["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 2, 4, 5], "the blank line 3 is skipped: {report}");
    let ids: Vec<String> = cards.iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    let statuses: Vec<&str> = cards.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["todo", "todo", "todo", "ready"]);

    let parents = |id: &str| -> Vec<String> {
        let mut p = ids_of(&k.show(id)["parents"]);
        p.sort();
        p
    };
    assert_eq!(parents(&ids[0]), [base.as_str()]);
    assert_eq!(parents(&ids[1]), [plain.as_str()]);
    let mut four = vec![ids[1].clone(), ids[0].clone(), base.clone()];
    four.sort();
    assert_eq!(parents(&ids[2]), four, "line 2 named by line and by key is one parent");
    let created = k.task_events(&ids[2]).into_iter().find(|e| e["kind"] == "created").unwrap();
    assert_eq!(created["payload"]["parents"], json!([ids[1], ids[0], base]), "{created}");

    // The links are real: completing the parents releases the children, as for cards made by `create`.
    k.ok(&["complete", &base]);
    assert_eq!(k.status(&ids[0]), "ready");
    k.ok(&["complete", &plain, &ids[0]]);
    assert_eq!(k.status(&ids[1]), "ready");
    assert_eq!(k.status(&ids[2]), "todo");
    k.ok(&["complete", &ids[1]]);
    assert_eq!(k.status(&ids[2]), "ready");
}

fn ids_of(tasks: &Value) -> Vec<String> {
    tasks.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn import_reads_stdin_with_a_dash_and_prints_a_summary_line() {
    let k = Kanban::new();
    let input = b"{\"title\": \"a\"}\n{\"title\": \"b\", \"parents\": [1]}\n";
    let out = with_stdin(k.cmd(&["import", "-"]), input);
    assert_eq!(expect_ok(&out, &"import -"), "Imported 2 cards into board 'default'\n");
    let titles: Vec<Value> =
        k.json(&["list", "--json"]).as_array().unwrap().iter().map(|t| t["title"].clone()).collect();
    assert_eq!(titles, [json!("a"), json!("b")]);

    let out = with_stdin(k.cmd(&["import", "-"]), b"{\"title\": \"c\", \"priority\": \"high\"}\n");
    let err = expect_fail(&out, &"import - (bad)", 2);
    assert_eq!(err, "kanban: stdin line 1: priority: expected an integer, got \"high\"\n");
}

#[test]
fn a_bad_line_writes_nothing_and_names_its_line_and_field() {
    let k = Kanban::new();
    k.create("already here", &[]);
    let before = k.snapshot();
    let good = |i: usize| json!({"title": format!("card {i}"), "priority": i});
    // A line that does not parse: exit 2, before anything is written.
    let file = jsonl(
        &k,
        "bad.jsonl",
        &[good(1), good(2), json!({"title": "three", "priority": "high"}), good(4), good(5)],
    );
    let err = k.fails(&["import", &file], 2);
    assert_eq!(err, format!("kanban: {file} line 3: priority: expected an integer, got \"high\"\n"));
    assert_eq!(before, k.snapshot(), "nothing was written");

    // A line that breaks a rule of `create` (checked before the transaction): exit 2, named.
    let file = jsonl(&k, "rule.jsonl", &[good(1), good(2), json!({"title": "  "}), good(4), good(5)]);
    let err = k.fails(&["import", &file], 2);
    assert_eq!(err, format!("kanban: {file} line 3: title must not be blank\n"));
    let file = jsonl(&k, "range.jsonl", &[good(1), good(2), json!({"title": "x", "max_retries": -1})]);
    let err = k.fails(&["import", &file], 2);
    assert_eq!(err, format!("kanban: {file} line 3: max_retries must be at least 0, got -1\n"));

    // A parent that is not on the board, found only inside the transaction after lines 1 and 2 were
    // written in it: exit 1 (not found, as for `create --parent`), and the transaction is rolled back.
    let file = jsonl(
        &k,
        "missing.jsonl",
        &[good(1), good(2), json!({"title": "x", "parents": ["t_00000000"]}), good(4)],
    );
    let err = k.fails(&["import", &file], 1);
    assert_eq!(err, format!("kanban: {file} line 3: parents: card t_00000000 not found\n"));
    let file = jsonl(&k, "nokey.jsonl", &[good(1), good(2), json!({"title": "x", "parents": ["key:nope"]})]);
    let err = k.fails(&["import", &file], 1);
    assert_eq!(err, format!("kanban: {file} line 3: parents: card with idempotency key 'nope' not found\n"));
    assert_eq!(before, k.snapshot(), "nothing was written");
}

#[test]
fn unknown_keys_bad_json_and_wrong_types_are_named() {
    let k = Kanban::new();
    k.ok(&["list"]);
    let before = k.snapshot();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"title": "x", "prority": 3}),
            "line 2: unknown key \"prority\" (a card's keys: title, body, ",
        ),
        (json!("{\"title\": \"x\", "), "line 2: invalid JSON: EOF while parsing a value at column 15"),
        (json!("{\"title\": \"x\", \"title\": \"y\"}"), "line 2: title: given twice"),
        (json!("[\"x\"]"), "line 2: expected a JSON object (one card per line), got [\"x\"]"),
        (json!({"body": "no title"}), "line 2: title: missing"),
        (json!({"title": 7}), "line 2: title: expected a string, got 7"),
        (
            json!({"title": "x", "parents": "t_00000000"}),
            "line 2: parents: expected an array, got \"t_00000000\"",
        ),
        (json!({"title": "x", "parents": [true]}), "line 2: parents[0]: expected a card id, \"key:KEY\" or"),
        (json!({"title": "x", "workspace": "dir:rel"}), "line 2: workspace: 'rel' must be an absolute path"),
        (json!({"title": "x", "max_runtime": "5x"}), "line 2: max_runtime: '5x' is not a duration"),
        (
            json!({"title": "x", "initial_status": "done"}),
            "line 2: initial_status: expected \"running\" or \"blocked\"",
        ),
        (json!({"title": "x", "goal_max_turns": 2}), "line 2: goal_max_turns is for goal cards only"),
        (
            json!({"title": "x", "triage": true, "initial_status": "blocked"}),
            "line 2: a card cannot start both in triage",
        ),
    ];
    for (i, (line, want)) in cases.into_iter().enumerate() {
        let file = jsonl(&k, &format!("case{i}.jsonl"), &[json!({"title": "fine"}), line.clone()]);
        let err = k.fails(&["import", &file], 2);
        assert!(err.starts_with(&format!("kanban: {file} {want}")), "{line}:\n  got  {err}  want {want}");
        assert!(!err.trim_end().contains('\n'), "one line: {err}");
    }
    assert_eq!(before, k.snapshot());
}

#[test]
fn a_parent_must_come_earlier_so_the_file_cannot_make_a_cycle() {
    let k = Kanban::new();
    k.ok(&["list"]);
    let before = k.snapshot();
    let cases: Vec<(Vec<Value>, String)> = vec![
        (
            vec![json!({"title": "a"}), json!({"title": "b", "parents": [3]}), json!({"title": "c", "parents": [2]})],
            "line 2: parents[0]: line 3 does not come before line 2; a parent must be on an earlier line".into(),
        ),
        (
            vec![json!({"title": "self", "parents": [1]})],
            "line 1: parents[0]: line 1 does not come before line 1; a parent must be on an earlier line".into(),
        ),
        (
            vec![
                json!({"title": "a", "idempotency_key": "a", "parents": ["key:b"]}),
                json!({"title": "b", "idempotency_key": "b", "parents": ["key:a"]}),
            ],
            "line 1: parents[0]: key \"b\" is the key of line 2, which does not come before line 1; a parent must be on an earlier line".into(),
        ),
        (
            vec![json!({"title": "a", "idempotency_key": "a", "parents": ["key:a"]})],
            "line 1: parents[0]: key \"a\" is the key of line 1, which does not come before line 1; a parent must be on an earlier line".into(),
        ),
        (vec![json!(""), json!({"title": "b", "parents": [1]})], "line 2: parents[0]: line 1 holds no card".into()),
    ];
    for (i, (lines, want)) in cases.into_iter().enumerate() {
        let file = jsonl(&k, &format!("cycle{i}.jsonl"), &lines);
        let err = k.fails(&["import", &file], 2);
        assert_eq!(err, format!("kanban: {file} {want}\n"));
    }
    assert_eq!(before, k.snapshot());
}

#[test]
fn a_line_whose_idempotency_key_is_held_gives_that_card_unchanged_as_create_does() {
    let k = Kanban::new();
    let held = k.create("held", &["--idempotency-key", "held", "--priority", "1"]);
    let file = jsonl(
        &k,
        "cards.jsonl",
        &[
            json!({"title": "held again", "idempotency_key": "held", "priority": 9, "parents": ["t_00000000"]}),
            json!({"title": "new", "idempotency_key": "new", "parents": [1]}),
        ],
    );
    let before_events = k.task_events(&held);
    let report = k.json(&["import", &file, "--json"]);
    assert_eq!((report["imported"].as_u64(), report["existing"].as_u64()), (Some(1), Some(1)), "{report}");
    let cards = report["cards"].as_array().unwrap();
    assert_eq!((cards[0]["id"].as_str(), cards[0]["created"].as_bool()), (Some(held.as_str()), Some(false)));
    assert_eq!(cards[1]["created"], true);
    let task = k.task(&held);
    assert_eq!(
        (task["title"].as_str(), task["priority"].as_i64()),
        (Some("held"), Some(1)),
        "unchanged: {task}"
    );
    assert_eq!(before_events, k.task_events(&held), "no event for the card that was there");
    let new = cards[1]["id"].as_str().unwrap();
    assert_eq!(ids_of(&k.show(new)["parents"]), [held.as_str()], "line 1 names the card that holds its key");

    // Importing the same file again creates nothing.
    let before = k.snapshot();
    assert_eq!(
        k.ok(&["import", &file]),
        "Imported 0 cards into board 'default'; 2 lines matched existing cards by idempotency key\n"
    );
    assert_eq!(before, k.snapshot());

    // Archiving frees a key, as for `create`.
    k.ok(&["archive", &held]);
    let file = jsonl(
        &k,
        "again.jsonl",
        &[
            json!({"title": "held anew", "idempotency_key": "held"}),
            json!({"title": "new", "idempotency_key": "new"}),
        ],
    );
    let again = import_ids(&k, &[&file]);
    assert_ne!(again[0], held);
    assert_eq!(again[1], new);

    // One key on two lines of a file is a mistake, not a retry.
    let file = jsonl(
        &k,
        "twice.jsonl",
        &[json!({"title": "a", "idempotency_key": "k"}), json!({"title": "b", "idempotency_key": "k"})],
    );
    let err = k.fails(&["import", &file], 2);
    assert_eq!(err, format!("kanban: {file} line 2: idempotency_key: \"k\" is already the key of line 1\n"));
}

#[test]
fn an_empty_file_imports_nothing_and_an_unreadable_one_is_refused() {
    let k = Kanban::new();
    k.ok(&["list"]);
    let before = k.snapshot();
    for (name, text) in [("empty.jsonl", ""), ("blank.jsonl", "\n  \n\t\r\n")] {
        let file = k.write_file(name, text.as_bytes()).display().to_string();
        assert_eq!(k.ok(&["import", &file]), "Imported 0 cards into board 'default'\n");
        let report = k.json(&["import", &file, "--json"]);
        assert_eq!(report, json!({"board": "default", "imported": 0, "existing": 0, "cards": []}));
    }
    assert_eq!(before, k.snapshot());
    let missing = k.home().join("files/missing.jsonl").display().to_string();
    let err = k.fails(&["import", &missing], 1);
    assert!(err.starts_with(&format!("kanban: cannot read {missing}: ")), "{err}");
    let file = k.write_file("latin1.jsonl", b"{\"title\": \"caf\xe9\"}\n").display().to_string();
    assert_eq!(k.fails(&["import", &file], 2), format!("kanban: {file} line 1: not valid UTF-8\n"));
}

#[test]
fn a_workers_import_is_allowed_and_attributed_to_it() {
    let k = Kanban::new();
    let mine = k.create("the worker's card", &["--initial-status", "running"]);
    let mut cmd = k.cmd(&["import", "-", "--json"]);
    cmd.env("KANBAN_TASK", &mine).env("KANBAN_RUN_ID", "1").env("USER", "alice");
    let out = with_stdin(cmd, b"{\"title\": \"follow-up\"}\n{\"title\": \"after it\", \"parents\": [1]}\n");
    let report = parse_json(&expect_ok(&out, &"import as a worker"), &"import");
    for card in report["cards"].as_array().unwrap() {
        let id = card["id"].as_str().unwrap();
        assert_eq!(k.task(id)["created_by"], format!("worker:{mine}"));
        let created = k.task_events(id).into_iter().find(|e| e["kind"] == "created").unwrap();
        assert_eq!(created["payload"]["created_by"], format!("worker:{mine}"), "{created}");
    }
    // Outside a worker, the user.
    let mut cmd = k.cmd(&["import", "-", "--json"]);
    cmd.env("USER", "alice");
    let out = with_stdin(cmd, b"{\"title\": \"by hand\"}\n");
    let report = parse_json(&expect_ok(&out, &"import"), &"import");
    assert_eq!(k.task(report["cards"][0]["id"].as_str().unwrap())["created_by"], "alice");
}

#[test]
fn import_warns_once_about_an_unknown_profile_and_a_board_without_a_goal_judge() {
    let k = Kanban::new();
    let file = jsonl(
        &k,
        "cards.jsonl",
        &[
            json!({"title": "a", "assignee": "ghost"}),
            json!({"title": "b", "assignee": "ghost", "goal": true}),
            json!({"title": "c", "assignee": "none"}),
        ],
    );
    let out = k.run(&["import", &file]);
    assert_eq!(expect_ok(&out, &"import"), "Imported 3 cards into board 'default'\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "kanban: warning: board 'default' has no profile 'ghost' (defined: none); 2 cards assigned to it will not be dispatched\n\
         kanban: warning: board 'default' has no [goal] judge; 1 goal card will be blocked after its first turn\n"
    );
}
