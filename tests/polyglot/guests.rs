//! Python and JavaScript guests on a real board: the docs examples (a Python respawn guard, a JavaScript
//! router) install and decide as their READMEs say, and hostile guests that carry a whole language runtime
//! (CPython, SpiderMonkey) are still held to the fuel and memory limits, as typed policy errors after which
//! the guard's safe default applies.

use serde_json::Value;

use crate::built;
use crate::common::{Fleet, task_ids};

/// A Saturday, 12:00 UTC, and the Monday after it at 10:00 UTC.
const SATURDAY_NOON: i64 = 1_794_052_800;
const MONDAY_TEN: i64 = 1_794_218_400;

/// A fleet whose compiled-component cache is shared by every test of this target (compiling a Python or
/// JavaScript component takes 20 to 40 s; the cache is keyed by the component's sha256).
fn fleet() -> Fleet {
    let f = Fleet::new();
    let shared = built("").join("cache");
    std::fs::create_dir_all(&shared).expect("create the shared compile cache");
    std::os::unix::fs::symlink(&shared, f.home().join("cache")).expect("link the shared cache");
    f
}

fn install(f: &Fleet, file: &str, name: &str) {
    let out = f.ok(&["plugin", "install", built(file).to_str().unwrap(), "--name", name]);
    assert!(out.contains(&format!("Installed {name}")), "{out}");
}

fn guarded(report: &Value) -> Vec<Value> {
    report["respawn_guarded"].as_array().unwrap_or_else(|| panic!("no respawn_guarded in {report}")).clone()
}

fn spawned(report: &Value) -> Vec<String> {
    task_ids(&report["spawned"])
}

#[test]
#[ignore = "needs Python/JS toolchains: KANBAN_POLYGLOT_DIR=DIR after tests/plugins-polyglot/build.sh DIR"]
fn the_python_business_hours_guard_defers_outside_hours_and_allows_inside() {
    let f = fleet();
    install(&f, "business_hours_guard.wasm", "business-hours-guard");
    f.write_board(
        "[profiles.coder]\ncommand = [\"true\"]\n[profiles.reviewer]\ncommand = [\"true\"]\n\n\
         [[policies]]\nkind = \"respawn-guard\"\nplugin = \"business-hours-guard\"\n\
         [policies.config]\nhours = { coder = [9, 18] }\nholidays = [\"2026-12-25\"]\n",
    );
    let coder = f.create("Fix the login redirect", &["--assignee", "coder"]);
    let reviewer = f.create("Review the release notes", &["--assignee", "reviewer"]);

    f.set_now(SATURDAY_NOON);
    let report = f.dispatch(&["--dry-run"]);
    let held = guarded(&report);
    assert_eq!(held.len(), 1, "{report}");
    assert_eq!(held[0]["task_id"], coder.as_str(), "{report}");
    assert_eq!(held[0]["policy"], "business-hours-guard", "{report}");
    assert_eq!(held[0]["retry_after"], MONDAY_TEN - 3600, "opens Monday 09:00 UTC: {report}");
    let reason = held[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("outside business hours for coder"), "{reason}");
    assert_eq!(
        spawned(&report),
        std::slice::from_ref(&reviewer),
        "a profile without hours is never deferred"
    );
    assert!(report["policy_errors"].as_array().unwrap().is_empty(), "{report}");

    f.set_now(MONDAY_TEN);
    let report = f.dispatch(&["--dry-run"]);
    assert!(guarded(&report).is_empty(), "{report}");
    let mut both = spawned(&report);
    both.sort();
    let mut expected = vec![coder, reviewer];
    expected.sort();
    assert_eq!(both, expected, "{report}");

    // validate-config runs in the guest and names the key at fault.
    f.write_board_unchecked(
        "[profiles.coder]\ncommand = [\"true\"]\n\n[[policies]]\nkind = \"respawn-guard\"\n\
         plugin = \"business-hours-guard\"\n[policies.config]\nhours = { coder = [18, 9] }\n",
    );
    let err = f.fails(&["board", "check", "default"], 2);
    assert!(err.contains("config.hours.coder"), "{err}");
}

