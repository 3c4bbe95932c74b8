//! The review lane (issue 10): a worker finishing its turn asks for review instead of completing; the
//! card's reviewer profile is dispatched from the review lane with the card's context and the
//! implementer's result; approval is `complete`; `request-changes` sends it back to the implementer with the
//! failure counter untouched. One slot of the board cap is kept for a waiting review, and a dry run plans
//! the review lane exactly like a real tick.

use serde_json::Value;

use crate::common::*;

/// A board with an implementer profile `coder` and a reviewer profile `reviewer`, with `[review] reviewer`
/// set when `default_reviewer`.
fn review_board(f: &Fleet, coder: &str, reviewer: &str, extra: &str) {
    let coder = f.script("coder.sh", coder);
    let reviewer = f.script("reviewer.sh", reviewer);
    f.write_board(&format!(
        "{extra}\n{}\n{}",
        f.profile("coder", &coder, &[]),
        f.profile("reviewer", &reviewer, &[])
    ));
}

/// The implementer asks for review with a summary.
const ASKS_REVIEW: &str =
    r#""$KANBAN_BIN" review "$KANBAN_TASK" --reviewer reviewer --summary "patched the login redirect""#;

fn lanes(report: &Value) -> Vec<(String, String)> {
    report["spawned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["task_id"].as_str().unwrap().to_string(), s["lane"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn a_worker_asks_for_review_and_the_reviewer_approves_with_complete() {
    let f = Fleet::new();
    // The reviewer records what it was given, then approves.
    let reviewer = r#"echo "$KANBAN_REVIEW" > "$OUT/review-flag"
cp "$KANBAN_CONTEXT" "$OUT/review-context"
"$KANBAN_BIN" complete "$KANBAN_TASK" --result "approved""#;
    review_board(&f, ASKS_REVIEW, reviewer, "");
    let id = f.create("Fix the login redirect", &["--assignee", "coder"]);
    let report = f.dispatch(&["--wait"]);
    assert_eq!(lanes(&report), [(id.clone(), "work".to_string())], "{report}");
    let task = f.task(&id);
    assert_eq!(task["status"], "review", "{task}");
    assert_eq!(task["reviewer"], "reviewer");
    assert_eq!(task["result"], "patched the login redirect");
    let first = f.runs(&id)[0].clone();
    assert_eq!(first["outcome"], "review_requested", "{first}");
    let requested = f.events_of(&id, "review_requested");
    assert_eq!(requested[0]["payload"]["summary"], "patched the login redirect");

    let report = f.dispatch(&["--wait"]);
    assert_eq!(lanes(&report), [(id.clone(), "review".to_string())], "{report}");
    assert_eq!(report["spawned"][0]["assignee"], "reviewer");
    assert_eq!(f.out("review-flag").trim(), "1");
    let context = f.out("review-context");
    assert!(context.contains("You are reviewing this card"), "{context}");
    assert!(context.contains("patched the login redirect"), "the implementer's result: {context}");
    let task = f.task(&id);
    assert_eq!(
        (task["status"].as_str(), task["result"].as_str()),
        (Some("done"), Some("approved")),
        "{task}"
    );
    let runs = f.runs(&id);
    assert_eq!(runs[1]["lane"], "review");
    assert_eq!(runs[1]["profile"], "reviewer");
}

#[test]
fn request_changes_sends_the_card_back_to_its_implementer_with_the_reason_and_no_failure() {
    let f = Fleet::new();
    let coder = r#"n=$(cat "$OUT/turns" 2>/dev/null || echo 0); echo $((n + 1)) > "$OUT/turns"
cp "$KANBAN_CONTEXT" "$OUT/coder-context-$n"
"$KANBAN_BIN" review "$KANBAN_TASK" --reviewer reviewer --summary "attempt $n""#;
    let reviewer = r#"if [ ! -e "$OUT/sent-back" ]; then touch "$OUT/sent-back"
  "$KANBAN_BIN" request-changes "$KANBAN_TASK" "add a test for the redirect"
else "$KANBAN_BIN" complete "$KANBAN_TASK"; fi"#;
    review_board(&f, coder, reviewer, "");
    let id = f.create("Fix the login redirect", &["--assignee", "coder"]);
    f.set_failures(&id, 1);
    f.dispatch(&["--wait"]); // the implementer asks for review
    f.dispatch(&["--wait"]); // the reviewer sends it back
    let task = f.task(&id);
    assert_eq!(task["status"], "ready", "{task}");
    assert_eq!(task["consecutive_failures"], 0, "the implementer's review request reset it: {task}");
    let back = f.events_of(&id, "changes_requested");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0]["payload"]["reason"], "add a test for the redirect");
    assert_eq!(f.runs(&id)[1]["outcome"], "changes_requested");
    f.set_failures(&id, 1);
    f.dispatch(&["--wait"]); // the implementer again, told why
    assert!(f.out("coder-context-1").contains("add a test for the redirect"), "{}", f.out("coder-context-1"));
    assert_eq!(f.task(&id)["status"], "review");
    f.dispatch(&["--wait"]); // approved
    assert_eq!(f.status(&id), "done");
    let requested_back = f.events_of(&id, "changes_requested");
    assert_eq!(requested_back.len(), 1);
}

