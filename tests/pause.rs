//! Pause and resume (issue 15): a paused board, or a paused profile of it, spawns nothing new, in a real
//! tick and in a dry run alike, while running workers finish and settlement goes on; the pause is state in
//! the board's store, so a dispatcher started later sees it; `board show`, `dispatch --json` and
//! diagnostics say so; a worker can do neither.

use serde_json::Value;

use crate::common::*;

const COMPLETE: &str = r#""$KANBAN_BIN" complete "$KANBAN_TASK" --result ok"#;

/// A board whose profiles each run `body`.
fn board(f: &Fleet, profiles: &[(&str, &str)]) {
    let text: Vec<String> = profiles
        .iter()
        .map(|(name, body)| f.profile(name, &f.script(&format!("{name}.sh"), body), &[]))
        .collect();
    f.write_board(&text.join("\n"));
}

fn spawned(report: &Value) -> Vec<String> {
    task_ids(&report["spawned"])
}

/// `(task_id, profile, scope, reason)` of a dispatch report's `paused`.
fn paused(report: &Value) -> Vec<(String, Value, String, Value)> {
    report["paused"]
        .as_array()
        .unwrap_or_else(|| panic!("no paused list: {report}"))
        .iter()
        .map(|p| {
            (
                p["task_id"].as_str().unwrap().to_string(),
                p["profile"].clone(),
                p["scope"].as_str().unwrap().to_string(),
                p["reason"].clone(),
            )
        })
        .collect()
}

fn board_events(f: &Fleet, kind: &str) -> Vec<Value> {
    f.events().into_iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn a_paused_board_spawns_nothing_in_either_lane_and_a_dry_run_says_paused() {
    let f = Fleet::new();
    board(&f, &[("coder", COMPLETE), ("reviewer", COMPLETE)]);
    let work = f.create("work", &["--assignee", "coder"]);
    f.advance(1);
    let review = f.create("to review", &["--assignee", "coder"]);
    f.ok(&["review", &review, "--reviewer", "reviewer"]);
    f.ok(&["pause", "--reason", "deploy freeze"]);

    let expected = vec![
        (work.clone(), Value::from("coder"), "board".to_string(), Value::from("deploy freeze")),
        (review.clone(), Value::from("reviewer"), "board".to_string(), Value::from("deploy freeze")),
    ];
    let dry = f.dispatch(&["--dry-run"]);
    assert!(spawned(&dry).is_empty(), "{dry}");
    assert_eq!(paused(&dry), expected, "{dry}");
    assert_eq!(dry["pending"], 0, "paused cards are not waiting for a slot: {dry}");
    assert_eq!(dry["pauses"][0]["reason"], "deploy freeze");
    assert!(dry["pauses"][0]["profile"].is_null());
    // A real tick plans exactly what the dry run showed, and starts nothing.
    let real = f.dispatch(&["--wait"]);
    assert!(spawned(&real).is_empty(), "{real}");
    assert_eq!(paused(&real), expected, "{real}");
    assert!(f.runs(&work).is_empty() && f.runs(&review).is_empty());
    assert_eq!((f.status(&work), f.status(&review)), ("ready".into(), "review".into()));
    let text = f.ok(&["dispatch", "--dry-run"]);
    assert!(text.contains("board default paused since 2027-01-15 08:00:01"), "{text}");
    assert!(text.contains(&format!("paused, not spawned: {work} {review}")), "{text}");

    // Resumed, the next tick spawns both lanes again.
    assert!(f.ok(&["resume"]).contains("Resumed board default"));
    let report = f.dispatch(&["--wait"]);
    assert_eq!(spawned(&report), [work.clone(), review.clone()], "{report}");
    assert!(report["paused"].as_array().unwrap().is_empty() && report["pauses"] == serde_json::json!([]));
    assert_eq!((f.status(&work), f.status(&review)), ("done".into(), "done".into()));
}

#[test]
fn workers_running_on_a_paused_board_finish_and_are_settled_as_usual() {
    let f = Fleet::new();
    // Each worker waits for the go file, then does what `$OUT/<card>.mode` says.
    let body = r#"while [ ! -e "$OUT/go" ]; do sleep 0.05; done
case "$(cat "$OUT/$KANBAN_TASK.mode")" in
  complete) "$KANBAN_BIN" complete "$KANBAN_TASK" --result finished ;;
  limited) exit 75 ;;
  *) sleep 600 ;;
