//! Every policy failure is visible and typed, through one path (issue 10, items 17 to 20 and the contract
//! gaps): a router naming no profile, a tampered plugin blob and a failing diagnostics plugin each become a
//! typed `policy_error` (in `dispatch --json`'s `policy_errors` and as an event) and count toward
//! quarantine; a plugin whose `validate-config` rejects the board's config is never run and its kind's safe
//! default applies; the sandbox's randomness is a real deterministic stream per card; a dry run changes no
//! quarantine state; `plugin list --json` lists the built-ins; and a trap's error is one line in its event.
//!
//! The plugins are the test components of `tests/plugins` (built by `test_plugin`) and the built-ins.

use std::path::Path;

use serde_json::Value;

use crate::common::{Fleet, strings, task_ids, test_plugin};

/// A board whose profile `w` exits 0 at once: with `--wait`, a tick settles it as a protocol violation and
/// requeues it (the limit is raised), so every tick asks the policies about the card again.
fn board(f: &Fleet, policies: &str) {
    f.write_board_unchecked(&format!(
        "[dispatch]\nprotocol_violation_limit = 50\n\n[profiles.w]\ncommand = [\"true\"]\n\n{policies}"
    ));
}

fn install(f: &Fleet, plugin: &Path, name: &str) {
    f.ok(&["plugin", "install", plugin.to_str().unwrap(), "--name", name]);
}

/// A `[[policies]]` entry.
fn policy(kind: &str, plugin: &str, extra: &str, config: &str) -> String {
    format!("[[policies]]\nkind = {kind:?}\nplugin = {plugin:?}\n{extra}\n[policies.config]\n{config}\n")
}

fn dry_run(f: &Fleet) -> Value {
    f.dispatch(&["--dry-run"])
}

/// One real tick that waits for and settles its workers.
fn tick(f: &Fleet) -> Value {
    f.dispatch_wait()
}

/// The board's events of `kind` (board-level and on cards).
fn board_events(f: &Fleet, kind: &str) -> Vec<Value> {
    f.events().into_iter().filter(|e| e["kind"] == kind).collect()
}

/// The report's policy errors of `policy`.
fn errors_of(report: &Value, policy: &str) -> Vec<Value> {
    report["policy_errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no policy_errors in {report}"))
        .iter()
        .filter(|e| e["policy"] == policy)
        .cloned()
        .collect()
}

/// The one policy error of `policy` in a report, checked for its kind and card.
fn one_error(report: &Value, policy: &str, kind: &str, task: Option<&str>) -> Value {
    let errors = errors_of(report, policy);
    assert_eq!(errors.len(), 1, "{policy}: {report}");
    assert_eq!(errors[0]["error_kind"], kind, "{report}");
    assert_eq!(errors[0]["task_id"], task.map_or(Value::Null, Value::from), "{report}");
    errors[0].clone()
}

/// The `policy_error` events of `policy`.
fn policy_error_events(f: &Fleet, policy: &str) -> Vec<Value> {
    board_events(f, "policy_error").into_iter().filter(|e| e["payload"]["policy"] == policy).collect()
}

fn quarantined_events(f: &Fleet, policy: &str) -> Vec<Value> {
    board_events(f, "policy_quarantined").into_iter().filter(|e| e["payload"]["policy"] == policy).collect()
}

/// Flip the last byte of an installed plugin's stored blob.
fn tamper(f: &Fleet, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let show = f.json(&["plugin", "show", name, "--json"]);
    let blob = f.home().join(format!("plugins/blobs/{}.wasm", show["sha256"].as_str().unwrap()));
    let original = std::fs::read(&blob).unwrap();
    let mut bytes = original.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    (blob, original)
}