#[test]
fn a_changes_request_leaves_the_failure_counter_as_it_was() {
    let f = Fleet::new();
    review_board(&f, "sleep 600", "sleep 600", "");
    let id = f.create("reviewed by a person", &["--assignee", "coder"]);
    f.ok(&["review", &id, "--summary", "ready for a look"]);
    assert_eq!(f.status(&id), "review");
    f.set_failures(&id, 1);
    f.ok(&["request-changes", &id, "rename the flag"]);
    let task = f.task(&id);
    assert_eq!((task["status"].as_str(), task["consecutive_failures"].as_i64()), (Some("ready"), Some(1)));
    // Only cards in review can be sent back.
    let err = f.fails(&["request-changes", &id, "again"], 1);
    assert!(err.contains("only cards in review"), "{err}");
    let err = f.fails(&["request-changes", &id, " "], 1);
    assert!(err.contains("only cards in review") || err.contains("reason"), "{err}");
}

/// A card sent to review with no reviewer (and no board default) waits for a person, who approves with
/// `complete`.
#[test]
fn a_review_without_a_reviewer_waits_for_a_person() {
    let f = Fleet::new();
    review_board(&f, "sleep 600", "sleep 600", "");
    let id = f.create("needs a human eye", &["--assignee", "coder"]);
    f.ok(&["review", &id]);
    let report = f.dispatch(&[]);
    assert!(report["spawned"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(strings(&report["awaiting_review"]), vec![id.clone()], "{report}");
    f.ok(&["complete", &id, "--result", "looks good"]);
    assert_eq!(f.status(&id), "done");
}

/// A reviewer that exits 0 without a verdict is a protocol violation, and the card goes back to the review
/// lane it came from, not to the implementer.
#[test]
fn a_reviewer_that_forgets_its_verdict_requeues_the_card_to_review() {
    let f = Fleet::new();
    review_board(&f, ASKS_REVIEW, "exit 0", "");
    let id = f.create("forgotten", &["--assignee", "coder"]);
    f.dispatch(&["--wait"]);
    let report = f.dispatch(&["--wait"]);
    assert_eq!(strings(&report["protocol_violations"]), vec![id.clone()], "{report}");
    assert_eq!(f.status(&id), "review");
}

/// With reviews waiting, the work lane leaves one slot of the board cap to them; a dry run plans the same.
#[test]
fn a_waiting_review_keeps_one_slot_of_the_board_cap_and_a_dry_run_plans_it_the_same() {
    let f = Fleet::new();
    review_board(
        &f,
        "sleep 600",
        "sleep 600",
        "[dispatch]\nmax_in_progress = 2\n\n[review]\nreviewer = \"reviewer\"\n",
    );
    let ready: Vec<String> = (0..3)
        .map(|n| {
            f.advance(1);
            f.create(&format!("work {n}"), &["--assignee", "coder", "--priority", "5"])
        })
        .collect();
    f.advance(1);
    let review = f.create("to review", &["--assignee", "coder"]);
    f.ok(&["review", &review, "--summary", "done"]);
    let dry = f.dispatch(&["--dry-run"]);
    let real = f.dispatch(&[]);
    let expected = vec![(ready[0].clone(), "work".to_string()), (review.clone(), "review".to_string())];
    assert_eq!(lanes(&dry), expected, "{dry}");
    assert_eq!(lanes(&real), expected, "{real}");
    assert_eq!(real["spawned"][1]["assignee"], "reviewer", "the board's default reviewer");
    assert_eq!(f.task(&review)["reviewer"], "reviewer", "the card keeps the reviewer it was given");
}