esac"#;
    board(&f, &[("coder", body)]);
    let mut cards = Vec::new();
    for (mode, extra) in [("complete", vec![]), ("limited", vec![]), ("hang", vec!["--max-runtime", "60"])] {
        let mut args = vec!["--assignee", "coder"];
        args.extend(extra);
        let id = f.create(mode, &args);
        std::fs::write(f.out_dir().join(format!("{id}.mode")), mode).unwrap();
        cards.push(id);
    }
    let [done, limited, hung] = [cards[0].clone(), cards[1].clone(), cards[2].clone()];
    assert_eq!(spawned(&f.dispatch(&[])).len(), 3);
    let limited_supervisor = f.wait_worker(&limited)["supervisor_pid"].as_i64().unwrap();
    f.wait_worker(&done);
    f.wait_worker(&hung);
    f.ok(&["pause", "--reason", "incident"]);
    std::fs::write(f.out_dir().join("go"), "").unwrap();
    f.wait_event(&done, "completed");
    assert_eq!(f.status(&done), "done", "a running worker's report is accepted while paused");
    // The exit is classified once nothing of its attempt is left, its supervisor included.
    f.wait_event(&limited, "worker_exited");
    wait_for("the rate-limited attempt's supervisor to exit", || !process_alive(limited_supervisor));

    // The tick settles the exit and enforces the time limit, then holds the requeued card back.
    f.advance(120);
    let report = f.dispatch(&[]);
    assert_eq!(strings(&report["rate_limited"]), [limited.as_str()], "{report}");
    assert_eq!(strings(&report["timed_out"]), [hung.as_str()], "{report}");
    assert!(spawned(&report).is_empty(), "{report}");
    // Held back: the requeued card, and the timed-out one too when its supervisor finished the stop while
    // the tick was still planning (it may, on either store: it runs beside the tick).
    let held: Vec<String> = paused(&report).iter().map(|p| p.0.clone()).collect();
    assert!(held.contains(&limited), "{report}");
    assert!(held.iter().all(|id| *id == limited || *id == hung), "{report}");
    if held.contains(&hung) {
        assert_eq!(
            f.runs(&hung)[0]["status"],
            "ended",
            "held back only once its stop was finished: {report}"
        );
    }
    assert_eq!(f.runs(&hung).len(), 1, "the timed-out card is not respawned while paused either");
    assert_eq!(f.status(&limited), "ready");
    assert_eq!(f.runs(&limited).len(), 1, "not respawned");
}

#[test]
fn a_paused_profile_leaves_the_other_profiles_spawning() {
    let f = Fleet::new();
    board(&f, &[("coder", COMPLETE), ("writer", COMPLETE)]);
    let coded = f.create("code it", &["--assignee", "coder"]);
    let written = f.create("write it", &["--assignee", "writer"]);
    let out = f.ok(&["pause", "--profile", "coder", "--reason", "quota spent"]);
    assert!(out.starts_with("Paused profile coder: quota spent"), "{out}");
    let report = f.dispatch(&["--wait"]);
    assert_eq!(spawned(&report), [written.as_str()], "{report}");
    assert_eq!(
        paused(&report),
        [(coded.clone(), Value::from("coder"), "profile".to_string(), Value::from("quota spent"))]
    );
    assert_eq!(report["pauses"][0]["profile"], "coder");
    assert_eq!((f.status(&coded), f.status(&written)), ("ready".into(), "done".into()));
    // Resuming the board is not resuming the profile: it says so and changes nothing.
    let err = f.fails(&["resume"], 1);
    assert!(err.contains("board 'default' is not paused (paused profiles: coder"), "{err}");
    f.ok(&["resume", "--profile", "coder"]);
    assert_eq!(spawned(&f.dispatch(&["--wait"])), [coded.as_str()]);
    assert_eq!(f.status(&coded), "done");
}

#[test]
fn a_pause_survives_into_a_daemon_started_after_it() {
    let f = Fleet::new();
    board(&f, &[("coder", COMPLETE)]);
    let id = f.create("later", &["--assignee", "coder"]);
    f.ok(&["pause", "--reason", "maintenance"]);
    let out = f.cmd(&["daemon", "--interval", "0.05", "--max-ticks", "8"]).output().unwrap();
    expect_ok(&out, &"daemon --max-ticks 8");
    assert!(f.runs(&id).is_empty(), "a daemon started after the pause spawned nothing");
    assert!(board_events(&f, "dispatcher_health").is_empty(), "a paused card is not a starved card");
    // Waiting only on a pause is idle: --until-idle stops.
    let out = f
        .cmd(&["daemon", "--interval", "0.05", "--until-idle", "--max-ticks", "1000"])
        .env("KANBAN_LOG", "info")
        .output()
        .unwrap();
    expect_ok(&out, &"daemon --until-idle");
    assert!(String::from_utf8_lossy(&out.stderr).contains("idle; stopping"));
    assert!(f.runs(&id).is_empty());

    f.ok(&["resume"]);
    let out =
        f.cmd(&["daemon", "--interval", "0.05", "--until-idle", "--max-ticks", "400"]).output().unwrap();
    expect_ok(&out, &"daemon --until-idle");
    assert_eq!(f.status(&id), "done");
}