#[test]
#[ignore = "needs Python/JS toolchains: KANBAN_POLYGLOT_DIR=DIR after tests/plugins-polyglot/build.sh DIR"]
fn the_javascript_label_router_assigns_cards_by_the_label_in_their_title() {
    let f = fleet();
    install(&f, "label_router.wasm", "label-router");
    f.write_board(
        "[profiles.web-coder]\ncommand = [\"true\"]\n[profiles.ops]\ncommand = [\"true\"]\n\
         [profiles.coder]\ncommand = [\"true\"]\n\n\
         [[policies]]\nkind = \"routing\"\nplugin = \"label-router\"\n\
         [policies.config]\nlabels = { frontend = \"web-coder\", infra = \"ops\" }\ndefault = \"coder\"\n",
    );
    let web = f.create("[Frontend] Fix the button", &[]);
    let ops = f.create("Rotate the certificates [infra]", &[]);
    let plain = f.create("Write the changelog", &[]);
    let report = f.dispatch(&["--dry-run"]);
    let routed: std::collections::BTreeMap<String, String> = report["auto_assigned"]
        .as_array()
        .unwrap_or_else(|| panic!("no auto_assigned in {report}"))
        .iter()
        .map(|a| {
            assert_eq!(a["policy"], "label-router", "{report}");
            (a["task_id"].as_str().unwrap().to_string(), a["assignee"].as_str().unwrap().to_string())
        })
        .collect();
    let expected = [(web, "web-coder"), (ops, "ops"), (plain, "coder")]
        .map(|(id, p)| (id, p.to_string()))
        .into_iter()
        .collect();
    assert_eq!(routed, expected, "{report}");
    assert!(report["policy_errors"].as_array().unwrap().is_empty(), "{report}");

    let err = {
        f.write_board_unchecked(
            "[profiles.coder]\ncommand = [\"true\"]\n\n[[policies]]\nkind = \"routing\"\n\
             plugin = \"label-router\"\n[policies.config]\nlabels = {}\ndefualt = \"coder\"\n",
        );
        f.fails(&["board", "check", "default"], 2)
    };
    assert!(err.contains("config.defualt"), "{err}");
}

/// The one policy error of a dry run, with its kind and message.
fn hostile_error(f: &Fleet, mode: &str) -> (String, String) {
    f.write_board(&format!(
        "[profiles.w]\ncommand = [\"true\"]\n\n[[policies]]\nkind = \"respawn-guard\"\nplugin = \"hostile\"\n\
         [policies.config]\nmode = {mode:?}\n"
    ));
    let report = f.dispatch(&["--dry-run"]);
    let errors = report["policy_errors"].as_array().unwrap_or_else(|| panic!("{report}"));
    assert_eq!(errors.len(), 1, "mode {mode}: {report}");
    assert_eq!(spawned(&report).len(), 1, "mode {mode}: the guard's safe default allows: {report}");
    let e = &errors[0];
    (e["error_kind"].as_str().unwrap().to_string(), e["error"].as_str().unwrap_or_default().to_string())
}

fn hostile_guest_is_bounded(file: &str, exception_mode: &str, exception_kind: &str) {
    let f = fleet();
    install(&f, file, "hostile");
    f.create("A card to guard", &["--assignee", "w"]);
    f.write_board(
        "[profiles.w]\ncommand = [\"true\"]\n\n[[policies]]\nkind = \"respawn-guard\"\nplugin = \"hostile\"\n\
         [policies.config]\nmode = \"allow\"\n",
    );
    let report = f.dispatch(&["--dry-run"]);
    assert!(report["policy_errors"].as_array().unwrap().is_empty(), "{report}");
    let (kind, message) = hostile_error(&f, "loop");
    assert_eq!(kind, "out_of_fuel", "{message}");
    let (kind, message) = hostile_error(&f, "alloc");
    assert_eq!(kind, "memory", "{message}");
    assert!(message.contains("memory limit"), "{message}");
    let (kind, _) = hostile_error(&f, exception_mode);
    assert_eq!(kind, exception_kind);
}

#[test]
#[ignore = "needs Python/JS toolchains: KANBAN_POLYGLOT_DIR=DIR after tests/plugins-polyglot/build.sh DIR"]
fn a_hostile_python_guest_is_held_to_fuel_and_memory() {
    hostile_guest_is_bounded("hostile_py.wasm", "raise", "panic");
}

#[test]
#[ignore = "needs Python/JS toolchains: KANBAN_POLYGLOT_DIR=DIR after tests/plugins-polyglot/build.sh DIR"]
fn a_hostile_javascript_guest_is_held_to_fuel_and_memory() {
    hostile_guest_is_bounded("hostile_js.wasm", "throw", "trap");
}