// ---------------------------------------------------------------------------------------------------------
// Item 17: every failure is a typed, recorded policy error that counts toward quarantine.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn a_router_naming_no_profile_is_a_typed_recorded_bad_output_that_counts_toward_quarantine() {
    let f = Fleet::new();
    let router = "builtin:default-assignee";
    board(&f, &policy("routing", router, "", "assignee = \"ghost\""));
    let id = f.create("nobody's", &[]);

    // Dry runs report the typed failure and record nothing, however many there are.
    for _ in 0..4 {
        let report = dry_run(&f);
        let error = one_error(&report, router, "bad_output", Some(&id));
        assert!(error["error"].as_str().unwrap().contains("ghost"), "{error}");
        assert_eq!(strings(&report["skipped_unassigned"]), vec![id.clone()], "{report}");
    }
    assert!(policy_error_events(&f, router).is_empty(), "a dry run recorded a policy error");
    assert!(quarantined_events(&f, router).is_empty(), "a dry run quarantined");

    // Each real tick records the failure on the card, typed, and leaves the card unassigned.
    for n in 1..=3 {
        let report = tick(&f);
        one_error(&report, router, "bad_output", Some(&id));
        assert_eq!(strings(&report["skipped_unassigned"]), vec![id.clone()], "{report}");
        assert!(task_ids(&report["spawned"]).is_empty(), "{report}");
        let events: Vec<Value> = f
            .events_of(&id, "policy_error")
            .into_iter()
            .filter(|e| e["payload"]["policy"] == router)
            .collect();
        assert_eq!(events.len(), n, "{events:?}");
        assert_eq!(events[n - 1]["payload"]["error_kind"], "bad_output", "{events:?}");
        assert!(events[n - 1]["payload"]["error"].as_str().unwrap().contains("ghost"), "{events:?}");
        assert_eq!(quarantined_events(&f, router).len(), usize::from(n == 3), "after tick {n}");
    }
    let task = f.task(&id);
    assert!(task["assignee"].is_null(), "{task}");
    assert_eq!(task["status"], "ready");
    assert!(f.events_of(&id, "assigned").is_empty());

    // Quarantined: not asked any more (no new failure recorded), reported as quarantined.
    let report = tick(&f);
    one_error(&report, router, "quarantined", Some(&id));
    assert_eq!(policy_error_events(&f, router).len(), 3);
    assert_eq!(quarantined_events(&f, router).len(), 1);
}

#[test]
fn a_tampered_plugin_blob_is_a_board_level_hash_mismatch_that_counts_toward_quarantine() {
    let f = Fleet::new();
    install(&f, &test_plugin("hostile"), "guard");
    board(&f, &policy("respawn-guard", "guard", "", "mode = \"allow\""));
    let id = f.create("card", &["--assignee", "w"]);
    tamper(&f, "guard");

    let report = dry_run(&f);
    let error = one_error(&report, "guard", "hash_mismatch", None);
    assert!(error["error"].as_str().unwrap().contains("does not match its hash"), "{error}");
    assert_eq!(task_ids(&report["spawned"]), vec![id.clone()], "a guard that cannot load allows: {report}");
    assert!(policy_error_events(&f, "guard").is_empty(), "a dry run recorded a policy error");

    for n in 1..=3 {
        let report = tick(&f);
        one_error(&report, "guard", "hash_mismatch", None);
        let events = policy_error_events(&f, "guard");
        assert_eq!(events.len(), n, "{events:?}");
        assert!(events[n - 1]["task_id"].is_null(), "a load failure is the board's: {events:?}");
        assert_eq!(events[n - 1]["payload"]["error_kind"], "hash_mismatch", "{events:?}");
        assert_eq!(quarantined_events(&f, "guard").len(), usize::from(n == 3), "after tick {n}");
    }
    tick(&f);
    assert_eq!(policy_error_events(&f, "guard").len(), 3, "a quarantined policy failed again");
    assert_eq!(quarantined_events(&f, "guard").len(), 1);
}

