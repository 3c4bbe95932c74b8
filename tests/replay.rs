//! `kanban policy replay` (issue 14, item 5): on a board whose history the test makes (spawns, a rate
//! limit, crashes, the built-in guard's deferrals), a candidate guard is asked about every recorded spawn
//! decision with the card rebuilt as it stood then. The report names exactly the decisions it changes;
//! the board's own guard replayed against its own history changes none; and each rebuilt context equals
//! the one `kanban plugin context` printed live just before that tick.

use serde_json::Value;

use crate::common::{Fleet, hold_guard_plugin};

const T0: i64 = 1_800_000_000;

/// Cards whose title says CRASH exit 1; LIMIT exits 75 on its first attempt; the rest complete.
fn fleet() -> Fleet {
    let f = Fleet::new();
    let script = f.script(
        "worker.sh",
        r#"if grep -q CRASH "$KANBAN_CONTEXT"; then exit 1; fi
if grep -q LIMIT "$KANBAN_CONTEXT" && [ ! -e "$OUT/limited" ]; then touch "$OUT/limited"; exit 75; fi
"$KANBAN_BIN" complete "$KANBAN_TASK" --result done"#,
    );
    f.write_board(&format!("[dispatch]\nfailure_limit = 10\n\n{}", f.profile("w", &script, &[])));
    f
}

/// `plugin context ID` for each card, then one tick at `at` that waits for its workers.
fn tick_capturing(f: &Fleet, at: i64, cards: &[&str], live: &mut Vec<(String, i64, Value)>) -> Value {
    f.set_now(at);
    for id in cards {
        live.push((id.to_string(), at, f.json(&["plugin", "context", id])));
    }
    f.dispatch_wait()
}

fn replay(f: &Fleet, plugin: &str, extra: &[&str]) -> Value {
    let mut args = vec!["policy", "replay", "--plugin", plugin, "--since", "30d", "--json"];
    args.extend_from_slice(extra);
    f.json(&args)
}

/// A context without its `config` (the candidate's own) and, where a tick decided about several cards,
/// without the profiles' running counts (the tick counts its own earlier spawns; `plugin context` before
/// it cannot).
fn comparable(mut ctx: Value, keep_running: bool) -> Value {
    ctx.as_object_mut().unwrap().remove("config");
    if !keep_running {
        for p in ctx["board"]["profiles"].as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("running");
        }
    }
    ctx
}

