//! Policies as sandboxed WebAssembly components: hostile plugins are bounded and recorded, the sandbox
//! hides the host, versions are checked, a user's plugin changes only its own board, and commands that
//! need no policy never build an engine.

use crate::common::{Kanban, hold_guard_plugin, test_plugin};
use serde_json::Value;

/// A board `b` with one instant worker profile `w` and the given extra board.toml text.
fn board_with(k: &Kanban, extra: &str) {
    k.ok(&["board", "create", "b"]);
    std::fs::write(k.toml_path("b"), format!("[profiles.w]\ncommand = [\"true\"]\n\n{extra}")).unwrap();
}

fn hostile_guard(mode: &str, limits: &str) -> String {
    format!(
        "[[policies]]\nkind = \"respawn-guard\"\nplugin = \"hostile\"\n{limits}\n[policies.config]\nmode = \"{mode}\"\n"
    )
}

fn install(k: &Kanban, plugin: &std::path::Path, name: &str) -> String {
    k.ok(&["plugin", "install", plugin.to_str().unwrap(), "--name", name])
}

fn dry_run(k: &Kanban) -> Value {
    k.json(&["--board", "b", "dispatch", "--dry-run", "--json"])
}

fn policy_error_kinds(k: &Kanban, id: &str) -> Vec<String> {
    k.json(&["--board", "b", "show", id, "--json"])["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "policy_error")
        .map(|e| e["payload"]["error_kind"].as_str().unwrap().to_string())
        .collect()
}

/// Each hostile behaviour is bounded: the tick completes, the failure is typed and recorded on the card,
/// the guard's safe default (allow) applies, and nothing else about the card changes.
#[test]
fn hostile_guards_are_bounded_recorded_and_fail_open() {
    let cases = [
        ("loop", "fuel = 5000000", "out_of_fuel", "ran out of fuel"),
        ("alloc", "memory_mib = 16", "memory", "memory limit"),
        ("panic", "", "panic", "hostile plugin panicked on purpose"),
        ("huge", "memory_mib = 512", "bad_output", "at most"),
    ];
    for (mode, limits, kind, message) in cases {
        let k = Kanban::new();
        install(&k, &test_plugin("hostile"), "hostile");
        board_with(&k, &hostile_guard(mode, limits));
        let id = k.create("card", &["--board", "b", "--assignee", "w"]);
        let report = dry_run(&k);
        let errors = report["policy_errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{mode}: {report}");
        assert_eq!(errors[0]["policy"], "hostile");
        assert_eq!(errors[0]["task_id"], id.as_str());
        assert!(errors[0]["error"].as_str().unwrap().contains(message), "{mode}: {}", errors[0]["error"]);
        assert_eq!(errors[0]["error_kind"], kind, "{mode}: the report names the error's kind");
        assert_eq!(report["spawned"][0]["task_id"], id.as_str(), "{mode}: a failing guard allows");
        // A dry run records nothing: the card is as it was, with no event.
        assert!(policy_error_kinds(&k, &id).is_empty(), "{mode}: a dry run wrote an event");
        let task = k.json(&["--board", "b", "show", &id, "--json"])["task"].clone();
        assert_eq!(task["status"], "ready");
        assert_eq!(task["consecutive_failures"], 0);
        // A real tick records the typed failure on the card, and the guard's safe default spawns it.
        let report = k.json(&["--board", "b", "dispatch", "--wait", "--json"]);
        assert_eq!(report["spawned"][0]["task_id"], id.as_str(), "{mode}: {report}");
        assert_eq!(policy_error_kinds(&k, &id), [kind], "{mode}");
    }
}

#[test]
fn a_sleeping_plugin_returns_at_once_because_time_does_not_pass_in_the_sandbox() {
    let k = Kanban::new();
    install(&k, &test_plugin("hostile"), "hostile");
    board_with(&k, &hostile_guard("sleep", ""));
    let id = k.create("card", &["--board", "b", "--assignee", "w"]);
    let report = dry_run(&k); // would hang for an hour if sleep reached the host's clock
    assert_eq!(report["policy_errors"], serde_json::json!([]));
    assert_eq!(report["spawned"][0]["task_id"], id.as_str());
}

#[test]
fn a_guard_can_fail_closed() {
    let k = Kanban::new();
    install(&k, &test_plugin("hostile"), "hostile");
    board_with(&k, &hostile_guard("panic", "on_error = \"defer\""));
    let id = k.create("card", &["--board", "b", "--assignee", "w"]);
    let report = dry_run(&k);
    assert_eq!(report["spawned"], serde_json::json!([]));
    assert_eq!(report["respawn_guarded"][0]["task_id"], id.as_str());
    assert!(report["respawn_guarded"][0]["reason"].as_str().unwrap().contains("fails closed"));
}

#[test]
fn a_plugin_sees_no_files_no_environment_and_no_real_clock() {
    let k = Kanban::new();
    install(&k, &test_plugin("probe"), "probe");
    board_with(&k, "[[policies]]\nkind = \"respawn-guard\"\nplugin = \"probe\"\n");
    k.create("card", &["--board", "b", "--assignee", "w"]);
    let report = k
        .cmd(&["--board", "b", "dispatch", "--dry-run", "--json"])
        .env("SECRET_TOKEN", "hunter2")
        .output()
        .unwrap();
    assert!(report.status.success());
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    let reason = report["respawn_guarded"][0]["reason"].as_str().unwrap();
    let seen: Value = serde_json::from_str(reason).unwrap();
    assert_eq!(seen["fs"], "denied", "{seen}");
    assert_eq!(seen["env_count"], 0, "{seen}");
    assert_eq!(seen["clock"], k.now(), "the wall clock is the context's now (KANBAN_NOW), not the host's");
    assert_eq!(seen["ctx_now"], k.now());
}

#[test]
fn install_refuses_what_is_not_a_policy_and_stores_nothing() {
    let k = Kanban::new();
    let not_wasm = k.write_file("notes.wasm", b"hello");
    let err = k.fails(&["plugin", "install", not_wasm.to_str().unwrap()], 1);
    assert!(err.contains("not a WebAssembly file"), "{err}");
    let err = k.fails(&["plugin", "install", test_plugin("wrong-world").to_str().unwrap()], 1);
    assert!(err.contains("none of the policy worlds"), "{err}");
    assert!(k.ok(&["plugin", "list"]).contains("no plugins installed"));
    let blobs = k.home().join("plugins/blobs");
    assert!(!blobs.exists() || std::fs::read_dir(&blobs).unwrap().next().is_none(), "nothing stored");
}

#[test]
fn versions_compatible_with_the_host_load_and_others_are_refused_naming_both() {
    let k = Kanban::new();
    let out = install(&k, &test_plugin("routing-v011"), "router");
    assert!(out.contains("kanban:policy@0.1.1"), "{out}");
    board_with(&k, "[[policies]]\nkind = \"routing\"\nplugin = \"router\"\n");
    let id = k.create("unassigned", &["--board", "b"]);
    let w_profile =
        std::fs::read_to_string(k.toml_path("b")).unwrap().replace("[profiles.w]", "[profiles.coder]");
    std::fs::write(k.toml_path("b"), w_profile).unwrap();
    let report = dry_run(&k);
    assert_eq!(report["auto_assigned"][0]["task_id"], id.as_str(), "{report}");
    assert_eq!(report["auto_assigned"][0]["assignee"], "coder");
    let err = k.fails(&["plugin", "install", test_plugin("routing-v020").to_str().unwrap()], 1);
    assert!(err.contains("0.2.0") && err.contains("0.1.0"), "{err}");
}

#[test]
fn board_check_runs_each_plugins_config_validation() {
    let k = Kanban::new();
    install(&k, &test_plugin("rejecting"), "rejecting");
    board_with(
        &k,
        "[[policies]]\nkind = \"routing\"\nplugin = \"rejecting\"\n[policies.config]\nassignee = \"w\"\n",
    );
    let err = k.fails(&["board", "check", "b"], 2);
    assert!(
        err.contains("policies[0]") && err.contains("config.assignee: this plugin rejects every config"),
        "{err}"
    );
    // A built-in's own validation names the key too.
    std::fs::write(
        k.toml_path("b"),
        "[[policies]]\nkind = \"respawn-guard\"\nplugin = \"builtin:respawn-guard\"\n[policies.config]\ncooldown = 5\n",
    )
    .unwrap();
    let err = k.fails(&["board", "check", "b"], 2);
    assert!(err.contains("config.cooldown"), "{err}");
}

#[test]
fn the_docs_example_guard_changes_dispatch_on_its_board_only() {
    let k = Kanban::new();
    install(&k, &hold_guard_plugin(), "hold-guard");
    board_with(
        &k,
        "[[policies]]\nkind = \"respawn-guard\"\nplugin = \"hold-guard\"\n[policies.config]\nmarker = \"[hold]\"\n",
    );
    k.ok(&["board", "check", "b"]);
    k.ok(&["board", "create", "other"]);
    std::fs::write(k.toml_path("other"), "[profiles.w]\ncommand = [\"true\"]\n").unwrap();
    let held = k.create("ship it [hold]", &["--board", "b", "--assignee", "w"]);
    let free = k.create("ship it", &["--board", "b", "--assignee", "w"]);
    let elsewhere = k.create("ship it [hold]", &["--board", "other", "--assignee", "w"]);
    let report = dry_run(&k);
    assert_eq!(report["respawn_guarded"][0]["task_id"], held.as_str(), "{report}");
    assert_eq!(report["respawn_guarded"][0]["policy"], "hold-guard");
    let spawned: Vec<&str> =
        report["spawned"].as_array().unwrap().iter().map(|s| s["task_id"].as_str().unwrap()).collect();
    assert_eq!(spawned, [free.as_str()]);
    let other = k.json(&["--board", "other", "dispatch", "--dry-run", "--json"]);
    assert_eq!(other["spawned"][0]["task_id"], elsewhere.as_str());
    assert_eq!(other["respawn_guarded"], serde_json::json!([]));
}

#[test]
fn a_plugin_failing_three_ticks_in_a_row_is_quarantined_until_the_board_is_edited() {
    let k = Kanban::new();
    install(&k, &test_plugin("hostile"), "hostile");
    // The worker exits 0 at once (a protocol violation, requeued): every tick asks the guard again.
    board_with(&k, &format!("[dispatch]\nprotocol_violation_limit = 20\n\n{}", hostile_guard("panic", "")));
    k.create("card", &["--board", "b", "--assignee", "w"]);
    // Dry runs report the failure but change no quarantine state, however many there are.
    for _ in 0..4 {
        let report = dry_run(&k);
        assert_eq!(report["policy_errors"][0]["error_kind"], "panic", "{report}");
    }
    let events = k.json_lines(&["--board", "b", "events", "--json"]);
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "policy_quarantined").count(),
        0,
        "a dry run quarantined"
    );
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "policy_error").count(),
        0,
        "a dry run recorded an error"
    );
    for _ in 0..3 {
        k.json(&["--board", "b", "dispatch", "--wait", "--json"]);
    }
    let events = k.json_lines(&["--board", "b", "events", "--json"]);
    assert_eq!(events.iter().filter(|e| e["kind"] == "policy_quarantined").count(), 1);
    let report = dry_run(&k);
    assert!(report["policy_errors"][0]["error"].as_str().unwrap().contains("quarantined"), "{report}");
    let panics = k.json_lines(&["--board", "b", "events", "--json"]);
    assert_eq!(
        panics.iter().filter(|e| e["payload"]["error_kind"] == "panic").count(),
        3,
        "not called while quarantined"
    );
    let diagnostics = k.json(&["--board", "b", "diagnostics", "--json"]);
    assert!(
        diagnostics["findings"].as_array().unwrap().iter().any(|f| f["rule"] == "plugin-quarantined"),
        "{diagnostics}"
    );
    // Editing board.toml reloads the board: the plugin is asked again.
    let text = std::fs::read_to_string(k.toml_path("b")).unwrap();
    std::fs::write(k.toml_path("b"), format!("{text}\n# edited\n")).unwrap();
    let report = dry_run(&k);
    assert!(report["policy_errors"][0]["error"].as_str().unwrap().contains("panicked"), "{report}");
}