#[test]
fn pausing_again_updates_the_reason_and_resuming_what_is_not_paused_is_refused() {
    let f = Fleet::new();
    board(&f, &[("coder", COMPLETE)]);
    f.ok(&["pause", "--reason", "incident"]);
    let started = f.now();
    f.advance(300);
    let out = f.ok(&["pause", "--reason", "incident, still investigating"]);
    assert!(
        out.starts_with("Board default was already paused (since 2027-01-15 08:00:00); reason updated"),
        "{out}"
    );
    let pause = &f.json(&["board", "show", "--json"])["pauses"][0];
    assert_eq!(pause["reason"], "incident, still investigating");
    assert_eq!(pause["paused_at"], started, "the pause keeps the time it started");
    let events = board_events(&f, "paused");
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["task_id"].is_null()), "board-level events");
    assert_eq!(
        (events[0]["payload"]["updated"].as_bool(), events[1]["payload"]["updated"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(events[1]["payload"]["reason"], "incident, still investigating");

    f.ok(&["resume"]);
    let resumed = board_events(&f, "resumed");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["payload"]["paused_at"], started);
    assert!(resumed[0]["payload"]["profile"].is_null());
    let err = f.fails(&["resume"], 1);
    assert!(err.contains("board 'default' is not paused"), "{err}");
    let err = f.fails(&["resume", "--profile", "coder"], 1);
    assert!(err.contains("profile 'coder' of board 'default' is not paused"), "{err}");
    assert_eq!(board_events(&f, "resumed").len(), 1, "a refused resume records nothing");
}

#[test]
fn a_profile_the_board_does_not_have_is_a_usage_error_naming_it() {
    let f = Fleet::new();
    board(&f, &[("coder", COMPLETE), ("writer", COMPLETE)]);
    for args in [vec!["pause", "--profile", "ghost"], vec!["resume", "--profile", "ghost"]] {
        let err = f.fails(&args, 2);
        assert!(
            err.contains("board 'default' has no profile 'ghost' (defined: coder, writer)"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(f.json(&["board", "show", "--json"])["pauses"], serde_json::json!([]));
    assert!(board_events(&f, "paused").is_empty());
}

#[test]
fn a_worker_can_neither_pause_nor_resume() {
    let f = Fleet::new();
    board(&f, &[("coder", "sleep 600")]);
    let id = f.create("mine", &["--assignee", "coder", "--initial-status", "running"]);
    f.ok(&["pause", "--profile", "coder"]);
    for (args, name) in [(vec!["pause"], "pause"), (vec!["resume", "--profile", "coder"], "resume")] {
        let out = f.cmd(&args).env("KANBAN_TASK", &id).output().unwrap();
        let err = expect_fail(&out, &args, 1);
        assert!(
            err.contains(&format!(
                "worker is scoped to task {id}; `kanban {name}` is not allowed inside a worker"
            )),
            "{err}"
        );
    }
    let pauses = f.json(&["board", "show", "--json"])["pauses"].clone();
    assert_eq!(pauses.as_array().unwrap().len(), 1, "{pauses}");
    assert_eq!(pauses[0]["profile"], "coder", "the worker changed nothing: {pauses}");
}

#[test]
fn board_show_and_diagnostics_say_what_is_paused_since_when_and_why() {
    let f = Fleet::new();
    board(&f, &[("coder", COMPLETE), ("writer", COMPLETE)]);
    let text = f.ok(&["board", "show"]);
    assert!(text.contains("  paused           no\n"), "{text}");
    assert!(f.json(&["diagnostics", "--json"])["findings"].as_array().unwrap().is_empty());

    let as_user =
        |args: &[&str], user: &str| expect_ok(&f.cmd(args).env("USER", user).output().unwrap(), &args);
    as_user(&["pause", "--reason", "deploy freeze"], "alice");
    f.advance(60);
    as_user(&["pause", "--profile", "writer"], "bob");
    let text = f.ok(&["board", "show"]);
    assert!(
        text.contains("  paused           board since 2027-01-15 08:00:00 by alice: deploy freeze\n"),
        "{text}"
    );
    assert!(text.contains("  paused           profile writer since 2027-01-15 08:01:00 by bob\n"), "{text}");
    assert_eq!(
        f.json(&["board", "show", "--json"])["pauses"],
        serde_json::json!([
            {"profile": null, "reason": "deploy freeze", "paused_at": DEFAULT_NOW, "paused_by": "alice"},
            {"profile": "writer", "reason": null, "paused_at": DEFAULT_NOW + 60, "paused_by": "bob"},
        ])
    );

    let findings = f.json(&["diagnostics", "--json"])["findings"].clone();
    let rules: Vec<(&str, &str)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["rule"].as_str().unwrap(), x["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(rules, [("board-paused", "warning"), ("profile-paused", "warning")], "{findings}");
    let board = &findings[0];
    assert!(board["task_id"].is_null());
    assert_eq!(board["title"], "board default is paused");
    let detail = board["detail"].as_str().unwrap();
    assert!(detail.contains("since 2027-01-15 08:00:00 by alice: deploy freeze"), "{detail}");
    assert_eq!(board["actions"], serde_json::json!(["kanban --board default resume"]));
    assert_eq!(findings[1]["actions"], serde_json::json!(["kanban --board default resume --profile writer"]));
    let text = f.ok(&["diagnostics", "--severity", "warning"]);
    assert!(text.contains("board default is paused [board-paused]"), "{text}");

    f.ok(&["resume"]);
    f.ok(&["resume", "--profile", "writer"]);
    assert!(f.json(&["diagnostics", "--json"])["findings"].as_array().unwrap().is_empty());
    assert!(f.ok(&["board", "show"]).contains("  paused           no\n"));
}