/// A load skips hashing a plugin's stored blob and its compiled artifact while their files keep the
/// fingerprint recorded when they were last checked (docs/security.md). A write to either afterwards, of
/// the same size, still never runs: the blob is refused, the artifact recompiled from the blob.
#[test]
fn a_blob_or_compiled_artifact_changed_after_its_fingerprint_was_recorded_is_checked_again() {
    let f = Fleet::new();
    install(&f, &test_plugin("hostile"), "guard");
    board(&f, &policy("respawn-guard", "guard", "", "mode = \"allow\""));
    let id = f.create("card", &["--assignee", "w"]);
    // Fingerprints are recorded only for files unchanged for 2 s (the kernel's file clock is coarse).
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let report = dry_run(&f);
    assert!(report["policy_errors"].as_array().unwrap().is_empty(), "{report}");
    let sha = f.json(&["plugin", "show", "guard", "--json"])["sha256"].as_str().unwrap().to_string();
    assert!(f.home().join("cache/verified").join(&sha).exists(), "the blob's fingerprint was not recorded");
    let cache = f.home().join("cache/wasm");
    let name = |ext: &str| {
        std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name().unwrap().to_str().unwrap().starts_with(&sha) && p.extension().unwrap() == ext
            })
            .unwrap_or_else(|| panic!("no .{ext} for {sha} in {}", cache.display()))
    };
    let mac = std::fs::read_to_string(name("mac")).unwrap();
    assert_eq!(mac.lines().count(), 2, "the artifact's fingerprint was not sealed: {mac}");

    // The compiled artifact, changed in place: the keyed digest no longer matches, so it is recompiled.
    let artifact = name("cwasm");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&artifact, bytes).unwrap();
    let out = f.cmd(&["dispatch", "--dry-run", "--json"]).env("KANBAN_LOG", "warn").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ignoring a compiled artifact the host did not write"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["policy_errors"].as_array().unwrap().is_empty(), "{report}");

    // The blob, changed in place: refused.
    tamper(&f, "guard");
    let report = dry_run(&f);
    one_error(&report, "guard", "hash_mismatch", None);
    assert_eq!(task_ids(&report["spawned"]), vec![id], "{report}");
}

fn findings(report: &Value) -> Vec<Value> {
    report["findings"].as_array().unwrap_or_else(|| panic!("no findings in {report}")).clone()
}

#[test]
fn a_diagnostics_plugin_that_fails_gives_an_error_finding_naming_it_and_a_recorded_policy_error() {
    let f = Fleet::new();
    // A respawn guard configured as a diagnostics policy: every diagnostics run fails to use it.
    install(&f, &test_plugin("hostile"), "hostile");
    board(&f, &policy("diagnostics", "hostile", "", ""));
    f.create("card", &["--assignee", "w"]);

    for n in 1..=3 {
        let report = f.json(&["diagnostics", "--json"]);
        let errors: Vec<Value> = findings(&report)
            .into_iter()
            .filter(|x| x["rule"] == "policy-error" && x["policy"] == "hostile")
            .collect();
        assert_eq!(errors.len(), 1, "{report}");
        assert_eq!(errors[0]["severity"], "error", "{report}");
        assert!(errors[0]["detail"].as_str().unwrap().contains("hostile"), "{report}");
        let events = policy_error_events(&f, "hostile");
        assert_eq!(events.len(), n, "{events:?}");
        assert_eq!(events[n - 1]["payload"]["error_kind"], "wrong_world", "{events:?}");
        assert_eq!(quarantined_events(&f, "hostile").len(), usize::from(n == 3), "after run {n}");
    }
    let report = f.json(&["diagnostics", "--json"]);
    assert!(
        findings(&report).iter().any(|x| x["rule"] == "plugin-quarantined" && x["policy"] == "hostile"),
        "{report}"
    );
}

#[test]
fn a_diagnostics_call_that_fails_is_an_error_finding_on_the_card_and_a_typed_event_on_it() {
    let f = Fleet::new();
    // The built-in diagnostics rejects this key when its instance starts, so every diagnose call fails.
    let diagnostics = "builtin:diagnostics";
    board(&f, &policy("diagnostics", diagnostics, "", "stuck_seconds = 1"));
    let id = f.create("card", &["--assignee", "w"]);

    for n in 1..=3 {
        let report = f.json(&["diagnostics", "--json"]);
        let errors: Vec<Value> = findings(&report)
            .into_iter()
            .filter(|x| x["rule"] == "policy-error" && x["policy"] == diagnostics)
            .collect();
        assert_eq!(errors.len(), 1, "{report}");
        assert_eq!(errors[0]["task_id"], id.as_str(), "{report}");
        assert!(errors[0]["detail"].as_str().unwrap().contains("stuck_seconds"), "{report}");
        let events: Vec<Value> = f
            .events_of(&id, "policy_error")
            .into_iter()
            .filter(|e| e["payload"]["policy"] == diagnostics)
            .collect();
        assert_eq!(events.len(), n, "{events:?}");
        assert_eq!(events[n - 1]["payload"]["error_kind"], "bad_config", "{events:?}");
        assert_eq!(quarantined_events(&f, diagnostics).len(), usize::from(n == 3), "after run {n}");
    }
    // The card's stored findings (what `show` prints) include the error finding.
    let shown = f.show(&id);
    assert!(shown["findings"].as_array().unwrap().iter().any(|x| x["rule"] == "policy-error"), "{shown}");
}