#[test]
fn a_replayed_guard_reports_exactly_the_decisions_it_changes_on_a_board_s_real_history() {
    let f = fleet();
    let held = f.create("ship it [hold]", &["--assignee", "w"]);
    let crash = f.create("CRASH every time", &["--assignee", "w"]);
    let limit = f.create("LIMIT once", &["--assignee", "w"]);
    let mut live = Vec::new();

    // T0: all three spawn; one completes, one crashes, one is rate limited.
    let r = tick_capturing(&f, T0, &[&held, &crash, &limit], &mut live);
    assert_eq!(r["spawned"].as_array().unwrap().len(), 3, "{r}");
    f.ok(&["comment", &crash, "looked at it: flaky fixture"]);
    // T0+1: the built-in guard defers both (crash backoff, rate-limit cooldown); again at T0+2, which
    // records no second deferral (one per streak).
    let r = tick_capturing(&f, T0 + 1, &[&crash, &limit], &mut live);
    assert_eq!(r["respawn_guarded"].as_array().unwrap().len(), 2, "{r}");
    let r = tick_capturing(&f, T0 + 2, &[], &mut live);
    assert_eq!(r["respawn_guarded"].as_array().unwrap().len(), 2, "{r}");
    // T0+400: both spawn again; the crash card crashes again, the other completes.
    let r = tick_capturing(&f, T0 + 400, &[&crash, &limit], &mut live);
    assert_eq!(r["spawned"].as_array().unwrap().len(), 2, "{r}");
    // T0+401: the crash card is deferred again (a new streak after its second crash).
    let r = tick_capturing(&f, T0 + 401, &[&crash], &mut live);
    assert_eq!(r["respawn_guarded"].as_array().unwrap().len(), 1, "{r}");
    let deferred: Vec<Value> = f.events().into_iter().filter(|e| e["kind"] == "deferred").collect();
    assert_eq!(deferred.len(), 3, "one deferred event per streak: {deferred:?}");
    f.set_now(T0 + 500);

    // The board's own guard, replayed against its own history, decides every time as it did.
    let same = replay(&f, "builtin:respawn-guard", &["--all", "--contexts"]);
    assert_eq!(same["decisions"], 8, "5 claims and 3 deferrals: {same}");
    assert_eq!(same["actual"], serde_json::json!({"allow": 5, "defer": 3}), "{same}");
    assert_eq!(same["verdicts"], serde_json::json!({"same": 8}), "{same}");

    // Each rebuilt context is the live one printed just before its tick.
    let listed = same["listed"].as_array().unwrap();
    for (id, at, ctx) in &live {
        let multi = live.iter().filter(|(_, t, _)| t == at).count() > 1;
        let replayed = listed
            .iter()
            .find(|d| d["task_id"] == id.as_str() && d["at"] == *at)
            .unwrap_or_else(|| panic!("no decision about {id} at {at}: {same}"));
        assert_eq!(
            comparable(replayed["context"].clone(), !multi),
            comparable(ctx.clone(), !multi),
            "the context rebuilt for {id} at {at} differs from the live one"
        );
    }
    // Within one tick the guard sees the spawns planned before the card: 0, 1 and 2 running at T0.
    let running_at_t0: Vec<Value> = listed
        .iter()
        .filter(|d| d["at"] == T0)
        .map(|d| d["context"]["board"]["profiles"][0]["running"].clone())
        .collect();
    assert_eq!(running_at_t0, [0, 1, 2]);

    // A candidate that holds "[hold]" cards: it would have deferred the held card's spawn and allowed the
    // three deferrals (it knows nothing of crashes or rate limits). Nothing else changes.
    let guard = hold_guard_plugin();
    let report = replay(&f, guard.to_str().unwrap(), &["--config", r#"{"marker": "[hold]"}"#]);
    assert_eq!(
        report["verdicts"],
        serde_json::json!({"same": 4, "would_defer": 1, "would_allow": 3}),
        "{report}"
    );
    let changed: Vec<(String, String, String)> = report["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["task_id"].as_str().unwrap().to_string(),
                d["verdict"].as_str().unwrap().to_string(),
                d["actual"]["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        (held.clone(), "would_defer", "allow"),
        (crash.clone(), "would_allow", "defer"),
        (limit.clone(), "would_allow", "defer"),
        (crash.clone(), "would_allow", "defer"),
    ]
    .map(|(a, b, c)| (a, b.to_string(), c.to_string()));
    assert_eq!(changed, expected, "{report}");
    assert_eq!(report["listed"][0]["replayed"]["decision"], "defer");
    assert!(report["listed"][0]["replayed"]["reason"].as_str().unwrap().contains("[hold]"), "{report}");

    // The text report says the same, one line per changed decision.
    let text = f.ok(&[
        "policy",
        "replay",
        "--plugin",
        guard.to_str().unwrap(),
        "--since",
        "30d",
        "--config",
        r#"{"marker": "[hold]"}"#,
    ]);
    assert!(text.contains("the candidate: same 4, would_allow 3, would_defer 1"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("would_")).count(), 4, "{text}");

    // Diagnostics as of T0+100, after the crash card's first crash: a candidate that flags one failure
    // finds on it what the board's diagnostics (two failures) did not; as of now, with the defaults, the
    // same findings as the board's own.
    let diag = |extra: &[&str]| {
        let mut args = vec!["policy", "replay", "--plugin", "builtin:diagnostics", "--json"];
        args.extend_from_slice(extra);
        f.json(&args)
    };
    let then = diag(&["--at", "400s", "--config", r#"{"repeated_failures": 1}"#]);
    assert_eq!(then["at"], T0 + 100, "{then}");
    assert_eq!(then["decisions"], 3, "three cards existed: {then}");
    assert_eq!(then["verdicts"], serde_json::json!({"same": 2, "would_find": 1}), "{then}");
    assert_eq!(then["listed"][0]["task_id"], crash.as_str(), "{then}");
    let rules: Vec<&str> = then["listed"][0]["replayed"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["repeated-failures"], "{then}");
    let now = diag(&[]);
    assert_eq!(now["verdicts"], serde_json::json!({"same": 3}), "{now}");
    let text = f.ok(&[
        "policy",
        "replay",
        "--plugin",
        "builtin:diagnostics",
        "--at",
        "400s",
        "--config",
        r#"{"repeated_failures": 1}"#,
    ]);
    assert!(text.contains("card(s) of board default as of"), "{text}");
    assert!(text.contains("board: no findings; candidate: repeated-failures"), "{text}");

    // An edit after the decisions: the rebuilt card uses today's title and says so (its three decisions).
    f.ok(&["edit", &limit, "--title", "LIMIT once, renamed"]);
    let report = replay(&f, "builtin:respawn-guard", &["--all"]);
    assert_eq!(report["inexact"], serde_json::json!({"title": 3}), "{report}");
}

#[test]
fn replay_refuses_a_kind_it_cannot_replay_and_a_candidate_of_another_kind() {
    let f = fleet();
    let err = f.fails(&["policy", "replay", "--plugin", "builtin:checklist-decompose"], 1);
    assert!(err.contains("builtin:checklist-decompose is a decompose policy"), "{err}");
    let err = f.fails(&["policy", "replay", "--plugin", "builtin:respawn-guard", "--kind", "routing"], 1);
    assert!(err.contains("--kind routing: builtin:respawn-guard is a respawn-guard policy"), "{err}");
    let err = f.fails(&["policy", "replay", "--plugin", "no-such-plugin"], 1);
    assert!(err.contains("no-such-plugin"), "{err}");
    let err = f.fails(&["policy", "replay", "--plugin", "builtin:respawn-guard", "--config", "[1]"], 1);
    assert!(err.contains("--config must be a JSON object"), "{err}");
}

#[test]
fn a_replayed_router_reports_the_cards_it_would_have_given_to_another_profile() {
    let f = Fleet::new();
    f.write_board(
        "[profiles.w]\ncommand = [\"true\"]\n[profiles.v]\ncommand = [\"true\"]\n\n\
         [[policies]]\nkind = \"routing\"\nplugin = \"builtin:default-assignee\"\n\
         [policies.config]\nassignee = \"w\"\n",
    );
    let a = f.create("first", &[]);
    let b = f.create("second", &[]);
    let by_hand = f.create("third", &[]);
    f.ok(&["assign", &by_hand, "v"]);
    f.dispatch(&[]);
    let same = replay(&f, "builtin:default-assignee", &["--config", r#"{"assignee": "w"}"#]);
    assert_eq!(same["decisions"], 2, "an assignment from the command line is no routing decision: {same}");
    assert_eq!(same["verdicts"], serde_json::json!({"same": 2}), "{same}");
    let other = replay(&f, "builtin:default-assignee", &["--config", r#"{"assignee": "v"}"#]);
    assert_eq!(other["verdicts"], serde_json::json!({"would_assign": 2}), "{other}");
    let listed: Vec<(&str, &str, &str)> = other["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["task_id"].as_str().unwrap(),
                d["actual"]["assignee"].as_str().unwrap(),
                d["replayed"]["assignee"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [(a.as_str(), "w", "v"), (b.as_str(), "w", "v")], "{other}");
}