#[test]
fn a_tampered_plugin_is_reported_by_verify_and_refused_at_load() {
    let k = Kanban::new();
    install(&k, &hold_guard_plugin(), "hold-guard");
    assert!(k.ok(&["plugin", "verify"]).contains("ok"));
    let show = k.json(&["plugin", "show", "hold-guard", "--json"]);
    let blob = k.home().join(format!("plugins/blobs/{}.wasm", show["sha256"].as_str().unwrap()));
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let out = k.fails(&["plugin", "verify"], 1);
    assert!(out.contains("failed verification"), "{out}");
    assert!(k.run(&["plugin", "verify"]).stdout.starts_with(b"hold-guard"));
    board_with(&k, "[[policies]]\nkind = \"respawn-guard\"\nplugin = \"hold-guard\"\n");
    k.create("card", &["--board", "b", "--assignee", "w"]);
    let report = dry_run(&k);
    assert!(
        report["policy_errors"][0]["error"].as_str().unwrap().contains("does not match its hash"),
        "{report}"
    );
}

#[test]
fn worker_commands_never_build_a_wasmtime_engine() {
    let k = Kanban::new();
    board_with(&k, "");
    let id = k.create("card", &["--board", "b", "--assignee", "w", "--initial-status", "running"]);
    let engine_built = |args: &[&str]| {
        let out = k.cmd(args).env("KANBAN_LOG", "kanban::policy=debug").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).contains("creating the wasmtime engine")
    };
    for args in [
        vec!["--board", "b", "show", id.as_str()],
        vec!["--board", "b", "heartbeat", id.as_str()],
        vec!["--board", "b", "comment", id.as_str(), "hi"],
        vec!["--board", "b", "complete", id.as_str()],
        vec!["--board", "b", "list"],
    ] {
        assert!(!engine_built(&args), "{args:?} built an engine");
    }
    k.create("another", &["--board", "b", "--assignee", "w"]);
    assert!(engine_built(&["--board", "b", "dispatch", "--dry-run"]), "the check above would pass vacuously");
}