// ---------------------------------------------------------------------------------------------------------
// Item 18: a config the plugin rejects is `bad_config`, and the plugin is not run.
// ---------------------------------------------------------------------------------------------------------

/// The hostile guard with a mode it rejects in `validate-config`. Were `decide` called anyway, it would
/// panic on this config (a `panic` error, not `bad_config`).
const REJECTED_GUARD_CONFIG: &str = "mode = \"no-such-mode\"";

#[test]
fn a_guard_whose_config_it_rejects_is_not_run_and_its_safe_default_allows() {
    let f = Fleet::new();
    install(&f, &test_plugin("hostile"), "hostile");
    board(&f, &policy("respawn-guard", "hostile", "", REJECTED_GUARD_CONFIG));
    let err = f.fails(&["board", "check", "default"], 2);
    assert!(err.contains("config.mode"), "{err}");
    let id = f.create("card", &["--assignee", "w"]);

    let report = dry_run(&f);
    let error = one_error(&report, "hostile", "bad_config", Some(&id));
    assert!(error["error"].as_str().unwrap().contains("config.mode"), "{error}");
    assert_eq!(task_ids(&report["spawned"]), vec![id.clone()], "{report}");

    let report = tick(&f);
    one_error(&report, "hostile", "bad_config", Some(&id));
    assert_eq!(task_ids(&report["spawned"]), vec![id.clone()], "the guard's safe default allows: {report}");
    let events = policy_error_events(&f, "hostile");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["task_id"], id.as_str());
    assert_eq!(events[0]["payload"]["error_kind"], "bad_config", "{events:?}");
}

#[test]
fn a_guard_whose_config_it_rejects_defers_when_it_fails_closed() {
    let f = Fleet::new();
    install(&f, &test_plugin("hostile"), "hostile");
    board(&f, &policy("respawn-guard", "hostile", "on_error = \"defer\"", REJECTED_GUARD_CONFIG));
    let id = f.create("card", &["--assignee", "w"]);

    for report in [dry_run(&f), tick(&f)] {
        one_error(&report, "hostile", "bad_config", Some(&id));
        assert!(task_ids(&report["spawned"]).is_empty(), "{report}");
        assert_eq!(task_ids(&report["respawn_guarded"]), vec![id.clone()], "{report}");
        let reason = report["respawn_guarded"][0]["reason"].as_str().unwrap();
        assert!(reason.contains("bad_config") && reason.contains("fails closed"), "{reason}");
    }
    assert_eq!(f.status(&id), "ready");
    assert!(f.runs(&id).is_empty());
    let events = policy_error_events(&f, "hostile");
    assert_eq!(events.len(), 1, "only the real tick records: {events:?}");
    assert_eq!(events[0]["payload"]["error_kind"], "bad_config", "{events:?}");
}

#[test]
fn a_router_whose_config_it_rejects_is_not_run_and_leaves_the_card_unassigned() {
    let f = Fleet::new();
    install(&f, &test_plugin("rejecting"), "rejecting");
    board(&f, &policy("routing", "rejecting", "", "assignee = \"w\""));
    let id = f.create("nobody's", &[]);

    for report in [dry_run(&f), tick(&f)] {
        let error = one_error(&report, "rejecting", "bad_config", Some(&id));
        assert!(error["error"].as_str().unwrap().contains("rejects every config"), "{error}");
        assert_eq!(strings(&report["skipped_unassigned"]), vec![id.clone()], "{report}");
        assert!(task_ids(&report["spawned"]).is_empty(), "{report}");
    }
    assert!(f.task(&id)["assignee"].is_null());
    let events = f.events_of(&id, "policy_error");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["payload"]["error_kind"], "bad_config", "{events:?}");
}

// ---------------------------------------------------------------------------------------------------------
// Item 19: the sandbox's randomness.
// ---------------------------------------------------------------------------------------------------------

/// The two u64s the probe guard drew for each card it deferred, from a dry run's `respawn_guarded`.
fn draws(report: &Value) -> Vec<(String, [u64; 2])> {
    report["respawn_guarded"]
        .as_array()
        .unwrap_or_else(|| panic!("no respawn_guarded in {report}"))
        .iter()
        .map(|g| {
            let reason: Value = serde_json::from_str(g["reason"].as_str().unwrap()).unwrap();
            let d = &reason["draws"];
            let pair = [d[0].as_u64().unwrap(), d[1].as_u64().unwrap()];
            (g["task_id"].as_str().unwrap().to_string(), pair)
        })
        .collect()
}

#[test]
fn sandbox_randomness_differs_between_draws_and_cards_and_repeats_for_the_same_card() {
    let f = Fleet::new();
    install(&f, &test_plugin("probe"), "probe");
    board(&f, &policy("respawn-guard", "probe", "", "mode = \"random\""));
    let first = f.create("first", &["--assignee", "w", "--priority", "1"]);
    let second = f.create("second", &["--assignee", "w"]);

    let seen = draws(&dry_run(&f));
    let ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    let (a, b) = (seen[0].1, seen[1].1);
    assert_ne!(a[0], a[1], "two draws in one call gave the same value: {a:?}");
    assert_ne!(b[0], b[1], "two draws in one call gave the same value: {b:?}");
    assert!(a[0] != b[0] && a[1] != b[1] && a != b, "two cards drew the same values: {a:?} {b:?}");

    // Deterministic: the same card draws the same values every time.
    assert_eq!(draws(&dry_run(&f)), seen);
    // Reseeded per call from the card, not a stream carried over from the card asked before it.
    f.ok(&["schedule", &first]);
    assert_eq!(draws(&dry_run(&f)), vec![(second.clone(), b)]);
}

// ---------------------------------------------------------------------------------------------------------
// Item 20: a dry run never changes quarantine state.
// ---------------------------------------------------------------------------------------------------------

/// Quarantine records in the board's store (whatever board.toml they were made under).
fn quarantine_rows(f: &Fleet) -> i64 {
    let conn = rusqlite::Connection::open(f.db_path("default")).unwrap();
    conn.query_row("SELECT count(*) FROM policy_health WHERE quarantined_at IS NOT NULL", [], |r| r.get(0))
        .unwrap()
}

fn quarantined_finding(f: &Fleet, policy: &str) -> bool {
    let report = f.json(&["diagnostics", "--json"]);
    findings(&report).iter().any(|x| x["rule"] == "plugin-quarantined" && x["policy"] == policy)
}

#[test]
fn a_quarantined_policy_stays_quarantined_through_dry_runs_after_an_edit_until_a_real_tick() {
    let f = Fleet::new();
    install(&f, &test_plugin("hostile"), "hostile");
    board(&f, &policy("respawn-guard", "hostile", "", "mode = \"panic\""));
    let id = f.create("card", &["--assignee", "w"]);
    for _ in 0..3 {
        tick(&f);
    }
    assert_eq!(quarantined_events(&f, "hostile").len(), 1);
    assert!(quarantined_finding(&f, "hostile"));

    // Editing board.toml lets the next tick ask the plugin again; a dry run shows that, but lifts nothing,
    // records nothing and quarantines nothing.
    let text = std::fs::read_to_string(f.toml_path("default")).unwrap();
    std::fs::write(f.toml_path("default"), format!("{text}\n# edited\n")).unwrap();
    for _ in 0..4 {
        let report = dry_run(&f);
        one_error(&report, "hostile", "panic", Some(&id));
    }
    assert_eq!(policy_error_events(&f, "hostile").len(), 3, "a dry run recorded a policy error");
    assert_eq!(quarantined_events(&f, "hostile").len(), 1, "a dry run quarantined again");
    assert_eq!(quarantine_rows(&f), 1, "a dry run lifted the quarantine");
    // (Diagnostics report only quarantines that hold for the board as configured now.)
    assert!(!quarantined_finding(&f, "hostile"), "a quarantine of the old board.toml is still reported");

    // A real tick lifts it (and, the plugin still failing, starts a new streak).
    tick(&f);
    assert_eq!(quarantine_rows(&f), 0, "a real tick after the edit did not lift the quarantine");
    assert!(!quarantined_finding(&f, "hostile"));
    assert_eq!(policy_error_events(&f, "hostile").len(), 4);
    assert_eq!(quarantined_events(&f, "hostile").len(), 1);
}