#[test]
fn builtin_diagnostics_findings_are_stored_and_shown() {
    let k = Kanban::new();
    board_with(&k, "");
    let id = k.create("flaky", &["--board", "b", "--assignee", "w"]);
    let conn = rusqlite::Connection::open(k.db_path("b")).unwrap();
    conn.execute("UPDATE tasks SET consecutive_failures = 2 WHERE id = ?1", [&id]).unwrap();
    drop(conn);
    let report = k.json(&["--board", "b", "diagnostics", "--json"]);
    let rules: Vec<&str> =
        report["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"repeated-failures"), "{report}");
    let shown = k.json(&["--board", "b", "show", &id, "--json"]);
    assert!(
        shown["findings"].as_array().unwrap().iter().any(|f| f["rule"] == "repeated-failures"),
        "{shown}"
    );
    // --severity filters; the stored findings are those of the latest run.
    let errors = k.json(&["--board", "b", "diagnostics", "--severity", "critical", "--json"]);
    assert_eq!(errors["findings"], serde_json::json!([]));
}

#[test]
fn checklist_decomposition_makes_children_that_inherit_the_workspace() {
    let k = Kanban::new();
    board_with(
        &k,
        "[[policies]]\nkind = \"decompose\"\nplugin = \"builtin:checklist-decompose\"\n[policies.config]\nchain = true\n",
    );
    let root = k.create(
        "Ship the release",
        &[
            "--board",
            "b",
            "--triage",
            "--workspace",
            "dir:/srv/app",
            "--body",
            "Steps:\n- [ ] write notes\n- [x] done already\n- [ ] tag it\n",
        ],
    );
    let out = k.json(&["--board", "b", "decompose", &root, "--json"]);
    let children: Vec<String> =
        out[0]["children"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(children.len(), 2, "{out}");
    let first = k.json(&["--board", "b", "show", &children[0], "--json"]);
    let second = k.json(&["--board", "b", "show", &children[1], "--json"]);
    assert_eq!(first["task"]["title"], "write notes");
    assert_eq!(first["task"]["workspace_kind"], "dir");
    assert_eq!(first["task"]["workspace_path"], "/srv/app");
    assert_eq!(first["task"]["status"], "ready");
    assert_eq!(second["task"]["status"], "todo", "chained: waits on the first");
    assert_eq!(second["parents"][0]["id"], children[0].as_str());
    let root_shown = k.json(&["--board", "b", "show", &root, "--json"]);
    assert_eq!(root_shown["task"]["status"], "todo");
    assert_eq!(root_shown["parents"].as_array().unwrap().len(), 2, "the root waits on its children");
    // A card with no list is left in triage, with the reason recorded.
    let plain = k.create("Think about it", &["--board", "b", "--triage", "--body", "no list here"]);
    let out = k.json(&["--board", "b", "decompose", &plain, "--json"]);
    assert!(out[0]["left"].as_str().unwrap().contains("no checklist"), "{out}");
    assert_eq!(k.json(&["--board", "b", "show", &plain, "--json"])["task"]["status"], "triage");
}

/// `kanban plugin context ID`: the record a policy gets, as JSON, built as the tick builds it.
#[test]
fn plugin_context_prints_the_record_a_policy_would_get() {
    let k = Kanban::new();
    let parent = k.create("parent", &[]);
    let id = k.create("Fix the login redirect", &["--assignee", "coder", "--parent", &parent]);
    k.ok(&["comment", &id, "see https://github.com/acme/web/pull/7"]);
    let ctx = k.json(&["plugin", "context", &id]);
    let keys: std::collections::BTreeSet<&str> =
        ctx.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["board", "card", "comments", "config", "events", "now", "parents", "runs"].into_iter().collect(),
        "{ctx}"
    );
    assert_eq!(ctx["card"]["id"], id.as_str());
    assert_eq!(ctx["card"]["title"], "Fix the login redirect");
    assert_eq!(ctx["parents"][0]["id"], parent.as_str());
    assert_eq!(ctx["comments"][0]["body"], "see https://github.com/acme/web/pull/7");
    assert_eq!(ctx["now"], k.now());
    assert_eq!(ctx["config"], "");
    let kinds: Vec<&str> =
        ctx["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"created") && kinds.contains(&"commented"), "{kinds:?}");
    let err = k.fails(&["plugin", "context", "t_00000000"], 1);
    assert!(err.contains("card t_00000000 not found"), "{err}");
}

/// `kanban plugin run`: one call of a plugin on a real card or a saved context, with its decision and cost.
#[test]
fn plugin_run_decides_on_a_card_or_a_saved_context_and_reports_its_cost() {
    let k = Kanban::new();
    let id = k.create("Fix the login redirect", &[]);
    k.ok(&["comment", &id, "see https://github.com/acme/web/pull/7"]);
    let run = k.json(&["plugin", "run", "builtin:respawn-guard", "--card", &id, "--json"]);
    assert_eq!(run["kind"], "respawn-guard", "{run}");
    assert_eq!(run["decision"]["decision"], "defer", "{run}");
    assert!(run["decision"]["reason"].as_str().unwrap().contains("pull request"), "{run}");
    assert_eq!(run["fuel_limit"], 200_000_000);
    assert!(run["fuel_used"].as_u64().unwrap() > 0, "{run}");
    assert!(run["peak_memory"].as_u64().unwrap() > 0, "{run}");
    // The same decision from a saved context; a config of the policy's own changes it.
    let fixture = k.home().join("ctx.json");
    std::fs::write(&fixture, k.ok(&["plugin", "context", &id])).unwrap();
    let path = fixture.to_str().unwrap();
    let again = k.json(&["plugin", "run", "builtin:respawn-guard", "--context", path, "--json"]);
    assert_eq!(again["decision"], run["decision"]);
    let off = r#"{"pr_link_window_seconds": 0}"#;
    let allowed =
        k.json(&["plugin", "run", "builtin:respawn-guard", "--context", path, "--config", off, "--json"]);
    assert_eq!(allowed["decision"]["decision"], "allow", "{allowed}");
    let text = k.ok(&["plugin", "run", "builtin:checklist-decompose", "--card", &id]);
    assert!(text.starts_with("decompose builtin:checklist-decompose") && text.contains("fuel:"), "{text}");
    // Refusals name what is wrong.
    let err =
        k.fails(&["plugin", "run", "builtin:respawn-guard", "--card", &id, "--config", r#"{"nope": 1}"#], 1);
    assert!(err.contains("config.nope: unknown key"), "{err}");
    let err = k.fails(&["plugin", "run", "builtin:respawn-guard", "--card", &id, "--config", "{"], 2);
    assert!(err.contains("--config is not JSON"), "{err}");
    let err = k.fails(&["plugin", "run", "nothing", "--card", &id], 1);
    assert!(err.contains("plugin 'nothing' is not a file"), "{err}");
    std::fs::write(&fixture, "{}").unwrap();
    let err = k.fails(&["plugin", "run", "builtin:respawn-guard", "--context", path], 2);
    assert!(err.contains("is not a context record"), "{err}");
}

/// A hostile plugin run by hand is bounded by the same sandbox as in a tick.
#[test]
fn plugin_run_bounds_a_looping_plugin_by_its_fuel() {
    let k = Kanban::new();
    let id = k.create("x", &[]);
    let plugin = test_plugin("hostile");
    let err = k.fails(
        &["plugin", "run", plugin.to_str().unwrap(), "--card", &id, "--config", r#"{"mode": "loop"}"#],
        1,
    );
    assert!(err.contains("fuel"), "{err}");
}

#[test]
fn install_says_whether_it_compiled_and_how_big_the_cached_artifact_is() {
    let k = Kanban::new();
    let first = install(&k, &hold_guard_plugin(), "hold-guard");
    assert!(first.contains("\ncompiled in "), "{first}");
    assert!(first.contains("MB in the cache"), "{first}");
    let again = install(&k, &hold_guard_plugin(), "hold-guard");
    assert!(again.contains("\nalready compiled; its compiled artifact is "), "{again}");
}