#[test]
fn dry_runs_neither_extend_nor_break_a_policys_failure_streak() {
    let f = Fleet::new();
    install(&f, &test_plugin("hostile"), "guard");
    board(&f, &policy("respawn-guard", "guard", "", "mode = \"allow\""));
    let id = f.create("card", &["--assignee", "w"]);
    let (blob, original) = tamper(&f, "guard");
    for _ in 0..2 {
        one_error(&tick(&f), "guard", "hash_mismatch", None);
    }
    // Failing dry runs do not extend the streak of two...
    for _ in 0..3 {
        one_error(&dry_run(&f), "guard", "hash_mismatch", None);
    }
    assert!(quarantined_events(&f, "guard").is_empty(), "failing dry runs extended the streak");
    // ...and succeeding ones do not break it.
    std::fs::write(&blob, &original).unwrap();
    for _ in 0..3 {
        let report = dry_run(&f);
        assert!(errors_of(&report, "guard").is_empty(), "{report}");
        assert_eq!(task_ids(&report["spawned"]), vec![id.clone()], "{report}");
    }
    tamper(&f, "guard");
    one_error(&tick(&f), "guard", "hash_mismatch", None);
    assert_eq!(quarantined_events(&f, "guard").len(), 1, "the third failing real tick in a row quarantines");
    assert_eq!(policy_error_events(&f, "guard").len(), 3, "only real ticks record");
}

// ---------------------------------------------------------------------------------------------------------
// Contract gaps.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn plugin_list_json_includes_the_builtins_and_the_installed_plugins() {
    let f = Fleet::new();
    install(&f, &test_plugin("hostile"), "hostile");
    let list = f.json(&["plugin", "list", "--json"]);
    let entries = list.as_array().unwrap_or_else(|| panic!("not an array: {list}"));
    let of = |name: &str| {
        entries.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no {name} in {list}")).clone()
    };
    for (name, kind) in [
        ("builtin:respawn-guard", "respawn-guard"),
        ("builtin:diagnostics", "diagnostics"),
        ("builtin:default-assignee", "routing"),
        ("builtin:checklist-decompose", "decompose"),
    ] {
        let entry = of(name);
        assert_eq!(entry["source"], "builtin", "{entry}");
        assert_eq!(entry["kind"], kind, "{entry}");
    }
    let hostile = of("hostile");
    assert_eq!(hostile["source"], "installed", "{hostile}");
    assert_eq!(hostile["kind"], "respawn-guard", "{hostile}");
    assert_eq!(entries.len(), 5, "{list}");
}

#[test]
fn a_trapping_plugins_error_is_one_line_in_its_event_while_the_report_says_what_happened() {
    let cases = [
        ("panic", "", "hostile plugin panicked on purpose"),
        ("loop", "fuel = 5000000", "ran out of fuel"),
        ("alloc", "memory_mib = 16", "memory limit"),
    ];
    for (mode, limits, says) in cases {
        let f = Fleet::new();
        install(&f, &test_plugin("hostile"), "hostile");
        board(&f, &policy("respawn-guard", "hostile", limits, &format!("mode = {mode:?}")));
        let id = f.create("card", &["--assignee", "w"]);
        let report = tick(&f);
        let error = errors_of(&report, "hostile");
        assert_eq!(error.len(), 1, "{mode}: {report}");
        assert!(error[0]["error"].as_str().unwrap().contains(says), "{mode}: {report}");
        let events = f.events_of(&id, "policy_error");
        assert_eq!(events.len(), 1, "{mode}: {events:?}");
        let text = events[0]["payload"]["error"].as_str().unwrap();
        assert!(text.contains(says), "{mode}: the event does not say what happened: {text:?}");
        assert!(!text.contains('\n'), "{mode}: more than one line: {text:?}");
        for noise in ["wasm backtrace", "RUST_BACKTRACE", "backtrace"] {
            assert!(!text.contains(noise), "{mode}: {noise:?} in the event: {text:?}");
        }
    }
}
